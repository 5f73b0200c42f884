"""The engine protocol every runtime implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Engine(Protocol):
    """A ready model: token arrays in, named output arrays out."""

    name: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def select_inputs(engine: Engine, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays the engine takes, as contiguous int64, with a clear error for a missing one."""
    missing = [n for n in engine.input_names if n not in inputs]
    if missing:
        raise ValueError(f"{engine.name}: missing input(s) {missing}; it takes {list(engine.input_names)}")
    return {n: np.ascontiguousarray(inputs[n], dtype=np.int64) for n in engine.input_names}


def run_unpadded(run, arrays: dict[str, np.ndarray], lengths, per_token) -> dict[str, np.ndarray]:
    """`run(arrays)` for a model that takes no attention mask (FNet mixes every position, padding included):
    the rows of each real length run together, without padding, so a row's answer never depends on the rows
    batched with it. Per-token outputs come back at the batch's width, zero past each row's length."""
    width = next(iter(arrays.values())).shape[1]
    groups: dict[int, list[int]] = {}
    for row, length in enumerate(lengths):
        groups.setdefault(max(int(length), 1), []).append(row)
    if len(groups) == 1 and next(iter(groups)) == width:
        return run(arrays)
    joined: dict[str, np.ndarray] = {}
    for length, rows in groups.items():
        result = run({name: np.ascontiguousarray(array[rows, :length]) for name, array in arrays.items()})
        for name, value in result.items():
            tokens = name in per_token
            if name not in joined:
                shape = (len(lengths), width, *value.shape[2:]) if tokens else (len(lengths), *value.shape[1:])
                joined[name] = np.zeros(shape, dtype=value.dtype)
            if tokens:
                joined[name][rows, :length] = value
            else:
                joined[name][rows] = value
    return joined
