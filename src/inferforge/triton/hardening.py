"""Hardened defaults for the Triton server inferforge starts (the execute() deadline inside its stubs is
`backend_models/execute_deadline.py`).

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

import ipaddress
import os
import secrets
import signal
from dataclasses import dataclass, field

from inferforge.triton.server import ServerPorts, TritonInstallation, TritonServer, _wait_group_gone

ADMIN_KEY_HEADER = "inferforge-admin-key"
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"  # gRPC clients send the key as triton-grpc-protocol-<name>
RESTRICTED_APIS = ("model-repository", "shared-memory", "logging", "trace")
# How long the killed server's processes get to disappear before the restart goes on.
RESTART_KILL_WAIT_S = 10.0


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
        """HTTP headers that open the restricted APIs."""
        return {ADMIN_KEY_HEADER: self.admin_key}

    @property
    def grpc_admin_headers(self) -> dict[str, str]:
        """gRPC metadata that opens the restricted protocols (Triton prefixes the key's name)."""
        return {GRPC_HEADER_PREFIX + ADMIN_KEY_HEADER: self.admin_key}

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
