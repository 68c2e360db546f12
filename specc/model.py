"""The library API: a spec loaded, compiled and ready to fit, evaluate, predict, save and load."""
from __future__ import annotations

import contextlib
import glob
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from .errors import KeyPath, Problem, SpecError
from .graph import Graph, GraphLayer, compile_spec
from .io.data import Dataset, check_headers, load_dataset, split
from .io.weights import load_arrays, save_arrays, weights_of
from .runtime.parameters import Parameters
from .spec import SourceMap, Spec, load_spec
from .spec.imports import Imports
from .train.checks import check_training
from .train.run import CHECKPOINT, RunFolder


@contextlib.contextmanager
def located(source: SourceMap):
    """Give problems that only know their key path a file, line and column."""
    try:
        yield
    except SpecError as e:
        for problem in e.problems:
            if problem.file is None:
                source.locate(problem)
        sort_by_place(e.problems, source)
        raise


def sort_by_place(problems: list[Problem], source: SourceMap):
    """The spec's own problems first, in line order; then those of other files."""
    problems.sort(key=lambda p: (p.file != source.file, p.line or 0, p.column or 0))


class Model:
    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self._imports = Imports(self.path)
        self.spec, self.source = self._load_spec()
        with located(self.source):
            self.graph: Graph = compile_spec(self.spec, self._imports)
            problems = check_training(self.spec, self.graph)
            if problems:
                raise SpecError(problems)
        self._params: Optional[Parameters] = None
        self._optimizer = None
        self.stopped: Optional[dict] = None  # why the last fit() ended early: {"reason", "message", ...}
        self.train_state = None              # where the last fit() ended

    def _load_spec(self) -> tuple[Spec, SourceMap]:
        """The validated spec; when it is broken, the problems of its whole parts are reported with it."""
        try:
            return load_spec(self.path)
        except SpecError as e:
            stand_in = e.stand_in
            if stand_in is not None:
                try:
                    with located(stand_in.source):
                        compile_spec(stand_in.spec, self._imports, names_only=True)
                except SpecError as more:
                    e.problems += [p for p in more.problems
                                   if not any(p.path[:len(b)] == b for b in stand_in.broken)]
                    sort_by_place(e.problems, stand_in.source)
            raise

    # -- structure ---------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    def get_layer(self, name: str) -> GraphLayer:
        return self.graph.get_layer(name)

    def count_params(self) -> int:
        return self.graph.count_params()

    def summary(self) -> str:
        from .summary import summary_table
        return summary_table(self.graph)

    # -- weights -----------------------------------------------------------------------------------------
    @property
    def params(self) -> Parameters:
        if self._params is None:
            self._params = Parameters(self.graph)
            self._params.initialize(self.spec.seed)
            for imported in self._imports.weights:
                arrays = load_arrays(imported.weights)
                mine = {k[len(imported.their_prefix):]: v for k, v in arrays.items()
                        if k.startswith(imported.their_prefix)}
                self._params.assign(mine, str(imported.weights), prefix=imported.key + "/")
        return self._params

    def get_weights(self) -> dict[str, np.ndarray]:
        return self.params.as_dict()

    def save_weights(self, path: Union[str, Path]):
        save_arrays(path, self.params.as_dict())

    def load_weights(self, path: Union[str, Path]):
        """From a weights file, or the weights in a checkpoint."""
        self.params.assign(weights_of(load_arrays(path)), str(path))

    # -- data --------------------------------------------------------------------------------------------
    def _objective(self):
        from .train.objective import Objective
        return Objective.from_compile(self.spec.compile, self.graph)

    def losses(self) -> dict[str, str]:
        """The loss of each output, by output name."""
        return self._objective().loss_names

    def _target_kinds(self) -> dict[str, str]:
        return {output: loss.targets for output, loss in self._objective().losses.items()}

    def spec_data(self) -> tuple[Dataset, Optional[Dataset]]:
        """The training data the spec names, and its validation data (a set, a split, or none)."""
        data = self.spec.data
        if data is None:
            raise SpecError([self.source.locate(Problem(
                "the spec has no `data:` section to train from; add `data: {train: file.npz}` with arrays named "
                "after the inputs and outputs (`specc synth SPEC -o file.npz` writes random ones)"))])
        train = self._read(data.train, ("data", "train"))
        if data.validation is not None:
            return train, self._read(self._validation_source(data), ("data", "validation"))
        if data.validation_split > 0:
            train, validation = split(train, data.validation_split)
            for part, rows, purpose in (("training", train.rows, "train on"), ("validation", validation.rows,
                                                                                "validate on")):
                if rows == 0:
                    with located(self.source):
                        raise SpecError([Problem(
                            f"validation_split {data.validation_split} of {train.rows + validation.rows} row(s) "
                            f"leaves no {part} rows to {purpose}; change the split or add rows",
                            ("data", "validation_split"))])
            return train, validation
        return train, None

    @staticmethod
    def _validation_source(data):
        """A spec's validation file: usually laid out like the training file, whose names carry over."""
        train, validation = data.train, data.validation
        return validation.model_copy(update={
            "inputs": validation.inputs if validation.inputs is not None else train.inputs,
            "targets": validation.targets if validation.targets is not None else train.targets})

    def check_data(self) -> list[Problem]:
        """What the headers of the data files the spec names show to be wrong (a missing file or array, a shape,
        a dtype, numbers of rows, shards that disagree), each at the spec's key that names it; no array is read."""
        data = self.spec.data
        if data is None:
            return []
        sources = [(data.train, ("data", "train"))]
        if data.validation is not None:
            sources.append((self._validation_source(data), ("data", "validation")))
        problems = []
        for source, where in sources:
            try:
                paths, shown = self._files(source, where)
            except SpecError as e:
                problems += e.problems
                continue
            problems += check_headers(paths, self.graph, self._target_kinds(), source.inputs, source.targets, where,
                                      shown_as=shown, sample_weight=source.sample_weight)
        return [self.source.locate(problem) for problem in problems]

    def _files(self, source, where: KeyPath) -> tuple[list[Path], list[str]]:
        """The files of a data source (its path, or its shards: a list of paths and glob patterns, each pattern's
        files in name order) and how the spec names them; a pattern no file matches is a SpecError."""
        named = [source.path] if isinstance(source.path, str) else source.path
        paths, shown = [], []
        for index, name in enumerate(named):
            if not glob.has_magic(name):
                paths.append(self.path.parent / name)
                shown.append(name)
                continue
            found = sorted(glob.glob(name, root_dir=self.path.parent))
            if not found:
                at = where + ("path",) + (() if isinstance(source.path, str) else (index,))
                raise SpecError([Problem(f"no file matches '{name}' (relative to the spec's folder, "
                                         f"{self.path.parent})", at)])
            paths += [self.path.parent / f for f in found]
            shown += found
        return paths, shown

    def _read(self, source, where: KeyPath) -> Dataset:
        with located(self.source):
            paths, shown = self._files(source, where)
            return load_dataset(paths, self.graph, self._target_kinds(), source.inputs, source.targets, where,
                                shown_as=shown, sample_weight=source.sample_weight)

    def read_data(self, path: Union[str, Path], with_targets: bool = True) -> Dataset:
        """A data file given outside the spec: arrays named like the model's inputs and outputs, or as the
        spec's training data maps them."""
        train = self.spec.data.train if self.spec.data else None
        return load_dataset(Path(path), self.graph, self._target_kinds(), train.inputs if train else None,
                            train.targets if train else None, None, with_targets=with_targets)

    # -- training and inference --------------------------------------------------------------------------
    def fit(self, epochs: Optional[int] = None, batch_size: Optional[int] = None, progress=None,
            data: Optional[tuple[Dataset, Optional[Dataset]]] = None, *, out: Union[str, Path, None] = None,
            resume=None, stop: Optional[Callable[[], bool]] = None,
            callbacks: Optional[list] = None) -> list[dict[str, float]]:
        """Train; returns the history, one dict of logs per epoch (a resumed run's earlier epochs included).

        out: a run folder. checkpoint.npz (everything --resume needs) and history.csv are rewritten there
            after every epoch, and the spec's callbacks write their files there (default: the current folder).
        resume: a run folder (or its checkpoint file, or a loaded Checkpoint) to continue from: weights,
            optimizer state, epoch, batch, shuffling and callbacks carry on exactly where the run stopped.
            `out` defaults to that folder.
        stop: asked after every batch; when it returns True, training stops there and writes its checkpoint.
        callbacks: Callback objects to run after the spec's.
        After it returns, `model.stopped` says why training ended early (None when it ran every epoch)."""
        from .spec import render
        from .train.adapt import adapt
        from .train.checkpoint import TrainState
        from .train.loop import FitConfig, fit
        from .train.run import resume_epochs
        train, validation = data if data is not None else self.spec_data()
        if self.spec.data is None:  # the spec could not tell whether there is validation data: now it can
            self._check_monitors(validation is not None)
        fit_spec = self.spec.fit
        if fit_spec.class_weight is not None:
            from .io.data import class_weights
            train = class_weights(train, self.graph.outputs[0], fit_spec.class_weight)
        if resume is not None:
            checkpoint = self._resume_from(resume, train, batch_size)
            state = checkpoint.state
            out = out if out is not None else checkpoint.path.parent
            epochs, batch_size = epochs or resume_epochs(self.spec, state), state.batch_size
        else:
            epochs, batch_size = epochs or fit_spec.epochs, batch_size or fit_spec.batch_size
            state = TrainState.fresh(self.spec.seed, epochs, batch_size)
            state.run = {"spec": str(self.path.resolve()), "rendered": render(self.spec), "rows": train.rows,
                         **data_identity(train)}
            adapt(self.graph, self.params, train)  # Normalization layers' statistics, before the first step
        config = FitConfig(epochs, batch_size, fit_spec.shuffle, self.spec.seed,
                           [c.make() for c in fit_spec.callbacks] + list(callbacks or []), progress, stop,
                           RunFolder(Path(out)).files() if out is not None else None)
        history = fit(self.graph, self.params, self.optimizer, self._objective(), train, validation, config, state)
        self.stopped, self.train_state = state.stopped, state
        return history

    @property
    def optimizer(self):
        """The optimizer of this model's training: it keeps its state from one fit() to the next."""
        if self._optimizer is None:
            from .train.optimizers import Optimizer
            self._optimizer = Optimizer(self.spec.compile.optimizer, self.params.trainable_size, self.params.dtype,
                                        self.params.trainable_array_sizes)
        return self._optimizer

    def _check_monitors(self, validation: bool):
        problems = check_training(self.spec, self.graph, validation)
        if problems:
            with located(self.source):
                raise SpecError(problems)

    def _resume_from(self, resume, train: Dataset, batch_size: Optional[int]):
        """The checkpoint to continue from, its weights and optimizer state restored; refused when it is not
        the same run (another spec, other data, another batch size)."""
        from .spec import render
        from .train.callbacks import state_problems
        from .train.checkpoint import Checkpoint, load_checkpoint
        from .train.run import check_same_run
        if isinstance(resume, Checkpoint):
            checkpoint = resume
        else:
            path = Path(resume)
            checkpoint = load_checkpoint(path / CHECKPOINT if path.is_dir() else path)
        check_same_run(checkpoint, render(self.spec), train.rows, batch_size, train.identities(),
                       lambda: _fingerprint(train))
        problems = state_problems([c.make() for c in self.spec.fit.callbacks], checkpoint.state.callbacks,
                                  checkpoint.state.callback_arrays, self.params.values.size)
        if problems:
            raise SpecError([Problem(message, file=str(checkpoint.path)) for message in problems])
        self.params.assign(checkpoint.weights, str(checkpoint.path))
        checkpoint.restore_optimizer(self.optimizer)
        return checkpoint

    def evaluate(self, data: Optional[Dataset] = None, batch_size: Optional[int] = None) -> dict[str, float]:
        from .train.loop import evaluate
        if data is None:
            train, validation = self.spec_data()
            data = validation if validation is not None else train
        return evaluate(self.graph, self.params, self._objective(), data, batch_size or self.spec.fit.batch_size)

    def predict(self, inputs, batch_size: Optional[int] = None) -> dict[str, np.ndarray]:
        """Outputs by name, for inputs given as {name: array}, a list in input order, or one array."""
        from .train.loop import predict
        if isinstance(inputs, Dataset):
            inputs = inputs.inputs
        elif isinstance(inputs, np.ndarray):
            inputs = [inputs]
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != len(self.graph.inputs):
                raise ValueError(f"{len(inputs)} array(s) given; the model has inputs {list(self.graph.inputs)}")
            inputs = dict(zip(self.graph.inputs, inputs))
        missing = [n for n in self.graph.inputs if n not in inputs]
        if missing:
            raise ValueError(f"no array for input(s) {missing}")
        arrays = {}
        for name, shape in self.graph.inputs.items():
            array = np.asarray(inputs[name])
            if array.shape[1:] != shape:
                raise ValueError(f"input '{name}' needs shape (rows, {', '.join(map(str, shape))}), "
                                 f"got {array.shape}")
            arrays[name] = array.astype(self.graph.input_dtypes[name], copy=False)
        return predict(self.graph, self.params, arrays, batch_size or self.spec.fit.batch_size)


def data_identity(data: Dataset) -> dict:
    """How a run knows its training data again: each file's identity (from the archive's index: instant at any
    size), and for data in memory a fingerprint of sampled rows (which data given to `fit` may be checked by)."""
    identity: dict[str, object] = {} if data.mapped else {"data": _fingerprint(data)}
    if data.sources:
        identity["files"] = data.identities()
    return identity


def _fingerprint(data: Dataset) -> str:
    from .io.fingerprint import fingerprint
    weights = {} if data.sample_weight is None else {"sample_weight": data.sample_weight}
    return fingerprint({**{f"inputs/{k}": v for k, v in data.inputs.items()},
                        **{f"targets/{k}": v for k, v in data.targets.items()}, **weights})


def load(path: Union[str, Path]) -> Model:
    """Read, validate and compile a spec; raises SpecError naming file, line and key of every problem."""
    return Model(path)
