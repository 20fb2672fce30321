"""Imports flow one way (DESIGN.md): core ← rules, protocol, storage, realtime ← engine ← server ←
runner ← cli; core, protocol ← sdk; process (spawning rtdb's child processes) under everything.
Pure layers import no I/O frameworks."""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]

ALLOWED = {
    "rtdb.process": {"rtdb.process"},
    "rtdb.core": {"rtdb.core"},
    "rtdb.rules": {"rtdb.core", "rtdb.rules"},
    "rtdb.protocol": {"rtdb.core", "rtdb.protocol"},
    "rtdb.storage": {"rtdb.core", "rtdb.storage"},
    "rtdb.realtime": {"rtdb.core", "rtdb.protocol", "rtdb.realtime"},
    "rtdb.engine": {"rtdb.core", "rtdb.rules", "rtdb.protocol", "rtdb.storage", "rtdb.realtime", "rtdb.engine",
                    "rtdb.process"},
    "rtdb.server": {"rtdb.core", "rtdb.rules", "rtdb.protocol", "rtdb.storage", "rtdb.realtime", "rtdb.engine",
                    "rtdb.server"},
    "rtdb.runner": {"rtdb"},
    "rtdb_cli": {"rtdb", "rtdb_cli"},
    "rtdb_sdk": {"rtdb.core", "rtdb.protocol", "rtdb_sdk"},
}
PURE = {"rtdb.core", "rtdb.rules", "rtdb.protocol"}
IO_MODULES = {"asyncio", "sqlite3", "litestar", "uvicorn", "httpx", "websockets"}
FOLDERS = {"rtdb": "rtdb", "cli/rtdb_cli": "rtdb_cli", "sdk/rtdb_sdk": "rtdb_sdk"}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for folder, name in FOLDERS.items():
        for file in (ROOT / folder).rglob("*.py"):
            rel = file.relative_to(ROOT / folder).with_suffix("")
            out.append((".".join([name, *rel.parts]), file))
    return out


def _layer(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _imports(file: Path) -> list[str]:
    tree = ast.parse(file.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_imports_flow_one_way() -> None:
    wrong = []
    for module, file in _modules():
        layer = _layer(module)
        if layer is None:
            continue
        for imported in _imports(file):
            if not imported.startswith(("rtdb", "rtdb_cli", "rtdb_sdk")):
                continue
            target = _layer(imported) or imported
            if not any(target == a or target.startswith(a + ".") for a in ALLOWED[layer]):
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def _module_graph() -> dict[str, set[str]]:
    """Module -> the rtdb modules it imports, wherever the import stands (also under
    ``TYPE_CHECKING`` or inside a function); ``from package import name`` counts as importing
    the module ``package.name`` when there is one, else the package."""
    files = dict(_modules())
    known = {m.removesuffix(".__init__") for m in files}
    graph: dict[str, set[str]] = {}
    for module, file in files.items():
        edges = graph.setdefault(module.removesuffix(".__init__"), set())
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in known)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in known:
                subs = {f"{node.module}.{a.name}" for a in node.names} & known
                edges.update(subs or {node.module})
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            if group:
                found.append(sorted([v, *group]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_through_others() -> None:
    """A circle of imports, even one only for type hints or a deferred import, means two
    modules that cannot be read, tested or moved apart: there are none."""
    assert _circles(_module_graph()) == []


def test_the_circle_finder_sees_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []
    graph = _module_graph()
    assert "rtdb.engine.writes" in graph["rtdb.engine.engine"]
    assert "rtdb.runner.server" in graph["rtdb.runner.workers"]


def test_pure_layers_do_no_io() -> None:
    wrong = []
    for module, file in _modules():
        if _layer(module) in PURE:
            for imported in _imports(file):
                if imported.split(".")[0] in IO_MODULES:
                    wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_the_checker_sees_a_wrong_import() -> None:
    assert _layer("rtdb.core.value") == "rtdb.core"
    assert _layer("rtdb.runner.workers") == "rtdb.runner"
    assert "rtdb.engine" not in ALLOWED["rtdb.storage"]
    assert "rtdb.runner" not in ALLOWED["rtdb.server"]


# The storage seam: outside rtdb.storage, code depends on rtdb.storage.store's protocols. Only
# these name the SQLite implementation: the engine's default backend, the --write-process child
# (it drives SQLite's group writer itself) and the data-dir write probe of serve and /healthz.
SQLITE_MODULES = {"rtdb.storage.sqlite", "rtdb.storage.txn", "rtdb.storage.sqlite_backend", "rtdb.storage.rows"}
NAMES_SQLITE = {
    "rtdb.engine.engine": {"rtdb.storage.sqlite_backend"},
    "rtdb.engine.writer": {"rtdb.storage.sqlite"},
    "rtdb.server.app": {"rtdb.storage.sqlite"},
    "rtdb_cli.datadir": {"rtdb.storage.sqlite"},
    "rtdb_cli.transfer": {"rtdb.storage.rows"},  # the format number `rtdb migrate` reports
}


def test_only_the_named_modules_depend_on_the_sqlite_store() -> None:
    wrong = []
    for module, file in _modules():
        if _layer(module) == "rtdb.storage" or module.startswith("rtdb_sdk"):
            continue
        for imported in _imports(file):
            if imported in SQLITE_MODULES and imported not in NAMES_SQLITE.get(module, set()):
                wrong.append(f"{module} imports {imported}")
    assert wrong == []
