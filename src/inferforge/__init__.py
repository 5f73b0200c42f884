"""inferforge: make Hugging Face transformer inference fast and put it into production.

    result = inferforge.convert("sentence-transformers/all-MiniLM-L6-v2", "feature-extraction", "out/minilm")
    model = inferforge.load("out/minilm")
    model.predict(["A sentence to embed."])

Names are imported on first use (PEP 562): `import inferforge` stays cheap, which matters inside every
Triton Python-backend process (no torch unless a PyTorch variant is used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "ConvertOptions": "inferforge.pipeline",
    "ConvertResult": "inferforge.pipeline",
    "convert": "inferforge.pipeline",
    "LatencyStats": "inferforge.benchmark",
    "Shape": "inferforge.benchmark",
    "LoadedModel": "inferforge.artifacts",
    "load": "inferforge.artifacts",
    "UserError": "inferforge.errors",
    "TaskSpec": "inferforge.tasks",
    "get_task": "inferforge.tasks",
    "task_names": "inferforge.tasks",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"

if TYPE_CHECKING:
    from inferforge.artifacts import LoadedModel, load
    from inferforge.benchmark import LatencyStats, Shape
    from inferforge.pipeline import ConvertOptions, ConvertResult, convert
    from inferforge.errors import UserError
    from inferforge.tasks import TaskSpec, get_task, task_names


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'inferforge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
