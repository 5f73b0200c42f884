"""Triton 2.51's dynamic batcher stall, with and without inferforge's fix, side by side.

A tiny BERT (or `--model-dir`, a converted folder) is served twice by `inferforge.triton.serve_converted`, once with
the preloaded library's batcher poll off (INFERFORGE_BATCHER_POLL_US=0: Triton's own 500 ms wait for a free model
instance) and once at its default (0.2 ms). Each server gets `--bursts` bursts of `--clients` one-text requests,
each client on its own keep-alive connection, all sent at once; the time of every answer is kept. Without the poll
the answers come in 0.5 s waves whenever no new request arrives; the table says how many answers came after
`--late-ms` and the slowest one.

    .venv/bin/python bench/experiments/batcher_stall.py
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


def tiny_converted(folder: Path) -> Path:
    import inferforge
    from tiny_models import build_tiny_model

    hf = build_tiny_model(folder / "hf", "bert", "feature-extraction")
    out = folder / "converted"
    inferforge.convert(str(hf), "feature-extraction", out, variants="ort-fp32", shapes="1x8", nb_measures=2,
                       warmup=1, threads=1)
    return out


def burst(host: str, port: int, model: str, clients: int, text: str) -> list[float]:
    """Every client's answer time, seconds after the common start."""
    from inferforge.triton.raw_requests import send, text_request

    connections = [http.client.HTTPConnection(host, port, timeout=30) for _ in range(clients)]
    for connection in connections:  # connected and warm before the burst
        assert send(connection, model, text_request([text])).status == 200
    times = [0.0] * clients
    start_gate = threading.Barrier(clients + 1)
    start = [0.0]

    def client(i: int) -> None:
        start_gate.wait()
        reply = send(connections[i], model, text_request([f"{text} {i}"]))
        assert reply.status == 200, reply.error
        times[i] = time.perf_counter() - start[0]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start[0] = time.perf_counter()
    start_gate.wait()
    for thread in threads:
        thread.join()
    for connection in connections:
        connection.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a folder written by `inferforge convert` (default: a tiny BERT)")
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--late-ms", type=float, default=300.0)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--text", default="The quick brown fox jumps over the lazy dog near the river bank.")
    args = parser.parse_args()

    from inferforge.triton import RepositoryOptions, ServerOptions, serve_converted

    with tempfile.TemporaryDirectory(prefix="inferforge-stall-") as tmp:
        model_dir = args.model_dir or tiny_converted(Path(tmp))
        rows = []
        for label, poll in (("Triton's own wait (poll off)", "0"), ("inferforge's poll (default 0.2 ms)", None)):
            if poll is None:
                os.environ.pop("INFERFORGE_BATCHER_POLL_US", None)
            else:
                os.environ["INFERFORGE_BATCHER_POLL_US"] = poll
            options = RepositoryOptions(max_batch_size=args.max_batch_size, threads=1)
            with serve_converted(model_dir, options, ServerOptions(), supervise=False) as served:
                host, port = served.server.http_url.split(":")
                answers = []
                for _ in range(args.bursts):
                    answers.append(burst(host, int(port), served.repository.name, args.clients, args.text))
                    time.sleep(0.3)
            flat = [t for times in answers for t in times]
            late = sum(t * 1000 > args.late_ms for t in flat)
            rows.append((label, statistics.median(flat) * 1000, max(flat) * 1000, late, len(flat),
                         sum(any(t * 1000 > args.late_ms for t in times) for times in answers)))
        os.environ.pop("INFERFORGE_BATCHER_POLL_US", None)
    print(f"{args.bursts} bursts of {args.clients} one-text requests, max_batch_size {args.max_batch_size}")
    print(f"| server | median answer ms | slowest ms | answers after {args.late_ms:.0f} ms | bursts with one |")
    print("|---|---|---|---|---|")
    for label, median, slowest, late, total, bursts in rows:
        print(f"| {label} | {median:.1f} | {slowest:.1f} | {late} of {total} | {bursts} of {args.bursts} |")


if __name__ == "__main__":
    main()
