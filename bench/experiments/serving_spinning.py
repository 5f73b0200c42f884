"""Served onnxruntime engines: worker threads that never spin (the served default) against threads that spin only
while a call runs (`session.force_spinning_stop`), and onnxruntime's own default.

For each round and each INFERFORGE_ORT_SPINNING mode, a Triton server is started alone on the converted folder
(default: bench/results/minilm-feature-extraction, an onnxruntime variant selected), then timed: sequential latency of
one-text requests (plain HTTP JSON, tokenize in model), throughput at concurrency 1 and 16, and the CPU time the
model's stub uses in the 0.3 s after a request (spinning threads). The order of the modes alternates per round.

    .venv/bin/python bench/experiments/serving_spinning.py [--model-dir DIR] [--modes 0,run,1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from serving import JsonHttpClient, text_of_tokens, throughput, time_calls, triton_call  # noqa: E402


def stub_cpu_seconds(prefix: str, model: str) -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if prefix.encode() in cmdline and model.encode() in cmdline:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "bench" / "results" / "minilm-feature-extraction")
    parser.add_argument("--modes", default="0,run,1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import inferforge
    from inferforge.triton import RepositoryOptions, ServerOptions, serve_converted

    text = text_of_tokens(inferforge.load(args.model_dir, threads=1).encoder, args.tokens)
    modes = args.modes.split(",")
    keys = ("p50", "p99", "c1", "c16", "idle_cpu")
    results = {m: {k: [] for k in keys} for m in modes}
    for round_index in range(args.rounds):
        for mode in modes if round_index % 2 == 0 else modes[::-1]:
            options = RepositoryOptions(name="spin", threads=args.threads, tokenize_in_model=True)
            server_options = ServerOptions(extra_env=(("INFERFORGE_ORT_SPINNING", mode),))
            with serve_converted(args.model_dir, options, server_options, supervise=False) as served:
                host, port = served.server.http_url.split(":")
                client = JsonHttpClient(host, int(port))
                call = triton_call(client, "spin", text)
                latency = time_calls(call, args.requests, 30)
                idle = []
                for _ in range(5):
                    call()
                    start = stub_cpu_seconds(served.server.shm_prefix, "spin_model")
                    time.sleep(0.3)
                    idle.append(stub_cpu_seconds(served.server.shm_prefix, "spin_model") - start)
                client.close()

                def make():
                    c = JsonHttpClient(host, int(port))
                    return triton_call(c, "spin", text), c.close

                r = results[mode]
                r["p50"].append(latency.p50_ms)
                r["p99"].append(latency.p99_ms)
                r["idle_cpu"].append(statistics.median(idle))
                r["c1"].append(throughput(make, 1, args.duration))
                r["c16"].append(throughput(make, 16, args.duration))
            print(f"round {round_index} mode {mode}: " + ", ".join(f"{k} {r[k][-1]:.3g}" for k in keys), flush=True)
    print(f"\n{args.model_dir.name}, {args.tokens} tokens, tokenize in model, {args.rounds} rounds (medians)")
    print("| INFERFORGE_ORT_SPINNING | p50 ms | p99 ms | concurrency 1 req/s | concurrency 16 req/s | stub CPU s in 0.3 s "
          "after a request |")
    print("|---|---|---|---|---|---|")
    for mode in modes:
        r = results[mode]
        print(f"| {mode} | {statistics.median(r['p50']):.2f} | {statistics.median(r['p99']):.2f} | "
              f"{statistics.median(r['c1']):.0f} | {statistics.median(r['c16']):.0f} | "
              f"{statistics.median(r['idle_cpu']):.3f} |")


if __name__ == "__main__":
    main()
