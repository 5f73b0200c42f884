"""One data file read into `_Records` by its format (`_read_file`), whatever the format."""

from __future__ import annotations

import csv
import json
import lzma
from pathlib import Path
from typing import Any

from inferforge.arrow_files import _ArrowFiles
from inferforge.brat_files import is_brat_text, read_brat
from inferforge.conll_files import _conll_text, _conll_tsv, _fasttext_text, _read_conll, _read_conllu, _read_fasttext
from inferforge.csv_files import _long_cells, _read_csv
from inferforge.data_columns import _ANY_TASK, _Header
from inferforge.data_records import (ARROW_FORMATS, DATA_SUFFIXES, TEXT_SUFFIXES, UNCOMPRESSED_FORMATS, _Records,
                                     _compression, _data_suffix, _encoding_notes, _open_text)
from inferforge.errors import UserError
from inferforge.excel_files import read_xlsx, spreadsheet_refused
from inferforge.json_files import _read_json_array, _read_json_lines, _read_json_object, _read_mrqa


def _tabbed_table(path: Path) -> bool:
    """A .txt whose first line names tab-separated columns, one of them a text column: a sheet Excel saved as "Unicode
    Text" (UTF-16, tabs), or any TSV named .txt."""
    try:
        with _open_text(path, newline=None) as f:
            first = next((line for line in f if line.strip()), "")
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError, UserError):  # read (and refused) later
        return False
    cells = [c.strip() for c in first.rstrip("\r\n").split("\t")]
    header = _Header(cells, path)
    return len(cells) > 1 and any(header.has(c) for c in _ANY_TASK["text"])


def _text_kind(path: Path) -> str | None:
    """The format of a .txt file: the text of a BRAT document (a .ann beside it), CoNLL or fastText layout, a table of
    tab-separated columns under a header; None: plain text."""
    if not path.is_file():
        return None
    if is_brat_text(path):
        return "brat"
    if _conll_text(path):
        return "conll"
    return "fasttext" if _fasttext_text(path) else "tsv" if _tabbed_table(path) else None


def _file_kind(path: Path) -> str | None:
    """The format a data file is read in by its name (a .txt only in a layout `_text_kind` knows); None: not a data
    file."""
    suffix = _data_suffix(path)
    if suffix in TEXT_SUFFIXES:
        return _text_kind(path)
    fmt = DATA_SUFFIXES.get(suffix)
    if fmt == "tsv" and path.is_file() and _conll_tsv(path):
        return "conll"
    return fmt


def _data_format(path: Path) -> str:
    kind = _text_kind(path) if _data_suffix(path) in TEXT_SUFFIXES else None
    if kind is not None:
        return kind
    fmt = DATA_SUFFIXES.get(_data_suffix(path))
    if fmt == "tsv" and path.is_file() and _conll_tsv(path):
        return "conll"
    refused = spreadsheet_refused(path)
    if refused is not None:
        raise refused
    if fmt is None or (fmt in UNCOMPRESSED_FORMATS and _compression(path)):
        raise UserError(
            f"Cannot read labelled data from {path}: use a .csv, .tsv, .jsonl, .json, .parquet, .arrow, .xlsx, .conll, "
            f".conllu or BRAT .ann file (the text ones may be .gz, .bz2 or .xz; a .txt file only in CoNLL layout, a "
            f"token and its tag per line, or fastText's, __label__name and the text on each line, or as a table of "
            f"tab-separated columns under a header line), or a folder written by datasets' save_to_disk (got "
            f"'{''.join(path.suffixes[-2:]) or 'no suffix'}')."
        )
    return fmt


def _read_records(path: Path) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """All records of a data file with their line numbers and the columns seen."""
    records = _read_file(path)
    return records.rows_for(records.header), records.lines, records.header


def _read_file(path: Path, sheet: str | None = None) -> _Records:
    """The records of one data file, whatever its format (`sheet`: the sheet of an Excel workbook, default its first);
    a text file's notes say how it was decoded when it is not UTF-8 (`text_encoding`)."""
    fmt = _data_format(path)
    if fmt in ARROW_FORMATS:
        return _ArrowFiles([path], fmt, str(path)).records()
    if fmt == "xlsx":
        return read_xlsx(path, sheet)
    if fmt == "brat":
        return read_brat([path.with_suffix(".ann")], str(path))
    records = _read_text_file(path, fmt)
    if fmt == "tsv" and _data_suffix(path) in TEXT_SUFFIXES:
        records.notes = (f"{path} holds tab-separated columns under a header line (as Excel saves a sheet as Unicode "
                         f"Text), so it is read as TSV",) + records.notes
    records.notes = _encoding_notes(path) + records.notes
    return records


def _read_text_file(path: Path, fmt: str) -> _Records:
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
    except UnicodeDecodeError as error:  # UTF-16 cut in the middle of a character, a lone surrogate
        raise UserError(f"{path} is not readable {error.encoding.upper()} text ({error.reason}); save it as UTF-8.") from None
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
