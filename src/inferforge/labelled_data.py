"""Labelled data for judging variants on real text, and the movie-review sentences used by the demo.

Files are read as they are:

* CSV or TSV with a header row; JSON Lines (`.jsonl`, `.ndjson`, or `.json` as Hugging Face `to_json`
  writes it); a `.json` array of objects, or of columns (`{"text": [...], "label": [...]}`, and what
  pandas' `to_json` writes by default);
* the original SQuAD v1.1/v2.0 `.json` file (data -> paragraphs -> qas);
* CoNLL-style token/tag text (`.conll`, `.iob`, `.iob2`, `.bio`): one token per line with its tag in the
  last column, a blank line between sentences, `-DOCSTART-` lines skipped; CoNLL-U (`.conllu`);
* entities as character spans of a text, as doccano, spaCy and Prodigy export them (`{"text": ..., "label":
  [[0, 5, "PER"]]}`, `"entities"` / `"spans"` / `"ents"` of `[start, end, label]` or `{"start", "end", "label"}`):
  read as words tagged B-/I- (`_span_tags`);
* MRQA's JSON Lines (a context per line with its questions); what annotation tools export (Label Studio's JSON,
  Prodigy's JSON Lines: `annotation_exports`);
* token-classification tables of one word per row, sentences split at blank lines or by a sentence id column
  (`word_rows`); one 0/1 column per class of a multi-label model, with no label column (`class_columns`);
* any of these text formats compressed as the Hub often ships them (`test.jsonl.gz`, `.bz2`, `.xz`);
* Parquet (`.parquet`, the Hub's format) and Arrow (`.arrow`, `.feather`), read with pyarrow;
* a folder: what `datasets`' `save_to_disk` writes (a Dataset: state.json + .arrow files; a DatasetDict:
  dataset_dict.json + one folder per split), or a Hub repository's files named by split
  (`data/test-00000-of-00001.parquet`, `test.jsonl`...). The split is the one asked for, else `test`,
  else `validation`.

Texts without labels (`--calibration-data`, `--validation-texts`) come from the same sources, or a `.txt` file
with one text per line, through one reader (`read_texts`).

The text, second-text and label columns are the ones the user names; a column not named is found by its
usual names (`COLUMN_CANDIDATES`, header matched case-insensitively), `text` / `text_pair` / `label`
first. A missing or ambiguous column, an empty cell, an unreadable line or an empty file is a `UserError`
naming the file, the line and what to change. Labels are checked against the model only when they are
turned into class ids (`class_ids`, `tag_sequences`), because only the model knows its labels: integer
ids go through the dataset's class names (`ClassLabel` in the `datasets` features a Parquet/Arrow file
or dataset_info.json carries, or a `label_text` column beside the ids as SetFit's datasets have) to the model's own
ids; ids without names are taken as the model's ids. true/false labels are ids 1/0 of a two-class model (unless
it names its classes so); multi-label rows are lists of classes, or 0/1 vectors with one value per class. Rows
marked as having no gold label (-1, SNLI's '-') are left out of the score, and said.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import csv
import hashlib
import itertools
import json
import lzma
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

from inferforge.errors import UserError, first_line

DATA_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
                 ".conll": "conll", ".iob": "conll", ".iob2": "conll", ".bio": "conll", ".conllu": "conllu",
                 ".parquet": "parquet", ".arrow": "arrow", ".feather": "arrow"}
ARROW_FORMATS = {"parquet": "Parquet", "arrow": "Arrow"}
# The split used when none is asked for: the first of these a dataset has.
DEFAULT_SPLITS = ("test", "validation", "dev", "valid")
# A split may be sliced as datasets allows: test[:200], validation[10%:20%].
_SLICED = re.compile(r"(?P<name>[^\[\]]+)\[(?P<start>-?\d*%?):(?P<stop>-?\d*%?)\]")
TEXT_SUFFIXES = {".txt"}
OPTION = {"text": "--text-column", "pair": "--pair-column", "label": "--label-column"}

# Usual names of the columns, per task, in the order they are tried after the defaults (text, text_pair,
# label). Pairs are found as layouts: both columns of one layout must be present.
_PAIR_LAYOUTS = (("text", "text_pair"), ("sentence1", "sentence2"), ("premise", "hypothesis"),
                 ("question1", "question2"), ("question", "context"), ("question", "sentence"),
                 ("sentence_a", "sentence_b"), ("text_a", "text_b"), ("text1", "text2"),
                 ("question", "passage"), ("query", "passage"), ("query", "document"),  # BoolQ; rerankers
                 ("context", "hypothesis"),  # ANLI's own files
                 ("#1 string", "#2 string"))  # GLUE's own MRPC files
_SINGLE_TEXTS = ("text", "sentence", "review", "content", "document", "review_body",
                 "comment_text", "tweet", "utterance")  # comment_text: Jigsaw's toxic comments; utterance: intents
COLUMN_CANDIDATES: dict[str, dict[str, tuple]] = {
    "text-classification": {
        "text": _SINGLE_TEXTS + ("sentence1", "premise", "question1", "question", "sentence_a", "text_a", "text1"),
        "pairs": _PAIR_LAYOUTS,
        "label": ("label", "labels", "gold_label", "class", "category", "sentiment", "answer",  # answer: google/boolq
                  "target", "is_duplicate", "intent"),  # is_duplicate: GLUE's own QQP files; intent: clinc_oos
    },
    "token-classification": {
        "text": ("text", "tokens", "words"),
        "pairs": (),
        "label": ("label", "ner_tags", "tags", "labels", "ner", "upos", "tag", "ner_tag",
                  "entities", "spans", "ents"),  # spans: doccano, spaCy
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
# Label columns looked for only when none of the task's usual ones is there: a number per row (an STS-B file's
# 'score' for a regression head), a flattened SQuAD file's 'answer_text'. Columns that often sit beside a label (a
# confidence score) make no ambiguity with it.
_LABEL_FALLBACK = {"text-classification": ("score", "similarity_score", "relatedness_score", "quality"),  # MRPC's
                   "question-answering": ("answer_text",)}
# Sentence-embedding triplets without a score (sentence-transformers' all-nli and MS MARCO triplets): an anchor, a text
# like it and one unlike it, scored by how often the anchor is closer to the first (`EvalSet`).
TRIPLET_LAYOUTS = (("anchor", "positive", "negative"), ("query", "positive", "negative"))
TRIPLETS_NOTE = ("rows are triplets (an anchor, a text like it and one unlike it) with no similarity score, so a "
                 "variant is scored by the share of triplets whose anchor embedding is closer (cosine) to the positive "
                 "than to the negative, as sentence-transformers' TripletEvaluator does")
# Label columns taken before the task's usual ones when present: a similarity score for embeddings, also beside a
# 'label' column (SICK's label is its entailment class, its relatedness_score the similarity).
_LABEL_FIRST = {"feature-extraction": ("score", "similarity_score", "similarity", "relatedness_score")}
# Label columns of entities as character spans (doccano, spaCy, Prodigy): taken only when no column of tags is there.
SPAN_COLUMNS = ("entities", "spans", "ents")
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
    """Rows of labelled text as read from a file. `lines[i]` is where row i is, for messages: a file line,
    or (`unit` "row index") its 0-based row in a table; `places[i]`, when given, says it in full (e.g.
    SQuAD's nested JSON, or a split made of several files)."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[Any]
    lines: list[int]
    source: str
    columns: DataColumns = field(default_factory=DataColumns)
    detected: tuple[str, ...] = ()  # the roles (text, pair, label) found by name rather than given
    file_format: str = ""
    places: list[str] | None = None
    unit: str = "line"
    split: str | None = None  # the split of a dataset folder that was read
    class_names: tuple[str, ...] | None = None  # the dataset's names of the label ids (datasets ClassLabel)
    notes: tuple[str, ...] = ()  # what the output should say about how the data was read
    # No label column, but columns of 0/1 (Jigsaw's toxic, obscene...; GoEmotions' raw CSV): each label is then the
    # row's {column: value} of its columns other than the texts, read as one column per class of a multi-label
    # model (`class_column_sets`).
    class_columns: tuple[str, ...] | None = None
    class_columns_matched: bool = False  # class_columns are the model's classes' (after `class_column_sets`)
    decimal_comma: bool = False  # numbers may be written 4,5 (a semicolon CSV from a decimal-comma locale)
    # Sentence-embedding triplets (anchor, positive, negative; no score): texts are the anchors, pairs the texts like
    # them, labels the texts unlike them (`TRIPLET_LAYOUTS`).
    triplets: bool = False

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

    @property
    def name(self) -> str:
        """The file, with the split of a dataset folder: "data/glue-sst2 (split 'validation')"."""
        return self.source + (f" (split '{self.split}')" if self.split else "")

    def where(self, row: int) -> str:
        if self.places is not None:
            return self.places[row]
        return f"{self.unit} {self.lines[row]} of {self.name}"

    def describe(self) -> str:
        """Which columns were used, e.g. "text 'sentence1', pair 'sentence2', label 'label' (detected)"."""
        c = self.columns
        if self.triplets:
            label = [f"negative '{c.label}'"]
        elif self.class_columns is None:
            label = [f"label '{c.label}'"]
        elif self.class_columns_matched:
            label = [f"labels in one 0/1 column per class of the model ({_listing(self.class_columns, 6)})"]
        else:  # read before the model is known: which of them name its classes is found when it is
            label = [f"labels in 0/1 columns, one per class, matched to the model's classes by name (candidates: "
                     f"{_listing(self.class_columns, 6)})"]
        parts = [f"text '{c.text}'"] + ([f"pair '{c.pair}'"] if c.pair else []) + label
        detected = f" (detected: {', '.join(self.detected)})" if self.detected else ""
        split = f", split '{self.split}'" if self.split else ""
        return (", ".join(parts) + detected + (f", read as {self.file_format}" if self.file_format else "") + split)

    def record(self) -> dict:
        """What report.json and `evaluate --json` store about the data (the label mapping is added by the task)."""
        c = self.columns
        return {"source": self.source, "format": self.file_format, "split": self.split, "rows": len(self),
                "columns": {"text": c.text, "pair": c.pair, "label": c.label, "detected": list(self.detected),
                            **({"triplets": True} if self.triplets else {}),
                            **({"class_columns": list(self.class_columns)} if self.class_columns is not None else {})},
                "class_names": list(self.class_names) if self.class_names is not None else None,
                "notes": list(self.notes)}


# Text data compressed as the Hub often ships it (train.jsonl.gz, dev.tsv.bz2): read through the module named.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


def _data_suffix(path: Path) -> str:
    """The suffix that names a file's format, under a compression suffix: '.jsonl' for test.jsonl.gz."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) > 1 and suffixes[-1] in COMPRESSIONS:
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


def _compression(path: Path) -> str | None:
    return COMPRESSIONS.get(path.suffix.lower()) if len(path.suffixes) > 1 else None


def _open_text(path: Path, newline: str | None = ""):
    """A data file opened as UTF-8 text (a BOM skipped), decompressed on the fly when its name says so."""
    module = _compression(path)
    if module is None:
        return path.open(encoding="utf-8-sig", newline=newline)
    import importlib

    return importlib.import_module(module).open(path, "rt", encoding="utf-8-sig", newline=newline)


_TAG = re.compile(r"O|[BIESLU][-_]\S+")


# A header line some CoNLL-style files start with ("token label", "WORD POS TAG"): the names of the word and tag columns.
_WORD_HEADER = {"token", "tokens", "word", "words", "form", "text"}
_TAG_HEADER = {"tag", "tags", "label", "labels", "ner", "nertag", "nertags", "entity", "iob", "bio"}


def _word_tag_header(cells: list[str]) -> bool:
    return len(cells) >= 2 and _name_key(cells[0]) in _WORD_HEADER and _name_key(cells[-1]) in _TAG_HEADER


def _conll_text(path: Path) -> bool:
    """A .txt file in CoNLL layout (conll2003's own train.txt / test.txt: `-DOCSTART-`, then a token and its tags per
    line, a blank line between sentences), read by its first lines."""
    try:
        with _open_text(path, newline=None) as f:
            head = list(itertools.islice(f, 200))
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError):
        return False
    tokens = [line.split() for line in head if line.strip() and not line.startswith("#")]
    if tokens and _word_tag_header(tokens[0]):
        tokens = tokens[1:]
    if tokens and tokens[0][0] == "-DOCSTART-":
        return True
    return (len(tokens) > 1 and any(not line.strip() for line in head)
            and all(len(t) >= 2 and _TAG.fullmatch(t[-1]) for t in tokens))


def _conll_tsv(path: Path) -> bool:
    """A .tsv without header holding a token and its tag per line (WNUT-17 and many NER corpora: `word<TAB>tag`, a
    blank line between sentences): every line of its first ones two tab-separated cells or more, the last a tag, and
    no first line naming a text column."""
    try:
        with _open_text(path, newline=None) as f:
            head = list(itertools.islice(f, 200))
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError):
        return False
    lines = [line.rstrip("\r\n") for line in head if line.strip() and not line.startswith("#")]
    if len(lines) < 2 or not any(not line.strip() for line in head):
        return False
    cells = [[c.strip() for c in line.split("\t")] for line in lines]
    if _Header(cells[0], path).has("text") or any(_Header(cells[0], path).has(c) for c in _ANY_TASK["text"]):
        return False
    return all(len(c) >= 2 and all(c) and _TAG.fullmatch(c[-1]) for c in cells if c[0] != "-DOCSTART-")


_FASTTEXT_LABEL = "__label__"


def _fasttext_text(path: Path) -> bool:
    """A .txt file in fastText's layout: every line `__label__pos __label__x some text` (its first lines read)."""
    try:
        with _open_text(path, newline=None) as f:
            head = [line for line in itertools.islice(f, 200) if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError):
        return False
    return bool(head) and all(line.lstrip().startswith(_FASTTEXT_LABEL) for line in head)


def _text_kind(path: Path) -> str | None:
    """The format of a .txt file: CoNLL or fastText layout; None: plain text."""
    if not path.is_file():
        return None
    return "conll" if _conll_text(path) else "fasttext" if _fasttext_text(path) else None


def _file_kind(path: Path) -> str | None:
    """The format a data file is read in by its name (a .txt only in CoNLL or fastText layout); None: not a data
    file."""
    suffix = _data_suffix(path)
    if suffix in TEXT_SUFFIXES:
        return _text_kind(path)
    fmt = DATA_SUFFIXES.get(suffix)
    if fmt == "tsv" and path.is_file() and _conll_tsv(path):
        return "conll"
    return fmt


def _data_format(path: Path) -> str:
    if _data_suffix(path) in TEXT_SUFFIXES and _text_kind(path):
        return _text_kind(path)
    fmt = DATA_SUFFIXES.get(_data_suffix(path))
    if fmt == "tsv" and path.is_file() and _conll_tsv(path):
        return "conll"
    if fmt is None or (fmt in ARROW_FORMATS and _compression(path)):
        raise UserError(
            f"Cannot read labelled data from {path}: use a .csv, .tsv, .jsonl, .json, .parquet, .arrow, .conll or "
            f".conllu file (the text ones may be .gz, .bz2 or .xz; a .txt file only in CoNLL layout, a token and its "
            f"tag per line, or fastText's, __label__name and the text on each line), or a folder written by "
            f"datasets' save_to_disk (got '{''.join(path.suffixes[-2:]) or 'no suffix'}')."
        )
    return fmt


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"Data file {path} does not exist.")
    if not path.is_file():
        raise UserError(f"Data path {path} is not a file.")


@dataclass
class _Records:
    rows: list[dict[str, Any]] | None  # None: a table whose rows are read for the columns used only
    lines: list[int]
    header: list[str]
    fmt: str
    places: list[str] | None = None
    unit: str = "line"
    class_names: dict[str, list[str]] = field(default_factory=dict)  # column -> datasets ClassLabel names
    table: "_ArrowFiles | None" = None
    notes: tuple[str, ...] = ()  # what the output should say about how the file was read
    decimal_comma: bool = False  # a semicolon CSV, as Excel writes it where the comma is the decimal mark

    @property
    def count(self) -> int:
        return len(self.rows) if self.rows is not None else self.table.count

    def rows_for(self, columns: Sequence[str]) -> list[dict[str, Any]]:
        if self.rows is None:
            self.rows = self.table.rows(list(dict.fromkeys(columns)))
        return self.rows

    def where(self, i: int, source: str) -> str:
        return self.places[i] if self.places is not None else f"{self.unit} {self.lines[i]} of {source}"


def _read_records(path: Path) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """All records of a data file with their line numbers and the columns seen."""
    records = _read_file(path)
    return records.rows_for(records.header), records.lines, records.header


@contextlib.contextmanager
def _long_cells():
    """The csv module's field size limit lifted while a file is read: a text is as long as it is (a long document of
    131,073 characters or more was "not a readable CSV file"); a quote that swallows rows is found by `_check_quotes`."""
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # the largest a C long holds everywhere
    try:
        yield
    finally:
        csv.field_size_limit(limit)


def _read_file(path: Path) -> _Records:
    fmt = _data_format(path)
    if fmt in ARROW_FORMATS:
        return _ArrowFiles([path], fmt, str(path)).records()
    try:
        with _open_text(path) as f, _long_cells():
            if fmt in ("csv", "tsv"):
                return _read_csv(f, path, fmt)
            if fmt == "conll":
                records = _read_conll(f, path)
                if _data_suffix(path) == ".tsv":  # WNUT-17's word<TAB>tag lines
                    records.notes = (f"{path} has no header and holds a token and its tag per line, a blank line "
                                     f"between sentences, so it is read as CoNLL",)
                return records
            if fmt == "conllu":
                return _read_conllu(f, path)
            if fmt == "fasttext":
                return _read_fasttext(f, path)
            content = f.read()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
    except csv.Error as exc:
        raise UserError(f"{path} is not a readable CSV file ({exc}).") from None
    except (OSError, EOFError, ValueError, lzma.LZMAError) as exc:  # gzip.BadGzipFile, a cut-short archive
        if _compression(path) is None:
            raise
        detail = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise UserError(f"{path} is not a readable {_compression(path)} file ({detail}); download it again or "
                        f"decompress it first.") from None
    stripped = content.lstrip()
    if fmt == "json" and stripped.startswith("["):
        from inferforge.annotation_exports import is_label_studio, read_label_studio

        records = _read_json_array(content, path)
        return read_label_studio(records, path) if is_label_studio(records) else records
    if fmt == "json" and stripped.startswith("{"):
        try:
            whole = json.loads(content)
        except json.JSONDecodeError:
            whole = None  # JSON Lines in a .json file (what Hugging Face `to_json` writes)
        if isinstance(whole, dict):
            records = _read_json_object(whole, path)
            if records is not None:
                return records
    records = _read_json_lines(content, path, fmt)
    if "qas" in records.header and "context" in records.header:  # MRQA's shared-task files: a context per line
        return _read_mrqa(records, path)
    from inferforge.annotation_exports import is_prodigy, read_prodigy

    return read_prodigy(records, path) if is_prodigy(records) else records


def _read_json_object(whole: dict, path: Path) -> _Records | None:
    """One JSON object holding the whole data set: SQuAD, records under "data" (or under the one key whose value is a
    list of objects: {"examples": [...]}, {"version": 2, "sentences": [...]}), or columns. None: one row."""
    data = whole.get("data")
    lists = [k for k, v in whole.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if data is None and len(lists) == 1 and not any(isinstance(v, list) for k, v in whole.items() if k != lists[0]):
        data = whole[lists[0]]
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        squad_keys = {"title", "paragraphs"}
        if "data" in whole and ("version" in whole or any("paragraphs" in x or "qas" in x or set(x) <= squad_keys
                                                          for x in data)):
            return _read_squad(whole, path)
        seen: dict[str, None] = {}
        for x in data:
            seen.update(dict.fromkeys(x))
        return _Records(data, list(range(len(data))), list(seen), "JSON records", unit="row index")
    if isinstance(data, list) and isinstance(whole.get("columns"), list) and all(isinstance(x, list) for x in data):
        columns = [str(c) for c in whole["columns"]]  # pandas to_json(orient="split")
        for i, x in enumerate(data):
            if len(x) != len(columns):
                raise UserError(f"Row index {i} of {path} has {len(x)} values for {len(columns)} columns; "
                                f"give one value per column.")
        return _Records([dict(zip(columns, x)) for x in data], list(range(len(data))), columns, "JSON columns",
                        unit="row index")
    if whole and all(isinstance(v, list) for v in whole.values()):  # {"text": [...], "label": [...]}
        lengths = {k: len(v) for k, v in whole.items()}
        if len(set(lengths.values())) > 1:
            raise UserError(f"The columns of {path} have different lengths "
                            f"({', '.join(f'{k}: {n}' for k, n in lengths.items())}); give every column one value per row.")
        n = next(iter(lengths.values()))
        rows = [{k: v[i] for k, v in whole.items()} for i in range(n)]
        return _Records(rows, list(range(n)), list(whole), "JSON columns", unit="row index")
    if whole and all(isinstance(v, dict) for v in whole.values()):
        # pandas to_json(): {column: {index: value}} by default, {index: {column: value}} with orient="index"
        outer = list(whole)
        by_index = all(re.fullmatch(r"-?\d+", k) for k in outer) and not all(
            re.fullmatch(r"-?\d+", str(k)) for v in whole.values() for k in v)
        if by_index:
            rows = [whole[k] for k in outer]
            seen = {}
            for r in rows:
                seen.update(dict.fromkeys(r))
            return _Records(rows, [int(k) for k in outer], list(seen), "JSON columns", unit="row index")
        index = list(dict.fromkeys(k for v in whole.values() for k in v))
        rows = [{c: whole[c].get(i) for c in outer} for i in index]
        lines = [int(i) if re.fullmatch(r"-?\d+", i) else n for n, i in enumerate(index)]
        return _Records(rows, lines, outer, "JSON columns", unit="row index")
    return None


def _header_delimiter(f, fmt: str) -> str:
    """The delimiter of a CSV file's cells, from its header line: a comma, or the semicolon that Excel writes in the
    many locales where the comma is the decimal mark (or a tab: a TSV saved as .csv) when the header has no comma.
    `f` is left at its start."""
    first = next((line for line in f if line.strip()), "")
    f.seek(0)
    if fmt != "csv":
        return "\t"
    bare = re.sub(r'"(?:[^"]|"")*"', "", first)  # quoted header cells may hold any character
    if "," in bare:
        return ","
    return next((d for d in (";", "\t") if d in bare), ",")


def _read_csv(f, path: Path, fmt: str) -> _Records:
    delimiter = _header_delimiter(f, fmt)
    records = _read_delimited(f, path, fmt, delimiter)
    records.decimal_comma = delimiter == ";"
    if delimiter != ("," if fmt == "csv" else "\t"):
        shown = {";": "semicolons", "\t": "tabs"}[delimiter]
        records.notes = (f"{path} separates its cells with {shown} (its header has no comma), so it is read so",
                         ) + records.notes
    other = next((d for d in (";", "\t", ",", "|") if d != delimiter and len(records.header) == 1
                  and d in records.header[0]), None)
    if other is not None:
        shown = {"\t": "tabs", ";": "semicolons", ",": "commas", "|": "'|'"}[other]
        raise UserError(f"The header of {path} is one column, '{records.header[0][:60]}': its cells look separated by "
                        f"{shown}, not {'commas' if fmt == 'csv' else 'tabs'}; save it as a comma-separated .csv "
                        f"or a tab-separated .tsv.")
    return records


def _read_delimited(f, path: Path, fmt: str, delimiter: str) -> _Records:
    if fmt == "tsv":
        # A raw TSV (GLUE's, and most written without a csv module) does not quote: a text that starts with a quote
        # ('"Hello," he said') loses its quotes, or swallows the rows after it up to the next quote into one cell.
        # Unless the file reads as properly quoted (strictly, no cell holding a tab), it is read with quotes as plain
        # characters, as datasets reads GLUE, when every line then has a cell per column.
        try:
            records = _csv_records(f, path, fmt, strict=True)
            if not any("\t" in v for r in records.rows for v in r.values() if isinstance(v, str)):
                return records
        except (csv.Error, UserError):  # a quote out of place, or a row of too many cells once quotes swallowed tabs
            pass
        for quoting in (csv.QUOTE_NONE, csv.QUOTE_MINIMAL):
            with _open_text(path) as again:
                records = _csv_records(again, path, fmt, quoting=quoting)
            if records is not None:
                return records
    return _csv_records(f, path, fmt, delimiter=delimiter)


_QUOTED_CELL = re.compile(r'"((?:[^"]+|"")*)("?)')  # a quoted cell, and its closing quote unless the file ends first
_UNQUOTED_CELL = {d: re.compile(r"[^" + d + r"\r\n]*") for d in (",", "\t", ";")}


def _runaway_quote(lines: list[str], delimiter: str) -> tuple[int, int | None] | None:
    """A quote that opened a cell by mistake, in the lines of one row as the csv module read them: (the line it opens
    on, the line it closes on or None: never), as indices of `lines`. The csv module reads a quoted cell on to the
    next quote, anywhere: a quoted cell that runs over a line end and is never closed, or is closed with more text
    after it (the quote that ends it was meant to open or end another cell), swallowed the rows in between.
    None: every quoted cell ends where a cell ends."""
    text = "".join(lines)
    starts = list(itertools.accumulate(map(len, lines[:-1]), initial=0))
    unquoted = _UNQUOTED_CELL[delimiter]
    position = 0
    while position < len(text):
        if text[position] == '"':
            cell = _QUOTED_CELL.match(text, position)
            body, closed, position = cell.group(1), cell.group(2), cell.end()
            if re.search(r"[\r\n]", body.rstrip("\r\n") if not closed else body):
                opens = bisect.bisect_right(starts, cell.start()) - 1
                if not closed:
                    return opens, None
                if position < len(text) and text[position] not in (delimiter, "\r", "\n"):
                    return opens, bisect.bisect_right(starts, position - 1) - 1
        # the cell, or what follows its closing quote (the csv module keeps it in the cell), then the delimiter
        position = unquoted.match(text, position).end() + 1
    return None


def _check_quotes(lines: list[str], first: int, path: Path, delimiter: str, ended: bool = True) -> None:
    """A UserError naming the line where a quote swallowed rows (`_runaway_quote`), if one did; `first` is the
    number of lines[0] in the file, `ended` False when the csv module stopped before the end of the file."""
    found = _runaway_quote(lines, delimiter)
    if found is None:
        return
    opens, closes = found
    advice = 'close the quote where its cell ends (a quote inside a quoted cell is written twice, "")'
    if closes is None:
        still = "is never closed" if ended else f"is still open on line {first + len(lines) - 1}"
        raise UserError(f"Line {first + opens} of {path} opens a quote (\") that {still}, so the lines after it would "
                        f"be read as one cell; {advice}.")
    raise UserError(f"Line {first + opens} of {path} opens a quote (\") that closes only on line {first + closes}, with "
                    f"more text after it, so lines {first + opens}-{first + closes} would be read as one cell; {advice}.")


def _csv_records(f, path: Path, fmt: str, quoting: int = csv.QUOTE_MINIMAL, strict: bool = False,
                 delimiter: str | None = None) -> _Records | None:
    """The rows of a CSV/TSV file; with QUOTE_NONE, None unless every line has as many cells as the header.

    A row read from several lines is checked for a quote that swallowed rows (`_check_quotes`): the csv module
    reads such a file without complaint (strict mode refuses it, and well-formed files with it)."""
    delimiter = delimiter or ("," if fmt == "csv" else "\t")
    raw: list[str] = []  # the lines of the row being read

    def file_lines():
        for line in f:
            raw.append(line)
            yield line

    reader = csv.DictReader(file_lines(), delimiter=delimiter, quoting=quoting, strict=strict)
    header = [name for name in (reader.fieldnames or []) if name is not None]
    checked = quoting != csv.QUOTE_NONE and not strict
    raw.clear()
    records, lines = [], []
    spanning: list[tuple[int, int]] = []  # the first and last line of each row read from several lines
    try:
        for record in reader:
            if any(line.strip() for line in raw[:-1]):  # more than the row's line and blank lines before it
                if checked:
                    _check_quotes(raw, reader.line_num - len(raw) + 1, path, delimiter)
                spanning.append((reader.line_num - len(raw) + 1, reader.line_num))
            raw.clear()
            if quoting == csv.QUOTE_NONE and (None in record or None in record.values()):
                return None
            if None in record:
                raise UserError(
                    f"Line {reader.line_num} of {path} has more cells than the header row "
                    f"({len(header)}); quote cells that contain the delimiter."
                )
            if all(v in (None, "") for v in record.values()):
                continue
            records.append(record)
            lines.append(reader.line_num)
    except csv.Error:  # e.g. a swallowing cell over the field size limit
        if checked:  # (DictReader counts lines at the rows it returns, its reader at each line)
            _check_quotes(raw, reader.reader.line_num - len(raw) + 1, path, delimiter, ended=False)
        raise
    notes = ()
    if spanning:  # the row count is not the line count: said, so that a quote that swallowed rows is seen
        (first, last), more = spanning[0], len(spanning) - 1
        notes = (f"quoted cells of {path} hold line breaks, so its rows are fewer than its lines (lines {first}-{last} "
                 f"are one row" + (f", and {more} more rows span several lines)" if more else ")"),)
    return _Records(records, lines, header, fmt.upper(), notes=notes)


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
                # No "answers" at all is no gold (a test file), not SQuAD 2.0's unanswerable question ("answers": [],
                # "is_impossible": true): left empty, so that scoring it is refused (texts alone are still read).
                given = "answers" in qa or bool(qa.get("is_impossible"))
                records.append({"id": qa.get("id"), "title": article.get("title"), "context": paragraph.get("context"),
                                "question": qa.get("question"),
                                "answers": {"text": [x.get("text") for x in answers],
                                            "answer_start": [x.get("answer_start") for x in answers]} if given else None})
                places.append(f"question '{qa.get('id', q + 1)}' (article {a + 1}, paragraph {p + 1}) of {path}")
    header = ["id", "title", "context", "question", "answers"] if records else []
    return _Records(records, list(range(1, len(records) + 1)), header, "SQuAD JSON", places)


def _read_mrqa(records: _Records, path: Path) -> _Records:
    """MRQA's JSON Lines (`{"header": ...}` first, then a context per line with its questions: `qas` of `question` and
    `answers`, a list of texts), one row per question as SQuAD's are read."""
    rows, places = [], []
    for record, line in zip(records.rows, records.lines):
        if set(record) == {"header"}:
            continue
        if not isinstance(record.get("qas"), list) or not all(isinstance(qa, dict) for qa in record["qas"]):
            raise UserError(f"Line {line} of {path} has no 'qas' list of questions; is this an MRQA file?")
        for q, qa in enumerate(record["qas"]):
            rows.append({"id": qa.get("qid", qa.get("id")), "context": record.get("context"),
                         "question": qa.get("question"), "answers": qa.get("answers")})
            places.append(f"question {q + 1} ('{qa.get('qid', '')}') of line {line} of {path}")
    header = ["id", "context", "question", "answers"] if rows else []
    return _Records(rows, list(range(1, len(rows) + 1)), header, "MRQA JSON Lines", places)


_COMMENT_KEYS = ("id", "sent_id", "text", "doc_id", "newdoc", "newpar", "domain")


def _conll_comment(cells: list[str]) -> bool:
    """A comment line before a sentence of a CoNLL file: "# id 1e6b... domain=en" (MultiCoNER), "# sent_id = 3" or
    "# text = ..." (as CoNLL-U writes them); not the token "#" with its tag ("# O", "# # B-NP O")."""
    return len(cells) > 1 and cells[0] == "#" and (cells[1].lower() in _COMMENT_KEYS or any("=" in c for c in cells))


def _read_conll(f, path: Path) -> _Records:
    records, lines = [], []
    tokens: list[str] = []
    tags: list[str] = []
    first = 0
    header: str | None = None
    for number, line in enumerate(f, start=1):
        cells = line.split()
        if cells and cells[0] == "-DOCSTART-":
            cells = []
        if not records and not tokens and header is None and _word_tag_header(cells):  # "token label" before the words
            header = " ".join(cells)
            continue
        if not tokens and _conll_comment(cells):  # MultiCoNER's "# id 1e6b... domain=en" before each sentence
            continue
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
    notes = (f"the first line of {path} ('{header}') names its columns, so it is not read as a word",) if header else ()
    return _Records(records, lines, ["tokens", "ner_tags"] if records else [], "CoNLL", notes=notes)


def _read_fasttext(f, path: Path) -> _Records:
    """fastText's supervised layout: `__label__pos some text` per line (several labels: a multi-label row)."""
    records, lines = [], []
    for number, line in enumerate(f, start=1):
        words = line.split()
        if not words:
            continue
        labels = [w[len(_FASTTEXT_LABEL):] for w in itertools.takewhile(lambda w: w.startswith(_FASTTEXT_LABEL), words)]
        text = " ".join(words[len(labels):])
        if not labels or not all(labels) or not text:
            raise UserError(f"Line {number} of {path} is not a fastText line (__label__name, then the text); write "
                            f"each row so.")
        records.append({"text": text, "label": labels[0] if len(labels) == 1 else labels})
        lines.append(number)
    return _Records(records, lines, ["text", "label"] if records else [], "fastText")


_CONLLU_COLUMNS = ("id", "tokens", "lemmas", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")


def _read_conllu(f, path: Path) -> _Records:
    """CoNLL-U (Universal Dependencies): ten tab-separated columns per word, `#` comments, blank line between
    sentences; multiword-token lines (1-2) and empty nodes (1.1) are skipped. Columns as datasets'
    universal_dependencies names them: tokens, lemmas, upos, xpos, feats, head, deprel."""
    records, lines = [], []
    sentence: dict[str, list[str]] = {}
    first = 0
    kept = ("tokens", "lemmas", "upos", "xpos", "feats", "head", "deprel")
    for number, line in enumerate(f, start=1):
        line = line.rstrip("\r\n")
        if line.startswith("#"):
            continue
        if not line.strip():
            if sentence:
                records.append(sentence)
                lines.append(first)
            sentence = {}
            continue
        cells = line.split("\t")
        if len(cells) != 10:
            raise UserError(f"Line {number} of {path} has {len(cells)} tab-separated columns where CoNLL-U has 10 "
                            f"(ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC); separate them with tabs.")
        if "-" in cells[0] or "." in cells[0]:
            continue
        if not sentence:
            first = number
            sentence = {k: [] for k in kept}
        for name, cell in zip(_CONLLU_COLUMNS, cells):
            if name in sentence:
                sentence[name].append(cell)
    if sentence:
        records.append(sentence)
        lines.append(first)
    return _Records(records, lines, list(kept) if records else [], "CoNLL-U")


# ---------------------------------------------------------------- Parquet, Arrow and dataset folders


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UserError("Reading Parquet or Arrow data needs pyarrow, which is missing from this environment; "
                        "install it with `pip install pyarrow`.") from None
    return pyarrow


def class_label_names(features: Any) -> dict[str, list[str]]:
    """Column -> class names, for the columns that `datasets` features declare as ClassLabel or as a sequence
    of ClassLabel (token tags), in any of the layouts datasets has written: {"_type": "ClassLabel", "names": [..]},
    {"_type": "Sequence" | "List" | "LargeList", "feature": ...} and the YAML shorthand [feature]."""

    def names(feature: Any) -> list[str] | None:
        if isinstance(feature, list) and len(feature) == 1:
            return names(feature[0])
        if not isinstance(feature, dict):
            return None
        kind = feature.get("_type")
        if kind == "ClassLabel":
            found = feature.get("names")
            return [str(n) for n in found] if isinstance(found, list) and found else None
        if kind in ("Sequence", "List", "LargeList"):
            return names(feature.get("feature"))
        return None

    if not isinstance(features, dict):
        return {}
    return {str(column): found for column, feature in features.items() if (found := names(feature)) is not None}


def _features_from_metadata(metadata: dict | None) -> dict | None:
    """The `datasets` features a Parquet/Arrow schema carries: metadata[b"huggingface"] = {"info": {"features": ...}}."""
    raw = (metadata or {}).get(b"huggingface")
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    features = info.get("info", {}).get("features") if isinstance(info, dict) else None
    return features if isinstance(features, dict) else None


def _card_feature_names(feature: Any) -> list[str] | None:
    """The class names of one feature of a dataset card's YAML (`dataset_info.features`): `dtype: {class_label:
    {names: {'0': neg, '1': pos}}}`, or under `sequence:` / `list:` for tags."""
    if not isinstance(feature, dict):
        return None
    label = feature.get("class_label")
    if isinstance(label, dict):
        names = label.get("names")
        if isinstance(names, dict):
            try:
                by_id = {int(k): str(v) for k, v in names.items()}
            except (TypeError, ValueError):
                return None
            if sorted(by_id) != list(range(len(by_id))):
                return None
            return [by_id[i] for i in range(len(by_id))] or None
        return [str(n) for n in names] if isinstance(names, list) and names else None
    for key in ("dtype", "sequence", "list", "feature"):
        found = _card_feature_names(feature.get(key))
        if found:
            return found
    return None


def _dataset_card(path: Path) -> Path | None:
    """The README.md of the Hub repository a data file or folder was downloaded from: in the folder itself, or up
    to two folders above a file (data/test.csv, sst2/validation-*.parquet)."""
    start = path if path.is_dir() else path.parent
    for folder in [start, *list(start.parents)[:2]]:
        card = folder / "README.md"
        if card.is_file():
            return card
    return None


def card_class_names(path: Path) -> tuple[dict[str, list[str]], Path | None]:
    """Column -> class names from the YAML header of the dataset card (README.md) beside the data, as the Hub
    writes it (`dataset_info: features: - name: label, dtype: class_label: names: {'0': negative, ...}`), and the
    card read. A card of several configurations is read for the one named by a folder above the data, else
    `default`, else the only one."""
    card = _dataset_card(path)
    if card is None:
        return {}, None
    try:
        text = card.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return {}, None
    match = re.match(r"---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", text, re.S)
    if match is None:
        return {}, None
    try:
        import yaml

        header = yaml.safe_load(match.group(1))
    except Exception:  # noqa: BLE001 - a card that is no YAML names no classes
        return {}, None
    infos = header.get("dataset_info") if isinstance(header, dict) else None
    if isinstance(infos, dict):
        infos = [infos]
    if not isinstance(infos, list):
        return {}, None
    infos = [i for i in infos if isinstance(i, dict)]
    try:
        parts = set(path.resolve().relative_to(card.parent.resolve()).parts)
    except ValueError:
        parts = set()
    chosen = (next((i for i in infos if i.get("config_name") in parts), None)
              or next((i for i in infos if i.get("config_name") in (None, "default")), None)
              or (infos[0] if len(infos) == 1 else None))
    features = chosen.get("features") if chosen else None
    if not isinstance(features, list):
        return {}, None
    found = {str(f["name"]): names for f in features if isinstance(f, dict) and "name" in f
             and (names := _card_feature_names(f))}
    return found, card if found else None


def _unreadable(path: Path, fmt: str, error: Exception) -> UserError:
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError:
        head = b""
    if head.startswith(b"version https://git-lfs"):
        return UserError(f"{path} is a Git LFS pointer, not the data; fetch the file itself (git lfs pull, or "
                         f"huggingface-cli download) and point at it again.")
    text = " ".join(str(error).split())
    if "magic bytes" in text:
        detail = "no Parquet footer where the file ends: it is cut short, or not Parquet"
    else:  # pyarrow's first sentence only, so that the message stays one sentence
        detail = re.split(r"(?<=[a-z0-9)'])\. ", text)[0].rstrip(".")[:160] or type(error).__name__
    writer = "ds.to_parquet(...)" if fmt == "parquet" else "ds.save_to_disk(...)"
    return UserError(f"{path} is not a readable {ARROW_FORMATS[fmt]} file ({detail}); write it again ({writer}) "
                     f"or check that the download finished.")


class _ArrowFiles:
    """The Parquet or Arrow files of one split, read as one table: column names and features from the first
    file's schema, rows read only for the columns used."""

    def __init__(self, files: list[Path], fmt: str, source: str, features: dict | None = None):
        pa = _pyarrow()
        self.files, self.fmt, self.source = files, fmt, source
        self.counts: list[int] = []
        schema = None
        for path in files:
            try:
                if fmt == "parquet":
                    meta = pa.parquet.ParquetFile(path)
                    file_schema, count = meta.schema_arrow, meta.metadata.num_rows
                else:
                    table = self._read_arrow(path)
                    file_schema, count = table.schema, table.num_rows
            except (pa.ArrowException, OSError, ValueError) as error:
                raise _unreadable(path, fmt, error) from None
            schema = schema or file_schema
            self.counts.append(count)
        self.schema = schema
        self.count = sum(self.counts)
        self.features = _features_from_metadata(schema.metadata) or features

    @staticmethod
    def _read_arrow(path: Path):
        """datasets writes the Arrow IPC stream format; Feather / IPC files are read too."""
        import pyarrow as pa
        import pyarrow.feather

        try:  # memory-mapped: a multi-GB cache file is not copied into memory (its buffers keep the map alive)
            return pa.ipc.open_stream(pa.memory_map(str(path))).read_all()
        except pa.ArrowInvalid:
            return pyarrow.feather.read_table(str(path), memory_map=True)

    def rows(self, columns: list[str]) -> list[dict[str, Any]]:
        pa = _pyarrow()
        rows: list[dict[str, Any]] = []
        for path in self.files:
            try:
                if self.fmt == "parquet":
                    table = pa.parquet.read_table(path, columns=columns)
                else:
                    table = self._read_arrow(path).select(columns)
                rows.extend(table.to_pylist())
            except KeyError as error:
                raise UserError(f"{path} has no column {error} although the first file of {self.source} has it; "
                                f"give files with the same columns.") from None
            except (pa.ArrowException, OSError, ValueError) as error:
                raise _unreadable(path, self.fmt, error) from None
        return rows

    def records(self) -> _Records:
        fmt = ARROW_FORMATS[self.fmt]
        return _Records(None, list(range(self.count)), list(self.schema.names), fmt, unit="row index",
                        class_names=class_label_names(self.features), table=self)


_SHARD = re.compile(r"[-_.]?\d{3,}-of-\d{3,}$")


def _split_of_file(folder: Path, path: Path) -> str:
    """A Hub repository's split name of a data file: test-00000-of-00001.parquet, test.jsonl, test/0000.parquet."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    if _compression(path):  # test.jsonl.gz
        stem = stem[: -len(Path(stem).suffix)]
    stem = _SHARD.sub("", stem)
    if re.fullmatch(r"\d*", stem) or stem in ("data", "part") or stem.startswith("part-"):
        return path.parent.name if path.parent != folder else stem
    return stem


def _find_split_files(folder: Path) -> dict[str, list[Path]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and (_data_suffix(p) in DATA_SUFFIXES
                                                                    or _file_kind(p) == "conll")  # conll2003's *.txt
                   and not (_compression(p) and DATA_SUFFIXES.get(_data_suffix(p)) in ARROW_FORMATS)
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                   and p.name not in ("dataset_info.json", "dataset_infos.json", "dataset_dict.json", "state.json"))
    splits: dict[str, list[Path]] = {}
    for path in files:
        splits.setdefault(_split_of_file(folder, path), []).append(path)
    for split, paths in splits.items():
        parents = sorted({str(p.parent.relative_to(folder)) for p in paths})
        if len(parents) > 1:
            raise UserError(f"{folder} has '{split}' files in several folders ({', '.join(parents)}); point at the "
                            f"folder of the configuration you want.")
        kinds = {DATA_SUFFIXES.get(_data_suffix(p), "conll") for p in paths}
        if len(kinds) > 1:
            raise UserError(f"{folder} has '{split}' files of several formats ({', '.join(p.name for p in paths[:4])}); "
                            f"point at one file.")
    return splits


def _read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is not readable JSON ({first_line(error, 120)}); save the dataset again "
                        f"with save_to_disk.") from None


def _saved_dataset(folder: Path) -> _Records:
    """A folder written by Dataset.save_to_disk: state.json lists the .arrow files, dataset_info.json the features."""
    state = _read_json_file(folder / "state.json")
    names = [f.get("filename") for f in state.get("_data_files", []) if isinstance(f, dict)] if isinstance(state, dict) else []
    files = [folder / n for n in names if n] or sorted(folder.glob("*.arrow"))
    if not files:
        raise UserError(f"{folder} has a state.json but no .arrow files; save the dataset again with save_to_disk.")
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{missing[0]} is missing although {folder / 'state.json'} lists it; copy the whole folder "
                        f"that save_to_disk wrote.")
    info_path = folder / "dataset_info.json"
    info = _read_json_file(info_path) if info_path.is_file() else {}
    features = info.get("features") if isinstance(info, dict) else None
    return _ArrowFiles(files, "arrow", str(folder), features if isinstance(features, dict) else None).records()


def _split_files(files: list[Path], folder: Path) -> _Records:
    """One split of a Hub-style folder: its files read as one table (Parquet, Arrow) or one after another (text
    files, whose rows then say their own file in messages)."""
    fmt = DATA_SUFFIXES.get(_data_suffix(files[0]))
    if fmt in ARROW_FORMATS:
        return _ArrowFiles(files, fmt, str(folder)).records()
    merged = _Records([], [], [], "")
    places: list[str] = []
    for path in files:
        part = _read_file(path)
        rows = part.rows_for(part.header)
        merged.rows.extend(rows)
        merged.lines.extend(part.lines)
        merged.header.extend(h for h in part.header if h not in merged.header)
        merged.fmt = part.fmt
        merged.notes += part.notes
        places.extend(part.where(i, str(path)) for i in range(len(rows)))
    merged.places = places
    return merged


@dataclass
class _SplitChoice:
    name: str | None
    load: Any  # () -> _Records
    by_default: bool
    files: tuple[Path, ...] = ()  # the files of a split of a folder of files named by split (test.txt)


def _dataset_splits(folder: Path, split: str | None, defaults: Sequence[str] = DEFAULT_SPLITS,
                    choose: str = "name the one to evaluate on with --eval-split") -> tuple[list[_SplitChoice], list[str]]:
    """The splits to try, in order (the one asked for; else the first of `defaults` the folder has: test, then
    validation for labelled data), and every split found. `choose` says how to pick one when none is a default."""
    if (folder / "dataset_dict.json").is_file():
        info = _read_json_file(folder / "dataset_dict.json")
        names = [str(n) for n in info.get("splits", [])] if isinstance(info, dict) else []
        loaders = {n: (lambda n=n: _saved_dataset(folder / n)) for n in names if (folder / n / "state.json").is_file()}
        if not loaders:
            raise UserError(f"{folder} has a dataset_dict.json but none of its splits ({', '.join(names) or 'none'}) has a "
                            f"folder with a state.json; copy the whole folder that save_to_disk wrote.")
    elif (folder / "state.json").is_file():
        state = _read_json_file(folder / "state.json")
        name = state.get("_split") if isinstance(state, dict) else None
        if split is not None and name is not None and str(name) != split:
            raise UserError(f"{folder} is a saved Dataset of split '{name}' only, not '{split}'; point at the folder "
                            f"of split '{split}' or leave out the split.")
        return [_SplitChoice(str(name) if name is not None else None, lambda: _saved_dataset(folder), False)], \
            [str(name)] if name is not None else []
    else:
        found = _find_split_files(folder)
        if not found:
            raise UserError(f"{folder} holds no labelled data: give a data file, a folder written by datasets' "
                            f"save_to_disk, or a folder of files named by split (e.g. test-00000-of-00001.parquet).")
        loaders = {n: (lambda files=files: _split_files(files, folder)) for n, files in found.items()}
        if len(loaders) == 1 and split is None:
            (name, load), = loaders.items()
            return [_SplitChoice(name, load, False, tuple(found[name]))], [name]
    names = list(loaders)
    files = {n: tuple(found[n]) for n in names} if not (folder / "dataset_dict.json").is_file() else {}
    if split is not None:
        if split not in loaders:
            # validation, valid and dev name one split (conll2003's valid.txt, GLUE's dev.tsv)
            alias = [n for n in _SAME_SPLIT.get(split, ()) if n in loaders]
            if len(alias) != 1:
                raise UserError(f"{folder} has no split '{split}' (splits: {', '.join(names)}); name one of them with "
                                f"--eval-split.")
            split = alias[0]
        return [_SplitChoice(split, loaders[split], False, files.get(split, ()))], names
    order = [n for n in defaults if n in loaders]
    if not order:
        raise UserError(f"{folder} has no {', '.join(repr(n) for n in defaults[:-1])} or '{defaults[-1]}' "
                        f"split (splits: {', '.join(names)}); {choose}.")
    return [_SplitChoice(n, loaders[n], True, files.get(n, ())) for n in order], names


_SAME_SPLIT = {"validation": ("valid", "dev"), "valid": ("validation", "dev"), "dev": ("validation", "valid")}


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

    @property
    def looks_like_data(self) -> bool:
        """A first row that is data, not column names: a cell that is a number, or longer than a name (60 characters)."""
        return any(_as_class_id(n) is not None or re.fullmatch(r"-?\d+\.\d+", n.strip()) or len(n) > 60
                   for n in self.names)

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
        if header.looks_like_data:  # Yelp's, AG News' and CoLA's own files have no header line
            shown = ", ".join(repr(n if len(n) <= 30 else n[:30] + "...") for n in header.names[:4])
            raise UserError(f"{header.path} has no header line: its first line ({shown}) holds a number or a text "
                            f"where column names go; add a first line naming the columns (e.g. label and text, in "
                            f"their order) and evaluate again.")
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


def resolve_columns(header_names: list[str], columns: DataColumns, path: Path | str,
                    need_label: bool = True) -> tuple[DataColumns, tuple[str, ...]]:
    """The columns to use in a file with `header_names`, and which roles were found by name (`need_label` False: the
    label None when no label column is there)."""
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
        # Tags per word before entity spans: WikiANN has both ner_tags and "spans" (["PER: Alice"]), a summary.
        tags = [c for c in spec["label"] if c not in SPAN_COLUMNS]
        candidates = tags if any(header.has(c) for c in tags) else spec["label"]
        if not any(header.has(c) for c in candidates):
            candidates = (*spec["label"], *_LABEL_FALLBACK.get(columns.task or "", ()))
        first = [c for c in _LABEL_FIRST.get(columns.task or "", ()) if header.has(c)]
        if first:
            candidates = tuple(first)
        if need_label or any(header.has(c) for c in candidates):
            label = _one_of(header, "label", candidates, "label")
        else:
            label = None
            detected.remove("label")
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


def _missing(value: Any) -> bool:
    """No value: None, a blank string, or NaN (what pandas and json.dumps write for a missing cell)."""
    return (value is None or (isinstance(value, str) and not value.strip())
            or (isinstance(value, (float, np.floating)) and bool(np.isnan(value))))


def _cell_text(value: Any, column: str, where: str) -> str:
    if _missing(value):
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


# A word of text annotated by character spans: a run of letters and digits, or one punctuation mark.
_SPAN_WORD = re.compile(r"\w+|[^\w\s]")
SPANS_NOTE = ("entities given as character spans were read as words (split at spaces and punctuation) tagged B-/I- "
              "where they overlap an entity")


def _span_tags(text: str, label: Any, where: str) -> tuple[str, list[str]] | None:
    """Entities given as character spans (end exclusive) turned into words and IOB2 tags: (the words joined by
    spaces, their tags), or None when `label` holds no spans. Spans come as doccano writes them ([[0, 5, "PER"]], or
    {"start_offset", "end_offset", "label"}) or as spaCy and Prodigy do ([start, end, label], {"start", "end",
    "label"}); an empty list is a text without entities. A word overlapping a span is tagged with it, so that the
    words and tags are scored as any token/tag data (`tag_sequences`)."""
    spans = parse_cell(label)
    if not isinstance(spans, list) or (spans and not any(isinstance(x, (list, tuple, dict)) for x in spans)):
        return None
    found = []
    for item in spans:
        if isinstance(item, dict):
            start, end, kind = (next((item[k] for k in keys if k in item), None)
                                for keys in (("start", "start_offset"), ("end", "end_offset"), ("label", "labels")))
            if isinstance(kind, list) and len(kind) == 1:  # Label Studio's CSV and JSON-MIN exports: "labels": ["PER"]
                kind = kind[0]
        else:
            start, end, kind = item if isinstance(item, (list, tuple)) and len(item) == 3 else (None, None, None)
        start, end = _as_class_id(start), _as_class_id(end)
        if start is None or end is None or not isinstance(kind, str) or not kind.strip():
            shown = json.dumps(item, default=str)[:60]
            raise UserError(f"Entity {shown} at {where} is not a span [start, end, label] or {{\"start\", \"end\", "
                            f"\"label\"}} (doccano's start_offset, end_offset too); write each entity so.")
        if not 0 <= start < end <= len(text):
            raise UserError(f"Entity span {start}-{end} ('{kind}') at {where} does not fit its text of {len(text)} "
                            f"characters; give character offsets with 0 <= start < end <= {len(text)} (end exclusive).")
        found.append((start, end, kind.strip()))
    found.sort()
    words = [(m.start(), m.end()) for m in _SPAN_WORD.finditer(text)]
    starts, ends = [a for a, _ in words], [b for _, b in words]
    tags = ["O"] * len(words)
    for before, (start, end, kind) in zip([None, *found], found):
        if before is not None and start < before[1]:  # sorted: a span overlapping any earlier one overlaps the last
            raise UserError(f"Entity spans {before[0]}-{before[1]} ('{before[2]}') and {start}-{end} ('{kind}') at "
                            f"{where} overlap; give each character to one entity at most.")
        first, stop = bisect.bisect_right(ends, start), bisect.bisect_left(starts, end)  # the words it overlaps
        if first >= stop:
            raise UserError(f"Entity span {start}-{end} ('{kind}') at {where} covers no word "
                            f"({json.dumps(text[start:end])}); give offsets of the entity's words.")
        if tags[first] != "O":  # the word the last span ends in
            raise UserError(f"Entity spans {before[0]}-{before[1]} ('{before[2]}') and {start}-{end} ('{kind}') at "
                            f"{where} share the word '{text[words[first][0]:words[first][1]]}', which has one tag; "
                            f"make the spans cover whole words.")
        tags[first:stop] = [f"B-{kind}"] + [f"I-{kind}"] * (stop - first - 1)
    return " ".join(text[a:b] for a, b in words), tags


def read_labelled_data(path: Path | str, columns: DataColumns = DataColumns(), text_is_list: bool = False,
                       split: str | None = None) -> LabelledData:
    """Read labelled rows from a file `_read_file` accepts or a dataset folder, with the columns of `resolve_columns`.

    Labels are kept as read (a string from CSV, any JSON value from JSON or Parquet); the task-specific readers
    below (`class_ids`, `tag_sequences`, `answer_texts`, `similarity_scores`) check and convert them.
    `text_is_list` accepts a list of words in the text column (token classification). `split` picks the split
    of a dataset folder (default: test, then validation; a default test split without labels, as GLUE's, is
    passed over); `notes` on the result say which one was used.
    """
    from inferforge.class_columns import flag_columns

    path = Path(path)
    split, rows = _split_slice(split)
    if path.is_dir():
        choices, _ = _dataset_splits(path, split)
        notes: list[str] = []
        for k, choice in enumerate(choices):
            records = choice.load()
            after = choices[k + 1].name if choice.by_default and k + 1 < len(choices) else None
            if (after and not _has_label_column(records.header, columns) and not flag_columns(records, columns)
                    and _triplet_layout(records.header, columns) is None):
                notes.append(f"split '{choice.name}' of {path} has no label column, so '{after}' is used")
                continue
            data = _labelled(records, path, columns, text_is_list, choice.name, card_class_names(path))
            if after and _unlabelled(data):
                notes.append(f"split '{choice.name}' of {path} has no labels (every label is -1, as in GLUE's test "
                             f"splits), so '{after}' is used")
                continue
            shown = _split_file_names(path, choice.files)
            if choice.by_default and not notes:
                notes.append(f"split '{choice.name}' of {path} is used{shown} (the first of {', '.join(DEFAULT_SPLITS)} "
                             f"it has; choose another with --eval-split)")
            elif (split is not None and choice.name != split) or (choice.files and _data_suffix(choice.files[0]) in TEXT_SUFFIXES):
                asked = f" (asked for '{split}')" if split is not None and choice.name != split else ""
                notes.append(f"split '{choice.name}' of {path} is used{shown}{asked}")  # which .txt, always
            return _sliced(replace(data, notes=tuple(notes) + data.notes), rows)
    _check_file(path)
    data = _labelled(_read_file(path), path, columns, text_is_list, None, card_class_names(path))
    if split is not None:  # the slice of test[:200] still applies, to the whole file
        data = replace(data, notes=(f"--eval-split '{split}' does not apply to a single file: all of {path} is read"
                                    + (", then sliced" if rows is not None else ""),) + data.notes)
    return _sliced(data, rows)


def _split_file_names(folder: Path, files: Sequence[Path]) -> str:
    """' (file test.txt)': the file(s) a split of a folder of files named by split was read from, for its note."""
    if not files:
        return ""
    names = [str(f.relative_to(folder)) for f in files]
    return f", read from {names[0]}" if len(names) == 1 else f", read from {len(names)} files ({_listing(names, 3)})"


def _split_slice(split: str | None) -> tuple[str | None, tuple[str, str] | None]:
    """`test[:200]` -> ("test", (":", "200")): the split and the rows asked for, as datasets spells them."""
    if split is None:
        return None, None
    split = split.strip()
    match = _SLICED.fullmatch(split)
    if match is None:
        if "[" in split or "]" in split:
            raise UserError(f"--eval-split '{split}' is not a split name or a slice such as test[:200] or "
                            f"validation[:10%]; write it that way.")
        return split, None
    return match["name"].strip(), (match["start"], match["stop"])


def _sliced(data: LabelledData, rows: tuple[str, str] | None) -> LabelledData:
    if rows is None:
        return data

    def bound(text: str) -> int | None:
        if not text:
            return None
        return round(len(data) * int(text[:-1]) / 100) if text.endswith("%") else int(text)

    kept = range(len(data))[bound(rows[0]):bound(rows[1])]
    if not kept:
        raise UserError(f"--eval-split [{rows[0]}:{rows[1]}] keeps no row of the {len(data)} of {data.name}; "
                        f"widen the slice.")
    note = f"rows [{rows[0]}:{rows[1]}] of {data.name} are used: {len(kept)} of {len(data)}"
    return replace(data.subset(kept), notes=data.notes + (note,))


def _has_label_column(header: list[str], columns: DataColumns) -> bool:
    found = _Header(header, Path("."))
    if columns.label is not None:
        return found.has(columns.label)
    return any(found.has(c) for c in (*COLUMN_CANDIDATES.get(columns.task or "", _ANY_TASK)["label"],
                                      *_LABEL_FALLBACK.get(columns.task or "", ())))


def _triplet_layout(header_names: list[str], columns: DataColumns) -> list[str] | None:
    """The anchor, positive and negative columns of sentence-embedding triplets with no score (`TRIPLET_LAYOUTS`)."""
    if columns.task != "feature-extraction" or columns.label is not None or _has_label_column(header_names, columns):
        return None
    header = _Header(header_names, Path("."))
    return next((found for found in ([header.find(c) for c in layout] for layout in TRIPLET_LAYOUTS)
                 if None not in found and columns.text in (None, found[0]) and columns.pair in (None, found[1])), None)


def _unlabelled(data: LabelledData) -> bool:
    return all(_as_class_id(label) == -1 for label in data.labels)


def _labelled(records: _Records, path: Path, columns: DataColumns, text_is_list: bool, split: str | None,
              card: tuple[dict[str, list[str]], Path | None] = ({}, None)) -> LabelledData:
    """`card`: class names from the dataset card beside the data (`card_class_names`), for a column whose own
    file names none (CSV, JSON Lines, a Parquet file written by pandas)."""
    from inferforge.class_columns import class_columns_data, flag_columns

    name = str(path) + (f" (split '{split}')" if split else "")
    if not records.count:
        raise UserError(f"{name} has no data rows; it needs a header (or JSON keys) and at least one labelled row.")
    if records.fmt in ("CoNLL", "CoNLL-U") and columns.task not in (None, "token-classification"):
        raise UserError(f"{name} holds a token and its tag per line ({records.fmt} layout), data for "
                        f"token-classification, not {columns.task}; give a CSV, TSV or JSON file with a text and a "
                        f"label column (a header row naming them).")
    layout = _triplet_layout(records.header, columns)
    if layout is not None:  # anchor, positive, negative
        data = _labelled(records, path, replace(columns, text=layout[0], pair=layout[1], label=layout[2]),
                         text_is_list, split, card)
        for row, negative in enumerate(data.labels):
            _cell_text(negative, layout[2], data.where(row))  # one text: a list of negatives is refused
        return replace(data, triplets=True, notes=data.notes + (TRIPLETS_NOTE,),
                       detected=tuple(role for role, given in (("text", columns.text), ("pair", columns.pair),
                                                               ("label", None)) if given is None))
    if text_is_list and records.fmt not in ("CoNLL", "CoNLL-U", "SQuAD JSON"):
        from inferforge.word_rows import word_rows

        grouped = word_rows(records, columns, name)  # one word per row: grouped into sentences first
        if grouped is not None:
            data = _labelled(grouped[0], path, replace(columns, text=grouped[1].text, label=grouped[1].label),
                             text_is_list, split, card)
            return replace(data, detected=tuple(role for role, given in (("text", columns.text), ("label", columns.label))
                                                if given is None))
    flags = flag_columns(records, columns) if not _has_label_column(records.header, columns) else []
    used, detected = resolve_columns(records.header, columns, name, need_label=not flags)
    twice = next((c for c in (used.text, used.pair, used.label) if c is not None and records.header.count(c) > 1), None)
    if twice is not None:  # the csv module keeps the last of the two cells, silently
        raise UserError(f"The header of {name} names column '{twice}' {records.header.count(twice)} times, so which of "
                        f"them holds the {'label' if twice == used.label else 'text'} is unclear; rename or remove the "
                        f"others.")
    if used.label is None:
        flags = [c for c in flags if c not in (used.text, used.pair)]
        if not flags:  # the 0/1 columns were the texts: no label column after all
            resolve_columns(records.header, columns, name)
        return class_columns_data(records, path, used, detected, flags, split, name)
    header = _Header(records.header, Path(name))
    card_names, card_path = card
    from_card = used.label not in records.class_names and used.label in card_names
    class_names_of = {**card_names, **records.class_names}
    named_by = None if used.label in class_names_of else next(
        (header.find(c) for c in (f"{used.label}_text", f"{used.label}_name", "label_text", "label_name")
         if header.has(c) and header.find(c) not in (used.text, used.pair, used.label)), None)
    rows = records.rows_for([c for c in (used.text, used.pair, used.label, named_by) if c is not None])
    texts: list[str] = []
    pairs: list[str] | None = [] if used.pair is not None else None
    labels: list[Any] = []
    spans = False
    for i, record in enumerate(rows):
        where = records.where(i, name)
        value = record.get(used.text)
        joined = _word_list(value, used.text, where) if text_is_list else None
        texts.append(joined if joined is not None else _cell_text(value, used.text, where))
        if pairs is not None:
            pairs.append(_cell_text(record.get(used.pair), used.pair, where))
        label = record.get(used.label)
        if _missing(label):  # [] is a row of no class (multi-label), a question without answer (SQuAD 2.0)
            empty = {"question-answering": "an unanswerable question (SQuAD 2.0) has the answers []",
                     "token-classification": "a sentence without entities has an O per word"}.get(
                columns.task or "", "for multi-label data, [] is a row of no class")
            raise UserError(f"Column '{used.label}' is empty at {where}; every row needs a label ({empty}).")
        if isinstance(parse_cell(label), dict) and set(parse_cell(label)) == {"choices"}:
            label = parse_cell(label)["choices"]  # Label Studio's JSON-MIN / CSV export of a multi-choice task
        tagged = _span_tags(texts[-1], label, where) if text_is_list and joined is None else None
        if tagged is not None:  # entities as character spans: words and their tags from here on
            texts[-1], label = tagged
            spans = True
        labels.append(label)
    class_names = class_names_of.get(used.label)
    notes = records.notes + ((SPANS_NOTE,) if spans else ())
    if from_card:
        notes += (f"the class names of column '{used.label}' are read from the dataset card {card_path} "
                  f"(dataset_info features): {_listing(class_names, 8)}",)
    if named_by is not None:
        class_names = _names_column(labels, [record.get(named_by) for record in rows])
        if class_names is not None:
            notes += (f"the class names of the label ids are read from column '{named_by}'",)
    return LabelledData(texts=texts, pairs=pairs, labels=labels, lines=records.lines, source=str(path), columns=used,
                        detected=detected, file_format=records.fmt, places=records.places, unit=records.unit,
                        split=split, class_names=tuple(class_names) if class_names else None, notes=notes,
                        decimal_comma=records.decimal_comma)


def _names_column(labels: list[Any], names: list[Any]) -> list[str] | None:
    """The class names of integer label ids from a column beside them that names each row's class (SetFit's
    label_text: label 0, label_text "sadness"), indexed by id ("" for an id no row has); None when the labels are
    not ids, or an id has two names."""
    found: dict[int, str] = {}
    for label, name in zip(labels, names):
        as_id = _as_class_id(label)
        if as_id is None or as_id < 0 or not isinstance(name, str) or not name.strip():
            if as_id == -1:
                continue  # a row without gold label (SNLI's -1): no name to learn
            return None
        if found.setdefault(as_id, name.strip()) != name.strip():
            return None
    if not found or max(found) > 10_000:
        return None
    return [found.get(i, "") for i in range(max(found) + 1)]


# ---------------------------------------------------------------- labels


def _as_flag(value: Any) -> bool | None:
    """A boolean label: JSON true/false (a bool), or "true"/"false" in any case (a CSV cell); else None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.strip().casefold() in ("true", "false"):
        return value.strip().casefold() == "true"
    return None


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


@dataclass(frozen=True)
class NameMatch:
    """How one label name matched the model's (`_LabelIndex.match`): `id` the model's id (None: no match, or
    `candidates` when the name fits several), `how` exact, case, punctuation or prefix."""

    id: int | None
    how: str = ""
    candidates: tuple[int, ...] = ()


class _LabelIndex:
    """A model's label names, and the one way a name is matched to them (`match`), for the data's string
    labels and tags and for a dataset's class names alike."""

    def __init__(self, label_names: Sequence[str]):
        self.names = [str(n) for n in label_names]
        self.exact = {name: i for i, name in enumerate(self.names)}
        self.folded: dict[str, int] = {}
        for i, name in enumerate(self.names):
            self.folded.setdefault(name.strip().casefold(), i)
        self.keys = [_name_key(n) for n in self.names]

    def match(self, name: Any, taken: Iterable[int] = ()) -> NameMatch:
        """Exactly, then ignoring case, then ignoring punctuation (not_entailment = NOT ENTAILMENT), then as a
        prefix (neg = NEGATIVE) of one label not in `taken`. A name that fits several labels at the first step
        that fits any is ambiguous: no id, and the labels it fits as `candidates`."""
        key = str(name).strip()
        if key in self.exact:
            return NameMatch(self.exact[key], "exact")
        if key.casefold() in self.folded:
            return NameMatch(self.folded[key.casefold()], "case")
        bare = _name_key(key)
        if not bare:
            return NameMatch(None)
        taken = set(taken)
        for how, fits in (("punctuation", lambda k: k == bare), ("prefix", lambda k: k.startswith(bare))):
            found = tuple(j for j, k in enumerate(self.keys) if fits(k) and j not in taken)
            if len(found) == 1:
                return NameMatch(found[0], how)
            if found:
                return NameMatch(None, how, found)
        return NameMatch(None)

    def hint(self, value: Any) -> str:
        generic = all(re.fullmatch(r"LABEL_\d+", str(n)) for n in self.names)
        if _as_class_id(value) == -1:
            return " (-1 marks an unlabelled row, as in a GLUE test split; use a split with labels)"
        if str(value).strip() == "-":
            return " ('-' marks a row without a gold label, as in SNLI's files; use rows with labels)"
        if generic and isinstance(value, str) and _as_class_id(value) is None:
            return " (the model's config.json names its classes generically, so give the class ids)"
        if _as_class_id(value) == len(self.names):
            return (f"; if the data numbers its classes from 1 (as Yelp's and Amazon's polarity CSVs do), shift them "
                    f"to 0-{len(self.names) - 1} or write the label names")
        return ""


_GENERIC_LABEL = re.compile(r"(LABEL_)?\d+", re.IGNORECASE)


def _name_key(name: Any) -> str:
    return re.sub(r"[^0-9a-z]+", "", str(name).casefold())


def _listing(items: Sequence[str], limit: int = 12) -> str:
    items = list(items)
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


class LabelResolver:
    """The model's class id of each label of one data set, and how it was found (`mapping()`).

    A label is the model's label name or an integer id. When the data set names its ids (a `datasets`
    ClassLabel: `data.class_names`), an id goes through its name to the model's id, so a dataset and a model
    that order their classes differently (MNLI) still agree. Names, the data's own (CSV, JSON, tags...) and the
    dataset's class names alike, match one way (`_LabelIndex.match`): exactly, then ignoring case, then ignoring
    punctuation (not_entailment = NOT ENTAILMENT), then as a unique prefix (neg = NEGATIVE); a name that fits
    two labels is an error naming both. Without names, or when the model's own names are generic (LABEL_0...),
    an id is the model's id.
    """

    def __init__(self, data: LabelledData, label_names: Sequence[str]):
        self.data = data
        self.model = [str(n) for n in label_names]
        self.index = _LabelIndex(label_names)
        names = list(data.class_names) if data.class_names else None
        if names and all(n == str(i) for i, n in enumerate(names)):
            names = None  # ClassLabel(num_classes=n) names its ids "0", "1"...: no names
        self.dataset_names = names
        self.generic_model = bool(self.model) and all(_GENERIC_LABEL.fullmatch(n) for n in self.model)
        self.through_names = names is not None and not self.generic_model
        self.class_matches = self._match_names(names) if self.through_names else {}
        self.to_model = {i: m.id for i, m in self.class_matches.items()}
        self.names_seen: dict[str, NameMatch] = {}  # each label name of the data and how it matched
        self.by_name = 0
        self.ids_seen: set[int] = set()
        self.as_written: dict[str, None] = {}  # tags of another scheme kept for entity types the model knows
        self.missing_types: dict[str, str] = {}  # gold entity types the model does not tag (casefolded -> as written)
        self.missing_tags: dict[str, None] = {}  # the tags of those types, kept as written
        self.numbers_seen: dict[str, int | None] = {}  # "1" -> the model's id when it is one of its names
        self.flags_seen: set[bool] = set()  # true/false labels taken as the ids 1/0 of a two-class model
        self.indicators = False  # labels are 0/1 vectors, one value per class of the model (`class_sets`)

    def _match_names(self, names: list[str]) -> dict[int, NameMatch]:
        """The model's label of each of the dataset's class names; a prefix is only taken by one name (the
        names that match more closely go first)."""
        found = {i: self.index.match(name) for i, name in enumerate(names)}
        taken = {m.id for m in found.values() if m.id is not None and m.how != "prefix"}
        for i, name in enumerate(names):
            if found[i].id is None or found[i].how == "prefix":
                found[i] = self.index.match(name, taken)
                if found[i].id is not None:
                    taken.add(found[i].id)
        return found

    def _name(self, value: str, row: int, noun: str) -> int | None:
        """The model's id of a label written as a name (`_LabelIndex.match`, cached per name); None: not a name
        of the model's. A name that fits several of the model's labels is an error naming them."""
        key = value.strip()
        if key not in self.names_seen:
            self.names_seen[key] = self.index.match(key)
        found = self.names_seen[key]
        if found.candidates:
            raise UserError(f"{noun.capitalize()} '{key}' at {self.data.where(row)} is ambiguous: "
                            f"{self._fits(found)}; write more of the name.")
        return found.id

    def _fits(self, found: NameMatch) -> str:
        """Which of the model's labels an ambiguous name fits: "it is the start of NEGATIVE and NEUTRAL"."""
        labels = _listing([self.model[j] for j in found.candidates[:-1]]) + f" and {self.model[found.candidates[-1]]}"
        return (f"it is the start of {labels}" if found.how == "prefix"
                else f"it is {labels} when punctuation is ignored")

    def __call__(self, value: Any, row: int, noun: str = "label") -> int:
        flag = _as_flag(value)
        if flag is not None:  # JSON true/false, "True"/"false" in a CSV (google/boolq's answer)
            hit = self._name(str(flag), row, noun)  # a model whose labels are True/False (or a unique prefix)
            if hit is not None:
                self.by_name += 1
                return hit
            if len(self.model) == 2:  # as datasets numbers ClassLabel(names=["False", "True"])
                self.flags_seen.add(flag)
                return int(flag)
            raise UserError(f"{noun.capitalize()} '{value}' at {self.data.where(row)} is true/false, but the model has "
                            f"{len(self.model)} labels ({_listing(self.model)}), none named so; write the model's "
                            f"label names.")
        as_id = _as_class_id(value)
        if isinstance(value, str):
            if as_id is None:
                hit = self._name(value, row, noun)
            else:  # "1" is a name only when the model has it; otherwise an id, never the start of "1 star"
                if value not in self.numbers_seen:  # once per spelling: a file has millions of "0" and "1"
                    found = self.index.match(value)
                    self.numbers_seen[value] = found.id if found.how in ("exact", "case") else None
                hit = self.numbers_seen[value]
            if hit is not None:
                self.by_name += 1
                return hit
        if as_id is not None and self.through_names:
            names, column = self.dataset_names, self.data.columns.label
            if as_id == -1:
                raise UserError(f"{noun.capitalize()} id -1 at {self.data.where(row)} marks an unlabelled row (as in "
                                f"GLUE's test splits); evaluate on a split with labels (e.g. --eval-split validation).")
            if not 0 <= as_id < len(names):
                raise UserError(f"{noun.capitalize()} id {as_id} at {self.data.where(row)} is outside the {len(names)} "
                                f"classes the dataset's features name for column '{column}' ({_listing(names)}); "
                                f"fix the row or the dataset's ClassLabel.")
            hit = self.to_model[as_id]
            if hit is None and self.class_matches[as_id].candidates:
                raise UserError(f"Class '{names[as_id]}' (id {as_id} of column '{column}') at {self.data.where(row)} "
                                f"is ambiguous: {self._fits(self.class_matches[as_id])}; rename the dataset's classes "
                                f"to the model's names (datasets: ds.cast_column('{column}', ClassLabel(names=[...]))).")
            if hit is None:
                raise UserError(f"Class '{names[as_id]}' (id {as_id} of column '{column}') at {self.data.where(row)} is "
                                f"not one of the model's labels ({_listing(self.model)}); write the labels as the "
                                f"model's names, or rename the dataset's classes to them (datasets: "
                                f"ds.cast_column('{column}', ClassLabel(names=[...]))).")
            self.ids_seen.add(as_id)
            return hit
        if as_id is not None and 0 <= as_id < len(self.model):
            self.ids_seen.add(as_id)
            return as_id
        raise UserError(f"Unknown {noun} '{value}' at {self.data.where(row)}; the model's labels are: "
                        f"{', '.join(self.model)} (or their ids 0-{len(self.model) - 1}){self.index.hint(value)}.")

    def mapping(self) -> dict:
        """How the labels were read, for report.json and one line of output: `how` (names, class-names, ids),
        `pairs` (every class the dataset names, else each id seen: the dataset's name, the model's id and label)
        and `note` (None: nothing to say)."""
        seen = sorted(self.ids_seen)
        names = self.dataset_names
        how = [h for h, used in (("names", self.by_name), ("class-names", seen and self.through_names),
                                  ("ids", seen and not self.through_names), ("booleans", self.flags_seen),
                                  ("indicators", self.indicators)) if used]
        pairs = []
        for i in (range(len(names)) if seen and self.through_names else seen):  # every class the dataset names
            m = self.to_model[i] if self.through_names else i
            pairs.append({"dataset_id": i, "dataset_name": names[i] if names and i < len(names) else None,
                          "model_id": m, "model_label": self.model[m] if m is not None else None})
        note = None
        if seen and self.through_names:
            same = all(p["dataset_id"] == p["model_id"] for p in pairs)
            listed = _listing([f"{p['dataset_id']} {p['dataset_name']} -> " + (
                f"{p['model_id']} {p['model_label']}" if p["model_id"] is not None
                else "as written" if p["dataset_name"] in self.as_written or p["dataset_name"] in self.missing_tags
                else "none (unused)") for p in pairs if p["dataset_name"]])  # "": an id no row has
            note = (f"label ids mapped through the dataset's class names to the model's labels: {listed}"
                    + (" (same ids)" if same else ""))
        elif seen and names:
            listed = _listing([f"{i} {names[i] if i < len(names) else '?'} = {self.model[i]}" for i in seen])
            note = (f"the model names its classes generically ({_listing(self.model, 4)}), so the dataset's label ids "
                    f"are taken as the model's ids: {listed}")
        elif seen:
            listed = _listing([f"{i} = {self.model[i]}" for i in seen])
            check = ("the model names its classes generically, so make sure the data numbers them as the model was "
                     "trained to" if self.generic_model else
                     "if the data numbers its classes differently, write the class names")
            note = (f"labels are integer ids and {self.data.name} gives no class names, so they are taken as the "
                    f"model's ids ({listed}); {check}")
        if self.flags_seen:
            said = (f"labels true/false are taken as the model's ids 1 = {self.model[1]} and 0 = {self.model[0]} (as "
                    f"datasets numbers the classes False, True); if the model means otherwise, write its label names")
            note = f"{note}; {said}" if note else said
        if self.indicators:
            said = (f"labels are 0/1 vectors, one value per class in the model's order "
                    f"({_listing([f'{i} = {n}' for i, n in enumerate(self.model)], 6)})")
            note = f"{note}; {said}" if note else said
        loose = [f"{name} = {self.model[m.id]}" for name, m in self.names_seen.items()
                 if m.id is not None and m.how in ("punctuation", "prefix")]
        if loose:  # neg = NEGATIVE is said, as the dataset's class names are
            said = f"label names matched to the model's ignoring punctuation or as a prefix: {_listing(loose)}"
            note = f"{note}; {said}" if note else said
        if self.as_written:
            said = (f"tags the model does not have, for entity types it has, are compared as written (entities, not "
                    f"tags, are scored): {_listing(list(self.as_written))}")
            note = f"{note}; {said}" if note else said
        missing = list(self.missing_types.values())
        if missing:
            said = (f"gold entity types the model does not tag: {_listing(missing)} (the model can never predict "
                    f"them, so their entities count as missed and lower the recall)")
            note = f"{note}; {said}" if note else said
        return {"how": how, "dataset_class_names": names, "pairs": pairs, "note": note,
                "entity_types_missing_from_model": missing}


# Labels that say a row has no gold label: datasets' -1 for a missing ClassLabel value (SNLI's pairs without a
# majority label, GLUE's test splits), and "-", the gold_label of those pairs in SNLI's and MNLI's own files.
NO_GOLD_LABELS = ("-1", "-")


def _no_gold(value: Any, model: set[str]) -> bool:
    if isinstance(value, bool):
        return False
    text = str(value).strip()
    return (text == "-" or _as_class_id(value) == -1) and not ({text, str(_as_class_id(value))} & model)


def without_unlabelled_rows(data: LabelledData, label_names: Sequence[str]) -> tuple[LabelledData, str | None]:
    """`data` without its rows whose label is a mark of no gold label (`NO_GOLD_LABELS`, unless the model has a label
    so named), and a note saying how many were left out (None: none): SNLI's validation and test splits hold such rows
    among labelled ones, which its evaluation leaves out too. Data whose every label is such a mark is returned whole,
    for the label check to refuse with its reason."""
    model = {str(n).strip() for n in label_names}
    gone = [row for row, label in enumerate(data.labels) if _no_gold(label, model)]
    if not gone or len(gone) == len(data):
        return data, None
    left = sorted(set(range(len(data))) - set(gone))
    shown = ", ".join(dict.fromkeys(repr(str(data.labels[row]).strip()) for row in gone))
    note = (f"rows without a gold label ({shown}, as SNLI marks pairs without a majority label) are left out: "
            f"{len(gone):,} of the {len(data):,} rows of {data.name} (the first at {data.where(gone[0])}); "
            f"{len(left):,} are scored")
    return data.subset(left), note


def class_ids(data: LabelledData, label_names: Sequence[str], resolver: LabelResolver | None = None) -> np.ndarray:
    """Class id of each row's label: the model's label name (in any case, or a unique prefix...), or an integer
    id (through the dataset's class names when it has them); see `LabelResolver`."""
    resolver = resolver or LabelResolver(data, label_names)
    ids = np.empty(len(data), dtype=np.int64)
    for row, label in enumerate(data.labels):
        parsed = parse_cell(label)  # a list of one class ([3]) is that class
        ids[row] = resolver(parsed[0] if isinstance(parsed, list) and len(parsed) == 1 else label, row)
    return ids


def is_multi_label(data: LabelledData, model_says: bool = False) -> bool:
    """Labels given as lists of classes (go_emotions' `labels`, a Sequence of ClassLabel; `[0, 2]` in a CSV cell):
    each row has a set of classes, none to all. Lists of exactly one class everywhere are single labels written as
    lists, unless the model is multi-label (`model_says`: config.problem_type multi_label_classification)."""
    lists = [parsed for parsed in map(parse_cell, data.labels) if isinstance(parsed, list)]
    if model_says and not lists:  # a multi-label model's classes written into a cell: "joy,anger" (or ; or |)
        return any(isinstance(label, str) and _LABEL_SEPARATOR.search(label.strip()) for label in data.labels)
    return bool(lists) and (model_says or any(len(parsed) != 1 for parsed in lists))


_LABEL_SEPARATOR = re.compile(r"\s*[,;|]\s*")


def _label_values(label: Any, row: int, resolver: "LabelResolver") -> list:
    """The classes of one multi-label row: a list's items, or a cell's names separated by commas, semicolons or '|'
    ("joy,anger") unless the whole cell is one of the model's classes."""
    parsed = parse_cell(label)
    if isinstance(parsed, list):
        return parsed
    if isinstance(label, str) and _LABEL_SEPARATOR.search(label.strip()):
        try:
            resolver(label, row)
        except UserError:
            return [part for part in _LABEL_SEPARATOR.split(label.strip()) if part]
    return [label]


def _shown(label: Any) -> str:
    return " ".join(str(label).split())[:60]


def _indicator_vectors(data: LabelledData) -> list[list] | None:
    """The labels as 0/1 vectors with a value per class (multi-hot, as multi-label data prepared for training often
    holds them: [0, 1, 1, 0], [0.0, 1.0, ...]), or None when they are lists of class names or ids. A list of ids names
    each class once, so 0/1 lists are vectors as soon as one of them repeats a value (every one of three classes or
    more does)."""
    lists = [parse_cell(label) for label in data.labels]
    if not all(isinstance(x, list) and x for x in lists):
        return None
    binary = all(isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, float, np.integer, np.floating))
                                                      and v in (0, 1)) for x in lists for v in x)
    if not binary or not any(len(set(map(float, x))) < len(x) for x in lists):
        return None
    return lists


def class_sets(data: LabelledData, label_names: Sequence[str], resolver: LabelResolver | None = None) -> np.ndarray:
    """(rows, classes) booleans: the classes of each row, a list of names or ids (a single one is a set of one; an
    empty list, no class), each resolved as `class_ids` resolves a label."""
    resolver = resolver or LabelResolver(data, label_names)
    gold = np.zeros((len(data), len(label_names)), dtype=bool)
    vectors = _indicator_vectors(data)
    if vectors is not None:  # multi-hot: [0, 1, 1, 0] is classes 1 and 2, not the ids 0 and 1
        for row, vector in enumerate(vectors):
            if len(vector) != len(label_names):
                raise UserError(f"Label {_shown(data.labels[row])} at {data.where(row)} is a vector of {len(vector)} "
                                f"0/1 values, one per class, but the model has {len(label_names)} classes "
                                f"({_listing(resolver.model, 6)}); give one value per class of the model, or the "
                                f"list of class names or ids of each row.")
            gold[row] = np.asarray(vector, dtype=np.float64) > 0.5
        resolver.indicators = True
        return gold
    for row, label in enumerate(data.labels):
        for value in _label_values(label, row, resolver):
            if isinstance(value, (list, dict)) or value is None:
                raise UserError(f"Label list {label} at {data.where(row)} holds {value!r}; give each row a list of "
                                f"class names or ids, e.g. [0, 2] or [\"joy\"].")
            gold[row, resolver(value, row)] = True
    return gold


def tag_sequences(data: LabelledData, label_names: Sequence[str], resolver: LabelResolver | None = None) -> list[list[str]]:
    """One tag per whitespace-separated word of each text: a list (of names or ids), or tags separated by
    spaces. Names match the model's as labels do (`LabelResolver`); ids go through the dataset's tag names (a Sequence of
    ClassLabel, as conll2003's ner_tags) when it has them, else they are the model's ids (config.json id2label).

    Entities are compared, not tags: a tag in another scheme than the model's (WikiANN's B-PER for a model tagging
    I-PER only, IO tags such as PER) is kept as written when the model knows its entity type. A tag of an entity type
    the model does not know (B-MISC for a PER/LOC/ORG model) is kept too, as seqeval would score it: the model never
    predicts it, so its entities are missed (`resolver.missing_types` says which types); data none of whose entity
    types the model knows is labelled for another model, and refused."""
    from inferforge.metrics import split_tag

    resolver = resolver or LabelResolver(data, label_names)
    types = {kind.casefold(): kind for _, kind in map(split_tag, resolver.model) if kind}
    first_missing: list[tuple[str, int]] = []  # the first tag of a type the model does not know, and its row

    def tag_name(tag: Any, row: int) -> str:
        try:
            return resolver.model[resolver(tag, row, "tag")]
        except UserError:
            as_id, names = _as_class_id(tag), resolver.dataset_names
            named = as_id is None or bool(names and 0 <= as_id < len(names))  # an id without a name has no type
            name = names[as_id] if as_id is not None and named else str(tag).strip()
            prefix, kind = split_tag(name)
            if not named or not kind:
                raise
            if kind.casefold() in types:
                resolver.as_written[name] = None
                return f"{prefix}-{types[kind.casefold()]}"
            kind = resolver.missing_types.setdefault(kind.casefold(), kind)
            resolver.missing_tags[name] = None
            if not first_missing:
                first_missing.append((name, row))
            return f"{prefix}-{kind}"

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
        sequences.append([tag_name(tag, row) for tag in tags])
    if first_missing and not any(kind.casefold() in types for tags in sequences for _, kind in map(split_tag, tags)):
        tag, row = first_missing[0]
        raise UserError(f"None of the entity types of {data.name} ({_listing(list(resolver.missing_types.values()))}) "
                        f"is one the model tags ({_listing(list(dict.fromkeys(types.values())))}), e.g. tag '{tag}' at "
                        f"{data.where(row)}; evaluate on data labelled with the model's entity types.")
    return sequences


def answer_texts(data: LabelledData) -> list[list[str]]:
    """Gold answers of each question: a string, a list of strings, or SQuAD's {"text": [...], ...}.

    SQuAD v2.0's unanswerable questions (an answer list that is empty, or holds blank texts only) have the empty
    answer as their gold.
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
        elif isinstance(label, list) and label and all(isinstance(x, dict) for x in label):
            if not all("text" in x for x in label):
                raise UserError(f"The answers at {data.where(row)} have no 'text'; give {{\"text\": [...]}} as SQuAD does.")
            value = [x["text"] for x in label]
        else:
            value = label
        if isinstance(value, list) and all(isinstance(o, str) and not o.strip() for o in value):  # [] or [""]: unanswerable
            answers.append([""])
            continue
        options = value if isinstance(value, list) else [value]
        options = [str(o) for o in options if o is not None and str(o).strip()]
        if not options:
            raise UserError(f"No answer text at {data.where(row)}; give a string, a list of strings or {{\"text\": [...]}}.")
        answers.append(options)
    return answers


def similarity_scores(data: LabelledData, noun: str = "Similarity score", why: str = "") -> np.ndarray:
    """Gold similarity score of each text pair (or gold value of a one-output model), as a number. `why` ends
    the message about a value that is not one (what the rows should hold instead)."""
    names = [n for n in data.class_names or () if n]
    if names and not all(_as_class_id(n) is not None for n in names):  # ClassLabel(names=["0", "1"...]) are numbers
        raise UserError(f"Column '{data.columns.label}' of {data.name} holds classes ({_listing(names, 6)}, named by the "
                        f"dataset), not {noun.lower()}s{why}; give a column of numbers, e.g. STS-B's or SICK's "
                        f"relatedness score, with --label-column.")
    scores = np.empty(len(data), dtype=np.float64)
    for row, label in enumerate(data.labels):
        if data.decimal_comma and isinstance(label, str) and re.fullmatch(r"\s*[+-]?\d+,\d+\s*", label):
            label = label.replace(",", ".")  # 4,5 in a semicolon CSV (Excel where the comma is the decimal mark)
        try:
            scores[row] = float(label)
        except (TypeError, ValueError):
            raise UserError(f"{noun} '{label}' at {data.where(row)} is not a number{why}.") from None
        if not np.isfinite(scores[row]):
            raise UserError(f"{noun} '{label}' at {data.where(row)} is not a finite number{why}.")
    return scores


# The splits tried, in order, when texts come from a dataset folder: calibration fits int8 ranges, so it takes the
# training split first (not the split the variants are judged on); verification takes test first, as --eval-data.
TEXT_SPLITS = {"--calibration-data": ("train",) + DEFAULT_SPLITS, "--validation-texts": DEFAULT_SPLITS + ("train",)}


@dataclass(frozen=True)
class TextRows:
    """Unlabelled texts, with their second texts when the source has them (`read_texts`)."""

    texts: list[str]
    pairs: list[str] | None
    source: str
    file_format: str
    split: str | None = None

    @property
    def name(self) -> str:
        return self.source + (f" (split '{self.split}')" if self.split else "")

    def record(self) -> dict:
        """What report.json says about the texts."""
        return {"source": self.name, "format": self.file_format, "split": self.split, "count": len(self.texts)}


def _text_lines(path: Path, option: str, task: Any) -> TextRows:
    try:
        with _open_text(path, newline=None) as f:
            content = f.read()
    except UnicodeDecodeError:
        raise UserError(f"{option} file '{path}' is not UTF-8 text; save it as UTF-8.") from None
    lines = [line.strip() for line in content.splitlines() if line.strip()]
    if not lines:
        raise UserError(f"{option} file '{path}' has no text; write one text per line (TAB-separated pairs).")
    if task is None:
        return TextRows(lines, None, str(path), "text lines")
    from inferforge.verify import split_pairs

    try:
        texts, pairs = split_pairs(lines, task)
    except UserError as error:  # "... line 3 has none." -> say which file
        raise UserError(f"{option} file '{path}': {error}") from None
    return TextRows(texts, pairs, str(path), "text lines")


def plain_text_source(source: Any) -> bool:
    """A source `read_texts` reads as text lines (a `.txt` file, or a suffix that is no data format): it has no
    columns for --text-column / --pair-column to name."""
    if isinstance(source, TextRows):
        return source.file_format == "text lines"
    if not isinstance(source, (str, Path)) or Path(source).is_dir():
        return False
    suffix = _data_suffix(Path(source))
    return suffix not in DATA_SUFFIXES or suffix in TEXT_SUFFIXES


def _headerless_tsv(path: Path, text_column: str | None, candidates: Sequence[str]) -> bool:
    """A .tsv whose first line names no text column is text lines, question<TAB>context pairs (the layout of the
    built-in validation_qa.tsv), not a table."""
    if _data_suffix(path) != ".tsv":
        return False
    try:
        with _open_text(path, newline=None) as f:
            first = f.readline()
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError):
        return False
    header = _Header([c.strip() for c in first.rstrip("\r\n").split("\t")], path)
    return not any(header.has(c) for c in ([text_column] if text_column else candidates))


def read_texts(path: Path | str, task: Any = None, text_column: str | None = None, pair_column: str | None = None,
               option: str = "--calibration-data") -> TextRows:
    """Texts to run the model on (`--calibration-data` and `--validation-texts` alike), from every source
    `--eval-data` reads, labels not needed:

    * a text file (`.txt`, or any suffix that is not a data format): one text per line, a TAB between the two
      texts of a pair (question<TAB>context for QA); a `.tsv` whose first line names no text column is read so too;
    * a data file (CSV/TSV with a header, JSON Lines, JSON, SQuAD, CoNLL, Parquet, Arrow): its text column, and
      its second-text column when the task takes pairs;
    * a dataset folder (save_to_disk Dataset or DatasetDict, or a Hub-style folder of files named by split): one
      split, the first of TEXT_SPLITS[option] it has (point at a split's own folder or file to choose another).

    Columns are the ones named, else found by their usual names for `task` (any task when None). A task that
    needs pairs (question answering) gets them or a UserError.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{option} file '{path}' does not exist.")
    spec = COLUMN_CANDIDATES.get(getattr(task, "name", ""), _ANY_TASK)
    split = None
    if path.is_dir():
        defaults = TEXT_SPLITS.get(option, DEFAULT_SPLITS)
        choices, _ = _dataset_splits(path, None, defaults,
                                     f"point {option} at the folder or file of the split to use")
        records, split = choices[0].load(), choices[0].name
    elif plain_text_source(path):
        named = [flag for flag, value in (("--text-column", text_column), ("--pair-column", pair_column)) if value]
        if named:  # a text file has no columns: the option would be ignored
            raise UserError(f"{option} file '{path}' is plain text, one text per line (a TAB before the second text "
                            f"of a pair), with no columns for {' and '.join(named)} to name; drop "
                            f"{' and '.join(named)}, or give a CSV, TSV or JSON file with a header.")
        return _text_lines(path, option, task)
    elif not (text_column or pair_column) and _headerless_tsv(path, None, spec["text"]) and not (
            getattr(task, "name", None) in (None, "token-classification") and _conll_tsv(path)):
        return _text_lines(path, option, task)
    else:
        records = _read_file(path)
    name = str(path) + (f" (split '{split}')" if split else "")
    if not records.count:
        raise UserError(f"{name} has no rows; {option} needs at least one text.")
    header = _Header(records.header, Path(name))
    text = _named_column(header, "text", text_column) if text_column else None
    pair = _named_column(header, "pair", pair_column) if pair_column else None
    if text is None:
        layouts = [(header.find(a), header.find(b)) for a, b in spec["pairs"] if header.has(a) and header.has(b)]
        if len(layouts) == 1 and pair is None and (task is None or task.supports_pairs):
            text, pair = layouts[0]
        else:
            text = _one_of(header, "text", spec["text"], "text")
    if pair is None and task is not None and task.supports_pairs and text_column is not None:
        pair = next((b for a, b in ((header.find(a), header.find(b)) for a, b in spec["pairs"]
                                    if header.has(a) and header.has(b)) if a == text), None)
    if task is not None and not task.supports_pairs:
        pair = None
    if task is not None and task.needs_pairs and pair is None:
        raise UserError(f"{name} has no second-text column for {task.name} (columns found: {header.listing}); "
                        f"name it with --pair-column.")
    rows = records.rows_for([c for c in (text, pair) if c is not None])
    where = [records.where(i, name) for i in range(len(rows))]
    texts = []
    for record, at in zip(rows, where):
        joined = _word_list(record.get(text), text, at)
        texts.append(joined if joined is not None else _cell_text(record.get(text), text, at))
    pairs = [_cell_text(r.get(pair), pair, at) for r, at in zip(rows, where)] if pair is not None else None
    return TextRows(texts, pairs, str(path), records.fmt, split)


def read_calibration_texts(path: Path | str, text_column: str | None = None, pair_column: str | None = None,
                           task: Any = None) -> tuple[list[str], list[str] | None]:
    """`read_texts` for --calibration-data, as (texts, pairs)."""
    rows = read_texts(path, task, text_column, pair_column, "--calibration-data")
    return rows.texts, rows.pairs


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
