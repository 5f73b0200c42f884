"""Hardened defaults for the Triton server inferforge starts, and the execute() deadline inside its stubs.

Triton 2.51 (the `nvidia-pytriton==0.7.0` wheel) predates fixes for published vulnerabilities in its
network APIs (see ../shared/notes/triton-on-cpu.md, "Failure semantics and hardening"). A text service
needs inference, health, metadata and statistics only, so `HardenedServer` adds to the base launch:

- the model-repository, shared-memory, logging and trace APIs restricted on HTTP and gRPC to requests
  carrying the header `inferforge-admin-key: <key>`; the key is random per server and shown only when
  asked for (`inferforge serve --show-admin-key`, or given with `--admin-key`);
- `--model-control-mode none` (models cannot be loaded or unloaded over the network);
- SageMaker and Vertex AI endpoints off (already in the base launch);
- `--reuse-http-port` / `--reuse-grpc-port`, so that the watchdog can answer 503 on the HTTP port while
  it restarts a crashed server (SO_REUSEPORT only shares a port between processes of the same user).

The bind address stays 127.0.0.1 unless asked; `loopback_warning()` is what the CLI prints otherwise.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace

from inferforge.triton.server import ServerPorts, TritonInstallation, TritonServer

ADMIN_KEY_HEADER = "inferforge-admin-key"
RESTRICTED_APIS = ("model-repository", "shared-memory", "logging", "trace")
# How long the old server gets to exit when the watchdog replaces it (it is broken anyway).
RESTART_EXIT_TIMEOUT_S = 2


def new_admin_key() -> str:
    return secrets.token_urlsafe(24)


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

    admin_key: str = field(default_factory=new_admin_key)
    _keep_ports: bool = field(default=False, init=False, repr=False)

    def command(self, installation: TritonInstallation, backend_dir) -> list[str]:
        return [*super().command(installation, backend_dir), *hardening_args(self.admin_key)]

    @property
    def admin_headers(self) -> dict[str, str]:
        return {ADMIN_KEY_HEADER: self.admin_key}

    def restart(self) -> None:
        """Stop (quickly: it is broken) and start again on the same ports and repository."""
        options = self.options
        self.options = replace(options, exit_timeout_s=min(options.exit_timeout_s, RESTART_EXIT_TIMEOUT_S))
        try:
            self.stop()
        finally:
            self.options = options
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


# ----- inside a Python-backend stub ----------------------------------------------------------------
class ExecuteDeadline:
    """Ends the stub process when one `execute()` runs longer than `timeout_s`.

    Triton has no watchdog on `execute()`: a call that hangs blocks its model instance forever. This
    daemon thread kills its own stub instead; the serving watchdog sees the stub gone and restarts the
    server, and the requests of the hung batch get an error instead of waiting forever.
    """

    def __init__(self, timeout_s: float, model_name: str) -> None:
        self.timeout_s = timeout_s
        self.model_name = model_name
        self._started: float | None = None
        self._thread = threading.Thread(target=self._watch, name="inferforge-execute-deadline", daemon=True)
        self._thread.start()

    def __enter__(self) -> "ExecuteDeadline":
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self._started = None

    def _watch(self) -> None:
        period = min(1.0, self.timeout_s / 4)
        while True:
            time.sleep(period)
            started = self._started
            if started is not None and time.monotonic() - started > self.timeout_s:
                print(f"inferforge: execute() of model '{self.model_name}' ran over {self.timeout_s:g} s; "
                      "ending this stub so that the server is restarted", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)


def bounded_execute(model_class):
    """Class decorator for a `TritonPythonModel`: `execute()` bounded by the config parameter
    `execute_timeout_s` (no parameter: unbounded, as in Triton)."""
    initialize, execute = model_class.initialize, model_class.execute

    @functools.wraps(initialize)
    def guarded_initialize(self, args):
        config = json.loads(args["model_config"])
        value = config.get("parameters", {}).get("execute_timeout_s", {}).get("string_value", "")
        self._execute_deadline = ExecuteDeadline(float(value), config.get("name", "?")) if value else None
        return initialize(self, args)

    @functools.wraps(execute)
    def guarded_execute(self, requests):
        deadline = getattr(self, "_execute_deadline", None)
        if deadline is None:
            return execute(self, requests)
        with deadline:
            return execute(self, requests)

    model_class.initialize, model_class.execute = guarded_initialize, guarded_execute
    return model_class
