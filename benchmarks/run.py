"""Side-by-side training benchmark: specc against PyTorch (eager) and Keras 3 (JAX and torch backends).

    python benchmarks/run.py [--arch dense headline ...] [--frameworks specc torch keras-jax keras-torch]
                             [--repeats 3] [--quick] [--no-extras] [--save results.json]

Each guide architecture (specs/*.yaml) is trained for a fixed number of random samples at the same batch
size by every framework, one fresh worker process per (framework, architecture), frameworks alternating
within each architecture. A worker builds the model, makes the data, runs one warm-up epoch (compilation,
caches) and then --repeats timed epochs; the table shows the median. Frameworks that are not installed
show as n/a; PyTorch, Keras and JAX are the optional `bench` extra (`pip install -e '.[bench]'`).

Extras (specc only): `specc validate` wall time per spec, and the time from process start to the first
finished batch with a cold and a warm Numba cache. Then the machine, the versions, the load average
before and after (the machine may be shared), and numpy's float32 matmul rate as a yardstick.

A worker can be run alone: python benchmarks/run.py --worker torch --arch dense --json
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
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
}
FRAMEWORKS = ["specc", "torch", "keras-jax", "keras-torch"]
NEEDS = {"specc": ["specc"], "torch": ["torch"], "keras-jax": ["keras", "jax"], "keras-torch": ["keras", "torch"]}
PREDICT_BUDGET_S = 10.0  # timed inference passes stop after this many seconds (at least one, at most --repeats)
FIRST_BATCH_SPECS = ["digits.yaml", "headline.yaml", "shared_vision.yaml"]


# ==========================================================================================================
# Shared by every worker: the same random data, from the spec's own shapes and losses
# ==========================================================================================================

def spec_model(arch: Arch):
    import specc
    return specc.load(SPECS / arch.spec)


def make_data(model, rows: int) -> tuple[dict, dict]:
    """Inputs and targets by name, as numpy arrays (channels-last images, integer class labels)."""
    from specc.synth import synthesize
    arrays = synthesize(model.graph, model.losses(), rows, seed=0)
    return ({name: arrays[name] for name in model.graph.inputs},
            {name: arrays[name] for name in model.graph.outputs})


def loss_weights(model) -> dict[str, float]:
    from specc.train.loop import Objective
    return Objective.from_compile(model.spec.compile, model.graph).weights


def batch_starts(rows: int, batch: int):
    return range(0, rows, batch)


# A worker returns (parameter count, one training epoch, one pass of inference over the same data).
Work = tuple[int, Callable[[], None], Callable[[], None]]


# ==========================================================================================================
# specc
# ==========================================================================================================

def specc_work(arch: Arch, model, inputs: dict, targets: dict) -> Work:
    from specc.io.data import Dataset
    data = Dataset(inputs, targets)

    def epoch():
        model.fit(epochs=1, batch_size=arch.batch, data=(data, None))

    def infer():
        model.predict(inputs, batch_size=arch.batch)

    return model.count_params(), epoch, infer


# ==========================================================================================================
# PyTorch, eager: nn.Modules as a torch user writes them (NCHW images, logits out, losses on logits)
# ==========================================================================================================

def torch_modules():
    import torch
    from torch import nn

    class Dense(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                     nn.Linear(64, 10))

        def forward(self, pixels):
            return (self.net(pixels),)

    class Headline(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(10000, 512)
            self.lstm = nn.LSTM(512, 32, batch_first=True)
            self.aux_output = nn.Linear(32, 1)
            self.head = nn.Sequential(nn.Linear(32 + 5, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                      nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

        def forward(self, main_input, aux_input):
            _, (h, _) = self.lstm(self.embedding(main_input))
            encoded = h[-1]
            return self.head(torch.cat([encoded, aux_input], dim=1)), self.aux_output(encoded)

    class SharedLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared_lstm = nn.LSTM(256, 64, batch_first=True)
            self.same_author = nn.Linear(128, 1)

        def encode(self, tweet):
            _, (h, _) = self.shared_lstm(tweet)
            return h[-1]

        def forward(self, tweet_a, tweet_b):
            return (self.same_author(torch.cat([self.encode(tweet_a), self.encode(tweet_b)], dim=1)),)

    class SharedVision(nn.Module):
        def __init__(self):
            super().__init__()
            self.vision_model = nn.Sequential(nn.Conv2d(1, 64, 3), nn.Conv2d(64, 64, 3), nn.MaxPool2d(2),
                                              nn.Flatten())
            self.same = nn.Linear(2 * 64 * 11 * 11, 1)

        def forward(self, digit_a, digit_b):
            return (self.same(torch.cat([self.vision_model(digit_a), self.vision_model(digit_b)], dim=1)),)

    class Inception(nn.Module):
        def __init__(self):
            super().__init__()
            self.tower_1 = nn.Sequential(nn.Conv2d(3, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU())
            self.tower_2 = nn.Sequential(nn.Conv2d(3, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 5, padding=2), nn.ReLU())
            self.tower_3 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(3, 64, 1), nn.ReLU())
            self.head = nn.Sequential(nn.MaxPool2d(16), nn.Flatten(), nn.Linear(192 * 16 * 16, 10))

        def forward(self, input_img):
            module = torch.cat([self.tower_1(input_img), self.tower_2(input_img), self.tower_3(input_img)], dim=1)
            return (self.head(module),)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.y = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return (x + self.y(x),)

    return {"dense": Dense, "headline": Headline, "shared_lstm": SharedLSTM, "shared_vision": SharedVision,
            "inception": Inception, "residual": Residual}


def torch_optimizer(config, parameters):
    import torch
    if config.type == "adam":
        return torch.optim.Adam(parameters, lr=config.learning_rate, betas=(config.beta_1, config.beta_2),
                                eps=config.epsilon)
    if config.type == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=config.learning_rate, alpha=config.rho, eps=config.epsilon,
                                   momentum=config.momentum, centered=config.centered)
    return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=config.momentum, nesterov=config.nesterov)


def torch_loss(name: str):
    """Keras' losses for outputs given as logits (the final softmax/sigmoid folded into the loss)."""
    import torch.nn.functional as F
    return {"categorical_crossentropy": F.cross_entropy,        # targets: class probabilities
            "sparse_categorical_crossentropy": F.cross_entropy,  # targets: class indices
            "binary_crossentropy": F.binary_cross_entropy_with_logits,
            "mse": F.mse_loss}[name]


def torch_params(net) -> int:
    """Parameters, less nn.LSTM's second bias vector (bias_hh), which Keras and specc do not have."""
    return sum(p.numel() for name, p in net.named_parameters() if "bias_hh" not in name)


def torch_work(arch_name: str, arch: Arch, model, inputs: dict, targets: dict) -> Work:
    import torch

    def tensor(array):
        if array.ndim == 4:  # NHWC -> NCHW, as a torch user keeps images
            array = array.transpose(0, 3, 1, 2).copy()
        return torch.from_numpy(array)

    net = torch_modules()[arch_name]()
    xs = [tensor(inputs[name]) for name in model.graph.inputs]
    ys = [tensor(targets[name]) for name in model.graph.outputs]
    losses = [torch_loss(model.losses()[name]) for name in model.graph.outputs]
    weights = [loss_weights(model)[name] for name in model.graph.outputs]
    optimizer = torch_optimizer(model.spec.compile.optimizer, net.parameters())
    rows = len(xs[0])

    def epoch():
        net.train()
        order = torch.randperm(rows)
        running = 0.0
        for start in batch_starts(rows, arch.batch):
            index = order[start:start + arch.batch]
            outputs = net(*(x[index] for x in xs))
            loss = sum(w * f(out, y[index]) for w, f, out, y in zip(weights, losses, outputs, ys))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item() * len(index)

    def infer():
        net.eval()
        with torch.inference_mode():
            for start in batch_starts(rows, arch.batch):
                net(*(x[start:start + arch.batch] for x in xs))

    return torch_params(net), epoch, infer


# ==========================================================================================================
# Keras 3, functional API as the guide writes the models (channels-last; jit is the default)
# ==========================================================================================================

def keras_models():
    import keras
    from keras import layers

    def dense():
        pixels = keras.Input(shape=(784,), name="pixels")
        x = layers.Dense(64, activation="relu", name="dense_1")(pixels)
        x = layers.Dense(64, activation="relu", name="dense_2")(x)
        digit = layers.Dense(10, activation="softmax", name="digit")(x)
        return keras.Model(pixels, digit)

    def headline():
        main_input = keras.Input(shape=(100,), dtype="int32", name="main_input")
        x = layers.Embedding(output_dim=512, input_dim=10000, name="embedding")(main_input)
        lstm_out = layers.LSTM(32, name="lstm")(x)
        aux_output = layers.Dense(1, activation="sigmoid", name="aux_output")(lstm_out)
        aux_input = keras.Input(shape=(5,), name="aux_input")
        x = layers.concatenate([lstm_out, aux_input], name="merged")
        x = layers.Dense(64, activation="relu", name="dense_1")(x)
        x = layers.Dense(64, activation="relu", name="dense_2")(x)
        x = layers.Dense(64, activation="relu", name="dense_3")(x)
        main_output = layers.Dense(1, activation="sigmoid", name="main_output")(x)
        return keras.Model([main_input, aux_input], [main_output, aux_output])

    def shared_lstm():
        tweet_a = keras.Input(shape=(280, 256), name="tweet_a")
        tweet_b = keras.Input(shape=(280, 256), name="tweet_b")
        shared = layers.LSTM(64, name="shared_lstm")
        merged = layers.concatenate([shared(tweet_a), shared(tweet_b)], axis=-1, name="merged")
        same_author = layers.Dense(1, activation="sigmoid", name="same_author")(merged)
        return keras.Model([tweet_a, tweet_b], same_author)

    def shared_vision():
        digit_input = keras.Input(shape=(27, 27, 1), name="digit_input")
        x = layers.Conv2D(64, (3, 3), name="conv_1")(digit_input)
        x = layers.Conv2D(64, (3, 3), name="conv_2")(x)
        x = layers.MaxPooling2D((2, 2), name="pool")(x)
        out = layers.Flatten(name="out")(x)
        vision_model = keras.Model(digit_input, out, name="vision_model")
        digit_a = keras.Input(shape=(27, 27, 1), name="digit_a")
        digit_b = keras.Input(shape=(27, 27, 1), name="digit_b")
        merged = layers.concatenate([vision_model(digit_a), vision_model(digit_b)], name="merged")
        same = layers.Dense(1, activation="sigmoid", name="same")(merged)
        return keras.Model([digit_a, digit_b], same)

    def inception():
        input_img = keras.Input(shape=(256, 256, 3), name="input_img")
        tower_1 = layers.Conv2D(64, (1, 1), padding="same", activation="relu")(input_img)
        tower_1 = layers.Conv2D(64, (3, 3), padding="same", activation="relu")(tower_1)
        tower_2 = layers.Conv2D(64, (1, 1), padding="same", activation="relu")(input_img)
        tower_2 = layers.Conv2D(64, (5, 5), padding="same", activation="relu")(tower_2)
        tower_3 = layers.MaxPooling2D((3, 3), strides=(1, 1), padding="same")(input_img)
        tower_3 = layers.Conv2D(64, (1, 1), padding="same", activation="relu")(tower_3)
        module = layers.concatenate([tower_1, tower_2, tower_3], axis=-1)
        x = layers.MaxPooling2D((16, 16))(module)
        x = layers.Flatten()(x)
        label = layers.Dense(10, activation="softmax", name="label")(x)
        return keras.Model(input_img, label)

    def residual():
        x = keras.Input(shape=(256, 256, 3), name="x")
        y = layers.Conv2D(3, (3, 3), padding="same", name="y")(x)
        z = layers.add([x, y], name="z")
        return keras.Model(x, z)

    return {"dense": dense, "headline": headline, "shared_lstm": shared_lstm, "shared_vision": shared_vision,
            "inception": inception, "residual": residual}


def keras_optimizer(config):
    import keras
    if config.type == "adam":
        return keras.optimizers.Adam(learning_rate=config.learning_rate, beta_1=config.beta_1,
                                     beta_2=config.beta_2, epsilon=config.epsilon)
    if config.type == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=config.learning_rate, rho=config.rho,
                                        momentum=config.momentum, epsilon=config.epsilon, centered=config.centered)
    return keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum,
                                nesterov=config.nesterov)


def keras_work(arch_name: str, arch: Arch, model, inputs: dict, targets: dict) -> Work:
    net = keras_models()[arch_name]()
    names, outputs = list(model.graph.inputs), model.graph.outputs
    compile_spec, losses, weights = model.spec.compile, model.losses(), loss_weights(model)
    metrics = compile_spec.metrics
    if len(outputs) == 1:  # one output: plain values, as a user writes them
        (output,) = outputs
        net.compile(optimizer=keras_optimizer(compile_spec.optimizer), loss=losses[output],
                    metrics=metrics if isinstance(metrics, list) else metrics.get(output, []))
        y = targets[output]
    else:
        if isinstance(metrics, list):
            metrics = {name: list(metrics) for name in outputs}
        net.compile(optimizer=keras_optimizer(compile_spec.optimizer), loss=losses, loss_weights=weights,
                    metrics=metrics)
        y = {name: targets[name] for name in outputs}
    x = inputs[names[0]] if len(names) == 1 else [inputs[name] for name in names]

    def epoch():
        net.fit(x, y, batch_size=arch.batch, epochs=1, verbose=0, shuffle=True)

    def infer():
        net.predict(x, batch_size=arch.batch, verbose=0)

    return net.count_params(), epoch, infer


# ==========================================================================================================
# Worker processes
# ==========================================================================================================

def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def training_worker(framework: str, arch_name: str, repeats: int, quick: bool) -> dict:
    if framework.startswith("keras-"):
        os.environ["KERAS_BACKEND"] = framework.split("-", 1)[1]
    arch = ARCHS[arch_name]
    model = spec_model(arch)
    inputs, targets = make_data(model, arch.rows(quick))
    if framework == "specc":
        params, epoch, infer = specc_work(arch, model, inputs, targets)
    elif framework == "torch":
        params, epoch, infer = torch_work(arch_name, arch, model, inputs, targets)
    else:
        params, epoch, infer = keras_work(arch_name, arch, model, inputs, targets)
    if params != model.count_params():
        print(f"warning: {framework} {arch_name} has {params} parameters, specc {model.count_params()}: "
              "the models differ", file=sys.stderr)
    epochs = [timed(epoch) for _ in range(1 + repeats)]  # the first is the warm-up
    predictions = [timed(infer)]                           # so is this one
    while len(predictions) <= repeats and sum(predictions[1:]) < PREDICT_BUDGET_S:
        predictions.append(timed(infer))
    rows = arch.rows(quick)
    result = {"framework": framework, "arch": arch_name, "rows": rows, "batch": arch.batch, "params": params,
              "specc_params": model.count_params(), "warmup_s": epochs[0], "epoch_s": epochs[1:],
              "median_s": statistics.median(epochs[1:]),
              "predict_warmup_s": predictions[0], "predict_s": predictions[1:],
              "predict_samples_per_s": rows / statistics.median(predictions[1:])}
    if framework in ("torch", "keras-torch"):
        import torch
        result["threads"] = torch.get_num_threads()
    return result


def first_batch_progress(batches: int):
    """specc's progress display, silent, noting the time the first training batch ends."""
    from specc.train.progress import Progress

    class FirstBatch(Progress):
        ended: Optional[float] = None

        def batch_end(self, *args, **kwargs):
            if self.ended is None:
                self.ended = time.time()
            super().batch_end(*args, **kwargs)

    return FirstBatch(1, batches, quiet=True)


def first_batch_worker(spec: str, t0: float) -> dict:
    """Seconds from `t0` (taken by the parent just before it started this process) to the end of the first
    training batch, with the steps on the way: imports, loading the spec, reading the data."""
    marks = {}
    import specc
    from specc.io.data import Dataset
    marks["imports"] = time.time()
    model = specc.load(SPECS / spec)
    marks["load"] = time.time()
    if model.spec.data is not None and (SPECS / model.spec.data.train.path).exists():
        train, _ = model.spec_data()
    else:
        train = Dataset(*make_data(model, 2 * model.spec.fit.batch_size))
    marks["data"] = time.time()
    batch = model.spec.fit.batch_size
    progress = first_batch_progress(-(-train.rows // batch))
    model.fit(epochs=1, batch_size=batch, data=(train, None), progress=progress)  # a short epoch: let it end
    marks["first_batch"] = progress.ended
    return {"spec": spec, **{k: v - t0 for k, v in marks.items()}}


# ==========================================================================================================
# The orchestrator
# ==========================================================================================================

def installed(framework: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in NEEDS[framework])


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def thread_env(threads: Optional[int]) -> dict:
    """Environment that caps every framework's compute threads (BLAS, OpenMP, Numba, XLA's Eigen pool)."""
    if threads is None:
        return {}
    env = {name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                           "NUMBA_NUM_THREADS")}
    if threads == 1:
        env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    return env


def run_worker(args: list[str], env: Optional[dict] = None, timeout: float = 3600) -> dict:
    """Run this script as a worker; its last line of output is its JSON result."""
    done = subprocess.run([sys.executable, __file__, *args, "--json"], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"worker {' '.join(args)} failed (exit {done.returncode}):\n{tail}")
    for line in done.stderr.splitlines():
        if line.startswith("warning:"):
            print("  " + line, file=sys.stderr)
    return json.loads(lines[-1])


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    import numpy as np
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    a @ b
    return 2 * n ** 3 / min(timed(lambda: a @ b) for _ in range(repeat)) / 1e9


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2 ** 20:.1f} GB"
    except OSError:
        pass
    return "?"


def commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "?"


def fmt_seconds(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def fmt_rate(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table that is also a Markdown table."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1)
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


def training_table(results: dict, archs: list[str], frameworks: list[str], quick: bool) -> str:
    peers = [f for f in frameworks if f != "specc"]
    header = ["architecture", "samples, batch", *[f"{f} s/epoch" if f == "specc" else f for f in frameworks]]
    if "specc" in frameworks:
        header += ["specc samples/s", "specc / fastest peer"]
    rows = []
    for name in archs:
        arch = ARCHS[name]
        median = {f: results.get((f, name), {}).get("median_s") for f in frameworks}
        row = [arch.label, f"{arch.rows(quick)}, {arch.batch}", *[fmt_seconds(median[f]) for f in frameworks]]
        if "specc" in frameworks:
            mine = median["specc"]
            rivals = [(median[f], f) for f in peers if median[f] is not None]
            rate = arch.rows(quick) / mine if mine else None
            ratio = f"{mine / min(rivals)[0]:.2f} ({min(rivals)[1]})" if mine and rivals else "n/a"
            row += [fmt_rate(rate), ratio]
        rows.append(row)
    return table(header, rows)


def inference_table(results: dict, archs: list[str], frameworks: list[str]) -> str:
    header = ["architecture (predict, samples/s)", *frameworks]
    rows = [[ARCHS[name].label, *[fmt_rate(results.get((f, name), {}).get("predict_samples_per_s"))
                                  for f in frameworks]] for name in archs]
    return table(header, rows)


def validate_times(repeats: int = 5) -> list[list[str]]:
    script = Path(sys.executable).parent / "specc"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "specc"]
    rows = []
    for spec in sorted(SPECS.glob("*.yaml")):
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([*command, "validate", str(spec)], capture_output=True, cwd=ROOT)
            seconds.append(time.perf_counter() - start)
        rows.append([spec.name, f"{statistics.median(seconds):.2f}"])
    return rows


def first_batch_times(env: dict, warm_repeats: int = 3) -> list[list[str]]:
    rows = []
    for spec in FIRST_BATCH_SPECS:
        with tempfile.TemporaryDirectory(prefix="specc-numba-") as cache:
            env = {**env, "NUMBA_CACHE_DIR": cache}

            def once():
                t0 = time.time()
                return run_worker(["--first-batch", spec, "--t0", repr(t0)], env)

            cold = once()
            warm = sorted((once() for _ in range(warm_repeats)), key=lambda r: r["first_batch"])
            warm = warm[len(warm) // 2]
        for label, r in (("cold", cold), ("warm", warm)):
            rows.append([spec, label, f"{r['imports']:.2f}", f"{r['load'] - r['imports']:.2f}",
                         f"{r['data'] - r['load']:.2f}", f"{r['first_batch'] - r['data']:.2f}",
                         f"{r['first_batch']:.2f}"])
    return rows


def orchestrate(args) -> None:
    started = datetime.datetime.now()
    load_before = os.getloadavg()
    gflops_before = matmul_gflops()
    available = [f for f in args.frameworks if installed(f)]
    missing = [f for f in args.frameworks if f not in available]
    print(f"specc benchmark, {started:%Y-%m-%d %H:%M}, commit {commit()}"
          + (" (--quick: a smoke run, 1/16 of the samples)" if args.quick else "")
          + (f", every framework capped at {args.threads} compute thread(s)" if args.threads else ""))
    if missing:
        print(f"not installed (shown as n/a): {', '.join(missing)}; pip install -e '.[bench]'")

    results: dict[tuple[str, str], dict] = {}
    for name in args.arch:
        for framework in available:
            print(f"  {name:<14} {framework:<12}", end="", flush=True, file=sys.stderr)
            try:
                r = run_worker(["--worker", framework, "--arch", name, "--repeats", str(args.repeats)]
                               + (["--quick"] if args.quick else []), thread_env(args.threads))
                results[(framework, name)] = r
                print(f" {r['median_s']:.3f} s/epoch (warm-up {r['warmup_s']:.2f} s)", file=sys.stderr)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f" failed\n{e}", file=sys.stderr)

    print()
    print(f"Training: median seconds per epoch of {args.repeats} timed epoch(s) after a warm-up epoch")
    print(training_table(results, args.arch, args.frameworks, args.quick))
    print()
    print("Inference: samples/s of predict over the same data, same batch size (median after a warm-up)")
    print(inference_table(results, args.arch, args.frameworks))

    extras = {}
    if not args.no_extras and "specc" in available:
        print()
        print("`specc validate FILE` wall time, seconds (median of 5 runs)")
        extras["validate"] = validate_times()
        print(table(["spec", "seconds"], extras["validate"]))
        print()
        print("Process start to first finished training batch, seconds (Numba cache: cold = a fresh "
              "NUMBA_CACHE_DIR, warm = the same directory again, median of 3)")
        extras["first_batch"] = first_batch_times(thread_env(args.threads))
        print(table(["spec", "cache", "python + imports", "load spec", "data", "first batch", "total"],
                    extras["first_batch"]))

    load_after = os.getloadavg()
    gflops_after = matmul_gflops()
    packages = ["numpy", "numba", "torch", "keras", "jax", "jaxlib"]
    print()
    print(f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {memory_gb()} RAM, "
          f"{platform.system()} {platform.release()}")
    print(f"Python {platform.python_version()}; " + ", ".join(f"{p} {version(p)}" for p in packages))
    threads = {r["threads"] for r in results.values() if "threads" in r}
    if threads:
        print(f"torch threads: {', '.join(map(str, sorted(threads)))}")
    print(f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
          f"after: {', '.join(f'{x:.2f}' for x in load_after)}")
    print(f"numpy float32 2048x2048 matmul: {gflops_before:.1f} GFLOP/s before, {gflops_after:.1f} after")
    print(f"Wall time: {(datetime.datetime.now() - started).total_seconds() / 60:.1f} min")

    if args.save:
        Path(args.save).write_text(json.dumps({
            "started": started.isoformat(), "commit": commit(), "quick": args.quick, "repeats": args.repeats,
            "threads": args.threads,
            "results": list(results.values()), "extras": extras, "load_before": load_before,
            "load_after": load_after, "matmul_gflops": [gflops_before, gflops_after], "cpu": cpu_model(),
            "cpus": os.cpu_count(), "versions": {p: version(p) for p in packages}}, indent=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", choices=list(ARCHS), default=list(ARCHS))
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=FRAMEWORKS)
    parser.add_argument("--repeats", type=int, help="timed epochs after the warm-up (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="1/16 of the samples (at least one batch) and one "
                        "timed epoch: a smoke run")
    parser.add_argument("--threads", type=int, help="cap every framework's compute threads (BLAS, OpenMP, "
                        "Numba, XLA) with environment variables; default: each framework's own default")
    parser.add_argument("--no-extras", action="store_true", help="only the training and inference tables")
    parser.add_argument("--save", metavar="JSON", help="also write every measurement to this file")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--first-batch", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.worker:
        print(json.dumps(training_worker(args.worker, args.arch[0], args.repeats, args.quick)))
    elif args.first_batch:
        print(json.dumps(first_batch_worker(args.first_batch, args.t0 if args.t0 is not None else time.time())))
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
