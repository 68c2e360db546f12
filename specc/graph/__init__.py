"""From a validated spec to a compiled graph of layers and nodes with every shape known."""
from .compile import compile_spec, keras_name
from .nodes import Graph, GraphLayer, Node

__all__ = ["compile_spec", "keras_name", "Graph", "GraphLayer", "Node"]
