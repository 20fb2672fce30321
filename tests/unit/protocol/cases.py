"""Loads the JSON case files of tests/cases/protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CASES = Path(__file__).resolve().parents[2] / "cases" / "protocol"


def load_cases(name: str) -> Any:
    return json.loads((CASES / name).read_text(encoding="utf-8"))
