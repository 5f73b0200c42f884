"""One call from a converted folder to a running Triton server: write the repository, start, stop."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from inferforge.triton.repository import ModelRepository, RepositoryOptions, write_repository
from inferforge.triton.server import ServerOptions, TritonServer


@dataclass(frozen=True)
class ServedModel:
    """A converted model being served: the repository written for it and its server."""

    repository: ModelRepository
    server: TritonServer

    @property
    def name(self) -> str:
        return self.repository.name


@contextmanager
def serve_converted(
    model_dir: Path | str,
    repository_options: RepositoryOptions | None = None,
    server_options: ServerOptions | None = None,
) -> Iterator[ServedModel]:
    """Serve `model_dir` (python flavour by default) on a real Triton server until the block ends.

    The repository lives in a temporary folder removed at the end, with the server's process
    group and shared-memory regions.
    """
    repository_options = repository_options or RepositoryOptions()
    server_options = server_options or ServerOptions()
    workdir = Path(tempfile.mkdtemp(prefix="inferforge-serve-"))
    try:
        repository = write_repository(model_dir, workdir / "repository", options=repository_options)
        if server_options.python_models != repository.python_models:
            server_options = replace(server_options, python_models=repository.python_models)
        with TritonServer(repository.path, server_options) as server:
            yield ServedModel(repository, server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

