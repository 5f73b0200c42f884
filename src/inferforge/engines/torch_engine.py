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
                # dtypes match"). A copy whose Linear layers compute in bf16 and answer in their input's dtype runs
                # the bulk of the arithmetic in bf16 as autocast would, with everything else left as it was.
                if "dtype" not in str(error):
                    raise
                self.cast_module = bf16_linear_copy(self.module, self.dtype)
                outputs = self.cast_module(*tensors)
        return {name: out.float().numpy() for name, out in zip(self.output_names, outputs)}


class _LowPrecisionLinear(torch.nn.Module):
    """A Linear layer whose product runs in a lower precision; its answer keeps the dtype of its input."""

    def __init__(self, linear: torch.nn.Linear, dtype: torch.dtype):
        super().__init__()
        self.weight = torch.nn.Parameter(linear.weight.detach().to(dtype), requires_grad=False)
        self.bias = (None if linear.bias is None
                     else torch.nn.Parameter(linear.bias.detach().to(dtype), requires_grad=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x.to(self.weight.dtype), self.weight, self.bias).to(x.dtype)


def bf16_linear_copy(module: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> torch.nn.Module:
    """A copy of `module` with every nn.Linear computing in `dtype` (the rest untouched, the original unchanged)."""
    import copy

    clone = copy.deepcopy(module)
    for parent in list(clone.modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(parent, child_name, _LowPrecisionLinear(child, dtype))
    return clone.eval()
