"""The layout rules of docs/architecture.md, checked on the source: no import cycles between
modules, packages import only lower layers (and no experiment or development tool), no public
function or method has more than eight parameters (options objects carry the rest), and no module
or function grows past its length limit (an explicit allow-list of the current exceptions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("advseg_sdk", "advseg_train", "advseg_eval", "advseg_export", "advseg_bench")
MAX_PARAMETERS = 8


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (lazy ones too), except under ``if TYPE_CHECKING``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets = subs or [base]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_no_import_cycles_between_modules():
    assert _cycles(_import_graph()) == []


#: Each package may import only packages on a lower layer (docs/architecture.md).
LAYERS = {"advseg_sdk": 0, "advseg_train": 1, "advseg_export": 2, "advseg_eval": 3, "advseg_bench": 3}


def test_packages_import_only_lower_layers():
    graph = _import_graph()
    upward = sorted(
        (m, t)
        for m, ts in graph.items()
        for t in ts
        if m.split(".")[0] != t.split(".")[0] and LAYERS[t.split(".")[0]] >= LAYERS[m.split(".")[0]]
    )
    assert upward == []


def _public_functions() -> list[tuple[str, str, int]]:
    out = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    not item.name.startswith("_") or item.name == "__init__"
                ):
                    out.append((f"{name}.{node.name}.{item.name}", str(path), _count(item) - 1))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                out.append((f"{name}.{node.name}", str(path), _count(node)))
    return out


def _count(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    return len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)


@pytest.mark.parametrize("limit", [MAX_PARAMETERS])
def test_public_signatures_are_short(limit):
    long = sorted((n, count) for n, _, count in _public_functions() if count > limit)
    assert long == []


#: Code that is not product code: experiments and development tools, outside the installed packages.
NOT_PRODUCT = ("experiments", "scripts")


def test_product_packages_import_no_experiment_or_tool():
    """The benchmark (and every other package) measures and ships; experiments such as the
    paper's Table 1 and development tools such as the GPU driver use them, never the other way."""
    bad = sorted(
        (name, node.module if isinstance(node, ast.ImportFrom) else ", ".join(a.name for a in node.names))
        for name, path in _modules().items()
        for node in _imports(ast.parse(path.read_text()))
        if any(
            (t or "").split(".")[0] in NOT_PRODUCT
            for t in ([node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
            + ([a.name for a in node.names] if isinstance(node, ast.Import) else [])
        )
    )
    assert bad == []


def _vocabularies() -> dict[tuple[str, ...], str]:
    from advseg_sdk import vocab

    return {tuple(getattr(vocab, n)): n for n in vocab.__all__}


def test_vocabularies_are_not_restated():
    """Precisions and sketch methods come from ``advseg_sdk.vocab``: no other product module (nor
    the experiments or the GPU driver) spells one of its tuples out again as a literal."""
    vocab = _vocabularies()
    files = [
        *_modules().values(),
        *sorted((ROOT / "experiments").rglob("*.py")),
        *sorted((ROOT / "scripts").rglob("*.py")),
    ]
    copies = sorted(
        f"{_rel(path)}:{node.lineno}: {vocab[values]}"
        for path in files
        if path.name != "vocab.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.Tuple, ast.List))
        and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts)
        and (values := tuple(e.value for e in node.elts)) in vocab
    )
    assert copies == []


MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

#: Product modules over MAX_MODULE_LINES, with their length when the limit came in. The list can
#: only shrink: a listed module may not grow past its length here, and one that fits the limit
#: again must leave the list.
LONG_MODULES = {
    "advseg_sdk/bundle.py": 773,  # manifest schema checks + reading + writing (another engineer's file)
    "advseg_train/models.py": 606,  # GANModel with both schemes (another engineer's file)
}

#: Functions and methods over MAX_FUNCTION_LINES (lines from ``def`` to its last line), likewise.
LONG_FUNCTIONS = {
    "advseg_sdk/serve/app.py::create_app": 99,  # routes as closures (another engineer's file)
    "advseg_eval/colour.py::evaluate_colour": 124,  # (another engineer's file)
    "advseg_eval/score.py::score_folders": 92,  # (another engineer's file)
    "advseg_bench/plan.py::make_plan": 106,  # the benchmark matrix in one pass: not split yet
    "advseg_bench/scale.py::run_scale": 100,  # the scaling sweep: not split yet
}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _function_lengths() -> dict[str, int]:
    """``module path::Class.function`` -> lines, for every function and method (nested ones too)."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, where: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out[f"{where}::{prefix}{child.name}"] = (child.end_lineno or child.lineno) - child.lineno + 1
                visit(child, where, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, where, f"{prefix}{child.name}.")
            else:
                visit(child, where, prefix)

    for path in _modules().values():
        visit(ast.parse(path.read_text()), _rel(path), "")
    return out


def _ratchet(sizes: dict[str, int], allowed: dict[str, int], limit: int) -> list[str]:
    problems = [f"{k}: {n} lines > {limit}" for k, n in sorted(sizes.items()) if n > limit and k not in allowed]
    for k, was in sorted(allowed.items()):
        now = sizes.get(k)
        if now is None or now <= limit:
            problems.append(f"{k}: {now} lines now fits (or is gone): remove it from the allow-list")
        elif now > was:
            problems.append(f"{k}: grew from {was} to {now} lines (an allow-listed exception may only shrink)")
    return problems


def test_no_module_is_too_long():
    sizes = {_rel(p): len(p.read_text().splitlines()) for p in _modules().values()}
    assert _ratchet(sizes, LONG_MODULES, MAX_MODULE_LINES) == []


def test_no_function_is_too_long():
    assert _ratchet(_function_lengths(), LONG_FUNCTIONS, MAX_FUNCTION_LINES) == []
