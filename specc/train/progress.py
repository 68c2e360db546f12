"""What a user sees while a model trains: a live bar on a terminal, one line per epoch otherwise, one JSON
object per epoch for machines, or nothing. Messages (early stopping, a reduced learning rate) go to stderr."""
from __future__ import annotations

import json
import math
import sys
import time


def format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


def _rate(samples: int, seconds: float) -> str:
    return f"{samples / seconds:,.0f} samples/s" if seconds > 0 else "- samples/s"


class Progress:
    """`log_format` is "text" (a live bar on a terminal, else one line per epoch) or "json" (one object per
    epoch, one a line); `quiet` shows nothing but problems."""

    def __init__(self, epochs: int, batches: int, stream=None, live: bool | None = None, quiet: bool = False,
                 log_format: str = "text", messages=None):
        self.epochs, self.batches, self.quiet, self.log_format = epochs, batches, quiet, log_format
        self.stream = stream or sys.stdout
        self.messages = messages or sys.stderr
        self.live = (self.stream.isatty() if live is None else live) and log_format == "text"
        self.width = len(str(epochs))
        self.drawn = False  # a bar is on the current line

    def epoch_begin(self, epoch: int, first_batch: int = 0):
        self.started = self.last_draw = self.trained = time.perf_counter()
        self.epoch, self.first_batch, self.samples = epoch, first_batch, 0

    def batch_end(self, batch: int, logs: dict[str, float], rows: int = 0):
        self.samples += rows
        now = self.trained = time.perf_counter()
        if self.quiet or not self.live or (now - self.last_draw < 0.1 and batch + 1 < self.batches):
            return
        self.last_draw = now
        done = (batch + 1) / self.batches
        bar = "=" * int(done * 30)
        bar = (bar[:-1] + ">" if 0 < len(bar) < 30 else bar).ljust(30, ".")
        elapsed = now - self.started
        this_run = (batch + 1 - self.first_batch) / self.batches  # a resumed epoch started part way
        eta = elapsed / this_run * (1 - done) if this_run > 0 else 0.0
        self.stream.write(f"\rEpoch {self.epoch + 1:>{self.width}}/{self.epochs} [{bar}] "
                          f"{batch + 1}/{self.batches} - ETA {eta:.0f}s - {_rate(self.samples, elapsed)} - "
                          f"{format_logs(logs)}\033[K")
        self.stream.flush()
        self.drawn = True

    def epoch_end(self, logs: dict[str, float]):
        if self.quiet:
            return
        seconds = time.perf_counter() - self.started
        training = self.trained - self.started  # samples/s counts training alone, not validation and saving
        if self.log_format == "json":
            record = {"epoch": self.epoch + 1, "epochs": self.epochs, "seconds": round(seconds, 6),
                      "samples_per_second": round(self.samples / training, 3) if training > 0 else None}
            record.update({k: (v if math.isfinite(v) else None) for k, v in logs.items()})
            self.stream.write(json.dumps(record) + "\n")
        else:
            line = (f"Epoch {self.epoch + 1:>{self.width}}/{self.epochs} - {seconds:.2f}s - "
                    f"{_rate(self.samples, training)} - {format_logs(logs)}")
            self.stream.write(("\r" + line + "\033[K\n") if self.live else line + "\n")
            self.drawn = False
        self.stream.flush()

    def message(self, text: str, always: bool = False):
        """A line for the user (on stderr), below the bar if one is drawn; `quiet` drops all but `always`."""
        if self.quiet and not always:
            return
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
        self.messages.write(text + "\n")
        self.messages.flush()
