"""The peers inferforge is measured against, each used the way its own documentation shows.

Every peer turns the same int64 arrays (input_ids, attention_mask, token_type_ids) into the same
thing, a sentence embedding: the mean of the last hidden state over the attention mask, L2
normalized (what all-MiniLM-L6-v2 is used for). The PyTorch peers pool in torch, the ONNX peers
pool their `last_hidden_state` in numpy (`mean_pool`), inside the timed call.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from inferforge.cpu import machine_info
from inferforge.hardware import Precision

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
Arrays = dict[str, np.ndarray]
BENCH_DIR = Path(__file__).resolve().parent


def has_amx() -> bool:
    return machine_info().has_amx


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(hidden.dtype)
    pooled = (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
    return pooled / np.clip(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12, None)


@dataclass
class Peer:
    """One way of running the model: `run` maps the input arrays to normalized sentence embeddings."""

    name: str
    precision: Precision  # which matrix-product ceiling it is compared to
    run: Callable[[Arrays], np.ndarray]
    how: str  # one line: what was called, for the report
    setup_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    settle: Callable[[], None] | None = None  # waits for work the warm-up started in the background


@dataclass(frozen=True)
class PeerContext:
    model_dir: Path
    work_dir: Path
    threads: int


def _timed(build: Callable[[], Peer]) -> Peer:
    start = time.perf_counter()
    peer = build()
    peer.setup_seconds = time.perf_counter() - start
    return peer


# ---------------------------------------------------------------- PyTorch
def _torch_model(ctx: PeerContext):
    import torch
    from transformers import AutoModel

    torch.set_num_threads(ctx.threads)
    return AutoModel.from_pretrained(ctx.model_dir).eval()


def _torch_runner(module, autocast: bool) -> Callable[[Arrays], np.ndarray]:
    import contextlib

    import torch

    def run(arrays: Arrays) -> np.ndarray:
        tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
        context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with torch.inference_mode(), context:
            hidden = module(**tensors).last_hidden_state.float()
        mask = tensors["attention_mask"][..., None].float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    return run


def pytorch_fp32(ctx: PeerContext) -> Peer:
    return _timed(lambda: Peer("pytorch-fp32", "fp32", _torch_runner(_torch_model(ctx), False),
                               "transformers AutoModel, eager, torch.inference_mode"))


def pytorch_bf16_autocast(ctx: PeerContext) -> Peer:
    return _timed(lambda: Peer("pytorch-bf16-autocast", "bf16", _torch_runner(_torch_model(ctx), True),
                               "eager under torch.autocast('cpu', dtype=torch.bfloat16)"))


def torch_compile(ctx: PeerContext) -> Peer:
    import torch

    bf16 = has_amx()
    compiled = torch.compile(_torch_model(ctx), dynamic=False)
    how = "torch.compile(model, dynamic=False) (inductor)" + (" under bf16 autocast (AMX present)" if bf16 else "")
    peer = _timed(lambda: Peer("torch-compile" + ("-bf16" if bf16 else ""), "bf16" if bf16 else "fp32",
                               _torch_runner(compiled, bf16), how))
    peer.notes.append("compiled once per shape during warm-up; compile time is not in the medians")
    return peer


# ---------------------------------------------------------------- ONNX export shared by the ONNX peers
def export_onnx(ctx: PeerContext) -> Path:
    """`torch.onnx.export` with its defaults (the dynamo exporter in torch 2.13) and dynamic axes."""
    import torch

    path = ctx.work_dir / "torch_export" / "model.onnx"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _torch_model(ctx)
    ids = torch.ones(2, 16, dtype=torch.int64)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(path),
        input_names=list(INPUT_NAMES),
        output_names=["last_hidden_state", "pooler_output"],
        dynamic_axes={**{n: axes for n in INPUT_NAMES}, "last_hidden_state": axes, "pooler_output": {0: "batch"}},
    )
    return path


def _ort_runner(path: Path) -> tuple[Callable[[Arrays], np.ndarray], list[str]]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(arrays: Arrays) -> np.ndarray:
        hidden = session.run(["last_hidden_state"], {n: arrays[n] for n in names})[0]
        return mean_pool(hidden, arrays["attention_mask"])

    return run, names


def ort_default(ctx: PeerContext) -> Peer:
    def build() -> Peer:
        run, _ = _ort_runner(export_onnx(ctx))
        return Peer("onnxruntime-default", "fp32", run,
                    "torch.onnx.export + onnxruntime.InferenceSession(CPUExecutionProvider), default options")

    return _timed(build)


def ort_int8_dynamic(ctx: PeerContext) -> Peer:
    def build() -> Peer:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = ctx.work_dir / "ort_int8" / "model.onnx"
        quantized.parent.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(str(export_onnx(ctx)), str(quantized), weight_type=QuantType.QInt8)
        run, _ = _ort_runner(quantized)
        peer = Peer("onnxruntime-int8-dynamic", "int8", run,
                    "onnxruntime.quantization.quantize_dynamic(weight_type=QInt8) on the torch.onnx.export")
        peer.notes.append("quant_pre_process (the documented pre-processing) fails on the dynamo export's "
                          "symbolic shapes, so it is skipped")
        return peer

    return _timed(build)


def openvino_default(ctx: PeerContext) -> Peer:
    def build() -> Peer:
        import openvino as ov

        compiled = ov.Core().compile_model(str(export_onnx(ctx)), "CPU")
        output = compiled.output("last_hidden_state")
        precision = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        ceiling: Precision = "bf16" if ("bf16" in precision or "bfloat16" in precision) else "fp32"

        def run(arrays: Arrays) -> np.ndarray:
            hidden = compiled(arrays)[output]
            return mean_pool(hidden, arrays["attention_mask"])

        peer = Peer("openvino-default", ceiling, run,
                    "openvino.Core().compile_model(exported ONNX, 'CPU') at its defaults")
        peer.notes.append(f"OpenVINO chose inference precision {precision}")
        return peer

    return _timed(build)


# ---------------------------------------------------------------- Optimum (built in its own venv)
def optimum_peers(ctx: PeerContext) -> tuple[list[Peer], dict[str, str]]:
    """Exports with Optimum's CLI in .venv-optimum, then opens the files in onnxruntime's default
    session here (what Optimum's ORTModel does), so they are timed interleaved with the others."""
    out = ctx.work_dir / "optimum"
    result_json = out / "result.json"
    if not result_json.exists():
        out.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["bash", str(BENCH_DIR / "optimum_env.sh"), str(ctx.model_dir), str(out), str(result_json)],
                              capture_output=True, text=True)
        if done.returncode != 0 or not result_json.exists():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return [], {"optimum": f"the Optimum environment failed: {tail}"}
    result = json.loads(result_json.read_text())
    peers = []
    described: dict[str, tuple[Precision, str]] = {
        "optimum-O2": ("fp32", "optimum-cli export onnx --task feature-extraction --optimize O2; "
                               "onnxruntime default CPU session"),
        "optimum-int8-avx512_vnni": ("int8", "optimum-cli onnxruntime quantize --avx512_vnni; "
                                             "onnxruntime default CPU session"),
    }
    for name, info in result["peers"].items():
        start = time.perf_counter()
        run, _ = _ort_runner(Path(info["onnx"]))
        precision, how = described[name]
        peer = Peer(name, precision, run, how)
        peer.setup_seconds = time.perf_counter() - start + info["seconds"]
        if info["note"]:
            peer.notes.append(info["note"])
        peer.notes.append("versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()))
        peers.append(peer)
    return peers, dict(result["errors"])


# ---------------------------------------------------------------- inferforge
def _precision_of(variant, engine) -> Precision:
    """The matrix-product precision a variant runs in (OpenVINO's default is asked of the engine)."""
    declared = str(getattr(variant, "precision", "fp32")).lower()
    if declared == "default":
        declared = str(getattr(engine, "precision", "fp32")).lower()
    if "int8" in declared or "i8" in declared:
        return "int8"
    if "bf16" in declared or "bfloat16" in declared:
        return "bf16"
    return "fp32"


def _rows_from_report(report: dict) -> list:
    from inferforge.benchmark import LatencyStats
    from inferforge.report import VariantResult

    return [VariantResult(name=v["name"], config=v["config"], precision=v["precision"], deployable=v["deployable"],
                          status=v["status"], latency={s: LatencyStats(**l) for s, l in v["latency"].items()})
            for v in report["variants"]]


def inferforge_selected(ctx: PeerContext, shapes: list, reuse: bool = False,
                        variants: str | None = None) -> tuple[dict[str, Peer], dict]:
    """`inferforge.convert` once, benchmarking at the bench's shapes; then, per shape, the variant
    `convert` selects when told to optimize for that shape (`--optimize-for`), opened with
    `inferforge.load(DIR, variant)` as a user would."""
    import inferforge
    from inferforge.pipeline import select_variant

    start = time.perf_counter()
    out = ctx.work_dir / "inferforge"
    report_path = out / "report.json"
    wanted = [str(s) for s in shapes]
    report = json.loads(report_path.read_text()) if reuse and report_path.exists() else None
    if report is not None and set(wanted) <= set(report.get("shapes", [])) and not variants:
        rows = _rows_from_report(report)
    else:
        result = inferforge.convert(str(ctx.model_dir), "feature-extraction", out, shapes=list(shapes),
                                    threads=ctx.threads, nb_measures=10, warmup=2, force=True, variants=variants)
        rows, report = result.rows, result.report
    convert_seconds = time.perf_counter() - start
    peers: dict[str, Peer] = {}
    loaded_by_variant: dict[str, object] = {}
    for shape in shapes:
        selected = select_variant(rows, shape)
        if selected is None:
            continue
        if selected not in loaded_by_variant:
            loaded_by_variant[selected] = inferforge.load(out, variant=selected, threads=ctx.threads)
        loaded = loaded_by_variant[selected]
        variant, _ = loaded.manifest.variant(selected)

        def run(arrays: Arrays, loaded=loaded) -> np.ndarray:
            embedding = loaded.run(arrays)["sentence_embedding"].astype(np.float32)
            return embedding / np.clip(np.linalg.norm(embedding, axis=-1, keepdims=True), 1e-12, None)

        peer = Peer(f"inferforge ({selected})", _precision_of(variant, loaded.engine), run,
                    "inferforge.convert(model, 'feature-extraction', out, shapes=...); "
                    "inferforge.load(out, variant=<selected for the shape>).run(arrays)",
                    settle=getattr(loaded.engine, "settle", None))
        peer.setup_seconds = convert_seconds
        peer.notes.append(f"at {shape} convert selects {selected}: {json.dumps(variant.to_dict())}")
        peers[str(shape)] = peer
    return peers, report


PEER_BUILDERS: dict[str, Callable[[PeerContext], Peer]] = {
    "pytorch-fp32": pytorch_fp32,
    "pytorch-bf16-autocast": pytorch_bf16_autocast,
    "torch-compile": torch_compile,
    "onnxruntime-default": ort_default,
    "onnxruntime-int8-dynamic": ort_int8_dynamic,
    "openvino-default": openvino_default,
}


def build_peers(ctx: PeerContext, names: list[str], with_optimum: bool,
                log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> tuple[list[Peer], dict[str, str]]:
    """Builds every requested peer; one that cannot be built is reported in the errors, not fatal."""
    peers: list[Peer] = []
    errors: dict[str, str] = {}
    for name in names:
        log(f"  building {name}")
        try:
            peers.append(PEER_BUILDERS[name](ctx))
        except Exception as error:  # a peer failing is a result to report, not a crash
            errors[name] = f"{type(error).__name__}: {str(error)[:200]}"
    if with_optimum:
        log("  building the Optimum peers (own venv)")
        optimum, optimum_errors = optimum_peers(ctx)
        peers += optimum
        errors.update(optimum_errors)
    return peers, errors
