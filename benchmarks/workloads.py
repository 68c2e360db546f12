"""What every framework trains: the guide architectures and keras.io examples (specs/*.yaml), their sizes, and the
same random data."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@dataclass(frozen=True)
class Arch:
    spec: str      # file in specs/
    label: str
    samples: int   # rows trained per epoch
    batch: int

    def rows(self, quick: bool) -> int:
        return max(self.samples // 16, self.batch) if quick else self.samples


ARCHS = {
    "dense": Arch("dense.yaml", "dense 784-64-64-10", 16384, 32),
    "headline": Arch("headline.yaml", "headline (Embedding 10000x512, LSTM 32, 2 outputs)", 2048, 32),
    "shared_lstm": Arch("shared_lstm.yaml", "shared LSTM(64), two 280x256 tweets", 1024, 32),
    "shared_vision": Arch("shared_vision.yaml", "shared vision sub-model, 27x27x1 pairs", 4096, 32),
    "inception": Arch("inception.yaml", "inception module, 256x256x3 (+ pooled Dense head)", 32, 8),
    "residual": Arch("residual.yaml", "residual Conv2D(3) + add, 256x256x3", 64, 8),
    # keras.io examples at their published sizes
    "mnist_convnet": Arch("mnist_convnet.yaml", "MNIST convnet + Dropout, 28x28x1", 8192, 128),
    "timeseries_fcn": Arch("timeseries_fcn.yaml", "timeseries FCN, Conv1D + BatchNormalization, 500 steps", 2048, 32),
    "bidirectional_imdb": Arch("bidirectional_imdb.yaml", "IMDB Bidirectional LSTM(64) x2, 200 tokens", 1024, 32),
    "transformer_classifier": Arch("transformer_classifier.yaml", "transformer text classifier, 200 tokens", 4096,
                                   32),
    "mini_xception": Arch("mini_xception.yaml", "mini-Xception, SeparableConv2D + BN + residuals, 180x180x3", 64, 16),
}

# What a framework hands the timer: (parameter count, one training epoch (None for an inference engine), one
# pass of inference over the same data, one prediction of the first sample alone).
Work = tuple[int, Optional[Callable[[], None]], Callable[[], None], Callable[[], None]]


def spec_model(arch: Arch):
    import specc
    return specc.load(SPECS / arch.spec)


def make_data(model, rows: int) -> tuple[dict, dict]:
    """Inputs and targets by name, as numpy arrays (channels-last images, integer class labels), from the
    spec's own shapes and losses; seeded, so every framework trains on the very same numbers."""
    from specc.synth import synthesize
    arrays = synthesize(model.graph, model.losses(), rows, seed=0)
    return ({name: arrays[name] for name in model.graph.inputs},
            {name: arrays[name] for name in model.graph.outputs})


def loss_weights(model) -> dict[str, float]:
    """Each output's weight in the total loss, as the spec's `compile` section gives them."""
    from specc.train.objective import Objective
    return Objective.from_compile(model.spec.compile, model.graph).weights


def batch_starts(rows: int, batch: int):
    return range(0, rows, batch)
