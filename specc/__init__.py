"""specc: a declarative model spec (YAML or JSON) compiled into a trained neural network."""
from .errors import Problem, SpecError
from .model import Model, load

__all__ = ["load", "Model", "SpecError", "Problem"]
