"""One call from a converted folder to a running Triton server: write the repository, start, stop."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from inferforge.triton.repository import ModelRepository, RepositoryOptions, admission_limit, write_repository
from inferforge.errors import UserError
from inferforge.triton.hardening import HardenedServer, new_admin_key
from inferforge.triton.inprocess import InProcessUnavailable, build_backend
from inferforge.triton.server import ServerOptions, TritonServer
from inferforge.tasks import get_task
from inferforge.triton.raw_requests import text_request
from inferforge.triton.watchdog import Watchdog, health_probe

# A model counts as hung this long after its stubs' own execute() deadline would have ended a hung call.
STALL_MARGIN_S = 10.0
PROBE_TEXT = "inferforge watchdog probe"


def inprocess_backend() -> Path:
    """The in-process backend built for this machine, or a UserError saying why it cannot be."""
    try:
        return build_backend()
    except InProcessUnavailable as error:
        raise UserError(f"--in-process needs inferforge's Triton backend built here, but {error}; serve without "
                        "--in-process (Triton's Python backend).") from None


@dataclass(frozen=True)
class ServedModel:
    """A converted model being served: the repository written for it and its server."""

    repository: ModelRepository
    server: TritonServer
    watchdog: Watchdog | None = None  # restarts the server when it or a Python stub dies

    @property
    def name(self) -> str:
        return self.repository.name


@contextmanager
def serve_converted(
    model_dir: Path | str,
    repository_options: RepositoryOptions | None = None,
    server_options: ServerOptions | None = None,
    *,
    admin_key: str | None = None,
    supervise: bool = True,
    on_event: Callable[[str], None] | None = None,
) -> Iterator[ServedModel]:
    """Serve `model_dir` (python flavour by default) on a real Triton server until the block ends.

    The repository lives in a temporary folder removed at the end, with the server's process
    group and shared-memory regions.
    The server is hardened (`inferforge.triton.hardening`: restricted APIs behind `admin_key`, random
    when None) and, with `supervise`, restarted by a watchdog when it or a worker dies (`on_event`
    gets one line per event).
    """
    repository_options = repository_options or RepositoryOptions()
    server_options = server_options or ServerOptions()
    workdir = Path(tempfile.mkdtemp(prefix="inferforge-serve-"))
    try:
        repository = write_repository(model_dir, workdir / "repository", options=repository_options)
        if server_options.python_models != repository.python_models:
            server_options = replace(server_options, python_models=repository.python_models)
        if repository_options.in_process and server_options.inprocess_backend is None:
            server_options = replace(server_options, inprocess_backend=inprocess_backend())
        if server_options.max_in_flight is None:  # refused at once past this, before the ensemble (RELIABILITY.md 3)
            server_options = replace(server_options, max_in_flight=admission_limit(repository_options))
        with HardenedServer(repository.path, server_options, admin_key=admin_key or new_admin_key()) as server:
            if not supervise:
                yield ServedModel(repository, server)
                return
            stall_timeout_s = repository_options.execute_timeout_s + STALL_MARGIN_S  # the stubs' deadline first
            pairs = [PROBE_TEXT] if get_task(repository.task).needs_pairs else None
            probe = health_probe(server, repository.name, text_request([PROBE_TEXT], pairs))
            in_process = repository.model_names[:-1] if repository.in_process else ()  # (the ensemble last)
            with Watchdog(server, on_event=on_event or (lambda message: None), stall_timeout_s=stall_timeout_s,
                          probe=probe, watched_models=in_process) as watchdog:
                yield ServedModel(repository, server, watchdog)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

