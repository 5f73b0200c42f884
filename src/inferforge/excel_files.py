"""Excel workbooks (`.xlsx`, `.xlsm`), as teams keep labelled data in a spreadsheet: one sheet read as a table whose
first non-empty row names the columns, with openpyxl (an optional dependency: `pip install openpyxl`, or
`inferforge[xlsx]`; without it, one sentence saying so, or to save the sheet as CSV).

The sheet is the one named with `--eval-split` (a workbook's sheets are its splits: train, test...), else the first
of test, validation, dev, valid the workbook has, else its first sheet; a workbook of several sheets says which one
was read. Cells are read as Excel shows them computed (a formula's last value); empty rows are skipped, as a CSV's
blank lines are. The old binary `.xls` and OpenDocument's `.ods` are refused with what to save them as.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from inferforge.data_cells import _listing, _missing
from inferforge.data_records import _Records
from inferforge.errors import UserError, first_line

WORKBOOK_SUFFIXES = {".xlsx", ".xlsm"}
# Spreadsheets openpyxl does not read: what to save them as instead.
OTHER_SPREADSHEETS = {".xls": "an Excel 97-2003 workbook", ".xlsb": "an Excel binary workbook",
                      ".ods": "an OpenDocument spreadsheet", ".numbers": "a Numbers spreadsheet"}


def spreadsheet_refused(path: Path) -> UserError | None:
    """The sentence for a spreadsheet format that is not read, None for any other file."""
    kind = OTHER_SPREADSHEETS.get(path.suffix.lower())
    if kind is None:
        return None
    return UserError(f"{path} is {kind}, which is not read; save the sheet as .xlsx (Excel: File > Save As > Excel "
                     f"Workbook) or as CSV UTF-8.")


def _openpyxl(path: Path):
    try:
        import openpyxl
    except ImportError:
        raise UserError(f"Reading {path} (an Excel workbook) needs openpyxl, which is not installed here; install it "
                        f"(pip install openpyxl) or save the sheet as CSV UTF-8 (Excel: File > Save As > CSV UTF-8)."
                        ) from None
    return openpyxl


def _choose_sheet(path: Path, names: list[str], asked: str | None) -> tuple[str, str | None]:
    """The sheet to read and what to say about it (None: nothing, a workbook of one sheet)."""
    from inferforge.dataset_folders import DEFAULT_SPLITS

    listing = _listing([repr(n) for n in names], 8)
    if asked is not None:
        found = next((n for n in names if n == asked), None) or next(
            (n for n in names if n.strip().casefold() == asked.strip().casefold()), None)
        if found is None:
            raise UserError(f"{path} has no sheet '{asked}' (sheets: {listing}); name one of them with --eval-split.")
        return found, (f"sheet '{found}' of {path} is read" if len(names) > 1 else None)
    if len(names) == 1:
        return names[0], None
    by_name = {n.strip().casefold(): n for n in names}
    default = next((by_name[s] for s in DEFAULT_SPLITS if s in by_name), None)
    chosen = default or names[0]
    why = "the first of test, validation, dev, valid it has" if default else "its first sheet"
    return chosen, (f"{path} has {len(names)} sheets ({listing}); sheet '{chosen}' is read ({why}; choose another "
                    f"with --eval-split)")


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _cell(value: Any) -> Any:
    """A cell's value as a text file would hold it: text and numbers as they are, a date as ISO text."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def read_xlsx(path: Path, sheet: str | None = None) -> _Records:
    """One sheet of a workbook as records: its first non-empty row names the columns (blank trailing cells aside)."""
    openpyxl = _openpyxl(path)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError, openpyxl.utils.exceptions.InvalidFileException
            ) as error:
        raise UserError(f"{path} is not a readable Excel workbook ({first_line(error, 120) or type(error).__name__}; "
                        f"an encrypted workbook is not one either); save it again as .xlsx, or as CSV UTF-8.") from None
    try:
        names = [n for n in book.sheetnames if book[n].sheet_state == "visible"] or list(book.sheetnames)
        chosen, note = _choose_sheet(path, names, sheet)
        header: list[str] | None = None
        rows, lines, places = [], [], []
        for number, values in enumerate(book[chosen].iter_rows(values_only=True), start=1):
            values = [_cell(v) for v in values]
            if all(_missing(v) for v in values):
                continue
            if header is None:
                while values and _missing(values[-1]):
                    values.pop()
                header = ["" if v is None else str(v).strip() for v in values]
                header_line = number
                continue
            extra = next((i for i in range(len(header), len(values)) if not _missing(values[i])), None)
            if extra is not None:
                raise UserError(f"Row {number} of sheet '{chosen}' of {path} has a value in column "
                                f"{_column_letter(extra)}, right of the columns its header row (row {header_line}) "
                                f"names; give that column a name in the header row, or remove the value.")
            rows.append(dict(zip(header, values)))
            lines.append(number)
            places.append(f"row {number} of sheet '{chosen}' of {path}")
    finally:
        book.close()
    return _Records(rows, lines, header or [], "Excel", places, notes=(note,) if note else ())
