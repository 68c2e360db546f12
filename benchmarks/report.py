"""The printed results: seconds and rates formatted, and plain-text tables that are also Markdown tables."""
from __future__ import annotations

from typing import Optional

from .workloads import ARCHS


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


def fmt_ms(seconds: Optional[float]) -> str:
    if seconds is None:
        return "n/a"
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def inference_table(results: dict, archs: list[str], frameworks: list[str]) -> str:
    """Per architecture: each framework's samples/s at the benchmark batch size, then its batch-1 latency;
    with specc and onnxruntime both there, specc's throughput over onnxruntime's (above 1: specc ahead) and
    its latency over onnxruntime's (below 1: specc ahead)."""
    header = ["architecture", "batch", *[f"{f} samples/s" for f in frameworks],
              *[f"{f} batch-1 ms" for f in frameworks]]
    compare = "specc" in frameworks and "onnxruntime" in frameworks
    if compare:
        header += ["specc / onnxruntime samples/s", "specc / onnxruntime latency"]
    rows = []
    for name in archs:
        got = {f: results.get((f, name), {}) for f in frameworks}
        rate = {f: got[f].get("predict_samples_per_s") for f in frameworks}
        latency = {f: got[f].get("latency_s") for f in frameworks}
        row = [ARCHS[name].label, str(ARCHS[name].batch), *[fmt_rate(rate[f]) for f in frameworks],
               *[fmt_ms(latency[f]) for f in frameworks]]
        if compare:
            row += [f"{rate['specc'] / rate['onnxruntime']:.2f}" if rate["specc"] and rate["onnxruntime"] else "n/a",
                    f"{latency['specc'] / latency['onnxruntime']:.2f}" if latency["specc"] and latency["onnxruntime"]
                    else "n/a"]
        rows.append(row)
    return table(header, rows)
