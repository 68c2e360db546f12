"""What a user sees while a model trains: a live bar on a terminal, one line per epoch otherwise."""
from __future__ import annotations

import sys
import time


def format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class Progress:
    def __init__(self, epochs: int, batches: int, stream=None, live: bool | None = None, quiet: bool = False):
        self.epochs, self.batches, self.quiet = epochs, batches, quiet
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.width = len(str(epochs))

    def epoch_begin(self, epoch: int):
        self.started = self.last_draw = time.perf_counter()
        self.epoch = epoch

    def batch_end(self, batch: int, logs: dict[str, float]):
        now = time.perf_counter()
        if self.quiet or not self.live or (now - self.last_draw < 0.1 and batch + 1 < self.batches):
            return
        self.last_draw = now
        done = (batch + 1) / self.batches
        bar = "=" * int(done * 30)
        bar = (bar[:-1] + ">" if 0 < len(bar) < 30 else bar).ljust(30, ".")
        eta = (now - self.started) / done * (1 - done)
        self.stream.write(f"\rEpoch {self.epoch + 1:>{self.width}}/{self.epochs} [{bar}] "
                          f"{batch + 1}/{self.batches} - ETA {eta:.0f}s - {format_logs(logs)}\033[K")
        self.stream.flush()

    def epoch_end(self, logs: dict[str, float]):
        if self.quiet:
            return
        seconds = time.perf_counter() - self.started
        line = (f"Epoch {self.epoch + 1:>{self.width}}/{self.epochs} - {seconds:.2f}s - "
                f"{format_logs(logs)}")
        self.stream.write(("\r" + line + "\033[K\n") if self.live else line + "\n")
        self.stream.flush()
