"""Start and stop a real NVIDIA Triton Inference Server from the `nvidia-pytriton` wheel.

The wheel (pinned: its file layout is internal) ships the `tritonserver` binary, its shared
libraries and the Python backend with one stub per Python version. This module builds the backend
directory the binary expects, sets the library and interpreter paths, checks the stub with `ldd`
before launching, waits for `/v2/health/ready` with a deadline, and on stop leaves no process and
no shared-memory region behind.

`TritonServer.command()` and `TritonServer.environment()` build the launch; subclasses (or the
`extra_args` option) add flags, and `check_health()` is the hook a watchdog calls.
"""

from __future__ import annotations

import errno
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from inferforge.errors import UserError
from inferforge.triton.inprocess import BACKEND_NAME as INPROCESS_BACKEND, PYTHON_VARIABLE as INPROCESS_PYTHON_VARIABLE

SHM_DIR = Path("/dev/shm")
# The Python backend maps one region per model instance; 64 MB each is the backend's default.
SHM_BYTES_PER_PYTHON_MODEL = 64 * 1024 * 1024
# Error lines the server logs on every CPU-only machine.
HARMLESS_ERRORS = ("CudaDriverHelper has not been initialized", "CUDA driver version is insufficient")
# How long the Python stubs get to exit by themselves after the server process is gone.
STUB_GRACE_S = 10.0


@dataclass(frozen=True)
class TritonInstallation:
    """Where the pieces of the `nvidia-pytriton` wheel lie for the running interpreter."""

    binary: Path
    python_backend: Path  # libtriton_python.so + triton_python_backend_utils.py
    stub: Path  # triton_python_backend_stub for this Python version
    library_dirs: tuple[Path, ...]  # LD_LIBRARY_PATH entries, in order

    @classmethod
    def find(cls) -> "TritonInstallation":
        try:
            import pytriton
        except ImportError:
            raise UserError(
                "The Triton server is not installed; run `pip install nvidia-pytriton==0.7.0`."
            ) from None
        root = Path(pytriton.__file__).resolve().parent / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        vendored = root.parent.parent / "nvidia_pytriton.libs"
        found = cls(
            binary=root / "bin" / "tritonserver",
            python_backend=root / "backends" / "python",
            stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
            library_dirs=(Path(sysconfig.get_config_var("LIBDIR") or "/usr/lib"), vendored),
        )
        for path in (found.binary, found.python_backend / "libtriton_python.so", found.stub):
            if not path.exists():
                raise UserError(
                    f"The nvidia-pytriton wheel lacks {path}; reinstall nvidia-pytriton==0.7.0 "
                    f"(Python {version} needs its backend stub)."
                )
        return found

    def library_path(self) -> str:
        parts = [str(p) for p in self.library_dirs]
        if os.environ.get("LD_LIBRARY_PATH"):
            parts.append(os.environ["LD_LIBRARY_PATH"])
        return os.pathsep.join(parts)

    def check_stub(self) -> None:
        """Fail before launching when the Python backend stub cannot load its libraries.

        A stub that cannot start leaves the server loading forever, so this is checked first.
        """
        env = dict(os.environ, LD_LIBRARY_PATH=self.library_path())
        try:
            result = subprocess.run(["ldd", str(self.stub)], capture_output=True, text=True, env=env, timeout=30)
        except FileNotFoundError:
            return  # no ldd on this system: the readiness deadline still catches a broken stub
        missing = [line.split("=>")[0].strip() for line in result.stdout.splitlines() if "not found" in line]
        if missing:
            raise UserError(
                f"The Triton Python backend stub cannot load {', '.join(missing)}; "
                f"install the library providing it or run with the Python {sys.version_info.major}."
                f"{sys.version_info.minor} shared library (`{self.stub}`)."
            )


GRPC_MIN_PING_INTERVAL_MS = 5000  # the shortest keepalive period a gRPC client may use without being cut off


@dataclass(frozen=True)
class ServerOptions:
    """How to run the server. Ports left at None are picked free on `host`."""

    host: str = "127.0.0.1"
    http_port: int | None = None
    grpc_port: int | None = None
    metrics_port: int | None = None
    ready_timeout_s: float = 120.0
    exit_timeout_s: int = 5
    log_verbose: int = 0
    python_models: int = 3  # for the /dev/shm free-space check
    extra_args: tuple[str, ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()
    # Front-end requests admitted in flight per model (the rest refused at once, 503); needs the preloaded library
    # of `HardenedServer` (hardening.py, hide_args.c). 0: no limit; None: `serve_converted` picks it from the
    # repository's queue size and batch (RELIABILITY.md section 3).
    max_in_flight: int | None = None
    # The built in-process backend (inprocess.build_backend), for repositories whose models say backend "inferforge".
    inprocess_backend: Path | None = None

    def __post_init__(self) -> None:
        for what, port in (("HTTP", self.http_port), ("gRPC", self.grpc_port), ("metrics", self.metrics_port)):
            if port is not None and not 0 <= port <= 65535:
                raise UserError(f"The {what} port {port} is not a port number: use 1-65535 (0 picks a free one).")
        if not self.exit_timeout_s >= 1:
            raise UserError(f"--exit-timeout (exit_timeout_s) must be at least 1 second (got {self.exit_timeout_s}): "
                            "the accepted requests get that long to finish when the server stops.")
        if self.max_in_flight is not None and self.max_in_flight < 0:
            raise UserError(f"max_in_flight must be 0 (no limit) or more (got {self.max_in_flight}).")
        if not self.ready_timeout_s > 0:
            raise UserError(f"--ready-timeout (ready_timeout_s) must be more than 0 seconds (got {self.ready_timeout_s:g}).")
        if ":" in self.host.strip("[]"):  # an IPv6 address (::1, [::], fe80::1%eth0)
            raise UserError(f"'{self.host}' is an IPv6 address; the server listens on IPv4 only: give an IPv4 address "
                            "or host name, such as 127.0.0.1 (the default, the IPv4 loopback) or 0.0.0.0.")
        try:
            socket.getaddrinfo(self.host, None, socket.AF_INET, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise UserError(f"'{self.host}' is not an address of this machine: give an IPv4 address or host name "
                            "to bind, such as 127.0.0.1 (the default) or 0.0.0.0.") from None


def exit_description(returncode: int) -> str:
    """How the server process ended: "exited with code 1", or the signal that ended it ("was ended by signal
    SIGFPE", which is how Triton 2.51 dies on a classification request for a BYTES output)."""
    if returncode < 0:
        try:
            return f"was ended by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was ended by signal {-returncode}"
    return f"exited with code {returncode}"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def address_is_local(host: str) -> bool:
    """Whether a socket can be bound to `host` at all (any port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, 0))
        except OSError as error:
            return error.errno != errno.EADDRNOTAVAIL
        return True


def port_is_free(host: str, port: int) -> bool:
    """Whether tritonserver can listen on `port`. It binds with SO_REUSEADDR, as this check does: a port whose
    last server just stopped with clients connected (its connections in TIME-WAIT/FIN-WAIT for up to a minute)
    is free to it, and a port another process listens on is not (Linux refuses that bind even with the option)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


@dataclass
class ServerPorts:
    http: int
    grpc: int
    metrics: int


@dataclass
class TritonServer:
    """A `tritonserver` process serving `repository`; a context manager.

    >>> with TritonServer(repo) as server:
    ...     print(server.http_url)
    """

    repository: Path
    options: ServerOptions = field(default_factory=ServerOptions)
    process: subprocess.Popen | None = field(default=None, init=False)
    ports: ServerPorts | None = field(default=None, init=False)
    shm_prefix: str = field(default="", init=False)
    workdir: Path | None = field(default=None, init=False)

    # ----- launch description (override or extend for hardening) ---------------------------
    def command(self, installation: TritonInstallation, backend_dir: Path) -> list[str]:
        o, p = self.options, self.ports
        assert p is not None
        return [
            str(installation.binary),
            "--model-repository", str(Path(self.repository).resolve()),
            "--backend-directory", str(backend_dir),
            "--backend-config", f"python,shm-region-prefix-name={self.shm_prefix}",
            "--disable-auto-complete-config",
            "--strict-readiness", "true",
            "--exit-on-error", "true",
            "--exit-timeout-secs", str(o.exit_timeout_s),
            "--pinned-memory-pool-byte-size", "0",
            "--allow-gpu-metrics", "false",
            "--allow-metrics", "true",
            "--allow-sagemaker", "false",
            "--allow-vertex-ai", "false",
            "--http-address", o.host, "--http-port", str(p.http),
            "--grpc-address", o.host, "--grpc-port", str(p.grpc),
            # gRPC clients that send keepalive pings (tritonclient's KeepAliveOptions, channels kept open through load
            # balancers) every 5 s or more, also between calls: Triton 2.51's defaults take one ping per 5 minutes and
            # no ping without a call, and answer a third early one with GOAWAY "too_many_pings", dropping the channel.
            "--grpc-keepalive-permit-without-calls", "1",
            "--grpc-http2-min-recv-ping-interval-without-data", str(GRPC_MIN_PING_INTERVAL_MS),
            "--metrics-address", o.host, "--metrics-port", str(p.metrics),
            "--log-verbose", str(o.log_verbose),
            *o.extra_args,
        ]

    def environment(self, installation: TritonInstallation) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = installation.library_path()
        # The stub's embedded interpreter finds its site-packages through `python3` on PATH.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        if self.options.inprocess_backend is not None:  # the embedded interpreter takes this one's environment
            env[INPROCESS_PYTHON_VARIABLE] = sys.executable
        env.update(dict(self.options.extra_env))
        return env

    # ----- public surface -------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"{self.options.host}:{self._ports().http}"

    @property
    def grpc_url(self) -> str:
        return f"{self.options.host}:{self._ports().grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.options.host}:{self._ports().metrics}/metrics"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None, "the server has not been started"
        return self.workdir / "tritonserver.log"

    def start(self) -> "TritonServer":
        if self.process is not None:
            raise RuntimeError("server already started")
        repository = Path(self.repository)
        if not repository.is_dir():
            raise UserError(f"The model repository {repository} does not exist; write it with `inferforge repository`.")
        installation = TritonInstallation.find()
        installation.check_stub()
        self._check_shm_space()
        picked_ports = None in (self.options.http_port, self.options.grpc_port, self.options.metrics_port)
        for attempt in range(3):
            try:
                self._launch(installation)
                self.wait_ready(self.options.ready_timeout_s)
                return self
            except BaseException as error:
                said = isinstance(error, UserError)  # its message points at the log; an interrupt leaves nothing
                lost_race = picked_ports and attempt < 2 and said and self._lost_port_race()
                self.stop(keep_log=said and not lost_race)
                if not lost_race:
                    raise
        raise AssertionError("unreachable")

    def _launch(self, installation: TritonInstallation) -> None:
        self.ports = self._choose_ports()
        self.shm_prefix = f"inferforge_{os.getpid()}_{uuid.uuid4().hex[:8]}_"
        self.workdir = Path(tempfile.mkdtemp(prefix="inferforge-triton-"))
        backend_dir = self._backend_directory(installation)
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(
                self.command(installation, backend_dir),
                env=self.environment(installation),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() kills the stubs with it
                preexec_fn=_terminate_with_parent,
            )
        finally:
            log.close()

    def _lost_port_race(self) -> bool:
        """A free port we picked was taken by someone else before the server bound it."""
        if self.workdir is None:
            return False  # refused before launching (a port given is taken)
        try:
            return "already in use" in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise UserError(
                    f"The Triton server {exit_description(self.process.returncode)} before it was ready: "
                    f"{self._log_reason()}"
                )
            if self.is_ready():
                return
            time.sleep(0.1)
        raise UserError(
            f"The Triton server was not ready after {timeout_s:.0f} s (stopped it): {self._log_reason()}"
        )

    def is_ready(self) -> bool:
        return self._http_status("/v2/health/ready") == 200

    def is_live(self) -> bool:
        return self._http_status("/v2/health/live") == 200

    def check_health(self) -> str | None:
        """None when the server runs and is ready, else why not (the hook for a watchdog)."""
        if self.process is None:
            return "not started"
        if self.process.poll() is not None:
            return exit_description(self.process.returncode)
        if not self.is_ready():
            return "not ready"
        return None

    def stop(self, keep_log: bool = False) -> None:
        """SIGTERM the process group, SIGKILL it after the exit timeout, then remove what is ours."""
        process, self.process = self.process, None
        if process is not None:
            self._terminate_group(process)
        self._remove_shm_regions()
        if self.workdir is not None:
            if keep_log or os.environ.get("INFERFORGE_KEEP_TRITON_LOG"):
                shutil.rmtree(self.workdir / "backends", ignore_errors=True)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def leftover_shm_regions(self) -> list[Path]:
        if not self.shm_prefix or not SHM_DIR.is_dir():
            return []
        return sorted(p for p in SHM_DIR.iterdir() if p.name.startswith(self.shm_prefix))

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- internals ------------------------------------------------------------------------
    def _ports(self) -> ServerPorts:
        if self.ports is None:
            raise RuntimeError("the server has not been started")
        return self.ports

    def _choose_ports(self) -> ServerPorts:
        o = self.options
        if not address_is_local(o.host):
            raise UserError(f"'{o.host}' is not an address of this machine, so the server cannot listen on it; "
                            "use 127.0.0.1 (the default), 0.0.0.0 or one of this machine's addresses.")
        wanted = (("http", o.http_port), ("grpc", o.grpc_port), ("metrics", o.metrics_port))
        names = {"http": "HTTP", "grpc": "gRPC", "metrics": "metrics"}
        for index, (kind, given) in enumerate(wanted):
            for other, same in wanted[index + 1:]:
                if given is not None and given == same:
                    raise UserError(f"The {names[kind]} and {names[other]} ports are both {given}; give each its own "
                                    f"(--{kind}-port, --{other}-port; 0 picks a free port).")
        chosen: list[int] = []
        for kind, given in wanted:
            if given is None:
                port = free_port(o.host)
                while port in chosen or port in (p for _, p in wanted):
                    port = free_port(o.host)
            else:
                if not port_is_free(o.host, given):
                    raise UserError(f"Port {given} on {o.host} is already in use; choose another with --{kind}-port "
                                    f"({kind}_port in Python; 0 picks a free port).")
                port = given
            chosen.append(port)
        return ServerPorts(*chosen)

    def _check_shm_space(self) -> None:
        if not SHM_DIR.is_dir():
            return
        stats = os.statvfs(SHM_DIR)
        free = stats.f_bavail * stats.f_frsize
        needed = SHM_BYTES_PER_PYTHON_MODEL * max(1, self.options.python_models)
        if free < needed:
            raise UserError(
                f"/dev/shm has {free // 2**20} MB free but the Triton Python backend needs about "
                f"{needed // 2**20} MB; enlarge it (e.g. `--shm-size` for a container)."
            )

    def _backend_directory(self, installation: TritonInstallation) -> Path:
        """DIR/python/ with the backend library, its utils and the stub for this Python."""
        assert self.workdir is not None
        python_dir = self.workdir / "backends" / "python"
        python_dir.mkdir(parents=True)
        for source in installation.python_backend.iterdir():
            if source.is_file():
                (python_dir / source.name).symlink_to(source)
        (python_dir / installation.stub.name).symlink_to(installation.stub)
        if self.options.inprocess_backend is not None:
            inprocess_dir = python_dir.parent / INPROCESS_BACKEND
            inprocess_dir.mkdir()
            (inprocess_dir / f"libtriton_{INPROCESS_BACKEND}.so").symlink_to(self.options.inprocess_backend)
        return python_dir.parent

    def _http_status(self, path: str) -> int | None:
        if self.ports is None:
            return None
        conn = http.client.HTTPConnection(self.options.host, self.ports.http, timeout=2)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        except OSError:
            return None
        finally:
            conn.close()

    def _log_reason(self) -> str:
        """The most telling lines of the server log, for an error message."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "no server log"
        errors = [line for line in lines if (line.startswith("E") or line.startswith("error"))
                  and not any(harmless in line for harmless in HARMLESS_ERRORS)]
        picked = [" ".join(line.replace("\\n", " ").split())[:400] for line in (errors or lines)[-2:]]
        return " | ".join(picked) + f" (log: {self.log_path})" if picked else "the server log is empty"

    def _terminate_group(self, process: subprocess.Popen) -> None:
        # Started in a session of its own, the server leads its process group: the group id is its pid, and
        # stays the stubs' after the server itself is gone (a crash: asking getpgid of the dead server found
        # nothing, and its stubs were left running for good).
        pgid = process.pid if _group_alive(process.pid) or process.poll() is None else None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.options.exit_timeout_s + 5)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()
        if pgid is None:
            return
        # The Python stubs share the server's process group and exit once they see it gone;
        # whatever is still there after the grace period is killed.
        if not _wait_group_gone(pgid, STUB_GRACE_S):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                return
            _wait_group_gone(pgid, 10.0)

    def _remove_shm_regions(self) -> None:
        for region in self.leftover_shm_regions():
            try:
                region.unlink()
            except OSError:
                pass


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM the server if the thread that started it dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _wait_group_gone(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _group_alive(pgid: int) -> bool:
    """True while a process of the group runs (zombies waiting for a parent to reap them do not count)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
