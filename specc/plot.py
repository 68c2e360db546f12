"""`specc plot`: a compiled graph as Graphviz DOT, drawn like Keras' `plot_model(show_shapes=True)`.

Pure Python: the DOT text is built here; turning it into SVG or PNG is the `dot` program's job (see
`render`), and without it the DOT itself is the product.

What the drawing shows:
- every model input as a box with its shape (and dtype when not float32);
- every layer as ONE box, however often it is called: its name, type and, per node, input -> output shape;
  a shared layer (several nodes) gets one edge from each caller, labelled with the node it makes;
  a layer with several outputs lists each output's shape (`0: (None, 8), 1: ...`), and an edge leaving it
  says which output it carries;
- a sub-model as a cluster with its own inputs and layers, drawn once even when it is called several times;
  the callers' edges go to its inputs, and its output's edges leave from inside it;
- a TimeDistributed as a box `TimeDistributed(Dense)` when it wraps an inline layer, or as a cluster
  around the layer or model it applies to every step.
DOT ids are generated (`n1`, `cluster_2`, ...), so no name from a spec ever needs escaping in an id; every
label is a DOT HTML-like label with its text escaped.
"""
from __future__ import annotations

import html
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Optional

from .graph import Graph, GraphLayer, ModelCall, Node, WrapperCall, wrapped_by
from .layers import show_shape

INPUT_COLOR, OUTPUT_COLOR, MODEL_COLOR, WRAPPER_COLOR = "#dbe9f6", "#dff0d8", "#f7f7f7", "#fdf2e0"


def text(value) -> str:
    """Text for an HTML-like label: markup characters escaped, control characters made visible."""
    shown = "".join(c if unicodedata.category(c)[0] != "C" else
                    f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}" for c in str(value))
    return html.escape(shown, quote=True)


def _shapes(shapes: list) -> str:
    return show_shape(shapes[0]) if len(shapes) == 1 else "[" + ", ".join(map(show_shape, shapes)) + "]"


def _outputs(node: Node) -> str:
    """A node's output shape; each output's, named by its tensor (`lstm.1`), when it makes several."""
    if len(node.outputs) == 1:
        return show_shape(node.output_shapes[0])
    return ", ".join(f"{tensor.rpartition('.')[2]}: {show_shape(shape)}"
                     for tensor, shape in zip(node.outputs, node.output_shapes))


class _Plot:
    def __init__(self, graph: Graph, rankdir: str):
        self.top, self.rankdir = graph, rankdir
        self.count = 0
        self.ids: dict[object, str] = {}
        self.graphs: list[Graph] = []                  # the top graph, then each sub-model's, once each
        self.owner: dict[int, Optional[GraphLayer]] = {id(graph): None}
        self.home: dict[int, Graph] = {}               # the graph each layer or model belongs to
        self.layers: list[GraphLayer] = []             # every layer and model, once, in the order met
        self.producer: dict[tuple[int, str], Node] = {}

        def visit_graph(g: Graph, owner: Optional[GraphLayer]):
            self.graphs.append(g)
            self.owner[id(g)] = owner
            for node in g.nodes:
                for tensor in node.outputs:
                    self.producer[id(g), tensor] = node
                visit_layer(node.layer, g)

        def visit_layer(layer: GraphLayer, g: Graph):
            if any(layer is seen for seen in self.layers):
                return
            self.layers.append(layer)
            self.home[id(layer)] = g  # for a model, corrected below
            if isinstance(layer, ModelCall):
                visit_graph(layer.graph, layer)
            for child in ([] if isinstance(layer, ModelCall) else layer.children()):
                visit_layer(child, g)
        visit_graph(graph, None)

        models = [m for m in self.layers if isinstance(m, ModelCall)]
        by_key = {m.key: m for m in models}
        for model in models:  # a model belongs to the graph that defines it (its weights prefix says which)
            parent = by_key.get(model.key.rpartition("/")[0])
            self.home[id(model)] = parent.graph if parent is not None else graph
        # the layer of an inline TimeDistributed (`layer: {type: Dense}`) is drawn as part of its box
        self.collapsed = {id(wrapped_by(w)) for w in self.layers if self.inline(w)}
        self.drawn = [x for x in self.layers if id(x) not in self.collapsed]
        # where each box or cluster is drawn: inside the first TimeDistributed of its own graph that applies
        # it, else in its graph (the top level, or its model's cluster)
        self.container: dict[int, Optional[GraphLayer]] = {}
        for x in self.drawn:
            home = self.home[id(x)]
            wrapper = next((w for w in self.drawn if w is not x and self.applies(w) is x
                            and self.home[id(w)] is home), None)
            self.container[id(x)] = wrapper if wrapper is not None else self.owner[id(home)]

    def inline_layer(self, wrapper: GraphLayer) -> Optional[GraphLayer]:
        """The layer of its own a TimeDistributed applies (`layer: {type: Dense, ...}`); None if it has none."""
        inner = wrapped_by(wrapper)
        return inner if inner is not None and inner.path == wrapper.path + ("layer",) else None

    def inline(self, wrapper: GraphLayer) -> bool:
        """A TimeDistributed over a layer of its own (`layer: {type: Dense, ...}`)."""
        return self.inline_layer(wrapper) is not None

    def applies(self, wrapper: GraphLayer) -> Optional[GraphLayer]:
        """The named layer or model a TimeDistributed applies (through inline TimeDistributeds), if any."""
        while (inner := self.inline_layer(wrapper)) is not None:
            wrapper = inner
        return wrapped_by(wrapper)

    def depth(self, wrapper: GraphLayer) -> int:
        inner = self.inline_layer(wrapper)
        return 1 + (self.depth(inner) if inner is not None else 0)

    # -- ids, entry and exit points ------------------------------------------------------------------------
    def id(self, key, prefix: str = "n") -> str:
        if key not in self.ids:
            self.count += 1
            self.ids[key] = f"{prefix}{self.count}"
        return self.ids[key]

    def input_id(self, g: Graph, name: str) -> str:
        return self.id(("input", id(g), name))

    def box_id(self, layer: GraphLayer) -> str:
        return self.id(("layer", id(layer)))

    def cluster_id(self, layer: GraphLayer) -> str:
        return self.id(("cluster", id(layer)), "cluster_")

    def in_cluster(self, layer: GraphLayer) -> Optional[GraphLayer]:
        """For a TimeDistributed drawn as a cluster around the layer or model it applies: that one; else None."""
        inner = self.applies(layer) if wrapped_by(layer) is not None else None
        return inner if inner is not None and self.container.get(id(inner)) is layer else None

    def wraps_in_cluster(self, layer: GraphLayer) -> bool:
        """A TimeDistributed drawn as a cluster around the layer or model it applies."""
        return self.in_cluster(layer) is not None

    def entry(self, layer: GraphLayer, position: int) -> str:
        if isinstance(layer, ModelCall):
            return self.input_id(layer.graph, list(layer.graph.inputs)[position])
        if (inner := self.in_cluster(layer)) is not None:
            return self.entry(inner, position)
        return self.box_id(layer)

    def exit(self, layer: GraphLayer) -> str:
        if isinstance(layer, ModelCall):
            return self.source(layer.graph, layer.graph.outputs[0])
        if (inner := self.in_cluster(layer)) is not None:
            return self.exit(inner)
        return self.box_id(layer)

    def source(self, g: Graph, tensor: str) -> str:
        if tensor in g.inputs:
            return self.input_id(g, tensor)
        return self.exit(self.producer[id(g), tensor].layer)

    # -- labels --------------------------------------------------------------------------------------------
    def title(self, layer: GraphLayer, type_name: str) -> str:
        frozen = "" if layer.trainable else " <i>(frozen)</i>"
        return f"<b>{text(layer.name)}</b>: {text(type_name)}{frozen}"

    def shape_rows(self, layer: GraphLayer, columns: int = 2) -> list[str]:
        nodes = layer.nodes
        if len(nodes) == 1:
            n = nodes[0]
            return [f"<tr><td align=\"left\">input:</td><td>{text(_shapes(n.input_shapes))}</td></tr>",
                    f"<tr><td align=\"left\">output:</td><td>{text(_outputs(n))}</td></tr>"]
        return [f"<tr><td>node {n.index}</td><td>{text(_shapes(n.input_shapes))} &#8594; "
                f"{text(_outputs(n))}</td></tr>" for n in nodes]

    def table(self, header: str, rows: list[str], color: Optional[str] = None) -> str:
        fill = f' bgcolor="{color}"' if color else ""
        return (f'<<table border="0" cellborder="1" cellspacing="0" cellpadding="4"{fill}>'
                f'<tr><td colspan="2">{header}</td></tr>{"".join(rows)}</table>>')

    # -- the document --------------------------------------------------------------------------------------
    def dot(self) -> str:
        outputs = {id(self.producer[id(self.top), o].layer) for o in self.top.outputs
                   if (id(self.top), o) in self.producer}
        lines = ["digraph model {",
                 f'  graph [rankdir={self.rankdir}, fontname="Helvetica", labelloc=t, '
                 f'label=<<b>{text(self.top.name)}</b>>];',
                 '  node [shape=plain, fontname="Helvetica", fontsize=11];',
                 '  edge [fontname="Helvetica", fontsize=9];']
        children: dict[Optional[int], list] = {}
        for g in self.graphs:
            owner = self.owner[id(g)]
            for name in g.inputs:
                children.setdefault(id(owner) if owner is not None else None, []).append(("input", g, name))
        for layer in self.drawn:
            parent = self.container[id(layer)]
            children.setdefault(id(parent) if parent is not None else None, []).append(("layer", layer, None))

        def emit(parent_key: Optional[int], indent: str):
            for kind, obj, name in children.get(parent_key, []):
                if kind == "input":
                    shape = show_shape(obj.inputs[name])
                    dtype = obj.input_dtypes.get(name, "float32")
                    rows = [f"<tr><td align=\"left\">shape:</td><td>{text(shape)}"
                            f"{'' if dtype == 'float32' else ' ' + text(dtype)}</td></tr>"]
                    label = self.table(f"<b>{text(name)}</b>: Input", rows, INPUT_COLOR)
                    lines.append(f"{indent}{self.input_id(obj, name)} [label={label}];")
                    continue
                layer: GraphLayer = obj
                if isinstance(layer, ModelCall) or self.wraps_in_cluster(layer):
                    is_model = isinstance(layer, ModelCall)
                    kind_name = "Model" if is_model else " of ".join(["TimeDistributed"] * self.depth(layer))
                    header = self.title(layer, kind_name)
                    if not is_model:
                        header += " <i>(every step)</i>"
                    label = (f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="2">'
                             f'<tr><td colspan="2">{header}</td></tr>{"".join(self.shape_rows(layer))}</table>>')
                    lines.append(f"{indent}subgraph {self.cluster_id(layer)} {{")
                    style = "rounded,filled" if is_model else "rounded,filled,dashed"
                    fill = MODEL_COLOR if is_model else WRAPPER_COLOR
                    lines.append(f'{indent}  graph [label={label}, labeljust=l, fontsize=11, style="{style}", '
                                 f'fillcolor="{fill}", color="#888888"];')
                    emit(id(layer), indent + "  ")
                    lines.append(f"{indent}}}")
                    continue
                if isinstance(layer, WrapperCall) and layer.inner is not None:
                    # a TimeDistributed box: over an inline layer, or one drawn elsewhere
                    inner = layer.inner
                    wrapper_name = type(layer.config).__name__
                    type_name = (f"{wrapper_name}({inner.type_name})" if self.inline(layer)
                                 else f"{wrapper_name}({inner.name})")
                else:
                    type_name = layer.type_name
                color = OUTPUT_COLOR if id(layer) in outputs else None
                label = self.table(self.title(layer, type_name), self.shape_rows(layer), color)
                lines.append(f"{indent}{self.box_id(layer)} [label={label}];")
        emit(None, "  ")

        for g in self.graphs:
            for node in g.nodes:
                layer = node.layer
                for position, tensor in enumerate(node.inputs):
                    parts = []
                    made_by = self.producer.get((id(g), tensor))
                    if made_by is not None and len(made_by.outputs) > 1:
                        parts.append(f"output {tensor.rpartition('.')[2]}")
                    if made_by is not None and len(made_by.layer.nodes) > 1:
                        parts.append(f"from node {made_by.index}")
                    if len(layer.nodes) > 1:
                        parts.append(f"node {node.index}")
                    attrs = f' [label="{_quote(", ".join(parts))}"]' if parts else ""
                    lines.append(f"  {self.source(g, tensor)} -> {self.entry(layer, position)}{attrs};")
        for wrapper in self.drawn:  # a TimeDistributed drawn apart from the layer or model it applies
            inner = self.applies(wrapper) if wrapped_by(wrapper) is not None else None
            if inner is not None and not self.wraps_in_cluster(wrapper):
                lines.append(f"  {self.box_id(wrapper)} -> {self.entry(inner, 0)} "
                             f'[style=dashed, arrowhead=odot, label="applies to each step"];')
        lines.append("}")
        return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    """Text for a double-quoted DOT string."""
    return text(value).replace("\\", "\\\\").replace('"', '\\"')


def to_dot(graph: Graph, rankdir: str = "TB") -> str:
    """The graph as Graphviz DOT source."""
    return _Plot(graph, rankdir).dot()


class RenderError(Exception):
    """`dot` ran but did not draw: its own message."""


def find_dot() -> Optional[str]:
    return shutil.which("dot")


def render(dot_source: str, fmt: str, dot_program: str, timeout: float = 60.0) -> bytes:
    """The drawing in `fmt` (svg or png), made by Graphviz's `dot`."""
    try:
        result = subprocess.run([dot_program, f"-T{fmt}"], input=dot_source.encode("utf-8"),
                                capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RenderError(f"Graphviz's dot took more than {timeout:g} s") from None
    except OSError as e:
        raise RenderError(f"cannot run {dot_program}: {e}") from None
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
        raise RenderError(f"Graphviz's dot failed: {message}")
    return result.stdout


def format_of(path: Path) -> Optional[str]:
    return {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png"}.get(path.suffix.lower())
