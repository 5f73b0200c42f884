"""Task metrics, written out so that each one can be read and checked.

Every metric returns a fraction in [0, 1] (Spearman in [-1, 1]); reports multiply by 100 so that
differences between variants read as points.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np


def accuracy(gold: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> float:
    gold, predicted = np.asarray(gold), np.asarray(predicted)
    _same_length(gold, predicted)
    return float((gold == predicted).mean())


def macro_f1(gold: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> float:
    """Unweighted mean of per-class F1 over every class seen in the gold or predicted labels."""
    gold, predicted = np.asarray(gold), np.asarray(predicted)
    _same_length(gold, predicted)
    scores = []
    for cls in np.union1d(gold, predicted):
        tp = int(((predicted == cls) & (gold == cls)).sum())
        fp = int(((predicted == cls) & (gold != cls)).sum())
        fn = int(((predicted != cls) & (gold == cls)).sum())
        scores.append(_f1(tp, fp, fn))
    return float(np.mean(scores))


def _same_length(a, b) -> None:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} gold values but {len(b)} predictions")
    if len(a) == 0:
        raise ValueError("no values to score")


def _f1(tp: int, fp: int, fn: int) -> float:
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


# --- Entity-level F1, following seqeval's default (conlleval) chunking ---

Entity = tuple[str, int, int]  # type, first word, last word (inclusive)


# BILOU (spaCy's BILUO tags) spells IOBES's E and S as L (last) and U (unit).
_PREFIXES = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}


def split_tag(tag: str) -> tuple[str, str]:
    """('B', 'PER') for 'B-PER' (BILOU's L- and U- as E- and S-); a tag without a prefix is an inside tag of its own
    type."""
    if tag in ("O", ""):
        return "O", ""
    if len(tag) > 2 and tag[0] in _PREFIXES and tag[1] in "-_":
        return _PREFIXES[tag[0]], tag[2:]
    return "I", tag


def _ends_chunk(prev_prefix: str, prefix: str, prev_type: str, kind: str) -> bool:
    if prev_prefix in ("E", "S"):
        return True
    if prev_prefix in ("B", "I") and prefix in ("B", "S", "O"):
        return True
    return prev_prefix != "O" and prev_type != kind


def _starts_chunk(prev_prefix: str, prefix: str, prev_type: str, kind: str) -> bool:
    if prefix in ("B", "S"):
        return True
    if prefix in ("E", "I") and prev_prefix in ("E", "S", "O"):
        return True
    return prefix != "O" and prev_type != kind


def entities(tags: Sequence[str]) -> list[Entity]:
    """Entities of one tag sequence (IOB1, IOB2, IOE, IOBES or plain IO), as (type, first, last)."""
    found: list[Entity] = []
    prev_prefix, prev_type, begin = "O", "", 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, kind = split_tag(tag)
        if _ends_chunk(prev_prefix, prefix, prev_type, kind):
            found.append((prev_type, begin, i - 1))
        if _starts_chunk(prev_prefix, prefix, prev_type, kind):
            begin = i
        prev_prefix, prev_type = prefix, kind
    return found


@dataclass(frozen=True)
class EntityScores:
    precision: float
    recall: float
    f1: float


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> EntityScores:
    """Micro-averaged entity precision, recall and F1: an entity counts only if type and span match."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sequences but {len(predicted)} predicted")
    gold_set = {(row, *e) for row, tags in enumerate(gold) for e in entities(tags)}
    pred_set = {(row, *e) for row, tags in enumerate(predicted) for e in entities(tags)}
    tp = len(gold_set & pred_set)
    precision = tp / len(pred_set) if pred_set else 0.0
    recall = tp / len(gold_set) if gold_set else 0.0
    f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
    return EntityScores(precision, recall, f1)


def entity_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    return entity_scores(gold, predicted).f1


# --- Question answering: exact match and token F1 as the SQuAD v2.0 evaluation script computes them ---

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the SQuAD evaluation script's rules)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_gold(options: Sequence[str]) -> list[str]:
    """The gold answers the SQuAD v2.0 script compares a prediction with: those with text once normalized; when none
    has (no answer, or only "the" or punctuation), the empty answer, matched by a prediction that normalizes to ""."""
    return [g for g in options if normalize_answer(g)] or [""]


def _token_f1(gold: str, predicted: str) -> float:
    gold_tokens, pred_tokens = normalize_answer(gold).split(), normalize_answer(predicted).split()
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    common = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class AnswerScores:
    exact_match: float
    f1: float


def answer_scores(gold: Sequence[Sequence[str]], predicted: Sequence[str]) -> AnswerScores:
    """Mean over questions of the best exact match and the best token F1 against any of its `squad_gold` answers."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} questions but {len(predicted)} answers")
    if not gold:
        raise ValueError("no answers to score")
    gold = [squad_gold(options) for options in gold]
    em = [max(float(normalize_answer(g) == normalize_answer(p)) for g in options) for options, p in zip(gold, predicted)]
    f1 = [max(_token_f1(g, p) for g in options) for options, p in zip(gold, predicted)]
    return AnswerScores(float(np.mean(em)), float(np.mean(f1)))


# --- Embeddings: Spearman correlation of cosine similarities with gold scores ---

def cosine_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    result = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        result[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant."""
    x, y = np.asarray(x), np.asarray(y)
    _same_length(x, y)
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


# --- Multi-label classification: every (row, class) decision ---

@dataclass(frozen=True)
class MultiLabelScores:
    micro_f1: float
    macro_f1: float
    subset_accuracy: float


def multi_label_scores(gold: np.ndarray, predicted: np.ndarray) -> MultiLabelScores:
    """`gold` and `predicted` are (rows, classes) booleans. Micro F1 counts every (row, class) decision; macro F1
    is the mean per-class F1 over the classes present in the gold or the predictions (as `macro_f1`); subset
    accuracy is the share of rows whose whole set of classes is right."""
    gold, predicted = np.asarray(gold, dtype=bool), np.asarray(predicted, dtype=bool)
    if gold.shape != predicted.shape:
        raise ValueError(f"gold {gold.shape} and predictions {predicted.shape} differ in shape")
    _same_length(gold, predicted)
    tp, fp, fn = (gold & predicted).sum(0), (~gold & predicted).sum(0), (gold & ~predicted).sum(0)
    present = gold.any(0) | predicted.any(0)
    per_class = [_f1(int(tp[c]), int(fp[c]), int(fn[c])) for c in np.flatnonzero(present)]
    return MultiLabelScores(micro_f1=_f1(int(tp.sum()), int(fp.sum()), int(fn.sum())),
                            macro_f1=float(np.mean(per_class)) if per_class else 0.0,
                            subset_accuracy=float((gold == predicted).all(1).mean()))


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation (GLUE's STS-B reports it beside Spearman); NaN when either side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _same_length(x, y)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt((dx**2).sum() * (dy**2).sum())
    return float((dx * dy).sum() / denominator) if denominator > 0 else float("nan")
