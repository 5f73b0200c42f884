"""PyTorch eager: the fp32 reference, and bf16 autocast where the CPU supports it."""

from __future__ import annotations

import numpy as np
import torch


class TorchEngine:
    """A torch module (the export wrapper, so outputs match the ONNX graph) run eagerly."""

    def __init__(self, module: torch.nn.Module, input_names, output_names, dtype: torch.dtype = torch.float32,
                 threads: int | None = None, name: str = "pytorch"):
        self.name = name
        self.module = module.eval()
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)
        self.dtype = dtype
        if threads:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=np.int64)) for n in self.input_names]
        if self.dtype == torch.float32:
            outputs = self.module(*tensors)
        else:
            with torch.autocast("cpu", dtype=self.dtype):
                outputs = self.module(*tensors)
        return {name: out.float().numpy() for name, out in zip(self.output_names, outputs)}
