"""What these cores can do at best, measured, and what a BERT-like encoder asks of them.

Two limits bound an encoder's latency on a CPU:

- compute: the model's matrix-product FLOPs over the best matrix-product rate of the precision it
  runs in (`measure_matmul_ceiling`: one large product, fp32, bf16 or int8);
- memory: at batch 1 every weight is read once per call, so weight bytes over the memory read
  bandwidth (`measure_read_bandwidth`) is a floor no runtime goes below (unless the weights stay
  in cache between calls).

`EncoderDims.from_config` reads the sizes from a Hugging Face config; `encoder_flops` counts the
multiply-adds of the matrix products (2 FLOPs each), which is what dominates; element-wise work
(softmax, GELU, layer norms) is left out.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from inferforge.errors import UserError

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "int8")

# Config keys of the BERT family (BERT, RoBERTa, XLM-R, ELECTRA, MPNet...) and DistilBERT's names.
_KEY_ALIASES = {
    "layers": ("num_hidden_layers", "n_layers"),
    "hidden": ("hidden_size", "dim"),
    "intermediate": ("intermediate_size", "hidden_dim"),
    "heads": ("num_attention_heads", "n_heads"),
}


@dataclass(frozen=True)
class EncoderDims:
    """The sizes of a BERT-like encoder stack that set its cost."""

    layers: int
    hidden: int
    intermediate: int
    heads: int

    @classmethod
    def from_config(cls, config: dict[str, Any] | str | Path) -> "EncoderDims":
        """From a config dict, a config.json path, or a model directory holding config.json."""
        if not isinstance(config, dict):
            path = Path(config)
            if path.is_dir():
                path = path / "config.json"
            if not path.is_file():
                raise UserError(f"No Hugging Face config.json at {path}.")
            config = json.loads(path.read_text())
        values: dict[str, int] = {}
        for field, keys in _KEY_ALIASES.items():
            found = [config[k] for k in keys if k in config]
            if not found:
                model_type = config.get("model_type", "unknown")
                raise UserError(
                    f"The config of model type '{model_type}' has none of {', '.join(keys)}: "
                    "only BERT-like encoders are counted."
                )
            values[field] = int(found[0])
        return cls(**values)

    def matrix_weights(self) -> int:
        """Weights of the encoder layers' matrices (Q, K, V, output, FFN in and out)."""
        per_layer = 4 * self.hidden * self.hidden + 2 * self.hidden * self.intermediate
        return self.layers * per_layer

    def vector_weights(self) -> int:
        """Biases and layer-norm parameters of the encoder layers (kept in fp32 by every runtime)."""
        per_layer = 4 * self.hidden + self.intermediate + self.hidden + 4 * self.hidden
        return self.layers * per_layer


def encoder_flops(dims: EncoderDims, batch: int, seq: int) -> int:
    """Matrix-product FLOPs of one forward pass of the encoder layers at batch x seq.

    Per layer with T = batch*seq tokens: Q, K, V and output projections 8*T*H^2, the feed-forward
    block 4*T*H*I, attention scores and the weighted sum 4*batch*seq^2*H. Embedding look-ups,
    element-wise operations and any pooler are not counted.
    """
    if batch < 1 or seq < 1:
        raise UserError(f"A shape needs a batch and a sequence length of at least 1, got {batch}x{seq}.")
    tokens = batch * seq
    h, i = dims.hidden, dims.intermediate
    per_layer = 8 * tokens * h * h + 4 * tokens * h * i + 4 * batch * seq * seq * h
    return dims.layers * per_layer


BYTES_PER_WEIGHT: dict[Precision, int] = {"fp32": 4, "bf16": 2, "int8": 1}


def weight_bytes(dims: EncoderDims, precision: Precision) -> int:
    """Bytes of weights one forward pass reads: the matrices in `precision`, vectors in fp32.

    The embedding tables are left out: a call reads only the rows of its tokens.
    """
    return dims.matrix_weights() * BYTES_PER_WEIGHT[precision] + dims.vector_weights() * 4


@dataclass(frozen=True)
class MatmulCeiling:
    """The best rate of one large square matrix product in one precision."""

    precision: Precision
    size: int
    threads: int
    seconds: float  # best of the repeats
    ops_per_second: float  # 2*size^3 / seconds (FLOP/s, or integer OP/s for int8)
    engine: str = "torch"  # what ran the product: "torch", or "onnxruntime" (int8 MatMulInteger)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReadBandwidth:
    """Bytes per second read by a reduction over a buffer of `nbytes`."""

    nbytes: int
    threads: int
    seconds: float
    bytes_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _best_seconds(call, repeats: int) -> float:
    call()  # warm-up: first-touch pages, kernel selection, AMX tile set-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


PROBE_SIZE = 512
MAX_PRODUCT_SECONDS = 3.0  # one timed product; a precision with no fast path here is measured on a smaller one


def _product(precision: Precision, size: int):
    import torch

    generator = torch.Generator().manual_seed(0)
    if precision == "int8":
        a = torch.randint(-128, 128, (size, size), dtype=torch.int8, generator=generator)
        b = torch.randint(-128, 128, (size, size), dtype=torch.int8, generator=generator)
        return lambda: torch._int_mm(a, b)
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    out = torch.empty(size, size, dtype=dtype)
    return lambda: torch.mm(a, b, out=out)


def _affordable_size(precision: Precision, size: int) -> int:
    """`size`, or the largest multiple of 64 whose product takes about MAX_PRODUCT_SECONDS when a probe
    product says `size` would take longer: without AVX512-BF16/AMX or VNNI, PyTorch's bf16 and int8
    products run on reference loops ~40x slower than fp32 (measured on an AVX2 EPYC), and a 4096 product
    took ~2 minutes. The rate (ops per second) is what is reported, so a smaller product measures it too."""
    if size <= PROBE_SIZE:
        return size
    seconds = _best_seconds(_product(precision, PROBE_SIZE), repeats=1)
    if seconds * (size / PROBE_SIZE) ** 3 <= MAX_PRODUCT_SECONDS:
        return size
    affordable = PROBE_SIZE * (MAX_PRODUCT_SECONDS / seconds) ** (1 / 3)
    return int(max(PROBE_SIZE, min(size, affordable // 64 * 64)))


def _ort_int8_product(size: int, threads: int):
    """onnxruntime's MatMulInteger (uint8 x int8 -> int32): the integer kernel (MLAS) its int8 variants run on,
    with VNNI where the CPU has it and vpmaddubsw pairs on AVX2."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.integers(-128, 128, (size, size), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "int8_ceiling",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [size, size])],
        [numpy_helper.from_array(weight, "b")],
    )
    # IR 8: what every onnxruntime since 1.10 reads (onnx's newest IR can be ahead of the installed runtime).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    a = rng.integers(0, 256, (size, size), dtype=np.uint8)
    return lambda: session.run(None, {"a": a})


def _ort_int8_ceiling(size: int, threads: int, repeats: int) -> MatmulCeiling:
    seconds = _best_seconds(_ort_int8_product(size, threads), repeats)
    return MatmulCeiling("int8", size, threads, seconds, 2 * size**3 / seconds, engine="onnxruntime")


def measure_matmul_ceiling(
    precision: Precision, size: int = 4096, threads: int | None = None, repeats: int = 3
) -> MatmulCeiling:
    """Time one size x size x size matrix product (oneDNN through PyTorch: AMX for bf16 where present).

    int8 is the faster of `torch._int_mm` (int8 x int8 -> int32, the integer product PyTorch exposes) and
    onnxruntime's MatMulInteger (uint8 x int8, the kernel onnxruntime's int8 variants use): on CPUs without
    VNNI/AMX, PyTorch's integer product runs on reference loops far below the CPU's rate (0.0015 TOP/s on an
    AVX2 EPYC, against 0.13 TFLOP/s fp32), while onnxruntime's keeps its own kernels; `engine` says which one won. A
    precision PyTorch has no fast path for is timed on a smaller product (`_affordable_size`); `size`
    says which.
    """
    import torch

    if precision not in PRECISIONS:
        raise UserError(f"Unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}.")
    if size < 64 or size % 8:
        raise UserError(f"The matrix size must be a multiple of 8 and at least 64, got {size}.")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            torch_size = _affordable_size(precision, size)
            seconds = _best_seconds(_product(precision, torch_size), repeats)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)
    best = MatmulCeiling(precision, torch_size, used_threads, seconds, 2 * torch_size**3 / seconds)
    if precision == "int8":
        ort_ceiling = _ort_int8_ceiling(size, used_threads, repeats)
        if ort_ceiling.ops_per_second > best.ops_per_second:
            best = ort_ceiling
    return best


def measure_read_bandwidth(
    nbytes: int = 1 << 30, threads: int | None = None, repeats: int = 5
) -> ReadBandwidth:
    """Read bandwidth: the best time of a sum over an fp32 buffer of `nbytes`.

    The default 1 GiB is far larger than any last-level cache, so this is the memory (DRAM) rate.
    """
    import torch

    if nbytes < 4096:
        raise UserError(f"The buffer must hold at least 4096 bytes, got {nbytes}.")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        buffer = torch.ones(nbytes // 4, dtype=torch.float32)
        with torch.inference_mode():
            seconds = _best_seconds(lambda: buffer.sum(), repeats)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)
    actual = buffer.numel() * 4
    return ReadBandwidth(actual, used_threads, seconds, actual / seconds)


@dataclass(frozen=True)
class HardwareLimits:
    """Everything measured about these cores in one run."""

    ceilings: dict[str, MatmulCeiling]
    bandwidth: ReadBandwidth

    @classmethod
    def measure(cls, threads: int | None = None, size: int = 4096) -> "HardwareLimits":
        ceilings = {p: measure_matmul_ceiling(p, size=size, threads=threads) for p in PRECISIONS}
        return cls(ceilings, measure_read_bandwidth(threads=threads))

    def compute_seconds(self, flops: int, precision: Precision) -> float:
        """The least time `flops` take at the measured ceiling of `precision`."""
        return flops / self.ceilings[precision].ops_per_second

    def weight_read_seconds(self, nbytes: int) -> float:
        """The least time reading `nbytes` from memory takes at the measured bandwidth."""
        return nbytes / self.bandwidth.bytes_per_second

    def to_dict(self) -> dict[str, Any]:
        return {
            "ceilings": {p: c.to_dict() for p, c in self.ceilings.items()},
            "bandwidth": self.bandwidth.to_dict(),
        }
