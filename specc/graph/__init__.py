"""From a validated spec to a compiled graph of layers and nodes with every shape known, and running it."""
from .compile import compile_spec, keras_name
from .graph import Graph
from .nodes import CallError, GraphLayer, LayerCall, ModelCall, Node, WrapperCall, wrapped_by

__all__ = ["compile_spec", "keras_name", "Graph", "CallError", "GraphLayer", "LayerCall", "ModelCall", "Node",
           "WrapperCall", "wrapped_by"]
