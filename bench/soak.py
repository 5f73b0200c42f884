"""Soak the supervised Triton server: mixed good and bad requests at concurrency 16 for 10 minutes.

    python bench/soak.py DIR [--minutes 10] [--concurrency 16] [--max-requests N] [--output soak.json]

DIR is a folder written by `inferforge convert`. The server is the one `inferforge serve` runs
(`serve_converted`: hardened, watched), on 127.0.0.1 only. Bounded in time (`--minutes`) and in
requests (`--max-requests`). It checks what issue 6 asks:
  - resident memory (RSS) of the server and its Python stubs grows by less than 100 MB, from the end
    of the warm-up (the first `--warmup-s` seconds) to the end;
  - /dev/shm usage after stop returns to its value before start, and no region of this server is left;
  - every good answer equals the local engine's (`inferforge.load(DIR).predict`, one text at a time);
  - every bad request (the matrix of `inferforge.triton.raw_requests.BAD_REQUESTS`) gets its 4xx;
  - no 5xx, no transport error, no watchdog restart.
Prints a Markdown summary, writes the numbers as JSON with `--output`, exits 1 if a check fails.
The machine is shared: the load generator runs on the same cores as the server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import inferforge
from inferforge.triton.raw_requests import BAD_REQUESTS, send, text_request
from inferforge.triton.repository import RepositoryOptions
from inferforge.triton.serve import serve_converted
from inferforge.triton.server import ServerOptions
from inferforge.triton.watchdog import stub_processes

RSS_GROWTH_LIMIT_MB = 100.0
WORDS = ("the movie was great and the actors were wonderful Alice met Bob in Paris last summer a terrible boring "
         "film with no story at all what is the capital of France quick brown fox jumps over lazy dog "
         "Ünïcödé émojis 🙂 punctuation! numbers 1234 and hyphen-ated words").split()


@dataclass
class Sample:
    at_s: float
    rss_mb: float  # VmRSS summed over the server and its stubs (shared pages counted in each process)
    pss_mb: float  # Pss summed (shared pages split among all processes mapping them, other programs' too)
    anon_mb: float  # RssAnon summed: private memory, neither files nor shared memory
    shm_mb: float  # the server's /dev/shm regions (Python backend), counted once
    by_process: dict[str, float]  # VmRSS of "server" and of each stub, by model name
    requests: int


@dataclass
class SoakResult:
    model_dir: str
    minutes: float
    concurrency: int
    requests: int = 0
    good: int = 0
    bad: int = 0
    good_wrong: int = 0
    bad_wrong: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    restarts: int = 0
    duration_s: float = 0.0
    throughput_rps: float = 0.0
    good_p50_ms: float = 0.0
    good_p99_ms: float = 0.0
    rss_start_mb: float = 0.0
    rss_warm_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_growth_mb: float = 0.0
    owned_start_mb: float = 0.0  # private memory of the server and stubs + their /dev/shm regions
    owned_warm_mb: float = 0.0
    owned_end_mb: float = 0.0
    owned_growth_mb: float = 0.0
    pss_growth_mb: float = 0.0
    anon_growth_mb: float = 0.0
    new_shm_left: list[str] = field(default_factory=list)
    shm_used_before_mb: float = 0.0
    shm_used_after_mb: float = 0.0
    shm_regions_left: int = 0
    processes_left: int = 0
    load_before: str = ""
    samples: list[Sample] = field(default_factory=list)
    first_failures: list[str] = field(default_factory=list)

    def checks(self) -> dict[str, bool]:
        return {
            "memory growth (private + own /dev/shm) < 100 MB": self.owned_growth_mb < RSS_GROWTH_LIMIT_MB,
            "VmRSS sum growth < 100 MB (shared pages counted in each process)": self.rss_growth_mb < RSS_GROWTH_LIMIT_MB,
            "/dev/shm back to its start value": self.shm_regions_left == 0 and not self.new_shm_left,
            "no process left": self.processes_left == 0,
            "every good answer equals the local engine's": self.good_wrong == 0 and self.good > 0,
            "every bad request got its 4xx": self.bad_wrong == 0 and self.bad > 0,
            "no 5xx, no transport error, no restart": self.server_errors == 0 and self.transport_errors == 0
            and self.restarts == 0,
        }


def texts_for(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 120))) + f" #{i}" for i in range(count)]


def answers_match(got, want, atol: float = 1e-4) -> bool:
    if isinstance(want, float):
        return isinstance(got, (int, float)) and abs(got - want) <= atol
    if isinstance(want, dict):
        return isinstance(got, dict) and set(got) == set(want) and all(answers_match(got[k], want[k], atol) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(answers_match(g, w, atol) for g, w in zip(got, want))
    return got == want


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and Pss of one process, in MB (zeros when it is gone)."""
    found = {"VmRSS": 0.0, "RssAnon": 0.0, "Pss": 0.0}
    for table in (f"/proc/{pid}/status", f"/proc/{pid}/smaps_rollup"):
        try:
            for line in Path(table).read_text().splitlines():
                key = line.split(":")[0]
                if key in found:
                    found[key] = int(line.split()[1]) / 1024
        except OSError:
            pass
    return found


def shm_regions_mb(prefix: str) -> float:
    total = 0
    for entry in Path("/dev/shm").iterdir():
        if entry.name.startswith(prefix):
            try:
                total += entry.stat().st_blocks * 512
            except OSError:
                continue
    return total / 2**20


def sample(members: dict[str, int], at_s: float, requests: int, prefix: str) -> Sample:
    memories = {name: memory_mb(pid) for name, pid in members.items()}
    return Sample(at_s, sum(m["VmRSS"] for m in memories.values()), sum(m["Pss"] for m in memories.values()),
                  sum(m["RssAnon"] for m in memories.values()), shm_regions_mb(prefix),
                  {name: round(m["VmRSS"], 1) for name, m in memories.items()}, requests)


def shm_used_mb() -> float:
    stats = os.statvfs("/dev/shm")
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize / 2**20


def shm_names() -> set[str]:
    return set(os.listdir("/dev/shm"))


def owned_by_another_live_server(name: str) -> bool:
    """inferforge regions are named inferforge_<pid of the process that started the server>_..."""
    match = re.match(r"inferforge_(\d+)_", name)
    return bool(match) and int(match.group(1)) != os.getpid() and Path(f"/proc/{match.group(1)}").exists()


def processes_with(marker: str) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += marker.encode() in (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return count


def soak(args: argparse.Namespace) -> SoakResult:
    result = SoakResult(str(args.model_dir), args.minutes, args.concurrency)
    with open("/proc/loadavg") as f:
        result.load_before = f.read().strip()
    local = inferforge.load(args.model_dir, threads=args.threads)
    pair_texts = local.task.needs_pairs
    texts = texts_for(args.distinct_texts)
    contexts = texts_for(args.distinct_texts, seed=1) if pair_texts else None
    expected = [local.predict([t], [contexts[i]] if contexts else None)[0] for i, t in enumerate(texts)]
    bad_kinds = [k for k in BAD_REQUESTS if not (k.startswith("text pair") and local.task.supports_pairs)]
    result.shm_used_before_mb = shm_used_mb()
    shm_before = shm_names()
    lock = threading.Lock()
    latencies: list[float] = []
    stop = threading.Event()
    repo_options = RepositoryOptions(name="soak", max_batch_size=args.max_batch_size, threads=args.threads)
    with serve_converted(args.model_dir, repo_options, ServerOptions(host="127.0.0.1", ready_timeout_s=300)) as served:
        server, watchdog = served.server, served.watchdog
        prefix = server.shm_prefix

        def fail(message: str) -> None:
            if len(result.first_failures) < 20:
                result.first_failures.append(message)

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            host, port = server.http_url.rsplit(":", 1)
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            while not stop.is_set():
                with lock:
                    if result.requests >= args.max_requests:
                        stop.set()
                        break
                    result.requests += 1
                bad = rng.random() < args.bad_fraction
                index = rng.randrange(len(texts))
                kind = rng.choice(bad_kinds) if bad else None
                request = BAD_REQUESTS[kind].build(args.max_batch_size) if bad else text_request(
                    [texts[index]], [contexts[index]] if contexts else None)
                started = time.perf_counter()
                try:
                    reply = send(connection, "soak", request)
                except (OSError, http.client.HTTPException) as error:
                    with lock:
                        result.transport_errors += 1
                    fail(f"transport: {error!r}")
                    connection.close()
                    connection = http.client.HTTPConnection(host, int(port), timeout=60)
                    continue
                took = time.perf_counter() - started
                with lock:
                    if reply.status >= 500:
                        result.server_errors += 1
                        fail(f"{reply.status}: {reply.error}")
                    if bad:
                        result.bad += 1
                        spec = BAD_REQUESTS[kind]
                        if reply.status != spec.status or not re.search(spec.words, reply.error):
                            result.bad_wrong += 1
                            fail(f"bad '{kind}': {reply.status} {reply.error}")
                    else:
                        result.good += 1
                        latencies.append(took)
                        if reply.status != 200 or not answers_match(reply.answers()[0], expected[index]):
                            result.good_wrong += 1
                            fail(f"good #{index}: {reply.status} {reply.error}")
            connection.close()

        def members() -> dict[str, int]:
            process = server.process
            if process is None:
                return {}
            return {"server": process.pid, **{s.model: s.pid for s in stub_processes(process.pid)}}

        started = time.monotonic()
        result.samples.append(sample(members(), 0.0, 0, prefix))
        result.rss_start_mb = result.samples[0].rss_mb
        warm = result.samples[0]
        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.concurrency)]
        for thread in threads:
            thread.start()
        end = started + args.minutes * 60
        next_sample = started + args.sample_s
        warm_taken = False
        while time.monotonic() < end and not stop.is_set():
            time.sleep(min(1.0, max(0.0, next_sample - time.monotonic())))
            now = time.monotonic()
            if not warm_taken and now - started >= args.warmup_s:
                warm = sample(members(), round(now - started, 1), result.requests, prefix)
                warm_taken = True
            if now >= next_sample:
                result.samples.append(sample(members(), round(now - started, 1), result.requests, prefix))
                next_sample += args.sample_s
                last = result.samples[-1]
                print(f"  {now - started:6.0f} s  {result.requests:8d} requests  private {last.anon_mb:6.1f} MB  "
                      f"shm {last.shm_mb:5.1f} MB  RSS {last.rss_mb:6.1f} MB {last.by_process}", file=sys.stderr, flush=True)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        result.duration_s = time.monotonic() - started
        end_sample = sample(members(), round(result.duration_s, 1), result.requests, prefix)
        result.samples.append(end_sample)
        result.rss_warm_mb, result.rss_end_mb = warm.rss_mb, end_sample.rss_mb
        result.anon_growth_mb = end_sample.anon_mb - warm.anon_mb
        result.owned_start_mb, result.owned_warm_mb, result.owned_end_mb = (
            x.anon_mb + x.shm_mb for x in (result.samples[0], warm, end_sample))
        result.owned_growth_mb = result.owned_end_mb - result.owned_warm_mb
        result.pss_growth_mb = end_sample.pss_mb - warm.pss_mb
        result.restarts = len(watchdog.recoveries) if watchdog else 0
    result.shm_used_after_mb = shm_used_mb()
    result.shm_regions_left = sum(1 for name in os.listdir("/dev/shm") if name.startswith(prefix))
    result.new_shm_left = sorted(n for n in shm_names() - shm_before if not owned_by_another_live_server(n))
    result.processes_left = processes_with(prefix)
    result.rss_growth_mb = result.rss_end_mb - result.rss_warm_mb
    result.throughput_rps = result.requests / result.duration_s if result.duration_s else 0.0
    if latencies:
        latencies.sort()
        result.good_p50_ms = 1000 * latencies[len(latencies) // 2]
        result.good_p99_ms = 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return result


def markdown(result: SoakResult) -> str:
    lines = [
        f"Soak of `{result.model_dir}`: {result.duration_s / 60:.1f} min at concurrency {result.concurrency} "
        f"(load average before: {result.load_before}).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| requests (good / bad) | {result.requests} ({result.good} / {result.bad}) |",
        f"| throughput | {result.throughput_rps:.0f} requests/s |",
        f"| good latency p50 / p99 | {result.good_p50_ms:.1f} / {result.good_p99_ms:.1f} ms |",
        f"| good answers different from the local engine | {result.good_wrong} |",
        f"| bad requests without their 4xx | {result.bad_wrong} |",
        f"| 5xx / transport errors / restarts | {result.server_errors} / {result.transport_errors} / {result.restarts} |",
        f"| private memory + own /dev/shm, server + stubs: start / after warm-up / end | {result.owned_start_mb:.0f} / "
        f"{result.owned_warm_mb:.0f} / {result.owned_end_mb:.0f} MB (growth {result.owned_growth_mb:+.1f} MB) |",
        f"| RSS server + stubs: start / after warm-up / end | {result.rss_start_mb:.0f} / {result.rss_warm_mb:.0f} / "
        f"{result.rss_end_mb:.0f} MB (growth {result.rss_growth_mb:+.1f} MB; PSS growth {result.pss_growth_mb:+.1f} MB) |",
        f"| /dev/shm used before start / after stop | {result.shm_used_before_mb:.1f} / {result.shm_used_after_mb:.1f} MB "
        f"({result.shm_regions_left} regions of this server left; new regions of no other running server: "
        f"{len(result.new_shm_left)}) |",
        f"| processes left | {result.processes_left} |",
        "",
    ]
    lines += [f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in result.checks().items()]
    if result.first_failures:
        lines += ["", "First failures:", *[f"- {f}" for f in result.first_failures]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", type=Path, help="a folder written by `inferforge convert`")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="stop after this many requests")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bad-fraction", type=float, default=0.1)
    parser.add_argument("--distinct-texts", type=int, default=200)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="engine threads in the server (and locally)")
    parser.add_argument("--warmup-s", type=float, default=60.0, help="memory growth is measured from here")
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--output", type=Path, help="write the numbers as JSON here")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.minutes > 120 or args.concurrency < 1 or args.max_requests < 1:
        parser.error("--minutes must be in (0, 120], --concurrency and --max-requests at least 1")
    args.warmup_s = min(args.warmup_s, args.minutes * 60 / 4)
    result = soak(args)
    print(markdown(result))
    if args.output:
        args.output.write_text(json.dumps(asdict(result), indent=2))
    return 0 if all(result.checks().values()) else 1


if __name__ == "__main__":
    sys.exit(main())
