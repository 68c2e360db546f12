"""What training minimizes and reports, per output: a loss, its weight, named metrics; and the names of
what a run logs each epoch, as Keras names them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..graph import Graph
from .losses import LossSettings
from .metrics import MetricSettings


def log_name(output: str, what: str, outputs: list[str]) -> str:
    """Keras' history names: `loss`, `accuracy` for one output; `out_loss`, `out_accuracy` for several."""
    return what if len(outputs) == 1 else f"{output}_{what}"


def metric_names(compile_spec, outputs: list[str]) -> dict[str, list[str]]:
    """Each output's metrics by their history columns: their `name:`, else their type (`acc` is `accuracy`)."""
    return {o: [metric.column for metric in compile_spec.metrics_of(o)] for o in outputs}


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
    losses: dict[str, LossSettings]
    weights: dict[str, float]
    metrics: dict[str, dict[str, MetricSettings]]  # per output, by history column: each as it computes there

    @property
    def loss_names(self) -> dict[str, str]:
        """Each output's loss by its registered name."""
        return {o: loss.type for o, loss in self.losses.items()}

    def upwards(self, logged: str) -> Optional[bool]:
        """Whether a larger value of a logged name is better (Keras' metric direction): False for losses, None
        for a name no metric logs."""
        name, outputs = logged.removeprefix("val_"), list(self.losses)
        if name == "loss" or name in (f"{o}_loss" for o in outputs):
            return False
        for o, metrics in self.metrics.items():
            for column, metric in metrics.items():
                if log_name(o, column, outputs) == name:
                    return metric.direction == "up"
        return None

    @classmethod
    def from_compile(cls, compile_spec, graph: Graph) -> "Objective":
        outputs = graph.outputs
        losses = {o: compile_spec.loss_of(o) for o in outputs}
        given = compile_spec.loss_weights
        if given is None:
            weights = {o: 1.0 for o in outputs}
        elif isinstance(given, list):
            weights = dict(zip(outputs, given))
        else:
            weights = {o: given.get(o, 1.0) for o in outputs}
        metrics = {o: {metric.column: metric.for_output(losses[o], graph.shapes[o])
                       for metric in compile_spec.metrics_of(o)} for o in outputs}
        return cls(losses, weights, metrics)
