"""The converted model folder: its manifest (`inferforge.json`) and `load(DIR)`."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inferforge.engines.base import BUCKET_SLACK, Engine, run_by_length
from inferforge.errors import UserError
from inferforge.tasks import TaskSpec, get_task
from inferforge.tokenization import CutTextWarning, Encoded, TextEncoder, cut_texts
from inferforge.variants import Variant, variant_from_dict

MANIFEST = "inferforge.json"
FORMAT_VERSION = 1
TOKENIZER_DIR = "tokenizer"


@dataclass
class Manifest:
    """What `load` needs to rebuild the pipeline; the full measurements live in report.json."""

    task: str
    source: str
    input_names: list[str]
    output_names: list[str]
    max_length: int
    labels: list[str] | None
    pooling: dict | None
    selected: str | None
    variants: dict[str, dict]  # name -> {"config": {...}, "files": [...], "deployable": bool}
    format_version: int = FORMAT_VERSION
    problem_type: str | None = None  # transformers' config.problem_type (multi_label_classification: sigmoids)
    reads_padding: bool = False  # padding changes its answers: no attention mask (FNet), or layers that read it

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(self.__dict__, indent=2))

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        path = Path(folder) / MANIFEST
        if not Path(folder).exists():
            raise UserError(f"'{folder}' does not exist; give a folder written by `inferforge convert`.")
        if not path.is_file():
            raise UserError(f"'{folder}' is not an inferforge output folder: it has no {MANIFEST}.")
        data = json.loads(path.read_text())
        if data.get("format_version") != FORMAT_VERSION:
            raise UserError(f"'{folder}' was written by another inferforge format ({data.get('format_version')}).")
        return cls(**data)

    def variant(self, name: str) -> tuple[Variant, list[str]]:
        if name not in self.variants:
            stored = [n for n, v in self.variants.items() if v.get("deployable")]
            raise UserError(f"Variant '{name}' is not in this folder; it holds: {', '.join(stored)}.")
        entry = self.variants[name]
        return variant_from_dict(entry["config"]), entry["files"]


def token_arrays(inputs, input_names) -> dict[str, np.ndarray]:
    """`inputs` as the int64 batch x sequence arrays of `input_names`, with transformers' defaults for a missing
    attention mask (ones) and token types (zeros); a clear UserError for what cannot be read so."""
    if not hasattr(inputs, "keys"):
        raise UserError(f"run() takes a dict of token arrays such as {{'input_ids': ...}}, not {type(inputs).__name__}.")
    if "input_ids" not in inputs:
        raise UserError(f"run() needs 'input_ids' (it was given {sorted(inputs)}); the model takes "
                        f"{', '.join(input_names)}.")
    arrays = {}
    for name in input_names:
        if name not in inputs:
            continue
        try:
            array = np.asarray(inputs[name])
        except ValueError:
            raise UserError(f"run(): '{name}' is not a rectangular array (pad its rows to one length).") from None
        if array.ndim != 2 or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
            raise UserError(f"run(): '{name}' must be a 2-D array of integers (batch x sequence); it is "
                            f"{array.ndim}-D of {array.dtype}.")
        arrays[name] = np.ascontiguousarray(array, dtype=np.int64)
    shape = arrays["input_ids"].shape
    for name, array in arrays.items():
        if array.shape != shape:
            raise UserError(f"run(): '{name}' is {array.shape[0]} x {array.shape[1]}, 'input_ids' is "
                            f"{shape[0]} x {shape[1]}: they must match.")
    if "attention_mask" in input_names and "attention_mask" not in arrays:
        arrays["attention_mask"] = np.ones(shape, dtype=np.int64)
    if "token_type_ids" in input_names and "token_type_ids" not in arrays:
        arrays["token_type_ids"] = np.zeros(shape, dtype=np.int64)
    missing = [name for name in input_names if name not in arrays]
    if missing:
        raise UserError(f"run() needs {', '.join(missing)} too: the model takes {', '.join(input_names)}.")
    return arrays


class LoadedModel:
    """A converted model ready to answer: `.run(arrays)` on token arrays, `.predict(texts)` on text."""

    def __init__(self, folder: Path, manifest: Manifest, engine: Engine, variant_name: str):
        self.folder = folder
        self.manifest = manifest
        self.task: TaskSpec = get_task(manifest.task)
        self.variant_name = variant_name
        self.engine = engine
        self.encoder = TextEncoder.from_dir(folder / TOKENIZER_DIR, manifest.input_names, manifest.max_length,
                                            self.task.windows)
        self._id_limit = _embedding_rows(folder)

    @property
    def labels(self) -> list[str] | None:
        return self.manifest.labels

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The raw outputs of token arrays (batch x sequence, a tokenizer's `return_tensors="np"` output will do). As
        a transformers model takes them: `input_ids` is needed, a missing `attention_mask` means every token is
        read and a missing `token_type_ids` means all zeros; arrays the model does not take are left aside."""
        return self.engine.run(token_arrays(inputs, self.engine.input_names))

    def predict(self, texts: list[str] | str, pairs: list[str] | str | None = None) -> list:
        """Text (and text pairs: question first, context second for QA) to the task's answers. The texts the
        server refuses (empty or white space only, NUL bytes) are refused here too, in one sentence."""
        texts = _text_list(texts, "texts")
        pairs = _text_list(pairs, "pairs") if pairs is not None else None
        if pairs is not None and not self.task.supports_pairs:
            raise UserError(f"{self.task.name} takes single texts, not text pairs.")
        if pairs is None and self.task.needs_pairs:
            raise UserError(f"{self.task.name} needs a text pair for every text (question, context).")
        encoded = self.encoder.encode(list(texts), list(pairs) if pairs is not None else None)
        self._check_ids(encoded)
        if self.task.name in ("token-classification", "question-answering"):
            cut = cut_texts(encoded, self.encoder.max_length, self.encoder.prefix)
            if cut:  # said, not silent: the answers of these texts come from their start only
                warnings.warn(CutTextWarning(cut, len(texts), self.encoder.max_length, pairs is not None), stacklevel=2)
        return self.task.postprocess(self.run_encoded(encoded), encoded, self.labels, self.manifest.problem_type)

    def _check_ids(self, encoded: Encoded) -> None:
        """Token ids past the model's embedding rows (tokens added to the tokenizer, the model not resized) are refused
        as the server refuses them, naming the text and the token; onnxruntime failed with its Gather node's error."""
        ids = encoded.arrays.get("input_ids")
        if self._id_limit is None or ids is None or not ids.size or int(ids.max()) < self._id_limit:
            return
        row, column = (int(v) for v in np.argwhere(ids >= self._id_limit)[0])
        index = encoded.sample[row] if encoded.sample is not None else row
        token = self.encoder.tokenizer.id_to_token(int(ids[row, column]))
        raise UserError(f"The text {index + 1} of {len(encoded.texts)} holds the token {token!r} (id {ids[row, column]}), "
                        f"outside this model's {self._id_limit} embedding rows (0 to {self._id_limit - 1}): its tokenizer "
                        "has tokens its model was not resized for (model.resize_token_embeddings(len(tokenizer))).")

    def run_encoded(self, encoded: Encoded) -> dict[str, np.ndarray]:
        """The raw outputs of a tokenized batch, its rows run in groups of similar length so that little padding
        is computed; a model that takes no attention mask runs each length unpadded, so each text gets the answer
        it gets alone (see `run_by_length`)."""
        return run_by_length(self.engine.run, encoded.arrays, [len(offsets) for offsets in encoded.offsets],
                             {name for name in self.engine.output_names if 1 in self.task.output_axes(name)},
                             slack=1.0 if self.manifest.reads_padding else BUCKET_SLACK)

    def __repr__(self) -> str:
        return f"LoadedModel(task={self.task.name!r}, variant={self.variant_name!r}, folder='{self.folder}')"


def _embedding_rows(folder: Path) -> int | None:
    """The model's vocabulary size (its token embedding rows) from the folder's config.json, or None."""
    try:
        size = json.loads((folder / "config.json").read_text()).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        return None
    return size if isinstance(size, int) and size > 0 else None


def _text_list(value, what: str) -> list[str]:
    """A string or a list (tuple, 1-D or column numpy array) of strings, checked as the server checks them."""
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        kinds = sorted({type(v).__name__ for v in value}) if isinstance(value, (list, tuple)) else [type(value).__name__]
        raise UserError(f"predict() takes its {what} as a string or a list of strings, not {' and '.join(kinds)}"
                        + (" (give text pairs as two lists: predict(texts, pairs))" if "tuple" in kinds or "list" in kinds
                           else "") + ".")
    for index, text in enumerate(value):
        where = f"{what[:-1]} {index + 1} of {len(value)}"
        if "\x00" in text:
            raise UserError(f"The {where} contains a NUL byte (at character {text.index(chr(0))}); send plain text.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:  # the tokenizer raised a TypeError that named no text
            raise UserError(f"The {where} is not valid Unicode: a lone surrogate (U+{ord(text[error.start]):04X}) at "
                            f"character {error.start}, half of a character whose other half is missing (bytes decoded "
                            "with errors='surrogateescape', or an emoji cut in two); decode it as UTF-8 with "
                            "errors='replace'.") from None
        if not text.strip():
            raise UserError(f"The {where} is empty: send some text.")
    return list(value)


def load(folder: str | Path, variant: str | None = None, threads: int | None = None) -> LoadedModel:
    """The selected variant of a converted folder (or `variant`), ready to run."""
    folder = Path(folder)
    manifest = Manifest.read(folder)
    name = variant or manifest.selected
    if name is None:
        raise UserError(f"No variant of '{folder}' passed verification; name one with variant=... to load it anyway.")
    config, files = manifest.variant(name)
    if not config.deployable:
        raise UserError(f"Variant '{name}' is a PyTorch reference and is not stored in the folder.")
    engine = config.open(folder, files, threads)
    return LoadedModel(folder, manifest, engine, name)
