"""No import circle among the project's modules: every `import` counts, those inside functions too
(an import deferred into a function to dodge a circle still is one); only `if TYPE_CHECKING:` blocks,
which never run, are left out. Importing `a.b` runs the package `a`'s `__init__` first, so it is an
edge to `a` too, except from a module inside `a` (its package is already being imported).

Also: no test module imports another test module or tests/conftest.py. What tests share lives in
recsys_models/testing.py or tests/pipeline_helpers.py, and shared fixtures in conftest.py are used
by name (pytest injects them)."""

import ast
from pathlib import Path

from tests.pipeline_helpers import REPO_ROOT

PACKAGES = ("cli", "flows", "tasks", "stages", "recsys_models", "data_contracts", "serving", "reporting")


def module_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imported_names(tree: ast.AST) -> list[str]:
    """Dotted names `tree` imports at run time (a `from a import b` names `a` and `a.b`)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # never runs
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        graph[module] = set()
        for name in imported_names(ast.parse(path.read_text())):
            parts = name.split(".")
            prefixes = {".".join(parts[:end]) for end in range(1, len(parts) + 1)}  # a, a.b, a.b.c
            graph[module] |= {
                prefix
                for prefix in prefixes
                if prefix in files and prefix != module and not module.startswith(prefix + ".")
            }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_cycle_finder_finds_a_planted_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_project_is_in_an_import_circle() -> None:
    found = cycles(import_graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(group) for group in found)


def imported_test_modules(tree: ast.AST) -> list[str]:
    """Test modules and conftest that `tree` imports (tests.test_x, tests.conftest, relative or bare), sorted."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = ("tests." if node.level else "") + (node.module or "")  # relative: inside tests/
            names += [module.rstrip(".")] + [f"{module.rstrip('.')}.{alias.name}" for alias in node.names]
    found = set()
    for name in names:
        parts = name.split(".")
        inside = parts[1:2] if parts[0] == "tests" else parts[:1]  # tests.x, or a bare x found on sys.path
        if inside and (inside[0] == "conftest" or inside[0].startswith("test_")):
            found.add(".".join(["tests", inside[0]]))
    return sorted(found)


def test_the_test_import_finder_finds_planted_imports() -> None:
    source = (
        "import tests.test_a\nfrom tests import test_b, pipeline_helpers\nfrom tests.conftest import X\n"
        "from .test_c import y\nfrom . import conftest\nimport test_d\nfrom tests.pipeline_helpers import Z\n"
        "from recsys_models.testing import low_rank_ratings\n"
    )
    assert imported_test_modules(ast.parse(source)) == [
        "tests.conftest",
        "tests.test_a",
        "tests.test_b",
        "tests.test_c",
        "tests.test_d",
    ]


def test_no_test_module_imports_another_or_conftest() -> None:
    offenders = {
        path.name: found
        for path in sorted((REPO_ROOT / "tests").glob("test_*.py"))
        if (found := imported_test_modules(ast.parse(path.read_text())))
    }
    assert not offenders, (
        "test modules import test modules or conftest (move what they share to recsys_models/testing.py, "
        f"tests/pipeline_helpers.py, or a conftest fixture): {offenders}"
    )
