"""Measure how the supervised Triton server recovers from a dying worker or server.

    python bench/recovery.py DIR [--rounds 3] [--clients 4] [--output recovery.json]

DIR is a folder written by `inferforge convert`. The server is the one `inferforge serve` runs
(`serve_converted`: hardened, watched), on 127.0.0.1. While `--clients` threads send good requests
in a loop, each round SIGKILLs one victim (the model's Python stub, the tokenizer's stub, then the
tritonserver process itself) and records:
  - detection: from the kill to the watchdog noticing it;
  - restart: from detection to the new server being ready;
  - first right answer: from the kill to the first correct answer a client gets after it;
  - what the clients got meanwhile (status or exception, and message), and the longest request.
Prints a Markdown table, writes JSON with `--output`. The machine is shared: times are noisy.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import inferforge
from inferforge.triton.raw_requests import send, text_request
from inferforge.triton.repository import RepositoryOptions
from inferforge.triton.serve import serve_converted
from inferforge.triton.server import ServerOptions
from inferforge.triton.watchdog import stub_processes

TEXT = "the movie was great and the actors were wonderful"
VICTIMS = ("model stub", "tokenizer stub", "tritonserver")


@dataclass
class Round:
    victim: str
    detection_s: float
    restart_s: float
    first_right_answer_s: float
    longest_request_s: float
    outcomes: dict[str, int] = field(default_factory=dict)  # "200", "503: message", "RemoteDisconnected", ...


def answers_match(got, want, atol: float = 1e-4) -> bool:
    if isinstance(want, float):
        return abs(got - want) <= atol
    if isinstance(want, dict):
        return set(got) == set(want) and all(answers_match(got[k], want[k], atol) for k in want)
    if isinstance(want, list):
        return len(got) == len(want) and all(answers_match(g, w, atol) for g, w in zip(got, want))
    return got == want


def victim_pid(server, victim: str, name: str) -> int:
    if victim == "tritonserver":
        return server.process.pid
    model = f"{name}_model" if victim == "model stub" else f"{name}_tokenize"
    return next(s.pid for s in stub_processes(server.process.pid) if s.model == model)


def measure(args: argparse.Namespace) -> list[Round]:
    local = inferforge.load(args.model_dir, threads=1)
    pairs = ["Paris is the capital of France"] if local.task.needs_pairs else None
    expected = local.predict([TEXT], pairs)[0]
    rounds = []
    options = RepositoryOptions(name="recover", max_batch_size=8, threads=1,
                                tokenize_in_model=args.tokenize_in_model)
    with serve_converted(args.model_dir, options, ServerOptions(ready_timeout_s=300)) as served:
        server, watchdog = served.server, served.watchdog
        victims = [v for v in VICTIMS if not (args.tokenize_in_model and v == "tokenizer stub")]
        for index in range(args.rounds):
            victim = victims[index % len(victims)]
            log: list[tuple[float, str, float, bool]] = []  # (sent at, outcome, took, right answer)
            stop = threading.Event()

            def client() -> None:
                host, port = server.http_url.rsplit(":", 1)
                connection = http.client.HTTPConnection(host, int(port), timeout=60)
                while not stop.is_set():
                    sent = time.monotonic()
                    try:
                        reply = send(connection, "recover", text_request([TEXT], pairs))
                        right = reply.status == 200 and answers_match(reply.answers()[0], expected)
                        outcome = "200" if reply.status == 200 else f"{reply.status}: {reply.error[:90]}"
                    except (OSError, http.client.HTTPException) as error:
                        outcome, right = type(error).__name__, False
                        connection.close()
                        connection = http.client.HTTPConnection(host, int(port), timeout=60)
                    log.append((sent, outcome, time.monotonic() - sent, right))
                    time.sleep(0.01)
                connection.close()

            threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            before = len(watchdog.recoveries)
            killed_mono, killed_wall = time.monotonic(), time.time()
            os.kill(victim_pid(server, victim, "recover"), signal.SIGKILL)
            while len(watchdog.recoveries) == before and time.monotonic() - killed_mono < 120:
                time.sleep(0.05)
            time.sleep(2.0)
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
            recovery = watchdog.recoveries[-1]
            after = [entry for entry in log if entry[0] >= killed_mono]
            first_right = min((sent + took for sent, _, took, right in after if right
                               and sent > killed_mono + (recovery.detected_at - killed_wall)), default=float("nan"))
            rounds.append(Round(
                victim=victim,
                detection_s=recovery.detected_at - killed_wall,
                restart_s=recovery.restart_s,
                first_right_answer_s=first_right - killed_mono,
                longest_request_s=max(took for _, _, took, _ in log),
                outcomes=dict(Counter(outcome for _, outcome, _, _ in after)),
            ))
            print(f"  {victim}: detected after {rounds[-1].detection_s:.2f} s, restarted in {recovery.restart_s:.1f} s",
                  file=sys.stderr, flush=True)
    return rounds


def markdown(rounds: list[Round]) -> str:
    lines = ["| killed | detected after | restart | first right answer after the kill | longest request | "
             "what clients got from the kill on |", "|---|---|---|---|---|---|"]
    for r in rounds:
        got = "; ".join(f"{k} x{v}" for k, v in sorted(r.outcomes.items(), key=lambda kv: -kv[1]))
        lines.append(f"| {r.victim} | {r.detection_s:.2f} s | {r.restart_s:.1f} s | {r.first_right_answer_s:.1f} s | "
                     f"{r.longest_request_s:.1f} s | {got} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--tokenize-in-model", action="store_true")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    rounds = measure(args)
    print(markdown(rounds))
    if args.output:
        args.output.write_text(json.dumps([asdict(r) for r in rounds], indent=2))
    return 0 if all(r.detection_s < 2 and r.first_right_answer_s < 60 for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
