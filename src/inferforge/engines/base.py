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
