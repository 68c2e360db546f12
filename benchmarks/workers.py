"""Worker processes: each measures one framework on one architecture in a fresh process (no framework's
caches, threads or imports carried over), started by the orchestrator as `run.py --worker ... --json`."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from .timing import time_epochs_and_predictions
from .workloads import ARCHS, Work, make_data, spec_model

RUN = Path(__file__).with_name("run.py")
FRAMEWORKS = ["specc", "torch", "keras-jax", "keras-torch", "onnxruntime"]
NEEDS = {"specc": ["specc"], "torch": ["torch"], "keras-jax": ["keras", "jax"], "keras-torch": ["keras", "torch"],
         "onnxruntime": ["onnx", "onnxruntime"]}
TRAINERS = FRAMEWORKS[:4]  # onnxruntime only runs inference, on the model specc exports


def installed(framework: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in NEEDS[framework])


def framework_work(framework: str, arch_name: str, model, inputs: dict, targets: dict) -> Work:
    arch = ARCHS[arch_name]
    if framework == "specc":
        from .specc_runner import specc_work
        return specc_work(arch, model, inputs, targets)
    if framework == "onnxruntime":
        from .onnxruntime_peer import onnxruntime_work
        return onnxruntime_work(arch, model, inputs, targets)
    if framework == "torch":
        from .torch_peer import torch_work
        return torch_work(arch_name, arch, model, inputs, targets)
    from .keras_peer import keras_work
    return keras_work(framework.split("-", 1)[1], arch_name, arch, model, inputs, targets)


def training_worker(framework: str, arch_name: str, repeats: int, quick: bool, inference_only: bool = False) -> dict:
    """One benchmark row of one framework: parameter count, epoch (unless inference_only) and inference times."""
    arch = ARCHS[arch_name]
    model = spec_model(arch)
    rows = arch.rows(quick)
    params, epoch, infer, infer_one = framework_work(framework, arch_name, model, *make_data(model, rows))
    if params != model.count_params():
        print(f"warning: {framework} {arch_name} has {params} parameters, specc {model.count_params()}: "
              "the models differ", file=sys.stderr)
    timings = time_epochs_and_predictions(None if inference_only else epoch, infer, infer_one, rows, repeats)
    result = {"framework": framework, "arch": arch_name, "rows": rows, "batch": arch.batch, "params": params,
              "specc_params": model.count_params(), **timings}
    if framework in ("torch", "keras-torch"):
        import torch
        result["threads"] = torch.get_num_threads()
    return result


def run_worker(args: list[str], env: Optional[dict] = None, timeout: float = 3600) -> dict:
    """Run run.py as a worker; its last line of output is its JSON result. Its warnings are passed on."""
    done = subprocess.run([sys.executable, str(RUN), *args, "--json"], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"worker {' '.join(args)} failed (exit {done.returncode}):\n{tail}")
    for line in done.stderr.splitlines():
        if line.startswith("warning:"):
            print("  " + line, file=sys.stderr)
    return json.loads(lines[-1])
