"""Entities given as character spans of a text (doccano, spaCy, Prodigy, Label Studio), read as words tagged B-/I-."""

from __future__ import annotations

import bisect
import json
import re
from typing import Any

from inferforge.data_cells import _as_class_id, parse_cell
from inferforge.errors import UserError


# Characters of scripts written without spaces between words (CJK ideographs, as BERT's tokenizer finds them, and
# Japanese kana): each is a word of its own, as Chinese and Japanese NER corpora tag them and BERT tokenizes them;
# a run of them read as one word would give a whole clause the tag of the entity inside it.
_CJK = ("\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ceaf"
        "\U0002f800-\U0002fa1f")
# A word of text annotated by character spans: one CJK character, a run of other letters and digits, or one
# punctuation mark.
_SPAN_WORD = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])\w)+|[^\w\s]")
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
