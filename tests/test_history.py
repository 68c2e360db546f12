"""`specc history`: training curves from a run's history.csv as SVG (parsed back as XML), HTML and PNG; clear
errors for a missing, empty or malformed file."""
from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from specc.curves import nice_ticks, panel_rows, read_history
from support import ROOT, run

SVG = "{http://www.w3.org/2000/svg}"

ONE_OUTPUT = """\
epoch,loss,accuracy,val_loss,val_accuracy
1,2.30,0.49,0.68,0.78
2,0.46,0.87,0.28,0.92
3,0.25,0.93,0.19,0.95
4,0.16,0.95,0.14,0.97
5,0.12,0.97,0.12,0.97
6,0.10,0.97,0.11,0.97
7,0.09,0.98,0.11,0.98
"""

TWO_OUTPUTS = """\
epoch,loss,main_output_loss,aux_output_loss,main_output_accuracy,aux_output_accuracy,val_loss,\
val_main_output_loss,val_aux_output_loss,val_main_output_accuracy,val_aux_output_accuracy
1,0.9,0.7,1.0,0.5,0.6,0.95,0.75,1.0,0.5,0.55
2,0.8,0.6,1.0,0.6,0.6,0.85,0.65,1.0,0.6,0.6
3,0.7,0.5,1.0,0.7,0.7,0.80,0.60,1.0,0.65,0.65
"""


def run_subprocess(*args, cwd=None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "specc", *map(str, args)], capture_output=True, text=True,
                            cwd=cwd, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def run_folder(tmp_path: Path, text: str) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "history.csv").write_text(text)
    return run_dir


def panels(svg_text: str) -> list[ET.Element]:
    root = ET.fromstring(svg_text)
    assert root.tag == f"{SVG}svg"
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "panel"]


def points(polyline: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in polyline.get("points").split()]


def test_svg_one_output(tmp_path):
    run_dir = run_folder(tmp_path, ONE_OUTPUT)
    result = run("history", run_dir, "-o", tmp_path / "curves.svg")
    assert result.returncode == 0, result.stderr
    found = panels((tmp_path / "curves.svg").read_text())
    assert [p.get("data-title") for p in found] == ["loss", "accuracy"]
    for panel in found:
        lines = panel.findall(f"{SVG}polyline")
        assert [line.get("class") for line in lines] == ["training", "validation"]
        assert lines[1].get("stroke-dasharray")  # validation dashed, training solid
        assert lines[0].get("stroke-dasharray") is None
        for line in lines:
            xy = points(line)
            assert len(xy) == 7  # one point per epoch
            assert [x for x, _ in xy] == sorted(x for x, _ in xy)
        legend = [t.text for t in panel.iter(f"{SVG}text") if t.get("class") == "legend"]
        assert legend == ["validation", "training"] or sorted(legend) == ["training", "validation"]
        ticks = [t.text for t in panel.iter(f"{SVG}text") if t.get("class") == "tick"]
        assert "1" in ticks and "7" in ticks
    # the loss falls: in SVG coordinates (y grows downward) the training curve's y values rise
    loss = points(found[0].findall(f"{SVG}polyline")[0])
    assert loss[0][1] < loss[-1][1]
    accuracy = points(found[1].findall(f"{SVG}polyline")[0])
    assert accuracy[0][1] > accuracy[-1][1]


def test_svg_two_outputs_row_per_output(tmp_path):
    history = read_history(run_folder(tmp_path, TWO_OUTPUTS) / "history.csv")
    rows = panel_rows(history)
    assert [(title, [p.title for p in ps]) for title, ps in rows] == [
        ("total", ["total loss"]),
        ("main_output", ["main_output_loss", "main_output_accuracy"]),
        ("aux_output", ["aux_output_loss", "aux_output_accuracy"])]
    result = run("history", tmp_path / "run")  # default: history.svg beside history.csv
    assert result.returncode == 0, result.stderr
    found = panels((tmp_path / "run" / "history.svg").read_text())
    assert len(found) == 5
    assert all(len(p.findall(f"{SVG}polyline")) == 2 for p in found)
    assert all(len(points(line)) == 3 for p in found for line in p.findall(f"{SVG}polyline"))
    # a constant curve (aux_output_loss) still gets a readable axis
    constant = next(p for p in found if p.get("data-title") == "aux_output_loss")
    assert len({y for _, y in points(constant.findall(f"{SVG}polyline")[0])}) == 1


def test_missing_values_break_the_line(tmp_path):
    history = "epoch,loss,val_loss\n1,1.0,1.1\n2,0.8,\n3,0.7,0.75\n4,nan,0.7\n5,0.5,0.6\n"
    run_dir = run_folder(tmp_path, history)
    assert run("history", run_dir, "-o", tmp_path / "c.svg").returncode == 0
    (panel,) = panels((tmp_path / "c.svg").read_text())
    lines = panel.findall(f"{SVG}polyline")
    assert [(line.get("class"), len(points(line))) for line in lines] == [
        ("training", 3), ("training", 1), ("validation", 1), ("validation", 3)]


def test_a_single_epoch(tmp_path):
    run_dir = run_folder(tmp_path, "epoch,loss\n1,0.5\n")
    assert run("history", run_dir, "-o", tmp_path / "c.svg").returncode == 0
    (panel,) = panels((tmp_path / "c.svg").read_text())
    (line,) = panel.findall(f"{SVG}polyline")
    assert len(points(line)) == 1
    assert len(panel.findall(f"{SVG}circle")) == 1  # a lone point is drawn as a marker


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def test_html_embeds_the_svgs(tmp_path):
    run_dir = run_folder(tmp_path, TWO_OUTPUTS)
    result = run("history", run_dir, "-o", tmp_path / "c.html")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "c.html").read_text()
    parser = _Tags()
    parser.feed(text)
    assert parser.tags.count("svg") == 5
    assert parser.tags.count("polyline") == 10
    assert parser.tags.count("h2") == 3
    for svg in re.findall(r"<svg.*?</svg>", text, re.S):
        ET.fromstring(svg)  # each one is well-formed SVG on its own


def test_png_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    run_dir = run_folder(tmp_path, ONE_OUTPUT)
    result = run("history", run_dir, "-o", tmp_path / "c.png")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_png_without_matplotlib(tmp_path):
    run_dir = run_folder(tmp_path, ONE_OUTPUT)
    code = ("import sys\nsys.modules['matplotlib'] = None\nsys.modules['matplotlib.figure'] = None\n"
            "from specc.cli import main\nmain(sys.argv[1:])\n")
    result = subprocess.run([sys.executable, "-c", code, "history", str(run_dir), "-o", str(tmp_path / "c.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "pip install 'specc[plot]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("content, message", [
    (None, "history.csv: no such file"),
    ("", "history.csv: the file is empty"),
    ("\n\n", "history.csv: the file is empty"),
    ("epoch,loss\n", "history.csv: no epochs recorded"),
    ("loss,val_loss\n0.5,0.6\n", "history.csv:1: no 'epoch' column"),
    ("epoch\n1\n2\n", "history.csv:1: no columns to plot"),
    ("epoch,loss,loss\n1,2,3\n", "history.csv:1: column 'loss' appears twice"),
    ("epoch,loss\n1,0.5\n2,zero\n", "history.csv:3: column 'loss': 'zero' is not a number"),
    ("epoch,loss\n1,0.5\n2,0.4,0.3\n", "history.csv:3: 3 value(s) for the 2 column(s) of the header"),
    ("epoch,loss\nnan,0.5\n", "history.csv:2: column 'epoch': 'nan' is not an epoch number"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "history.csv: not a text file"),
    ("epoch,loss\n1,0.5\x00\n", "history.csv:2: column 'loss': '0.5\\x00' is not a number"),
], ids=["missing", "empty", "blank", "header-only", "no-epoch", "nothing-to-plot", "duplicate-column",
        "not-a-number", "ragged", "nan-epoch", "binary", "nul"])
def test_bad_history_files(tmp_path, content, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if isinstance(content, bytes):
        (run_dir / "history.csv").write_bytes(content)
    elif content is not None:
        (run_dir / "history.csv").write_text(content)
    result = run("history", run_dir, "-o", tmp_path / "c.svg")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"{run_dir}/{message}" in result.stderr, result.stderr
    assert not (tmp_path / "c.svg").exists()


def test_missing_run_folder(tmp_path):
    result = run("history", tmp_path / "nope", "-o", tmp_path / "c.svg")
    assert result.returncode == 1
    assert f"{tmp_path / 'nope' / 'history.csv'}: no such file" in result.stderr


def test_unknown_output_format(tmp_path):
    result = run("history", run_folder(tmp_path, ONE_OUTPUT), "-o", tmp_path / "c.pdf")
    assert result.returncode == 2
    assert "cannot tell the format from" in result.stderr


def test_csv_file_given_directly(tmp_path):
    run_folder(tmp_path, ONE_OUTPUT)
    result = run("history", tmp_path / "run" / "history.csv", "-o", tmp_path / "c.svg")
    assert result.returncode == 0, result.stderr
    assert "7 epoch(s)" in result.stderr


def test_a_real_run(tmp_path):
    """The columns `specc train` writes are the ones `specc history` reads."""
    train = run_subprocess("train", ROOT / "specs" / "digits.yaml", "--epochs", "2", "--out", tmp_path / "run",
                           "--quiet", cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    result = run_subprocess("history", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    found = panels((tmp_path / "run" / "history.svg").read_text())
    assert [p.get("data-title") for p in found] == ["loss", "accuracy"]
    assert all(len(points(line)) == 2 for p in found for line in p.findall(f"{SVG}polyline"))


@pytest.mark.parametrize("low, high, expected", [
    (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0.12, 2.3, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]),
    (3.0, 3.0, [2.6, 2.8, 3.0, 3.2, 3.4]),
])
def test_nice_ticks(low, high, expected):
    assert nice_ticks(low, high) == pytest.approx(expected)


def test_integer_ticks_for_epochs():
    assert nice_ticks(1, 3, 6, integer=True) == [1, 2, 3]
    assert nice_ticks(1, 50, 6, integer=True) == [0, 10, 20, 30, 40, 50]


def test_history_does_not_import_numba(tmp_path):
    run_dir = run_folder(tmp_path, ONE_OUTPUT)
    code = ("import sys\nfrom specc.cli import cli\ntry:\n    cli.main(sys.argv[1:], standalone_mode=False)\n"
            "except SystemExit:\n    pass\nprint('numba imported:', 'numba' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code, "history", str(run_dir), "-o", str(tmp_path / "c.html")],
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[-1] == "numba imported: False", result.stderr
    assert (tmp_path / "c.html").exists()
