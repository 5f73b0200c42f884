"""Labelled data for judging variants on real text, and the movie-review sentences used by the demo.

Files are read as they are: CSV (or TSV) with a header row, or JSON Lines with one object per line.
A missing column, an empty cell, an unreadable line or an empty file is a `UserError` naming the
file, the line and what to change. Labels are checked against the model only when they are turned
into class ids (`class_ids`), because only the model knows its labels.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from inferforge.errors import UserError

DATA_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
TEXT_SUFFIXES = {".txt"}


@dataclass(frozen=True)
class DataColumns:
    """Which columns (CSV) or keys (JSONL) hold the text, the optional second text and the label.

    `pair` is used when the file has that column; `pair_required` makes it an error when it does not
    (question answering needs a context, similarity needs two sentences).
    """

    text: str = "text"
    pair: str = "text_pair"
    label: str = "label"
    pair_required: bool = False


@dataclass(frozen=True)
class LabelledData:
    """Rows of labelled text as read from a file. `lines[i]` is the file line of row i, for messages."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[Any]
    lines: list[int]
    source: str
    columns: DataColumns = field(default_factory=DataColumns)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Iterable[int]) -> "LabelledData":
        idx = list(indices)
        return LabelledData(
            texts=[self.texts[i] for i in idx],
            pairs=[self.pairs[i] for i in idx] if self.pairs is not None else None,
            labels=[self.labels[i] for i in idx],
            lines=[self.lines[i] for i in idx],
            source=self.source,
            columns=self.columns,
        )

    def where(self, row: int) -> str:
        return f"line {self.lines[row]} of {self.source}"


def _data_format(path: Path) -> str:
    fmt = DATA_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"Cannot read labelled data from {path}: use a .csv, .tsv or .jsonl file "
            f"(got '{path.suffix or 'no suffix'}')."
        )
    return fmt


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"Data file {path} does not exist.")
    if not path.is_file():
        raise UserError(f"Data path {path} is not a file.")


def _read_records(path: Path) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """All records of a CSV/TSV/JSONL file with their line numbers and the columns seen."""
    fmt = _data_format(path)
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            if fmt in ("csv", "tsv"):
                reader = csv.DictReader(f, delimiter="," if fmt == "csv" else "\t")
                header = [name for name in (reader.fieldnames or []) if name is not None]
                for record in reader:
                    if None in record:
                        raise UserError(
                            f"Line {reader.line_num} of {path} has more cells than the header row "
                            f"({len(header)}); quote cells that contain the delimiter."
                        )
                    if all(v in (None, "") for v in record.values()):
                        continue
                    records.append(record)
                    lines.append(reader.line_num)
                return records, lines, header
            seen: dict[str, None] = {}
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"Line {number} of {path} is not valid JSON ({exc.msg}).") from None
                if not isinstance(record, dict):
                    raise UserError(f"Line {number} of {path} is not a JSON object; write one object per line.")
                seen.update(dict.fromkeys(record))
                records.append(record)
                lines.append(number)
            return records, lines, list(seen)
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
    except csv.Error as exc:
        raise UserError(f"{path} is not a readable CSV file ({exc}).") from None


def _cell_text(value: Any, column: str, where: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UserError(f"Column '{column}' is empty at {where}; every row needs a value.")
    if isinstance(value, (dict, list)):
        raise UserError(f"Column '{column}' at {where} holds {type(value).__name__}, not text.")
    return str(value)


def read_labelled_data(path: Path | str, columns: DataColumns = DataColumns(), text_is_list: bool = False) -> LabelledData:
    """Read labelled rows from CSV, TSV or JSONL.

    Labels are kept as read (a string from CSV, any JSON value from JSONL); the task-specific readers
    below (`class_ids`, `tag_sequences`, `answer_texts`, `similarity_scores`) check and convert them.
    `text_is_list` accepts a JSON list of words in the text column (token classification).
    """
    path = Path(path)
    _check_file(path)
    records, lines, header = _read_records(path)
    if not records:
        raise UserError(f"{path} has no data rows; it needs a header (or JSON keys) and at least one labelled row.")
    available = ", ".join(header) or "none"
    for column in (columns.text, columns.label):
        if column not in header:
            raise UserError(f"{path} has no column '{column}' (columns found: {available}); name the right one with the column options.")
    has_pairs = columns.pair in header
    if columns.pair_required and not has_pairs:
        raise UserError(
            f"{path} has no column '{columns.pair}' for the second text (columns found: {available}); "
            f"this task needs one, name it with --pair-column."
        )
    texts: list[str] = []
    pairs: list[str] | None = [] if has_pairs else None
    labels: list[Any] = []
    for record, line in zip(records, lines):
        where = f"line {line} of {path}"
        value = record.get(columns.text)
        if text_is_list and isinstance(value, list):
            if not value or not all(isinstance(w, str) and w.strip() and not any(c.isspace() for c in w) for w in value):
                raise UserError(f"Column '{columns.text}' at {where} must be a non-empty list of words without spaces.")
            texts.append(" ".join(value))
        else:
            texts.append(_cell_text(value, columns.text, where))
        if pairs is not None:
            pairs.append(_cell_text(record.get(columns.pair), columns.pair, where))
        label = record.get(columns.label)
        if label is None or (isinstance(label, str) and not label.strip()) or label == []:
            raise UserError(f"Column '{columns.label}' is empty at {where}; every row needs a label.")
        labels.append(label)
    return LabelledData(texts=texts, pairs=pairs, labels=labels, lines=lines, source=str(path), columns=columns)


def class_ids(data: LabelledData, label_names: Sequence[str]) -> np.ndarray:
    """Class id of each row's label. A label is the model's label name, or its integer id."""
    index = {name: i for i, name in enumerate(label_names)}
    ids = np.empty(len(data), dtype=np.int64)
    for row, label in enumerate(data.labels):
        key = label.strip() if isinstance(label, str) else label
        if isinstance(key, str) and key in index:
            ids[row] = index[key]
            continue
        as_int = _as_class_id(key)
        if as_int is not None and 0 <= as_int < len(label_names):
            ids[row] = as_int
            continue
        raise UserError(
            f"Unknown label '{label}' at {data.where(row)}; the model's labels are: "
            f"{', '.join(label_names)} (or their ids 0-{len(label_names) - 1})."
        )
    return ids


def _as_class_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def tag_sequences(data: LabelledData, label_names: Sequence[str]) -> list[list[str]]:
    """One tag per whitespace-separated word of each text (a JSON list, or tags separated by spaces)."""
    known = set(label_names)
    sequences: list[list[str]] = []
    for row, (text, label) in enumerate(zip(data.texts, data.labels)):
        tags = label if isinstance(label, list) else str(label).split()
        tags = [str(t) for t in tags]
        words = text.split()
        if len(tags) != len(words):
            raise UserError(
                f"{data.where(row)} has {len(words)} words but {len(tags)} tags; give one tag per "
                f"whitespace-separated word."
            )
        for tag in tags:
            if tag not in known:
                raise UserError(f"Unknown tag '{tag}' at {data.where(row)}; the model's labels are: {', '.join(label_names)}.")
        sequences.append(tags)
    return sequences


def answer_texts(data: LabelledData) -> list[list[str]]:
    """Gold answers of each question: a string, a JSON list of strings, or SQuAD's {"text": [...]}."""
    answers: list[list[str]] = []
    for row, label in enumerate(data.labels):
        value = label.get("text") if isinstance(label, dict) else label
        options = value if isinstance(value, list) else [value]
        options = [str(o) for o in options if o is not None and str(o).strip()]
        if not options:
            raise UserError(f"No answer text at {data.where(row)}; give a string, a list of strings or {{\"text\": [...]}}.")
        answers.append(options)
    return answers


def similarity_scores(data: LabelledData) -> np.ndarray:
    """Gold similarity score of each text pair, as a number."""
    scores = np.empty(len(data), dtype=np.float64)
    for row, label in enumerate(data.labels):
        try:
            scores[row] = float(label)
        except (TypeError, ValueError):
            raise UserError(f"Similarity score '{label}' at {data.where(row)} is not a number.") from None
        if not np.isfinite(scores[row]):
            raise UserError(f"Similarity score '{label}' at {data.where(row)} is not a finite number.")
    return scores


def read_calibration_texts(path: Path | str, text_column: str = "text", pair_column: str = "text_pair") -> tuple[list[str], list[str] | None]:
    """Texts for int8 calibration: a .txt file (one text per line) or the text column of a data file."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in TEXT_SUFFIXES:
        try:
            texts = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
        except UnicodeDecodeError:
            raise UserError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
        texts = [t for t in texts if t]
        if not texts:
            raise UserError(f"{path} has no text; write one calibration text per line.")
        return texts, None
    records, lines, header = _read_records(path)
    if not records:
        raise UserError(f"{path} has no rows; give at least one calibration text.")
    if text_column not in header:
        raise UserError(f"{path} has no column '{text_column}' (columns found: {', '.join(header) or 'none'}).")
    texts = [_cell_text(r.get(text_column), text_column, f"line {n} of {path}") for r, n in zip(records, lines)]
    if pair_column in header:
        pairs = [_cell_text(r.get(pair_column), pair_column, f"line {n} of {path}") for r, n in zip(records, lines)]
        return texts, pairs
    return texts, None


def write_labelled_csv(path: Path, texts: Sequence[str], labels: Sequence[Any], pairs: Sequence[str] | None = None) -> None:
    """Write rows as a CSV readable by `read_labelled_data` with the default columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "text_pair", "label"] if pairs is not None else ["text", "label"])
        for i, (text, label) in enumerate(zip(texts, labels)):
            writer.writerow([text, pairs[i], label] if pairs is not None else [text, label])
    tmp.replace(path)


# --- The movie-review sentences (Hutto & Gilbert, ICWSM 2014), shipped in the vaderSentiment sdist ---

VADER_REQUIREMENT = "vaderSentiment==3.3.2"
VADER_SDIST_DIR = "vaderSentiment-3.3.2"
MOVIE_REVIEW_MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
MOVIE_REVIEW_SHA256 = "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350"
SENTIMENT_LABELS = ("negative", "positive")


@dataclass(frozen=True)
class ScoredSentence:
    """One movie-review sentence with its mean human sentiment score (-4..4)."""

    id: str
    score: float
    text: str

    @property
    def label(self) -> str:
        return SENTIMENT_LABELS[int(self.score > 0)]


@dataclass(frozen=True)
class MovieReviewSplit:
    train: list[ScoredSentence]
    test: list[ScoredSentence]


def cache_dir() -> Path:
    """Where downloaded data is kept: $INFERFORGE_CACHE, else ~/.cache/inferforge."""
    return Path(os.environ.get("INFERFORGE_CACHE") or Path.home() / ".cache" / "inferforge").expanduser()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def movie_review_file(cache: Path | None = None) -> Path:
    """The movie-review ground-truth file, fetched once from the vaderSentiment sdist on PyPI."""
    target = (cache or cache_dir()) / "movie-reviews" / Path(MOVIE_REVIEW_MEMBER).name
    if target.exists() and _sha256(target) == MOVIE_REVIEW_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp_path = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "--quiet", VADER_REQUIREMENT, "-d", str(tmp_path)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(tmp_path.glob("vaderSentiment-*.tar.gz"))
        if result.returncode != 0 or not sdists:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise UserError(
                f"Could not download the movie-review sentences ({' '.join(cmd[2:])} failed: "
                f"{detail[-1] if detail else 'no sdist'}); check that PyPI is reachable."
            )
        with tarfile.open(sdists[0]) as sdist:
            inner = sdist.extractfile(f"{VADER_SDIST_DIR}/additional_resources/hutto_ICWSM_2014.tar.gz")
            with tarfile.open(fileobj=inner) as resources:
                payload = resources.extractfile(MOVIE_REVIEW_MEMBER).read()
        if hashlib.sha256(payload).hexdigest() != MOVIE_REVIEW_SHA256:
            raise UserError(f"The movie-review file in {VADER_REQUIREMENT} does not have the expected SHA-256; refusing to use it.")
        partial = tmp_path / "movie.txt"
        partial.write_bytes(payload)
        partial.replace(target)
    return target


def movie_review_sentences(cache: Path | None = None) -> list[ScoredSentence]:
    """All 10,605 sentences with their scores, in file order."""
    sentences = []
    for line in movie_review_file(cache).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        sentence_id, score, text = line.split("\t", 2)
        sentences.append(ScoredSentence(sentence_id, float(score), text.strip()))
    return sentences


def movie_review_split(test_size: int = 2000, seed: int = 0, cache: Path | None = None) -> MovieReviewSplit:
    """Positive/negative sentences (score 0 dropped, repeated texts kept once), shuffled and split.

    The same seed gives the same split everywhere: the fine-tuning example, the tests and the bench.
    """
    seen: set[str] = set()
    labelled = []
    for s in movie_review_sentences(cache):
        if s.score != 0 and s.text not in seen:
            seen.add(s.text)
            labelled.append(s)
    order = np.random.RandomState(seed).permutation(len(labelled))
    shuffled = [labelled[i] for i in order]
    if not 0 < test_size < len(shuffled):
        raise UserError(f"Test size must be between 1 and {len(shuffled) - 1}, got {test_size}.")
    return MovieReviewSplit(train=shuffled[test_size:], test=shuffled[:test_size])
