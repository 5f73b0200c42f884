"""Padding that is not computed: a batch of texts of mixed lengths, run padded to its longest row (what every peer
does with `tokenizer(texts, padding=True)`) against inferforge's `run_encoded`, which runs rows of similar length
together (`inferforge.engines.base.length_groups`), on the same engine, interleaved, in one process.

The texts are real sentences (inferforge's built-in validation set) joined into documents of 1 to 12 sentences, so
their lengths spread as a user's do (reviews, support tickets). Each batch size is timed on the same documents;
the outputs of both ways are compared (max abs difference of the sentence embeddings).

    .venv/bin/python bench/bucketing.py DIR            # DIR: a folder written by `inferforge convert`

The table replaces the section between the bucketing markers of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_timing import idle_fraction, replace_section  # noqa: E402

import inferforge  # noqa: E402
from inferforge.cpu import machine_info  # noqa: E402
from inferforge.engines.base import BUCKET_SLACK, length_groups  # noqa: E402
from inferforge.tasks import get_task  # noqa: E402
from inferforge.verify import builtin_texts  # noqa: E402

START, END = "<!-- bucketing:start -->", "<!-- bucketing:end -->"


def documents(count: int, seed: int) -> list[str]:
    sentences, _ = builtin_texts(get_task("text-classification"))
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(sentences, size=int(rng.integers(1, 13)))) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path, help="a folder written by `inferforge convert`")
    parser.add_argument("--variant", default=None, help="variant to run (default: the selected one)")
    parser.add_argument("--batches", default="8,32,64", help="batch sizes (comma separated)")
    parser.add_argument("--rounds", type=int, default=12, help="interleaved rounds per batch size")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()

    model = inferforge.load(args.model_dir, variant=args.variant, threads=args.threads)
    idle = idle_fraction()
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        texts = documents(batch, seed=batch)
        encoded = model.encoder.encode(texts)
        lengths = [len(offsets) for offsets in encoded.offsets]
        groups = length_groups(lengths)
        padded_tokens = batch * max(lengths)
        ways = {"padded": lambda: model.run(encoded.arrays), "by length": lambda: model.run_encoded(encoded)}
        outputs = {name: way() for name, way in ways.items()}  # warm-up, and the outputs compared
        diff = max(float(np.abs(outputs["padded"][n] - outputs["by length"][n]).max()) for n in outputs["padded"]
                   if outputs["padded"][n].ndim == 2)
        times: dict[str, list[float]] = {name: [] for name in ways}
        for round_ in range(args.rounds):
            for name in (list(ways) if round_ % 2 == 0 else list(ways)[::-1]):
                start = time.perf_counter()
                ways[name]()
                times[name].append(time.perf_counter() - start)
        padded, grouped = (statistics.median(times[n]) * 1e3 for n in ways)
        rows.append((batch, min(lengths), max(lengths), sum(lengths), padded_tokens, len(groups), padded, grouped,
                     diff))
        print(f"batch {batch}: {len(groups)} groups, padded {padded:.1f} ms, by length {grouped:.1f} ms "
              f"({padded / grouped:.2f}x), max abs diff {diff:.1e}", flush=True)

    machine = machine_info()
    command = (f".venv/bin/python bench/bucketing.py {args.model_dir} --batches {args.batches}"
               + (f" --variant {args.variant}" if args.variant else ""))
    lines = [
        START,
        "## Padding that is not computed: mixed-length batches (issue 5)",
        "",
        f"`inferforge.load(DIR).predict` runs the rows of a batch in groups of similar length (sorted, cut where "
        f"padding a group to its longest computes more than {BUCKET_SLACK}x its real tokens); the usual way, and "
        "every peer's `tokenizer(texts, padding=True)`, pads every row to the longest. Same engine "
        f"({model.variant_name} of {model.manifest.source}), same documents (1 to 12 real sentences each), "
        f"interleaved, {args.rounds} rounds, medians; CPU idle before timing: {idle:.2f}.",
        "",
        "| batch | tokens per text (min-max) | real tokens | tokens computed padded | groups | padded ms | "
        "by length ms | speed-up | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for batch, low, high, real, padded_tokens, groups, padded, grouped, diff in rows:
        lines.append(f"| {batch} | {low}-{high} | {real} | {padded_tokens} | {groups} | {padded:.1f} | "
                     f"{grouped:.1f} | {padded / grouped:.2f}x | {diff:.1e} |")
    isa = ", ".join(name for name, present in machine.isa.items() if present) or "none detected"
    lines += ["", f"Reproduce: `{command}`. Machine: {machine.cpu_model}, {machine.cores} cores; ISA: {isa}.", END]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        replace_section(args.output, section, START, END)

if __name__ == "__main__":
    main()
