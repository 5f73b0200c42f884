"""Which columns hold the text, the second text and the label: the ones the user names, else found by their usual
names per task (`COLUMN_CANDIDATES`, header matched case-insensitively)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from inferforge.data_cells import _as_class_id, _key
from inferforge.errors import UserError


OPTION = {"text": "--text-column", "pair": "--pair-column", "label": "--label-column"}

# Usual names of the columns, per task, in the order they are tried after the defaults (text, text_pair,
# label). Pairs are found as layouts: both columns of one layout must be present.
_PAIR_LAYOUTS = (("text", "text_pair"), ("sentence1", "sentence2"), ("premise", "hypothesis"),
                 ("question1", "question2"), ("question", "context"), ("question", "sentence"),
                 ("sentence_a", "sentence_b"), ("text_a", "text_b"), ("text1", "text2"),
                 ("question", "passage"), ("query", "passage"), ("query", "document"),  # BoolQ; rerankers
                 ("context", "hypothesis"),  # ANLI's own files
                 ("#1 string", "#2 string"))  # GLUE's own MRPC files
_SINGLE_TEXTS = ("text", "sentence", "review", "content", "document", "review_body",
                 "comment_text", "tweet", "utterance")  # comment_text: Jigsaw's toxic comments; utterance: intents
COLUMN_CANDIDATES: dict[str, dict[str, tuple]] = {
    "text-classification": {
        "text": _SINGLE_TEXTS + ("sentence1", "premise", "question1", "question", "sentence_a", "text_a", "text1"),
        "pairs": _PAIR_LAYOUTS,
        "label": ("label", "labels", "gold_label", "class", "category", "sentiment", "answer",  # answer: google/boolq
                  "target", "is_duplicate", "intent"),  # is_duplicate: GLUE's own QQP files; intent: clinc_oos
    },
    "token-classification": {
        "text": ("text", "tokens", "words"),
        "pairs": (),
        "label": ("label", "ner_tags", "tags", "labels", "ner", "upos", "tag", "ner_tag",
                  "entities", "spans", "ents"),  # spans: doccano, spaCy
    },
    "question-answering": {
        "text": ("text", "question"),
        "pairs": (("text", "text_pair"), ("question", "context")),
        "label": ("label", "answers", "answer"),
    },
    "feature-extraction": {
        "text": ("text", "sentence", "sentence1", "premise", "question1", "sentence_a", "text_a", "text1"),
        "pairs": tuple(layout for layout in _PAIR_LAYOUTS if layout != ("question", "context")),
        "label": ("label", "score", "similarity_score", "similarity", "relatedness_score"),
    },
}
# Label columns looked for only when none of the task's usual ones is there: a number per row (an STS-B file's
# 'score' for a regression head), a flattened SQuAD file's 'answer_text'. Columns that often sit beside a label (a
# confidence score) make no ambiguity with it.
_LABEL_FALLBACK = {"text-classification": ("score", "similarity_score", "relatedness_score", "quality"),  # MRPC's
                   "question-answering": ("answer_text",)}
# Sentence-embedding triplets without a score (sentence-transformers' all-nli and MS MARCO triplets): an anchor, a text
# like it and one unlike it, scored by how often the anchor is closer to the first (`EvalSet`).
TRIPLET_LAYOUTS = (("anchor", "positive", "negative"), ("query", "positive", "negative"))
TRIPLETS_NOTE = ("rows are triplets (an anchor, a text like it and one unlike it) with no similarity score, so a "
                 "variant is scored by the share of triplets whose anchor embedding is closer (cosine) to the positive "
                 "than to the negative, as sentence-transformers' TripletEvaluator does")
# Label columns taken before the task's usual ones when present: a similarity score for embeddings, also beside a
# 'label' column (SICK's label is its entailment class, its relatedness_score the similarity).
_LABEL_FIRST = {"feature-extraction": ("score", "similarity_score", "similarity", "relatedness_score")}
# Label columns of entities as character spans (doccano, spaCy, Prodigy): taken only when no column of tags is there.
SPAN_COLUMNS = ("entities", "spans", "ents")
_ANY_TASK = {role: tuple(dict.fromkeys(c for spec in COLUMN_CANDIDATES.values() for c in spec[role]))
             for role in ("text", "pairs", "label")}


@dataclass(frozen=True)
class DataColumns:
    """Which columns (CSV) or keys (JSON) hold the text, the optional second text and the label.

    A column left at None is found by its usual names for `task` (`COLUMN_CANDIDATES`); a named one must
    exist (matched case-insensitively). The second text is used when the file has one; `pair_required`
    makes it an error when it does not (question answering needs a context, similarity two sentences).
    On a `LabelledData` these are the columns actually used (`pair` None: single texts).
    """

    text: str | None = None
    pair: str | None = None
    label: str | None = None
    pair_required: bool = False
    task: str | None = None


class _Header:
    def __init__(self, names: list[str], path: Path):
        self.names = names
        self.path = path
        self.by_key: dict[str, str] = {}
        for name in names:
            self.by_key.setdefault(_key(name), name)

    def find(self, name: str) -> str | None:
        """The header name `name` stands for: itself, else the one equal to it ignoring case and spaces."""
        return name if name in self.names else self.by_key.get(_key(name))

    def has(self, name: str) -> bool:
        return self.find(name) is not None

    @property
    def listing(self) -> str:
        return ", ".join(self.names) or "none"

    @property
    def looks_like_data(self) -> bool:
        """A first row that is data, not column names: a cell that is a number, or longer than a name (60 characters)."""
        return any(_as_class_id(n) is not None or re.fullmatch(r"-?\d+\.\d+", n.strip()) or len(n) > 60
                   for n in self.names)

    def missing(self, role: str, name: str) -> UserError:
        return UserError(f"{self.path} has no column '{name}' (columns found: {self.listing}); "
                         f"name the right one with {OPTION[role]}.")


def _one_of(header: _Header, role: str, candidates: Sequence[str], noun: str) -> str:
    """The single column among `candidates` (the default, candidates[0], wins when present)."""
    if header.has(candidates[0]):
        return header.find(candidates[0])
    matches = list(dict.fromkeys(header.find(c) for c in candidates if header.has(c)))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        if header.looks_like_data:  # Yelp's, AG News' and CoLA's own files have no header line
            shown = ", ".join(repr(n if len(n) <= 30 else n[:30] + "...") for n in header.names[:4])
            raise UserError(f"{header.path} has no header line: its first line ({shown}) holds a number or a text "
                            f"where column names go; add a first line naming the columns (e.g. label and text, in "
                            f"their order) and evaluate again.")
        raise UserError(f"{header.path} has no {noun} column (columns found: {header.listing}; looked for "
                        f"{', '.join(candidates)}); name it with {OPTION[role]}.")
    raise UserError(f"{header.path} has several possible {noun} columns ({', '.join(matches)}); "
                    f"name the right one with {OPTION[role]}.")


def _named_column(header: "_Header", role: str, name: str) -> str:
    """The header's spelling of the column the user named for `role`; a missing one is a UserError."""
    found = header.find(name)
    if found is None:
        raise header.missing(role, name)
    return found


def resolve_columns(header_names: list[str], columns: DataColumns, path: Path | str,
                    need_label: bool = True) -> tuple[DataColumns, tuple[str, ...]]:
    """The columns to use in a file with `header_names`, and which roles were found by name (`need_label` False: the
    label None when no label column is there)."""
    header = _Header(header_names, Path(path))
    spec = COLUMN_CANDIDATES.get(columns.task or "", _ANY_TASK)
    layouts = [(header.find(a), header.find(b)) for a, b in spec["pairs"] if header.has(a) and header.has(b)]
    detected = []
    if columns.text is not None:
        text = _named_column(header, "text", columns.text)
    else:
        detected.append("text")
        text = None
        if columns.pair is not None:
            partners = [a for a, b in layouts if b == header.find(columns.pair)]
            text = partners[0] if partners else None
        elif header.has("text"):
            text = header.find("text")
        elif len(layouts) == 1:
            text = layouts[0][0]
        elif len(layouts) > 1:
            found = "; ".join(f"{a} + {b}" for a, b in layouts)
            raise UserError(f"{header.path} has several possible text pairs ({found}); name the right ones with "
                            f"{OPTION['text']} and {OPTION['pair']}.")
        if text is None:
            text = _one_of(header, "text", spec["text"], "text")
    if columns.pair is not None:
        pair = _named_column(header, "pair", columns.pair)
    else:
        partners = [b for a, b in layouts if a == text]
        pair = partners[0] if partners else header.find("text_pair")
        if pair is not None:
            detected.append("pair")
        elif columns.pair_required:
            wanted = list(dict.fromkeys(["text_pair", *(b for _, b in spec["pairs"])]))
            raise UserError(f"{header.path} has no column for the second text next to '{text}' (columns found: "
                            f"{header.listing}; looked for {', '.join(wanted)}); this task needs one, "
                            f"name it with {OPTION['pair']}.")
    if columns.label is not None:
        label = _named_column(header, "label", columns.label)
    else:
        detected.append("label")
        # Tags per word before entity spans: WikiANN has both ner_tags and "spans" (["PER: Alice"]), a summary.
        tags = [c for c in spec["label"] if c not in SPAN_COLUMNS]
        candidates = tags if any(header.has(c) for c in tags) else spec["label"]
        if not any(header.has(c) for c in candidates):
            candidates = (*spec["label"], *_LABEL_FALLBACK.get(columns.task or "", ()))
        first = [c for c in _LABEL_FIRST.get(columns.task or "", ()) if header.has(c)]
        if first:
            candidates = tuple(first)
        if need_label or any(header.has(c) for c in candidates):
            label = _one_of(header, "label", candidates, "label")
        else:
            label = None
            detected.remove("label")
    used = [c for c in (text, pair, label) if c is not None]
    if len(set(used)) != len(used):
        raise UserError(f"{header.path}: column '{max(used, key=used.count)}' cannot be both the text and the label "
                        f"(or both texts); name the columns with {OPTION['text']}, {OPTION['pair']} and {OPTION['label']}.")
    return replace(columns, text=text, pair=pair, label=label), tuple(detected)


def _has_label_column(header: list[str], columns: DataColumns) -> bool:
    found = _Header(header, Path("."))
    if columns.label is not None:
        return found.has(columns.label)
    return any(found.has(c) for c in (*COLUMN_CANDIDATES.get(columns.task or "", _ANY_TASK)["label"],
                                      *_LABEL_FALLBACK.get(columns.task or "", ())))


def _triplet_layout(header_names: list[str], columns: DataColumns) -> list[str] | None:
    """The anchor, positive and negative columns of sentence-embedding triplets with no score (`TRIPLET_LAYOUTS`)."""
    if columns.task != "feature-extraction" or columns.label is not None or _has_label_column(header_names, columns):
        return None
    header = _Header(header_names, Path("."))
    return next((found for found in ([header.find(c) for c in layout] for layout in TRIPLET_LAYOUTS)
                 if None not in found and columns.text in (None, found[0]) and columns.pair in (None, found[1])), None)
