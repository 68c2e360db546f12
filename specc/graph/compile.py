"""Compiling a validated spec into a Graph: names resolved, nodes ordered, every shape inferred.

Problems are collected rather than raised one at a time, so a user sees all of them in one run; each
carries the key path of the spec entry that causes it.
"""
from __future__ import annotations

from typing import Callable, Literal, Optional, Union, overload

from ..errors import KeyPath, Problem, SpecError, did_you_mean
from ..layers import Layer, Wrapper
from ..layers.wrappers import keras_name
from ..spec.format import Call, GraphModel, ImportedModel, LayerEntry, SequentialModel, Spec, names
from .graph import Graph
from .nodes import CallError, GraphLayer, LayerCall, ModelCall, Node, WrapperCall, tensor_names, wrapped_by

# Given an ImportedModel entry and its key path, returns the definition of the model it names.
ImportResolver = Callable[[ImportedModel, KeyPath], Union[GraphModel, SequentialModel]]


class _Problems(list):
    def add(self, path: KeyPath, message: str, at_key: bool = False):
        self.append(Problem(message, tuple(path), at_key=at_key))


class _SelfCall(Exception):
    """A model reached again while it is being compiled: it would contain itself."""


class _Scope:
    """Sub-model definitions visible from a graph: its own `models:` and those of enclosing graphs."""

    def __init__(self, definitions: dict, path: KeyPath, key_prefix: str, parent: Optional["_Scope"],
                 compiler: "_Compiler"):
        self.definitions, self.path, self.key_prefix, self.parent = definitions, path, key_prefix, parent
        self.compiler = compiler
        self.compiling: set[str] = set()  # models whose compiling has begun and not ended
        self.compiled: dict[str, Optional[GraphLayer]] = {}  # name -> its GraphLayer, or None if it failed

    def names(self) -> list[str]:
        return list(self.definitions) + (self.parent.names() if self.parent else [])

    def find(self, name: str) -> Optional[GraphLayer]:
        if name in self.definitions:
            if name in self.compiling:
                raise _SelfCall(name)
            if name not in self.compiled:
                self.compiling.add(name)
                self.compiled[name] = self.compiler.sub_model(name, self.definitions[name],
                                                               self.path + ("models", name), self)
                self.compiling.remove(name)
            return self.compiled[name]
        return self.parent.find(name) if self.parent else None


class _Compiler:
    def __init__(self, resolve_import: Optional[ImportResolver], names_only: bool = False):
        self.problems = _Problems()
        self.names_only = names_only  # stop after resolving names: no shapes, no graph
        self.resolve_import = resolve_import
        self.importing: list[tuple[int, str, KeyPath]] = []  # (id of a definition, its `from:`, where) in progress

    def sub_model(self, name: str, definition, path: KeyPath, scope: _Scope) -> Optional[GraphLayer]:
        key = f"{scope.key_prefix}{name}"
        trainable = definition.trainable
        if isinstance(definition, ImportedModel):
            if self.resolve_import is None:
                self.problems.add(path + ("from",), "importing models from other specs is not available here")
                return None
            entry = definition
            try:
                definition = self.resolve_import(entry, path)
            except SpecError as e:
                for problem in e.problems:  # one about the other file as a whole is told where it is imported
                    if problem.file is not None and problem.line is None:
                        problem = Problem(f"{entry.from_}: {problem.message}", path + ("from",))
                    self.problems.append(problem)
                return None
            started = next((i for i, (d, _, _) in enumerate(self.importing) if d == id(definition)), None)
            if started is not None:  # the import leads back to a model that is still being compiled
                chain = " -> ".join(f for _, f, _ in self.importing[started:])
                self.problems.add(self.importing[started][2] + ("from",),
                                  f"importing {chain} leads back to this same model; a model cannot contain itself")
                return None
            self.importing.append((id(definition), entry.from_, path))
            try:
                return self._sub_model(name, key, definition, trainable, path, scope)
            finally:
                self.importing.pop()
        return self._sub_model(name, key, definition, trainable, path, scope)

    def _sub_model(self, name: str, key: str, definition, trainable: bool, path: KeyPath,
                   scope: _Scope) -> Optional[GraphLayer]:
        if isinstance(definition, SequentialModel):
            definition = sequential_as_graph(definition, path, self.problems)
            if definition is None:
                return None
        graph = self.graph(name, definition, path, _Scope(definition.models, path, key + "/", scope, self))
        if graph is None:
            return None
        return ModelCall(name, key, path, trainable=trainable, graph=graph)

    def graph(self, name: str, model: GraphModel, path: KeyPath, scope: _Scope) -> Optional[Graph]:
        before = len(self.problems)
        problems = self.problems
        shapes = {n: tuple(i.shape) for n, i in model.inputs.items()}
        dtypes: dict[str, str] = {n: i.dtype for n, i in model.inputs.items()}
        layers: dict[str, GraphLayer] = {}
        calls: dict[str, tuple[GraphLayer | None, list[str], KeyPath]] = {}  # tensor -> (callee, inputs, path)
        model_names = set(scope.names())

        for entry_name, entry in model.layers.items():
            entry_path = path + ("layers", entry_name)
            if entry_name in shapes:
                problems.add(entry_path, f"'{entry_name}' is already the name of an input")
                continue
            if isinstance(entry, Layer):
                if entry_name in model_names:
                    problems.add(entry_path, f"'{entry_name}' is already the name of a model")
                layers[entry_name] = graph_layer(entry_name, scope.key_prefix + entry_name, entry, entry_path)
        for layer in layers.values():
            if isinstance(layer, WrapperCall):
                layer.inner = self.wrapped(layer, layers, scope)
        self.wrapping_cycles(layers)
        places: dict[str, list[KeyPath]] = {}  # entry -> where each tensor it reads is named
        for entry_name, entry in model.layers.items():
            entry_path = path + ("layers", entry_name)
            if entry_name in shapes or not entry.input_names:
                continue
            callee = layers.get(entry_name) if isinstance(entry, Layer) else self.callee(entry, entry_path,
                                                                                         layers, scope)
            calls[entry_name] = (callee, [*entry.input_names, *_call_tensors(entry)], entry_path)
            places[entry_name] = _reference_places(entry, entry_path)
        # every tensor an entry makes: NAME, or NAME.0, NAME.1, ... for a layer with several outputs
        made = {entry_name: tensor_names(entry_name, 1 if callee is None or _unresolved(callee)
                                         else callee.output_count())
                for entry_name, (callee, _, _) in calls.items()}
        produced = {tensor: entry_name for entry_name, tensors in made.items() for tensor in tensors}

        for entry_name, (_, inputs, _) in calls.items():
            for tensor, where in zip(inputs, places[entry_name]):
                if tensor not in shapes and tensor not in produced:
                    problems.add(where, _unknown_tensor(tensor, [*shapes, *produced], made, layers))
        wrapped_layers: set[GraphLayer] = set()  # what each wrapper applies, and what that applies, ...
        for layer in layers.values():
            inner = wrapped_by(layer)
            while inner is not None and inner not in wrapped_layers:
                wrapped_layers.add(inner)
                inner = wrapped_by(inner)
        called_layers = {callee for callee, _, _ in calls.values() if callee is not None}
        for layer_name, layer in layers.items():
            if not model.layers[layer_name].input_names and layer not in called_layers \
                    and layer not in wrapped_layers:
                problems.add(layer.path, f"layer '{layer_name}' is defined but never called; give it `inputs:` "
                                         f"or call it with `{{call: {layer_name}, inputs: ...}}`")
        outputs = names(model.outputs)
        self.check_outputs(outputs, dtypes, made, produced, layers, path)
        names_known = len(problems) == before
        # entries read entries: what each depends on, for ordering and reachability
        reads = {entry_name: (callee, [produced.get(t, t) for t in inputs], entry_path)
                 for entry_name, (callee, inputs, entry_path) in calls.items()}
        order, in_cycles = self.order(reads)
        if names_known and not self.names_only:  # stand-ins may not be wired as what they replace
            self.check_reachable([produced.get(o, o) for o in outputs], dtypes, reads, path, in_cycles)
        if self.names_only:
            return None

        # every entry whose inputs are known gets its shape, whatever was found wrong elsewhere
        nodes: list[Node] = []
        for entry_name in order:
            callee, inputs, entry_path = calls[entry_name]
            if callee is None:
                continue
            if any(t not in shapes for t in inputs):
                continue  # an input is unknown, in a cycle or failed to compile: that problem is reported
            if _unresolved(callee):
                continue  # what it wraps is unknown; that problem is reported
            entry = model.layers[entry_name]
            try:
                node = callee.call(inputs, made[entry_name], [shapes[t] for t in inputs],
                                   [dtypes.get(t) for t in inputs], entry_path, len(_call_tensors(entry)))
            except CallError as e:
                problems.add(entry_path + e.key, e.message)
                continue
            nodes.append(node)
            layers[callee.name] = callee
            shapes.update(zip(node.outputs, node.output_shapes))
        if len(problems) > before:
            return None

        return Graph(name, {n: shapes[n] for n in dtypes}, dtypes, nodes, outputs, layers, shapes)

    def callee(self, entry: Call, path: KeyPath, layers: dict, scope: _Scope) -> Optional[GraphLayer]:
        target = entry.call
        if target in layers:
            return layers[target]
        try:
            found = scope.find(target)
        except _SelfCall:
            self.problems.add(path + ("call",), f"model '{target}' calls itself")
            return None
        if found is None and target not in scope.names():
            self.problems.add(path + ("call",), f"no layer or model named '{target}'"
                                                f"{did_you_mean(target, [*layers, *scope.names()])}")
        return found

    def wrapped(self, wrapper: WrapperCall, layers: dict, scope: _Scope) -> Optional[GraphLayer]:
        """The layer or model a wrapper applies: named elsewhere (shared weights) or inline."""
        target = wrapper.config.layer
        where = wrapper.path + ("layer",)
        if not isinstance(target, str):  # named after its type unless given a name, a level of the keys as in Keras
            name = target.name or keras_name(type(target).__name__)
            inline = graph_layer(name, f"{wrapper.key}/{name}", target, where)
            inline.former_key = wrapper.former_key or wrapper.key
            if isinstance(inline, WrapperCall):  # TimeDistributed(TimeDistributed(...)): resolve that one too
                inline.inner = self.wrapped(inline, layers, scope)
            return inline
        if target == wrapper.name:
            self.problems.add(where, f"a {type(wrapper.config).__name__} cannot wrap itself")
            return None
        if target in layers:
            return layers[target]
        try:
            found = scope.find(target)
        except _SelfCall:
            self.problems.add(where, f"model '{target}' calls itself")
            return None
        if found is None and target not in scope.names():
            self.problems.add(where, f"no layer or model named '{target}'"
                                     f"{did_you_mean(target, [*layers, *scope.names()])}")
        return found

    def wrapping_cycles(self, layers: dict):
        """Wrappers that wrap each other by name (a wraps b, b wraps a) would apply forever; each cycle is
        reported once, at its member listed first."""
        place = {layer: i for i, layer in enumerate(layers.values())}
        followed: set[GraphLayer] = set()  # layers whose chain of wrapped layers has been followed to its end
        cycles = []
        for layer in layers.values():
            chain: dict[GraphLayer, None] = {}  # ordered: the layers passed, each wrapping the next
            inner = layer
            while inner is not None and inner not in chain and inner not in followed:
                chain[inner] = None
                inner = wrapped_by(inner)
            followed.update(chain)
            if inner in chain:  # back at a layer passed: the layers from there on wrap each other
                passed = list(chain)
                cycle = passed[passed.index(inner):]
                first = min(range(len(cycle)), key=lambda i: place.get(cycle[i], len(place)))
                cycles.append(cycle[first:] + cycle[:first])
        for cycle in sorted(cycles, key=lambda c: place.get(c[0], len(place))):
            self.problems.add(cycle[0].path + ("layer",), "TimeDistributed layers wrap each other in a cycle: "
                              + " -> ".join(c.name for c in [*cycle, cycle[0]]))

    def order(self, calls: dict) -> tuple[list[str], set[str]]:
        """Entries in an order where each comes after the entries it reads (spec order where free), and the
        entries whose inputs form a cycle, each cycle reported once at the entry it comes back to. An entry of a
        cycle comes after the inputs it reads outside the cycle, so that what leads into a cycle gets its shape.

        Depth first with a stack of its own: a chain of entries listed outputs first is as deep as it is
        long, far deeper than Python's recursion limit."""
        order: list[str] = []
        finished: set[str] = set()
        in_cycles: set[str] = set()
        for start in calls:
            if start in finished:
                continue
            trail, on_trail = [start], {start}  # the entries being visited, each read by the one before
            sources = [iter(calls[start][1])]  # for each of them, the inputs still to visit
            while trail:
                source = next(sources[-1], None)
                if source is None:
                    done = trail.pop()
                    on_trail.remove(done)
                    sources.pop()
                    finished.add(done)
                    order.append(done)
                elif source in on_trail:
                    cycle = trail[trail.index(source):]
                    if not in_cycles.issuperset(cycle):
                        in_cycles.update(cycle)
                        self.problems.add(calls[source][2] + ("inputs",),
                                          "these layers' inputs form a cycle: " + " -> ".join([*cycle, source])
                                          + "; a layer cannot read its own output")
                elif source in calls and source not in finished:
                    trail.append(source)
                    on_trail.add(source)
                    sources.append(iter(calls[source][1]))
        return order, in_cycles

    def check_outputs(self, outputs: list[str], dtypes: dict, made: dict[str, list[str]], produced: dict[str, str],
                      layers: dict, path: KeyPath):
        """Every output is a layer's tensor, listed once."""
        if not outputs:
            self.problems.add(path + ("outputs",), "a model needs at least one output")
        for i, out in enumerate(outputs):
            where = path + ("outputs", i)
            if out in dtypes:
                self.problems.add(where, f"output '{out}' is a model input; an output must come from a layer")
            elif out not in produced:
                self.problems.add(where, _unknown_tensor(out, [*dtypes, *produced], made, layers))
        first: dict[str, int] = {}  # output -> where it is first listed
        for i, out in enumerate(outputs):
            if out in first:
                self.problems.add(path + ("outputs", i), f"output '{out}' is listed twice "
                                                         f"(first as outputs[{first[out]}])")
            else:
                first[out] = i

    def check_reachable(self, outputs: list[str], dtypes: dict, calls: dict, path: KeyPath, in_cycles: set[str]):
        """Every input and every layer's entry leads to an output (a layer of a cycle is reported as that);
        `outputs` and what `calls` read are entries and inputs."""
        needed = set()
        stack = list(outputs)
        while stack:
            tensor = stack.pop()
            if tensor not in needed:
                needed.add(tensor)
                stack.extend(calls[tensor][1] if tensor in calls else [])
        for name in dtypes:
            if name not in needed:
                self.problems.add(path + ("inputs", name), f"input '{name}' does not reach any output")
        for tensor, (_, _, entry_path) in calls.items():
            if tensor not in needed and tensor not in in_cycles:
                self.problems.add(entry_path, f"'{tensor}' reaches no output; list it in `outputs` or remove it")


def graph_layer(name: str, key: str, config: Layer, path: KeyPath) -> GraphLayer:
    """The graph's own record of a layer entry: a wrapper's what it wraps is resolved later."""
    if isinstance(config, Wrapper) and not config.builds_own_layers:
        return WrapperCall(name, key, path, trainable=config.trainable, config=config)
    return LayerCall(name, key, path, trainable=config.trainable, config=config)


def _call_tensors(entry) -> list[str]:
    """The tensors an entry's call arguments name (an RNN's initial_state): inputs of its node after `inputs:`."""
    return entry.call_tensors() if isinstance(entry, Layer) else []


def _reference_places(entry, entry_path: KeyPath) -> list[KeyPath]:
    """Where the entry names each tensor it reads: in `inputs:`, then in its tensor-valued call arguments."""
    listed = isinstance(entry.inputs, list)
    places = [entry_path + (("inputs", i) if listed else ("inputs",)) for i in range(len(entry.input_names))]
    for argument in entry.tensor_arguments if isinstance(entry, Layer) else ():
        value = getattr(entry, argument)
        if isinstance(value, str):
            places.append(entry_path + (argument,))
        elif value is not None:
            places += [entry_path + (argument, i) for i in range(len(value))]
    return places


def _unknown_tensor(tensor: str, known: list[str], made: dict[str, list[str]], layers: dict) -> str:
    """What is wrong with a reference to a tensor no input or entry makes."""
    entry, dot, index = tensor.partition(".")
    if entry in made:  # the entry exists: the output it selects does not
        choices = ", ".join(made[entry])
        if not dot:
            return f"'{entry}' has {len(made[entry])} outputs; name one of them: {choices}"
        if len(made[entry]) == 1:
            return f"'{entry}' has one output; refer to it as '{entry}'"
        return f"'{entry}' has no output {index!r}; its outputs are {choices}"
    hint = did_you_mean(tensor, known)
    defined_only = " (that entry only defines a layer; use `call:` to apply it)" if tensor in layers and not hint \
        else ""
    return f"unknown tensor '{tensor}'{hint}{defined_only}"


def _unresolved(layer: GraphLayer) -> bool:
    """A wrapper, or a wrapper inside it, whose layer could not be resolved or that wraps itself (a cycle of
    wrappers, reported where it is found)."""
    passed = set()
    while isinstance(layer, WrapperCall):
        if layer.inner is None or layer in passed:
            return True
        passed.add(layer)
        layer = layer.inner
    return False


SEQUENTIAL_INPUT = "input"  # the name of a sequential model's input tensor


def sequential_as_graph(model: SequentialModel, path: KeyPath, problems: _Problems) -> Optional[GraphModel]:
    """A stack as a functional model: input 'input', each layer named as in Keras (dense, dense_1, ...),
    automatic names skipping the names given with `name:`. None when a name given cannot be used (two layers
    given one name, or a layer named like the input): those problems are added at the names."""
    given: dict[str, int] = {}  # name -> the entry that gives it
    before = len(problems)
    for i, entry in enumerate(model.sequential):
        where = path + ("sequential", i, "name")
        if entry.name == SEQUENTIAL_INPUT:
            problems.add(where, f"'{SEQUENTIAL_INPUT}' is the name of the model's input; give the layer another "
                                "name")
        elif entry.name in given:
            problems.add(where, f"layer name '{entry.name}' is already used by sequential[{given[entry.name]}]")
        elif entry.name is not None:
            given[entry.name] = i
    if len(problems) > before:
        return None
    layers: dict[str, LayerEntry] = {}
    counts: dict[str, int] = {}  # names handed out per stem
    previous = SEQUENTIAL_INPUT
    for entry in model.sequential:
        name = entry.name if entry.name is not None else _automatic_name(type(entry).__name__, counts, given)
        layers[name] = entry.model_copy(update={"inputs": previous})
        previous = name
    return GraphModel(inputs={SEQUENTIAL_INPUT: model.input}, layers=layers, outputs=[previous],
                      trainable=model.trainable)


def _automatic_name(type_name: str, counts: dict[str, int], given: dict[str, int]) -> str:
    """Keras' next name for a layer of this type (dense, dense_1, ...), skipping the names given explicitly."""
    stem = keras_name(type_name)
    while True:
        count = counts.get(stem, 0)
        counts[stem] = count + 1
        name = stem if count == 0 else f"{stem}_{count}"
        if name not in given:
            return name


@overload
def compile_spec(spec: Spec, resolve_import: Optional[ImportResolver] = None,
                 names_only: Literal[False] = False) -> Graph: ...


@overload
def compile_spec(spec: Spec, resolve_import: Optional[ImportResolver] = None, *,
                 names_only: Literal[True]) -> None: ...


def compile_spec(spec: Spec, resolve_import: Optional[ImportResolver] = None,
                 names_only: bool = False) -> Optional[Graph]:
    """The spec's model as a Graph; raises SpecError with every problem found (paths, not yet positions).

    names_only: check that every name resolves, and return nothing (for a spec that stands in for a broken one)."""
    compiler = _Compiler(resolve_import, names_only)
    if spec.data is not None and spec.data.validation is not None and spec.data.validation_split > 0:
        compiler.problems.add(("data", "validation_split"), "give either `validation` or `validation_split`, "
                                                             "not both")
    graph = compiler.graph(spec.name, spec, (), _Scope(spec.models, (), "", None, compiler))
    if compiler.problems:
        raise SpecError(list(compiler.problems))
    return graph
