"""OpenVINO on the CPU, at fp32 or at its default precision (bf16 where the CPU has AMX)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inferforge.engines.base import select_inputs


class OpenVinoEngine:
    """An ONNX or OpenVINO IR model compiled for the CPU with the LATENCY hint."""

    def __init__(self, path: Path | str, threads: int | None = None, precision: str | None = None, name: str = "openvino"):
        import openvino as ov

        self.name = name
        core = ov.Core()
        config: dict = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        model = core.read_model(str(path))
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.input_names = tuple(p.get_any_name() for p in self.compiled.inputs)
        self.output_names = tuple(p.get_any_name() for p in self.compiled.outputs)
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self.request.infer(select_inputs(self, inputs))
        return {name: np.array(result[out]) for name, out in zip(self.output_names, self.compiled.outputs)}
