"""CSV and TSV files with a header row: the delimiter from the header, raw TSVs without quoting, and quotes that
swallow rows found and named."""

from __future__ import annotations

import bisect
import contextlib
import csv
import itertools
import re
from pathlib import Path

from inferforge.data_records import _Records, _open_text
from inferforge.errors import UserError


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
