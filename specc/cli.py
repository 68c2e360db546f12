"""The `specc` command: thin click commands over the library API."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click

from .errors import SpecError
from .report import FORMATS, FileResult, report

EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell shows for a tool ended by a closed pipe


class _ClosedPipe(Exception):
    """The reader of the output went away (`specc ... | head -1`)."""


class _Commands(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # click would end it with status 1, as if the input were bad
            raise _ClosedPipe() from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="specc")
def cli():
    """Compile a YAML/JSON model spec into a trained neural network."""


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="github: workflow commands that annotate a pull request's lines; sarif: SARIF 2.1.0 for "
                   "code scanning.")
@click.option("--check-data", is_flag=True, help="Also check the .npz files the spec names, reading only their "
                                                 "headers: the arrays are there, of the right shapes and dtypes.")
@click.option("--specs-only", is_flag=True, help="Skip files without a top-level `specc:` key (for hooks given "
                                                 "every changed YAML and JSON file).")
def validate(files, fmt, check_data, specs_only):
    """Check spec files: format, names, graph and shapes. Exit 0 if all are good, 1 if any is not."""
    from .model import load
    from .spec import looks_like_spec
    results = []
    for file in files:
        if specs_only and not looks_like_spec(file):
            continue
        try:
            model = load(file)
            results.append(FileResult(file, model.check_data() if check_data else []))
        except SpecError as e:
            results.append(FileResult(file, e.problems))
    out, err = report(results, fmt)
    click.echo(out, nl=False)
    click.echo(err, nl=False, err=True)
    sys.exit(EXIT_BAD_INPUT if any(not r.ok for r in results) else 0)


@cli.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True,
              help="markdown: for a pull-request comment.")
def diff_command(old, new, fmt):
    """What changed from spec OLD to spec NEW: layers, wiring, inputs, outputs, losses, optimizer, parameters.

    Either may be REV:path, the file in that git revision (`specc diff HEAD:spec.yaml spec.yaml`). Formatting
    (key order, comments, flow or block style) is no difference. Exit 0 if they are equal, 1 if they differ,
    2 if one cannot be read or is not a valid spec."""
    from .diff import FORMATS as DIFF_FORMATS
    from .diff import SourceError, diff_specs, spec_file
    from .model import load
    sides, problems = [], []
    for argument in (old, new):
        try:
            with spec_file(argument) as (path, label):
                model = load(path)
                sides.append((label, model.spec, model.graph))
        except SourceError as e:
            raise click.UsageError(str(e)) from None
        except SpecError as e:  # the other side's problems are said too
            problems += e.problems
    if problems:
        click.echo(str(SpecError(problems)), err=True)
        sys.exit(EXIT_USAGE)
    found = diff_specs(sides[0], sides[1])
    click.echo(DIFF_FORMATS[fmt](found), nl=False)
    sys.exit(0 if found.equal else 1)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
def summary(spec):
    """Layers, nodes, output shapes and parameter counts."""
    from .model import load
    click.echo(load(spec).summary())


@cli.command()
def schema():
    """The JSON Schema of the spec format, for editors and CI."""
    from .spec.format import Spec
    click.echo(json.dumps(Spec.model_json_schema(by_alias=True), indent=2))


@cli.command()
def vocabulary():
    """Every name a spec may use: layer types with their arguments, optimizers, callbacks, losses, metrics..."""
    from .spec.vocabulary import vocabulary_markdown
    click.echo(vocabulary_markdown(), nl=False)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
def render(spec):
    """The spec with every default filled in."""
    import yaml

    from .model import load
    from .spec import render as render_spec
    click.echo(yaml.safe_dump(render_spec(load(spec).spec), sort_keys=False), nl=False)


@cli.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option("--epochs", type=click.IntRange(min=1), help="Override fit.epochs (with --resume: train up to this).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Override fit.batch_size.")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default: runs/<spec name>).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Start from these weights (or a checkpoint's).")
@click.option("--resume", type=click.Path(file_okay=False),
              help="Continue the run in this folder from its checkpoint.npz (SPEC defaults to the run's).")
@click.option("--overwrite", is_flag=True, help="Replace the run already in the output folder.")
@click.option("--quiet", is_flag=True, help="Say nothing but problems and how to resume an interrupted run.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per epoch on standard output, for machines.")
@click.option("--force", is_flag=True, help="Train even when a training step seems not to fit in this machine's "
                                            "memory.")
@click.option("--engine", type=click.Choice(["numba", "keras"]), default="numba", show_default=True,
              help="keras: Keras 3's fit on every device JAX sees (GPUs, TPUs, several hosts), data parallel; "
                   "needs pip install 'specc[keras]'.")
@click.option("--devices", type=click.IntRange(min=1), help="With --engine keras: how many local devices to use "
                                                           "(default: all).")
def train(spec, epochs, batch_size, out, weights, resume, overwrite, quiet, log_format, force, engine, devices):
    """Train from the data the spec names; write weights.npz, history.csv, checkpoint.npz and spec.yaml to --out.

    Ctrl-C (or SIGTERM) stops after the current batch, saves a checkpoint and says how to --resume."""
    import shlex

    from .model import load
    from .train.progress import Progress
    from .train.run import train_in_folder
    if devices is not None and engine != "keras":
        raise click.UsageError("--devices chooses the devices of --engine keras")
    if resume:
        for flag, given in (("--weights", weights), ("--overwrite", overwrite)):
            if given:
                raise click.UsageError(f"{flag} cannot be used with --resume: the run continues from its checkpoint")
        if out and Path(out).resolve() != Path(resume).resolve():
            raise click.UsageError("--resume DIR continues the run in DIR; leave out --out")
    elif spec is None:
        raise click.UsageError("Missing argument 'SPEC' (or --resume DIR to continue a run).")
    say = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
    if engine == "keras":
        with _keras_needed():
            from .keras.engine import train_with_keras
            run, state = train_with_keras(spec, Path(out) if out else None, Path(resume) if resume else None,
                                          epochs, batch_size, weights, overwrite, devices, say,
                                          quiet or log_format == "json")
        if (state.stopped or {}).get("reason") == "interrupted":
            sys.exit(EXIT_INTERRUPTED)
        say(f"Saved {run.weights}, history.csv, checkpoint.npz and spec.yaml")
        return
    model, run = train_in_folder(
        load, spec, Path(out) if out else None, Path(resume) if resume else None, epochs, batch_size, weights,
        overwrite, lambda epochs, steps: Progress(epochs, steps, quiet=quiet, log_format=log_format), say, force)
    stopped = model.stopped or {}
    if stopped.get("reason") == "interrupted":
        click.echo(f"Interrupted at {model.train_state.describe()}; saved {run.checkpoint} (its weights work "
                   f"with --weights too).\nResume with: specc train --resume {shlex.quote(str(run.path))}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if stopped.get("reason") == "nan":
        click.echo(f"Saved the last good weights to {run.weights}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    say(f"Saved {run.weights}, history.csv, checkpoint.npz and spec.yaml")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--weights", required=True, type=click.Path(dir_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(),
              help="An .npz (or a folder of NAME.npy files) with one array per model input.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write predictions.")
@click.option("--batch-size", type=click.IntRange(min=1))
def predict(spec, weights, data_path, output, batch_size):
    """Write one array per model output, named after it."""
    from .model import load
    from .train.loop import write_predictions
    model = load(spec)
    model.load_weights(weights)
    data = model.read_data(data_path, with_targets=False)
    shapes = write_predictions(model.graph, model.params, data.inputs, batch_size or model.spec.fit.batch_size,
                               output)
    click.echo(f"Wrote {output}: " + ", ".join(f"{name} {shape}" for name, shape in shapes.items()), err=True)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--weights", required=True, type=click.Path(dir_okay=False))
@click.option("--data", "data_path", type=click.Path(),
              help="An .npz (or a folder of NAME.npy files) with inputs and targets (default: the spec's "
                   "validation data).")
@click.option("--batch-size", type=click.IntRange(min=1))
def evaluate(spec, weights, data_path, batch_size):
    """Loss and metrics of trained weights on a dataset."""
    from .model import load
    model = load(spec)
    model.load_weights(weights)
    if data_path:
        data = model.read_data(data_path)
    else:
        train, data = model.spec_data()
        if data is None:
            click.echo("The spec has no validation data: evaluating on its training data (--data FILE chooses "
                       "other data)", err=True)
            data = train
    for name, value in model.evaluate(data, batch_size=batch_size).items():
        click.echo(f"{name}: {value:.4f}")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--rows", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def synth(spec, output, rows, seed):
    """Random inputs and targets of the right names, shapes and dtypes (ids within their Embedding's range)."""
    from .io.weights import write_members
    from .model import load
    from .synth import synthetic_members
    model = load(spec)
    train = model.spec.data.train if model.spec.data else None
    members = synthetic_members(model.graph, model.losses(), rows, seed, train.inputs if train else None,
                                train.targets if train else None)
    write_members(output, members)
    click.echo(f"Wrote {output}: " + ", ".join(f"{name} {shape} {dtype}" for name, shape, dtype, _ in members),
               err=True)


@contextlib.contextmanager
def _keras_needed():
    """A command that needs the optional Keras extra: without it, say what to install and exit 2."""
    from .keras import KerasMissing
    try:
        yield
    except KerasMissing as e:
        click.echo(f"specc: {e}", err=True)
        sys.exit(EXIT_USAGE)


@cli.command("export")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights (or a checkpoint) to put in the model "
                                                                 "(default: the spec's initial weights).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="model.keras: a Keras 3 model, compiled as the spec says (needs pip install 'specc[keras]'); "
                   "model.onnx: an ONNX model for serving (needs pip install 'specc[onnx]').")
def export_command(spec, weights, output):
    """Write the spec's model, with its weights, in another framework's format (chosen by the -o suffix)."""
    from .model import load
    suffix = Path(output).suffix.lower()
    if suffix not in (".keras", ".onnx"):
        raise click.UsageError(f"cannot tell the format from '{output}'; name a .keras or .onnx file")
    model = load(spec)
    if weights:
        model.load_weights(weights)
    if suffix == ".onnx":
        from .onnx.export import export_onnx
        export_onnx(model, output)
    else:
        with _keras_needed():
            from .keras.export import export_keras
            export_keras(model, output)
    click.echo(f"Wrote {output}", err=True)


@cli.command("import")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The spec to write (YAML).")
@click.option("--weights-out", type=click.Path(dir_okay=False), help="Also write the model's weights (.npz).")
def import_command(model_file, output, weights_out):
    """Write the spec of a Keras 3 model (.keras: Sequential or functional, of the layers specc has)."""
    with _keras_needed():
        from .keras.importer import NotImportable, import_model
        try:
            import_model(model_file, output, weights_out)
        except NotImportable as e:
            click.echo(f"{model_file}: {e}", err=True)
            sys.exit(EXIT_BAD_INPUT)
    click.echo(f"Wrote {output}" + (f" and {weights_out}" if weights_out else ""), err=True)


@cli.command("plot")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="model.svg, model.png or model.dot (default: the DOT source on standard output).")
@click.option("--format", "fmt", type=click.Choice(["dot", "svg", "png"]), help="Instead of the -o suffix.")
@click.option("--rankdir", type=click.Choice(["TB", "LR"]), default="TB", show_default=True,
              help="Top to bottom, or left to right.")
def plot_command(spec, output, fmt, rankdir):
    """Draw the model: inputs, layers with input -> output shapes per node, shared layers, sub-models.

    SVG and PNG are drawn by Graphviz's `dot`. Without it, the DOT source is written next to the requested
    file with the command that draws it, and the exit status is 0."""
    import shlex

    from .io.weights import write_atomically, write_text
    from .model import load
    from .plot import RenderError, find_dot, format_of, render, to_dot
    if output is None and fmt not in (None, "dot"):
        raise click.UsageError(f"--format {fmt} needs -o FILE; without -o the DOT source goes to standard output")
    if output is not None:
        fmt = fmt or format_of(Path(output))
        if fmt is None:
            raise click.UsageError(f"cannot tell the format from '{output}'; name a .svg, .png or .dot file, "
                                   "or give --format")
    source = to_dot(load(spec).graph, rankdir)
    if output is None:
        click.echo(source, nl=False)
        return
    output = Path(output)
    fallback = output.with_suffix(".dot")
    if fmt == "dot":
        write_text(output, source)
        click.echo(f"Wrote {output}", err=True)
        return
    program = find_dot()
    if program is None:
        write_text(fallback, source)
        click.echo(f"Graphviz's `dot` program is not installed, so {output} was not drawn; the graph is in "
                   f"{fallback}.\nInstall Graphviz (Debian/Ubuntu: apt install graphviz; macOS: brew install "
                   f"graphviz; others: https://graphviz.org/download/), then draw it with:\n"
                   f"  dot -T{fmt} {shlex.quote(str(fallback))} -o {shlex.quote(str(output))}", err=True)
        return
    try:
        drawing = render(source, fmt, program)
    except RenderError as e:
        write_text(fallback, source)
        raise click.ClickException(f"{e}\nThe graph is in {fallback}.") from None
    write_atomically(output, lambda f: f.write(drawing))
    click.echo(f"Wrote {output}", err=True)


@cli.command("history")
@click.argument("run", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="curves.svg, curves.html or curves.png (default: history.svg beside history.csv).")
def history_command(run, output):
    """Plot loss and metrics per epoch from RUN/history.csv (RUN may also be the CSV file itself).

    One panel per quantity, training solid and validation dashed; a row for the total loss, then one per
    output. SVG and HTML need nothing more; PNG needs matplotlib: pip install 'specc[plot]'."""
    from .curves import MissingMatplotlib, format_of, history_file, read_history, to_html, to_png, to_svg
    from .io.weights import write_atomically, write_text
    source = history_file(run)
    target = Path(output) if output else source.with_suffix(".svg")
    fmt = format_of(target)
    if fmt is None:
        raise click.UsageError(f"cannot tell the format from '{target}'; name a .svg, .html or .png file")
    data = read_history(source)
    if fmt == "png":
        try:
            png = to_png(data, str(source))
        except MissingMatplotlib:
            raise click.ClickException("PNG output needs matplotlib: pip install 'specc[plot]' "
                                       "(or write .svg or .html, which need nothing more)") from None
        write_atomically(target, lambda f: f.write(png))
    else:
        write_text(target, (to_svg if fmt == "svg" else to_html)(data, str(source)))
    click.echo(f"Wrote {target}: {len(data.epochs)} epoch(s) of {', '.join(data.columns)}", err=True)


def main(argv=None):
    """Entry point: problems in specs or data are messages and exit 1, usage errors exit 2, never a traceback."""
    try:
        cli.main(args=argv, prog_name="specc", standalone_mode=False)
    except SpecError as e:
        click.echo(str(e), err=True)
        sys.exit(EXIT_BAD_INPUT)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("\nInterrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except (_ClosedPipe, BrokenPipeError):  # end quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
    except OSError as e:  # the user's environment: a missing, unreadable or unwritable file, a full disk
        click.echo(f"{e.filename or 'specc'}: {e.strerror or e}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as e:  # noqa: BLE001 - the last line of defense against a traceback
        if os.environ.get("SPECC_DEBUG"):
            raise
        click.echo(f"specc: internal error: {type(e).__name__}: {e}\n"
                   "(this is a bug in specc; run with SPECC_DEBUG=1 for details)", err=True)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(0)
