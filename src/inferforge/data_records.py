"""What every data file reader returns (`_Records`), and how a data file is named and opened: its format suffix under
a compression suffix, decompressed on the fly, decoded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from inferforge.errors import UserError
from inferforge.text_encodings import text_encoding

if TYPE_CHECKING:  # the table of a Parquet/Arrow file, read for the columns used only
    from inferforge.arrow_files import _ArrowFiles


DATA_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
                 ".conll": "conll", ".iob": "conll", ".iob2": "conll", ".bio": "conll", ".conllu": "conllu",
                 ".parquet": "parquet", ".arrow": "arrow", ".feather": "arrow", ".xlsx": "xlsx", ".xlsm": "xlsx",
                 ".ann": "brat"}
ARROW_FORMATS = {"parquet": "Parquet", "arrow": "Arrow"}
# Formats read from their own kind of file, never compressed: Parquet and Arrow, Excel workbooks (zip archives
# already), BRAT documents (a .ann with its .txt).
UNCOMPRESSED_FORMATS = {*ARROW_FORMATS, "xlsx", "brat"}
TEXT_SUFFIXES = {".txt"}


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
    """A data file opened as text in its encoding (`text_encoding`: UTF-8, a byte-order mark's UTF-16 or UTF-32, else
    a Windows code page, said), decompressed on the fly when its name says so."""
    module = _compression(path)
    codec = text_encoding(path, module).codec
    if module is None:
        return path.open(encoding=codec, newline=newline)
    import importlib

    return importlib.import_module(module).open(path, "rt", encoding=codec, newline=newline)


def _encoding_notes(path: Path) -> tuple[str, ...]:
    """What the output says about the encoding of a text data file: nothing for UTF-8 or a byte-order mark's."""
    note = text_encoding(path, _compression(path)).note
    return (note,) if note else ()


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
