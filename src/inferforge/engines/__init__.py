"""Runtimes behind one protocol: `run(dict of numpy arrays) -> dict of numpy arrays`."""

from inferforge.engines.base import Engine

__all__ = ["Engine"]
