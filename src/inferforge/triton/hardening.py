"""Hardened defaults for the Triton server inferforge starts (the execute() deadline inside its stubs is
`backend_models/execute_deadline.py`).

Triton 2.51 (the `nvidia-pytriton==0.7.0` wheel) predates fixes for published vulnerabilities in its
network APIs (see ../shared/notes/triton-on-cpu.md, "Failure semantics and hardening"). A text service
needs inference, health, metadata and statistics only, so `HardenedServer` adds to the base launch:

- the model-repository, shared-memory, logging and trace APIs restricted on HTTP and gRPC to requests
  carrying the header `inferforge-admin-key: <key>`; the key is random per server and shown only when
  asked for (`inferforge serve --show-admin-key`, or given with `--admin-key`);
- that key kept off tritonserver's command line, which any local user reads in /proc/<pid>/cmdline:
  Triton 2.51 takes the key only there, so the command line carries the placeholder
  `@inferforge-admin-key@`, the key goes in the environment variable INFERFORGE_ADMIN_KEY (its
  /proc/<pid>/environ is readable by the same user only), and `hide_args.c`, compiled once per user with
  the system C compiler and preloaded (LD_PRELOAD), hands main() a new argv with the key and wipes the
  variable before main() runs (see that file). Without a C compiler the key is on the command line as
  before, and `admin_key_hiding().warning` says so; after every start the server is checked to answer
  the restricted APIs with the key only;
- the same preloaded library turns Triton 2.51's crash on a classification request (`class_count`) for a
  text output (a division by the byte size of BYTES, 0: SIGFPE for the whole server) into Triton's own 400
  "unsupported type 'BYTES'" (see hide_args.c; without a C compiler the watchdog restarts the server), and
  makes the front end's request-parsing errors (malformed JSON, no `shape`, a number as text, a `classification`
  or `parameters` of the wrong type) the 400s they are rather than Triton 2.51's 500s, and says what to send when a
  body holds no JSON (empty, or not what its Content-Encoding says) instead of Triton's raw-tensor message,
  and refuses a request at once with a 503 (gRPC UNAVAILABLE) on every endpoint past `ServerOptions.max_in_flight`
  requests in flight for its model (INFERFORGE_MAX_IN_FLIGHT: admission control in front of the ensemble, whose
  own refusals Triton 2.51 sometimes leaves unanswered; RELIABILITY.md section 3), and frames the HTTP replies
  Triton 2.51 leaves open-ended: an empty HTTP/1.0 keep-alive reply (health, ready) gets its Content-Length, and
  pipelined requests are read one at a time (each was answered only when it came alone), a HEAD is answered as GET
  without the body (was a 405 with a body, RELIABILITY.md section 7), and leaves the
  restricted APIs' extensions out of the server metadata (a client without the key could not use them); it makes
  Triton's "Stub process ... is not healthy" a 503 (was 500), and drains the server on SIGUSR2 before the watchdog
  restarts it (`HardenedServer.drain`: requests in flight answered, new ones refused with 503); it adds the
  Allow header a 405 lacked, answers OPTIONS with 204 and that header (no CORS headers), writes /generate's chunked
  replies to an HTTP/1.0 client unchunked and close-delimited, and refuses with a 400 a request `timeout` sent to an
  ensemble (INFERFORGE_ENSEMBLES: Triton 2.51 ignores it there) and a `priority` past the repository's levels
  (INFERFORGE_PRIORITY_LEVELS), both read from the repository's configs (`request_checks`);
- `--model-control-mode none` (models cannot be loaded or unloaded over the network);
- SageMaker and Vertex AI endpoints off (already in the base launch);
- `--reuse-http-port` / `--reuse-grpc-port`, so that the watchdog can answer 503 on the HTTP port while
  it restarts a crashed server (SO_REUSEPORT only shares a port between processes of the same user).

The bind address stays 127.0.0.1 unless asked; `loopback_warning()` is what the CLI prints otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import ipaddress
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from inferforge.errors import UserError
from inferforge.triton.server import ServerPorts, TritonInstallation, TritonServer, _wait_group_gone

ADMIN_KEY_HEADER = "inferforge-admin-key"
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"  # gRPC clients send the key as triton-grpc-protocol-<name>
RESTRICTED_APIS = ("model-repository", "shared-memory", "logging", "trace")
# The protocol extensions of each restricted API, as the server metadata (GET /v2, gRPC ServerMetadata) names them:
# left out of that list under the preloaded library, since a client without the key gets 403 / PERMISSION_DENIED.
RESTRICTED_EXTENSIONS = {
    "model-repository": ("model_repository", "model_repository(unload_dependents)"),
    "shared-memory": ("system_shared_memory", "cuda_shared_memory"),
    "logging": ("logging",),
    "trace": ("trace",),
}
# How long the killed server's processes get to disappear before the restart goes on.
RESTART_KILL_WAIT_S = 10.0

# Keeping the key off the command line (hide_args.c holds the same three names).
KEY_PLACEHOLDER = "@inferforge-admin-key@"
KEY_VARIABLE = "INFERFORGE_ADMIN_KEY"
PRELOAD_WAS_VARIABLE = "INFERFORGE_LD_PRELOAD_WAS"
MAX_IN_FLIGHT_VARIABLE = "INFERFORGE_MAX_IN_FLIGHT"  # admission control in the same library (0 or absent: off)
HIDDEN_EXTENSIONS_VARIABLE = "INFERFORGE_HIDDEN_EXTENSIONS"  # left out of the server metadata by the same library
DRAIN_FILE_VARIABLE = "INFERFORGE_DRAIN_FILE"  # the same library creates it once drained (SIGUSR2 asks)
ENSEMBLES_VARIABLE = "INFERFORGE_ENSEMBLES"  # the same library refuses a request timeout sent to these
# The user's setting of the dynamic batcher's poll for a free model instance (hide_args.c, pthread_cond_clockwait).
BATCHER_POLL_VARIABLE = "INFERFORGE_BATCHER_POLL_US"
BATCHER_POLL_MAX_US = 500_000  # hide_args.c's resolve_slot_wait holds the same bound
PRIORITY_LEVELS_VARIABLE = "INFERFORGE_PRIORITY_LEVELS"  # ... and a priority past this many levels (0: not checked)
DRAIN_FILE_NAME = "drained"
# How long a drain may take: the library waits at most 5 s for the requests in flight, then 0.2 s for their replies.
DRAIN_WAIT_S = 6.0
HIDE_ARGS_SOURCE = Path(__file__).with_name("hide_args.c")
C_COMPILERS = ("cc", "gcc", "clang")
COMPILE_FLAGS = ("-shared", "-fPIC", "-O2", "-Wall")
# A restricted API the check after each start asks, with and without the key.
KEY_CHECK_PATH = "/v2/logging"
KEY_CHECK_TIMEOUT_S = 10.0


def new_admin_key() -> str:
    return secrets.token_urlsafe(24)


def request_checks(repository: Path) -> tuple[tuple[str, ...], int]:
    """The ensembles of a model repository (a request timeout does nothing there on Triton 2.51) and the priority
    levels every dynamically batched model of it has (0 when they differ or none has any), from its configs."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    ensembles, levels = [], set()
    for config_path in sorted(Path(repository).glob("*/config.pbtxt")):
        config = mc.ModelConfig()
        try:
            text_format.Parse(config_path.read_text(), config)
        except (OSError, text_format.ParseError):
            continue  # Triton itself says what is wrong with it
        name = config.name or config_path.parent.name
        if config.platform == "ensemble":
            ensembles.append(name)
        elif config.HasField("dynamic_batching"):
            levels.add(config.dynamic_batching.priority_levels)
    return tuple(ensembles), (levels.pop() if len(levels) == 1 else 0)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_warning(host: str) -> str | None:
    """The warning to print when the server will be reachable from other machines."""
    if is_loopback(host):
        return None
    return (
        f"Warning: binding {host} makes the Triton server reachable from other machines; Triton 2.51 has "
        "known vulnerabilities in its network APIs, so expose it only on a trusted network (the model-repository, "
        "shared-memory, logging and trace APIs stay restricted by the admin key)."
    )


class KeyHidingUnavailable(Exception):
    """Why the preload library that keeps the admin key off the command line cannot be used here."""


@dataclass(frozen=True)
class KeyHiding:
    """How the admin key reaches tritonserver: through `library` (preloaded; the command line carries the
    placeholder), or, when None, on the command line, with `warning`: the one line to print."""

    library: Path | None
    warning: str | None = None


def exposed_key_warning(reason: str) -> str:
    return (f"Warning: the Triton admin key is on tritonserver's command line, which any local user can read "
            f"(ps, /proc/<pid>/cmdline), because {reason}.")


def find_c_compiler() -> str | None:
    for name in C_COMPILERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def preload_cache_dir() -> Path:
    """Per-user: $INFERFORGE_CACHE/preload, else ~/.cache/inferforge/preload (mode 0700)."""
    root = os.environ.get("INFERFORGE_CACHE") or Path.home() / ".cache" / "inferforge"
    return Path(root).expanduser() / "preload"


def build_hide_args_library(compiler: str, folder: Path | None = None) -> Path:
    """`hide_args.c` compiled into `folder` (0700) as hide_args-<content hash>.so (0600), once; self-tested
    before an atomic rename puts it in place. Raises KeyHidingUnavailable."""
    return build_cached_library(compiler, HIDE_ARGS_SOURCE, "hide_args", ("-ldl",), KeyHidingUnavailable,
                                folder=folder, self_test=_self_test)


def build_cached_library(compiler: str, source_path: Path, stem: str, link_args: tuple[str, ...],
                         unavailable: type[Exception], *, folder: Path | None = None,
                         self_test: Callable[[Path], None] | None = None) -> Path:
    """`source_path` compiled with COMPILE_FLAGS + `link_args` into `folder` (0700, default the per-user preload
    cache) as <stem>-<hash of source, flags and machine>.so (0600), once; `self_test` runs on the new file
    before an atomic rename puts it in place. Every failure raises `unavailable` with the reason."""
    folder = folder or preload_cache_dir()
    source = source_path.read_bytes()
    flags = [*COMPILE_FLAGS, *link_args]
    digest = hashlib.sha256(b"\0".join([source, " ".join(flags).encode(),
                                        platform.machine().encode()])).hexdigest()[:16]
    target = folder / f"{stem}-{digest}.so"
    if any(char in str(target) for char in " :\t\n"):
        raise unavailable(f"its library path {target} holds a space or a colon, which LD_PRELOAD and Triton's "
                          "backend paths cannot carry (set INFERFORGE_CACHE elsewhere)")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
        if info.st_uid != os.getuid():
            raise unavailable(f"{folder} belongs to another user")
        if info.st_mode & 0o077:
            folder.chmod(0o700)
        if target.is_file() and target.stat().st_uid == os.getuid():
            return target
        handle, temporary = tempfile.mkstemp(prefix=f".{stem}-", suffix=".so", dir=folder)
        os.close(handle)
    except OSError as error:
        raise unavailable(f"its library cannot be written in {folder} ({error})") from None
    try:
        try:
            built = subprocess.run([compiler, *COMPILE_FLAGS, "-o", temporary, str(source_path), *link_args],
                                   capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise unavailable(f"{compiler} could not run ({error})") from None
        if built.returncode != 0:
            last = (built.stderr.strip().splitlines() or ["no message"])[-1]
            raise unavailable(f"{compiler} could not build {source_path.name} ({last})")
        os.chmod(temporary, 0o600)
        if self_test is not None:
            self_test(Path(temporary))
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


_SELF_TEST = """import json, os, sys
key = sys.stdin.read().encode()
print(json.dumps({"argv": sys.argv[1], "variable": %r in os.environ, "preload": "LD_PRELOAD" in os.environ,
                  "cmdline": key in open("/proc/self/cmdline", "rb").read(),
                  "environ": key in open("/proc/self/environ", "rb").read()}))
""" % KEY_VARIABLE


def _self_test(library: Path) -> None:
    """Run this interpreter under the library: argv gets the key; /proc/self/cmdline and environ show none of
    it; the variable and LD_PRELOAD are gone from the environment children inherit."""
    key = new_admin_key()
    env = {name: value for name, value in os.environ.items()
           if name not in (PRELOAD_WAS_VARIABLE, "LD_PRELOAD", BATCHER_POLL_VARIABLE)}  # the server checks that one
    env.update({KEY_VARIABLE: key, "LD_PRELOAD": str(library)})
    seen, stderr = None, ""
    try:
        ran = subprocess.run([sys.executable, "-c", _SELF_TEST, f"k={KEY_PLACEHOLDER}"], env=env, input=key,
                             capture_output=True, text=True, timeout=60)
        stderr = ran.stderr.strip()[-200:]
        seen = json.loads(ran.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as error:
        stderr = stderr or str(error)
    if seen != {"argv": f"k={key}", "variable": False, "preload": False, "cmdline": False, "environ": False}:
        raise KeyHidingUnavailable(f"its preload library failed its self-test ({seen or stderr})")


@functools.lru_cache(maxsize=1)
def admin_key_hiding() -> KeyHiding:
    """Decided once per process: the preload library, or why the key stays on the command line."""
    compiler = find_c_compiler()
    if compiler is None:
        return KeyHiding(None, exposed_key_warning(
            "no C compiler (cc, gcc or clang) was found to build the library that keeps it out"))
    try:
        return KeyHiding(build_hide_args_library(compiler))
    except KeyHidingUnavailable as error:
        return KeyHiding(None, exposed_key_warning(str(error)))


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(message, file=sys.stderr, flush=True)


def hardening_args(admin_key: str) -> tuple[str, ...]:
    restricted = f"{','.join(RESTRICTED_APIS)}:{ADMIN_KEY_HEADER}={admin_key}"
    return (
        f"--http-restricted-api={restricted}",
        f"--grpc-restricted-protocol={restricted}",
        "--model-control-mode", "none",
        "--allow-sagemaker", "false",
        "--allow-vertex-ai", "false",
        "--reuse-http-port", "true",
        "--reuse-grpc-port", "true",
    )


@dataclass
class HardenedServer(TritonServer):
    """A `TritonServer` with the restricted APIs and, for the watchdog, `restart()` on the same ports."""

    admin_key: str = field(default_factory=new_admin_key, repr=False)
    _keep_ports: bool = field(default=False, init=False, repr=False)
    _hiding: KeyHiding | None = field(default=None, init=False, repr=False)

    @property
    def key_hiding(self) -> KeyHiding:
        """Fixed at the first launch, so a restart launches the same way."""
        if self._hiding is None:
            self._hiding = admin_key_hiding()
        return self._hiding

    def command(self, installation: TritonInstallation, backend_dir) -> list[str]:
        key = KEY_PLACEHOLDER if self.key_hiding.library is not None else self.admin_key
        return [*super().command(installation, backend_dir), *hardening_args(key)]

    def environment(self, installation: TritonInstallation) -> dict[str, str]:
        env = super().environment(installation)
        env.pop(PRELOAD_WAS_VARIABLE, None)
        env.pop(KEY_VARIABLE, None)
        env.pop(MAX_IN_FLIGHT_VARIABLE, None)
        env.pop(HIDDEN_EXTENSIONS_VARIABLE, None)
        env.pop(DRAIN_FILE_VARIABLE, None)
        env.pop(ENSEMBLES_VARIABLE, None)
        env.pop(PRIORITY_LEVELS_VARIABLE, None)
        library = self.key_hiding.library
        poll = env.get(BATCHER_POLL_VARIABLE, "")  # as the library reads it: ASCII digits only, "" for unset
        if library is not None and poll and not (re.fullmatch("[0-9]+", poll) and int(poll) <= BATCHER_POLL_MAX_US):
            raise UserError(f"{BATCHER_POLL_VARIABLE}={poll!r} is not a whole number of microseconds from 0 "
                            f"(Triton's own 500 ms wait for a free model instance) to {BATCHER_POLL_MAX_US}.")
        if library is not None:
            ensembles, levels = request_checks(self.repository)
            if ensembles:
                env[ENSEMBLES_VARIABLE] = ",".join(ensembles)
            env[PRIORITY_LEVELS_VARIABLE] = str(levels)
            if self.workdir is not None:
                env[DRAIN_FILE_VARIABLE] = str(self.workdir / DRAIN_FILE_NAME)
            env[KEY_VARIABLE] = self.admin_key
            env[MAX_IN_FLIGHT_VARIABLE] = str(self.options.max_in_flight or 0)
            env[HIDDEN_EXTENSIONS_VARIABLE] = ",".join(name for api in RESTRICTED_APIS
                                                       for name in RESTRICTED_EXTENSIONS[api])
            if "LD_PRELOAD" in env:  # given back by the library before main(), so the stubs get the user's only
                env[PRELOAD_WAS_VARIABLE] = env["LD_PRELOAD"]
                env["LD_PRELOAD"] = f"{library}:{env['LD_PRELOAD']}"
            else:
                env["LD_PRELOAD"] = str(library)
        return env

    def start(self) -> "HardenedServer":
        if self.key_hiding.warning:
            _warn_once(self.key_hiding.warning)
        super().start()
        return self

    def wait_ready(self, timeout_s: float) -> None:
        super().wait_ready(timeout_s)
        self.check_admin_key()

    def check_admin_key(self) -> None:
        """The restricted APIs answer 403 without the key and 200 with it, or the server must not run
        (a key the preload library did not put in place would be the placeholder everyone knows)."""
        wanted = {"without the key": 403, "with the key": 200}
        seen: dict[str, int | None] = {}
        deadline = time.monotonic() + KEY_CHECK_TIMEOUT_S
        while time.monotonic() < deadline:
            for what, headers in (("without the key", {}), ("with the key", self.admin_headers)):
                if seen.get(what) in (None, 503):  # 503: the watchdog's answerer shares the port while restarting
                    seen[what] = self._status(KEY_CHECK_PATH, headers)
            if all(seen.get(what) not in (None, 503) for what in wanted):
                break
            time.sleep(0.05)
        if seen != wanted:
            raise UserError(
                f"The Triton server did not enforce the admin key on {KEY_CHECK_PATH} (HTTP status "
                + ", ".join(f"{what}: {seen.get(what)}" for what in wanted)
                + (f"; preload library {self.key_hiding.library}" if self.key_hiding.library else "")
                + "); stopped it."
            )

    def _status(self, path: str, headers: dict[str, str]) -> int | None:
        assert self.ports is not None
        connection = http.client.HTTPConnection(self.options.host, self.ports.http, timeout=2)
        try:
            connection.request("GET", path, headers=headers)
            reply = connection.getresponse()
            reply.read()
            return reply.status
        except OSError:
            return None
        finally:
            connection.close()

    @property
    def admin_headers(self) -> dict[str, str]:
        """HTTP headers that open the restricted APIs."""
        return {ADMIN_KEY_HEADER: self.admin_key}

    @property
    def grpc_admin_headers(self) -> dict[str, str]:
        """gRPC metadata that opens the restricted protocols (Triton prefixes the key's name)."""
        return {GRPC_HEADER_PREFIX + ADMIN_KEY_HEADER: self.admin_key}

    def drain(self, timeout_s: float = DRAIN_WAIT_S, shutdown: bool = False) -> bool:
        """Have the running server answer the requests it has in flight and refuse new ones with 503, before a restart
        kills it (the preloaded library does it on SIGUSR2; see hide_args.c), or with `shutdown` before it is stopped
        (SIGUSR1: the refusal says the server is shutting down). Whether it said it was done within `timeout_s`; False
        at once without the library or a live server."""
        process = self.process
        if self.key_hiding.library is None or self.workdir is None or process is None or process.poll() is not None:
            return False
        drained = self.workdir / DRAIN_FILE_NAME
        drained.unlink(missing_ok=True)
        os.kill(process.pid, signal.SIGUSR1 if shutdown else signal.SIGUSR2)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            if drained.exists():
                return True
            time.sleep(0.02)
        return False

    def stop(self, keep_log: bool = False) -> None:
        """Drain first (requests in flight answered, new ones on connections kept alive refused with 503 and those
        connections closed), then stop. Triton alone, on SIGTERM, kept answering the new requests of every connection
        kept alive until its exit timeout, then cut them: under steady load a stop took the whole timeout."""
        if self.process is not None and self.process.poll() is None:
            self.drain(min(DRAIN_WAIT_S, self.options.exit_timeout_s + 1), shutdown=True)
        super().stop(keep_log)

    def restart(self) -> None:
        """Kill the (broken) server's process group, clean up, and start again on the same ports."""
        process = self.process
        if process is not None:  # started with its own session: its process group id is its pid
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the stubs too, even when the server is already gone
            except ProcessLookupError:
                pass
            process.wait()
            _wait_group_gone(process.pid, RESTART_KILL_WAIT_S)
        self.stop()
        self._keep_ports = True
        try:
            self.start()
        finally:
            self._keep_ports = False

    def _choose_ports(self) -> ServerPorts:
        # On restart the HTTP port is held by the watchdog's 503 answerer (SO_REUSEPORT): keep the ports.
        if self._keep_ports and self.ports is not None:
            return self.ports
        return super()._choose_ports()
