"""The shape of the code, checked: no import cycles, public Dagster APIs only, and domain
packages that never import Dagster (directly, lazily inside a function, or through another
first-party module).

The import graph is read from the source (every `import`, at module level or inside a
function), so the checks cost no imports and see imports that only run on some paths.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("fraud_assets", "resources", "sensors")
# Packages of fraud_assets that hold domain code: no Dagster, and no module of the Dagster layer.
DOMAIN = (
    "batch",
    "cleaning",
    "features",
    "lake",
    "modeling",
    "monitoring",
    "online_state",
    "privacy",
    "rawdata",
    "serving",
    "settings",
    "simulation",
)
# The Dagster layer: may import Dagster and the domain, never the other way round.
DAGSTER_LAYER = (
    "fraud_assets.defs",
    "fraud_assets.definitions",
    "fraud_assets.dev",
    "resources",
    "sensors",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _sources() -> dict[str, Path]:
    found = {}
    for top in (*FIRST_PARTY, "tests", "benchmarks"):
        for path in (ROOT / top).rglob("*.py"):
            found[_module_name(path)] = path
    return found


def _imported(path: Path) -> set[str]:
    """Every module name an import statement in `path` names: for `from a import b`, a.b when
    that is a module (a submodule import), else a."""
    known = _sources()
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if submodule in known else node.module)
            # `from dagster import _core` names a private module too
            names.update(f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_"))
    return names


@cache
def _graph() -> dict[str, set[str]]:
    """First-party module -> the first-party modules it imports (package `__init__`s included)."""
    modules = {m: p for m, p in _sources().items() if m.split(".")[0] in FIRST_PARTY}
    return {
        module: {name for name in _imported(path) if name in modules and name != module}
        for module, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "fraud_assets" and len(parts) > 1 else parts[0]


def test_cycle_finder_finds_a_cycle_and_passes_a_chain() -> None:
    """The checker itself: a cycle through three modules is found, a chain is not a cycle."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_lazy_imports() -> None:
    """An import inside a function is an edge: `fraud demo` imports the demo only when run."""
    assert "fraud_assets.cli.demo" in _graph()["fraud_assets.cli.platform"]


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(_graph()) == []


# Package edges that close a cycle today: debts, listed exactly. The check drops them and asks for
# no cycle; it also fails when one of them no longer closes a cycle, so the list only shrinks.
KNOWN_CYCLE_EDGES = {
    # champion_snapshot exports the champion with serving's fast tree evaluator (fast_trees)
    ("fraud_assets.modeling", "fraud_assets.serving"),
    # publish and consistency write to / compare with serving's online feature store
    ("fraud_assets.online_state", "fraud_assets.serving"),
}


def _package_graph() -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for module, imports in _graph().items():
        packages.setdefault(_package(module), set()).update(
            _package(name) for name in imports if _package(name) != _package(module)
        )
    return packages


def test_no_import_cycles_between_packages() -> None:
    packages = _package_graph()
    known = KNOWN_CYCLE_EDGES
    without = {p: {q for q in deps if (p, q) not in known} for p, deps in packages.items()}
    assert _cycles(without) == []
    for edge in sorted(KNOWN_CYCLE_EDGES):
        alone = {
            p: {q for q in deps if (p, q) not in KNOWN_CYCLE_EDGES or (p, q) == edge}
            for p, deps in packages.items()
        }
        assert _cycles(alone), f"{edge} closes no cycle any more: remove it from the list"


@cache
def _all_imports() -> dict[str, set[str]]:
    return {module: _imported(path) for module, path in _sources().items()}


# The one place a test needs Dagster internals: the snapshot a code location sends to the UI,
# which has no public API, to prove no secret value is in it.
PRIVATE_ALLOWED = {
    "tests.test_secrets": ["dagster._core.remote_representation.external_data"],
    # The run queue's own choice of what to start, asked of the daemon class without a daemon
    # process (a queued run must name a code location); the browser tests show it end to end.
    "tests.test_instance_storage": [
        "dagster._core.remote_origin",
        "dagster._core.types.loadable_target_origin",
        "dagster._daemon.run_coordinator.queued_run_coordinator_daemon",
    ],
}


def test_only_public_dagster_apis() -> None:
    """`dagster._…` (and `dagster_aws._…` etc.) may change in any release: product code,
    benchmarks and tests use the public API (the exception above is exact)."""
    private = {
        module: sorted(n for n in names if n.split(".")[0].startswith("dagster") and "._" in n)
        for module, names in _all_imports().items()
    }
    assert {m: n for m, n in private.items() if n} == PRIVATE_ALLOWED


def _is_domain(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "fraud_assets" and len(parts) > 1 and parts[1] in DOMAIN


@pytest.mark.parametrize("package", DOMAIN)
def test_domain_package_never_imports_dagster(package: str) -> None:
    """Through any chain of first-party imports, a domain module reaches no Dagster module and
    no module of the Dagster layer."""
    graph, imports = _graph(), _all_imports()
    modules = [m for m in graph if _package(m) == f"fraud_assets.{package}"]
    assert modules, f"no modules found for fraud_assets.{package}"
    offending = {}
    for module in modules:
        seen, todo = {module}, [module]
        while todo:
            current = todo.pop()
            dagster = sorted(n for n in imports[current] if n.split(".")[0].startswith("dagster"))
            layer = sorted(n for n in graph[current] if n.startswith(DAGSTER_LAYER))
            if dagster or layer:
                offending[current] = dagster + layer
            for child in graph[current] - seen:
                seen.add(child)
                todo.append(child)
    assert offending == {}


def test_domain_check_sees_dagster_imports() -> None:
    """The check above would notice: the Dagster layer does import Dagster."""
    imports = _all_imports()
    assert "dagster" in imports["fraud_assets.defs.ingest"]
    assert not _is_domain("fraud_assets.defs.ingest") and _is_domain("fraud_assets.lake.store")
