"""One settings table drives flags, RTDB_* variables and the README."""

from pathlib import Path

from rtdb.server.settings import Settings, markdown_table
from rtdb_cli.main import build_parser

ROOT = Path(__file__).parents[2]


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [row["flag"] for row in Settings.table() if f"`{row['flag']}`" not in readme]
    assert missing == []
    assert markdown_table() in readme, "README settings table is stale: paste `rtdb-settings-table` output"


def test_every_setting_is_a_serve_flag() -> None:
    serve_help = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    assert [r["flag"] for r in Settings.table() if r["flag"] not in serve_help] == []


def test_flags_override_environment_override_defaults() -> None:
    env = {"RTDB_PORT": "9100", "RTDB_EMULATOR": "true", "RTDB_INDEX": "scores:score;rooms/$r/msgs:ts"}
    s = Settings.from_sources({"port": "9200"}, env)
    assert s.port == 9200 and s.emulator is True
    assert s.index_map() == {("scores",): (("score",),), ("rooms", "$r", "msgs"): (("ts",),)}
    assert Settings.from_sources({}, {}).port == 9000
