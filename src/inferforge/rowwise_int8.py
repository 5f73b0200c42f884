"""onnxruntime int8 with each row of activations quantized on its own: `ort-int8-rowwise`.

onnxruntime's dynamic int8 (`ort-int8-dynamic`) quantizes a matrix product's whole input with one scale, so one
token with a large value coarsens every other token's; and on a CPU without VNNI its u8 x s8 kernels (`vpmaddubsw`)
saturate when two neighbouring products are large. On all-MiniLM-L6-v2 that puts the worst cosine against fp32 at
0.952, outside the 0.99 budget. This variant rewrites every matrix product with a constant weight as:

- SmoothQuant (Xiao et al. 2022): the input's channels divided by s_j = max|x_j|^a / max|W_j|^(1-a) and the
  weight's rows multiplied by it: the product is unchanged, and the outlier channels of the activations move into
  the weights, which are quantized per output channel (int8, symmetric) offline. max|x_j| is measured on the
  calibration texts (not the verification texts), and so is the strength a: of 0.4-0.8, the one whose model
  is closest to fp32 there;
- each row (token) of the input quantized at run time with its own scale and zero point (asymmetric uint8):
  `QuantizeLinear` per axis on the input seen as rows, 7-bit (0..127) on CPUs without VNNI or AMX int8, so that
  u8 x s8 pairs can never saturate, 8-bit where the CPU has them;
- `MatMulIntegerToFloat` (onnxruntime's int8 product with the weight scales applied), then the row scales and
  the zero points' correction (zero point x the weight's column sums) in floating point.

Measured on the AVX2 EPYC (MiniLM, bench/experiments/FINDINGS.md): worst cosine over the built-in verification
texts 0.989 where `ort-int8-dynamic` gives 0.952, 0.990 (inside the budget) with one of its 36 products kept in
fp32 by the accuracy search, about 1.2-1.3x faster than fp32 at 1x128 and 32x128. The inputs shared by several
products (query, key and value) are quantized once.
"""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inferforge.errors import NotApplicable, UserError
from inferforge.quantize import (
    _batches_digest,
    _check_nodes,
    _Int8Variant,
    _keep_suffix,
    _normalize_nodes,
    context_calibration_batches,
)
from inferforge.variants import BuildContext, _OrtVariant, register_variant

SMOOTHING = 0.5  # SmoothQuant's strength where it is not chosen on the calibration texts (models over 2 GB)
EPS = 1e-8
TWO_GB = 2 * 1024**3  # protobuf's limit: larger models are saved with external data (as inferforge.export does)
SMOOTH_CLAMP = (1e-5, 1e5)
MS_DOMAIN = "com.microsoft"
SMOOTHING_CANDIDATES = (0.4, 0.5, 0.6, 0.7, 0.8)


def activation_bits_for(machine) -> int:
    """7-bit activations without VNNI/AMX int8 (onnxruntime's u8 x s8 `vpmaddubsw` sums two products in 16 bits:
    129 x 127 x 2 still fits, 255 x 127 x 2 does not), 8-bit with them."""
    isa = machine.isa
    return 8 if (isa.get("avx512_vnni") or isa.get("avx_vnni") or isa.get("amx_int8")) else 7


# The ONNX file's metadata: the activation bits and SmoothQuant strength it was built with (Netron shows them).
BITS_METADATA = "inferforge.activation_bits"
SMOOTHING_METADATA = "inferforge.smoothing"


def portability_warning(built_bits: int | None, machine) -> str | None:
    """What to tell a user whose folder was converted on a CPU with VNNI/AMX int8 (8-bit rows) and now runs on one
    without them, where the same products saturate: None when the graph suits this CPU."""
    if built_bits is None or built_bits <= activation_bits_for(machine):
        return None
    return (f"this row-wise int8 model was built with {built_bits}-bit activations for a CPU with VNNI or AMX int8; "
            f"this CPU ({machine.cpu_model}) has neither, and onnxruntime's int8 products can overflow on it "
            "(answers off): convert the model again on this machine, or choose another variant.")


@dataclass
class _Product:
    node: onnx.NodeProto
    weight: np.ndarray  # (K, N) float


def _eligible(model: onnx.ModelProto):
    """(node, weight initializer) of every MatMul whose second input is a 2-D float initializer, in graph order."""
    initializers = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        tensor = initializers.get(node.input[1]) if node.op_type == "MatMul" else None
        if tensor is not None and tensor.data_type == TensorProto.FLOAT and len(tensor.dims) == 2:
            yield node, tensor


def _constant_weight_products(model: onnx.ModelProto, keep_fp32: Sequence[str]) -> "OrderedDict[str, list[_Product]]":
    """The products to quantize (eligible, not kept in fp32), grouped by the activation they read."""
    groups: OrderedDict[str, list[_Product]] = OrderedDict()
    keep = set(keep_fp32)
    for node, tensor in _eligible(model):
        if node.name not in keep:
            groups.setdefault(node.input[0], []).append(_Product(node, numpy_helper.to_array(tensor)))
    return groups


def rowwise_nodes(fp32_onnx: Path) -> list[str]:
    """Names of the nodes this variant quantizes (what the accuracy search may keep in fp32), in graph order."""
    return [node.name for node, _ in _eligible(onnx.load(str(fp32_onnx), load_external_data=False))]


def _check_applicable(model: onnx.ModelProto) -> None:
    if _opset(model) < 13:
        raise NotApplicable(f"the graph uses ONNX opset {_opset(model)}: row-wise int8 needs opset 13 or later")
    if next(_eligible(model), None) is None:
        raise NotApplicable("the graph has no matrix product on a constant weight to quantize")


def activation_channel_ranges(fp32_onnx: Path, sources: Sequence[str],
                              batches: list[dict[str, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(min, max) per channel (last axis) of each tensor in `sources`, over the calibration batches (fp32 graph).

    A tensor with no row in any batch is left out: X-MOD routes each token to its language's adapter, so the
    adapters of languages the calibration texts are not in see empty tensors (and get no smoothing)."""
    import onnxruntime as ort

    model = onnx.load(str(fp32_onnx))
    present = {o.name for o in model.graph.output}
    for name in sources:
        if name not in present:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    with tempfile.TemporaryDirectory(prefix="inferforge-rowwise-") as tmp:
        path = Path(tmp) / "calibrate.onnx"
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="calibrate.onnx.data", size_threshold=1024)
        del model
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        wanted = list(sources)
        feeds_names = {i.name for i in session.get_inputs()}
        ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for batch in batches:
            outputs = session.run(wanted, {k: v for k, v in batch.items() if k in feeds_names})
            for name, value in zip(wanted, outputs):
                rows = value.reshape(-1, value.shape[-1])
                if not len(rows):
                    continue
                low, high = rows.min(axis=0), rows.max(axis=0)
                if name in ranges:
                    low, high = np.minimum(ranges[name][0], low), np.maximum(ranges[name][1], high)
                ranges[name] = (low, high)
    return ranges


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


class _Builder:
    """Appends the run-time quantization nodes and their constants, with unique names."""

    def __init__(self, model: onnx.ModelProto):
        self.opset = _opset(model)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.taken = {t.name for t in model.graph.initializer} | {o for n in model.graph.node for o in n.output}
        self.taken |= {i.name for i in model.graph.input}
        self._constants: dict[tuple, str] = {}

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name

    def constant(self, base: str, value: np.ndarray, shared: bool = True) -> str:
        value = np.asarray(value)
        key = (value.dtype.str, value.shape, value.tobytes()) if shared and value.size <= 4 else None
        if key is not None and key in self._constants:
            return self._constants[key]
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(value, name))
        if key is not None:
            self._constants[key] = name
        return name

    def node(self, op: str, inputs: list[str], base: str, output: str | None = None, domain: str = "", **attrs) -> str:
        out = output or self.fresh(base)
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.fresh(f"{base}_node"), domain=domain, **attrs))
        return out

    def reduce(self, op: str, x: str, base: str) -> str:
        """Reduce over axis 1 of a 2-D tensor, without keeping it (axes an attribute before opset 18)."""
        if self.opset >= 18:
            return self.node(op, [x, self.constant("rowwise_axis1", np.array([1], np.int64))], base, keepdims=0)
        return self.node(op, [x], base, axes=[1], keepdims=0)


def _quantize_input(b: _Builder, source: str, k: int, inv_smooth: np.ndarray | None, levels: int, tag: str):
    """Nodes quantizing `source` (..., K) row by row, each row onto 0..levels with its own scale and zero point:
    (q (..., K) uint8, row scale (..., 1), zero point x row scale (..., 1))."""
    x = source
    if inv_smooth is not None:
        x = b.node("Mul", [x, b.constant(f"{tag}/smooth_inv", inv_smooth.astype(np.float32), shared=False)], f"{tag}/smoothed")
    rows = b.node("Reshape", [x, b.constant("rowwise_rows_shape", np.array([-1, k], np.int64))], f"{tag}/rows")
    shape = b.node("Shape", [x], f"{tag}/shape")
    lead = b.node("Slice", [shape, b.constant("rowwise_zero_i64", np.array([0], np.int64)),
                            b.constant("rowwise_minus1_i64", np.array([-1], np.int64))], f"{tag}/lead")
    column = b.node("Concat", [lead, b.constant("rowwise_one_i64", np.array([1], np.int64))], f"{tag}/column_shape", axis=0)
    zero = b.constant("rowwise_zero", np.float32(0))
    high = b.node("Max", [b.reduce("ReduceMax", rows, f"{tag}/max"), zero], f"{tag}/high")
    low = b.node("Min", [b.reduce("ReduceMin", rows, f"{tag}/min"), zero], f"{tag}/low")
    spread = b.node("Sub", [high, low], f"{tag}/spread")
    step = b.node("Div", [spread, b.constant(f"rowwise_levels{levels}", np.float32(levels))], f"{tag}/step")
    scale = b.node("Max", [step, b.constant("rowwise_eps", np.float32(EPS))], f"{tag}/scale")
    # low <= 0 <= high, so -low / scale lies in 0..levels: no clipping needed before the cast
    zero_point_f = b.node("Round", [b.node("Div", [b.node("Neg", [low], f"{tag}/neg_low"), scale], f"{tag}/zp_raw")], f"{tag}/zp_f")
    zero_point = b.node("Cast", [zero_point_f], f"{tag}/zp", to=TensorProto.UINT8)
    q = b.node("Reshape", [b.node("QuantizeLinear", [rows, scale, zero_point], f"{tag}/q_rows", axis=0), shape], f"{tag}/q")
    row_scale = b.node("Reshape", [scale, column], f"{tag}/row_scale")
    zp_scaled = b.node("Reshape", [b.node("Mul", [zero_point_f, scale], f"{tag}/zp_x_scale"), column], f"{tag}/zp_scaled")
    return q, row_scale, zp_scaled


def _quantized_weight(weight: np.ndarray, smooth: np.ndarray | None):
    """int8 (K, N) per output channel, its scales (N,), and the column sums times the scales (N,)."""
    w = weight * smooth[:, None] if smooth is not None else weight
    scales = np.abs(w).max(axis=0) / 127.0
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scales), -127, 127).astype(np.int8)
    return q, scales, (q.astype(np.int64).sum(axis=0) * scales).astype(np.float32)


def _smoothing_factors(products: list[_Product], low: np.ndarray, high: np.ndarray, alpha: float) -> np.ndarray | None:
    if not alpha:
        return None
    act = np.maximum(np.maximum(-low.astype(np.float64), high.astype(np.float64)), SMOOTH_CLAMP[0])
    wmax = np.maximum(np.max([np.abs(p.weight).max(axis=1) for p in products], axis=0), SMOOTH_CLAMP[0])
    return np.clip(act ** alpha / wmax ** (1 - alpha), *SMOOTH_CLAMP)


def _rowwise_model(model: onnx.ModelProto, groups: "OrderedDict[str, list[_Product]]", ranges: dict,
                   activation_bits: int, alpha: float) -> onnx.ModelProto:
    """A copy of `model` with the grouped products in row-wise int8."""
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    model = model_copy
    levels = 2 ** activation_bits - 1
    b = _Builder(model)
    by_output: dict[str, list[onnx.NodeProto]] = {}  # a product's output -> its nodes (the first also quantizes)
    for index, (source, products) in enumerate(groups.items()):
        smooth = _smoothing_factors(products, *ranges[source], alpha) if source in ranges else None
        tag = f"rowwise{index}"
        b.nodes = []
        q, row_scale, zp_scaled = _quantize_input(b, source, products[0].weight.shape[0],
                                                  None if smooth is None else 1 / smooth, levels, tag)
        for j, product in enumerate(products):
            if j:
                b.nodes = []
            wq, scales, column_sums = _quantized_weight(product.weight, smooth)
            ptag = f"{tag}/p{j}"
            z = b.node("MatMulIntegerToFloat", [q, b.constant(f"{ptag}/weight_int8", wq, shared=False),
                                                b.constant("rowwise_one", np.float32(1)),
                                                b.constant(f"{ptag}/weight_scale", scales, shared=False)],
                       f"{ptag}/int8_product", domain=MS_DOMAIN)
            scaled = b.node("Mul", [z, row_scale], f"{ptag}/scaled")
            correction = b.node("Mul", [zp_scaled, b.constant(f"{ptag}/column_sums", column_sums, shared=False)],
                                f"{ptag}/zp_correction")
            b.node("Sub", [scaled, correction], f"{ptag}/out", output=product.node.output[0])
            by_output[product.node.output[0]] = b.nodes
    nodes = []
    for node in model.graph.node:
        nodes.extend(by_output.get(node.output[0], [node]) if node.op_type == "MatMul" else [node])
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for node in model.graph.node for i in node.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + b.initializers)
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    del model.graph.value_info[:]
    return model


def _session(model: onnx.ModelProto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _worst_relative_error(session, batches: list[dict[str, np.ndarray]], references: list[list[np.ndarray]]) -> float:
    """The largest relative L2 error of one sample's outputs (all outputs of a batch row together)."""
    names = {i.name for i in session.get_inputs()}
    worst = 0.0
    for batch, reference in zip(batches, references):
        outputs = session.run(None, {k: v for k, v in batch.items() if k in names})
        rows = len(next(iter(batch.values())))
        got = np.concatenate([o.reshape(rows, -1) for o in outputs], axis=1).astype(np.float64)
        want = np.concatenate([r.reshape(rows, -1) for r in reference], axis=1).astype(np.float64)
        error = np.linalg.norm(got - want, axis=1) / np.maximum(np.linalg.norm(want, axis=1), 1e-12)
        worst = max(worst, float(error.max()))
    return worst


def choose_smoothing(model: onnx.ModelProto, groups, ranges: dict, activation_bits: int,
                     batches: list[dict[str, np.ndarray]], candidates: Sequence[float] = SMOOTHING_CANDIDATES) -> float:
    """The SmoothQuant strength whose model is closest to fp32 on the calibration batches (its worst sample)."""
    if model.ByteSize() > TWO_GB or len(candidates) == 1:  # too large to try in memory: the common default
        return SMOOTHING
    reference = _session(model)
    names = {i.name for i in reference.get_inputs()}
    references = [reference.run(None, {k: v for k, v in batch.items() if k in names}) for batch in batches]
    del reference
    errors = {alpha: _worst_relative_error(_session(_rowwise_model(model, groups, ranges, activation_bits, alpha)),
                                           batches, references) for alpha in candidates}
    return min(errors, key=errors.get)


def quantize_rowwise(fp32_onnx: Path, out: Path, batches: list[dict[str, np.ndarray]], activation_bits: int = 7,
                     smoothing: float | None = None, keep_fp32: Sequence[str] = (), ranges: dict | None = None) -> Path:
    """Write `out`: `fp32_onnx` with every MatMul on a constant 2-D weight (but `keep_fp32`) in row-wise int8.

    `batches` (token arrays: calibration texts) measure the activations' channel ranges (or give `ranges`, from
    `activation_channel_ranges`) and choose the SmoothQuant strength when `smoothing` is None (0: no smoothing)."""
    if activation_bits not in (7, 8):
        raise UserError(f"activation_bits must be 7 or 8 (got {activation_bits}).")
    model = onnx.load(str(fp32_onnx))
    _check_nodes(keep_fp32, [node.name for node, _ in _eligible(model)], fp32_onnx.name)
    _check_applicable(model)
    groups = _constant_weight_products(model, keep_fp32)
    if ranges is None:
        ranges = activation_channel_ranges(fp32_onnx, list(groups), batches)
    if smoothing is None:
        smoothing = choose_smoothing(model, groups, ranges, activation_bits, batches)
    quantized = _rowwise_model(model, groups, ranges, activation_bits, smoothing)
    del model
    props = {prop.key: prop.value for prop in quantized.metadata_props}  # set_model_props replaces them all
    helper.set_model_props(quantized, props | {BITS_METADATA: str(activation_bits), SMOOTHING_METADATA: f"{smoothing:g}"})
    out.parent.mkdir(parents=True, exist_ok=True)
    from inferforge.export import EXTERNAL_DATA_SUFFIX

    if sum(t.ByteSize() for t in quantized.graph.initializer) > TWO_GB:
        onnx.save_model(quantized, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=out.name + EXTERNAL_DATA_SUFFIX, size_threshold=1024)
    else:
        onnx.save_model(quantized, str(out))
    return out


# Measured once per conversion and shared by the accuracy search's candidates:
# (fp32 ONNX file, calibration digest) -> channel ranges, and (..., activation bits) -> the chosen smoothing.
_RANGES: dict[tuple, dict] = {}
_SMOOTHING: dict[tuple, float] = {}


@register_variant
@dataclass(frozen=True)
class OrtRowwiseInt8(_Int8Variant, _OrtVariant):
    """onnxruntime int8, activations quantized per row at run time, SmoothQuant-balanced per-channel weights."""

    kind: ClassVar[str] = "ort-int8-rowwise"
    smoothing: float | None = None  # None: chosen on the calibration texts
    keep_fp32: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "keep_fp32", _normalize_nodes(self.keep_fp32))

    @property
    def name(self) -> str:
        return self.kind + _keep_suffix(self.keep_fp32)

    def quantized_nodes(self, ctx: BuildContext) -> list[str]:
        return rowwise_nodes(ctx.fp32_onnx)

    def open(self, model_dir, files, threads, ctx=None):
        import warnings

        from inferforge.cpu import machine_info

        engine = super().open(model_dir, files, threads, ctx)
        bits = engine.session.get_modelmeta().custom_metadata_map.get(BITS_METADATA)
        message = portability_warning(int(bits) if bits else None, machine_info())
        if message:
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        return engine

    def quantize_into(self, ctx: BuildContext, folder: Path) -> list[Path]:
        batches = context_calibration_batches(ctx)
        bits = activation_bits_for(ctx.machine)
        stat = ctx.fp32_onnx.stat()  # the same path may hold another model in a later conversion
        key = (str(ctx.fp32_onnx), stat.st_size, stat.st_mtime_ns, _batches_digest(batches))
        model = onnx.load(str(ctx.fp32_onnx), load_external_data=False)
        _check_applicable(model)
        if key not in _RANGES:
            sources = list(dict.fromkeys(node.input[0] for node, _ in _eligible(model)))
            _RANGES.clear()
            _SMOOTHING.clear()
            _RANGES[key] = activation_channel_ranges(ctx.fp32_onnx, sources, batches)
        smoothing = self.smoothing
        if smoothing is None:
            if (key, bits) not in _SMOOTHING:
                model = onnx.load(str(ctx.fp32_onnx))
                _SMOOTHING[(key, bits)] = choose_smoothing(model, _constant_weight_products(model, ()), _RANGES[key],
                                                           bits, batches)
            smoothing = _SMOOTHING[(key, bits)]
        return [quantize_rowwise(ctx.fp32_onnx, folder / "model.onnx", batches, bits, smoothing, self.keep_fp32,
                                 _RANGES[key])]
