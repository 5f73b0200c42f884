"""onnxruntime on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inferforge.engines.base import select_inputs


# After a call, onnxruntime's worker threads spin for 60-80 ms of CPU time waiting for the next one.
# Alone that saves wake-ups (1.23x faster at 1x16 on MiniLM, bench/experiments/FINDINGS.md); in a server
# on a few cores it starves the processes that carry the request: served from a Triton Python stub on
# 2 cores, MiniLM at 16 tokens answered 13-22 requests/s at concurrency 1 and 103-139 at 16 with
# spinning, 51-73 and 210-219 without. Servers spin only while a call runs ("run", the Triton model's default): on
# the same 2 cores, MiniLM at 16 tokens served p50 7.92 against 8.56 ms never spinning, concurrency 1 127 against
# 112 requests/s, concurrency 16 241 against 258 (4 alternating rounds; bench/experiments/serving_spinning.py), and
# its threads use no CPU between requests either.
SPINNING_ENV = "INFERFORGE_ORT_SPINNING"


def spinning_mode() -> str:
    """INFERFORGE_ORT_SPINNING: "1" (onnxruntime's default: spin during and after a call), "0" (never), "run" (spin
    while a call runs, stop when it ends: `session.force_spinning_stop`)."""
    mode = os.environ.get(SPINNING_ENV, "1").strip().lower()
    return mode if mode in ("0", "1", "run") else "1"


def session_options(threads: int | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    mode = spinning_mode()
    if mode == "0":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif mode == "run":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


class OrtEngine:
    """An ONNX model in an onnxruntime CPU session."""

    def __init__(self, path: Path | str, threads: int | None = None, name: str = "onnxruntime"):
        self.name = name
        self.session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(None, select_inputs(self, inputs))
        return dict(zip(self.output_names, outputs))
