"""BRAT standoff annotation, as the brat annotation tool writes it and INCEpTION, MedTator and many biomedical and
clinical NER corpora ship it: each document a `.txt` holding its text and a `.ann` beside it whose `T` lines are its
entities, `T1<TAB>PER 0 5<TAB>Alice` (character offsets of the .txt, end exclusive; a discontinuous entity
`LOC 0 5;10 15`). Relations (R), events (E), attributes (A, M), normalizations (N) and notes (#) make no tags and are
left out, said.

A `.ann` file (or its `.txt`) is one document; a folder of them one split, or one split per sub-folder (train/,
dev/, test/). Each line of a document is a row (BRAT corpora hold a sentence or a paragraph per line), its entities as
character spans of the line, read as any entity spans are (`entity_spans`): words split at spaces and punctuation,
tagged B-/I-. A word has one tag, so an entity inside or overlapping another is left out (the one that starts first,
the longer at the same start, is kept) and said; the fragments of a discontinuous entity with only spaces between them
are one entity, others one entity per fragment, said. An entity whose text in the `.ann` is not the text at its
offsets in the `.txt` (another file, another encoding) is refused naming its line.
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path
from typing import Sequence

from inferforge.data_records import _Records
from inferforge.errors import UserError
from inferforge.text_encodings import text_encoding

BRAT_FORMAT = "BRAT standoff"
_OTHER_LINES = {"R": "relations", "E": "events", "A": "attributes", "M": "attributes", "N": "normalizations",
                "#": "notes", "*": "equivalences"}
_LINE = re.compile(r"[^\r\n]+")


def brat_text_of(path: Path) -> Path:
    """The .txt holding the text of a .ann file."""
    return path.with_suffix(".txt")


def is_brat_text(path: Path) -> bool:
    """A .txt file with a .ann beside it: the text of a BRAT document."""
    return path.suffix.lower() == ".txt" and path.with_suffix(".ann").is_file()


def _read(path: Path, newline: str | None = "") -> str:
    with path.open(encoding=text_encoding(path).codec, newline=newline) as f:
        return f.read()


def _entities(ann: Path, counts: dict[str, int]) -> list[tuple[str, str, list[tuple[int, int]], str | None, int]]:
    """(id, type, fragments, text as the .ann writes it, line) of each T line."""
    found = []
    for number, line in enumerate(_read(ann, newline=None).splitlines(), start=1):
        if not line.strip():
            continue
        kind = line[:1]
        if kind != "T":
            key = _OTHER_LINES.get(kind)
            if key is None:
                raise UserError(f"Line {number} of {ann} is not a BRAT annotation (T, R, E, A, M, N, # or * line); is "
                                f"this a BRAT .ann file?")
            counts[key] = counts.get(key, 0) + 1
            continue
        cells = line.split("\t")
        try:
            label, _, offsets = cells[1].partition(" ")
            fragments = [(int(a), int(b)) for a, b in (part.split() for part in offsets.split(";"))]
        except (IndexError, ValueError):
            raise UserError(f"Line {number} of {ann} is not a BRAT entity (T1<TAB>TYPE START END<TAB>text); write "
                            f"each entity so.") from None
        if not label.strip():
            raise UserError(f"Entity {cells[0]} on line {number} of {ann} has no type; write TYPE START END.")
        found.append((cells[0], label.strip(), fragments, cells[2] if len(cells) > 2 else None, number))
    return found


def _fits(text: str, fragments: list[tuple[int, int]], written: str | None) -> bool:
    if not all(0 <= a < b <= len(text) for a, b in fragments):
        return False
    # brat writes a discontinuous entity's text as its fragments joined by a space
    return written is None or " ".join(text[a:b] for a, b in fragments) == written


def _document(ann: Path, counts: dict[str, int]) -> tuple[str, Path, list[tuple[int, int, str]]]:
    """A document's text, its .txt and its entities as (start, end, type) spans, one span per fragment that is not
    joined to the next by spaces only."""
    txt = brat_text_of(ann)
    if not txt.is_file():
        raise UserError(f"{ann} has no {txt.name} beside it; BRAT keeps each document's text in a .txt of the same "
                        f"name, copy it there.")
    entities = _entities(ann, counts)
    text = _read(txt)
    if not all(_fits(text, f, w) for _, _, f, w, _ in entities):
        normalized = text.replace("\r\n", "\n")  # annotated with Unix line ends, given with Windows ones
        if all(_fits(normalized, f, w) for _, _, f, w, _ in entities):
            text = normalized
    spans = []
    for name, label, fragments, written, number in entities:
        if not _fits(text, fragments, written):
            at = ", ".join(f"{a}-{b}" for a, b in fragments)
            there = " ".join(text[max(a, 0):max(b, 0)] for a, b in fragments)
            raise UserError(f"Entity {name} on line {number} of {ann} is {written!r} but characters {at} of {txt} are "
                            f"{there!r}; the offsets do not fit the text (give the .txt that was annotated, in the "
                            f"encoding it was annotated in).")
        merged = [list(fragments[0])]
        for a, b in fragments[1:]:
            if not text[merged[-1][1]:a].strip() and a >= merged[-1][1]:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        if len(merged) > 1:
            counts["discontinuous"] = counts.get("discontinuous", 0) + 1
        spans.extend((a, b, label) for a, b in merged)
    return text, txt, spans


def _outermost(spans: list[tuple[int, int, str]], counts: dict[str, int]) -> list[tuple[int, int, str]]:
    kept: list[tuple[int, int, str]] = []
    for span in sorted(spans, key=lambda s: (s[0], -s[1])):
        if kept and span[0] < kept[-1][1]:
            counts["nested"] = counts.get("nested", 0) + 1
            continue
        kept.append(span)
    return kept


def read_brat(files: Sequence[Path], source: str) -> _Records:
    """The rows of BRAT documents (`.ann` files, each with its `.txt`): a row per non-blank line of each text."""
    counts: dict[str, int] = {}
    rows, lines, places = [], [], []
    for ann in files:
        text, txt, spans = _document(ann, counts)
        spans = _outermost(spans, counts)
        found = [(m.start(), m.end()) for m in _LINE.finditer(text) if m.group().strip()]
        starts = [a for a, _ in found]
        by_line: dict[int, list] = {}
        for a, b, label in spans:
            pieces = 0
            for k in range(max(bisect.bisect_right(starts, a) - 1, 0), len(found)):
                begin, end = found[k]
                if begin >= b:
                    break
                if min(b, end) > max(a, begin):  # the part of the entity on this line
                    by_line.setdefault(k, []).append([max(a, begin) - begin, min(b, end) - begin, label])
                    pieces += 1
            if pieces > 1:
                counts["across lines"] = counts.get("across lines", 0) + 1
        for k, (begin, end) in enumerate(found):
            number = text.count("\n", 0, begin) + 1
            rows.append({"text": text[begin:end], "entities": by_line.get(k, [])})
            lines.append(number)
            places.append(f"line {number} of {txt}")
    said = [f"{source} is BRAT standoff ({len(files):,} document{'s' if len(files) != 1 else ''}): each line of a "
            f"document's .txt is a row, its entities (the T lines of its .ann) read as words tagged B-/I-"]
    left = [f"{n:,} {kind if n != 1 else kind[:-1]}" for kind, n in counts.items() if kind in _OTHER_LINES.values()]
    if left:
        said.append(f"{_listing_and(left)} (lines other than T) make no tags and are left out")
    if counts.get("nested"):
        said.append(f"{_entities_are(counts['nested'])} inside or overlapping another, so left out since a word has "
                    f"one tag (the one starting first, the longer at the same start, is kept)")
    if counts.get("discontinuous"):
        said.append(f"{_entities_are(counts['discontinuous'])} discontinuous, read as one entity per fragment")
    if counts.get("across lines"):
        said.append(f"{_entities_are(counts['across lines'])} cut by a line break, read as one entity per line")
    return _Records(rows, lines, ["text", "entities"] if rows else [], BRAT_FORMAT, places, notes=("; ".join(said),))


def _entities_are(n: int) -> str:
    return "1 entity is" if n == 1 else f"{n:,} entities are"


def _listing_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
