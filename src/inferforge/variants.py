"""Variants: each is a frozen config registered to how it is built and opened.

A variant's `build` writes its files under the output folder and returns their relative paths;
`open` gives back an `Engine`. A new runtime or precision is one new class here (or in another
module, with `@register_variant`): nothing else changes. `to_dict`/`variant_from_dict` round-trip
through `inferforge.json`, so the report says exactly what was built.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from inferforge.cpu import MachineInfo
from inferforge.engines.base import Engine
from inferforge.errors import UserError
from inferforge.tasks import TaskSpec
from inferforge.tokenization import TextEncoder

FP32_ONNX = "model.onnx"
OPENVINO_IR = "variants/openvino/model.xml"


@dataclass
class BuildContext:
    """What a variant needs to build itself and, at conversion time, to run."""

    workdir: Path
    task: TaskSpec
    encoder: TextEncoder
    threads: int
    machine: MachineInfo
    wrapper: Any = None  # the torch export wrapper (PyTorch variants only)
    calibration_texts: list[str] = field(default_factory=list)
    calibration_pairs: list[str] | None = None
    model_type: str = "bert"
    num_heads: int = 0
    hidden_size: int = 0

    @property
    def fp32_onnx(self) -> Path:
        return self.workdir / FP32_ONNX

    def variant_dir(self, name: str) -> Path:
        folder = self.workdir / "variants" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


class Variant(ABC):
    """Base of every variant config (subclasses are frozen dataclasses)."""

    kind: ClassVar[str]
    deployable: ClassVar[bool] = True
    precision: ClassVar[str] = "fp32"

    @property
    def name(self) -> str:
        return self.kind

    def unavailable_reason(self, machine: MachineInfo) -> str | None:
        """Why this variant cannot run on this machine, or None."""
        return None

    @abstractmethod
    def build(self, ctx: BuildContext) -> list[str]: ...

    @abstractmethod
    def open(self, model_dir: Path, files: list[str], threads: int | None, ctx: BuildContext | None = None) -> Engine: ...

    def to_dict(self) -> dict:
        return {"kind": self.kind, **dataclasses.asdict(self)}


_VARIANTS: dict[str, type[Variant]] = {}


def register_variant(cls: type[Variant]) -> type[Variant]:
    _VARIANTS[cls.kind] = cls
    return cls


def variant_kinds() -> list[str]:
    return sorted(_VARIANTS)


def variant_from_dict(data: dict) -> Variant:
    import inferforge.quantize  # noqa: F401 - registers the calibrated int8 kinds a manifest may name
    import inferforge.rowwise_int8  # noqa: F401

    data = dict(data)
    kind = data.pop("kind")
    if kind not in _VARIANTS:
        raise UserError(f"Unknown variant kind '{kind}'; known kinds: {', '.join(variant_kinds())}.")
    return _VARIANTS[kind](**data)


def _module_available(name: str) -> str | None:
    import importlib.util

    return None if importlib.util.find_spec(name) else f"{name} is not installed"


# ---------------------------------------------------------------- PyTorch (reference, not deployable)


@register_variant
@dataclass(frozen=True)
class TorchEager(Variant):
    kind: ClassVar[str] = "pytorch"
    deployable: ClassVar[bool] = False
    dtype: str = "fp32"  # "fp32" | "bf16" (autocast)

    @property
    def name(self) -> str:
        return f"pytorch-{self.dtype}"

    @property
    def precision(self) -> str:  # type: ignore[override]
        return self.dtype

    def unavailable_reason(self, machine: MachineInfo) -> str | None:
        if self.dtype == "bf16" and not machine.has_bf16:
            return "the CPU has neither AVX512-BF16 nor AMX"
        return None

    def build(self, ctx: BuildContext) -> list[str]:
        return []

    def open(self, model_dir, files, threads, ctx=None) -> Engine:
        if ctx is None or ctx.wrapper is None:
            raise UserError("PyTorch variants are the conversion's reference and are not stored in the output folder.")
        import torch

        from inferforge.engines.torch_engine import TorchEngine

        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[self.dtype]
        return TorchEngine(ctx.wrapper, ctx.encoder.input_names, ctx.task.output_names, dtype, threads, self.name)


# ---------------------------------------------------------------- onnxruntime


class _OrtVariant(Variant):
    def open(self, model_dir, files, threads, ctx=None) -> Engine:
        from inferforge.engines.ort import OrtEngine
        from inferforge.export import check_external_data

        path = Path(model_dir) / files[0]
        check_external_data(path)
        return OrtEngine(path, threads, self.name)


@register_variant
@dataclass(frozen=True)
class OrtFp32(_OrtVariant):
    """The exported graph as it is, onnxruntime with all its graph optimizations at load time."""

    kind: ClassVar[str] = "ort-fp32"

    def build(self, ctx: BuildContext) -> list[str]:
        return [FP32_ONNX]


@register_variant
@dataclass(frozen=True)
class OrtFused(_OrtVariant):
    """onnxruntime's transformer fusions (attention, layer norm, GELU) applied offline."""

    kind: ClassVar[str] = "ort-fused"

    def build(self, ctx: BuildContext) -> list[str]:
        from onnxruntime.transformers.optimizer import optimize_model

        model_type = ctx.model_type if ctx.model_type in ("bert", "bart", "gpt2", "t5") else "bert"
        # Without attention heads (FNet mixes tokens by a Fourier transform) the fusions find the sizes themselves.
        heads = ctx.num_heads if ctx.num_heads and ctx.hidden_size % ctx.num_heads == 0 else 0
        optimized = optimize_model(str(ctx.fp32_onnx), model_type=model_type, num_heads=heads,
                                   hidden_size=ctx.hidden_size if heads else 0, opt_level=1, use_gpu=False)
        out = ctx.variant_dir(self.name) / "model.onnx"
        optimized.save_model_to_file(str(out))
        return [str(out.relative_to(ctx.workdir))]


@register_variant
@dataclass(frozen=True)
class OrtDynamicInt8(_OrtVariant):
    """int8 weights (per output channel by default), activations quantized on the fly; MatMul only, so
    the embedding tables stay fp32. Per-channel weights cost nothing at run time and keep MiniLM's
    sentence embeddings far closer to fp32 (worst cosine 0.964 against 0.808 per-tensor, measured)."""

    kind: ClassVar[str] = "ort-int8-dynamic"
    precision: ClassVar[str] = "int8"
    per_channel: bool = True

    @property
    def name(self) -> str:
        return self.kind + ("" if self.per_channel else "-per-tensor")

    def build(self, ctx: BuildContext) -> list[str]:
        from inferforge.quantize import quantize_ort_dynamic

        out = quantize_ort_dynamic(ctx.fp32_onnx, ctx.variant_dir(self.name) / "model.onnx", self.per_channel)
        return [str(out.relative_to(ctx.workdir))]


# ---------------------------------------------------------------- OpenVINO


@register_variant
@dataclass(frozen=True)
class OpenVino(Variant):
    """OpenVINO IR of the fp32 graph, compiled at a precision (None: the CPU's default, bf16 on AMX)."""

    kind: ClassVar[str] = "openvino"
    inference_precision: str | None = None  # None | "f32" | "bf16"

    @property
    def name(self) -> str:
        return {None: "openvino-default", "f32": "openvino-fp32"}.get(self.inference_precision,
                                                                      f"openvino-{self.inference_precision}")

    @property
    def precision(self) -> str:  # type: ignore[override]
        return {"f32": "fp32", None: "default"}.get(self.inference_precision, self.inference_precision)

    def unavailable_reason(self, machine: MachineInfo) -> str | None:
        if self.inference_precision == "bf16" and not machine.has_bf16:
            return "the CPU has neither AVX512-BF16 nor AMX"
        return _module_available("openvino")

    def build(self, ctx: BuildContext) -> list[str]:
        target = ctx.workdir / OPENVINO_IR
        if not target.exists():
            import openvino as ov

            from inferforge.openvino_tools import convert_onnx

            target.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(convert_onnx(ctx.fp32_onnx), str(target), compress_to_fp16=False)
        return [OPENVINO_IR, OPENVINO_IR[: -len(".xml")] + ".bin"]

    def open(self, model_dir, files, threads, ctx=None) -> Engine:
        from inferforge.engines.openvino import OpenVinoEngine

        return OpenVinoEngine(Path(model_dir) / files[0], threads, self.inference_precision, self.name)


def default_variants() -> list[Variant]:
    """The variants `convert` builds when `--variants` is not given (the fp32 PyTorch reference first).

    OpenVINO int8 (NNCF, AMX/VNNI int8 kernels) is the fastest variant on such CPUs wherever it keeps
    the budget, or can be made to by the accuracy search; on CPUs without them it is skipped. onnxruntime's
    row-wise int8 runs on every CPU (7-bit activations without VNNI) and keeps budgets that dynamic int8 misses.
    """
    from inferforge.quantize import OpenVinoInt8
    from inferforge.rowwise_int8 import OrtRowwiseInt8

    return [
        TorchEager("fp32"),
        TorchEager("bf16"),
        OrtFp32(),
        OrtFused(),
        OrtDynamicInt8(),
        OrtRowwiseInt8(),
        OpenVino("f32"),
        OpenVino(None),
        OpenVinoInt8(),
    ]


def known_variant_names() -> dict[str, Variant]:
    """Every variant a user can name with `--variants`, by name."""
    named = {v.name: v for v in default_variants()}
    for kind, cls in _VARIANTS.items():
        try:
            instance = cls()
        except TypeError:
            continue
        named.setdefault(instance.name, instance)
    from inferforge.quantize import int8_variants

    extra = [OrtDynamicInt8(per_channel=False), OpenVino("bf16"), *int8_variants()]
    named.update({v.name: v for v in extra})
    return named


def accuracy_aware_variants() -> list[Variant]:
    """The default set (which has OpenVINO NNCF int8 on AMX/VNNI) plus onnxruntime static QDQ int8,
    built when the user gives labelled or calibration data."""
    from inferforge.quantize import OrtStaticInt8

    return [*default_variants(), OrtStaticInt8("entropy")]


def parse_variants(spec: str | None, with_calibrated_int8: bool = False) -> list[Variant]:
    """`--variants ort-fp32,openvino-default` -> configs; the PyTorch fp32 reference is always included."""
    if not spec:
        return accuracy_aware_variants() if with_calibrated_int8 else default_variants()
    named = known_variant_names()
    chosen: list[Variant] = [TorchEager("fp32")]
    for raw in spec.split(","):
        name = raw.strip()
        if not name:
            continue
        if name not in named:
            raise UserError(f"Unknown variant '{name}'; choose from: {', '.join(sorted(named))}.")
        if named[name] not in chosen:
            chosen.append(named[name])
    if len(chosen) == 1 and not any(raw.strip() for raw in spec.split(",")):
        raise UserError(f"--variants '{spec}' names no variant; give a comma-separated list such as ort-fp32,openvino-default.")
    return chosen

