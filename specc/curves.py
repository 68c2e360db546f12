"""`specc history`: training curves from a run's history.csv, as SVG (no dependency), HTML, or PNG (matplotlib).

history.csv has an `epoch` column and one column per logged quantity, as `specc train` writes it: `loss`,
`accuracy`, `val_loss`, `val_accuracy` for one output; `loss`, `<out>_loss`, `<out>_accuracy`, `val_...` for
several. Each quantity gets a panel with its training curve (solid) and validation curve (dashed); panels are
laid out one row per output, after a row for the total loss.
"""
from __future__ import annotations

import csv
import html
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import Problem, SpecError
from .io.files import FileProblem, open_regular

MAX_HISTORY_BYTES = 256 * 2 ** 20  # a history has a line per epoch: far below this

TRAINING_COLOR, VALIDATION_COLOR = "#1f77b4", "#ff7f0e"
METRIC_SUFFIX = re.compile(r"^(?P<output>.+)_(?P<what>loss|accuracy|acc|mse|mae)$")
PANEL_WIDTH, PANEL_HEIGHT = 380, 250
MARGIN = {"left": 58, "right": 14, "top": 46, "bottom": 40}


@dataclass
class History:
    file: str
    epochs: list[float]
    columns: dict[str, list[Optional[float]]]  # every column but `epoch`, in file order; None: no value


@dataclass
class Series:
    label: str
    ys: list[Optional[float]]
    color: str
    dashed: bool = False


@dataclass
class Panel:
    title: str
    series: list[Series] = field(default_factory=list)


# -- reading ---------------------------------------------------------------------------------------------------

def _fail(file: str, message: str, line: Optional[int] = None) -> SpecError:
    return SpecError([Problem(message, (), file, line)])


def history_file(run: str | Path) -> Path:
    """A run folder's history.csv, or the file itself when given one."""
    run = Path(run)
    return run / "history.csv" if run.is_dir() or not run.suffix else run


def read_history(path: str | Path) -> History:
    """The columns of a history.csv as numbers; a missing, empty or malformed file is a SpecError naming it."""
    path = Path(path)
    name = str(path)
    try:
        with open_regular(path, "a history file", MAX_HISTORY_BYTES) as f:
            content = f.read().decode("utf-8")
    except FileProblem as e:
        if not path.exists():
            raise _fail(name, "no such file (`specc train` writes one into its run folder)") from None
        raise _fail(name, "; ".join(e.messages)) from None
    except UnicodeDecodeError:
        raise _fail(name, "not a text file; expected CSV with a header line such as 'epoch,loss,val_loss'") from None
    except OSError as e:
        raise _fail(name, f"cannot read the file: {e.strerror or e}") from None
    try:
        rows = list(csv.reader(io.StringIO(content, newline="")))
    except csv.Error as e:
        raise _fail(name, f"not valid CSV: {e}") from None
    numbered = [(i, row) for i, row in enumerate(rows, 1) if any(cell.strip() for cell in row)]
    if not numbered:
        raise _fail(name, "the file is empty; expected a header line such as 'epoch,loss,val_loss' "
                          "and one line per epoch")
    header_line, header = numbered[0]
    header = [cell.strip() for cell in header]
    if "epoch" not in header:
        raise _fail(name, f"no 'epoch' column in the header ({', '.join(map(repr, header))}); "
                          "expected a history.csv written by `specc train`", header_line)
    for i, column in enumerate(header):
        if not column:
            raise _fail(name, f"column {i + 1} of the header has no name", header_line)
        if column in header[:i]:
            raise _fail(name, f"column '{column}' appears twice in the header", header_line)
    if len(header) < 2:
        raise _fail(name, "no columns to plot: the header names only 'epoch'", header_line)
    if len(numbered) == 1:
        raise _fail(name, "no epochs recorded: the file has a header but no rows")
    epochs: list[float] = []  # every row has one
    values: dict[str, list[Optional[float]]] = {c: [] for c in header if c != "epoch"}
    for line, row in numbered[1:]:
        if len(row) != len(header):
            raise _fail(name, f"{len(row)} value(s) for the {len(header)} column(s) of the header", line)
        for column, cell in zip(header, row):
            cell = cell.strip()
            if not cell and column != "epoch":
                values[column].append(None)
                continue
            try:
                number = float(cell)
            except ValueError:
                raise _fail(name, f"column '{column}': {cell!r} is not a number", line) from None
            if column == "epoch":
                if not math.isfinite(number):
                    raise _fail(name, f"column 'epoch': {cell!r} is not an epoch number", line)
                epochs.append(number)
            else:
                values[column].append(number if math.isfinite(number) else None)
    return History(name, epochs, values)


# -- what to draw ------------------------------------------------------------------------------------------------

def panel_rows(history: History) -> list[tuple[str, list[Panel]]]:
    """(row title, panels): the total loss and quantities of a single output first, then one row per output."""
    bases: list[str] = []
    for column in history.columns:
        base = column[4:] if column.startswith("val_") and column[4:] else column
        if base not in bases:
            bases.append(base)
    several = any(match["what"] == "loss" for match in map(METRIC_SUFFIX.match, bases) if match)
    rows: dict[str, list[Panel]] = {}
    for base in bases:
        match = METRIC_SUFFIX.match(base) if several else None
        output = match["output"] if match else ""
        title = "total loss" if base == "loss" and several else base
        panel = Panel(title)
        for prefix, label, color, dashed in (("", "training", TRAINING_COLOR, False),
                                             ("val_", "validation", VALIDATION_COLOR, True)):
            if prefix + base in history.columns:
                panel.series.append(Series(label, history.columns[prefix + base], color, dashed))
        rows.setdefault(output, []).append(panel)
    return [(output or ("total" if several else ""), panels) for output, panels in rows.items()]


# -- axes ----------------------------------------------------------------------------------------------------------

def nice_ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2, 2.5 or 5 times a power of ten."""
    if not high > low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / count
    if not math.isfinite(raw) or raw <= 0:
        return [low, high]
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    if integer:
        step = max(1.0, float(round(step)) if step >= 1 else 1.0)
    start, end = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [i * step for i in range(start, end + 1)]


def tick_text(value: float) -> str:
    shown = f"{round(value, 12):.6g}"
    return "0" if shown in ("-0", "0") else shown


# -- SVG -----------------------------------------------------------------------------------------------------------

def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _segments(xs: list[float], ys: list[Optional[float]]) -> list[list[tuple[float, float]]]:
    """Runs of points with values: a missing value (or NaN, inf) breaks the line."""
    out: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for x, y in zip(xs, ys):
        if y is None:
            if current:
                out.append(current)
            current = []
        else:
            current.append((x, y))
    if current:
        out.append(current)
    return out


def panel_svg(panel: Panel, epochs: list[float], x0: float = 0, y0: float = 0,
              width: int = PANEL_WIDTH, height: int = PANEL_HEIGHT) -> str:
    """One chart as an SVG <g>: frame, grid, ticks, axis label, title, legend, a polyline per curve segment."""
    left, top = x0 + MARGIN["left"], y0 + MARGIN["top"]
    plot_w, plot_h = width - MARGIN["left"] - MARGIN["right"], height - MARGIN["top"] - MARGIN["bottom"]
    values = [y for s in panel.series for y in s.ys if y is not None]
    x_ticks = nice_ticks(min(epochs), max(epochs), 6, integer=all(float(e).is_integer() for e in epochs))
    y_ticks = nice_ticks(min(values), max(values)) if values else [0.0, 1.0]
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w if x_hi > x_lo else left + plot_w / 2

    def sy(y: float) -> float:
        return top + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h if y_hi > y_lo else top + plot_h / 2

    out = [f'<g class="panel" data-title="{_esc(panel.title)}">',
           f'<text class="title" x="{left:.1f}" y="{y0 + 18:.1f}" font-weight="bold">{_esc(panel.title)}</text>']
    legend_x = x0 + width - MARGIN["right"]
    for series in reversed(panel.series):  # right-aligned legend: the last entry is drawn rightmost
        text_w = 6.5 * len(series.label)
        legend_x -= text_w
        dash = ' stroke-dasharray="5,3"' if series.dashed else ""
        out.append(f'<line x1="{legend_x - 26:.1f}" y1="{y0 + 32:.1f}" x2="{legend_x - 4:.1f}" y2="{y0 + 32:.1f}" '
                   f'stroke="{series.color}" stroke-width="2"{dash}/>')
        out.append(f'<text class="legend" x="{legend_x:.1f}" y="{y0 + 36:.1f}">{_esc(series.label)}</text>')
        legend_x -= 38
    out.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{plot_w:.1f}" height="{plot_h:.1f}" '
               'fill="white" stroke="#444" stroke-width="1"/>')
    for t in y_ticks:
        y = sy(t)
        out.append(f'<line class="grid" x1="{left:.1f}" y1="{y:.1f}" x2="{left + plot_w:.1f}" y2="{y:.1f}" '
                   'stroke="#e4e4e4"/>')
        out.append(f'<text class="tick" x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">{tick_text(t)}</text>')
    for t in x_ticks:
        x = sx(t)
        out.append(f'<line class="tick" x1="{x:.1f}" y1="{top + plot_h:.1f}" x2="{x:.1f}" y2="{top + plot_h + 5:.1f}" '
                   'stroke="#444"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 18:.1f}" text-anchor="middle">'
                   f'{tick_text(t)}</text>')
    out.append(f'<text class="axis" x="{left + plot_w / 2:.1f}" y="{y0 + height - 6:.1f}" '
               'text-anchor="middle">epoch</text>')
    if not values:
        out.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
                   'fill="#888">no finite values</text>')
    for series in panel.series:
        dash = ' stroke-dasharray="5,3"' if series.dashed else ""
        for segment in _segments(epochs, series.ys):
            points = " ".join(f"{sx(x):.2f},{sy(y):.2f}" for x, y in segment)
            out.append(f'<polyline class="{_esc(series.label)}" points="{points}" fill="none" '
                       f'stroke="{series.color}" stroke-width="2"{dash}/>')
            if len(epochs) <= 20:
                out.extend(f'<circle cx="{sx(x):.2f}" cy="{sy(y):.2f}" r="2.5" fill="{series.color}"/>'
                           for x, y in segment)
    out.append("</g>")
    return "\n".join(out)


def _svg(width: float, height: float, body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="12">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n')


def to_svg(history: History, title: Optional[str] = None) -> str:
    """Every panel in one SVG: a row per output (after the total loss), a panel per quantity."""
    rows = panel_rows(history)
    columns = max(len(panels) for _, panels in rows)
    head = 30
    body = [f'<text x="12" y="20" font-size="14" font-weight="bold">'
            f'{_esc(title or history.file)} ({len(history.epochs)} epoch(s))</text>']
    for r, (_, panels) in enumerate(rows):
        for c, panel in enumerate(panels):
            body.append(panel_svg(panel, history.epochs, c * PANEL_WIDTH, head + r * PANEL_HEIGHT))
    return _svg(columns * PANEL_WIDTH, head + len(rows) * PANEL_HEIGHT, "\n".join(body))


def to_html(history: History, title: Optional[str] = None) -> str:
    """One page: a section per row of panels, each panel an inline SVG, and the numbers in a table."""
    title = title or history.file
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_esc(title)}</title>",
             "<style>body{font-family:Helvetica,Arial,sans-serif;margin:1.5em}"
             "svg{margin:0 .5em .5em 0}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>",
             f"<h1>{_esc(title)}</h1>", f"<p>{len(history.epochs)} epoch(s)</p>"]
    for row_title, panels in panel_rows(history):
        parts.append("<section>")
        if row_title:
            parts.append(f"<h2>{_esc(row_title)}</h2>")
        for panel in panels:
            parts.append(_svg(PANEL_WIDTH, PANEL_HEIGHT, panel_svg(panel, history.epochs)))
        parts.append("</section>")
    columns = list(history.columns)
    parts.append("<details><summary>numbers</summary><table><tr><th>epoch</th>"
                 + "".join(f"<th>{_esc(c)}</th>" for c in columns) + "</tr>")
    for i, epoch in enumerate(history.epochs):
        cells = "".join(f"<td>{'' if history.columns[c][i] is None else f'{history.columns[c][i]:.6g}'}</td>"
                        for c in columns)
        parts.append(f"<tr><td>{tick_text(epoch)}</td>{cells}</tr>")
    parts.append("</table></details></body></html>\n")
    return "\n".join(parts)


# -- PNG (optional: matplotlib) -------------------------------------------------------------------------------------

class MissingMatplotlib(Exception):
    pass


def to_png(history: History, title: Optional[str] = None) -> bytes:
    """The same panels drawn by matplotlib (the `plot` extra); MissingMatplotlib when it is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingMatplotlib() from None
    rows = panel_rows(history)
    columns = max(len(panels) for _, panels in rows)
    figure = Figure(figsize=(4.2 * columns, 3.0 * len(rows) + 0.4), layout="constrained")
    axes = figure.subplots(len(rows), columns, squeeze=False)
    figure.suptitle(f"{title or history.file} ({len(history.epochs)} epoch(s))")
    marker = "o" if len(history.epochs) <= 20 else None
    for r, (_, panels) in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            if c >= len(panels):
                ax.set_visible(False)
                continue
            for series in panels[c].series:
                ys = [math.nan if y is None else y for y in series.ys]
                ax.plot(history.epochs, ys, color=series.color, linestyle="--" if series.dashed else "-",
                        marker=marker, markersize=3, label=series.label)
            ax.set_title(panels[c].title, loc="left", fontsize=10, fontweight="bold")
            ax.set_xlabel("epoch")
            ax.grid(True, color="#e4e4e4")
            ax.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def format_of(path: Path) -> Optional[str]:
    return {".svg": "svg", ".html": "html", ".htm": "html", ".png": "png"}.get(path.suffix.lower())
