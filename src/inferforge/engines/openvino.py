"""OpenVINO on the CPU, at fp32 or at its default precision (bf16 where the CPU has AMX)."""

from __future__ import annotations

import os
import threading
from collections import Counter, OrderedDict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from inferforge.engines.base import select_inputs

# Static shapes where they pay (bench/experiments/openvino_settings.py, MiniLM, AMX CPU): a model
# reshaped to the exact input shape before compiling ran 1.12-1.46x faster at 1x16 and 1x128 (bf16
# and NNCF int8), and not faster at 32x128. So an input shape of at most STATIC_MAX_TOKENS tokens
# that comes back STATIC_AFTER_CALLS times gets its own static compilation (at most
# STATIC_CACHE_SIZE of them, least recently used dropped); everything else runs on the dynamic one.
STATIC_MAX_TOKENS = 1024
STATIC_ENV = "INFERFORGE_OPENVINO_STATIC"  # "0": no static compilations (see OpenVinoEngine.__init__)
STATIC_AFTER_CALLS = 3
STATIC_CACHE_SIZE = 4
# Served with dynamic batching, shapes vary call to call: compiling each one that comes back three times
# and dropping it soon after stalls requests behind compilations (Triton at concurrency 16 answered fewer
# requests per second than at concurrency 1). After this many static compilations were dropped, the
# engine stops making new ones and keeps what it has.
STATIC_MAX_DROPPED = STATIC_CACHE_SIZE
# A static compilation takes 0.55-0.7 s (MiniLM int8, 2 threads): made inside a call, it held that call and every
# call queued behind it (served MiniLM at concurrency 4 answered 23-46 requests/s against 129-155 at concurrency 1).
# So it is made on a thread of its own, one at a time, while calls go on with the dynamic compilation (measured
# during one: 131 calls answered, median 3.98 ms, slowest 31 ms); `settle()` waits for it (benchmarks, tests).
# Large batches: one stream per core, each running a slice of the batch on one thread, instead of every
# layer split across the cores (THROUGHPUT hint). Used from SPLIT_MIN_TOKENS tokens and 2 rows per stream.
SPLIT_MIN_TOKENS = 2048


# The first call of OpenVINO's Python infer functions in a process initializes C++ statics with the GIL released
# and taken back inside: two threads making their first call at once (two engines, or two served instances in one
# interpreter) deadlocked, one holding the GIL while it waited for the static, the other inside it waiting for the
# GIL (1 run in 8 with two engines in two threads; 3 of 6 server starts with `serve --in-process --instances 2`).
# Each way of calling (a plain infer, the split-streams queue) makes its first call alone; waiting for this Python
# lock lets the GIL go.
_FIRST_CALLS_LOCK = threading.Lock()
_FIRST_CALLS_DONE: set[str] = set()


def _first_call_alone(kind: str, call):
    """`call()`, alone in the process when it is the first call of its `kind`."""
    if kind in _FIRST_CALLS_DONE:
        return call()
    with _FIRST_CALLS_LOCK:
        result = call()
        _FIRST_CALLS_DONE.add(kind)
    return result


class OpenVinoEngine:
    """An ONNX or OpenVINO IR model compiled for the CPU with the LATENCY hint."""

    def __init__(self, path: Path | str, threads: int | None = None, precision: str | None = None, name: str = "openvino",
                 split_streams: int | None = None, background_static: bool = True, static_shapes: bool = True):
        import openvino as ov

        self.name = name
        self.path = str(path)
        self.core = ov.Core()
        config: dict = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        self.config = config
        model = self.core.read_model(self.path)
        self.compiled = self.core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.input_names = tuple(_port_name(p) for p in self.compiled.inputs)
        self.output_names = tuple(_port_name(p) for p in self.compiled.outputs)
        # What the kernels run at, as OpenVINO names it ("f32", "bf16"): the default is bf16 only on a bf16 CPU.
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self._static_requests: OrderedDict[tuple, object] = OrderedDict()
        self._shape_counts: Counter = Counter()
        self._static_dropped = 0
        self.static_failed = False  # a static compilation failed: the model runs with dynamic shapes only
        self.background_static = background_static
        # An int8 model (NNCF's FakeQuantize nodes) compiled for a static shape answers a little differently from its
        # dynamic compilation (MiniLM int8-keep4: max abs diff 0.014 on one text, inside the budget), so a text's answer
        # can change once its shape has come back three times; it also runs 1.8x faster at 1x16 (the demo, Zen 4).
        # INFERFORGE_OPENVINO_STATIC=0 keeps every engine on its dynamic compilation: one answer per input, always.
        self.static_enabled = static_shapes and os.environ.get(STATIC_ENV, "1") != "0"
        self._compiling: threading.Thread | None = None  # the static compilation under way, if any
        self.threads = int(threads) if threads else int(self.compiled.get_property("INFERENCE_NUM_THREADS") or 1)
        self.split_streams = split_streams if split_streams is not None else self.threads
        self._queue = None  # AsyncInferQueue over the THROUGHPUT compilation, made on the first large batch
        # An infer request serves one call at a time ("Infer Request is busy"); callers on several threads
        # (a FastAPI app, a thread pool) take turns. Each call already uses every thread it was given.
        self._lock = threading.Lock()

    @property
    def static_shapes(self) -> tuple[tuple, ...]:
        """The input shapes (one per input) that currently run on their own static compilation."""
        with self._lock:
            return tuple(self._static_requests)

    def _request_for(self, arrays: dict[str, np.ndarray]):
        """The infer request for these inputs: a static-shape one once the shape has paid for it (the lock held)."""
        shapes = tuple(arrays[n].shape for n in self.input_names)
        if not self.static_enabled or not shapes or int(np.prod(shapes[0])) > STATIC_MAX_TOKENS:
            return self.request
        request = self._static_requests.get(shapes)
        if request is not None:
            self._static_requests.move_to_end(shapes)
            return request
        self._shape_counts[shapes] += 1
        if (self._shape_counts[shapes] < STATIC_AFTER_CALLS or self._static_dropped >= STATIC_MAX_DROPPED
                or self._compiling is not None):
            return self.request
        if not self.background_static:
            self._compile_static(shapes)
            return self._static_requests.get(shapes, self.request)
        # Not a daemon: a process ending while OpenVINO compiles on a daemon thread aborted ("terminate called
        # without an active exception", exit code 134) after a script's third call of one shape; the interpreter
        # waits for the compilation (under a second) instead.
        self._compiling = threading.Thread(target=self._compile_in_background, args=(shapes,), daemon=False,
                                           name="inferforge-openvino-static")
        self._compiling.start()
        return self.request

    def _compile_in_background(self, shapes: tuple) -> None:
        try:
            self._compile_static(shapes)
        finally:
            with self._lock:
                self._compiling = None

    def _compile_static(self, shapes: tuple) -> None:
        """Compiles the model for exactly these input shapes and keeps its request (least recently used dropped)."""
        try:
            model = self.core.read_model(self.path)
            model.reshape({name: list(shape) for name, shape in zip(self.input_names, shapes)})
            request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        except Exception:  # noqa: BLE001 (on a background thread nobody would see it, and it would be retried per call)
            # Some graphs compile with dynamic shapes only: a Funnel model's pooled attention reshaped to 1x16 stopped
            # OpenVINO 2026.4 in ConvertMatMulToFC, after the dynamic compilation had answered. Static shapes are a
            # speed-up, not a need: this engine stays dynamic from now on.
            self._static_dropped = STATIC_MAX_DROPPED
            self.static_failed = True
            return
        with _held(self._lock, self.background_static):
            self._static_requests[shapes] = request
            if len(self._static_requests) > STATIC_CACHE_SIZE:
                self._static_requests.popitem(last=False)
                self._static_dropped += 1

    def settle(self, timeout: float | None = None) -> None:
        """Waits for the static compilation under way, if any (so that what follows runs on it)."""
        compiling = self._compiling
        if compiling is not None:
            compiling.join(timeout)

    def _split_run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """Run a large batch as one slice per stream, concurrently; None when the batch is too small."""
        streams = self.split_streams
        first = arrays[self.input_names[0]]
        if streams < 2 or first.shape[0] < 2 * streams or first.size < SPLIT_MIN_TOKENS:
            return None
        return _first_call_alone("split", lambda: self._split_across_streams(arrays, streams))

    def _split_across_streams(self, arrays: dict[str, np.ndarray], streams: int) -> dict[str, np.ndarray]:
        first = arrays[self.input_names[0]]
        if self._queue is None:
            import openvino as ov

            config = {**self.config, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams,
                      "INFERENCE_NUM_THREADS": self.threads}
            compiled = self.core.compile_model(self.core.read_model(self.path), "CPU", config)
            self._queue = ov.AsyncInferQueue(compiled, streams)
        bounds = np.linspace(0, first.shape[0], streams + 1).round().astype(int)
        parts: list = [None] * streams

        def done(request, index):
            parts[index] = [np.array(request.get_output_tensor(i).data) for i in range(len(self.output_names))]

        self._queue.set_callback(done)
        for index in range(streams):
            piece = {n: a[bounds[index]:bounds[index + 1]] for n, a in arrays.items()}
            self._queue.start_async(piece, index, share_inputs=True)
        self._queue.wait_all()
        return {name: np.concatenate([part[i] for part in parts]) for i, name in enumerate(self.output_names)}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            return self._run(inputs)

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = select_inputs(self, inputs)
        split = self._split_run(arrays)
        if split is not None:
            return split
        request = self._request_for(arrays)
        # The inputs are shared, not copied; the outputs are copied, the request reuses its buffers.
        result = _first_call_alone("infer", lambda: request.infer(arrays, share_inputs=True))
        return {name: np.array(result[index]) for index, name in enumerate(self.output_names)}


@contextmanager
def _held(lock: threading.Lock, take: bool):
    """`lock` taken for the block when `take` (the caller does not already hold it)."""
    if not take:
        yield
        return
    with lock:
        yield


def _port_name(port) -> str:
    """The graph's own name of an input or output: a port can carry several tensor names (EuroBERT's attention
    mask is also '/model/Cast_output_0' once a no-op Cast is folded), and get_any_name() may give either."""
    plain = sorted(n for n in port.get_names() if "/" not in n)
    return plain[0] if plain else port.get_any_name()
