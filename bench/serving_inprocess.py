"""Served in-process (`inferforge serve --in-process`) against Triton's Python backend, interleaved.

For each pipeline (tokenizer model + model, the default; the model tokenizing itself, `--tokenize-in-model`) two
Triton servers run side by side on the same converted folder: one with Triton's Python backend (a stub process
per model), one with inferforge's in-process backend (the same model code inside tritonserver). Rounds alternate
between them in a random order: sequential latency of one-text requests (plain HTTP JSON, the answer as JSON) at 16
and 128 tokens, and throughput at concurrency 1 and 16. Reported: medians over rounds, the in-process/stub ratio,
in how many rounds in-process was ahead, and each p50 over the local engine's (token arrays in, timed in the same
rounds) at that length.
The table replaces the section between the serving-inprocess markers of BENCHMARKS.md.

    .venv/bin/python bench/serving_inprocess.py [--model-dir DIR] [--rounds 8]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
from contextlib import ExitStack
from pathlib import Path

from serving import (LOCAL_ENGINE, ROOT, JsonHttpClient, ensure_model, text_of_tokens, throughput, time_calls,
                     triton_call)

START, END = "<!-- serving-inprocess:start -->", "<!-- serving-inprocess:end -->"
PIPELINES = {"tokenizer model + model": False, "tokenize in model": True}
BACKENDS = {"Python backend (stubs)": False, "in process": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a folder written by `inferforge convert` (default: MiniLM)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=40, help="sequential requests per round and cell")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per throughput cell and round")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for a quiet machine")
    args = parser.parse_args()

    from peer_timing import replace_section, wait_for_quiet

    import inferforge
    from inferforge.cpu import machine_info
    from inferforge.triton import RepositoryOptions, serve_converted

    model_dir = ensure_model(args.model_dir, args.threads)
    local = inferforge.load(model_dir, threads=args.threads)
    texts = {n: text_of_tokens(local.encoder, n) for n in (16, 128)}
    idle = wait_for_quiet(args.max_wait, log=lambda m: print(m, flush=True))
    arrays = {n: local.encoder.encode([t]).arrays for n, t in texts.items()}
    engine_rounds: dict[int, list[float]] = {}
    latency: dict[tuple, list[float]] = {}
    rates: dict[tuple, list[float]] = {}
    for pipeline, one_hop in PIPELINES.items():
        with ExitStack() as stack:
            urls = {}
            for backend, in_process in BACKENDS.items():
                options = RepositoryOptions(name="minilm", threads=args.threads, tokenize_in_model=one_hop,
                                            in_process=in_process)
                served = stack.enter_context(serve_converted(model_dir, options, supervise=False))
                host, port = served.server.http_url.split(":")
                urls[backend] = (host, int(port))
            for round_index in range(args.rounds):
                print(f"{pipeline}: round {round_index + 1} of {args.rounds}", flush=True)
                for n, text in texts.items():
                    engine_rounds.setdefault(n, []).append(
                        time_calls(lambda a=arrays[n]: local.run(a), args.requests, 5).p50_ms)
                    for backend in random.sample(list(BACKENDS), len(BACKENDS)):
                        client = JsonHttpClient(*urls[backend])
                        latency.setdefault((pipeline, backend, n), []).append(
                            time_calls(triton_call(client, "minilm", text), args.requests, 5).p50_ms)
                        client.close()
                    for level in (1, 16):
                        for backend in random.sample(list(BACKENDS), len(BACKENDS)):
                            def make(backend=backend, text=text):
                                c = JsonHttpClient(*urls[backend])
                                return triton_call(c, "minilm", text), c.close
                            rates.setdefault((pipeline, backend, n, level), []).append(
                                throughput(make, level, args.duration))
    engine = {n: statistics.median(values) for n, values in engine_rounds.items()}  # timed in the same rounds
    cpu = machine_info().cpu_model
    lines = [
        START,
        f"all-MiniLM-L6-v2 (`{local.variant_name}`, {args.threads} engine threads), one text per request, plain HTTP "
        f"JSON, the answer as JSON; {os.cpu_count()} cores ({cpu}), clients on the same cores; idle before: "
        f"{idle:.2f}. Both servers up at once, {args.rounds} rounds in random order; medians over rounds "
        f"(latency: of each round's {args.requests}-request p50; throughput: {args.duration:g} s cells).",
        "",
        f"Reproduce: `.venv/bin/python bench/serving_inprocess.py --rounds {args.rounds}`.",
        "",
        "| pipeline | tokens | measure | Python backend (stubs) | in process | in process / stubs | rounds in process "
        "ahead |",
        "|---|---|---|---|---|---|---|",
    ]
    for pipeline in PIPELINES:
        for n in texts:
            stub, inproc = latency[(pipeline, "Python backend (stubs)", n)], latency[(pipeline, "in process", n)]
            ahead = sum(i < s for s, i in zip(stub, inproc))
            lines.append(
                f"| {pipeline} | {n} | p50 ms (over the local engine's {engine[n]:.2f}) | "
                f"{statistics.median(stub):.2f} (+{statistics.median(stub) - engine[n]:.2f}) | "
                f"{statistics.median(inproc):.2f} (+{statistics.median(inproc) - engine[n]:.2f}) | "
                f"{statistics.median(inproc) / statistics.median(stub):.2f}x | {ahead} of {len(stub)} |")
            for level in (1, 16):
                stub = rates[(pipeline, "Python backend (stubs)", n, level)]
                inproc = rates[(pipeline, "in process", n, level)]
                ahead = sum(i > s for s, i in zip(stub, inproc))
                lines.append(
                    f"| {pipeline} | {n} | requests/s at concurrency {level} | {statistics.median(stub):.0f} | "
                    f"{statistics.median(inproc):.0f} | {statistics.median(inproc) / statistics.median(stub):.2f}x | "
                    f"{ahead} of {len(stub)} |")
    lines.append(END)
    section = "\n".join(lines)
    print(section)
    replace_section(args.output, section, START, END)


if __name__ == "__main__":
    main()
