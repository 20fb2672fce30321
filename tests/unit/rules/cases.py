"""Loading the JSON rules cases shared by the unit runners and the differential check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

CASES = Path(__file__).parents[2] / "cases" / "rules"


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CASES / name).read_text())
    return loaded


def params(items: list[dict[str, Any]], label: str) -> list[Any]:
    """pytest params with readable ids (the label field, made unique by position)."""
    return [pytest.param(item, id=f"{i:03d}:{str(item[label])[:60]}") for i, item in enumerate(items)]
