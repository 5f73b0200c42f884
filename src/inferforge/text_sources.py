"""Texts without labels (`--calibration-data`, `--validation-texts`) from every source labelled data comes from, or
a text file of one text per line (`read_texts`)."""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from inferforge.conll_files import _conll_tsv
from inferforge.data_cells import _cell_text, _rows_with_text, _word_list
from inferforge.data_columns import _ANY_TASK, COLUMN_CANDIDATES, _Header, _named_column, _one_of
from inferforge.data_files import _read_file
from inferforge.data_records import DATA_SUFFIXES, TEXT_SUFFIXES, _data_suffix, _open_text
from inferforge.dataset_folders import DEFAULT_SPLITS, _dataset_splits
from inferforge.errors import UserError


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
    except UnicodeDecodeError as error:  # UTF-16 cut in the middle of a character
        raise UserError(f"{option} file '{path}' is not readable {error.encoding.upper()} text ({error.reason}); save it "
                        f"as UTF-8.") from None
    except UserError as error:  # binary, or UTF-8 damaged in a few places (`text_encoding`)
        raise UserError(f"{option} file '{path}': {error}") from None
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
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError, UserError):  # read (and refused) later
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
    kept, _ = _rows_with_text(rows, [c for c in (text, pair) if c is not None], lambda i: records.where(i, name), name,
                              words=True)  # blank texts have nothing to run the model on
    rows, where = [rows[i] for i in kept], [records.where(i, name) for i in kept]
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
