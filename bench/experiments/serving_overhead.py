"""Where the time of one served request goes: end to end against Triton's own per-model statistics.

Sequential requests of one text (16 tokens by default) over plain HTTP JSON; Triton's statistics
(`/v2/models/<m>/stats`) give, per model, the average queue and compute time of those requests, so
end to end = client + HTTP + Triton core + the models' times. Run on a quiet machine.

    .venv/bin/python bench/experiments/serving_overhead.py DIR [--tokens 16] [--requests 300] [--in-process]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from serving import JsonHttpClient, _get, text_of_tokens, time_calls, triton_call  # noqa: E402


def model_times(host, port, model):
    stats = json.loads(_get(host, port, f"/v2/models/{model}/stats"))["model_stats"][0]
    inference = stats["inference_stats"]
    count = max(1, int(inference["success"]["count"]))
    return {k: int(inference[k]["ns"]) / count / 1e6 for k in ("queue", "compute_input", "compute_infer", "compute_output")}, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one-hop", action="store_true", help="the model tokenizes the text itself")
    parser.add_argument("--no-watchdog", action="store_true")
    parser.add_argument("--variant", help="variant to serve (default: the selected one)")
    parser.add_argument("--in-process", action="store_true", help="serve with inferforge's in-process backend")
    parser.add_argument("--gap-ms", type=float, default=3.0,
                        help="idle time between the local engine's calls in its 'with gaps' timing (a served "
                             "request's time outside the engine)")
    args = parser.parse_args()

    import inferforge
    from inferforge.triton import RepositoryOptions, ServerOptions, serve_converted

    local = inferforge.load(args.model_dir, variant=args.variant, threads=args.threads)
    text = text_of_tokens(local.encoder, args.tokens)
    arrays = local.encoder.encode([text]).arrays

    def p50(call, n=args.requests, warmup=30):
        return time_calls(call, n, warmup).p50_ms

    import time

    def run_after_gap():
        time.sleep(args.gap_ms / 1000)
        start = time.perf_counter()
        local.run(arrays)
        return time.perf_counter() - start

    def gapped_p50(n=args.requests):
        for _ in range(10):
            run_after_gap()
        return 1000 * sorted(run_after_gap() for _ in range(n))[n // 2]

    print(f"local engine {p50(lambda: local.run(arrays)):.3f} ms, local predict {p50(lambda: local.predict([text])):.3f} ms, "
          f"local engine after {args.gap_ms} ms idle {gapped_p50():.3f} ms")
    options = RepositoryOptions(name="m", threads=args.threads, tokenize_in_model=args.one_hop, variant=args.variant,
                                in_process=args.in_process)
    with serve_converted(args.model_dir, options, ServerOptions(), supervise=not args.no_watchdog) as served:
        host, port = served.server.http_url.split(":")
        port = int(port)
        client = JsonHttpClient(host, port)
        call = triton_call(client, "m", text)
        for _ in range(30):
            call()
        models = ["m", "m_model"] + ([] if args.one_hop else ["m_tokenize"])
        before = {m: model_times(host, port, m) for m in models}
        end_to_end = p50(call, warmup=0)
        after = {m: model_times(host, port, m) for m in models}
        body = json.dumps({"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [text]}]})
        client_only = p50(lambda: json.loads(json.dumps(json.loads(body))), warmup=10)
        print(f"end to end (HTTP JSON) p50 {end_to_end:.3f} ms; client JSON work alone {client_only:.3f} ms")
        for m in models:
            (b, nb), (a, na) = before[m], after[m]
            n = na - nb
            avg = {k: (a[k] * na - b[k] * nb) / max(1, n) for k in a}
            print(f"  {m:12s} {n} requests: " + ", ".join(f"{k} {v:.3f} ms" for k, v in avg.items()))
        client.close()


if __name__ == "__main__":
    main()
