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
* BRAT standoff: a `.ann` of entity spans beside each `.txt` (`brat_files`);
* any of these text formats compressed as the Hub often ships them (`test.jsonl.gz`, `.bz2`, `.xz`), in UTF-8,
  UTF-16/32 or a Windows code page (`text_encodings`); rows with a blank text are left out, said;
* Excel workbooks (`.xlsx`, a sheet per split: `excel_files`, with openpyxl);
* Parquet (`.parquet`, the Hub's format) and Arrow (`.arrow`, `.feather`), read with pyarrow;
* a folder: what `datasets`' `save_to_disk` writes (a Dataset: state.json + .arrow files; a DatasetDict:
  dataset_dict.json + one folder per split), or a Hub repository's files named by split
  (`data/test-00000-of-00001.parquet`, `test.jsonl`...). The split is the one asked for, else `test`,
  else `validation`.

Texts without labels (`--calibration-data`, `--validation-texts`) come from the same sources, or a `.txt` file
with one text per line, through one reader (`read_texts`).

The text, second-text and label columns are the ones the user names; a column not named is found by its
usual names (`COLUMN_CANDIDATES`, header matched case-insensitively), `text` / `text_pair` / `label`
first. A missing or ambiguous column, an empty label cell, an unreadable line or an empty file is a `UserError`
naming the file, the line and what to change. Labels are checked against the model only when they are
turned into class ids (`class_ids`, `tag_sequences`), because only the model knows its labels: integer
ids go through the dataset's class names (`ClassLabel` in the `datasets` features a Parquet/Arrow file
or dataset_info.json carries, or a `label_text` column beside the ids as SetFit's datasets have) to the model's own
ids; ids without names are taken as the model's ids. true/false labels are ids 1/0 of a two-class model (unless
it names its classes so); multi-label rows are lists of classes, or 0/1 vectors with one value per class. Rows
marked as having no gold label (-1, SNLI's '-') are left out of the score, and said.

The reading is split by what it reads: `data_records` (the records every reader returns, how a file is opened and
decoded), `data_files` (a file read by its format), `csv_files`, `json_files`, `conll_files` (and fastText),
`brat_files`, `excel_files`, `arrow_files`, `dataset_folders` (save_to_disk
folders, Hub folders, splits, dataset cards), `data_columns` (which column is which), `data_cells`, `entity_spans`,
`gold_labels` (labels to the model's ids, per task), `text_sources` (texts without labels) and `movie_reviews`. This
module puts them together (`read_labelled_data`) and keeps every public name importable from here.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from inferforge.arrow_files import class_label_names
from inferforge.brat_files import BRAT_FORMAT
from inferforge.data_cells import (_as_class_id, _cell_text, _listing, _missing, _rows_with_text, _word_list,
                                   parse_cell, split_spaced_words)
from inferforge.data_columns import (COLUMN_CANDIDATES, OPTION, SPAN_COLUMNS, TRIPLET_LAYOUTS,
                                     TRIPLETS_NOTE, DataColumns, _has_label_column, _Header, _triplet_layout,
                                     resolve_columns)
from inferforge.data_files import _data_format, _read_file
from inferforge.data_records import (ARROW_FORMATS, COMPRESSIONS, DATA_SUFFIXES, TEXT_SUFFIXES,
                                     _check_file, _data_suffix, _Records)
from inferforge.dataset_folders import (DEFAULT_SPLITS, _dataset_splits, _split_file_names, _split_slice,
                                        card_class_names)
from inferforge.entity_spans import SPANS_NOTE, _span_tags
from inferforge.errors import UserError
from inferforge.gold_labels import (NO_GOLD_LABELS, LabelResolver, NameMatch, _names_column,
                                    answer_texts, class_ids, class_sets, is_multi_label, similarity_scores,
                                    tag_sequences, without_unlabelled_rows)
from inferforge.movie_reviews import (MOVIE_REVIEW_MEMBER, MOVIE_REVIEW_SHA256, SENTIMENT_LABELS,
                                      VADER_REQUIREMENT, MovieReviewSplit, ScoredSentence, cache_dir,
                                      movie_review_file, movie_review_sentences, movie_review_split)
from inferforge.text_sources import (TEXT_SPLITS, TextRows, plain_text_source, read_calibration_texts,
                                     read_texts)


__all__ = ["ARROW_FORMATS", "COLUMN_CANDIDATES", "COMPRESSIONS", "DATA_SUFFIXES", "DEFAULT_SPLITS",
           "MOVIE_REVIEW_MEMBER", "MOVIE_REVIEW_SHA256", "NO_GOLD_LABELS", "OPTION", "SENTIMENT_LABELS",
           "SPAN_COLUMNS", "SPANS_NOTE", "TEXT_SPLITS", "TEXT_SUFFIXES", "TRIPLET_LAYOUTS", "TRIPLETS_NOTE",
           "VADER_REQUIREMENT", "DataColumns", "LabelledData", "LabelResolver", "MovieReviewSplit", "NameMatch",
           "ScoredSentence", "TextRows", "answer_texts", "cache_dir", "card_class_names", "class_ids",
           "class_label_names", "class_sets", "is_multi_label", "movie_review_file", "movie_review_sentences",
           "movie_review_split", "parse_cell", "plain_text_source", "read_calibration_texts",
           "read_labelled_data", "read_texts", "resolve_columns", "similarity_scores", "tag_sequences",
           "without_unlabelled_rows", "write_labelled_csv"]


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
            data = _labelled(records, path, columns, text_is_list, choice.name, card_class_names(path), rows)
            if after and _unlabelled(data):
                notes.append(f"split '{choice.name}' of {path} has no labels (every label is -1, as in GLUE's test "
                             f"splits), so '{after}' is used")
                continue
            shown = _split_file_names(path, choice.files)
            if choice.by_default and not notes:
                notes.append(f"split '{choice.name}' of {path} is used{shown} (the first of {', '.join(DEFAULT_SPLITS)} "
                             f"it has; choose another with --eval-split)")
            elif split is not None and choice.name is None:  # Dataset.save_to_disk of a Dataset that names no split
                notes.append(f"--eval-split '{split}' does not apply to {path}, a saved Dataset without a split name: "
                             f"all of it is read" + (", then sliced" if rows is not None else ""))
            elif (split is not None and choice.name != split) or (choice.files and _data_suffix(choice.files[0]) in TEXT_SUFFIXES):
                asked = f" (asked for '{split}')" if split is not None and choice.name != split else ""
                notes.append(f"split '{choice.name}' of {path} is used{shown}{asked}")  # which .txt, always
            return replace(data, notes=tuple(notes) + data.notes)
    _check_file(path)
    if split is not None and _data_format(path) == "xlsx":  # a workbook's sheets are its splits
        return _labelled(_read_file(path, sheet=split), path, columns, text_is_list, None, wanted=rows)
    data = _labelled(_read_file(path), path, columns, text_is_list, None, card_class_names(path), rows)
    if split is not None:  # the slice of test[:200] still applies, to the whole file
        data = replace(data, notes=(f"--eval-split '{split}' does not apply to a single file: all of {path} is read"
                                    + (", then sliced" if rows is not None else ""),) + data.notes)
    return data


def _slice_range(count: int, rows: tuple[str, str], name: str) -> tuple[range, str]:
    """The rows of `count` that a slice such as [:500] or [10%:20%] keeps, as datasets counts them (every row of the
    split, blank ones too), and the note saying so."""
    def bound(text: str) -> int | None:
        if not text:
            return None
        return round(count * int(text[:-1]) / 100) if text.endswith("%") else int(text)

    kept = range(count)[bound(rows[0]):bound(rows[1])]
    if not kept:
        raise UserError(f"--eval-split [{rows[0]}:{rows[1]}] keeps no row of the {count} of {name}; "
                        f"widen the slice.")
    return kept, f"rows [{rows[0]}:{rows[1]}] of {name} are used: {len(kept)} of {count}"


def _sliced(data: LabelledData, rows: tuple[str, str] | None) -> LabelledData:
    """A slice of rows already read (0/1 class columns: their rows without labels were left out first)."""
    if rows is None:
        return data
    kept, note = _slice_range(len(data), rows, data.name)
    return replace(data.subset(kept), notes=data.notes + (note,))


def _with_nested_fields(records: _Records, columns: DataColumns) -> _Records:
    """Columns named with a dot (`--text-column meta.text`, as datasets' `flatten()` names a struct's fields) that
    the header does not hold as such: the field of a struct (a Parquet or Arrow struct, a JSON object) read into a
    column of that name, so that nested data is evaluated without flattening it first."""
    named = [c for c in (columns.text, columns.pair, columns.label) if c and "." in c and c not in records.header]
    found: dict[str, tuple[str, list[str]]] = {}
    for name in named:
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):  # the longest start that is a column: "a.b" of "a.b.c" first
            base = ".".join(parts[:cut])
            if base in records.header:
                found[name] = (base, parts[cut:])
                break
    if not found:
        return records
    rows = records.rows_for(list(records.header))  # every column: the rows are read once, then kept

    def at(value: Any, path: list[str]) -> Any:
        for key in path:
            value = parse_cell(value)
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    for name, (base, path) in found.items():
        for row in rows:
            row[name] = at(row.get(base), path)
    return replace(records, rows=rows, header=[*records.header, *found], table=None)


def _nested_fields(records: _Records) -> dict[str, list[str]]:
    """The struct columns of the data (an Arrow or Parquet struct, a JSON object in the first row) and their fields."""
    if records.rows is None and records.table is not None:
        schema = getattr(records.table, "schema", None)
        return {f.name: [sub.name for sub in f.type] for f in (schema or []) if hasattr(f.type, "num_fields")
                and f.type.num_fields and type(f.type).__name__ == "StructType"}
    first = records.rows[0] if records.rows else {}
    return {c: [str(k) for k in v] for c, v in first.items() if isinstance(v, dict) and v}


def _unlabelled(data: LabelledData) -> bool:
    return all(_as_class_id(label) == -1 for label in data.labels)


def _labelled(records: _Records, path: Path, columns: DataColumns, text_is_list: bool, split: str | None,
              card: tuple[dict[str, list[str]], Path | None] = ({}, None),
              wanted: tuple[str, str] | None = None) -> LabelledData:
    """`card`: class names from the dataset card beside the data (`card_class_names`), for a column whose own
    file names none (CSV, JSON Lines, a Parquet file written by pandas). `wanted`: the slice of --eval-split
    test[:500], applied to the rows as datasets counts them, before rows without text are left out."""
    from inferforge.class_columns import class_columns_data, flag_columns

    name = str(path) + (f" (split '{split}')" if split else "")
    if not records.count:
        raise UserError(f"{name} has no data rows; it needs a header (or JSON keys) and at least one labelled row.")
    if records.fmt in ("CoNLL", "CoNLL-U", BRAT_FORMAT) and columns.task not in (None, "token-classification"):
        held = ("entities of its texts (BRAT standoff)" if records.fmt == BRAT_FORMAT
                else f"a token and its tag per line ({records.fmt} layout)")
        raise UserError(f"{name} holds {held}, data for token-classification, not {columns.task}; give a CSV, TSV or "
                        f"JSON file with a text and a label column (a header row naming them).")
    records = _with_nested_fields(records, columns)
    layout = _triplet_layout(records.header, columns)
    if layout is not None:  # anchor, positive, negative
        data = _labelled(records, path, replace(columns, text=layout[0], pair=layout[1], label=layout[2]),
                         text_is_list, split, card, wanted)
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
                             text_is_list, split, card, wanted)
            return replace(data, detected=tuple(role for role, given in (("text", columns.text), ("label", columns.label))
                                                if given is None))
    flags = flag_columns(records, columns) if not _has_label_column(records.header, columns) else []
    try:
        used, detected = resolve_columns(records.header, columns, name, need_label=not flags)
    except UserError as error:
        nested = _nested_fields(records)
        if not nested:
            raise
        shown = "; ".join(f"'{c}' holds {_listing([f'{c}.{k}' for k in keys], 6)}" for c, keys in nested.items())
        message = str(error).rstrip(".")
        option = max(("--text-column", "--pair-column", "--label-column"), key=message.rfind)
        fields = [f"{c}.{k}" for c, keys in nested.items() for k in keys]
        example = next((f for f in fields if f not in records.header), fields[0])
        raise UserError(f"{message} ({shown}: name such a field with a dot, e.g. {option} {example}).") from None
    twice = next((c for c in (used.text, used.pair, used.label) if c is not None and records.header.count(c) > 1), None)
    if twice is not None:  # the csv module keeps the last of the two cells, silently
        raise UserError(f"The header of {name} names column '{twice}' {records.header.count(twice)} times, so which of "
                        f"them holds the {'label' if twice == used.label else 'text'} is unclear; rename or remove the "
                        f"others.")
    if used.label is None:
        flags = [c for c in flags if c not in (used.text, used.pair)]
        if not flags:  # the 0/1 columns were the texts: no label column after all
            resolve_columns(records.header, columns, name)
        return _sliced(class_columns_data(records, path, used, detected, flags, split, name), wanted)
    header = _Header(records.header, Path(name))
    card_names, card_path = card
    from_card = used.label not in records.class_names and used.label in card_names
    class_names_of = {**card_names, **records.class_names}
    named_by = None if used.label in class_names_of else next(
        (header.find(c) for c in (f"{used.label}_text", f"{used.label}_name", "label_text", "label_name")
         if header.has(c) and header.find(c) not in (used.text, used.pair, used.label)), None)
    rows = records.rows_for([c for c in (used.text, used.pair, used.label, named_by) if c is not None])
    window, sliced = (range(len(rows)), None) if wanted is None else _slice_range(len(rows), wanted, name)
    kept, blank = _rows_with_text([rows[i] for i in window], [c for c in (used.text, used.pair) if c is not None],
                                  lambda i: records.where(window[i], name), name, words=text_is_list)
    kept = [window[i] for i in kept]
    texts: list[str] = []
    pairs: list[str] | None = [] if used.pair is not None else None
    labels: list[Any] = []
    spans = False
    spaced: list[tuple[str, str]] = []  # (where, word) of the words that hold spaces, read as their parts
    for i in kept:
        record, where = rows[i], records.where(i, name)
        value = record.get(used.text)
        if text_is_list:
            value, tags, word = split_spaced_words(value, record.get(used.label))
            if word is not None:
                record = {**record, used.label: tags}
                spaced.append((where, word))
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
    notes = records.notes + ((blank,) if blank else ()) + ((SPANS_NOTE,) if spans else ()) + ((sliced,) if sliced else ())
    if spaced:
        notes += (f"{len(spaced):,} row{'' if len(spaced) == 1 else 's'} of {name} hold words with spaces (the first, "
                  f"'{spaced[0][1]}', at {spaced[0][0]}): each such word is read as its space-separated parts, tagged "
                  f"so that it stays one entity (B-LOC gives B-LOC I-LOC)",)
    if from_card:
        notes += (f"the class names of column '{used.label}' are read from the dataset card {card_path} "
                  f"(dataset_info features): {_listing(class_names, 8)}",)
    if named_by is not None:
        class_names = _names_column(labels, [rows[i].get(named_by) for i in kept])
        if class_names is not None:
            notes += (f"the class names of the label ids are read from column '{named_by}'",)
    return LabelledData(texts=texts, pairs=pairs, labels=labels, lines=[records.lines[i] for i in kept],
                        source=str(path), columns=used, detected=detected, file_format=records.fmt,
                        places=[records.places[i] for i in kept] if records.places is not None else None,
                        unit=records.unit, split=split, class_names=tuple(class_names) if class_names else None,
                        notes=notes, decimal_comma=records.decimal_comma)


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
