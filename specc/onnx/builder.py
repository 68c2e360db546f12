"""An ONNX graph under construction: nodes, initializers and unique value names, through onnx.helper."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

FLOAT = np.float32  # every weight and float tensor of an exported model


class GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._names: set[str] = set()
        self._weights: dict[str, str] = {}  # weight key -> initializer name, so shared layers share them
        self.scope = ""  # the tensor whose operators are being added: the default stem of value names

    def fresh(self, hint: str) -> str:
        """A value name not used yet, read from `hint`."""
        name, n = hint, 1
        while name in self._names:
            n += 1
            name = f"{hint}_{n}"
        self._names.add(name)
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str = "", **attributes) -> str:
        """One node; the name of its output. An input "" is an omitted one."""
        return self.op_outputs(op_type, inputs, 1, hint, **attributes)[0]

    def op_outputs(self, op_type: str, inputs: Sequence[str], count: int, hint: str = "", **attributes) -> list[str]:
        """One node of `count` outputs; their names."""
        stem = f"{hint or self.scope or op_type}/{op_type}"
        names = [self.fresh(stem if count == 1 else f"{stem}:{i}") for i in range(count)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.fresh(f"node/{names[0]}"),
                                           **attributes))
        return names

    def const(self, value, dtype=FLOAT, hint: str = "const") -> str:
        """A constant tensor (float32 unless told), as an initializer."""
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, values: Sequence[int], hint: str = "ints") -> str:
        """An int64 vector: shapes, axes, pads, slice bounds."""
        return self.const(list(values), np.int64, hint)

    def weight(self, key: str, value: Optional[np.ndarray] = None, *, make=None) -> str:
        """The initializer of a weight (or an array made from weights) named `key`: made once, by `value` or
        by calling `make()`, then shared by every call of its layer."""
        if key not in self._weights:
            array = value if make is None else make()
            self._weights[key] = self.const(array, FLOAT, key)
        return self._weights[key]

    # -- shapes ------------------------------------------------------------------------------------------
    def reshape(self, x: str, shape: Sequence[int], hint: str = "") -> str:
        """x reshaped to `shape` (given with its batch axis: 0 keeps the input's, -1 takes what is left)."""
        return self.op("Reshape", [x, self.ints(shape, "shape")], hint)

    def transpose(self, x: str, perm: Sequence[int], hint: str = "") -> str:
        return self.op("Transpose", [x], hint, perm=list(perm))
