"""Latency of engines at given shapes: warm-up, interleaved timed runs, fresh random ids every run."""

from __future__ import annotations

import functools
import re
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from inferforge.engines.base import Engine
from inferforge.engines.openvino import STATIC_AFTER_CALLS
from inferforge.errors import UserError


@dataclass(frozen=True, order=True)
class Shape:
    """A batch x sequence input shape, written `32x128`."""

    batch: int
    sequence: int

    def __str__(self) -> str:
        return f"{self.batch}x{self.sequence}"

    @classmethod
    def parse(cls, text: str) -> "Shape":
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
        if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
            raise UserError(f"Shape '{text}' is not BATCHxSEQUENCE with positive numbers, e.g. 1x16 or 32x128.")
        return cls(int(match.group(1)), int(match.group(2)))


def parse_shapes(text: str) -> list[Shape]:
    shapes = [Shape.parse(part) for part in text.split(",") if part.strip()]
    if not shapes:
        raise UserError("No shape given; write them like 1x16,1x128,32x128.")
    return shapes


@dataclass
class LatencyStats:
    """Milliseconds per call and sequences per second."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float
    runs: int

    @classmethod
    def from_seconds(cls, seconds: list[float], batch: int) -> "LatencyStats":
        ms = np.asarray(seconds) * 1000.0
        p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
        return cls(p50, p90, p99, float(ms.mean()), batch * 1000.0 / p50, len(ms))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IdFrame:
    """What the benchmark's random token ids look like: drawn from the vocabulary, avoiding the first ids
    (often special tokens) and the tokenizer's special tokens, framed by the special tokens the tokenizer
    puts before and after every text. The frame matters to heads that read a special token: BART's and
    T5's classification heads pool the end-of-sequence token (and refuse a row without one), XLNet's
    reads its <cls>, put last."""

    vocab_size: int
    prefix: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()
    special: frozenset[int] = frozenset()
    # Text pairs (question answering): the special tokens between the two texts, after the first quarter of the
    # random ids (a question, then its context), and the second text's segment id.
    middle: tuple[int, ...] = ()
    second_type: int = 0

    @property
    def low(self) -> int:
        return 1000 if self.vocab_size > 2000 else 5

    @functools.cached_property
    def special_ids(self) -> np.ndarray:
        return np.fromiter(sorted(self.special), dtype=np.int64)

    @functools.cached_property
    def filler(self) -> int:
        """The id put where a random draw hit a special token (found once, not per measure)."""
        return next(i for i in range(self.low, self.vocab_size) if i not in self.special)


def random_inputs(input_names, shape: Shape, frame: IdFrame | int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random token ids in the tokenizer's frame of special tokens (an int: a bare vocabulary size, no
    frame), full attention mask."""
    frame = frame if isinstance(frame, IdFrame) else IdFrame(int(frame))
    ids = rng.integers(frame.low, frame.vocab_size, size=(shape.batch, shape.sequence), dtype=np.int64)
    if frame.special:
        ids[np.isin(ids, frame.special_ids)] = frame.filler
    suffix = frame.suffix[-shape.sequence:]  # a sequence too short for the frame keeps its end first
    prefix = frame.prefix[:shape.sequence - len(suffix)]
    ids[:, :len(prefix)] = prefix
    if suffix:
        ids[:, shape.sequence - len(suffix):] = suffix
    types = np.zeros_like(ids)
    words = shape.sequence - len(prefix) - len(suffix) - len(frame.middle)
    if frame.middle and words >= 2:  # room for a word on either side
        at = len(prefix) + max(1, words // 4)
        ids[:, at:at + len(frame.middle)] = frame.middle
        types[:, at + len(frame.middle):] = frame.second_type
    values = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": types}
    return {n: values[n] for n in input_names}


# Runtimes keep their worker threads spinning after a call (onnxruntime by default spins about 60-80 ms
# of CPU time, measured here; OpenMP and TBB pools do the same). An engine timed right after another
# shares the 2 cores of these machines with those spinners: on MiniLM at 1x16, 3 onnxruntime sessions
# and OpenVINO timed call by call ran 2-3x slower than each alone; a 20 ms pause did not help, 100 ms
# did. So the engines take turns in blocks of calls, each block after a pause, and every engine is timed
# as it runs when deployed alone.
SETTLE_SECONDS = 0.15
BLOCKS = 5


def benchmark_engines(engines: dict[str, Engine], shape: Shape, frame: IdFrame | int, nb_measures: int = 50,
                      warmup: int = 5, seed: int = 0, on_round: Callable[[], None] | None = None,
                      settle_seconds: float | None = None) -> dict[str, LatencyStats]:
    """Times every engine `nb_measures` times on the same fresh inputs (new random ids for every call).

    The engines take turns in up to BLOCKS rounds of consecutive calls, the order alternating from round
    to round so drift hits all alike; with several engines each block starts after `settle_seconds`
    (default SETTLE_SECONDS), so the previous engine's spinning threads are not timed as part of this one.
    `on_round` is called once per measure (after every engine has made it).
    """
    settle = (SETTLE_SECONDS if len(engines) > 1 else 0.0) if settle_seconds is None else settle_seconds
    rng = np.random.default_rng(seed)
    names = list(engines)
    input_names = sorted({n for e in engines.values() for n in e.input_names})
    for engine in engines.values():
        compiled = getattr(engine, "settle", None)
        # OpenVINO compiles a shape statically in the background once it has come STATIC_AFTER_CALLS times: enough
        # warm-up calls to start it, then wait for it, so that every timed call runs on it.
        for _ in range(max(warmup, STATIC_AFTER_CALLS) if compiled is not None else warmup):
            engine.run(random_inputs(input_names, shape, frame, rng))
        if compiled is not None:
            compiled()
    times: dict[str, list[float]] = {n: [] for n in names}
    block = max(1, -(-nb_measures // BLOCKS))
    for round_index, first in enumerate(range(0, nb_measures, block)):
        inputs = [random_inputs(input_names, shape, frame, rng) for _ in range(min(block, nb_measures - first))]
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            if settle:
                time.sleep(settle)
            for arrays in inputs:
                start = time.perf_counter()
                engines[name].run(arrays)
                times[name].append(time.perf_counter() - start)
        if on_round:
            for _ in inputs:
                on_round()
    return {n: LatencyStats.from_seconds(times[n], shape.batch) for n in names}
