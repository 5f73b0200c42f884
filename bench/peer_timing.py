"""Interleaved timing of several peers on the same inputs, and their accuracy against a reference."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from peer_variants import Arrays, Peer

from inferforge.benchmark import SETTLE_SECONDS, Shape


@dataclass(frozen=True)
class Accuracy:
    max_abs_diff: float
    min_cosine: float


@dataclass(frozen=True)
class Timing:
    peer: str
    shape: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    samples: int
    accuracy: Accuracy | None  # None for the reference itself


def text_token_inputs(model_dir: Path, shape: Shape, text: str) -> Arrays:
    """`shape.batch` rows of exactly `shape.sequence` tokens: [CLS], a window of real text, [SEP].

    Every row is full (no padding), so every peer computes exactly the FLOPs of the shape.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    body = shape.sequence - 2
    if len(ids) < body + shape.batch:
        raise ValueError(f"the benchmark text has {len(ids)} tokens, fewer than {shape} needs")
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    rows = []
    for row in range(shape.batch):
        start = (row * 37) % (len(ids) - body)
        rows.append([cls_id, *ids[start:start + body], sep_id])
    input_ids = np.asarray(rows, dtype=np.int64)
    return {
        "input_ids": input_ids,
        "attention_mask": np.ones_like(input_ids),
        "token_type_ids": np.zeros_like(input_ids),
    }


def idle_fraction(seconds: float = 1.0) -> float:
    """The fraction of CPU time nobody used over `seconds` (from /proc/stat; 1.0 where unreadable)."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return 1.0
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet(max_wait: float, threshold: float = 0.85, log=print) -> float:
    """Waits (at most `max_wait` seconds) until the CPUs are at least `threshold` idle; returns the
    last idle fraction seen, so a result can say how busy the machine was when it was timed."""
    deadline = time.monotonic() + max_wait
    idle = idle_fraction()
    while idle < threshold and time.monotonic() < deadline:
        log(f"    waiting for a quiet machine (idle {idle:.0%})")
        time.sleep(4.0)
        idle = idle_fraction()
    return idle


def accuracy(output: np.ndarray, reference: np.ndarray) -> Accuracy:
    output = output.astype(np.float64)
    reference = reference.astype(np.float64)
    cosine = (output * reference).sum(-1) / (
        np.linalg.norm(output, axis=-1) * np.linalg.norm(reference, axis=-1) + 1e-30
    )
    return Accuracy(float(np.abs(output - reference).max()), float(cosine.min()))


WARMUP_CALLS = 3  # inferforge's OpenVINO engine compiles a shape statically once it has come 3 times


def time_interleaved(
    peers: list[Peer], arrays: Arrays, shape: Shape, rounds: int, block_seconds: float,
    reference: str | None, log=print, clock=time.perf_counter, failures: dict[str, str] | None = None,
) -> list[Timing]:
    """Warm every peer up, then run `rounds` rounds; in each, every peer runs a block of calls of
    about `block_seconds`, the order rotating from round to round. A pause between blocks (SETTLE_SECONDS)
    lets the previous runtime's spinning threads go idle. `clock=time.process_time` measures the CPU
    time of the whole process instead of the wall clock: on a machine busy with others' work, a
    one-thread run's CPU time is the work a setting costs, nearly unaffected by waiting for a core."""
    outputs: dict[str, np.ndarray] = {}
    per_call: dict[str, float] = {}
    working = []
    for peer in peers:
        try:
            for _ in range(WARMUP_CALLS):  # warm-up (and torch.compile's compilation)
                outputs[peer.name] = peer.run(arrays)
            if peer.settle is not None:
                peer.settle()  # OpenVINO's static-shape compilation, started by the warm-up, is in place
        except Exception as error:  # one peer failing is a result to report (in `failures`), not a crash
            if failures is None:
                raise
            failures[peer.name] = f"{type(error).__name__}: {str(error)[:200]}"
            log(f"    ! {peer.name} failed at {shape}: {failures[peer.name]}")
            continue
        working.append(peer)
        start = time.perf_counter()
        peer.run(arrays)
        per_call[peer.name] = time.perf_counter() - start
    peers = working
    calls = {name: max(1, min(200, round(block_seconds / seconds))) for name, seconds in per_call.items()}
    samples: dict[str, list[float]] = {peer.name: [] for peer in peers}
    for round_index in range(rounds):
        shift = round_index % len(peers)
        for peer in peers[shift:] + peers[:shift]:
            time.sleep(SETTLE_SECONDS)  # the previous runtime's spinning threads go idle (inferforge.benchmark)
            for _ in range(calls[peer.name]):
                start = clock()
                peer.run(arrays)
                samples[peer.name].append(clock() - start)
        log(f"    {shape} round {round_index + 1}/{rounds}")
    reference_output = outputs.get(reference) if reference else None
    timings = []
    for peer in peers:
        values = np.asarray(samples[peer.name]) * 1e3
        timings.append(Timing(
            peer=peer.name,
            shape=str(shape),
            median_ms=float(statistics.median(values)),
            p10_ms=float(np.percentile(values, 10)),
            p90_ms=float(np.percentile(values, 90)),
            samples=len(values),
            accuracy=None if reference_output is None or peer.name == reference
            else accuracy(outputs[peer.name], reference_output),
        ))
    return timings


def replace_section(path: Path, section: str, start: str, end: str) -> None:
    """Create or replace only the part of a Markdown file (BENCHMARKS.md) between the `start` and `end` markers
    (`section` holds them)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
