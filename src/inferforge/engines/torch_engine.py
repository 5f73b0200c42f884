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
        self.cast_module: torch.nn.Module | None = None  # set when autocast cannot run the model (below)
        if threads:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=np.int64)) for n in self.input_names]
        if self.dtype == torch.float32:
            outputs = self.module(*tensors)
        elif self.cast_module is not None:
            outputs = self.cast_module(*tensors)
        else:
            try:
                with torch.autocast("cpu", dtype=self.dtype):
                    outputs = self.module(*tensors)
            except RuntimeError as error:
                # Autocast runs matrix products in bf16 and leaves buffers in fp32, and code that writes one into the
                # other in place fails: X-MOD's language adapters ("Index put requires the source and destination
                # dtypes match"). The model with its weights cast to bf16 runs every step in bf16 instead.
                if "dtype" not in str(error):
                    raise
                import copy

                self.cast_module = copy.deepcopy(self.module).to(self.dtype)
                outputs = self.cast_module(*tensors)
        return {name: out.float().numpy() for name, out in zip(self.output_names, outputs)}
