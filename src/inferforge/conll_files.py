"""Files of one token and its tag per line (CoNLL, CoNLL-U) and fastText's `__label__` lines: how they are recognised
(also as .txt and header-less .tsv) and read."""

from __future__ import annotations

import itertools
import lzma
import re
from pathlib import Path

from inferforge.data_cells import _name_key
from inferforge.data_columns import _ANY_TASK, _Header
from inferforge.data_records import _Records, _open_text
from inferforge.errors import UserError


_TAG = re.compile(r"O|[BIESLU][-_]\S+")


# A header line some CoNLL-style files start with ("token label", "WORD POS TAG"): the names of the word and tag columns.
_WORD_HEADER = {"token", "tokens", "word", "words", "form", "text"}
_TAG_HEADER = {"tag", "tags", "label", "labels", "ner", "nertag", "nertags", "entity", "iob", "bio"}


def _word_tag_header(cells: list[str]) -> bool:
    return len(cells) >= 2 and _name_key(cells[0]) in _WORD_HEADER and _name_key(cells[-1]) in _TAG_HEADER


def _conll_text(path: Path) -> bool:
    """A .txt file in CoNLL layout (conll2003's own train.txt / test.txt: `-DOCSTART-`, then a token and its tags per
    line, a blank line between sentences), read by its first lines."""
    try:
        with _open_text(path, newline=None) as f:
            head = list(itertools.islice(f, 200))
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError, UserError):  # read (and refused) later
        return False
    tokens = [line.split() for line in head if line.strip() and not line.startswith("#")]
    if tokens and _word_tag_header(tokens[0]):
        tokens = tokens[1:]
    if tokens and tokens[0][0] == "-DOCSTART-":
        return True
    return (len(tokens) > 1 and any(not line.strip() for line in head)
            and all(len(t) >= 2 and _TAG.fullmatch(t[-1]) for t in tokens))


def _conll_tsv(path: Path) -> bool:
    """A .tsv without header holding a token and its tag per line (WNUT-17 and many NER corpora: `word<TAB>tag`, a
    blank line between sentences): every line of its first ones two tab-separated cells or more, the last a tag, and
    no first line naming a text column."""
    try:
        with _open_text(path, newline=None) as f:
            head = list(itertools.islice(f, 200))
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError, UserError):  # read (and refused) later
        return False
    lines = [line.rstrip("\r\n") for line in head if line.strip() and not line.startswith("#")]
    if len(lines) < 2 or not any(not line.strip() for line in head):
        return False
    cells = [[c.strip() for c in line.split("\t")] for line in lines]
    if _Header(cells[0], path).has("text") or any(_Header(cells[0], path).has(c) for c in _ANY_TASK["text"]):
        return False
    return all(len(c) >= 2 and all(c) and _TAG.fullmatch(c[-1]) for c in cells if c[0] != "-DOCSTART-")


_FASTTEXT_LABEL = "__label__"


def _fasttext_text(path: Path) -> bool:
    """A .txt file in fastText's layout: every line `__label__pos __label__x some text` (its first lines read)."""
    try:
        with _open_text(path, newline=None) as f:
            head = [line for line in itertools.islice(f, 200) if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError, UserError):  # read (and refused) later
        return False
    return bool(head) and all(line.lstrip().startswith(_FASTTEXT_LABEL) for line in head)


_COMMENT_KEYS = ("id", "sent_id", "text", "doc_id", "newdoc", "newpar", "domain")


def _conll_comment(cells: list[str]) -> bool:
    """A comment line before a sentence of a CoNLL file: "# id 1e6b... domain=en" (MultiCoNER), "# sent_id = 3" or
    "# text = ..." (as CoNLL-U writes them); not the token "#" with its tag ("# O", "# # B-NP O")."""
    return len(cells) > 1 and cells[0] == "#" and (cells[1].lower() in _COMMENT_KEYS or any("=" in c for c in cells))


def _read_conll(f, path: Path) -> _Records:
    records, lines = [], []
    tokens: list[str] = []
    tags: list[str] = []
    first = 0
    header: str | None = None
    for number, line in enumerate(f, start=1):
        cells = line.split()
        if cells and cells[0] == "-DOCSTART-":
            cells = []
        if not records and not tokens and header is None and _word_tag_header(cells):  # "token label" before the words
            header = " ".join(cells)
            continue
        if not tokens and _conll_comment(cells):  # MultiCoNER's "# id 1e6b... domain=en" before each sentence
            continue
        if not cells:
            if tokens:
                records.append({"tokens": tokens, "ner_tags": tags})
                lines.append(first)
            tokens, tags = [], []
            continue
        if len(cells) < 2:
            raise UserError(f"Line {number} of {path} has no tag; write the token and its tag on one line "
                            f"(separated by a space or a tab), a blank line between sentences.")
        if not tokens:
            first = number
        tokens.append(cells[0])
        tags.append(cells[-1])
    if tokens:
        records.append({"tokens": tokens, "ner_tags": tags})
        lines.append(first)
    notes = (f"the first line of {path} ('{header}') names its columns, so it is not read as a word",) if header else ()
    return _Records(records, lines, ["tokens", "ner_tags"] if records else [], "CoNLL", notes=notes)


def _read_fasttext(f, path: Path) -> _Records:
    """fastText's supervised layout: `__label__pos some text` per line (several labels: a multi-label row)."""
    records, lines = [], []
    for number, line in enumerate(f, start=1):
        words = line.split()
        if not words:
            continue
        labels = [w[len(_FASTTEXT_LABEL):] for w in itertools.takewhile(lambda w: w.startswith(_FASTTEXT_LABEL), words)]
        text = " ".join(words[len(labels):])
        if not labels or not all(labels) or not text:
            raise UserError(f"Line {number} of {path} is not a fastText line (__label__name, then the text); write "
                            f"each row so.")
        records.append({"text": text, "label": labels[0] if len(labels) == 1 else labels})
        lines.append(number)
    return _Records(records, lines, ["text", "label"] if records else [], "fastText")


_CONLLU_COLUMNS = ("id", "tokens", "lemmas", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")


def _read_conllu(f, path: Path) -> _Records:
    """CoNLL-U (Universal Dependencies): ten tab-separated columns per word, `#` comments, blank line between
    sentences; multiword-token lines (1-2) and empty nodes (1.1) are skipped. Columns as datasets'
    universal_dependencies names them: tokens, lemmas, upos, xpos, feats, head, deprel."""
    records, lines = [], []
    spaced: list[tuple[int, str]] = []  # (line, FORM) of the words with spaces
    sentence: dict[str, list[str]] = {}
    first = 0
    kept = ("tokens", "lemmas", "upos", "xpos", "feats", "head", "deprel")
    for number, line in enumerate(f, start=1):
        line = line.rstrip("\r\n")
        if line.startswith("#"):
            continue
        if not line.strip():
            if sentence:
                records.append(sentence)
                lines.append(first)
            sentence = {}
            continue
        cells = line.split("\t")
        if len(cells) != 10:
            raise UserError(f"Line {number} of {path} has {len(cells)} tab-separated columns where CoNLL-U has 10 "
                            f"(ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC); separate them with tabs.")
        if "-" in cells[0] or "." in cells[0]:
            continue
        if not sentence:
            first = number
            sentence = {k: [] for k in kept}
        # A FORM may hold spaces (Vietnamese "Hà Nội", French "10 000", CoNLL-U v2 allows them): the text is the words
        # joined by spaces and scored word by word at white space, so such a word is read as its parts, each with the
        # word's own tags.
        pieces = cells[1].split() or [cells[1]]
        if len(pieces) > 1:
            spaced.append((number, cells[1]))
        for name, cell in zip(_CONLLU_COLUMNS, cells):
            if name in sentence:
                sentence[name].extend(pieces if name == "tokens" else [cell] * len(pieces))
    if sentence:
        records.append(sentence)
        lines.append(first)
    notes = ()
    if spaced:
        words = "1 word holds spaces in its" if len(spaced) == 1 else f"{len(spaced):,} words hold spaces in their"
        notes = (f"{words} FORM (the first, '{spaced[0][1]}', at line {spaced[0][0]} of {path}): each is "
                 f"read as its space-separated parts, every part with the word's tags",)
    return _Records(records, lines, list(kept) if records else [], "CoNLL-U", notes=notes)
