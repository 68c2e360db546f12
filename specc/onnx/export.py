"""A loaded model with its weights as an ONNX model: the graph's inputs and outputs under the spec's names,
a dynamic batch axis, the weights as initializers. Sub-models and wrappers are inlined: every call of a
layer becomes its operators (ops.OPS), calls of one layer sharing its initializers. Masks (Embedding with
mask_zero, Masking) become boolean values read by the layers that use them (ops.MASK_READERS); a masked
input reaching any other layer that reads masks is refused with an ExportError naming it."""
from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Optional, Union

import numpy as np
import onnx
from onnx import helper

from ..graph import Graph
from ..graph.nodes import GraphLayer, LayerCall, ModelCall, WrapperCall
from ..layers import Layer, Shape
from ..layers.recurrent import Recurrent
from .builder import GraphBuilder
from .errors import ExportError
from .ops import MASK_MAKERS, MASK_READERS, OPS, WRAPPERS, Call

OPSET = 17
BATCH = "batch"  # the name of the dynamic batch axis


def export_onnx(model, path: Union[str, Path]) -> onnx.ModelProto:
    """Write the model (a loaded specc.Model, its weights in place) to `path` as ONNX; returns it too.
    Raises ExportError naming a layer type (or a setting) that has no ONNX form."""
    proto = to_onnx(model.graph, model.params)
    proto.doc_string = f"specc model '{model.name}'"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return proto


def to_onnx(graph: Graph, params) -> onnx.ModelProto:
    g = GraphBuilder()
    for name in [*graph.inputs, *graph.outputs]:
        g.fresh(name)  # reserved: the inputs and outputs keep the spec's names
    values = emit_graph(g, graph, params, list(graph.inputs), scope="")
    outputs = []
    for name in graph.outputs:  # the outputs under the spec's names too
        g.nodes.append(helper.make_node("Identity", [values[name]], [name], name=g.fresh(f"output/{name}")))
        outputs.append(value_info(name, "float32", graph.shapes[name]))
    inputs = [value_info(name, graph.input_dtypes[name], shape) for name, shape in graph.inputs.items()]
    proto = helper.make_model(
        helper.make_graph(g.nodes, graph.name, inputs, outputs, g.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="specc",
        producer_version=importlib.metadata.version("specc"))
    helper.set_model_props(proto, {"specc.spec_name": graph.name,
                                   "specc.version": importlib.metadata.version("specc"),
                                   "specc.input_dtypes": json.dumps(graph.input_dtypes)})
    return proto


def value_info(name: str, dtype: str, shape: Shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), [BATCH, *shape])


def emit_graph(g: GraphBuilder, graph: Graph, params, inputs: list[str], scope: str) -> dict[str, str]:
    """The operators of every node of `graph` on the values `inputs`; every tensor's value name. Masks go
    from node to node as in specc's forward (Layer.compute_mask), as boolean values."""
    values = dict(zip(graph.inputs, inputs))
    masks: dict[str, str] = {}
    for node in graph.nodes:
        xs = [values[t] for t in node.inputs]
        in_masks = [masks.get(t) for t in node.inputs]
        layer = node.layer
        if any(in_masks) and not isinstance(layer, LayerCall):
            raise ExportError(f"'{layer.name}' ({layer.type_name}) takes a masked input; masks passing into a "
                              "sub-model or wrapper have no ONNX form yet")
        call = Call(xs, list(node.input_shapes), list(node.output_shapes), layer.key, masks=in_masks)
        ys = emit_call(g, layer, params, call, f"{scope}{node.outputs[0]}")
        values.update(zip(node.outputs, ys))
        if isinstance(layer, LayerCall):
            masks.update((t, m) for t, m in zip(node.outputs, output_masks(g, layer, call)) if m is not None)
    return values


def output_masks(g: GraphBuilder, layer: LayerCall, call: Call) -> list[Optional[str]]:
    """The masks of a layer call's outputs, as specc computes them: made (Embedding with mask_zero,
    Masking), or the first input's passed on by a layer that supports masking, or none."""
    config = layer.config
    if config.makes_masks():
        return [MASK_MAKERS[layer.type_name](g, config, call)]
    if call.mask is None or not config.supports_masking:
        return []
    if type(config).compute_mask is Layer.compute_mask:  # the first input's mask, passed on
        return [call.mask]
    if isinstance(config, Recurrent):  # a returned sequence keeps its mask; the states have none
        return [call.mask] if config.return_sequences else []
    if layer.type_name in MASK_READERS:  # consumed
        return []
    raise ExportError(f"layer '{layer.name}' ({layer.type_name}) on a masked input has no ONNX form yet")


def emit_call(g: GraphBuilder, layer: GraphLayer, params, call: Call, scope: str) -> list[str]:
    """One call of a layer, sub-model or wrapper on the values call.inputs; the names of its outputs."""
    if isinstance(layer, ModelCall):
        graph = layer.graph
        values = emit_graph(g, graph, params, call.inputs, f"{scope}/")
        return [values[name] for name in graph.outputs]
    g.scope = scope
    if isinstance(layer, WrapperCall):
        around, inner = WRAPPERS.get(type(layer.config).__name__), layer.inner
        if around is None or inner is None:
            raise ExportError(f"layer '{layer.name}' is a {layer.type_name}, which has no ONNX form yet")
        return [around(g, layer.config, call, lambda ys, shapes, shape: emit_call(
            g, inner, params, Call(ys, shapes, [shape], inner.key), f"{scope}/inner")[0])]
    assert isinstance(layer, LayerCall)
    function = OPS.get(layer.type_name)
    if function is None:
        raise ExportError(f"layer '{layer.name}' is a {layer.type_name}, which has no ONNX form yet")
    if call.mask is not None and layer.config.reads_masks and layer.type_name not in MASK_READERS:
        raise ExportError(f"layer '{layer.name}' ({layer.type_name}) reads the mask of its input; that has no ONNX "
                          "form yet")
    call.weights = params.weights(layer)
    try:
        ys = function(g, layer.config, call)
    except ExportError as e:
        raise ExportError(f"layer '{layer.name}': {e.message}") from None
    return [ys] if isinstance(ys, str) else ys
