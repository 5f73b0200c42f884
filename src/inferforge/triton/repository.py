"""Write a Triton model repository for a converted model: tokenizer, model, post-processing, ensemble.

Every `config.pbtxt` is built from Triton's own schema (`tritonclient.grpc.model_config_pb2`) and
printed with `google.protobuf.text_format`. Names, dtypes and shapes come from the converted
model itself (its manifest, its tokenizer and one real run of the selected variant), never typed
twice. Dynamic batching is on everywhere (`max_batch_size` > 0, a batch dimension on every tensor).

    REPO/<name>_tokenize     Python backend, HF `tokenizers` only: text [+ text_pair] -> int64 arrays
    REPO/<name>_model        flavour "python": the selected variant through `inferforge.load`, which
                             also writes the answer (one Python hop less per request)
                             flavour "onnxruntime": `platform: "onnxruntime_onnx"` for a Triton container
    REPO/<name>_postprocess  onnxruntime flavour only: raw outputs -> the task's answer (inferforge.tasks)
    REPO/<name>              the ensemble: text in, `answer_json` (+ typed tensors) out
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from inferforge.artifacts import Manifest
from inferforge.errors import UserError
from inferforge.triton.answers import ANSWER_OUTPUT, SCORES_OUTPUT, TOKEN_DETAILS, WINDOW_SAMPLE
from inferforge.triton.inprocess import BACKEND_NAME as INPROCESS_BACKEND

BACKEND_MODELS = Path(__file__).parent / "backend_models"
# Imported by every Python-backend model.py, copied beside it (standard library, numpy and tokenizers only).
BACKEND_HELPERS = (BACKEND_MODELS / "execute_deadline.py", BACKEND_MODELS / "text_checks.py",
                   Path(__file__).parent.parent / "token_windows.py")
FLAVOURS = ("python", "onnxruntime")
INSTANCE_KINDS = ("KIND_CPU", "KIND_GPU", "KIND_AUTO")
ORT_ACCELERATORS = ("none", "openvino", "tensorrt")
TEXT_INPUT, PAIR_INPUT = "text", "text_pair"
# A client's `priority` (tritonclient's infer(priority=...)): Triton passes an ensemble request's priority on to its
# steps, whose dynamic batchers serve level 1 first; 0 (or none) is the default level, a level past these is refused by
# `inferforge serve` (hide_args.c) and taken as the default by a Triton without it.
PRIORITY_LEVELS, DEFAULT_PRIORITY = 3, 2
# Triton's classification extension (`class_count` on a requested output) reads each class's name from this file beside
# the config of the model answering it: written for the `scores` (and raw `logits`) of a classifier.
LABEL_FILE = "labels.txt"
SAMPLE_TEXT, SAMPLE_PAIR = "What is served here?", "A converted transformer model is served here."

_NUMPY_TO_TRITON = {
    np.dtype(np.float32): mc.TYPE_FP32,
    np.dtype(np.float16): mc.TYPE_FP16,
    np.dtype(np.float64): mc.TYPE_FP64,
    np.dtype(np.int64): mc.TYPE_INT64,
    np.dtype(np.int32): mc.TYPE_INT32,
}


@dataclass(frozen=True)
class RepositoryOptions:
    """What to write. `max_batch_size` and `queue_delay_us` drive Triton's dynamic batcher."""

    flavour: str = "python"
    name: str | None = None
    variant: str | None = None  # None: the variant the conversion selected
    max_batch_size: int = 32
    queue_delay_us: int = 0
    instance_count: int = 1
    instance_kind: str = "KIND_CPU"
    threads: int | None = None  # engine threads per model instance (None: the engine's default)
    # python flavour: the ensemble sends text straight to <name>_model, which tokenizes with the same
    # tokenizer.json (one Python hop per request instead of two); <name>_tokenize stays for clients.
    tokenize_in_model: bool = False
    # Python-backend models run by inferforge's in-process backend (inprocess_backend.c) inside tritonserver's own
    # process, not in a stub process each: for the embedded server only (the backend is built for this machine's
    # Python by `inferforge serve --in-process`).
    in_process: bool = False
    ort_accelerator: str = "none"  # onnxruntime flavour: "openvino" on CPU, "tensorrt" on GPU
    tensorrt_precision: str = "FP16"
    tensorrt_workspace_bytes: int = 1 << 30
    # Overload and hang bounds (see RELIABILITY.md section 3): a model admits `admission_limit()` requests in flight
    # (`max_queue_size` waiting plus a full batch per instance running); `serve` refuses more at once with a 503 before
    # they enter the ensemble (the preloaded library, hide_args.c), and the ensemble's later step(s) refuse past the same
    # count (which then never fires; without the library it is the bound). The first step's queue cannot refuse, and
    # no ensemble step has a queue timeout that fires: Triton 2.51 leaves such refusals unanswered. `queue_timeout_us`
    # applies to a model outside the ensemble only (<name>_tokenize with tokenize_in_model); an execute() running
    # longer than `execute_timeout_s` ends its Python stub, which the serving watchdog then restarts.
    max_queue_size: int = 128
    queue_timeout_us: int = 10_000_000
    execute_timeout_s: float = 60.0
    max_text_chars: int = 100_000  # longer texts are refused (tokenizing 1 MB takes seconds)

    def __post_init__(self) -> None:
        if self.flavour not in FLAVOURS:
            raise UserError(f"Unknown flavour '{self.flavour}'; choose one of: {', '.join(FLAVOURS)}.")
        if self.max_batch_size < 1:
            raise UserError(f"--max-batch-size (max_batch_size) must be at least 1 (got {self.max_batch_size}; "
                            "0 would turn dynamic batching off).")
        if self.queue_delay_us < 0:
            raise UserError(f"--queue-delay-us (queue_delay_us) cannot be negative (got {self.queue_delay_us}).")
        if self.instance_count < 1:
            raise UserError(f"--instances (instance_count) must be at least 1 (got {self.instance_count}).")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be at least 1 (got {self.threads}); leave it out to use all cores.")
        for flag, field_name, value in (("--max-queue-size", "max_queue_size", self.max_queue_size),
                                        ("--queue-timeout-ms", "queue_timeout_us", self.queue_timeout_us),
                                        ("--execute-timeout", "execute_timeout_s", self.execute_timeout_s),
                                        ("--max-text-chars", "max_text_chars", self.max_text_chars)):
            if not value > 0:
                raise UserError(f"{flag} ({field_name}) must be more than 0 (got {value:g}).")
        if self.instance_kind not in INSTANCE_KINDS:
            raise UserError(f"Unknown instance kind '{self.instance_kind}'; choose one of: {', '.join(INSTANCE_KINDS)}.")
        if self.ort_accelerator not in ORT_ACCELERATORS:
            raise UserError(
                f"Unknown ONNX Runtime accelerator '{self.ort_accelerator}'; choose one of: {', '.join(ORT_ACCELERATORS)}."
            )
        if self.ort_accelerator != "none" and self.flavour != "onnxruntime":
            raise UserError("ONNX Runtime accelerators apply to the onnxruntime flavour only; add --flavour onnxruntime.")
        if self.in_process and self.flavour != "python":
            raise UserError("The in-process backend runs the python flavour's models; leave out --flavour onnxruntime.")
        if self.tokenize_in_model and self.flavour != "python":
            raise UserError("Tokenizing inside the model needs the python flavour; the onnxruntime model takes token arrays.")
        if self.ort_accelerator == "tensorrt" and self.instance_kind == "KIND_CPU":
            raise UserError("The TensorRT accelerator runs on a GPU; use instance kind KIND_GPU with it.")
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise UserError(f"Model name '{self.name}' is not usable; use letters, digits, '_', '-' and '.'.")


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a model config, without the batch dimension."""

    name: str
    data_type: int  # model_config_pb2.DataType
    dims: tuple[int, ...]
    optional: bool = False
    ragged: bool = False
    label_file: str = ""  # outputs: the file naming each class, for the classification extension

    def to_input(self) -> mc.ModelInput:
        return mc.ModelInput(
            name=self.name, data_type=self.data_type, dims=list(self.dims),
            optional=self.optional, allow_ragged_batch=self.ragged,
        )

    def to_output(self) -> mc.ModelOutput:
        return mc.ModelOutput(name=self.name, data_type=self.data_type, dims=list(self.dims),
                              label_filename=self.label_file)


@dataclass(frozen=True)
class ModelRepository:
    """A written repository and the names a client needs."""

    path: Path
    name: str  # the ensemble: send text here
    task: str
    flavour: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    max_batch_size: int
    model_names: tuple[str, ...]  # the ensemble last
    in_process: bool = False  # its Python models run inside tritonserver (RepositoryOptions.in_process)

    @property
    def python_models(self) -> int:
        """Models run by Triton's Python backend (each maps its own shared-memory region)."""
        return 0 if self.in_process else 2


@dataclass
class _ConvertedModel:
    """What the repository needs to know about a converted model directory, read from it."""

    directory: Path
    manifest: Manifest
    variant: str
    task: object  # TaskSpec
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    max_length: int
    pad_id: int
    cls_id: int
    text_prefix: str
    labels: list[str] | None
    class_names: list[str] | None = None  # a classifier's class names, in output order (LABEL_FILE)
    model_outputs: list[TensorSpec] = field(default_factory=list)
    answer_outputs: list[TensorSpec] = field(default_factory=list)

    @property
    def per_token_outputs(self) -> list[str]:
        return [name for name in self.output_names if 1 in self.task.output_axes(name)]

    def variant_files(self) -> list[tuple[Path, Path]]:
        """(source, path relative to the variant folder) for each file of the variant."""
        entry = self.manifest.variants[self.variant]
        variant_dir = self.directory / "variants" / self.variant
        pairs = []
        for name in entry.get("files", []):
            source = self.directory / name
            if not source.exists():
                source = variant_dir / name
            if not source.exists():
                raise UserError(f"{self.directory} lacks {name} of variant '{self.variant}'; convert the model again.")
            try:
                relative = source.relative_to(variant_dir)
            except ValueError:
                relative = Path(source.name)
            pairs.append((source, relative))
        return pairs


def write_repository(model_dir: Path | str, output: Path | str, *, overwrite: bool = False, **options) -> ModelRepository:
    """Write the repository for the converted model in `model_dir` to `output`.

    Keyword options are the fields of `RepositoryOptions`. Written to a temporary folder beside
    `output` and renamed at the end: a failure leaves nothing half-written.
    """
    opts = options.pop("options", None) or RepositoryOptions(**options)
    model_dir, output = Path(model_dir), Path(output)
    if output.exists() and not output.is_dir():
        raise UserError(f"{output} is a file; give the path of a folder to create.")
    if output.resolve() == model_dir.resolve() or output.resolve() in model_dir.resolve().parents:
        raise UserError(f"{output} is the converted model's folder (or holds it); give another output folder.")
    if output.exists() and not overwrite and any(output.iterdir()):
        raise UserError(f"{output} already exists; remove it, choose another output folder or pass --overwrite "
                        "(overwrite=True) to replace it.")
    # --overwrite replaces a Triton model repository (a folder per model, each with its config.pbtxt), never a
    # folder of other files: rmtree would delete them.
    if output.exists() and any(not (entry / "config.pbtxt").is_file() for entry in output.iterdir()):
        raise UserError(f"{output} already exists and is not a Triton model repository (a folder per model, each "
                        "with its config.pbtxt), so --overwrite does not replace it: it may hold your files; remove "
                        "it yourself or choose another output folder.")
    converted = _read_converted(model_dir, opts)
    name = opts.name or _default_name(model_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        _write_tokenize(staging, name, converted, opts)
        _write_model(staging, name, converted, opts)
        if opts.flavour == "onnxruntime":
            _write_postprocess(staging, name, converted, opts)
        _write_ensemble(staging, name, converted, opts)
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    inputs = [TEXT_INPUT] + ([PAIR_INPUT] if converted.task.supports_pairs else [])
    return ModelRepository(
        path=output, name=name, task=converted.task.name, flavour=opts.flavour, inputs=tuple(inputs),
        outputs=(ANSWER_OUTPUT, *(t.name for t in converted.answer_outputs)), max_batch_size=opts.max_batch_size,
        model_names=(f"{name}_tokenize", f"{name}_model",
                     *([f"{name}_postprocess"] if opts.flavour == "onnxruntime" else []), name),
        in_process=opts.in_process,
    )


def render_config(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


# ----- reading the converted model ------------------------------------------------------------
def _read_converted(model_dir: Path, opts: RepositoryOptions) -> _ConvertedModel:
    from inferforge.artifacts import load

    loaded = load(model_dir, variant=opts.variant, threads=1)  # checks the folder, the variant and its files
    manifest, variant, task = loaded.manifest, loaded.variant_name, loaded.task
    encoder = loaded.encoder
    pairs = [SAMPLE_PAIR] if task.supports_pairs and task.needs_pairs else None
    encoded = encoder.encode([SAMPLE_TEXT], pairs)
    raw = loaded.run(encoded.arrays)
    answer = loaded.predict([SAMPLE_TEXT], pairs)[0]
    output_names = tuple(manifest.output_names)
    converted = _ConvertedModel(
        directory=model_dir, manifest=manifest, variant=variant, task=task,
        input_names=tuple(encoder.input_names), output_names=output_names,
        max_length=int(encoder.max_length), pad_id=int(encoder.pad_id), cls_id=int(encoder.cls_id),
        text_prefix=encoder.prefix,
        labels=manifest.labels,
    )
    classes = _class_count(task, raw)
    if classes:
        converted.class_names = [manifest.labels[i] if manifest.labels and i < len(manifest.labels) else f"LABEL_{i}"
                                 for i in range(classes)]
    for out_name in output_names:
        array = np.asarray(raw[out_name])
        if array.dtype not in _NUMPY_TO_TRITON:
            raise UserError(f"Output '{out_name}' has dtype {array.dtype}, which the Triton repository cannot carry.")
        axes = task.output_axes(out_name)
        dims = tuple(-1 if axis in axes else array.shape[axis] for axis in range(1, array.ndim))
        converted.model_outputs.append(TensorSpec(out_name, _NUMPY_TO_TRITON[array.dtype], dims, ragged=True,
                                                  label_file=LABEL_FILE if classes and out_name == "logits" else ""))
    converted.answer_outputs = _answer_tensors(answer)
    if classes:  # every class's score (what `score` is the largest of), named for class_count
        converted.answer_outputs.append(TensorSpec(SCORES_OUTPUT, mc.TYPE_FP32, (classes,), label_file=LABEL_FILE))
    return converted


def _class_count(task, raw: dict) -> int:
    """The classes of a text classifier with two or more (one score per text and class), else 0."""
    if task.name != "text-classification" or "logits" not in raw:
        return 0
    logits = np.asarray(raw["logits"])
    return int(logits.shape[-1]) if logits.ndim == 2 and logits.shape[-1] >= 2 else 0


def _answer_tensors(answer) -> list[TensorSpec]:
    """Typed outputs derived from one real answer: an embedding, or a dict's scalar fields."""
    if isinstance(answer, list) and answer and all(isinstance(v, float) for v in answer):
        return [TensorSpec("embedding", mc.TYPE_FP32, (len(answer),))]
    if isinstance(answer, dict):
        specs = []
        for key, value in answer.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, str):
                specs.append(TensorSpec(key, mc.TYPE_STRING, (1,)))
            elif isinstance(value, float):
                specs.append(TensorSpec(key, mc.TYPE_FP32, (1,)))
            elif isinstance(value, int):
                specs.append(TensorSpec(key, mc.TYPE_INT64, (1,)))
        return specs
    return []


def _default_name(model_dir: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", model_dir.resolve().name).strip("_")
    return name or "model"


# ----- the four models ------------------------------------------------------------------------
# A task read in windows (QA's long contexts) turns the ensemble's texts into more rows for the steps after the
# tokenizer: they take this many rows per text, so that a full batch of contexts two or three windows long is read
# whole, as `inferforge.load(DIR).predict` reads it (the tokenizer refuses a request that needs more, saying so).
WINDOW_ROWS_PER_TEXT = 4


def _rows(opts: RepositoryOptions, converted: "_ConvertedModel") -> int:
    """The largest batch of rows a step after the tokenizer takes."""
    return opts.max_batch_size * (WINDOW_ROWS_PER_TEXT if converted.task.windows is not None else 1)


# Where a model may refuse a request (RELIABILITY.md section 3). Triton 2.51's ensemble leaves the client of an ensemble
# request without any answer (the connection stays open, nothing pending) when its FIRST step refuses it (queue full or
# queue timeout), and sometimes when a later step refuses it on a queue timeout; a later step's full queue is answered
# (measured: 400 concurrent requests, 92-216 unanswered with the limits on every step, 0 of 5,600 with the limit on the
# later step only). Fixed in Triton core PR #466 (2026), not in the 2.51 this project runs.
FIRST_STEP = "first step"  # no limit, no timeout that fires (STEP_TIMEOUT_US): its queue cannot refuse
LATER_STEP = "later step"  # refuses past admission_limit() (answered: 503, 400 on /generate), no timeout that fires
OUTSIDE_ENSEMBLE = "outside the ensemble"  # called directly only: max_queue_size and the queue timeout
# An ensemble step's default queue timeout: a day, which no request waits. Triton applies a client's `timeout` only when
# it is shorter than the queue's default (PriorityQueue::PolicyQueue::Enqueue), so with 0 (none) a direct call's
# timeout was ignored; the ensemble gives its steps' requests none, so for them this default is the only one.
STEP_TIMEOUT_US = 86_400 * 1_000_000


def admission_limit(opts: RepositoryOptions) -> int:
    """Requests a model may have in flight: `max_queue_size` waiting plus what its model step runs at once (a full
    batch per instance). `serve` refuses more before they enter the ensemble (hide_args.c); a step's queue holds at most
    this many ensemble requests then, so the later steps' queue limit (this same count) does not fire."""
    return opts.max_queue_size + opts.max_batch_size * opts.instance_count


def _queue_role(model: str, opts: RepositoryOptions) -> str:
    """`model`: "tokenize", "model" or "postprocess"; its place in the ensemble decides what its queue may refuse."""
    if model == "tokenize":
        return OUTSIDE_ENSEMBLE if opts.tokenize_in_model else FIRST_STEP
    if model == "model" and opts.tokenize_in_model:
        return FIRST_STEP
    return LATER_STEP


def _base_config(name: str, opts: RepositoryOptions, *, role: str, instances: int = 1, kind: str = "KIND_CPU",
                 rows: int | None = None) -> mc.ModelConfig:
    config = mc.ModelConfig(name=name, max_batch_size=rows or opts.max_batch_size)
    config.dynamic_batching.max_queue_delay_microseconds = opts.queue_delay_us
    config.dynamic_batching.priority_levels = PRIORITY_LEVELS
    config.dynamic_batching.default_priority_level = DEFAULT_PRIORITY
    policy = config.dynamic_batching.default_queue_policy
    # A client's `timeout` is this queue's timeout for its request. An ensemble gives its steps' requests none
    # (Triton 2.51), so this applies to direct calls only: there a refusal is answered (RELIABILITY.md section 7).
    policy.allow_timeout_override = True
    policy.max_queue_size = {FIRST_STEP: 0, LATER_STEP: admission_limit(opts)}.get(role, opts.max_queue_size)  # 0: none
    policy.default_timeout_microseconds = opts.queue_timeout_us if role == OUTSIDE_ENSEMBLE else STEP_TIMEOUT_US
    policy.timeout_action = mc.ModelQueuePolicy.REJECT
    config.parameters["execute_timeout_s"].string_value = str(opts.execute_timeout_s)
    group = config.instance_group.add()
    group.count = instances
    group.kind = mc.ModelInstanceGroup.Kind.Value(kind)
    return config


def _text_inputs(converted: _ConvertedModel) -> list[TensorSpec]:
    specs = [TensorSpec(TEXT_INPUT, mc.TYPE_STRING, (1,))]
    if converted.task.supports_pairs:
        specs.append(TensorSpec(PAIR_INPUT, mc.TYPE_STRING, (1,), optional=not converted.task.needs_pairs))
    return specs


def _needs_token_details(converted: _ConvertedModel) -> bool:
    return bool(converted.per_token_outputs)


def _detail_specs(converted: _ConvertedModel, *, ragged: bool, optional: bool = False) -> list[TensorSpec]:
    """The tokenizer's per-token details, for the tasks whose answers point into the text."""
    if not _needs_token_details(converted):
        return []
    return [
        TensorSpec(name, mc.TYPE_INT64, (-1, 2) if name == "offsets" else (-1,), optional=optional, ragged=ragged)
        for name in TOKEN_DETAILS
    ]


def _window_specs(converted: _ConvertedModel) -> list[TensorSpec]:
    """The tokenizer's outputs that say which text each row (window) belongs to, for tasks read in windows."""
    if converted.task.windows is None:
        return []
    return [TensorSpec("window_text", mc.TYPE_STRING, (1,)), TensorSpec("window_text_pair", mc.TYPE_STRING, (1,)),
            TensorSpec(WINDOW_SAMPLE, mc.TYPE_INT64, (1,))]


def _answer_specs(converted: _ConvertedModel) -> list[TensorSpec]:
    return [TensorSpec(ANSWER_OUTPUT, mc.TYPE_STRING, (1,)), *converted.answer_outputs]


def _write_config(model_dir: Path, config: mc.ModelConfig, converted: "_ConvertedModel | None" = None) -> None:
    """config.pbtxt, and LABEL_FILE beside it when an output names it (the classifier's class names)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(render_config(config))
    if any(output.label_filename == LABEL_FILE for output in config.output):
        assert converted is not None and converted.class_names
        names = (" ".join(name.split()) or f"LABEL_{i}" for i, name in enumerate(converted.class_names))
        (model_dir / LABEL_FILE).write_text("".join(f"{name}\n" for name in names), encoding="utf-8")


def _set_parameters(config: mc.ModelConfig, **values) -> None:
    for key, value in values.items():
        config.parameters[key].string_value = str(value)


def _python_backend(opts: RepositoryOptions) -> str:
    """The backend of the models written as Python-backend scripts: Triton's, or inferforge's in-process one."""
    return INPROCESS_BACKEND if opts.in_process else "python"


def _copy_backend_model(script: str, version: Path) -> None:
    """A Python-backend script as `model.py`, with the helper modules it imports."""
    shutil.copy2(BACKEND_MODELS / script, version / "model.py")
    for helper in BACKEND_HELPERS:
        shutil.copy2(helper, version / helper.name)


def _write_tokenize(repo: Path, name: str, converted: _ConvertedModel, opts: RepositoryOptions) -> None:
    model_name = f"{name}_tokenize"
    config = _base_config(model_name, opts, role=_queue_role("tokenize", opts))
    config.backend = _python_backend(opts)
    config.input.extend(t.to_input() for t in _text_inputs(converted))
    for input_name in converted.input_names:
        config.output.append(TensorSpec(input_name, mc.TYPE_INT64, (-1,)).to_output())
    config.output.extend(t.to_output() for t in _detail_specs(converted, ragged=False))
    config.output.extend(t.to_output() for t in _window_specs(converted))
    windows = converted.task.windows
    if windows is not None:
        _set_parameters(config, window_length=windows.length, window_stride=windows.stride,
                        max_windows=_rows(opts, converted))
    _set_parameters(
        config,
        max_length=converted.max_length,
        input_names=",".join(converted.input_names),
        pad_id=converted.pad_id,
        cls_id=converted.cls_id,
        text_prefix=converted.text_prefix,
        pair_required=str(bool(converted.task.needs_pairs)).lower(),
        tokenizer_file="tokenizer.json",
        max_text_chars=opts.max_text_chars,
    )
    version = repo / model_name / "1"
    version.mkdir(parents=True)
    _copy_backend_model("tokenize.py", version)
    shutil.copy2(converted.directory / "tokenizer" / "tokenizer.json", version / "tokenizer.json")
    _write_config(repo / model_name, config)


def _write_model(repo: Path, name: str, converted: _ConvertedModel, opts: RepositoryOptions) -> None:
    model_name = f"{name}_model"
    config = _base_config(model_name, opts, role=_queue_role("model", opts), instances=opts.instance_count,
                          kind=opts.instance_kind, rows=_rows(opts, converted))
    python = opts.flavour == "python"
    for input_name in converted.input_names:  # optional in python: a request may bring texts instead
        config.input.append(TensorSpec(input_name, mc.TYPE_INT64, (-1,), optional=python, ragged=python).to_input())
    for spec in converted.model_outputs:
        config.output.append(spec.to_output())
    version = repo / model_name / "1"
    version.mkdir(parents=True)
    if python:
        # It also answers: texts and token details in (optional: token arrays alone give raw outputs).
        config.backend = _python_backend(opts)
        for spec in _text_inputs(converted):
            config.input.append(TensorSpec(spec.name, spec.data_type, spec.dims, optional=True).to_input())
        config.input.extend(t.to_input() for t in _detail_specs(converted, ragged=True, optional=True))
        if converted.task.windows is not None:
            config.input.append(TensorSpec(WINDOW_SAMPLE, mc.TYPE_INT64, (1,), optional=True).to_input())
        config.output.extend(t.to_output() for t in _answer_specs(converted))
        _set_parameters(
            config,
            variant=converted.variant,
            threads=opts.threads or "",
            pad_id=converted.pad_id,
            array_inputs=",".join(converted.input_names),
            model_outputs=",".join(converted.output_names),
            per_token_outputs=",".join(converted.per_token_outputs),
            max_text_chars=opts.max_text_chars,  # texts reach this model directly with tokenize_in_model
        )
        _copy_backend_model("model.py", version)
        _copy_artifact(converted, version / "artifact")
    else:
        _fill_onnxruntime(config, converted, opts, version)
    _write_config(repo / model_name, config, converted)


def _fill_onnxruntime(config: mc.ModelConfig, converted: _ConvertedModel, opts: RepositoryOptions, version: Path) -> None:
    files = converted.variant_files()
    onnx_files = [relative for _, relative in files if relative.suffix == ".onnx"]
    if len(onnx_files) != 1:
        raise UserError(
            f"Variant '{converted.variant}' is not a single ONNX model; the onnxruntime flavour needs one "
            "(choose an ONNX variant with --variant, or use the python flavour)."
        )
    for source, relative in files:
        _link_or_copy(source, version / relative)
    config.platform = "onnxruntime_onnx"
    if onnx_files[0] != Path("model.onnx"):
        config.default_model_filename = str(onnx_files[0])
    threads = opts.threads or 0
    _set_parameters(config, intra_op_thread_count=threads, inter_op_thread_count=1 if threads else 0)
    if opts.ort_accelerator == "openvino":
        config.optimization.execution_accelerators.cpu_execution_accelerator.add(name="openvino")
    elif opts.ort_accelerator == "tensorrt":
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        accelerator.parameters["precision_mode"] = opts.tensorrt_precision
        accelerator.parameters["max_workspace_size_bytes"] = str(opts.tensorrt_workspace_bytes)


def _copy_artifact(converted: _ConvertedModel, target: Path) -> None:
    """A converted directory holding only the served variant, for `inferforge.load` in the server."""
    target.mkdir(parents=True)
    only_served = {converted.variant: converted.manifest.variants[converted.variant]}
    replace(converted.manifest, selected=converted.variant, variants=only_served).write(target)
    for extra in ("tokenizer", "config.json"):
        source = converted.directory / extra
        if source.is_dir():
            shutil.copytree(source, target / extra)
        elif source.is_file():
            shutil.copy2(source, target / extra)
    variant_dir = Path("variants") / converted.variant
    for source, relative in converted.variant_files():
        try:
            in_dir = source.relative_to(converted.directory)
        except ValueError:
            in_dir = variant_dir / relative
        _link_or_copy(source, target / in_dir)


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _write_postprocess(repo: Path, name: str, converted: _ConvertedModel, opts: RepositoryOptions) -> None:
    model_name = f"{name}_postprocess"
    config = _base_config(model_name, opts, role=_queue_role("postprocess", opts), rows=_rows(opts, converted))
    config.backend = _python_backend(opts)
    config.input.extend(t.to_input() for t in _text_inputs(converted))
    for spec in converted.model_outputs:
        config.input.append(spec.to_input())
    config.input.extend(t.to_input() for t in _detail_specs(converted, ragged=True))
    if converted.task.windows is not None:
        config.input.append(TensorSpec(WINDOW_SAMPLE, mc.TYPE_INT64, (1,)).to_input())
    config.output.extend(t.to_output() for t in _answer_specs(converted))
    _set_parameters(
        config,
        task=converted.task.name,
        labels=json.dumps(converted.labels),
        problem_type=converted.manifest.problem_type or "",
        model_outputs=",".join(converted.output_names),
    )
    version = repo / model_name / "1"
    version.mkdir(parents=True)
    _copy_backend_model("postprocess.py", version)
    _write_config(repo / model_name, config, converted)


def _write_ensemble(repo: Path, name: str, converted: _ConvertedModel, opts: RepositoryOptions) -> None:
    config = mc.ModelConfig(name=name, platform="ensemble", max_batch_size=opts.max_batch_size)
    text_inputs = [t.name for t in _text_inputs(converted)]
    answers = [t.name for t in _answer_specs(converted)]
    details = [t.name for t in _detail_specs(converted, ragged=False)]
    config.input.extend(t.to_input() for t in _text_inputs(converted))
    config.output.extend(t.to_output() for t in _answer_specs(converted))

    def step(model_name: str, inputs: list[str] | dict[str, str], outputs: list[str]) -> None:
        """inputs: the model's input names (the ensemble's tensors of the same names), or {input: tensor}."""
        added = config.ensemble_scheduling.step.add(model_name=model_name, model_version=-1)
        for model_input, tensor in (inputs.items() if isinstance(inputs, dict) else zip(inputs, inputs)):
            added.input_map[model_input] = tensor
        for tensor in outputs:
            added.output_map[tensor] = tensor

    arrays, raw = list(converted.input_names), list(converted.output_names)
    windows = [t.name for t in _window_specs(converted)]
    # The answering step reads the texts from the request, or, when the tokenizer cut texts into windows, each
    # window's texts and its text's index from the tokenizer (every input of a step has one row per window).
    answer_texts = {name: name for name in text_inputs}
    if windows:
        answer_texts = {TEXT_INPUT: "window_text", PAIR_INPUT: "window_text_pair", WINDOW_SAMPLE: WINDOW_SAMPLE}
    if opts.tokenize_in_model:
        step(f"{name}_model", text_inputs, answers)
    elif opts.flavour == "python":
        step(f"{name}_tokenize", text_inputs, arrays + details + windows)
        step(f"{name}_model", {**dict(zip(arrays + details, arrays + details)), **answer_texts}, answers)
    else:
        step(f"{name}_tokenize", text_inputs, arrays + details + windows)
        step(f"{name}_model", arrays, raw)
        step(f"{name}_postprocess", {**answer_texts, **dict(zip(raw + details, raw + details))}, answers)
    (repo / name / "1").mkdir(parents=True)
    _write_config(repo / name, config, converted)
