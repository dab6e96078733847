"""One arrow through the house: every import in the package, function-level ones included, points down the order
errors/runs -> attention, data -> models -> train, eval -> report -> pipeline -> commands -> cli."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "expspan_cli"
# Stages in order; a module may import its own folder and the stages before its own, never a sibling stage or a
# later one. The foundation's modules (errors, run directories, option parsing, ...) may import each other.
ORDER = [
    {"errors", "runs", "options", "config", "hub", "progress"},
    {"attention", "data"},
    {"models"},
    {"train", "eval"},
    {"report"},
    {"pipeline"},
    {"commands"},
    {"cli"},
    {"clidoc"},  # the README's CLI reference, generated from the app
]


def _imports(path: Path, root: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in `path`, wherever it is written."""
    package = root.name
    parent = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(parent[:len(parent) - node.level + 1] + ([node.module] if node.module else []))
            # `from pkg import stage` imports the stage; `from pkg import __version__`, the package itself
            names = [f"{base}.{a.name}" if (root / a.name).is_dir() or (root / f"{a.name}.py").is_file() else base
                     for a in node.names] if base == package else [base]
            out += [(node.lineno, name) for name in names]
    return out


def violations(root: Path, order: list[set[str]]) -> list[str]:
    """`file:line imports module` for each import against `order`, and each module no stage holds."""
    package = root.name
    rank = {name: i for i, names in enumerate(order) for name in names}
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module == package:
            continue  # the package itself: it registers the attention variants, above every stage
        stage = module.split(".")[1]
        if stage not in rank:
            found.append(f"{path.relative_to(root.parent)}: {stage} is in no stage of the order")
            continue
        for line, target in _imports(path, root, module):
            if not target.startswith(package + "."):
                continue
            other = target.split(".")[1]
            if other == stage or (rank.get(other) == rank[stage] == 0):
                continue
            if other not in rank or rank[other] >= rank[stage]:
                found.append(f"{path.relative_to(root.parent)}:{line} imports {target}")
    return found


def test_the_package_imports_only_down_the_arrow():
    assert violations(PACKAGE, ORDER) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_a_backward_import_is_found_even_inside_a_function(tmp_path):
    pkg = _tree(tmp_path, {
        "__init__.py": "", "errors.py": "", "report/__init__.py": "",
        "report/tables.py": "from pkg.errors import E\n\ndef f():\n    from pkg.pipeline.plan import build\n",
        "pipeline/__init__.py": "", "pipeline/plan.py": "from ..report import tables\n",
        "eval/__init__.py": "from pkg import train\n", "train/__init__.py": "",
        "extra.py": "",
        "cli.py": "from pkg import __version__\n",
    })
    order = [{"errors"}, {"train", "eval"}, {"report"}, {"pipeline"}, {"cli"}]
    assert violations(pkg, order) == [
        "pkg/eval/__init__.py:1 imports pkg.train",  # a sibling stage
        "pkg/extra.py: extra is in no stage of the order",
        "pkg/report/tables.py:4 imports pkg.pipeline.plan",  # a later stage, in a function
    ]


def test_every_stage_of_the_order_exists():
    present = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    assert set().union(*ORDER) <= present


def _graph(root: Path) -> dict[str, set[str]]:
    """module -> the package modules it imports (a name resolves to the longest module it starts with)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[module] = [t for _, t in _imports(path, root, module)]

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    return {m: {r for t in targets if (r := resolve(t)) not in (None, m, root.name)} for m, targets in modules.items()}


def cycles(root: Path) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop."""
    graph, found = _graph(root), []
    reach: dict[str, set[str]] = {}
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo += graph.get(node, ())
        reach[start] = seen
    for module in sorted(graph):
        group = sorted(m for m in reach[module] if module in reach[m])
        if group and group not in found and group[0] == min(group + [module]):
            found.append(group)
    return found


def test_no_two_modules_import_each_other():
    assert cycles(PACKAGE) == []


def test_a_circle_between_two_modules_is_found(tmp_path):
    pkg = _tree(tmp_path, {"__init__.py": "", "pipeline/__init__.py": "", "pipeline/spec.py": "import pkg.pipeline.data\n",
                           "pipeline/data.py": "def f():\n    from pkg.pipeline.spec import DataSpec\n"})
    assert cycles(pkg) == [["pkg.pipeline.data", "pkg.pipeline.spec"]]


def test_registries_name_only_what_their_functions_take():
    """Recipe fields are declared in the registries, not read from signatures: each must still be an argument."""
    import inspect

    from expspan_cli.attention.bench import BENCH_OPTIONS, bench_attention
    from expspan_cli.eval import harness, pg19, recall
    from expspan_cli.eval.kinds import EVAL_KINDS
    from expspan_cli.eval.ruler import run as ruler

    functions = {"pg19": pg19.evaluate_pg19, "ruler": ruler.evaluate_ruler, "recall": recall.evaluate_recall,
                 "harness": harness.evaluate_harness}
    assert set(EVAL_KINDS) == set(functions)
    for name, kind in EVAL_KINDS.items():
        assert set(kind.options) <= set(inspect.signature(functions[name]).parameters), name
    assert set(BENCH_OPTIONS) == set(inspect.signature(bench_attention).parameters) - {"progress"}


def test_every_attention_variant_is_complete():
    """A variant is its parameters, its fast path and its transformers name: none can be added without the others."""
    from expspan_cli.attention.dispatch import KERNELS
    from expspan_cli.attention.hf import IMPLEMENTATIONS
    from expspan_cli.attention.params import PARAMS, VARIANTS

    assert set(VARIANTS) == set(PARAMS) == set(KERNELS) == set(IMPLEMENTATIONS)
