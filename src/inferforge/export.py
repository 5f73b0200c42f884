"""PyTorch to ONNX: one wrapper per task so the graph outputs exactly the task's tensors."""

from __future__ import annotations

import inspect
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import onnx
import torch

from inferforge.errors import UserError
from inferforge.source import Pooling, SourceModel
from inferforge.tasks import TaskSpec

OPSET = 17
MAX_OPSET = 20  # the TorchScript exporter's newest; onnxruntime and OpenVINO read it
TWO_GB = 2 * 1024**3
EXTERNAL_DATA_SUFFIX = ".data"


class ExportWrapper(torch.nn.Module):
    """Positional inputs in `input_names` order; returns the task's outputs as a tuple.

    For feature-extraction the sentence-transformers pooling and the modules after it (Dense, LayerNorm,
    Normalize) are part of the graph, so every runtime and the server return finished sentence embeddings.
    """

    def __init__(self, model: torch.nn.Module, task: TaskSpec, input_names: tuple[str, ...], pooling: Pooling | None):
        super().__init__()
        self.model = model
        self.task_name = task.name
        self.input_names = tuple(input_names)
        self.pooling = pooling or Pooling()
        self.head = self.pooling.head() if task.name == "feature-extraction" else None
        # Pooling needs the attention mask even for a model that does not take one.
        params = inspect.signature(model.forward).parameters
        kwargs_only = "input_ids" not in params and any(p.kind is p.VAR_KEYWORD for p in params.values())
        self.model_input_names = tuple(n for n in self.input_names if kwargs_only or n in params)

    def forward(self, *inputs: torch.Tensor):
        kwargs = dict(zip(self.input_names, inputs))
        out = self.model(**{n: kwargs[n] for n in self.model_input_names}, return_dict=True)
        if self.task_name == "question-answering":
            return out.start_logits, out.end_logits
        if self.task_name != "feature-extraction":
            return (out.logits,)
        return (self.head(out.last_hidden_state, kwargs["attention_mask"]),)


def export_wrapper(source: SourceModel, task: TaskSpec) -> ExportWrapper:
    return ExportWrapper(source.model, task, source.input_names, source.pooling).eval()


def dummy_inputs(input_names: tuple[str, ...], batch: int = 2, sequence: int = 8,
                 vocab_size: int | None = None) -> tuple[torch.Tensor, ...]:
    high = min(100, vocab_size) if vocab_size else 100
    ids = torch.randint(min(5, high - 1), high, (batch, sequence), dtype=torch.int64)
    values = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    return tuple(values[n] for n in input_names)


def _unsupported_operator(error: Exception) -> str | None:
    match = re.search(r"operator '?([\w:.]+)'?", str(error))
    return match.group(1) if match else None


@contextmanager
def eager_attention(model: torch.nn.Module):
    """Export the attention as its plain ops (MatMul, Add mask, Softmax, MatMul) rather than as traced
    `scaled_dot_product_attention`: the runtimes recognise that pattern and fuse it, and the SDPA trace
    adds IsNaN/Where guards they do not. Measured on all-MiniLM-L6-v2, same weights, interleaved, 2
    threads (bench/experiments/FINDINGS.md): OpenVINO bf16 1.07x/1.10x/1.12x faster at 1x16/1x128/32x128,
    onnxruntime fp32 1.06x/1.14x faster at 1x128/32x128. The PyTorch reference keeps its own attention."""
    previous = getattr(model.config, "_attn_implementation", None)
    switched = False
    if previous not in (None, "eager") and hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
            switched = True
        except (ValueError, AttributeError, NotImplementedError):  # a model that only has its own attention
            switched = False
    try:
        yield
    finally:
        if switched:
            model.set_attn_implementation(previous)


def _torch_export(wrapper: ExportWrapper, source: SourceModel, task: TaskSpec, path: Path, opset: int) -> None:
    names = source.input_names
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes.update({n: task.output_axes(n) for n in task.output_names})
    vocab = getattr(source.config, "vocab_size", None)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), eager_attention(source.model):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            dummy_inputs(names, vocab_size=vocab),
            str(path),
            input_names=list(names),
            output_names=list(task.output_names),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def export_onnx(source: SourceModel, task: TaskSpec, path: Path) -> Path:
    """Export with dynamic batch and sequence axes; weights over 2 GB go to external data.

    The graph uses opset OPSET; an operator that only a newer opset expresses gets one more try at
    MAX_OPSET before the architecture is declared unexportable, naming the operator."""
    wrapper = export_wrapper(source, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    opset = OPSET
    while True:
        try:
            _torch_export(wrapper, source, task, path, opset)
            break
        except Exception as error:  # noqa: BLE001 - any exporter failure is the architecture's, said in one sentence
            op = _unsupported_operator(error)
            if op and opset < MAX_OPSET:
                opset = MAX_OPSET
                continue
            arch = type(source.model).__name__
            detail = f"operator {op} is not supported at ONNX opset {opset}" if op else _first_line(error)
            raise UserError(f"{arch} cannot be exported to ONNX: {detail}.") from None
    resave_onnx(path)
    return path


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__).rstrip(".")[:300]


def resave_onnx(path: Path, external_threshold: int = TWO_GB) -> None:
    """Rewrite the file cleanly: stale value_info dropped (it breaks quantization), external data when large."""
    model = onnx.load(str(path), load_external_data=True)
    del model.graph.value_info[:]
    size = sum(t.ByteSize() for t in model.graph.initializer)
    for stale in path.parent.glob(path.name + "*"):
        if stale != path:
            stale.unlink()
    if size > external_threshold:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + EXTERNAL_DATA_SUFFIX, size_threshold=1024)
    else:
        onnx.save_model(model, str(path))


def check_external_data(path: Path) -> None:
    """Refuse ONNX files whose external data is absolute, climbs with '..' or resolves outside their folder."""
    model = onnx.load(str(path), load_external_data=False)
    folder = path.parent.resolve()
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if Path(location).is_absolute() or ".." in Path(location).parts or not target.is_relative_to(folder):
            raise UserError(
                f"{path.name} refers to external data '{location}' outside its folder; refusing to load it."
            )
