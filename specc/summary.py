"""The `summary` table: one row per input and per node, shapes, parameters, connections; a node with several
outputs gets a row more for each output after its first, each shape named by its tensor (`lstm.1`)."""
from __future__ import annotations

from .graph import Graph
from .layers import show_shape


def summary_table(graph: Graph) -> str:
    rows = [("Layer (type)", "Output Shape", "Param #", "Connected to")]
    for name, shape in graph.inputs.items():
        rows.append((f"{name} (Input)", show_shape(shape), "0", ""))
    for node in graph.nodes:
        layer = node.layer
        entry = node.outputs[0].partition(".")[0]
        label = f"{entry} ({layer.type_name})"
        if entry != layer.name:
            label = f"{entry} ({layer.name}: {layer.type_name})"
        shared = len(layer.nodes) > 1
        if shared:
            label += f" node {node.index}"
        params = f"{layer.count_params():,}" if node.index == 0 else "shared"
        shapes = [show_shape(shape) if len(node.outputs) == 1 else f"{tensor}: {show_shape(shape)}"
                  for tensor, shape in zip(node.outputs, node.output_shapes)]
        rows.append((label, shapes[0], params, ", ".join(node.inputs)))
        rows += [("", shape, "", "") for shape in shapes[1:]]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    total, trainable = graph.count_params(), graph.count_params(trainable=True)
    out = [f'Model: "{graph.name}"', rule, line(rows[0]), rule, *map(line, rows[1:]), rule,
           f"Total params: {total:,}", f"Trainable params: {trainable:,}",
           f"Non-trainable params: {total - trainable:,}", f"Outputs: {', '.join(graph.outputs)}"]
    return "\n".join(out)
