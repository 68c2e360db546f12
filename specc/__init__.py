"""specc: a declarative model spec (YAML or JSON) compiled into a trained neural network.

Its names are imported on first use, so the `specc` command starts (and answers Ctrl-C) before numpy and
pydantic are loaded."""
__all__ = ["load", "Model", "SpecError", "Problem"]


def __getattr__(name: str):
    if name in ("load", "Model"):
        from . import model
        return getattr(model, name)
    if name in ("SpecError", "Problem"):
        from . import errors
        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
