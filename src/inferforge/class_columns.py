"""Labelled data whose classes are one 0/1 column per class (Jigsaw's toxic-comment CSV: toxic, severe_toxic...;
GoEmotions' raw CSV), read on a multi-label model when the data has no label column.

While the data is read (no model yet) the columns holding only 0/1 (or true/false), blanks and -1 are candidates
(`flag_columns`); once the model is known each of its classes is found by its name as a column and each row's set
of classes read from them (`class_column_sets`). Cells:

* 1 / 0, true / false (1.0 / 0.0 too): the class applies or not;
* a row whose class columns all hold -1 has no gold labels (Jigsaw's test_labels.csv marks so the rows that were
  not scored): left out of the score, and said;
* a blank cell: when the class columns write 0 anywhere, a blank is a class nobody annotated, so its row is left
  out of the score (said, with the first one's line) rather than guessed; when they never write 0 (a spreadsheet
  where annotators mark only the classes that apply), a blank is 0, and that is said.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inferforge.data_cells import (_as_class_id, _as_flag, _cell_text, _key, _listing, _missing, _name_key,
                                   _rows_with_text, _shown)
from inferforge.data_columns import COLUMN_CANDIDATES, DataColumns
from inferforge.data_records import _Records
from inferforge.errors import UserError
from inferforge.labelled_data import LabelledData

# Columns that number the rows, never a class: a 0/1 id column of a two-row file is no class column.
_ID_COLUMNS = {"id", "idx", "index", "unnamed: 0", ""}
BLANK, NO_GOLD = "blank", "no gold"  # the cells of a class column that are neither 0 nor 1


def _indicator(value: Any) -> bool | str | None:
    """A cell of a column per class: True / False for 1 / 0 (int, float, or a string of either) or true / false,
    BLANK for an empty cell, NO_GOLD for -1; None: not a cell of such a column."""
    if _missing(value):
        return BLANK
    flag = _as_flag(value)
    if flag is not None:
        return flag
    as_id = _as_class_id(value)
    if as_id in (0, 1):
        return bool(as_id)
    return NO_GOLD if as_id == -1 else None


def flag_columns(records: _Records, columns: DataColumns) -> list[str]:
    """The columns of text-classification data holding 0/1 or true/false (and maybe blanks and -1) in every row, at
    least one 0/1, when no label column is named: candidates for one column per class, matched to a multi-label
    model's classes when it is scored (`class_column_sets`)."""
    if columns.label is not None or columns.task != "text-classification":
        return []
    rows = records.rows_for(records.header)
    found = []
    for c in records.header:
        if _key(c) in _ID_COLUMNS:
            continue
        cells = [_indicator(r.get(c)) for r in rows]
        if None not in cells and any(isinstance(cell, bool) for cell in cells):
            found.append(c)
    return found


def class_columns_data(records: _Records, path: Path, used: DataColumns, detected: tuple[str, ...],
                       flags: list[str], split: str | None, name: str) -> LabelledData:
    """Rows whose labels are one 0/1 column per class: each label the row's {column: value} of its other columns."""
    others = [c for c in records.header if c not in (used.text, used.pair)]
    rows = records.rows_for(records.header)
    kept, blank = _rows_with_text(rows, [c for c in (used.text, used.pair) if c is not None],
                                  lambda i: records.where(i, name), name)
    texts: list[str] = []
    pairs: list[str] | None = [] if used.pair is not None else None
    labels = []
    for i in kept:
        record, where = rows[i], records.where(i, name)
        texts.append(_cell_text(record.get(used.text), used.text, where))
        if pairs is not None:
            pairs.append(_cell_text(record.get(used.pair), used.pair, where))
        labels.append({c: record.get(c) for c in others})
    return LabelledData(texts=texts, pairs=pairs, labels=labels, lines=[records.lines[i] for i in kept],
                        source=str(path), columns=used, detected=detected, file_format=records.fmt,
                        places=[records.places[i] for i in kept] if records.places is not None else None,
                        unit=records.unit, split=split, notes=records.notes + ((blank,) if blank else ()),
                        class_columns=tuple(flags))


def class_columns_refused(data: LabelledData, why: str) -> UserError:
    """Data of 0/1 columns (`LabelledData.class_columns`) that cannot be read as one column per class of this model."""
    found = [c for c in (data.columns.text, data.columns.pair) if c] + list(data.labels[0] if data.labels else ())
    wanted = COLUMN_CANDIDATES["text-classification"]["label"]
    return UserError(f"{data.name} has no label column (columns found: {_listing(found, 16)}; looked for "
                     f"{', '.join(wanted)}) and its 0/1 columns ({_listing(data.class_columns, 6)}) are read as one "
                     f"column per class only {why}; name the label column with --label-column.")


def _matched_columns(data: LabelledData, label_names: Sequence[str]) -> dict[int, str]:
    """The column of each of the model's classes, found by its name (exactly, else ignoring case and spaces, else
    punctuation too: severe_toxic = 'Severe Toxic'); every class needs one."""
    others = list(data.labels[0]) if data.labels else []
    by_key: dict[str, list[str]] = {}
    for fold in (_key, _name_key):
        for c in others:
            by_key.setdefault(fold.__name__ + ":" + fold(c), []).append(c)
    found: dict[int, str] = {}
    missing: list[str] = []
    for i, label in enumerate(map(str, label_names)):
        hits = [label] if label in others else next(
            (hit for fold in (_key, _name_key) if (hit := by_key.get(fold.__name__ + ":" + fold(label)))), [])
        if len(hits) > 1:
            raise UserError(f"Columns {' and '.join(repr(h) for h in hits)} of {data.name} both name the model's class "
                            f"'{label}'; keep one of them.")
        if hits:
            found[i] = hits[0]
        else:
            missing.append(label)
    if not found:
        raise class_columns_refused(data, f"when they are named as the model's classes ({_listing(label_names, 8)}), "
                                          f"none of which has a column")
    if missing:
        raise UserError(f"{data.name} has a 0/1 column for {len(found)} of the model's {len(label_names)} classes but "
                        f"none for {_listing(missing, 8)}; add a column of 0/1 for each (0 in every row where no row "
                        f"has the class), or name a label column with --label-column.")
    return found


def _rows_have(n: int) -> str:
    return "1 row has" if n == 1 else f"{n:,} rows have"


def class_column_sets(data: LabelledData, label_names: Sequence[str]) -> tuple[LabelledData, np.ndarray, dict]:
    """The rows scored (those with gold labels; `class_columns` narrowed to the model's), their (rows, classes)
    booleans from one 0/1 column per class of the model, and how they were read (a `LabelResolver.mapping()`-like
    dict whose note says which columns, and which rows were left out and why)."""
    found = _matched_columns(data, label_names)
    cells: list[list[Any]] = [[None] * len(label_names) for _ in range(len(data))]
    for i, column in found.items():
        for row, values in enumerate(data.labels):
            cell = _indicator(values.get(column))
            if cell is None:
                raise UserError(f"Column '{column}' (class '{label_names[i]}') is '{_shown(values.get(column))}' at "
                                f"{data.where(row)}, not 0/1; a column per class holds 0 or 1 (or true/false) in "
                                f"every row (-1 in all of them for a row without gold labels).")
            cells[row][i] = cell
    no_gold = [row for row in range(len(data)) if all(c in (NO_GOLD, BLANK) for c in cells[row])
               and NO_GOLD in cells[row]]
    for row in range(len(data)):
        if NO_GOLD in cells[row] and row not in no_gold:
            i = next(i for i, c in enumerate(cells[row]) if c == NO_GOLD)
            raise UserError(f"Column '{found[i]}' (class '{label_names[i]}') is -1 at {data.where(row)}, where the row's "
                            f"other class columns hold 0/1; -1 marks a row without gold labels only in all of its class "
                            f"columns (as Jigsaw's test labels do), so write 0 or 1.")
    gone = set(no_gold)
    zeros_written = any(c is False for row in cells for c in row)
    blank_rows = [row for row in range(len(data)) if row not in gone and BLANK in cells[row]]
    said: list[str] = []
    if blank_rows and zeros_written:
        gone.update(blank_rows)
        said.append(f"{_rows_have(len(blank_rows))} a blank cell in a class column (the first at "
                    f"{data.where(blank_rows[0])}), a class nobody annotated since the columns write 0 for a class that "
                    f"does not apply, so such rows are left out")
    elif blank_rows:
        said.append(f"the class columns hold 1 and blank cells only (no 0), so a blank cell is read as 0, a class that "
                    f"does not apply ({_rows_have(len(blank_rows))} one, the first at {data.where(blank_rows[0])})")
    if no_gold:
        said.append(f"{_rows_have(len(no_gold))} -1 in every class column (the first at {data.where(no_gold[0])}), "
                    f"marking rows without gold labels as Jigsaw's test labels do, so such rows are left out")
    kept = [row for row in range(len(data)) if row not in gone]
    if not kept:
        raise UserError(f"No row of {data.name} has gold labels in its class columns ({_listing(list(found.values()), 6)}"
                        f"): {'; '.join(said)}; evaluate on rows labelled 0 or 1 in every class column.")
    if gone:
        said.append(f"{len(kept):,} of the {len(data):,} rows are scored")
    gold = np.array([[c is True for c in cells[row]] for row in kept], dtype=bool).reshape(len(kept), len(label_names))
    renamed = [f"{label_names[i]} = '{c}'" for i, c in found.items() if c != label_names[i]]
    ignored = [c for c in (data.class_columns or ()) if c not in found.values()]
    note = "; ".join([f"no label column, so the classes of each row are read from one 0/1 column per class of the model "
                      f"({_listing(list(found.values()), 8)})" + (f", matched as {_listing(renamed, 6)}" if renamed else "")
                      + (f"; 0/1 columns that name no class are left out: {_listing(ignored, 6)}" if ignored else ""),
                      *said])
    pairs = [{"model_id": i, "model_label": str(label_names[i]), "column": c} for i, c in found.items()]
    scored = replace(data.subset(kept), class_columns=tuple(found.values()), class_columns_matched=True)
    return scored, gold, {"how": ["columns"], "dataset_class_names": None, "pairs": pairs, "note": note,
                          "entity_types_missing_from_model": [], "rows_left_out": len(data) - len(kept)}
