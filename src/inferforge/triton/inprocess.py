"""The Python side of inferforge's in-process Triton backend (`inprocess_backend.c`).

That backend embeds CPython in tritonserver's own process and runs an inferforge repository's Python-backend
models there (the same `model.py` / `tokenize.py` files, unchanged) instead of in one stub process per model: no
shared-memory hop and no process switch per request. This module gives those files the few names of
`triton_python_backend_utils` they use, turns the backend's raw request tuples into request objects, and the
models' responses into raw output tuples.

What is given up against the Python backend: a model that crashes (a segfault in a runtime) takes the server
with it, and the `inferforge serve` watchdog restarts the whole server instead of one stub; and all models share
one interpreter and its GIL (the engines release it while they run).
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import sys
import types

import numpy as np

BACKEND_NAME = "inferforge"  # a model config's `backend`: Triton loads backends/inferforge/libtriton_inferforge.so
BACKEND_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inprocess_backend.c")
PYTHON_VARIABLE = "INFERFORGE_INPROCESS_PYTHON"  # the interpreter whose environment the embedded Python takes

# Triton's TRITONSERVER_DataType codes and the numpy types of their tensors (BYTES: objects).
DATATYPES = {1: np.bool_, 2: np.uint8, 3: np.uint16, 4: np.uint32, 5: np.uint64, 6: np.int8, 7: np.int16,
             8: np.int32, 9: np.int64, 10: np.float16, 11: np.float32, 12: np.float64, 13: np.object_}
BYTES = 13
_CODES = {np.dtype(kind): code for code, kind in DATATYPES.items() if code != BYTES}  # per output, per request
CONFIG_TYPES = {"TYPE_BOOL": 1, "TYPE_UINT8": 2, "TYPE_UINT16": 3, "TYPE_UINT32": 4, "TYPE_UINT64": 5, "TYPE_INT8": 6,
                "TYPE_INT16": 7, "TYPE_INT32": 8, "TYPE_INT64": 9, "TYPE_FP16": 10, "TYPE_FP32": 11, "TYPE_FP64": 12,
                "TYPE_STRING": 13}


class TritonError(Exception):
    """`pb_utils.TritonError`: a message and Triton's error code (INTERNAL unless given, as in the Python backend)."""

    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS, CANCELLED = range(8)

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self._message = message
        self._code = code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code


class Tensor:
    """`pb_utils.Tensor`: a name and a numpy array."""

    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name = name
        self._array = np.asarray(array)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class InferenceResponse:
    """`pb_utils.InferenceResponse`: output tensors, or an error."""

    def __init__(self, output_tensors=(), error: TritonError | None = None) -> None:
        self._outputs = list(output_tensors)
        self._error = error

    def output_tensors(self) -> list[Tensor]:
        return self._outputs

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error


class InferenceRequest:
    """A request as the Python backend's `execute()` sees it: inputs by name, the outputs asked for, its id and
    parameters."""

    def __init__(self, request_id: str, inputs: dict, outputs: tuple, parameters: dict) -> None:
        self._id = request_id
        self._inputs = inputs
        self._outputs = list(outputs)
        self._parameters = parameters

    def request_id(self) -> str:
        return self._id

    def requested_output_names(self) -> list[str]:
        return self._outputs

    def parameters(self) -> str:
        return json.dumps(self._parameters)

    def input(self, name: str) -> Tensor | None:
        raw = self._inputs.get(name)
        if raw is None:
            return None
        if isinstance(raw, tuple):
            datatype, shape, data = raw
            raw = self._inputs[name] = Tensor(name, _array(datatype, shape, data))
        return raw


def get_input_tensor_by_name(request: InferenceRequest, name: str) -> Tensor | None:
    return request.input(name)


def triton_string_to_numpy(config_type: str):
    return DATATYPES[CONFIG_TYPES[config_type]]


def _array(datatype: int, shape: tuple, data) -> np.ndarray:
    """A Triton input buffer as numpy, copied out of Triton's memory (it is released after the answer)."""
    if datatype != BYTES:
        return np.frombuffer(data, dtype=DATATYPES[datatype]).reshape(shape).copy()
    raw = bytes(data)
    items = []
    offset = 0
    while offset < len(raw):
        (size,) = struct.unpack_from("<I", raw, offset)
        items.append(raw[offset + 4 : offset + 4 + size])
        offset += 4 + size
    array = np.empty(len(items), dtype=np.object_)
    array[:] = items
    return array.reshape(shape)


def _unreadable_strings(inputs: dict) -> str | None:
    """Why a BYTES input's buffer does not hold the strings it says (a string whose length runs past the buffer's end),
    in the Python backend's words; None when each does. Triton 2.51 checks the count of strings and each length
    prefix before a request reaches a backend, not that the last string's bytes are all there: `_array` would read
    what is left as the text."""
    for name, raw in inputs.items():
        if not isinstance(raw, tuple) or raw[0] != BYTES:
            continue
        data, offset = raw[2], 0
        while offset < len(data):
            if len(data) - offset < 4:
                return (f"incomplete string length indicator for inference input '{name}', expecting 4 bytes but only "
                        f"{len(data) - offset} bytes available")
            (size,) = struct.unpack_from("<I", data, offset)
            if size > len(data) - offset - 4:
                return (f"incomplete string data for inference input '{name}', expecting string of length {size} but "
                        f"only {len(data) - offset - 4} bytes available")
            offset += 4 + size
    return None


def _datatype(array: np.ndarray) -> int:
    if array.dtype == np.object_ or array.dtype.kind in "SU":
        return BYTES
    code = _CODES.get(array.dtype)
    if code is None:
        raise TypeError(f"no Triton type for numpy {array.dtype}")
    return code


def _serialized(array: np.ndarray):
    """A tensor's bytes as Triton lays them out (BYTES: each element's length, 4 bytes little-endian, then it)."""
    if _datatype(array) != BYTES:
        return np.ascontiguousarray(array)
    parts = []
    for item in array.reshape(-1):
        value = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(struct.pack("<I", len(value)))
        parts.append(value)
    return b"".join(parts)


def _utils_module() -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.TritonError = TritonError
    module.Tensor = Tensor
    module.InferenceResponse = InferenceResponse
    module.InferenceRequest = InferenceRequest
    module.get_input_tensor_by_name = get_input_tensor_by_name
    module.triton_string_to_numpy = triton_string_to_numpy
    return module


class LoadedModel:
    """One instance of a model of the repository: its own `TritonPythonModel` (and engine), called by the backend
    with raw request tuples."""

    def __init__(self, name: str, config_json: str, location: str, version: int, instance_name: str) -> None:
        config = json.loads(config_json)
        version_dir = os.path.join(location, str(version))
        filename = config.get("parameters", {}).get("default_model_filename", {}).get("string_value") or "model.py"
        if version_dir not in sys.path:
            sys.path.insert(0, version_dir)
        spec = importlib.util.spec_from_file_location(f"inferforge_inprocess_{name}_{version}",
                                                      os.path.join(version_dir, filename))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.model = module.TritonPythonModel()
        self.model.initialize({"model_config": config_json, "model_repository": location,
                               "model_version": str(version), "model_name": name,
                               "model_instance_kind": "CPU", "model_instance_name": instance_name})
        print(f"inferforge in-process: loaded {instance_name} ({filename} of {name} version {version})",
              file=sys.stderr, flush=True)

    def execute(self, batch: list) -> list:
        """Per request: a list of (name, datatype, shape, buffer), or (error code, message)."""
        requests = [InferenceRequest(*item) if item is not None else None for item in batch]
        refused = {}  # request index -> its error: inputs that cannot be read, answered alone
        for index, request in enumerate(requests):
            problem = _unreadable_strings(request._inputs) if request is not None else None
            if problem is not None:
                refused[index] = (TritonError.INVALID_ARG,
                                  f"[request id: {request.request_id()}] {problem}" if request.request_id() else problem)
                requests[index] = None
        live = [r for r in requests if r is not None]
        try:
            responses = iter(self.model.execute(live))
        except Exception as error:  # the batch failed as a whole: every request says why
            return [(TritonError.INTERNAL, f"model execute failed: {error}")] * len(batch)
        answers = []
        for index, request in enumerate(requests):
            if index in refused:
                answers.append(refused[index])
                continue
            if request is None:
                answers.append((TritonError.INTERNAL, "request not read"))  # the backend answers it with its error
                continue
            answers.append(_answer(next(responses)))
        return answers

    def finalize(self) -> None:
        if hasattr(self.model, "finalize"):
            self.model.finalize()


def _answer(response: InferenceResponse):
    if response.has_error():
        error = response.error()
        return (error.code(), error.message())
    outputs = []
    for tensor in response.output_tensors():
        array = tensor.as_numpy()
        outputs.append((tensor.name(), _datatype(array), tuple(int(d) for d in array.shape), _serialized(array)))
    return outputs


def load_model(name: str, config_json: str, location: str, version: int, instance_name: str) -> LoadedModel:
    """Called by the backend for each instance of a model it loads (inside tritonserver)."""
    sys.modules.setdefault("triton_python_backend_utils", _utils_module())
    return LoadedModel(name, config_json, location, version, instance_name)


class InProcessUnavailable(Exception):
    """Why the in-process backend cannot be built on this machine."""


def build_backend(folder=None):
    """`inprocess_backend.c` compiled against this interpreter's libpython, once per user (cached by content, in
    the preload cache beside hide_args). Raises InProcessUnavailable with the reason: no C compiler, no Python
    headers (the python3-dev package), or no shared libpython."""
    import sysconfig
    from pathlib import Path

    from inferforge.triton.hardening import build_cached_library, find_c_compiler

    compiler = find_c_compiler()
    if compiler is None:
        raise InProcessUnavailable("no C compiler (cc, gcc or clang) to build it")
    include = sysconfig.get_paths()["include"]
    if not os.path.isfile(os.path.join(include, "Python.h")):
        raise InProcessUnavailable(f"the Python headers are missing ({include}/Python.h: install python3-dev)")
    library = sysconfig.get_config_var("LDLIBRARY") or ""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not os.path.exists(os.path.join(libdir, library)):
        raise InProcessUnavailable("this Python has no shared libpython to embed")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return build_cached_library(compiler, Path(BACKEND_SOURCE), "inprocess_backend",
                                (f"-I{include}", f"-L{libdir}", f"-lpython{version}", "-ldl"), InProcessUnavailable,
                                folder=folder)
