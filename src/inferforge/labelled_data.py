"""Labelled data for judging variants on real text, and the movie-review sentences used by the demo.

Files are read as they are:

* CSV or TSV with a header row; JSON Lines (`.jsonl`, `.ndjson`, or `.json` as Hugging Face `to_json`
  writes it); a `.json` array of objects;
* the original SQuAD v1.1/v2.0 `.json` file (data -> paragraphs -> qas);
* CoNLL-style token/tag text (`.conll`, `.iob`, `.iob2`, `.bio`): one token per line with its tag in the
  last column, a blank line between sentences, `-DOCSTART-` lines skipped.

The text, second-text and label columns are the ones the user names; a column not named is found by its
usual names (`COLUMN_CANDIDATES`, header matched case-insensitively), `text` / `text_pair` / `label`
first. A missing or ambiguous column, an empty cell, an unreadable line or an empty file is a `UserError`
naming the file, the line and what to change. Labels are checked against the model only when they are
turned into class ids (`class_ids`, `tag_sequences`), because only the model knows its labels.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from inferforge.errors import UserError

DATA_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
                 ".conll": "conll", ".iob": "conll", ".iob2": "conll", ".bio": "conll"}
TEXT_SUFFIXES = {".txt"}
OPTION = {"text": "--text-column", "pair": "--pair-column", "label": "--label-column"}

# Usual names of the columns, per task, in the order they are tried after the defaults (text, text_pair,
# label). Pairs are found as layouts: both columns of one layout must be present.
_PAIR_LAYOUTS = (("text", "text_pair"), ("sentence1", "sentence2"), ("premise", "hypothesis"),
                 ("question1", "question2"), ("question", "context"), ("question", "sentence"),
                 ("sentence_a", "sentence_b"), ("text_a", "text_b"), ("text1", "text2"))
_SINGLE_TEXTS = ("text", "sentence", "review", "content", "document", "review_body")
COLUMN_CANDIDATES: dict[str, dict[str, tuple]] = {
    "text-classification": {
        "text": _SINGLE_TEXTS + ("sentence1", "premise", "question1", "question", "sentence_a", "text_a", "text1"),
        "pairs": _PAIR_LAYOUTS,
        "label": ("label", "labels", "gold_label", "class", "category", "sentiment"),
    },
    "token-classification": {
        "text": ("text", "tokens", "words"),
        "pairs": (),
        "label": ("label", "ner_tags", "tags", "labels", "ner"),
    },
    "question-answering": {
        "text": ("text", "question"),
        "pairs": (("text", "text_pair"), ("question", "context")),
        "label": ("label", "answers", "answer"),
    },
    "feature-extraction": {
        "text": ("text", "sentence", "sentence1", "premise", "question1", "sentence_a", "text_a", "text1"),
        "pairs": tuple(layout for layout in _PAIR_LAYOUTS if layout != ("question", "context")),
        "label": ("label", "score", "similarity_score", "similarity", "relatedness_score"),
    },
}
_ANY_TASK = {role: tuple(dict.fromkeys(c for spec in COLUMN_CANDIDATES.values() for c in spec[role]))
             for role in ("text", "pairs", "label")}


@dataclass(frozen=True)
class DataColumns:
    """Which columns (CSV) or keys (JSON) hold the text, the optional second text and the label.

    A column left at None is found by its usual names for `task` (`COLUMN_CANDIDATES`); a named one must
    exist (matched case-insensitively). The second text is used when the file has one; `pair_required`
    makes it an error when it does not (question answering needs a context, similarity two sentences).
    On a `LabelledData` these are the columns actually used (`pair` None: single texts).
    """

    text: str | None = None
    pair: str | None = None
    label: str | None = None
    pair_required: bool = False
    task: str | None = None


@dataclass(frozen=True)
class LabelledData:
    """Rows of labelled text as read from a file. `lines[i]` is the file line of row i, for messages
    (`places[i]` says where row i is when the file has no useful line numbers, e.g. SQuAD's nested JSON)."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[Any]
    lines: list[int]
    source: str
    columns: DataColumns = field(default_factory=DataColumns)
    detected: tuple[str, ...] = ()  # the roles (text, pair, label) found by name rather than given
    file_format: str = ""
    places: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Iterable[int]) -> "LabelledData":
        idx = list(indices)
        return replace(
            self,
            texts=[self.texts[i] for i in idx],
            pairs=[self.pairs[i] for i in idx] if self.pairs is not None else None,
            labels=[self.labels[i] for i in idx],
            lines=[self.lines[i] for i in idx],
            places=[self.places[i] for i in idx] if self.places is not None else None,
        )

    def where(self, row: int) -> str:
        if self.places is not None:
            return f"{self.places[row]} of {self.source}"
        return f"line {self.lines[row]} of {self.source}"

    def describe(self) -> str:
        """Which columns were used, e.g. "text 'sentence1', pair 'sentence2', label 'label' (detected)"."""
        c = self.columns
        parts = [f"text '{c.text}'"] + ([f"pair '{c.pair}'"] if c.pair else []) + [f"label '{c.label}'"]
        detected = f" (detected: {', '.join(self.detected)})" if self.detected else ""
        return ", ".join(parts) + detected + (f", read as {self.file_format}" if self.file_format else "")


def _data_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        raise UserError(
            f"Cannot read {path}: Parquet needs pyarrow, which inferforge does not install; export the data as "
            f"JSON Lines or CSV instead (datasets: ds.to_json('{path.stem}.jsonl'))."
        )
    fmt = DATA_SUFFIXES.get(suffix)
    if fmt is None:
        raise UserError(
            f"Cannot read labelled data from {path}: use a .csv, .tsv, .jsonl, .json or .conll file "
            f"(got '{path.suffix or 'no suffix'}')."
        )
    return fmt


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"Data file {path} does not exist.")
    if not path.is_file():
        raise UserError(f"Data path {path} is not a file.")


@dataclass
class _Records:
    rows: list[dict[str, Any]]
    lines: list[int]
    header: list[str]
    fmt: str
    places: list[str] | None = None


def _read_records(path: Path) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """All records of a data file with their line numbers and the columns seen."""
    records = _read_file(path)
    return records.rows, records.lines, records.header


def _read_file(path: Path) -> _Records:
    fmt = _data_format(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            if fmt in ("csv", "tsv"):
                return _read_csv(f, path, fmt)
            if fmt == "conll":
                return _read_conll(f, path)
            content = f.read()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
    except csv.Error as exc:
        raise UserError(f"{path} is not a readable CSV file ({exc}).") from None
    stripped = content.lstrip()
    if fmt == "json" and stripped.startswith("["):
        return _read_json_array(content, path)
    if fmt == "json" and stripped.startswith("{"):
        try:
            whole = json.loads(content)
        except json.JSONDecodeError:
            whole = None  # JSON Lines in a .json file (what Hugging Face `to_json` writes)
        if isinstance(whole, dict) and isinstance(whole.get("data"), list):
            return _read_squad(whole, path)
    return _read_json_lines(content, path, fmt)


def _read_csv(f, path: Path, fmt: str) -> _Records:
    reader = csv.DictReader(f, delimiter="," if fmt == "csv" else "\t")
    header = [name for name in (reader.fieldnames or []) if name is not None]
    records, lines = [], []
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
    return _Records(records, lines, header, fmt.upper())


def _json_object(value: Any, number: int, path: Path, seen: dict[str, None]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"Line {number} of {path} is not a JSON object; write one object per line (or row).")
    seen.update(dict.fromkeys(value))
    return value


def _read_json_lines(content: str, path: Path, fmt: str) -> _Records:
    seen: dict[str, None] = {}
    records, lines = [], []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"Line {number} of {path} is not valid JSON ({exc.msg}).") from None
        records.append(_json_object(record, number, path, seen))
        lines.append(number)
    return _Records(records, lines, list(seen), "JSON Lines")


def _read_json_array(content: str, path: Path) -> _Records:
    """A JSON array of objects, read element by element so that messages can give each one's line."""
    decoder = json.JSONDecoder()
    seen: dict[str, None] = {}
    records, lines = [], []
    position = content.index("[") + 1
    while True:
        while position < len(content) and content[position] in " \t\r\n":
            position += 1
        if position < len(content) and content[position] == "]":
            break
        number = content.count("\n", 0, position) + 1
        try:
            record, position = decoder.raw_decode(content, position)
        except json.JSONDecodeError as exc:
            raise UserError(f"Line {exc.lineno} of {path} is not valid JSON ({exc.msg}).") from None
        records.append(_json_object(record, number, path, seen))
        lines.append(number)
        while position < len(content) and content[position] in " \t\r\n":
            position += 1
        if position < len(content) and content[position] == ",":
            position += 1
        elif position >= len(content) or content[position] != "]":
            line = content.count("\n", 0, position) + 1
            raise UserError(f"Line {line} of {path} is not valid JSON (expected ',' or ']' after an object).")
    if content[position + 1:].strip():
        raise UserError(f"{path} has text after its JSON array; give one array of objects.")
    return _Records(records, lines, list(seen), "JSON array")


def _read_squad(whole: dict, path: Path) -> _Records:
    """SQuAD v1.1/v2.0: data -> [{title, paragraphs -> [{context, qas -> [{id, question, answers}]}]}]."""
    records, places = [], []
    for a, article in enumerate(whole["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise UserError(f"Article {a + 1} of {path} has no 'paragraphs' list; is this a SQuAD file?")
        for p, paragraph in enumerate(paragraphs):
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise UserError(f"Paragraph {p + 1} of article {a + 1} of {path} has no 'qas' list.")
            for q, qa in enumerate(paragraph["qas"]):
                if not isinstance(qa, dict):
                    raise UserError(f"Question {q + 1} of paragraph {p + 1} of article {a + 1} of {path} is not an object.")
                answers = qa.get("answers") or []
                if not isinstance(answers, list) or not all(isinstance(x, dict) for x in answers):
                    raise UserError(f"Question {qa.get('id', q + 1)} of {path} has 'answers' that are not a list of objects.")
                records.append({"id": qa.get("id"), "title": article.get("title"), "context": paragraph.get("context"),
                                "question": qa.get("question"),
                                "answers": {"text": [x.get("text") for x in answers],
                                            "answer_start": [x.get("answer_start") for x in answers]}})
                places.append(f"question '{qa.get('id', q + 1)}' (article {a + 1}, paragraph {p + 1})")
    header = ["id", "title", "context", "question", "answers"] if records else []
    return _Records(records, list(range(1, len(records) + 1)), header, "SQuAD JSON", places)


def _read_conll(f, path: Path) -> _Records:
    records, lines = [], []
    tokens: list[str] = []
    tags: list[str] = []
    first = 0
    for number, line in enumerate(f, start=1):
        cells = line.split()
        if cells and cells[0] == "-DOCSTART-":
            cells = []
        if not cells:
            if tokens:
                records.append({"tokens": tokens, "ner_tags": tags})
                lines.append(first)
            tokens, tags = [], []
            continue
        if len(cells) < 2:
            raise UserError(f"Line {number} of {path} has no tag; write the token and its tag on one line "
                            f"(separated by a space or a tab), a blank line between sentences.")
        if not tokens:
            first = number
        tokens.append(cells[0])
        tags.append(cells[-1])
    if tokens:
        records.append({"tokens": tokens, "ner_tags": tags})
        lines.append(first)
    return _Records(records, lines, ["tokens", "ner_tags"] if records else [], "CoNLL")


# ---------------------------------------------------------------- columns


def _key(name: str) -> str:
    return name.strip().lower()


class _Header:
    def __init__(self, names: list[str], path: Path):
        self.names = names
        self.path = path
        self.by_key: dict[str, str] = {}
        for name in names:
            self.by_key.setdefault(_key(name), name)

    def find(self, name: str) -> str | None:
        """The header name `name` stands for: itself, else the one equal to it ignoring case and spaces."""
        return name if name in self.names else self.by_key.get(_key(name))

    def has(self, name: str) -> bool:
        return self.find(name) is not None

    @property
    def listing(self) -> str:
        return ", ".join(self.names) or "none"

    def missing(self, role: str, name: str) -> UserError:
        return UserError(f"{self.path} has no column '{name}' (columns found: {self.listing}); "
                         f"name the right one with {OPTION[role]}.")


def _one_of(header: _Header, role: str, candidates: Sequence[str], noun: str) -> str:
    """The single column among `candidates` (the default, candidates[0], wins when present)."""
    if header.has(candidates[0]):
        return header.find(candidates[0])
    matches = list(dict.fromkeys(header.find(c) for c in candidates if header.has(c)))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(f"{header.path} has no {noun} column (columns found: {header.listing}; looked for "
                        f"{', '.join(candidates)}); name it with {OPTION[role]}.")
    raise UserError(f"{header.path} has several possible {noun} columns ({', '.join(matches)}); "
                    f"name the right one with {OPTION[role]}.")


def _named_column(header: "_Header", role: str, name: str) -> str:
    """The header's spelling of the column the user named for `role`; a missing one is a UserError."""
    found = header.find(name)
    if found is None:
        raise header.missing(role, name)
    return found


def resolve_columns(header_names: list[str], columns: DataColumns, path: Path | str) -> tuple[DataColumns, tuple[str, ...]]:
    """The columns to use in a file with `header_names`, and which roles were found by name."""
    header = _Header(header_names, Path(path))
    spec = COLUMN_CANDIDATES.get(columns.task or "", _ANY_TASK)
    layouts = [(header.find(a), header.find(b)) for a, b in spec["pairs"] if header.has(a) and header.has(b)]
    detected = []
    if columns.text is not None:
        text = _named_column(header, "text", columns.text)
    else:
        detected.append("text")
        text = None
        if columns.pair is not None:
            partners = [a for a, b in layouts if b == header.find(columns.pair)]
            text = partners[0] if partners else None
        elif header.has("text"):
            text = header.find("text")
        elif len(layouts) == 1:
            text = layouts[0][0]
        elif len(layouts) > 1:
            found = "; ".join(f"{a} + {b}" for a, b in layouts)
            raise UserError(f"{header.path} has several possible text pairs ({found}); name the right ones with "
                            f"{OPTION['text']} and {OPTION['pair']}.")
        if text is None:
            text = _one_of(header, "text", spec["text"], "text")
    if columns.pair is not None:
        pair = _named_column(header, "pair", columns.pair)
    else:
        partners = [b for a, b in layouts if a == text]
        pair = partners[0] if partners else header.find("text_pair")
        if pair is not None:
            detected.append("pair")
        elif columns.pair_required:
            wanted = list(dict.fromkeys(["text_pair", *(b for _, b in spec["pairs"])]))
            raise UserError(f"{header.path} has no column for the second text next to '{text}' (columns found: "
                            f"{header.listing}; looked for {', '.join(wanted)}); this task needs one, "
                            f"name it with {OPTION['pair']}.")
    if columns.label is not None:
        label = _named_column(header, "label", columns.label)
    else:
        detected.append("label")
        label = _one_of(header, "label", spec["label"], "label")
    used = [c for c in (text, pair, label) if c is not None]
    if len(set(used)) != len(used):
        raise UserError(f"{header.path}: column '{max(used, key=used.count)}' cannot be both the text and the label "
                        f"(or both texts); name the columns with {OPTION['text']}, {OPTION['pair']} and {OPTION['label']}.")
    return replace(columns, text=text, pair=pair, label=label), tuple(detected)


# ---------------------------------------------------------------- cells


_NUMPY_ARRAY = re.compile(r"array\((\[[^\]]*\])(?:,\s*dtype=[\w.]+)?\)")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NUMPY_ITEM = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s\[\],]+")


def _numpy_list(text: str) -> list:
    """`['EU' 'rejects' 'German']` or `[3 0 7]`: how pandas writes a list column into a CSV cell."""
    inner = text.strip()[1:-1]
    if "..." in inner:
        raise ValueError("summarized array")
    return [ast.literal_eval(item) for item in _NUMPY_ITEM.findall(inner)]


def parse_cell(value: Any) -> Any:
    """A list or dict written into a CSV cell as JSON, a Python literal or pandas/numpy's repr; else `value`."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not (text.startswith("[") and text.endswith("]")) and not (text.startswith("{") and text.endswith("}")):
        return value
    try:
        return json.loads(text)
    except ValueError:
        pass
    # numpy separates items by spaces only (where Python would concatenate adjacent strings)
    numpy_style = text.startswith("[") and "," not in _QUOTED.sub("", text)
    if not numpy_style:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    try:
        if numpy_style:
            return _numpy_list(text)
        arrays = _NUMPY_ARRAY.sub(lambda m: json.dumps(_numpy_list(m.group(1))), text)
        return ast.literal_eval(arrays)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _cell_text(value: Any, column: str, where: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UserError(f"Column '{column}' is empty at {where}; every row needs a value.")
    if isinstance(value, (dict, list)):
        raise UserError(f"Column '{column}' at {where} holds {type(value).__name__}, not text.")
    return str(value)


def _word_list(value: Any, column: str, where: str) -> str | None:
    """Words given as a list (JSON, or a list written into a CSV cell), joined by spaces; None: not a list."""
    words = parse_cell(value)
    if not isinstance(words, list):
        return None
    if not words or not all(isinstance(w, str) and w.strip() and not any(c.isspace() for c in w) for w in words):
        raise UserError(f"Column '{column}' at {where} must be a non-empty list of words without spaces.")
    return " ".join(words)


def read_labelled_data(path: Path | str, columns: DataColumns = DataColumns(), text_is_list: bool = False) -> LabelledData:
    """Read labelled rows from any file `_read_file` accepts, with the columns of `resolve_columns`.

    Labels are kept as read (a string from CSV, any JSON value from JSON); the task-specific readers
    below (`class_ids`, `tag_sequences`, `answer_texts`, `similarity_scores`) check and convert them.
    `text_is_list` accepts a list of words in the text column (token classification).
    """
    path = Path(path)
    _check_file(path)
    records = _read_file(path)
    if not records.rows:
        raise UserError(f"{path} has no data rows; it needs a header (or JSON keys) and at least one labelled row.")
    used, detected = resolve_columns(records.header, columns, path)
    texts: list[str] = []
    pairs: list[str] | None = [] if used.pair is not None else None
    labels: list[Any] = []
    for i, record in enumerate(records.rows):
        where = f"{records.places[i]} of {path}" if records.places else f"line {records.lines[i]} of {path}"
        value = record.get(used.text)
        joined = _word_list(value, used.text, where) if text_is_list else None
        texts.append(joined if joined is not None else _cell_text(value, used.text, where))
        if pairs is not None:
            pairs.append(_cell_text(record.get(used.pair), used.pair, where))
        label = record.get(used.label)
        if label is None or (isinstance(label, str) and not label.strip()) or label == []:
            raise UserError(f"Column '{used.label}' is empty at {where}; every row needs a label.")
        labels.append(label)
    return LabelledData(texts=texts, pairs=pairs, labels=labels, lines=records.lines, source=str(path), columns=used,
                        detected=detected, file_format=records.fmt, places=records.places)


# ---------------------------------------------------------------- labels


def _as_class_id(value: Any) -> int | None:
    """An integer id given as an int, an integral float, or a string of either ("1", "1.0", " 2 ")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        if re.fullmatch(r"[+-]?\d+\.0*", text):
            return int(float(text))
    return None


class _LabelIndex:
    """A model's label names looked up exactly, then ignoring case; integer ids as ids."""

    def __init__(self, label_names: Sequence[str]):
        self.names = list(label_names)
        self.exact = {name: i for i, name in enumerate(self.names)}
        self.folded: dict[str, int] = {}
        for i, name in enumerate(self.names):
            self.folded.setdefault(str(name).strip().casefold(), i)

    def __call__(self, value: Any) -> int | None:
        if isinstance(value, str):
            key = value.strip()
            if key in self.exact:
                return self.exact[key]
            if key.casefold() in self.folded:
                return self.folded[key.casefold()]
        as_int = _as_class_id(value)
        if as_int is not None and 0 <= as_int < len(self.names):
            return as_int
        return None

    def hint(self, value: Any) -> str:
        generic = all(re.fullmatch(r"LABEL_\d+", str(n)) for n in self.names)
        if _as_class_id(value) == -1:
            return " (-1 marks an unlabelled row, as in a GLUE test split; use a split with labels)"
        if generic and isinstance(value, str) and _as_class_id(value) is None:
            return " (the model's config.json names its classes generically, so give the class ids)"
        return ""


def class_ids(data: LabelledData, label_names: Sequence[str]) -> np.ndarray:
    """Class id of each row's label: the model's label name (any case), or its integer id."""
    index = _LabelIndex(label_names)
    ids = np.empty(len(data), dtype=np.int64)
    for row, label in enumerate(data.labels):
        found = index(label)
        if found is None:
            raise UserError(
                f"Unknown label '{label}' at {data.where(row)}; the model's labels are: "
                f"{', '.join(map(str, label_names))} (or their ids 0-{len(label_names) - 1}){index.hint(label)}."
            )
        ids[row] = found
    return ids


def tag_sequences(data: LabelledData, label_names: Sequence[str]) -> list[list[str]]:
    """One tag per whitespace-separated word of each text: a list (of names or ids), or tags separated by
    spaces. Names match the model's in any case; ids are the model's ids (its config.json id2label)."""
    index = _LabelIndex(label_names)
    sequences: list[list[str]] = []
    for row, (text, label) in enumerate(zip(data.texts, data.labels)):
        parsed = parse_cell(label)
        tags = parsed if isinstance(parsed, list) else str(label).split()
        words = text.split()
        if len(tags) != len(words):
            raise UserError(
                f"{data.where(row)} has {len(words)} words but {len(tags)} tags; give one tag per "
                f"whitespace-separated word."
            )
        names = []
        for tag in tags:
            found = index(tag)
            if found is None:
                raise UserError(f"Unknown tag '{tag}' at {data.where(row)}; the model's labels are: "
                                f"{', '.join(map(str, label_names))} (or their ids 0-{len(label_names) - 1}).")
            names.append(index.names[found])
        sequences.append(names)
    return sequences


def answer_texts(data: LabelledData) -> list[list[str]]:
    """Gold answers of each question: a string, a list of strings, or SQuAD's {"text": [...], ...}.

    SQuAD v2.0's unanswerable questions (an empty answer list) have the empty answer as their gold.
    """
    answers: list[list[str]] = []
    for row, label in enumerate(data.labels):
        label = parse_cell(label)
        if isinstance(label, str) and label.strip().startswith("{") and label.strip().endswith("}"):
            raise UserError(f"The answers at {data.where(row)} are not readable ({label.strip()[:60]}); write them as "
                            f"JSON, e.g. {{\"text\": [\"...\"]}}, or export the data as JSON Lines.")
        if isinstance(label, dict):
            if "text" not in label:
                raise UserError(f"The answers at {data.where(row)} have no 'text'; give {{\"text\": [...]}} as SQuAD does.")
            value = label["text"]
            if isinstance(value, list) and not value:
                answers.append([""])
                continue
        else:
            value = label
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


def read_calibration_texts(path: Path | str, text_column: str | None = "text",
                           pair_column: str | None = "text_pair") -> tuple[list[str], list[str] | None]:
    """Texts for int8 calibration: a .txt file (one text per line) or the text column of a data file.

    The default column names (text, text_pair) fall back to the usual names when absent.
    """
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
    records = _read_file(path)
    if not records.rows:
        raise UserError(f"{path} has no rows; give at least one calibration text.")
    header = _Header(records.header, path)
    text = header.find(text_column) if text_column else None
    if text is None and text_column not in (None, "text"):
        raise header.missing("text", text_column)
    pair = header.find(pair_column) if pair_column else None
    if text is None:
        spec = _ANY_TASK
        layouts = [(header.find(a), header.find(b)) for a, b in spec["pairs"] if header.has(a) and header.has(b)]
        if len(layouts) == 1 and pair is None:
            text, pair = layouts[0]
        else:
            text = _one_of(header, "text", spec["text"], "text")
    where = [f"{records.places[i]} of {path}" if records.places else f"line {n} of {path}"
             for i, n in enumerate(records.lines)]
    texts = []
    for record, at in zip(records.rows, where):
        joined = _word_list(record.get(text), text, at)
        texts.append(joined if joined is not None else _cell_text(record.get(text), text, at))
    if pair is not None:
        return texts, [_cell_text(r.get(pair), pair, at) for r, at in zip(records.rows, where)]
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
