"""The package's layers import downward (DESIGN.md): no import cycle, every module sits in a layer and imports
only from its own layer or lower ones, and data, networks, ops, losses, config and checkpoint import nothing above
them, not even inside a function."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOW = ("gan.data", "gan.networks", "gan.ops", "losses", "gan.config", "gan.checkpoint")
LOW_OK = LOW + ("gan.errors", "gan.video_io", "gan.cli_utils", "gan.watermark", "gan.watermark_ecc", "gan.weights",
                "gan.limits", "gan.writes", "gan.numpy_pickle", "gan.precision")
# The layers, lowest first. A module imports only from its own row or a row above it in this list.
LAYERS = [
    ("gan.errors", "gan.numpy_pickle", "gan.limits", "gan.writes", "gan.watermark", "gan.watermark_ecc",
     "gan.watermark_weights", "gan.video_io", "gan.cli_utils", "gan.threads", "gan.precision"),      # plain helpers
    ("gan.weights",),                                                # pretrained networks: registry, cache
    ("gan.config_auto", "gan.config_sizes", "gan.config", "gan.checkpoint", "gan.ops"),
    ("gan.trained_nets",),                                           # reelgan's own small networks: shipped, cached
    ("gan.data",),
    ("gan.networks", "gan.conditioning"),                            # generators, discriminators, encoders
    ("losses",),                                                     # gradient logic over those networks
    ("gan.labels",),                                                 # object boxes and their file formats
    ("gan.sampling", "gan.hub", "gan.export", "gan.onnx_export", "gan.projector", "gan.watermark_cli",
     "gan.weights_cli"),
    ("gan.clip_sources",),                                           # clips from a checkpoint, videos or a dataset
    ("gan.metrics", "gan.analysis"),                                 # distances; what is in a clip (apart)
    ("gan.trained_nets_cli",),                                       # trains the networks of both
    ("gan.training",),                                               # the loop: setup, step, hooks, modes
    ("gan.studio",),                                                 # the browser app over sampling and the loop
]


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


def layer(module):
    for i, row in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in row):
            return i
    return None


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def folder_of(module):
    """The folder a module belongs to: gan.sampling.render -> gan.sampling; a module directly in gan/ is its own."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "gan" else parts[0]


def folder_graph(graph):
    out = {}
    for a, bs in graph.items():
        out.setdefault(folder_of(a), set()).update(folder_of(b) for b in bs if folder_of(b) != folder_of(a))
    return out


def test_no_folder_level_import_cycles():
    # gan.sampling -> gan.labels -> gan.sampling would be a loop between two places even with no module-level cycle.
    assert cycles(folder_graph(import_graph())) == []


def test_analysis_and_metrics_are_apart():
    # Peers over the shared clip sources and trained-network store below them: neither imports the other.
    graph = import_graph()
    assert [(a, b) for a, bs in graph.items() for b in bs
            if {folder_of(a), folder_of(b)} == {"gan.metrics", "gan.analysis"}] == []


def test_folder_cycles_are_found():
    graph = {"gan.a.x": {"gan.b.y"}, "gan.b.z": {"gan.a.w"}, "gan.a.w": set(), "gan.b.y": set()}
    assert cycles(graph) == [] and sorted(map(sorted, cycles(folder_graph(graph)))) == [["gan.a", "gan.b"]]


def test_cycles_are_found():
    # The check itself: a two-module loop and a three-module loop in a made-up graph.
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(map(sorted, cycles(graph))) == [["a", "b"], ["c", "d", "e"]]


def test_every_import_goes_to_the_same_layer_or_below():
    graph = {m: bs for m, bs in import_graph().items() if m != "gan"}    # the package's own __init__ is empty
    assert [m for m in graph if layer(m) is None] == []                # a new top-level module needs a row
    uphill = [(a, b) for a, bs in graph.items() for b in bs if layer(b) > layer(a)]
    assert uphill == []


def test_low_layers_import_nothing_above_them():
    graph = import_graph()
    uphill = [(a, b) for a, bs in graph.items() for b in bs if a.startswith(LOW) and not b.startswith(LOW_OK)]
    assert uphill == []
    assert graph["gan.writes"] <= {"gan.errors"}                      # a leaf
    assert graph["gan.checkpoint"] <= {"gan.errors", "gan.writes"}    # a leaf but for writes' held stop signals


def test_only_the_commands_and_the_studio_import_the_loop():
    graph = import_graph()
    assert [a for a, bs in graph.items() for b in bs
            if b.startswith("gan.training") and not a.startswith(("gan.training", "gan.studio"))] == []
