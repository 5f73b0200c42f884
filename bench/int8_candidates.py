"""The int8 accuracy search's candidates: one per quantized node (the sensitivity ranking) plus the search's steps.
Each is the fully quantized model with some nodes kept in fp32. onnxruntime's `quantize_dynamic(nodes_to_exclude=
...)` makes one from the fp32 graph every time; inferforge puts the kept nodes back into the fully quantized graph
(`inferforge.quantize.restore_fp32_nodes`). Both ways are timed on the same nodes, interleaved, in one process, and
the two models' outputs are compared on real text (they must be equal to the bit).

    .venv/bin/python bench/int8_candidates.py DIR [--nodes 8]    # DIR: a folder written by `inferforge convert`

The table replaces the section between the int8-candidates markers of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_timing import idle_fraction, replace_section  # noqa: E402

import inferforge  # noqa: E402
from inferforge.cpu import machine_info  # noqa: E402
from inferforge.engines.ort import OrtEngine  # noqa: E402
from inferforge.quantize import matmul_nodes, quantize_ort_dynamic, restore_fp32_nodes  # noqa: E402
from inferforge.tasks import get_task  # noqa: E402
from inferforge.verify import builtin_texts  # noqa: E402

START, END = "<!-- int8-candidates:start -->", "<!-- int8-candidates:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="a folder written by `inferforge convert`")
    parser.add_argument("--nodes", type=int, default=8, help="candidates timed each way (nodes spread over the graph)")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()

    model = inferforge.load(args.model_dir, variant="ort-fp32", threads=2)
    fp32_path = args.model_dir / "model.onnx"
    nodes = matmul_nodes(fp32_path, ("MatMul",))
    picked = [nodes[round(i * (len(nodes) - 1) / max(1, args.nodes - 1))] for i in range(args.nodes)]
    texts, _ = builtin_texts(get_task(model.task.name))
    batch = model.encoder.encode(texts[:16]).arrays
    idle = idle_fraction()

    with tempfile.TemporaryDirectory(prefix="int8-candidates-") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        full_path = quantize_ort_dynamic(fp32_path, tmp / "full.onnx", per_channel=True)
        fp32, full = onnx.load(str(fp32_path)), onnx.load(str(full_path))
        setup_s = time.perf_counter() - started
        quantizer_s, surgery_s, worst = [], [], 0.0
        for i, node in enumerate(picked):
            ways = ["quantizer", "surgery"] if i % 2 == 0 else ["surgery", "quantizer"]  # interleaved
            paths = {}
            for way in ways:
                path = tmp / f"{way}-{i}.onnx"
                started = time.perf_counter()
                if way == "quantizer":
                    quantize_ort_dynamic(fp32_path, path, per_channel=True, keep_fp32=[node])
                    quantizer_s.append(time.perf_counter() - started)
                else:
                    onnx.save(restore_fp32_nodes(full, fp32, [node]), str(path))
                    surgery_s.append(time.perf_counter() - started)
                paths[way] = path
            a, b = (OrtEngine(paths[w], 2).run(batch) for w in ("quantizer", "surgery"))
            worst = max([worst] + [float(np.abs(a[k] - b[k]).max()) for k in a])

    q, s = statistics.median(quantizer_s), statistics.median(surgery_s)
    machine = machine_info()
    rows = [
        "| way | median s per candidate (min-max) | candidates per 48-node ranking |",
        "|---|---|---|",
        f"| onnxruntime `quantize_dynamic(nodes_to_exclude=[node])` | {q:.2f} ({min(quantizer_s):.2f}-"
        f"{max(quantizer_s):.2f}) | {48 * q:.0f} s |",
        f"| inferforge `restore_fp32_nodes` on the fully quantized graph | {s:.2f} ({min(surgery_s):.2f}-"
        f"{max(surgery_s):.2f}) | {48 * s:.0f} s (+ {setup_s:.1f} s once: full int8 and both graphs loaded) |",
    ]
    section = "\n".join([
        START,
        "## The int8 accuracy search's candidates (issue 5)",
        "",
        f"Reproduce: `.venv/bin/python bench/int8_candidates.py {args.model_dir}` ({model.task.name}, "
        f"{len(nodes)} MatMul nodes, {args.nodes} candidates each way, interleaved, one process). Machine: "
        f"{machine.cpu_model}, {machine.cores} cores; idle before: {idle:.2f}.",
        "",
        "Making a candidate of the search (the fully quantized model with one node kept in fp32), written to disk; "
        "not counting the run that scores it:",
        "",
        *rows,
        "",
        f"Speed-up {q / s:.1f}x per candidate. The two ways' outputs on 16 real texts: max abs difference "
        f"{worst:.1e} (the same model). The stored variant is still written by the quantizer.",
        END,
    ])
    replace_section(args.output, section, START, END)
    print(section)


if __name__ == "__main__":
    main()
