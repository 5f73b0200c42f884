"""Cells of labelled data as files hold them: lists written into a CSV cell, blanks, ids, flags; and the small
helpers messages share (`_listing`, `_shown`)."""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Callable, Sequence

import numpy as np

from inferforge.errors import UserError


def _key(name: str) -> str:
    return name.strip().lower()


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


def _name_key(name: Any) -> str:
    return re.sub(r"[^0-9a-z]+", "", str(name).casefold())


def _listing(items: Sequence[str], limit: int = 12) -> str:
    items = list(items)
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _shown(label: Any) -> str:
    return " ".join(str(label).split())[:60]


def _no_text(value: Any, words: bool = False) -> bool:
    """A cell with no text to score: blank (`_missing`), or, for `words` (token classification), an empty list."""
    return _missing(value) or (words and isinstance(parse_cell(value), list) and not parse_cell(value))


def _rows_with_text(rows: Sequence[dict[str, Any]], columns: Sequence[str], where: Callable[[int], str], name: str,
                    words: bool = False) -> tuple[list[int], str | None]:
    """The rows whose text `columns` (the text, and the second text of a pair) all hold text, and a note saying how
    many were left out and where the first is (None: none). A spreadsheet's empty rows and a dataset's blank texts
    have nothing to score, as rows without a gold label have no answer to score against; a file none of whose rows
    holds text is a UserError."""
    blank = [i for i, row in enumerate(rows) if any(_no_text(row.get(c), words) for c in columns)]
    if not blank:
        return list(range(len(rows))), None
    cells = " or ".join(f"'{c}'" for c in columns)
    if len(blank) == len(rows):
        raise UserError(f"Column {cells} is empty in every row of {name} (the first at {where(0)}); name the column "
                        f"that holds the texts with --text-column" + (" and --pair-column" if len(columns) > 1 else "")
                        + ".")
    gone = set(blank)
    kept = [i for i in range(len(rows)) if i not in gone]
    rows_have = "1 row has" if len(blank) == 1 else f"{len(blank):,} rows have"
    return kept, (f"{rows_have} no text (a blank {cells} cell, the first at {where(blank[0])}), so "
                  f"{'it is' if len(blank) == 1 else 'they are'} left out: {len(kept):,} of the {len(rows):,} rows of "
                  f"{name} are read")


def _part_tags(tag: Any, parts: int) -> list:
    """The tags of the `parts` parts of one word tagged `tag`: B-PER gives B-PER I-PER, S-PER (IOBES; BILOU's U-)
    B-PER ... E-PER, E-PER I-PER ... E-PER, so the word stays one entity; other tags (I-, O, UPOS, ids) repeat."""
    if parts <= 1 or not isinstance(tag, str) or len(tag) < 3 or tag[1] not in "-_" or tag[0] not in "BSEUL":
        return [tag] * parts
    kind, sep = tag[2:], tag[1]
    first = {"B": "B", "S": "B", "U": "B", "E": "I", "L": "I"}[tag[0]]
    last = {"B": "I", "S": "E", "U": "L", "E": "E", "L": "L"}[tag[0]]
    return [f"{first}{sep}{kind}"] + [f"I{sep}{kind}"] * (parts - 2) + [f"{last}{sep}{kind}"]


def split_spaced_words(words: Any, tags: Any) -> tuple[Any, Any, str | None]:
    """Words of a token list that hold white space (UD Vietnamese "Hà Nội", French "10 000" with a no-break space) as
    their parts, each tagged so that the word keeps its tag (`_part_tags`): (words, tags, the first such word or
    None). The text is the words joined by spaces and is scored word by word at white space, so a word with a space
    is two words there. Unchanged when no word holds white space or the tags are not one list entry per word."""
    given = words
    words = parse_cell(words)
    if not isinstance(words, list) or not any(isinstance(w, str) and len(w.split()) > 1 for w in words):
        return given, tags, None
    listed = parse_cell(tags)
    if isinstance(listed, str):
        listed = listed.split()
    if not isinstance(listed, list) or len(listed) != len(words):
        return given, tags, None
    out_words: list = []
    out_tags: list = []
    first = None
    for word, tag in zip(words, listed):
        parts = word.split() if isinstance(word, str) else []
        if len(parts) > 1:
            first = first or word
            out_words += parts
            out_tags += _part_tags(tag, len(parts))
        else:
            out_words.append(word)
            out_tags.append(tag)
    return out_words, out_tags, first
