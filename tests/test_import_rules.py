"""The import rules that keep service/ layered, batching/ framework-free and benchmarks/ acyclic.

Checked by parsing source, never by importing it (no TensorFlow start-up, nothing a module does at import time):
every `import`/`from ... import` anywhere in a file counts, module-level or inside a function, under
`if TYPE_CHECKING:` or `try:`, plus `importlib.import_module("literal")`. Relative imports are resolved against the
importing module's package, and `from package import name` points at the submodule `package.name` where one exists.

Layers of service/, upper to lower (a module imports its own layer or lower ones only):

    7 process        service.__main__, service.server, service.process.*
    6 adapters       service.adapters.*  (grpc_api/, rest_api/, kserve_api/ never import each other, nor models/runtime)
    5 dataplane      service.dataplane.*
    4 observability  service.observability.*
    3 models         service.models.*
    2 runtime        service.runtime.*
    1 tensors        service.tensors.*
    0 errors         service.errors
      batching       below every service layer: anything may import it, it imports no service code
"""

from __future__ import annotations

import ast
from collections import defaultdict, deque
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Iterable, Iterator

REPO = Path(__file__).resolve().parents[1]
SCANNED_PACKAGES = ("service", "batching", "benchmarks")

LAYERS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    # (layer, rank, module prefixes); `service` itself (its __init__) sits with the process that assembles it all.
    ("process", 7, ("service.__main__", "service.server", "service.process")),
    ("adapters", 6, ("service.adapters",)),
    ("dataplane", 5, ("service.dataplane",)),
    ("observability", 4, ("service.observability",)),
    ("models", 3, ("service.models",)),
    ("runtime", 2, ("service.runtime",)),
    ("tensors", 1, ("service.tensors",)),
    ("errors", 0, ("service.errors",)),
    ("batching", -1, ("batching",)),
)
TOP_PACKAGE_LAYER = ("process", 7)  # `service/__init__.py`

BATCHING_MUST_NOT_IMPORT = frozenset({"grpc", "tensorflow", "tensorflow_serving", "tritonclient", "aiohttp", "service"})


# ---------------------------------------------------------------------------------------------------------------
# The shared helper: every import of every scanned module, resolved to absolute module names.


@dataclass(frozen=True)
class Import:
    importer: str  # dotted name of the importing module
    file: str  # its file, relative to the scanned root
    line: int
    statement: str  # the import as written (or the import_module call)
    target: str  # absolute dotted name, the most specific module of the scanned packages where one matches
    context: str  # "module level", "in def f", "under TYPE_CHECKING", ...

    def __str__(self) -> str:
        where = "" if self.context == "module level" else f" [{self.context}]"
        return f"{self.file}:{self.line}: {self.statement} → {self.target}{where}"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _source_files(root: Path, packages: Iterable[str]) -> Iterator[Path]:
    for package in packages:
        yield from sorted(p for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts)


class _ImportCollector(ast.NodeVisitor):
    """Collects every import in one module, with where it sits (module level, a function, TYPE_CHECKING)."""

    def __init__(self, module: str, file: str, is_package: bool, known: frozenset[str]) -> None:
        self.module, self.file, self.known = module, file, known
        self.package = module if is_package else module.rpartition(".")[0]
        self.context: list[str] = []
        self.imports: list[Import] = []
        self.unresolved: list[str] = []

    # -- where we are

    def _visit_scope(self, node: ast.AST, label: str) -> None:
        self.context.append(label)
        self.generic_visit(node)
        self.context.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_scope(node, f"in def {node.name}")

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_scope(node, f"in async def {node.name}")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_scope(node, f"in class {node.name}")

    def visit_If(self, node: ast.If) -> None:
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            self.context.append("under TYPE_CHECKING")
            for child in node.body:
                self.visit(child)
            self.context.pop()
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    # -- imports

    def _add(self, node: ast.AST, statement: str, target: str) -> None:
        context = ", ".join(self.context) or "module level"
        self.imports.append(Import(self.module, self.file, node.lineno, statement, target, context))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, f"import {alias.name}", alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".") if self.package else []
            if node.level - 1 >= len(base):  # climbs to or past the top package
                self.unresolved.append(f"{self.file}:{node.lineno}: {ast.unparse(node)}")
                return
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        names_by_target: dict[str, list[str]] = defaultdict(list)  # one Import per module a statement reaches
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            names_by_target[submodule if submodule in self.known else source].append(alias.name)
        written = "." * node.level + (node.module or "")
        for target, names in names_by_target.items():
            self._add(node, f"from {written} import {', '.join(names)}", target)

    def visit_Call(self, node: ast.Call) -> None:
        func = ast.unparse(node.func)
        if func in ("importlib.import_module", "import_module") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and not first.value.startswith("."):
                self._add(node, ast.unparse(node), first.value)
        self.generic_visit(node)


@dataclass(frozen=True)
class ImportGraph:
    modules: dict[str, Path]  # dotted name → file
    imports: tuple[Import, ...]
    unresolved: tuple[str, ...]  # relative imports that climb past the top package

    def of(self, *prefixes: str) -> Iterator[Import]:
        """Imports made by modules at or under any of `prefixes`."""
        return (i for i in self.imports if any(_under(i.importer, p) for p in prefixes))

    def edges_within(self, prefix: str) -> dict[str, list[Import]]:
        """Module → its imports of other modules under `prefix` (each resolved to a module that exists)."""
        edges: dict[str, list[Import]] = defaultdict(list)
        for imp in self.of(prefix):
            target = _existing_module(imp.target, self.modules)
            if target is not None and _under(target, prefix):
                edges[imp.importer].append(imp)
        return edges


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _existing_module(target: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `target` that is a scanned module (`a.b.name` where `name` is a class → `a.b`)."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules:
            return name
        parts.pop()
    return None


def build_import_graph(root: Path, packages: Iterable[str]) -> ImportGraph:
    files = list(_source_files(root, packages))
    modules = {_module_name(root, f): f for f in files}
    known = frozenset(modules)
    imports: list[Import] = []
    unresolved: list[str] = []
    for name, path in modules.items():
        source = path.read_text(encoding="utf-8")
        file = path.relative_to(root).as_posix()
        collector = _ImportCollector(name, file, path.name == "__init__.py", known)
        collector.visit(ast.parse(source, filename=str(path)))
        imports += collector.imports
        unresolved += collector.unresolved
    return ImportGraph(modules, tuple(imports), tuple(unresolved))


@cache
def repo_graph() -> ImportGraph:
    return build_import_graph(REPO, SCANNED_PACKAGES)


def find_cycles(edges: dict[str, list[Import]], modules: dict[str, Path]) -> list[list[Import]]:
    """One shortest cycle per strongly connected component with a cycle in it (Tarjan, then BFS), as its imports."""
    graph = {m: sorted({_existing_module(i.target, modules) for i in imps} - {None}) for m, imps in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:  # recursion depth ≤ number of modules, a few dozen
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for component in components:
        members = set(component)
        start = min(component)
        if len(component) == 1 and start not in graph.get(start, ()):
            continue
        # Shortest path start → … → start inside the component.
        previous: dict[str, str] = {}
        queue = deque([start])
        seen = {start}
        end = None
        while queue and end is None:
            v = queue.popleft()
            for w in graph.get(v, ()):
                if w == start:
                    end = v
                    break
                if w in members and w not in seen:
                    seen.add(w)
                    previous[w] = v
                    queue.append(w)
        path = [end]
        while path[-1] != start:
            path.append(previous[path[-1]])
        path.reverse()  # start … end, and end imports start
        hops = list(zip(path, path[1:] + [start]))
        cycles.append([next(i for i in edges[a] if _existing_module(i.target, modules) == b) for a, b in hops])
    return cycles


def _layer(module: str) -> tuple[str, int] | None:
    if module == "service":
        return TOP_PACKAGE_LAYER
    for name, rank, prefixes in LAYERS:
        if any(_under(module, p) for p in prefixes):
            return name, rank
    return None


def _report(rule: str, violations: list[str]) -> str:
    return f"{rule} — {len(violations)} violation(s):\n  " + "\n  ".join(violations)


# ---------------------------------------------------------------------------------------------------------------
# The helper itself, on a made-up tree: the rules below are only as good as what it sees.


def test_helper_resolves_relative_local_type_checking_and_submodule_imports(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from .a import A\n",
        "pkg/a.py": "A = 1\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/b.py": (
            "from typing import TYPE_CHECKING\n"
            "from .. import a\n"  # pkg.a, a module
            "from ..a import A\n"  # pkg.a
            "from pkg import A as B\n"  # pkg (A is no module)
            "if TYPE_CHECKING:\n"
            "    from pkg.sub import c\n"
            "def f():\n"
            "    import pkg.sub.c\n"
            "    importlib.import_module('pkg.a')\n"
        ),
        "pkg/sub/c.py": "from . import b\nfrom ...beyond import x\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = build_import_graph(tmp_path, ["pkg"])
    seen = {(i.importer, i.target, i.context) for i in graph.imports}
    assert seen >= {
        ("pkg", "pkg.a", "module level"),
        ("pkg.sub.b", "pkg.a", "module level"),
        ("pkg.sub.b", "pkg", "module level"),
        ("pkg.sub.b", "pkg.sub.c", "under TYPE_CHECKING"),
        ("pkg.sub.b", "pkg.sub.c", "in def f"),
        ("pkg.sub.c", "pkg.sub.b", "module level"),
    }, seen
    assert ("pkg.sub.b", "pkg.a", "in def f") in seen, "importlib.import_module('literal') counts"
    assert len(graph.unresolved) == 1 and "beyond" in graph.unresolved[0]
    cycles = find_cycles(graph.edges_within("pkg"), graph.modules)
    assert [[i.importer for i in cycle] for cycle in cycles] == [["pkg.sub.b", "pkg.sub.c"]]
    assert str(cycles[0][0]).startswith("pkg/sub/b.py:"), str(cycles[0][0])


def test_scan_sees_the_code() -> None:
    graph = repo_graph()
    for package in SCANNED_PACKAGES:
        assert package in graph.modules, f"{package}/__init__.py not found under {REPO}"
    assert "service.dataplane.dataplane" in graph.modules
    assert any(i.importer == "service.server" and i.target.startswith("service.") for i in graph.imports)
    assert not graph.unresolved, "relative imports past the top package:\n  " + "\n  ".join(graph.unresolved)


def test_every_service_module_has_a_layer() -> None:
    unplaced = [
        str(p.relative_to(REPO)) for m, p in repo_graph().modules.items() if _under(m, "service") and not _layer(m)
    ]
    assert not unplaced, _report("service modules outside every layer (add them to LAYERS)", unplaced)


# ---------------------------------------------------------------------------------------------------------------
# The rules.


def test_batching_imports_no_framework_and_no_service() -> None:
    violations = [str(i) for i in repo_graph().of("batching") if i.target.split(".")[0] in BATCHING_MUST_NOT_IMPORT]
    assert not violations, _report(
        f"batching/ is pure asyncio: it imports none of {sorted(BATCHING_MUST_NOT_IMPORT)}", violations
    )


def _protocol_adapters() -> list[str]:
    return sorted(
        f"service.adapters.{p.name}" for p in (REPO / "service" / "adapters").iterdir() if (p / "__init__.py").is_file()
    )


def test_protocol_adapters_never_import_each_other() -> None:
    adapters = _protocol_adapters()
    assert {"service.adapters.grpc_api", "service.adapters.rest_api", "service.adapters.kserve_api"} <= set(adapters)
    graph = repo_graph()
    violations = [
        f"{i}  ({mine.rpartition('.')[2]} imports {other.rpartition('.')[2]})"
        for mine in adapters
        for i in graph.of(mine)
        for other in adapters
        if other != mine and _under(i.target, other)
    ]
    assert not violations, _report(
        "protocol adapters never import each other (shared code goes to service/adapters/*.py or lower)", violations
    )


def test_adapters_go_through_the_data_plane() -> None:
    violations = [
        str(i)
        for i in repo_graph().of("service.adapters")
        if _under(i.target, "service.models") or _under(i.target, "service.runtime")
    ]
    assert not violations, _report(
        "adapters never import service.models or service.runtime (they go through service.dataplane)", violations
    )


def test_no_module_imports_an_upper_layer() -> None:
    violations = []
    for i in repo_graph().of("service", "batching"):
        source, target = _layer(i.importer), _layer(i.target)
        if source is None or target is None:
            continue  # unplaced service modules fail test_every_service_module_has_a_layer; third-party is free
        if target[1] > source[1]:
            violations.append(f"{i}  ({source[0]} {source[1]} imports {target[0]} {target[1]})")
    assert not violations, _report("a module imports its own layer or lower ones only", violations)


def _cycle_report(cycles: list[list[Import]]) -> list[str]:
    return [
        " → ".join([c[0].importer] + [_existing_module(i.target, repo_graph().modules) or i.target for i in c])
        + "".join(f"\n      {i}" for i in c)
        for c in cycles
    ]


def test_no_import_cycles_in_service() -> None:
    graph = repo_graph()
    cycles = find_cycles(graph.edges_within("service"), graph.modules)
    assert not cycles, _report(
        "no import cycles among service/ modules (function-local imports count)", _cycle_report(cycles)
    )


def test_no_import_cycles_in_benchmarks() -> None:
    graph = repo_graph()
    cycles = find_cycles(graph.edges_within("benchmarks"), graph.modules)
    assert not cycles, _report(
        "no import cycles among benchmarks/ modules (function-local imports count)", _cycle_report(cycles)
    )
