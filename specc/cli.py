"""The `specc` command: thin click commands over the library API."""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import click

from .errors import SpecError

EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="specc")
def cli():
    """Compile a YAML/JSON model spec into a trained neural network."""


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def validate(files, fmt):
    """Check spec files: format, names, graph and shapes. Exit 0 if all are good, 1 if any is not."""
    from .model import load
    results = []
    for file in files:
        try:
            load(file)
            results.append({"file": file, "ok": True, "problems": []})
        except SpecError as e:
            results.append({"file": file, "ok": False, "problems": [p.as_dict() for p in e.problems]})
            if fmt == "text":
                click.echo(str(e), err=True)
    bad = sum(not r["ok"] for r in results)
    if fmt == "json":
        click.echo(json.dumps(results, indent=2))
    else:
        problems = sum(len(r["problems"]) for r in results)
        verdict = f"{problems} problem(s) in {bad} of {len(results)} file(s)" if bad else \
            f"{len(results)} file(s) valid"
        click.echo(verdict, err=bool(bad))
    sys.exit(EXIT_BAD_INPUT if bad else 0)


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
@click.argument("spec", type=click.Path(dir_okay=False))
def render(spec):
    """The spec with every default filled in."""
    import yaml
    from .model import load
    from .spec import render as render_spec
    click.echo(yaml.safe_dump(render_spec(load(spec).spec), sort_keys=False), nl=False)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--epochs", type=click.IntRange(min=1), help="Override fit.epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Override fit.batch_size.")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default: runs/<spec name>).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Start from these weights.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def train(spec, epochs, batch_size, out, weights, quiet):
    """Train from the data the spec names; write weights.npz, history.csv and spec.yaml to --out."""
    import yaml
    from .model import load
    from .spec import render as render_spec
    from .train.progress import Progress
    from .weights import write_text
    model = load(spec)
    if weights:
        model.load_weights(weights)
    data = model.spec_data()
    epochs = epochs or model.spec.fit.epochs
    batch = batch_size or model.spec.fit.batch_size
    steps = -(-data[0].rows // batch)
    click.echo(f"Training {model.name}: {data[0].rows} rows"
               + (f", validating on {data[1].rows}" if data[1] is not None else "")
               + f", {epochs} epoch(s) of {steps} batch(es)", err=True)
    history = model.fit(epochs=epochs, batch_size=batch, data=data, progress=Progress(epochs, steps, quiet=quiet))
    out_dir = Path(out or Path("runs") / model.name)
    model.save_weights(out_dir / "weights.npz")
    write_text(out_dir / "history.csv", history_csv(history))
    write_text(out_dir / "spec.yaml", yaml.safe_dump(render_spec(model.spec), sort_keys=False))
    click.echo(f"Saved {out_dir / 'weights.npz'}, history.csv and spec.yaml", err=True)


def history_csv(history: list[dict]) -> str:
    buffer = io.StringIO()
    columns = ["epoch", *history[0]] if history else ["epoch"]
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for epoch, logs in enumerate(history, 1):
        writer.writerow({"epoch": epoch, **{k: repr(v) for k, v in logs.items()}})
    return buffer.getvalue()


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--weights", required=True, type=click.Path(dir_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False),
              help="An .npz with one array per model input.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write predictions.")
@click.option("--batch-size", type=click.IntRange(min=1))
def predict(spec, weights, data_path, output, batch_size):
    """Write one array per model output, named after it."""
    from .model import load
    from .weights import save_arrays
    model = load(spec)
    model.load_weights(weights)
    data = model.read_data(data_path, with_targets=False)
    predictions = model.predict(data, batch_size=batch_size)
    save_arrays(output, predictions)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in predictions.items())
    click.echo(f"Wrote {output}: {shapes}", err=True)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--weights", required=True, type=click.Path(dir_okay=False))
@click.option("--data", "data_path", type=click.Path(dir_okay=False),
              help="An .npz with inputs and targets (default: the spec's validation data).")
@click.option("--batch-size", type=click.IntRange(min=1))
def evaluate(spec, weights, data_path, batch_size):
    """Loss and metrics of trained weights on a dataset."""
    from .model import load
    model = load(spec)
    model.load_weights(weights)
    data = model.read_data(data_path) if data_path else None
    for name, value in model.evaluate(data, batch_size=batch_size).items():
        click.echo(f"{name}: {value:.4f}")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--rows", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def synth(spec, output, rows, seed):
    """Random inputs and targets of the right names, shapes and dtypes (ids within their Embedding's range)."""
    from .model import load
    from .synth import synthesize
    from .weights import save_arrays
    model = load(spec)
    train = model.spec.data.train if model.spec.data else None
    arrays = synthesize(model.graph, model.losses(), rows, seed, train.inputs if train else None,
                        train.targets if train else None)
    save_arrays(output, arrays)
    click.echo(f"Wrote {output}: " + ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in arrays.items()), err=True)


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
    except Exception as e:  # noqa: BLE001 - the last line of defense against a traceback
        if os.environ.get("SPECC_DEBUG"):
            raise
        click.echo(f"specc: internal error: {type(e).__name__}: {e}\n"
                   "(this is a bug in specc; run with SPECC_DEBUG=1 for details)", err=True)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(0)
