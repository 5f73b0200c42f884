"""inferforge: make Hugging Face transformer inference fast and put it into production.

    result = inferforge.convert("sentence-transformers/all-MiniLM-L6-v2", "feature-extraction", "out/minilm")
    model = inferforge.load("out/minilm")
    model.predict(["A sentence to embed."])
"""

from inferforge.artifacts import LoadedModel, load
from inferforge.benchmark import LatencyStats, Shape
from inferforge.convert import ConvertOptions, ConvertResult, convert
from inferforge.errors import UserError
from inferforge.tasks import TaskSpec, get_task, task_names

__all__ = [
    "ConvertOptions",
    "ConvertResult",
    "LatencyStats",
    "LoadedModel",
    "Shape",
    "TaskSpec",
    "UserError",
    "convert",
    "get_task",
    "load",
    "task_names",
]
__version__ = "0.1.0"
