"""`specc plot`: the DOT text is well formed (checked by a small parser here, and by Graphviz when installed),
shared layers are one box with an edge per node, sub-models one cluster, shapes shown; the command's outputs."""
from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import specc
from specc.layers import show_shape
from specc.plot import to_dot
from support import ROOT, run

SPECS = sorted((ROOT / "specs").glob("*.yaml"))
DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(DOT is None, reason="Graphviz's dot is not installed")


# -- a small DOT reader: enough of the grammar for what specc writes, strict about what it reads -----------------

TOKEN = re.compile(r'\s+|(?P<arrow>->|--)|(?P<punct>[{}\[\];=,])|(?P<string>"(?:[^"\\]|\\.)*")|(?P<html><)|'
                   r'(?P<id>[A-Za-z_][A-Za-z0-9_]*|-?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?))', re.S)


def tokens(text: str) -> list[tuple[str, str]]:
    out, i = [], 0
    while i < len(text):
        m = TOKEN.match(text, i)
        assert m, f"unexpected character {text[i]!r} at {i}: {text[i:i + 40]!r}"
        if m.lastgroup == "html":  # <...> with nested <tags>, balanced
            depth, j = 0, i
            while True:
                assert j < len(text), "unterminated HTML label"
                if text[j] == "<":
                    depth += 1
                elif text[j] == ">":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            out.append(("html", text[i + 1:j]))
            i = j + 1
            continue
        if m.lastgroup:
            out.append((m.lastgroup, m.group()))
        i = m.end()
    return out


@dataclass
class Cluster:
    id: str
    label: str = ""
    nodes: list[str] = field(default_factory=list)
    clusters: list["Cluster"] = field(default_factory=list)


@dataclass
class Dot:
    nodes: dict[str, dict]                       # id -> attributes
    edges: list[tuple[str, str, dict]]
    root: Cluster
    clusters: dict[str, Cluster]
    parent: dict[str, str]                       # node or cluster id -> the cluster holding it ("" at the top)

    def label(self, node: str) -> str:
        return plain(self.nodes[node].get("label", ""))

    def find(self, part: str) -> list[str]:
        """Nodes whose label's title (first line) names `part`."""
        return [n for n in self.nodes if re.match(rf"{re.escape(part)}: ", self.label(n))]


def plain(label: str) -> str:
    """The text of an HTML-like label, tags removed and entities decoded, cells joined by ' '."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", label))).strip().replace(" : ", ": ")


def parse(text: str) -> Dot:
    toks = tokens(text)
    pos = 0

    def take(kind=None, value=None):
        nonlocal pos
        assert pos < len(toks), "unexpected end of the DOT text"
        k, v = toks[pos]
        assert kind is None or k == kind, f"expected {kind}, got {k} {v!r} (token {pos})"
        assert value is None or v == value, f"expected {value!r}, got {v!r} (token {pos})"
        pos += 1
        return k, v

    def peek():
        return toks[pos] if pos < len(toks) else (None, None)

    def attrs() -> dict:
        out = {}
        if peek() != ("punct", "["):
            return out
        take("punct", "[")
        while peek() != ("punct", "]"):
            _, key = take("id")
            take("punct", "=")
            kind, value = take()
            assert kind in ("id", "string", "html"), f"bad attribute value {value!r}"
            out[key] = value[1:-1] if kind == "string" else value
            if peek() == ("punct", ","):
                take()
        take("punct", "]")
        return out

    nodes, edges, clusters, parent = {}, [], {}, {}

    def body(cluster: Cluster):
        while True:
            kind, value = peek()
            if (kind, value) == ("punct", "}"):
                take()
                return
            if (kind, value) == ("id", "subgraph"):
                take()
                _, name = take("id")
                assert name.startswith("cluster_") and name not in clusters, name
                take("punct", "{")
                child = Cluster(name)
                clusters[name] = child
                parent[name] = cluster.id
                cluster.clusters.append(child)
                body(child)
                continue
            _, first = take("id")
            if first in ("graph", "node", "edge"):
                a = attrs()
                if first == "graph" and "label" in a:
                    cluster.label = plain(a["label"])
            elif peek()[0] == "arrow":
                take("arrow", "->")
                _, second = take("id")
                edges.append((first, second, attrs()))
            else:
                assert first not in nodes, f"node {first} declared twice"
                nodes[first] = attrs()
                parent[first] = cluster.id
                cluster.nodes.append(first)
            take("punct", ";")

    take("id", "digraph")
    take("id")
    take("punct", "{")
    root = Cluster("")
    body(root)
    assert pos == len(toks), "text after the closing brace"
    return Dot(nodes, edges, root, clusters, parent)


def dot_of(spec: Path | str) -> Dot:
    text = to_dot(specc.load(spec).graph)
    structure = [v for k, v in tokens(text) if k == "punct" and v in "{}"]  # braces in labels are text
    assert structure.count("{") == structure.count("}") > 0
    dot = parse(text)
    for tail, head, _ in dot.edges:
        assert tail in dot.nodes and head in dot.nodes, (tail, head)
    return dot


def incoming(dot: Dot, node: str) -> list[str]:
    return sorted(a.get("label", "") for _, head, a in dot.edges if head == node)


def outgoing(dot: Dot, node: str) -> list[str]:
    return sorted(a.get("label", "") for tail, _, a in dot.edges if tail == node)


# -- the DOT text ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_every_example_gives_well_formed_dot(spec):
    dot = dot_of(spec)
    graph = specc.load(spec).graph
    titles = {dot.label(n).split(": ")[0] for n in dot.nodes} | {c.label.split(": ")[0]
                                                                for c in dot.clusters.values()}
    for name in graph.inputs:
        assert name in titles
    for node in graph.nodes:
        assert node.layer.name in titles
        labels = " ".join([*map(dot.label, dot.nodes), *(c.label for c in dot.clusters.values())])
        assert all(show_shape(shape) in labels for shape in node.output_shapes)  # each output's, when several
    assert len(dot.edges) >= sum(len(node.inputs) for node in graph.nodes)


def test_parser_rejects_what_it_should():
    """The controls for the checks above: the reader notices an undeclared node, a missing brace, a duplicate."""
    with pytest.raises(AssertionError):
        parse("digraph g {\n  a [label=<x>];\n  a -> b;\n")  # unclosed
    with pytest.raises(AssertionError):
        parse("digraph g {\n  a [label=<x>];\n  a [label=<y>];\n}")
    dot = parse("digraph g {\n  a [label=<x>];\n  a -> b;\n}")
    assert "b" not in dot.nodes  # ... which dot_of then refuses


def test_shared_layer_is_one_box_with_an_edge_per_node():
    dot = dot_of(ROOT / "specs" / "shared_lstm.yaml")
    (box,) = dot.find("shared_lstm")
    assert incoming(dot, box) == ["node 0", "node 1"]
    assert outgoing(dot, box) == ["from node 0", "from node 1"]
    tails = {tail for tail, head, _ in dot.edges if head == box}
    assert sorted(dot.label(t).split(":")[0] for t in tails) == ["tweet_a", "tweet_b"]
    label = dot.label(box)
    assert "LSTM" in label
    assert "node 0 (None, 280, 256) → (None, 64)" in label and "node 1 (None, 280, 256) → (None, 64)" in label


def test_layer_nodes_with_different_shapes():
    dot = dot_of(ROOT / "specs" / "layer_nodes.yaml")
    (conv,) = dot.find("conv")
    label = dot.label(conv)
    assert "node 0 (None, 32, 32, 3) → (None, 32, 32, 16)" in label
    assert "node 1 (None, 64, 64, 3) → (None, 64, 64, 16)" in label


def test_sub_model_called_twice_is_one_cluster():
    dot = dot_of(ROOT / "specs" / "shared_vision.yaml")
    models = [c for c in dot.clusters.values() if c.label.startswith("vision_model: Model")]
    assert len(models) == 1
    (cluster,) = models
    assert "node 0 (None, 27, 27, 1) → (None, 7744)" in cluster.label
    inner = {dot.label(n).split(":")[0] for n in cluster.nodes}
    assert inner == {"digit_input", "conv_1", "conv_2", "pool", "out"}
    for name in ("conv_1", "conv_2", "pool", "out"):
        assert len(dot.find(name)) == 1
    (entry,) = dot.find("digit_input")
    assert incoming(dot, entry) == ["node 0", "node 1"]
    (exit_,) = dot.find("out")
    assert outgoing(dot, exit_) == ["from node 0", "from node 1"]
    (merged,) = dot.find("merged")
    assert dot.parent[merged] == ""  # the caller is outside the cluster
    assert "(None, 25, 25, 64)" in dot.label(dot.find("conv_1")[0])


def test_time_distributed_wraps_its_model():
    dot = dot_of(ROOT / "specs" / "time_distributed.yaml")
    (wrapper,) = [c for c in dot.clusters.values() if c.label.startswith("per_frame: TimeDistributed")]
    assert "(None, 20, 784)" in wrapper.label and "(None, 20, 10)" in wrapper.label
    (model,) = wrapper.clusters
    assert model.label.startswith("classifier: Model")
    (frames,) = dot.find("frames")
    (entry,) = [n for n in model.nodes if dot.label(n).startswith("input: Input")]
    assert [(t, h) for t, h, _ in dot.edges if t == frames] == [(frames, entry)]


def test_inline_time_distributed_is_one_box(tmp_path):
    spec = tmp_path / "td.yaml"
    spec.write_text("specc: 1\ninputs: {x: {shape: [6, 4]}}\n"
                    "layers:\n  y: {type: TimeDistributed, layer: {type: Dense, units: 3}, inputs: x}\n"
                    "outputs: [y]\ncompile: {loss: mse}\n")
    dot = dot_of(spec)
    assert dot.clusters == {}
    (box,) = dot.find("y")
    assert dot.label(box).startswith("y: TimeDistributed(Dense)")
    assert "(None, 6, 4)" in dot.label(box) and "(None, 6, 3)" in dot.label(box)


def test_frozen_imported_model_and_dtype():
    dot = dot_of(ROOT / "specs" / "video_qa.yaml")
    (encoder,) = [c for c in dot.clusters.values() if c.label.startswith("question_encoder")]
    assert "(frozen)" in encoder.label
    (question,) = dot.find("video_question_input")
    assert "(None, 100) int32" in dot.label(question)


WEIRD = '''\
specc: 1
name: weird
inputs:
  "0-in_put": {shape: [4]}
layers:
  "--a--": {type: Dense, units: 2, inputs: "0-in_put"}
  "_": {type: Dense, units: 1, inputs: "--a--"}
outputs: ["_"]
compile: {loss: mse}
'''


def test_labels_are_escaped():
    """Names are identifiers, but a label also shows spec names, dtypes and shapes: markup is escaped and
    control characters are shown, never written raw."""
    from specc.plot import text
    assert text('in<put> & "more"') == "in&lt;put&gt; &amp; &quot;more&quot;"
    assert text("tab\there\nnewline\x01") == "tab\\x09here\\x0anewline\\x01"


def test_unusual_names_are_drawn(tmp_path):
    spec = tmp_path / "weird.yaml"
    spec.write_text(WEIRD)
    dot = dot_of(spec)
    assert dot.find("0-in_put") and dot.find("--a--") and dot.find("_")


@needs_dot
@pytest.mark.parametrize("spec", [*SPECS, "weird"], ids=[*(p.stem for p in SPECS), "weird"])
def test_graphviz_draws_it(spec, tmp_path):
    if spec == "weird":
        spec = tmp_path / "weird.yaml"
        spec.write_text(WEIRD)
    result = subprocess.run([DOT, "-Tsvg"], input=to_dot(specc.load(spec).graph), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    svg = ET.fromstring(result.stdout)
    drawn = [g.get("class") for g in svg.iter("{http://www.w3.org/2000/svg}g")]
    dot = dot_of(spec)
    assert drawn.count("node") == len(dot.nodes)
    assert drawn.count("edge") == len(dot.edges)
    assert drawn.count("cluster") == len(dot.clusters)


# -- the command -------------------------------------------------------------------------------------------------

def test_dot_to_stdout_and_file(tmp_path):
    spec = ROOT / "specs" / "headline.yaml"
    result = run("plot", spec)
    assert result.returncode == 0, result.stderr
    assert result.stdout == to_dot(specc.load(spec).graph)
    result = run("plot", spec, "-o", tmp_path / "out" / "model.dot")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "model.dot").read_text() == to_dot(specc.load(spec).graph)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model.dot"]  # no temporary file left


@needs_dot
@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_drawn_with_graphviz(tmp_path, fmt):
    out = tmp_path / f"model.{fmt}"
    result = run("plot", ROOT / "specs" / "shared_vision.yaml", "-o", out)
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    if fmt == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        svg = ET.fromstring(data)
        titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
        assert "cluster_" in " ".join(t for t in titles if t)
        assert "vision_model" in data.decode()
    assert not out.with_suffix(".dot").exists()


def test_without_graphviz_the_dot_is_written_and_explained(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "model.svg"
    result = run("plot", ROOT / "specs" / "shared_lstm.yaml", "-o", out)
    assert result.returncode == 0, result.stderr
    assert not out.exists()
    assert (tmp_path / "model.dot").read_text() == to_dot(specc.load(ROOT / "specs" / "shared_lstm.yaml").graph)
    assert "apt install graphviz" in result.stderr and "brew install graphviz" in result.stderr
    assert f"dot -Tsvg {tmp_path / 'model.dot'} -o {out}" in result.stderr


@pytest.mark.parametrize("args, part", [
    (["-o", "model.pdf"], "cannot tell the format from 'model.pdf'"),
    (["--format", "png"], "--format png needs -o FILE"),
    (["--format", "jpg"], "Invalid value for '--format'"),
])
def test_usage_errors(tmp_path, monkeypatch, args, part):
    monkeypatch.chdir(tmp_path)
    result = run("plot", ROOT / "specs" / "dense.yaml", *args)
    assert result.returncode == 2, result.stderr
    assert part in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_spec_is_located(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("specc: 1\ninputs: {x: {shape: [4]}}\nlayers:\n  y: {type: Dence, units: 1, inputs: x}\n"
                    "outputs: [y]\ncompile: {loss: mse}\n")
    result = run("plot", spec, "-o", tmp_path / "m.dot")
    assert result.returncode == 1
    assert f"{spec}:4:13: layers.y.type: unknown layer type 'Dence'" in result.stderr
    assert not (tmp_path / "m.dot").exists()


def test_plot_does_not_import_numba(tmp_path):
    code = ("import sys\nfrom specc.cli import cli\ntry:\n    cli.main(sys.argv[1:], standalone_mode=False)\n"
            "except SystemExit:\n    pass\nprint('numba imported:', 'numba' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code, "plot", str(ROOT / "specs" / "shared_vision.yaml"), "-o",
                             str(tmp_path / "m.dot")], capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[-1] == "numba imported: False", result.stderr
