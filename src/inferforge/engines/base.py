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


# Rows of a batch run together while padding them to their longest computes at most this many times their real
# tokens; past it, the batch is cut by length (sorted) and each part runs padded to its own longest.
BUCKET_SLACK = 1.25


def length_groups(lengths, slack: float = BUCKET_SLACK) -> list[list[int]]:
    """Row indices grouped by length: sorted, and cut where padding a group to its longest would compute more
    than `slack` times its real tokens (slack 1: rows of one length together)."""
    groups: list[list[int]] = []
    tokens = 0
    for row in sorted(range(len(lengths)), key=lambda r: (int(lengths[r]), r)):
        length = max(int(lengths[row]), 1)
        if groups and (len(groups[-1]) + 1) * length <= slack * (tokens + length):
            groups[-1].append(row)
            tokens += length
        else:
            groups.append([row])
            tokens = length
    return groups


def run_by_length(run, arrays: dict[str, np.ndarray], lengths, per_token,
                  slack: float = BUCKET_SLACK) -> dict[str, np.ndarray]:
    """`run(arrays)` on rows of mixed lengths (right-padded) without computing most of their padding: the rows of
    each `length_groups` group run together, cut to the group's longest. With slack 1 (a model that takes no
    attention mask, such as FNet, whose answers padding would change) every row runs at its own length, so its
    answer never depends on the rows batched with it. Per-token outputs come back at the batch's width, zero past
    each group's length."""
    width = next(iter(arrays.values())).shape[1]
    groups = length_groups(lengths, slack)
    if len(groups) == 1 and max(max(int(lengths[r]), 1) for r in groups[0]) == width:
        return run(arrays)
    joined: dict[str, np.ndarray] = {}
    for rows in groups:
        length = max(max(int(lengths[r]), 1) for r in rows)
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
