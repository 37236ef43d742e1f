"""The package's layers import downward (DESIGN.md): no import cycle, and data, networks, ops, losses, config
and checkpoint import nothing above them, not even inside a function."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOW = ("gan.data", "gan.networks", "gan.ops", "losses", "gan.config", "gan.checkpoint")
LOW_OK = LOW + ("gan.errors", "gan.video_io", "gan.cli_utils", "gan.watermark")
KNOWN_CYCLES = [{"gan.metrics.classifier", "gan.metrics.classifier_train"},      # to untie (issue 19)
                {"gan.metrics.offline", "gan.metrics.offline_train"}]


def import_graph():
    files = [p for d in ("gan", "losses") for p in (ROOT / d).rglob("*.py")]
    mods = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p for p in files}

    def resolve(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None
    graph = {}
    for mod, path in mods.items():
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):            # every import, top level or in a function
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            out |= {t for t in map(resolve, names) if t and t != mod and not mod.startswith(t + ".")}
        graph[mod] = out
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while not comp or v not in comp:
                comp.add(stack.pop())
            on.difference_update(comp)
            if len(comp) > 1:
                found.append(comp)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert [c for c in cycles(import_graph()) if c not in KNOWN_CYCLES] == []


def test_low_layers_import_nothing_above_them():
    graph = import_graph()
    uphill = [(a, b) for a, bs in graph.items() for b in bs if a.startswith(LOW) and not b.startswith(LOW_OK)]
    assert uphill == []
    assert graph["gan.checkpoint"] <= {"gan.errors"}                  # a leaf


def test_only_the_commands_import_the_loop():
    graph = import_graph()
    assert [a for a, bs in graph.items() for b in bs
            if b.startswith("gan.training") and not a.startswith("gan.training")] == []
