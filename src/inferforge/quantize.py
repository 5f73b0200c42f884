"""int8 variants: onnxruntime static QDQ calibrated on the user's texts, and OpenVINO int8 with NNCF.

Every int8 config carries `keep_fp32`, the node names left in floating point. The accuracy-aware
search (`inferforge.accuracy_search`) fills it; `quantized_nodes` lists what can go in it. The
plain functions (`quantize_ort_dynamic`, `quantize_ort_static`, `quantize_openvino_int8`) are the
whole recipe and can be called on any ONNX file.

Calibration runs the fp32 graph on the user's calibration texts (`BuildContext.calibration_texts`,
and `calibration_pairs` when the task takes pairs), in batches padded to the longest text, so the
ranges seen are those of real inputs. Without calibration texts the built-in calibration texts (64
sentences, 16 QA pairs; not the validation texts) are used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterable, Iterator, Sequence

import numpy as np
import onnx

from inferforge.engines.base import Engine
from inferforge.errors import NotApplicable, UserError
from inferforge.tokenization import TextEncoder
from inferforge.variants import BuildContext, Variant, _module_available, _OrtVariant, register_variant

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
CALIBRATION_BATCH = 8
DEFAULT_CALIBRATION_SIZE = 128
# Only the matrix products are quantized: they hold the time; quantizing LayerNorm, Gather or
# Softmax as well costs accuracy and adds Q/DQ pairs for no speed.
INT8_OP_TYPES = ("MatMul", "Gemm")


def _normalize_nodes(nodes: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(dict.fromkeys(str(n) for n in nodes)))


def _keep_suffix(keep_fp32: Sequence[str]) -> str:
    return f"-keep{len(keep_fp32)}" if keep_fp32 else ""


@contextlib.contextmanager
def _quiet_ort_quantization():
    """onnxruntime.quantization logs "consider pre-processing" warnings through the root logger: at ERROR while it
    runs, then back to the level the caller's program had (it stayed at ERROR, silencing the user's warnings)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


# ---------------------------------------------------------------- calibration inputs


def calibration_batches(encoder: TextEncoder, texts: Sequence[str], pairs: Sequence[str] | None = None,
                        batch_size: int = CALIBRATION_BATCH, limit: int = DEFAULT_CALIBRATION_SIZE,
                        same_shape: bool = False) -> list[dict[str, np.ndarray]]:
    """Token arrays for calibration: at most `limit` texts, in batches padded to their longest text.

    `same_shape` pads every batch to the longest text of all and keeps only full batches: the
    histogram methods (entropy, percentile) stack what they see and need one shape.
    """
    if not texts:
        raise UserError("No calibration text: give at least one text with --calibration-data.")
    texts = list(texts)[:limit]
    pairs = list(pairs)[:limit] if pairs is not None else None
    pad_to = None
    if same_shape:
        pad_to = encoder.encode(texts, pairs).arrays["input_ids"].shape[1]
        if len(texts) > batch_size:
            keep = len(texts) - len(texts) % batch_size
            texts, pairs = texts[:keep], (pairs[:keep] if pairs is not None else None)
        else:
            batch_size = len(texts)
    batches = []
    for start in range(0, len(texts), batch_size):
        chunk_pairs = pairs[start : start + batch_size] if pairs is not None else None
        batches.append(encoder.encode(texts[start : start + batch_size], chunk_pairs, pad_to=pad_to).arrays)
    return batches


def context_calibration_batches(ctx: BuildContext, limit: int = DEFAULT_CALIBRATION_SIZE,
                                same_shape: bool = False) -> list[dict[str, np.ndarray]]:
    """The calibration batches of a conversion: the user's texts, else the built-in calibration texts
    (not the validation texts: ranges fitted on the texts that judge the variant would flatter it)."""
    texts = list(ctx.calibration_texts)
    pairs = getattr(ctx, "calibration_pairs", None)
    if not texts:
        from inferforge.verify import builtin_texts

        texts, pairs = builtin_texts(ctx.task, "calibration")
    if ctx.task.needs_pairs and pairs is None:
        raise UserError(f"{ctx.task.name} needs calibration text pairs (question and context).")
    return calibration_batches(ctx.encoder, texts, pairs, limit=limit, same_shape=same_shape)


def _batches_digest(batches: list[dict[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for batch in batches:
        for name in sorted(batch):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(batch[name]).tobytes())
            digest.update(str(batch[name].shape).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- which nodes can be quantized


def matmul_nodes(onnx_path: Path, op_types: Sequence[str] = INT8_OP_TYPES) -> list[str]:
    """Names of the nodes int8 quantization touches (matrix products), in graph order."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    return [node.name for node in model.graph.node if node.op_type in op_types]


def _check_nodes(keep_fp32: Sequence[str], known: Sequence[str], where: str) -> None:
    unknown = sorted(set(keep_fp32) - set(known))
    if unknown:
        raise UserError(f"keep_fp32 names node(s) that {where} does not have: {', '.join(unknown[:5])}.")


# ---------------------------------------------------------------- onnxruntime


def quantize_ort_dynamic(fp32_onnx: Path, out: Path, per_channel: bool = False, keep_fp32: Sequence[str] = (),
                         op_types: Sequence[str] = ("MatMul",)) -> Path:
    """int8 weights, activations quantized at run time; `keep_fp32` nodes stay in floating point. 8-bit weights on
    every CPU: onnxruntime's advice against u8 x s8 saturation without VNNI (7-bit weights, `reduce_range`) made
    MiniLM worse on an AVX2 EPYC (worst cosine 0.946 against 0.955, measured), at the same speed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _check_nodes(keep_fp32, matmul_nodes(fp32_onnx, op_types), fp32_onnx.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_ort_quantization():
        quantize_dynamic(str(fp32_onnx), str(out), weight_type=QuantType.QInt8, per_channel=per_channel,
                         op_types_to_quantize=list(op_types), nodes_to_exclude=list(keep_fp32),
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return out


def calibrate_ort(fp32_onnx: Path, batches: list[dict[str, np.ndarray]], method: str, cache: Path,
                  op_types: Sequence[str] = INT8_OP_TYPES) -> Path:
    """Run the fp32 graph on the calibration batches and store the tensor ranges in `cache` (JSON).

    The ranges are computed once per method and reused by every partially quantized model of the
    search: only the Q/DQ placement changes between them. A cache made from other batches is redone.
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import save_tensors_data

    if method not in CALIBRATION_METHODS:
        raise UserError(f"Unknown calibration method '{method}'; choose one of: {', '.join(CALIBRATION_METHODS)}.")
    stamp = cache.with_suffix(".inputs.sha256")
    digest = _batches_digest(batches)
    if cache.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return cache

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(batches)

        def get_next(self):
            return next(self.items, None)

    import tempfile

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    cache.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_ort_quantization(), tempfile.TemporaryDirectory(prefix="inferforge-calibrate-") as tmp:
        calibrator = create_calibrator(fp32_onnx, list(op_types), augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=methods[method],
                                       extra_options={"symmetric": False} if method == "minmax" else {})
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print their progress
            calibrator.collect_data(Reader())
            ranges = calibrator.compute_data()
        del calibrator
    save_tensors_data(ranges, cache)
    stamp.write_text(digest)
    return cache


def quantize_ort_static(fp32_onnx: Path, out: Path, calibration_cache: Path, method: str, per_channel: bool = False,
                        keep_fp32: Sequence[str] = (), op_types: Sequence[str] = INT8_OP_TYPES) -> Path:
    """QDQ int8 (weights and activations) from calibrated ranges; `keep_fp32` nodes get no Q/DQ."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    _check_nodes(keep_fp32, matmul_nodes(fp32_onnx, op_types), fp32_onnx.name)
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    out.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_ort_quantization():
        quantize_static(str(fp32_onnx), str(out), calibration_data_reader=None, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(op_types), per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=list(keep_fp32), calibrate_method=methods[method],
                        calibration_cache_path=str(calibration_cache),
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": False})
    return out


class _Int8Variant(Variant):
    """What the accuracy-aware search needs from an int8 config."""

    precision: ClassVar[str] = "int8"
    keep_fp32: tuple[str, ...]

    @property
    def base_name(self) -> str:
        """The name of the fully quantized config (no node kept in fp32)."""
        return dataclasses.replace(self, keep_fp32=()).name

    def with_keep_fp32(self, nodes: Iterable[str]) -> "_Int8Variant":
        return dataclasses.replace(self, keep_fp32=_normalize_nodes(nodes))

    def quantized_nodes(self, ctx: BuildContext) -> list[str]:
        return matmul_nodes(ctx.fp32_onnx)

    def ranking_proxy(self) -> "_Int8Variant | None":
        """A cheaper int8 config whose node sensitivities stand in for this one's (None: rank on this one)."""
        return None

    def node_from_proxy(self, name: str, own_nodes: set[str]) -> str | None:
        """This config's name for a node of `ranking_proxy()` (None when it has no such node)."""
        return name if name in own_nodes else None

    def build(self, ctx: BuildContext) -> list[str]:
        folder = ctx.variant_dir(self.name)
        written = self.quantize_into(ctx, folder)
        return [str(p.relative_to(ctx.workdir)) for p in written]

    def quantize_into(self, ctx: BuildContext, folder: Path) -> list[Path]:
        """Write the model into `folder`; the first path returned is what `open` loads."""
        raise NotImplementedError

    def candidate_into(self, ctx: BuildContext, folder: Path) -> list[Path]:
        """The same model for the search to measure (and delete): a config may make it faster than
        `quantize_into`; what is stored in the folder is always built by `quantize_into`."""
        return self.quantize_into(ctx, folder)

    def to_dict(self) -> dict:
        data = super().to_dict()
        data["keep_fp32"] = list(self.keep_fp32)
        return data


@register_variant
@dataclass(frozen=True)
class OrtDynamicInt8Partial(_Int8Variant, _OrtVariant):
    """onnxruntime dynamic int8 with some MatMul nodes kept in fp32 (made by the accuracy search)."""

    kind: ClassVar[str] = "ort-int8-dynamic-partial"
    per_channel: bool = True
    keep_fp32: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "keep_fp32", _normalize_nodes(self.keep_fp32))

    @property
    def name(self) -> str:
        # Named like the core's OrtDynamicInt8, which is this config with nothing kept in fp32.
        return "ort-int8-dynamic" + ("" if self.per_channel else "-per-tensor") + _keep_suffix(self.keep_fp32)

    def quantized_nodes(self, ctx: BuildContext) -> list[str]:
        return matmul_nodes(ctx.fp32_onnx, ("MatMul",))

    def quantize_into(self, ctx: BuildContext, folder: Path) -> list[Path]:
        return [quantize_ort_dynamic(ctx.fp32_onnx, folder / "model.onnx", self.per_channel, self.keep_fp32)]

    def candidate_into(self, ctx: BuildContext, folder: Path) -> list[Path]:
        """The fully quantized graph with the kept nodes put back in fp32: the model `quantize_into` writes
        (same nodes, same outputs to the bit, tested), in 0.4 s instead of 4 s on MiniLM, where onnxruntime's
        quantizer infers shapes and saves and reloads the model twice for every candidate."""
        sources = _dynamic_sources(ctx.fp32_onnx, self.per_channel)
        if sources is None:
            return self.quantize_into(ctx, folder)
        fp32, quantized = sources
        out = folder / "model.onnx"
        folder.mkdir(parents=True, exist_ok=True)
        onnx.save(restore_fp32_nodes(quantized, fp32, self.keep_fp32), str(out))
        return [out]


# (fp32 ONNX path, its size and time, per_channel) -> (fp32 graph, fully quantized graph), for the searches
# running now; `forget_search_sources()` empties it when a search ends.
_SEARCH_SOURCES: dict[tuple, tuple[onnx.ModelProto, onnx.ModelProto]] = {}
SEARCH_SOURCE_MAX_BYTES = 1 << 30  # graphs held in memory (twice) up to this size; larger ones are quantized each time


def _dynamic_sources(fp32_onnx: Path, per_channel: bool) -> tuple[onnx.ModelProto, onnx.ModelProto] | None:
    import tempfile

    from inferforge.export import EXTERNAL_DATA_SUFFIX

    stat = fp32_onnx.stat()
    if stat.st_size > SEARCH_SOURCE_MAX_BYTES or Path(str(fp32_onnx) + EXTERNAL_DATA_SUFFIX).exists():
        return None  # large: quantized candidate by candidate, as the stored model is
    key = (str(fp32_onnx), stat.st_size, stat.st_mtime_ns, per_channel)
    if key not in _SEARCH_SOURCES:
        with tempfile.TemporaryDirectory(prefix="inferforge-int8-") as tmp:
            full = quantize_ort_dynamic(fp32_onnx, Path(tmp) / "model.onnx", per_channel)
            _SEARCH_SOURCES[key] = (onnx.load(str(fp32_onnx)), onnx.load(str(full)))
    return _SEARCH_SOURCES[key]


def forget_search_sources() -> None:
    _SEARCH_SOURCES.clear()


def restore_fp32_nodes(quantized: onnx.ModelProto, fp32: onnx.ModelProto, nodes: Iterable[str]) -> onnx.ModelProto:
    """`quantized` with the nodes named `nodes` of `fp32` put back as they are there: each takes the place of the
    node that now makes its output (the last of its int8 chain, so its inputs are made before it and its readers
    come after), then whatever only the removed nodes used goes (the int8 product, its scales, a
    DynamicQuantizeLinear no other product shares, int8 weights), and the fp32 weights it reads are added."""
    model = onnx.ModelProto()
    model.CopyFrom(quantized)
    graph = model.graph
    originals = {node.name: node for node in fp32.graph.node}
    fp32_weights = {tensor.name: tensor for tensor in fp32.graph.initializer}
    restored = [originals[name] for name in nodes]
    by_output = {output: node for node in restored for output in node.output}
    in_place = []
    for node in graph.node:  # graph order kept: a restored node where its output's maker was
        taken = next((by_output[output] for output in node.output if output in by_output), None)
        in_place.append(node if taken is None else taken)
    kept_ids = {id(node) for node in restored}
    outputs = {output.name for output in graph.output}
    while True:  # drop what nothing reads any more (the restored nodes stay)
        read = {name for node in in_place for name in _reads(node)}
        alive = [node for node in in_place
                 if id(node) in kept_ids or any(output in read or output in outputs for output in node.output)]
        if len(alive) == len(in_place):
            break
        in_place = alive
    weights = {tensor.name: tensor for tensor in graph.initializer if tensor.name in read}
    for name in (name for node in restored for name in node.input):
        if name in fp32_weights and name not in weights:
            weights[name] = fp32_weights[name]
    del graph.initializer[:]
    graph.initializer.extend(weights.values())
    del graph.node[:]
    graph.node.extend(in_place)
    return model


def _reads(node: onnx.NodeProto) -> Iterator[str]:
    """The tensors a node reads: its inputs and what the nodes of its subgraphs (If, Loop, Scan) read."""
    yield from node.input
    for attribute in node.attribute:
        for subgraph in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
            for inner in subgraph.node:
                yield from _reads(inner)


@register_variant
@dataclass(frozen=True)
class OrtStaticInt8(_Int8Variant, _OrtVariant):
    """onnxruntime static int8 in QDQ format: weights and activations int8, ranges calibrated on texts."""

    kind: ClassVar[str] = "ort-int8-static"
    method: str = "minmax"  # "minmax" | "entropy" | "percentile"
    per_channel: bool = False
    calibration_size: int = DEFAULT_CALIBRATION_SIZE
    keep_fp32: tuple[str, ...] = ()

    def __post_init__(self):
        if self.method not in CALIBRATION_METHODS:
            raise UserError(f"Unknown calibration method '{self.method}'; choose one of: {', '.join(CALIBRATION_METHODS)}.")
        object.__setattr__(self, "keep_fp32", _normalize_nodes(self.keep_fp32))

    @property
    def name(self) -> str:
        return (f"ort-int8-static-{self.method}" + ("-per-channel" if self.per_channel else "")
                + _keep_suffix(self.keep_fp32))

    def calibration_cache(self, ctx: BuildContext) -> Path:
        """Ranges for this method, kept with the fully quantized variant and shared by its partial ones."""
        return ctx.workdir / "variants" / self.base_name / "calibration.json"

    def quantize_into(self, ctx: BuildContext, folder: Path) -> list[Path]:
        batches = context_calibration_batches(ctx, self.calibration_size, same_shape=self.method != "minmax")
        cache = calibrate_ort(ctx.fp32_onnx, batches, self.method,
                              self.calibration_cache(ctx))
        model = quantize_ort_static(ctx.fp32_onnx, folder / "model.onnx", cache, self.method, self.per_channel,
                                    self.keep_fp32)
        return [model, cache]


# ---------------------------------------------------------------- OpenVINO + NNCF


# SmoothQuant moves activation outliers into the weights before quantizing. NNCF's default strength for
# transformers (0.95) suits LLMs; the paper's 0.5 kept MiniLM's embeddings closer to fp32 (min cosine
# 0.9593 against 0.9531 fully quantized, 0.9910 against 0.9842 with its FFN outputs left in floating
# point; bench/experiments/FINDINGS.md).
SMOOTH_QUANT_ALPHA = 0.5


def openvino_matmul_nodes(ov_model) -> list[str]:
    """Friendly names of the MatMul operations of an OpenVINO model (NNCF's ignored_scope names)."""
    return [op.get_friendly_name() for op in ov_model.get_ordered_ops() if op.get_type_name() == "MatMul"]


def quantize_openvino_int8(fp32_onnx: Path, out_xml: Path, batches: list[dict[str, np.ndarray]],
                           keep_fp32: Sequence[str] = (), preset: str = "mixed",
                           smooth_quant: float | None = SMOOTH_QUANT_ALPHA) -> Path:
    """OpenVINO IR with int8 MatMuls (NNCF post-training quantization, transformer model type).

    `smooth_quant`: SmoothQuant's migration strength for MatMuls (None: NNCF's own default, -1: off).
    """
    from inferforge.openvino_tools import convert_onnx, decline_telemetry_without_consent

    decline_telemetry_without_consent()
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    model = convert_onnx(fp32_onnx)
    _check_nodes(keep_fp32, openvino_matmul_nodes(model), "the OpenVINO model")
    presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
    if preset not in presets:
        raise UserError(f"Unknown NNCF preset '{preset}'; choose one of: {', '.join(presets)}.")
    input_names = [p.get_any_name() for p in model.inputs]
    dataset = nncf.Dataset(batches, lambda batch: {n: batch[n] for n in input_names})
    ignored = nncf.IgnoredScope(names=list(keep_fp32), validate=False) if keep_fp32 else None
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws progress bars on stdout
            advanced = (AdvancedQuantizationParameters(smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=smooth_quant))
                        if smooth_quant is not None else None)
            quantized = nncf.quantize(model, dataset, preset=presets[preset], model_type=nncf.ModelType.TRANSFORMER,
                                      subset_size=len(batches), ignored_scope=ignored, advanced_parameters=advanced)
    finally:
        nncf_logger.setLevel(level)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return out_xml


@register_variant
@dataclass(frozen=True)
class OpenVinoInt8(_Int8Variant):
    """OpenVINO int8 (NNCF, calibrated on texts); the rest runs at the CPU's default precision (bf16 on AMX)."""

    kind: ClassVar[str] = "openvino-int8"
    preset: str = "mixed"  # "mixed" (asymmetric activations) | "performance"
    calibration_size: int = DEFAULT_CALIBRATION_SIZE
    inference_precision: str | None = None  # None: the CPU's default for what stays in floating point
    keep_fp32: tuple[str, ...] = ()
    smooth_quant: float | None = SMOOTH_QUANT_ALPHA

    def __post_init__(self):
        object.__setattr__(self, "keep_fp32", _normalize_nodes(self.keep_fp32))

    @property
    def name(self) -> str:
        return "openvino-int8" + ("" if self.preset == "mixed" else f"-{self.preset}") + _keep_suffix(self.keep_fp32)

    def unavailable_reason(self, machine) -> str | None:
        if not machine.has_vnni:
            return "the CPU has neither AVX512-VNNI nor AMX int8: int8 would not be faster than fp32 there"
        return _module_available("openvino") or _module_available("nncf")

    def quantized_nodes(self, ctx: BuildContext) -> list[str]:
        from inferforge.openvino_tools import convert_onnx

        return openvino_matmul_nodes(convert_onnx(ctx.fp32_onnx))

    def ranking_proxy(self) -> _Int8Variant:
        """Each NNCF run recollects statistics (seconds to minutes): the sensitivities are measured on
        onnxruntime static int8 of the same graph (ranges computed once), and only the search's steps
        are built with NNCF."""
        return OrtStaticInt8("minmax", calibration_size=self.calibration_size)

    def node_from_proxy(self, name: str, own_nodes: set[str]) -> str | None:
        """The OpenVINO name of an ONNX node: the same, or with '/WithoutBiases' for a Gemm split in two."""
        return next((c for c in (name, f"{name}/WithoutBiases") if c in own_nodes), None)

    def quantize_into(self, ctx: BuildContext, folder: Path) -> list[Path]:
        try:
            xml = quantize_openvino_int8(ctx.fp32_onnx, folder / "model.xml",
                                         context_calibration_batches(ctx, self.calibration_size), self.keep_fp32,
                                         self.preset, self.smooth_quant)
        except ValueError as error:
            # NNCF stacks each node's statistics over the calibration batches. Where a statistic's shape follows the
            # sequence length (a tiny ConvBERT's span convolutions) it stops: "all input arrays must have the same
            # shape". Calibrated on one length instead, the int8 model then fails at any other length (measured),
            # so this variant does not apply to such a model.
            if "same shape" not in str(error):
                raise
            raise NotApplicable("NNCF's int8 statistics of this model depend on the sequence length (its quantized "
                                "model would run at one length only)") from None
        return [xml, xml.with_suffix(".bin")]

    def open(self, model_dir, files, threads, ctx=None) -> Engine:
        from inferforge.engines.openvino import OpenVinoEngine

        return OpenVinoEngine(Path(model_dir) / files[0], threads, self.inference_precision, self.name)


def int8_variants() -> list[_Int8Variant]:
    """The int8 configs a user can name with --variants (the core's ort-int8-dynamic is the dynamic one)."""
    return [
        OrtStaticInt8("minmax"),
        OrtStaticInt8("entropy"),
        OrtStaticInt8("percentile"),
        OrtStaticInt8("minmax", per_channel=True),
        OpenVinoInt8(),
    ]


def searchable(variant: Variant) -> _Int8Variant | None:
    """The int8 config the accuracy search can refine for `variant` (the core's dynamic int8 maps to ours)."""
    if isinstance(variant, _Int8Variant):
        return variant
    if getattr(variant, "kind", None) == "ort-int8-dynamic":
        return OrtDynamicInt8Partial(per_channel=getattr(variant, "per_channel", True))
    return None


def describe(variant: Variant) -> str:
    return json.dumps(variant.to_dict(), sort_keys=True)
