"""One registry of tasks: what each task loads, what its graph outputs and how its outputs become answers.

Export, verification, the Triton configs and the server all read a `TaskSpec` from here; nothing
else compares task strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from inferforge.errors import UserError

from inferforge.token_windows import CLS_MARK, Windows

if TYPE_CHECKING:
    from inferforge.tokenization import Encoded

Answer = Any
# (outputs, encoded texts, labels, problem_type: transformers' config.problem_type or None) -> answers
Postprocess = Callable[..., list[Answer]]


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _label(labels: list[str] | None, index: int) -> str:
    return labels[index] if labels and index < len(labels) else f"LABEL_{index}"


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


MULTI_LABEL = "multi_label_classification"  # transformers' config.problem_type of independent labels
REGRESSION = "regression"  # transformers' config.problem_type of a raw value: its pipeline applies no function


def class_scores(logits: np.ndarray, problem_type: str | None = None) -> np.ndarray:
    """Every class's score of a classifier with two or more classes, by the function its answer's `score` comes from:
    a sigmoid per label for multi-label models, the raw value for regression, softmax otherwise."""
    if problem_type == MULTI_LABEL:
        return sigmoid(logits)
    if problem_type == REGRESSION:
        return np.asarray(logits)
    return softmax(logits)


def _postprocess_classification(outputs, encoded, labels, problem_type=None):
    if problem_type == MULTI_LABEL and outputs["logits"].shape[-1] > 1:
        # Independent labels (toxicity, emotions, topics): each has its own sigmoid, several may apply.
        # The best label and its score as for any classifier, and every label's score beside them.
        probs = class_scores(outputs["logits"], problem_type)
        names = [_label(labels, i) for i in range(probs.shape[-1])]
        return [{"label": names[int(p.argmax())], "score": float(p.max()),
                 "scores": {n: float(v) for n, v in zip(names, p)}} for p in probs]
    if problem_type == REGRESSION:
        # A raw value (STS-B-style regression heads, a CrossEncoder whose activation is Identity): the score is the
        # value itself, as the transformers pipeline gives it for problem_type regression (no function applied).
        raw = outputs["logits"]
        if raw.shape[-1] == 1:
            return [{"label": _label(labels, 0), "score": float(v), "logit": float(v)} for v in raw[:, 0]]
        return [{"label": _label(labels, int(row.argmax())), "score": float(row.max())} for row in raw]
    if outputs["logits"].shape[-1] == 1:
        # One output (a cross-encoder reranker, a regression head): softmax over one value is always 1, so the
        # score is its sigmoid, as the transformers pipeline and sentence-transformers' CrossEncoder give it,
        # with the raw value beside it (a regression target, or a reranker's logit).
        raw = outputs["logits"][:, 0]
        return [{"label": _label(labels, 0), "score": float(p), "logit": float(v)} for p, v in zip(sigmoid(raw), raw)]
    probs = class_scores(outputs["logits"])
    best = probs.argmax(-1)
    return [{"label": _label(labels, int(i)), "score": float(p[i])} for i, p in zip(best, probs)]


def _postprocess_embeddings(outputs, encoded, labels, problem_type=None):
    return [row.astype(np.float32).tolist() for row in outputs["sentence_embedding"]]


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """A character span without the white space at its ends: SentencePiece-style tokens ("▁Paris") and
    some byte-level BPE offsets include the space before the word."""
    start, end = int(start), int(end)
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _entity_type(label: str) -> tuple[str, str]:
    """('B', 'PER') for 'B-PER', ('', 'PER') for a label without a BIO prefix."""
    if len(label) > 2 and label[1] in "-_" and label[0] in "BIES":
        return label[0], label[2:]
    return "", label


def _postprocess_tokens(outputs, encoded, labels, problem_type=None):
    """Entities grouped from the tokens' tags as the transformers token-classification pipeline's "simple"
    aggregation groups them: a token joins the entity before it when it has the same type and is not a B- (an I- tag
    or a tag without prefix), so "B-PER B-PER" on the two pieces of one word are two entities, as there. BIOES's E-
    continues an entity and S- starts one (the pipeline reads them as other types). Character spans in the text."""
    probs = softmax(outputs["logits"])
    answers = []
    for row, text in enumerate(encoded.texts):
        entities: list[dict] = []
        current: dict | None = None
        scores: list[float] = []
        for tok, (start, end) in enumerate(encoded.offsets[row]):
            if encoded.special_mask[row][tok]:
                continue  # (SentencePiece's lone "▁", a space and nothing else, counts, as in the pipeline)
            cls = int(probs[row, tok].argmax())
            prefix, kind = _entity_type(_label(labels, cls))
            is_outside = kind in ("O", "") or (labels is None and cls == 0)
            continues = current is not None and not is_outside and kind == current["entity"] and prefix in ("I", "E", "")
            if continues:
                current["end"] = end
                scores.append(float(probs[row, tok, cls]))
                continue
            if current is not None:
                current["score"] = float(np.mean(scores))
                entities.append(current)
                current = None
            if not is_outside:
                current = {"entity": kind, "start": start, "end": end}
                scores = [float(probs[row, tok, cls])]
        if current is not None:
            current["score"] = float(np.mean(scores))
            entities.append(current)
        for e in entities:
            e["start"], e["end"] = trim_span(text, e["start"], e["end"])
            e["word"] = text[e["start"] : e["end"]]
        answers.append([e for e in entities if e["word"]])  # not an entity of white space alone
    return answers


MAX_ANSWER_TOKENS = 15  # the transformers question-answering pipeline's max_answer_len


def _best_span(start_row: np.ndarray, end_row: np.ndarray, sequence_ids, special_mask, context_id: int):
    """(score, start token, end token, no-answer score) of one window's best span (start <= end, at most
    MAX_ANSWER_TOKENS long) inside the context, or None when the window holds no context token. The no-answer
    score is p(start) * p(end) on the classifier token (where SQuAD 2.0 models point when the window holds no
    answer), or None without one.

    The score is p(start) * p(end), each a softmax over the context tokens and the classifier token, as the
    transformers question-answering pipeline computes it: a window the model reads as "no answer here" puts
    its weight on the classifier token, so its spans score low against the window that holds the answer."""
    length = start_row.shape[0]
    in_context = np.zeros(length, dtype=bool)
    seq = sequence_ids[:length]
    in_context[: len(seq)] = [s == context_id for s in seq]
    if not in_context.any():
        return None
    is_cls = np.zeros(length, dtype=bool)
    marks = special_mask[:length]
    is_cls[: len(marks)] = np.asarray(marks) == CLS_MARK
    counted = in_context | is_cls
    p_start = softmax(np.where(counted, start_row.astype(np.float64), -np.inf))
    p_end = softmax(np.where(counted, end_row.astype(np.float64), -np.inf))
    no_answer = float(p_start[is_cls][0] * p_end[is_cls][0]) if is_cls.any() else None
    p_start = np.where(in_context, p_start, 0.0)
    p_end = np.where(in_context, p_end, 0.0)
    scores = p_start[:, None] * p_end[None, :]
    i, j = np.indices((length, length))
    scores[(j < i) | (j - i >= MAX_ANSWER_TOKENS)] = -1.0
    s, e = divmod(int(np.argmax(scores)), length)
    return float(scores[s, e]), s, e, no_answer


def _word_aligned(encoded, row: int, s: int, e: int, context_id: int) -> tuple[int, int]:
    """The characters of the words the span's first and last tokens belong to (the pipeline's `align_to_words`): a
    span that starts or ends inside a word ("akery in town every mor") gives the whole words. Tokens without a word
    (a tokenizer that does not track words) keep their own offsets."""
    offsets = encoded.offsets[row]
    words = [-1 if w is None else int(w) for w in encoded.word_ids[row]]  # -1: no word (served details say so too)
    first, last = words[s], words[e]
    start, end = int(offsets[s][0]), int(offsets[e][1])
    if first < 0 or last < 0:
        return start, end
    for token, (word, sequence) in enumerate(zip(words, encoded.sequence_ids[row])):
        if sequence == context_id and word == first:
            start = min(start, int(offsets[token][0]))
        if sequence == context_id and word == last:
            end = max(end, int(offsets[token][1]))
    return start, end


def _postprocess_qa(outputs, encoded, labels, problem_type=None):
    """The answer span in the context (the second text) as the transformers question-answering pipeline chose it at
    its defaults: each window's best span of at most MAX_ANSWER_TOKENS tokens, widened to whole words; the same
    answer text (ignoring case) found in several windows adds up its scores; the highest wins. And
    `no_answer_score`: the lowest no-answer score of its windows (the pipeline's null score), 0 when the tokenizer has
    no classifier token. A SQuAD 2.0 model means "no answer" when it beats `score`."""
    answers = []
    context_id = 1 if encoded.pairs else 0
    for index in range(len(encoded.texts)):
        context = encoded.pairs[index] if encoded.pairs else encoded.texts[index]
        found_answers: dict[str, dict] = {}  # by lower-cased text, in the order first found
        null_scores = []
        for row in encoded.rows_of(index):
            found = _best_span(outputs["start_logits"][row], outputs["end_logits"][row], encoded.sequence_ids[row],
                               encoded.special_mask[row], context_id)
            if found is None:
                continue
            if found[3] is not None:
                null_scores.append(found[3])
            start, end = trim_span(context, *_word_aligned(encoded, row, found[1], found[2], context_id))
            text = context[start:end]
            if text.lower() in found_answers:
                found_answers[text.lower()]["score"] += found[0]
            else:
                found_answers[text.lower()] = {"answer": text, "score": found[0], "start": start, "end": end}
        no_answer = min(null_scores, default=0.0)
        if not found_answers:
            answers.append({"answer": "", "score": 0.0, "start": 0, "end": 0, "no_answer_score": no_answer})
            continue
        best = max(found_answers.values(), key=lambda answer: answer["score"])  # the first of equal scores
        answers.append({**best, "no_answer_score": no_answer})
    return answers


@dataclass(frozen=True)
class TaskSpec:
    """Everything the pipeline needs to know about one task."""

    name: str
    auto_class: str
    output_names: tuple[str, ...]
    supports_pairs: bool
    needs_pairs: bool
    agreement: str  # "top1" | "token_top1" | "cosine" | "span"
    default_atol: float
    default_min_agreement: float
    postprocess: Postprocess
    description: str
    windows: Windows | None = None  # how a long second text is read (question answering's context)

    def auto_model_class(self):
        import transformers

        return getattr(transformers, self.auto_class)

    def output_axes(self, name: str) -> dict[int, str]:
        """Dynamic axes of an output: batch everywhere, sequence for per-token outputs."""
        if self.name == "feature-extraction" or self.name == "text-classification":
            return {0: "batch"}
        return {0: "batch", 1: "sequence"}


_TASKS: dict[str, TaskSpec] = {}


def _register(spec: TaskSpec) -> None:
    _TASKS[spec.name] = spec


_register(TaskSpec("text-classification", "AutoModelForSequenceClassification", ("logits",), True, False,
                   "top1", 0.05, 0.98, _postprocess_classification,
                   "labels and scores for a text or a text pair"))
_register(TaskSpec("token-classification", "AutoModelForTokenClassification", ("logits",), False, False,
                   "token_top1", 0.05, 0.98, _postprocess_tokens,
                   "a label per token, grouped into entities with character spans"))
_register(TaskSpec("feature-extraction", "AutoModel", ("sentence_embedding",), False, False,
                   "cosine", 0.05, 0.99, _postprocess_embeddings,
                   "sentence embeddings (sentence-transformers pooling when the directory says so, else mean pooling)"))
_register(TaskSpec("question-answering", "AutoModelForQuestionAnswering", ("start_logits", "end_logits"), True, True,
                   "span", 0.1, 0.95, _postprocess_qa,
                   "answer span in the context (question first, context second; a long context is read in "
                   "overlapping windows)", Windows()))


def task_names() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str) -> TaskSpec:
    try:
        return _TASKS[name]
    except KeyError:
        raise UserError(f"Unknown task '{name}'; choose one of: {', '.join(task_names())}.") from None
