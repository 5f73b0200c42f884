"""Notice a dead Triton server or Python-backend stub within a poll period, and restart the server.

Triton 2.51 does not restart a Python stub that dies (killed, segfault, or ended by the execute()
deadline of `inferforge.triton.hardening`), and keeps answering 200 on `/v2/health/ready` while every
request to that model fails with "Stub process ... is not healthy". The watchdog therefore checks the
processes themselves: the server process, and each stub (a child of the server running
`triton_python_backend_stub`; a killed stub stays a zombie, since the server does not reap it).

With `stall_timeout_s`, a Python model that has requests waiting but finishes no execution for that long
(Prometheus `nv_inference_pending_request_count` and the statistics' `execution_count`) counts as hung:
this catches a stub that the execute() deadline inside it cannot end (stopped, or stuck in native code
holding the GIL).

With `probe` (`health_probe`), a tiny real inference catches what Triton itself reports as an unhealthy worker.
It is sent only after a request failed (Prometheus `nv_inference_request_failure` grew; at most once per `probe_s`):
a probe every 2 s whatever happened counted as traffic in the server's statistics and metrics (about 43,000
requests a day on an idle server, and a `last_inference` that never aged).

Recovery restarts the whole server on the same ports (model control stays `none`). When a stub died and the
server still runs, it is drained first (`HardenedServer.drain`: under the preloaded library its requests in flight
are answered, 503s, before the kill instead of losing their connection). While it restarts,
the HTTP port answers every request with 503 and a one-sentence JSON error (`{"error": ...}`, what
KServe v2 clients read); gRPC clients get UNAVAILABLE (the port is closed). The server is started with
`--reuse-http-port`, so the 503 answerer and the new server share the port until the new one is ready.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from inferforge.triton.hardening import HardenedServer
from inferforge.triton.raw_requests import RawRequest, send
from inferforge.triton.server import exit_description

STUB_BINARY = b"triton_python_backend_stub"
RESTARTING_MESSAGE = "the server is restarting after a worker crash; retry in a few seconds"
PENDING_METRIC = re.compile(r'^nv_inference_pending_request_count\{model="([^"]+)"[^}]*\}\s+(\S+)', re.MULTILINE)
FAILURE_METRIC = re.compile(r'^nv_inference_request_failure\{[^}]*\}\s+(\S+)', re.MULTILINE)


@dataclass(frozen=True)
class StubProcess:
    pid: int
    model: str  # the model whose instance it runs


@dataclass(frozen=True)
class Recovery:
    problem: str
    detected_at: float  # time.time()
    restart_s: float  # from detection to the new server being ready
    log_reason: str  # the crashed server's last log lines


def stub_processes(server_pid: int) -> list[StubProcess]:
    """The Python-backend stubs started by the server `server_pid`, alive or not yet reaped."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) != server_pid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if argv and argv[0].endswith(STUB_BINARY) and len(argv) > 1:
            model_py = Path(argv[1].decode(errors="replace"))  # REPO/<model>/<version>/model.py
            found.append(StubProcess(int(entry.name), model_py.parent.parent.name))
    return found


def health_probe(server: HardenedServer, model: str, request: RawRequest,
                 timeout_s: float = 1.0) -> Callable[[], str | None]:
    """A tiny real inference; a problem when Triton itself calls a worker unhealthy.

    A stub that is alive but does not answer Triton's health checks (stopped, or stuck holding the GIL)
    makes Triton fail its requests with "Stub process ... is not healthy" while /ready stays 200.
    No answer within `timeout_s` is no verdict: the server may just be busy (the stall check covers hangs).
    """

    def probe() -> str | None:
        if server.ports is None:
            return None
        connection = http.client.HTTPConnection(server.options.host, server.ports.http, timeout=timeout_s)
        try:
            reply = send(connection, model, request)
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()
        if reply.status >= 500 and "is not healthy" in reply.error:
            return f"Triton reports an unhealthy worker ({reply.error})"
        return None

    return probe


def process_state(pid: int) -> str | None:
    """The /proc state letter ('R', 'S', 'Z', ...), None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


class _ReusePortHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class _Unavailable(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"error": RESTARTING_MESSAGE}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Retry-After", "5")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":  # a reply to HEAD has the headers only
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _answer

    def log_message(self, *args) -> None:
        pass


class UnavailableAnswerer:
    """503 on every HTTP request, on a port shared (SO_REUSEPORT) with the server being restarted."""

    def __init__(self, host: str, port: int) -> None:
        self._server = _ReusePortHTTPServer((host, port), _Unavailable)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="inferforge-503", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        # Connections already queued on this socket would be reset when it closes: answer them first.
        self._server.socket.setblocking(False)
        while True:
            try:
                connection, address = self._server.socket.accept()
            except OSError:
                break
            connection.setblocking(True)
            connection.settimeout(2.0)
            try:
                self._server.finish_request(connection, address)
            except OSError:
                pass
            finally:
                self._server.shutdown_request(connection)
        self._server.server_close()


@dataclass
class Watchdog:
    """Supervises a started `HardenedServer` from a thread; a context manager.

    The thread also stops the server at the end: a server restarted from this thread is tied to it
    (the launcher sets PR_SET_PDEATHSIG), so it must outlive the server.
    """

    server: HardenedServer
    poll_s: float = 0.1
    retry_s: float = 2.0
    # A Python model with requests waiting and no finished execution for this long counts as hung (None: off).
    # Set above the stubs' own execute() deadline: this catches what that deadline cannot (a stub that is
    # stopped, or stuck in native code holding the GIL).
    stall_timeout_s: float | None = None
    # Called after a request failed, at most every `probe_s`: a problem string when a real request shows the server
    # broken (see `health_probe`).
    probe: Callable[[], str | None] | None = None
    probe_s: float = 2.0
    # Models watched for stalls besides those of the Python backend's stubs: the models of the in-process backend,
    # which has no stub process to find them by (and whose own execute deadline is a Python thread, stuck too when
    # a model holds the GIL).
    watched_models: tuple[str, ...] = ()
    on_event: Callable[[str], None] = lambda message: None
    recoveries: list[Recovery] = field(default_factory=list)
    recovering: bool = field(default=False, init=False)
    _stubs: list[StubProcess] = field(default_factory=list, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _progress: dict[str, tuple[int | None, float]] = field(default_factory=dict, init=False)
    _next_progress_check: float = field(default=0.0, init=False)
    _next_probe: float = field(default=0.0, init=False)
    _failures: float | None = field(default=None, init=False)  # requests failed so far, as the metrics count them
    _drainable: bool = field(default=False, init=False)
    drains: list[bool] = field(default_factory=list, init=False)  # per drain asked: whether the server finished it

    def start(self) -> "Watchdog":
        self._stubs = self._current_stubs()
        self._thread = threading.Thread(target=self._run, name="inferforge-watchdog", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop watching, then stop the server (from the watchdog thread, see the class doc)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.server.stop()

    def __enter__(self) -> "Watchdog":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def problem(self) -> str | None:
        """Why the server cannot answer right now, or None."""
        self._drainable = False
        process = self.server.process
        if process is None:
            return "the Triton server is not running"
        if process.poll() is not None:
            return f"the Triton server {exit_description(process.returncode)}"
        for stub in self._stubs:
            if process_state(stub.pid) in (None, "Z", "X"):
                self._drainable = True  # the server runs and can answer what it has in flight first
                return f"the Python worker of model '{stub.model}' (pid {stub.pid}) died"
        if self.probe is not None and time.monotonic() >= self._next_probe:
            self._next_probe = time.monotonic() + self.probe_s
            verdict = self.probe() if self._requests_failed() else None
            if verdict is not None:
                return verdict
        if self.stall_timeout_s is not None:
            return self._stalled_model()
        return None

    def _stalled_model(self) -> str | None:
        """Once a second: a Python model whose waiting requests see no execution finish for too long."""
        now = time.monotonic()
        if now < self._next_progress_check:
            return None
        self._next_progress_check = now + 1.0
        pending, executions = self._pending_requests(), self._execution_counts()
        if pending is None or executions is None:
            return None  # the server did not answer in time: busy, or dying (then the checks above see it)
        for model in {stub.model for stub in self._stubs} | set(self.watched_models):
            waiting, count = pending.get(model, 0), executions.get(model)
            last_count, since = self._progress.get(model, (None, now))
            if waiting == 0 or count != last_count:
                self._progress[model] = (count, now)
            elif now - since > self.stall_timeout_s:
                return (f"model '{model}' finished no execution for {now - since:.0f} s "
                        f"with {waiting} requests waiting (hung)")
        return None

    def _get(self, port: int, path: str) -> bytes | None:
        connection = http.client.HTTPConnection(self.server.options.host, port, timeout=0.5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.read() if response.status == 200 else None
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()

    def _requests_failed(self) -> bool:
        """Whether requests failed since the last look (a restarted server counts from 0 again)."""
        if self.server.ports is None:
            return False
        text = self._get(self.server.ports.metrics, "/metrics")
        if text is None:
            return False
        total = sum(float(value) for value in FAILURE_METRIC.findall(text.decode(errors="replace")))
        failed = self._failures is not None and total > self._failures
        self._failures = total
        return failed

    def _pending_requests(self) -> dict[str, int] | None:
        text = self._get(self.server.ports.metrics, "/metrics")
        if text is None:
            return None
        pending = {}
        for match in PENDING_METRIC.finditer(text.decode(errors="replace")):
            pending[match.group(1)] = pending.get(match.group(1), 0) + int(float(match.group(2)))
        return pending

    def _execution_counts(self) -> dict[str, int] | None:
        body = self._get(self.server.ports.http, "/v2/models/stats")
        if body is None:
            return None
        try:
            stats = json.loads(body)["model_stats"]
        except (ValueError, KeyError):
            return None
        return {entry["name"]: int(entry.get("execution_count", 0)) for entry in stats}

    # ----- internals ----------------------------------------------------------------------
    def _current_stubs(self) -> list[StubProcess]:
        process = self.server.process
        return stub_processes(process.pid) if process is not None else []

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.poll_s):
                problem = self.problem()
                if problem is not None:
                    self._recover(problem)
        finally:
            self.server.stop()

    def _recover(self, problem: str) -> None:
        detected, started = time.time(), time.monotonic()
        self.recovering = True
        self.on_event(f"Watchdog: {problem}; restarting the server.")
        reason = self.server._log_reason() if self.server.workdir is not None else ""
        answerer = None
        try:
            try:
                answerer = UnavailableAnswerer(self.server.options.host, self.server.ports.http)
            except OSError:
                answerer = None  # the port cannot be shared: clients see a closed port meanwhile
            if self._drainable:  # a dead stub: the server answers its requests in flight (503s) before it is killed
                self.drains.append(self.server.drain())
            while not self._stop.is_set():
                try:
                    self.server.restart()
                    break
                except Exception as error:  # noqa: BLE001 - keep trying until stopped
                    self.on_event(f"Watchdog: restart failed ({error}); retrying in {self.retry_s:g} s.")
                    self._stop.wait(self.retry_s)
            if self._stop.is_set():
                return
            self._stubs = self._current_stubs()
            self._progress.clear()
            self._failures = None
            if answerer is not None:
                answerer.close()
                answerer = None
            elapsed = time.monotonic() - started
            self.recoveries.append(Recovery(problem, detected, elapsed, reason))
            self.on_event(f"Watchdog: the server answers again after {elapsed:.1f} s.")
        finally:
            if answerer is not None:
                answerer.close()
            self.recovering = False
