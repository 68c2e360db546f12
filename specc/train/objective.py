"""What training minimizes and reports, per output: a loss, its weight, named metrics; and the names of
what a run logs each epoch, as Keras names them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..graph import Graph
from .losses import LOSSES, Loss
from .metrics import METRICS, MetricFunction


def log_name(output: str, what: str, outputs: list[str]) -> str:
    """Keras' history names: `loss`, `accuracy` for one output; `out_loss`, `out_accuracy` for several."""
    return what if len(outputs) == 1 else f"{output}_{what}"


def metric_names(compile_spec, outputs: list[str]) -> dict[str, list[str]]:
    """Each output's metrics by their own names (`acc` is `accuracy`)."""
    wanted = compile_spec.metrics
    return {o: [METRICS.canonical(n) or n for n in (wanted.get(o, []) if isinstance(wanted, dict) else wanted)]
            for o in outputs}


def history_names(outputs: list[str], metrics: dict[str, list[str]], validation: Optional[bool],
                  extra: tuple[str, ...] = ()) -> list[str]:
    """Every name a run logs per epoch: losses, metrics, their `val_` twins (unless there is surely no
    validation data), then what callbacks add (`learning_rate`)."""
    logged = ["loss"] + ([f"{o}_loss" for o in outputs] if len(outputs) > 1 else [])
    for o in outputs:
        for metric in metrics[o]:
            name = log_name(o, metric, outputs)
            if name not in logged:
                logged.append(name)
    if validation is not False:
        logged += [f"val_{name}" for name in logged]
    return logged + list(extra)


@dataclass
class Objective:
    losses: dict[str, Loss]
    loss_names: dict[str, str]
    weights: dict[str, float]
    metrics: dict[str, dict[str, MetricFunction]]

    @classmethod
    def from_compile(cls, compile_spec, graph: Graph) -> "Objective":
        outputs = graph.outputs
        loss = compile_spec.loss
        names = {o: loss[o] if isinstance(loss, dict) else loss for o in outputs}
        losses = {o: LOSSES[name] for o, name in names.items()}
        given = compile_spec.loss_weights
        if given is None:
            weights = {o: 1.0 for o in outputs}
        elif isinstance(given, list):
            weights = dict(zip(outputs, given))
        else:
            weights = {o: given.get(o, 1.0) for o in outputs}
        metrics = {o: {name: METRICS[name](losses[o], graph.shapes[o]) for name in wanted}
                   for o, wanted in metric_names(compile_spec, outputs).items()}
        return cls(losses, names, weights, metrics)
