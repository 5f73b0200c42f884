"""Token-classification tables with one word per row, as many NER corpora and tools write them:

* a CSV/TSV with a header (`token<TAB>label`, `words<TAB>ner_tags`, `Word,Tag`) and a blank line between
  sentences (WNUT-17 and CoNLL files given a header line);
* a sentence id column beside the words and tags: simpletransformers' `sentence_id, words, labels`, or Kaggle's
  NER corpus `Sentence #, Word, POS, Tag`, whose id is written on each sentence's first word only.

Such a table read row by row would score each word as a sentence of its own (silently wrong entity F1), so its
rows are grouped into sentences first (`word_rows`): one record per sentence holding its words and tags as lists,
then read as any token-classification data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferforge.data_cells import _missing, _name_key, parse_cell
from inferforge.data_columns import COLUMN_CANDIDATES, SPAN_COLUMNS, DataColumns, _Header, _one_of
from inferforge.data_records import _Records
from inferforge.errors import UserError

WORD_COLUMNS = ("tokens", "words", "token", "word", "form")
TAG_COLUMNS = tuple(c for c in COLUMN_CANDIDATES["token-classification"]["label"] if c not in SPAN_COLUMNS) + (
    "tag", "ner_tag", "iob", "bio")
# A column numbering the sentences (compared without case, spaces and punctuation: "Sentence #" is "sentence").
SENTENCE_KEYS = {"sentence", "sentenceid", "sentid", "sentenceidx", "sentenceindex", "sentenceno", "sentencenum",
                 "sentencenumber", "sentidx", "sentno", "sentnum"}


def _one_word(value: Any) -> bool:
    """A cell holding one word: text without whitespace, not a list written into the cell."""
    return (isinstance(value, str) and bool(value.strip()) and not any(c.isspace() for c in value.strip())
            and not isinstance(parse_cell(value), list))


def word_rows(records: _Records, columns: DataColumns, name: str) -> tuple[_Records, DataColumns] | None:
    """`records` of one word per row grouped into one record per sentence ({word column: [...], tag column: [...]},
    a note saying so), with the columns to read them by; None when the table does not hold one word per row."""
    header = _Header(records.header, Path(name))
    word = header.find(columns.text) if columns.text is not None else next(
        (header.find(c) for c in WORD_COLUMNS + ("text",) if header.has(c)), None)
    if word is None or not records.count:
        return None
    rows = records.rows_for(records.header)
    single = [_one_word(r.get(word)) for r in rows]
    sentence = next((c for c in records.header if _name_key(c) in SENTENCE_KEYS and c != word), None)
    gaps = records.fmt in ("CSV", "TSV") and any(b - a > 1 for a, b in zip(records.lines, records.lines[1:]))
    # one word per row: every row, or most rows where sentences are marked (a cell of two words is then refused)
    if not (all(single) or ((sentence is not None or gaps) and sum(single) > len(rows) / 2)):
        return None
    if sentence is None and not gaps and _name_key(word) not in map(_name_key, WORD_COLUMNS):
        return None  # a 'text' column of one-word texts, nothing grouping them: texts, not words
    if columns.label is not None:
        tag = header.find(columns.label)
        if tag is None:
            raise header.missing("label", columns.label)
    else:
        rest = _Header([c for c in records.header if c not in (word, sentence)], header.path)
        tag = _one_of(rest, "label", TAG_COLUMNS, "tag")
    if sentence is not None:
        starts, last = [], object()
        for i, r in enumerate(rows):
            value = r.get(sentence)
            if not _missing(value) and value != last:  # Kaggle's 'Sentence: 12' is on a sentence's first word only
                starts.append(i)
                last = value
        if not starts or starts[0] != 0:
            starts = [0] + starts
        how = f"by column '{sentence}' (a new sentence where its value changes, blank cells continue one)"
    elif gaps:
        starts = [0] + [i + 1 for i, (a, b) in enumerate(zip(records.lines, records.lines[1:])) if b - a > 1]
        how = "at its blank lines"
    elif len(rows) > 1:
        raise UserError(f"{name} holds one word per row (column '{word}', tags in '{tag}') but nothing says where a "
                        f"sentence ends; put a blank line between sentences, add a sentence id column (sentence_id), "
                        f"or give each sentence on one row with its words and tags as lists.")
    else:
        starts, how = [0], ""
    if len(starts) == len(rows) > 2:
        ends = f"as column '{sentence}' numbers them" if sentence is not None else "between its blank lines"
        raise UserError(f"{name} holds one word per row (column '{word}', tags in '{tag}') and every sentence {ends} "
                        f"is one word long; put a blank line only between sentences (a CSV written on Windows without "
                        f"newline='' has one after every row), or number each word's sentence in a sentence_id column.")
    lone = next((i for i, ok in enumerate(single) if not ok), None)
    if lone is not None:
        raise UserError(f"Column '{word}' holds '{str(rows[lone].get(word)).strip()[:40]}' at "
                        f"{records.where(lone, name)}, not one word, in a table of one word per row; write one word "
                        f"per row (without spaces).")
    grouped, lines = [], []
    for begin, end in zip(starts, starts[1:] + [len(rows)]):
        kept = [i for i in range(begin, end) if str(rows[i][word]).strip() != "-DOCSTART-"]  # CoNLL's document marks
        for i in kept:
            if _missing(rows[i].get(tag)):
                raise UserError(f"Column '{tag}' is empty at {records.where(i, name)}; every word needs a tag.")
        if kept:
            grouped.append({word: [str(rows[i][word]).strip() for i in kept], tag: [rows[i][tag] for i in kept]})
            lines.append(records.lines[kept[0]])
    note = (f"{name} holds one word per row (column '{word}', tags in '{tag}'), so its {len(rows):,} rows are read as "
            f"{len(grouped):,} sentence{'s' if len(grouped) != 1 else ''}, split {how}" if len(rows) > 1 else
            f"{name} holds one word per row (column '{word}', tags in '{tag}'): its one row is read as a sentence of "
            f"one word")
    out = _Records(grouped, lines, [word, tag], records.fmt, unit=records.unit, class_names=records.class_names,
                   notes=records.notes + (note,))
    return out, DataColumns(text=word, label=tag, task=columns.task)
