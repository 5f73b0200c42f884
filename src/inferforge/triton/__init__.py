"""Serving on NVIDIA Triton: model repository, embedded server, clients."""

from inferforge.triton.client import TritonTextClient
from inferforge.triton.repository import ModelRepository, RepositoryOptions, write_repository
from inferforge.triton.serve import ServedModel, serve_converted
from inferforge.triton.server import ServerOptions, TritonServer

__all__ = [
    "ModelRepository",
    "RepositoryOptions",
    "ServedModel",
    "ServerOptions",
    "TritonServer",
    "TritonTextClient",
    "serve_converted",
    "write_repository",
]
