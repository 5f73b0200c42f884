"""Task accuracy on labelled data, for every variant, next to the fp32 reference.

    report = inferforge.evaluate.evaluate("out/sentiment", "test.csv")
    print(report.markdown())

    inferforge evaluate out/sentiment test.csv                 (or --data test.csv)
    inferforge evaluate out/sentiment data/glue-mnli --eval-split validation_matched

`EvalSet` tokenizes the labelled rows (sorted by length, so batches carry little padding; once for a small set, at each
pass for a large one, so that memory does not grow with the data) and scores any `Engine` on them, batch by batch; conversion and the accuracy-aware search use it the same way.
Scores are percentages, so a drop reads in points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

import inferforge.quantize  # noqa: F401 - registers the int8 variant kinds a folder may hold
from inferforge.engines.base import BUCKET_SLACK, Engine, run_by_length
from inferforge.errors import UserError, first_line
from inferforge.class_columns import class_column_sets, class_columns_refused
from inferforge.labelled_data import (DataColumns, LabelledData, LabelResolver, answer_texts, class_ids, class_sets,
                                      is_multi_label, parse_cell, read_labelled_data, similarity_scores, tag_sequences,
                                      without_unlabelled_rows)
from inferforge.metrics import (answer_scores, cosine_similarities, entity_scores, macro_f1, multi_label_scores,
                                pearson, spearman, squad_gold)
from inferforge.metrics import accuracy as accuracy_metric
from inferforge.tasks import MULTI_LABEL, TaskSpec
from inferforge.tokenization import Encoded, TextEncoder

EVAL_BATCH = 32
# The metric each task is judged (and selected) on; the others are reported beside it.
PRIMARY_METRIC = {
    "text-classification": "accuracy",
    "token-classification": "entity_f1",
    "question-answering": "f1",
    "feature-extraction": "spearman",
}


@dataclass(frozen=True)
class TaskScore:
    """Metrics in percent; `primary` names the one a budget applies to."""

    metrics: dict[str, float]
    primary: str
    rows: int

    @property
    def value(self) -> float:
        return self.metrics[self.primary]

    def to_dict(self) -> dict:
        return {"metric": self.primary, "value": self.value, "metrics": dict(self.metrics), "rows": self.rows}


def columns_for_task(task: TaskSpec, text: str | None = None, pair: str | None = None, label: str | None = None) -> DataColumns:
    """The columns named by the user; the others are found by their usual names for the task (text / text_pair /
    label first, see `inferforge.labelled_data.COLUMN_CANDIDATES`). A pair is required where the task needs one."""
    return DataColumns(text=text or None, pair=pair or None, label=label or None,
                       pair_required=task.needs_pairs or task.name == "feature-extraction", task=task.name)


def _word_spans(text: str) -> list[tuple[int, int]]:
    spans, position = [], 0
    for word in text.split():
        start = text.index(word, position)
        spans.append((start, start + len(word)))
        position = start + len(word)
    return spans


def _correlations(predicted: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Spearman (the primary metric) and Pearson (GLUE's STS-B gives both) of a variant's scores with the gold ones;
    a variant whose scores are all equal (a collapsed int8 model) ranks nothing: 0, not NaN, so that it falls
    outside any budget instead of passing every comparison."""
    found = {"spearman": spearman(predicted, gold), "pearson": pearson(predicted, gold)}
    return {name: 0.0 if np.isnan(value) else value for name, value in found.items()}


class EvalSet:
    """Labelled rows tokenized once, scored on any engine with the task's metric."""

    def __init__(self, task: TaskSpec, encoder: TextEncoder, data: LabelledData, labels: list[str] | None,
                 batch_size: int = EVAL_BATCH, multi_label: bool | None = None, problem_type: str | None = None,
                 no_answer: bool | None = None):
        self.task = task
        self.encoder = encoder
        self.data = data
        self.labels = labels
        self.batch_size = batch_size
        if task.name in ("text-classification", "token-classification") and not labels:
            raise UserError(f"The model has no label names, so labelled data cannot be matched to its {task.name} outputs.")
        if data.pairs is not None and not task.supports_pairs and task.name != "feature-extraction":
            data = replace(data, pairs=None, columns=replace(data.columns, pair=None))
            self.data = data
        # Gold values are checked now, so a bad label fails before any model runs.
        self.label_mapping: dict | None = None  # how labels became the model's ids (LabelResolver.mapping)
        self.tag_names = labels  # the tag each of the model's ids stands for (token classification)
        # One output (a reranker, a regression head): gold values are numbers, judged by rank correlation.
        self.single_output = task.name == "text-classification" and labels is not None and len(labels) == 1
        said: list[str] = []  # notes on the rows scored, added to the labels' note (evaluate and convert print it)
        if task.name == "text-classification" and not self.single_output:
            data, left_out = without_unlabelled_rows(data, labels)  # SNLI's -1 / '-' rows among labelled ones
            self.data = data
            said += [left_out] if left_out else []
        # Labels that are lists of classes (go_emotions): a set per row, predicted where a class's sigmoid passes 0.5
        # (a subset is scored as its whole set is).
        self.multi_label = task.name == "text-classification" and not self.single_output and (
            is_multi_label(data, problem_type == MULTI_LABEL) if multi_label is None else multi_label)
        if self.multi_label and multi_label is None and problem_type == "single_label_classification":
            row = next(i for i, label in enumerate(map(parse_cell, data.labels))
                       if isinstance(label, list) and len(label) != 1)
            raise UserError(f"The labels of {data.name} are sets of classes (multi-label, e.g. "
                            f"{' '.join(str(data.labels[row]).split())[:60]} at {data.where(row)}), but the model is "
                            f"single-label (config.json problem_type single_label_classification: one class per text); "
                            f"evaluate it on data with one class per row.")
        by_columns = task.name == "text-classification" and data.class_columns is not None  # one 0/1 column per class
        if by_columns and (self.single_output or not (problem_type in (MULTI_LABEL, None) if multi_label is None
                                                      else multi_label)):
            raise class_columns_refused(data, "for a multi-label model (config.json problem_type "
                                              "multi_label_classification, or none), which this model is not")
        self.multi_label = self.multi_label or by_columns
        if self.multi_label and multi_label is None and problem_type is None:
            # transformers itself reads such labels so: a model given float sets of classes trains with a sigmoid and
            # binary cross-entropy per class (and saves problem_type multi_label_classification)
            said.append("the model's config.json names no problem_type and the labels are sets of classes, so it is "
                        "taken as multi-label, as transformers trains a model given such labels (a sigmoid per class)")
        if self.single_output:
            self.gold = similarity_scores(data, "Label", f"; the model has one output ({labels[0]}), so each row's label "
                                          f"is a number (a relevance grade, a regression target) ranked against it")
        elif by_columns:  # rows without gold labels left out, class_columns narrowed to the model's classes
            data, self.gold, self.label_mapping = class_column_sets(data, labels)
            self.data = data
            said.append("a class is predicted where its sigmoid is over 0.5, and scored by micro F1")
        elif task.name == "text-classification":
            resolver = LabelResolver(data, labels)
            self.gold = class_sets(data, labels, resolver) if self.multi_label else class_ids(data, labels, resolver)
            self.label_mapping = resolver.mapping()
            if self.multi_label:  # in the mapping's note, which convert prints and report.json keeps too
                said.append("labels are lists of classes (multi-label): a class is predicted where its sigmoid is "
                            "over 0.5, and scored by micro F1")
        elif task.name == "token-classification":
            resolver = LabelResolver(data, labels)
            self.gold = tag_sequences(data, labels, resolver)
            self.label_mapping = resolver.mapping()
            names = resolver.dataset_names
            if resolver.generic_model and names and len(names) == len(labels):
                # LABEL_0, LABEL_1... are no tags to chunk: the dataset's names of the same ids (B-PER...) are
                self.tag_names = list(names)
                self.gold = [[names[labels.index(tag)] if tag in labels else tag for tag in tags] for tags in self.gold]
        elif task.name == "question-answering":
            self.gold = answer_texts(data)
        elif task.name == "feature-extraction" and data.triplets:
            self.gold = None  # the anchor is to be closer to its positive than to its negative
        elif task.name == "feature-extraction":
            self.gold = similarity_scores(data)
        else:
            raise UserError(f"No metric is defined for task {task.name}.")
        # Data with unanswerable questions (SQuAD 2.0) lets the model say "no answer" (see `_score`); a subset keeps
        # the whole set's choice, so that a row's answer does not depend on which other rows the subset holds.
        self.no_answer = (no_answer if no_answer is not None else
                          task.name == "question-answering" and any(squad_gold(o) == [""] for o in self.gold))
        if self.primary == "spearman" and len(np.unique(self.gold)) < 2:
            raise UserError(f"Every score in column '{data.columns.label}' of {data.name} is {self.gold[0]:g}: a rank "
                            f"correlation needs at least two different gold scores; give rows with different scores.")
        self._plan()
        if task.name == "token-classification":
            said += self._cut_note()
        if task.name == "question-answering":
            said += self._question_note()
            if said and self.label_mapping is None:
                self.label_mapping = {"note": ""}  # (QA has no label ids: the note alone)
        if said and self.label_mapping is not None:  # in the mapping's note, which convert prints and report.json keeps
            self.label_mapping["note"] = "; ".join(([self.label_mapping["note"]] if self.label_mapping["note"] else [])
                                                   + said)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def primary(self) -> str:
        if self.multi_label:
            return "micro_f1"
        if self.task.name == "feature-extraction" and self.data.triplets:
            return "triplet_accuracy"
        return "spearman" if self.single_output else PRIMARY_METRIC[self.task.name]

    def record(self) -> dict:
        """Which data was used, for report.json and `evaluate --json`: file, format, split, columns, rows, labels."""
        return {**self.data.record(), "labels": self.label_mapping}

    def messages(self) -> list[str]:
        """What to tell the user about how the data was read: the split chosen, how labels became the model's ids."""
        note = (self.label_mapping or {}).get("note")
        return list(self.data.notes) + ([note] if note else [])

    def _cut_note(self) -> list[str]:
        """A note on the texts longer than the model reads (token classification): their words past the cut get no
        prediction, so the gold entities there count as missed, which the score alone would not say."""
        from inferforge.metrics import entities

        rows, missed, first = 0, 0, None
        for idx, encoded in self.batches:  # (a pass of its own over the texts: the batches are not kept)
            for k, row in enumerate(idx):
                offsets = [end for (start, end), special in zip(encoded.offsets[k], encoded.special_mask[k])
                           if not special and end > start]
                if len(encoded.offsets[k]) < self.encoder.max_length or not offsets:
                    continue
                spans = _word_spans(encoded.texts[k])
                lost = next((w for w, (start, _) in enumerate(spans) if start >= max(offsets)), None)
                if lost is None:
                    continue
                rows += 1
                first = row if first is None else min(first, row)
                missed += sum(1 for _, begin, _ in entities(self.gold[row]) if begin >= lost)
        if not rows:
            return []
        return [f"{rows:,} of the {len(self):,} texts are longer than the model's {self.encoder.max_length} tokens (the "
                f"first at {self.data.where(int(first))}): their words past the cut get no prediction, so the "
                f"{missed:,} gold entities there count as missed; split long texts into sentences to score them"]

    def _question_note(self) -> list[str]:
        """A note on the questions longer than the model's window leaves room for (question answering): each is cut,
        its context with it (longest first), so its answer comes from part of the question and context only."""
        from inferforge.tokenization import cut_texts

        cut: list[int] = []
        for idx, encoded in self.batches:  # (a pass of its own over the texts: the batches are not kept)
            cut += [int(idx[k]) for k in cut_texts(encoded, self.encoder.max_length, self.encoder.prefix)]
        if not cut:
            return []
        return [f"{len(cut):,} of the {len(self):,} questions {'is' if len(cut) == 1 else 'are'} longer than the model's {self.encoder.max_length} "
                f"tokens leave room for (the first at {self.data.where(min(cut))}): each is cut, and its context "
                f"with it, so its answer comes from part of the question only; shorten such questions"]

    def _plan(self) -> None:
        """The batches' rows (indices, sorted by length): tokenized when a pass reads them (`batches`), and kept
        tokenized only for a set of up to KEEP_ENCODED_ROWS texts. A large set (20,000 rows of 400 tokens held 2 GB
        tokenized, mostly the offsets) is tokenized again for each engine instead, which costs seconds against the
        minutes the engines take on it.

        For similarity each sentence of a pair is embedded alone: rows n..2n-1 are the second sentences (and rows
        2n..3n-1 the negatives of triplets).
        """
        data = self.data
        if self.task.name == "feature-extraction":
            texts, pairs = data.texts + data.pairs + (list(map(str, data.labels)) if data.triplets else []), None
        else:
            texts, pairs = data.texts, data.pairs
        self._texts, self._pairs = texts, pairs
        lengths = [len(t) + (len(pairs[i]) if pairs is not None else 0) for i, t in enumerate(texts)]
        order = np.argsort(lengths, kind="stable")
        self._rows = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        self._encoded = list(self._encode_all()) if len(texts) <= self.KEEP_ENCODED_ROWS else None

    KEEP_ENCODED_ROWS = 5000

    def _encode_all(self) -> Iterator[tuple[np.ndarray, Encoded]]:
        texts, pairs = self._texts, self._pairs
        for idx in self._rows:
            chunk_pairs = [pairs[i] for i in idx] if pairs is not None else None
            yield idx, self.encoder.encode([texts[i] for i in idx], chunk_pairs)

    @property
    def batches(self) -> Iterable[tuple[np.ndarray, Encoded]]:
        """(row indices, encoded batch) pairs, rows sorted by length, in the same order at every pass."""
        return self._encoded if self._encoded is not None else self._encode_all()

    def subset(self, size: int) -> "EvalSet":
        """An evenly spread subset of `size` rows (all rows when there are fewer)."""
        if size >= len(self):
            return self
        rows = np.linspace(0, len(self) - 1, size).round().astype(int)
        return EvalSet(self.task, self.encoder, self.data.subset(rows.tolist()), self.labels, self.batch_size,
                       self.multi_label, no_answer=self.no_answer)

    def outputs(self, engine: Engine) -> list[dict[str, np.ndarray]]:
        """Raw outputs of every batch, in batch order (for comparing engines output to output)."""
        return [out for _, _, out in self._run(engine)]

    def _run(self, engine: Engine) -> Iterator[tuple[np.ndarray, Encoded, dict[str, np.ndarray]]]:
        """(row indices, encoded batch, raw outputs) of each batch in turn.

        Each batch runs as `predict` runs it (`LoadedModel.run_encoded`): its rows in groups of similar length, and
        for a model that takes no attention mask (FNet: padding changes its answers) each length unpadded, so a row
        is scored on the answer it gets alone, not one that depends on the rows batched with it."""
        per_token = {name for name in engine.output_names if 1 in self.task.output_axes(name)}
        slack = 1.0 if "attention_mask" not in engine.input_names else BUCKET_SLACK
        for idx, encoded in self.batches:
            yield idx, encoded, run_by_length(engine.run, encoded.arrays, [len(o) for o in encoded.offsets], per_token,
                                              slack=slack)

    def score(self, engine: Engine) -> TaskScore:
        """The task's metric of `engine`'s answers, batch by batch (no batch's outputs are kept)."""
        return self._score(self._run(engine))

    def score_outputs(self, outputs: list[dict[str, np.ndarray]]) -> TaskScore:
        """The task's metric of the outputs `outputs(engine)` gave."""
        return self._score((idx, encoded, out) for (idx, encoded), out in zip(self.batches, outputs))

    def _score(self, batches: Iterable[tuple[np.ndarray, Encoded, dict[str, np.ndarray]]]) -> TaskScore:
        name = self.task.name
        if self.single_output:
            predicted_scores = np.empty(len(self), dtype=np.float64)
            for idx, _, out in batches:
                predicted_scores[idx] = out["logits"][:, 0]
            metrics = _correlations(predicted_scores, self.gold)
        elif self.multi_label:
            chosen = np.empty(self.gold.shape, dtype=bool)
            for idx, _, out in batches:
                chosen[idx] = out["logits"] > 0  # sigmoid > 0.5
            found = multi_label_scores(self.gold, chosen)
            metrics = {"micro_f1": found.micro_f1, "macro_f1": found.macro_f1, "subset_accuracy": found.subset_accuracy}
        elif name == "text-classification":
            predicted = np.empty(len(self), dtype=np.int64)
            for idx, _, out in batches:
                predicted[idx] = out["logits"].argmax(-1)
            metrics = {"accuracy": accuracy_metric(self.gold, predicted), "macro_f1": macro_f1(self.gold, predicted)}
        elif name == "token-classification":
            predicted_tags: list[list[str]] = [[] for _ in range(len(self))]
            for idx, encoded, out in batches:
                best = out["logits"].argmax(-1)
                for row_in_batch, row in enumerate(idx):
                    predicted_tags[row] = self._word_tags(encoded, row_in_batch, best[row_in_batch])
            scores = entity_scores(self.gold, predicted_tags)
            metrics = {"entity_f1": scores.f1, "entity_precision": scores.precision, "entity_recall": scores.recall}
        elif name == "question-answering":
            # Data with unanswerable questions (SQuAD 2.0: no gold answer with text once normalized, `squad_gold`)
            # asks the model to say "no answer": it does when its no-answer score beats its best span's, as the
            # SQuAD 2.0 evaluation and the transformers pipeline (handle_impossible_answer) decide.
            impossible = self.no_answer
            answers = [""] * len(self)
            for idx, encoded, out in batches:
                for row, answer in zip(idx, self.task.postprocess(out, encoded, self.labels)):
                    unanswered = impossible and answer["no_answer_score"] > answer["score"]
                    answers[row] = "" if unanswered else answer["answer"]
            scores = answer_scores(self.gold, answers)
            metrics = {"f1": scores.f1, "exact_match": scores.exact_match}
        else:
            n = len(self)
            vectors: list[np.ndarray | None] = [None] * ((3 if self.data.triplets else 2) * n)
            for idx, _, out in batches:
                for row, vector in zip(idx, out["sentence_embedding"]):
                    vectors[row] = vector
            first, second = np.stack(vectors[:n]), np.stack(vectors[n:2 * n])
            if self.data.triplets:  # strictly closer, as sentence-transformers' TripletEvaluator counts
                closer = cosine_similarities(first, second) > cosine_similarities(first, np.stack(vectors[2 * n:]))
                metrics = {"triplet_accuracy": float(closer.mean())}
            else:
                metrics = _correlations(cosine_similarities(first, second), self.gold)
        return TaskScore({k: 100.0 * float(v) for k, v in metrics.items()}, self.primary, len(self))

    def _word_tags(self, encoded: Encoded, row: int, best: np.ndarray) -> list[str]:
        """The tag of each whitespace word: the prediction of its first token ('O' if truncated away).

        A token belongs to the word of its first character that is not a space: SentencePiece's "▁re" starts on
        the space before "rejects", and a lone "▁" or "Ġ" (a space only, or no character at all) is the first
        token of the word after it, as the tokenizer's `word_ids()` count it when a model is trained on words."""
        text = encoded.texts[row]
        spans = _word_spans(text)
        tags = ["O"] * len(spans)
        seen = [False] * len(spans)
        word = 0
        for token, (start, _) in enumerate(encoded.offsets[row]):
            if encoded.special_mask[row][token]:
                continue
            while start < len(text) and text[start].isspace():
                start += 1
            while word < len(spans) and spans[word][1] <= start:
                word += 1
            if word < len(spans) and spans[word][0] <= start and not seen[word]:
                seen[word] = True
                tags[word] = self.tag_names[int(best[token])]
        return tags


def read_eval_data(path: Path | str, task: TaskSpec, text_column: str | None = None, pair_column: str | None = None,
                   label_column: str | None = None, split: str | None = None) -> LabelledData:
    """The labelled rows of a file or dataset folder, with the task's columns (no model needed)."""
    columns = columns_for_task(task, text_column, pair_column, label_column)
    return read_labelled_data(path, columns, text_is_list=task.name == "token-classification", split=split)


def read_eval_set(path: Path | str | LabelledData, task: TaskSpec, encoder: TextEncoder, labels: list[str] | None,
                  text_column: str | None = None, pair_column: str | None = None,
                  label_column: str | None = None, split: str | None = None,
                  problem_type: str | None = None) -> EvalSet:
    """Read a labelled file (or take rows already read by `read_eval_data`) for `task` and tokenize it (the
    convert and evaluate entry point). `problem_type` is the model's config.problem_type, when known."""
    data = path if isinstance(path, LabelledData) else read_eval_data(path, task, text_column, pair_column,
                                                                       label_column, split)
    return EvalSet(task, encoder, data, labels, problem_type=problem_type)


# ---------------------------------------------------------------- evaluate(DIR)


@dataclass
class VariantScore:
    variant: str
    precision: str
    score: TaskScore | None
    drop_points: float | None = None
    error: str = ""

    def to_dict(self) -> dict:
        return {"variant": self.variant, "precision": self.precision,
                **(self.score.to_dict() if self.score else {}), "drop_points": self.drop_points, "error": self.error}


@dataclass
class EvaluationReport:
    """Every variant's metrics on one labelled file, with the drop against the fp32 reference in points."""

    model_dir: str
    data: str
    task: str
    metric: str
    reference: str | None
    rows: list[VariantScore] = field(default_factory=list)
    columns: dict = field(default_factory=dict)  # the columns used: text, pair, label, detected, format
    eval_data: dict = field(default_factory=dict)  # EvalSet.record(): file, format, split, columns, rows, labels
    messages: list[str] = field(default_factory=list)  # how the data was read (split chosen, label ids)

    def row(self, variant: str) -> VariantScore:
        return next(r for r in self.rows if r.variant == variant)

    def to_dict(self) -> dict:
        return {"model_dir": self.model_dir, "data": self.data, "task": self.task, "metric": self.metric,
                "reference": self.reference, "columns": dict(self.columns), "split": self.eval_data.get("split"),
                "eval_data": dict(self.eval_data), "variants": [r.to_dict() for r in self.rows]}

    def columns_line(self) -> str:
        """E.g. "columns: text 'sentence1', pair 'sentence2', label 'label' (detected: text, pair, label), read as CSV"."""
        return f"columns: {self.columns['described']}" if self.columns else ""

    def markdown(self) -> str:
        names = list(self.rows[0].score.metrics) if self.rows and self.rows[0].score else [self.metric]
        header = ["variant", "precision", *names, f"change in {self.metric} (points)"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in self.rows:
            if r.score is None:
                lines.append(f"| {r.variant} | {r.precision} | " + " | ".join("" for _ in names) + f" | error: {r.error} |")
                continue
            drop = "reference" if r.variant == self.reference else (f"{-r.drop_points:+.2f}".replace("-0.00", "+0.00")
                                                                      if r.drop_points is not None else "")
            lines.append(f"| {r.variant} | {r.precision} | " + " | ".join(f"{r.score.metrics[n]:.2f}" for n in names)
                         + f" | {drop} |")
        return "\n".join(lines)


def drop_points(reference: TaskScore, score: TaskScore) -> float:
    """How many points `score` loses against `reference` on the primary metric (negative: it gains)."""
    return reference.value - score.value


def reference_variant(variants: dict[str, dict]) -> str | None:
    """The fp32 variant a folder's scores are compared with: ort-fp32, else the first fp32 one."""
    if "ort-fp32" in variants:
        return "ort-fp32"
    from inferforge.variants import variant_from_dict

    for name, entry in variants.items():
        if variant_from_dict(entry["config"]).precision == "fp32" and entry.get("deployable"):
            return name
    return None


def evaluate(model_dir: Path | str, data_path: Path | str, *, variants: list[str] | None = None,
             text_column: str | None = None, pair_column: str | None = None, label_column: str | None = None,
             split: str | None = None, threads: int | None = None,
             progress: Optional[Callable[[str, int, int], None]] = None) -> EvaluationReport:
    """Score every stored variant of a converted folder (or `variants`) on a labelled data file or dataset folder
    (`split`: which split of a folder; default test, then validation).

    Columns not named are found by their usual names; `report.columns` says which were used, `report.eval_data`
    the file, split, rows and how labels became the model's ids, `report.messages` what to tell the user."""
    from inferforge.artifacts import TOKENIZER_DIR, Manifest
    from inferforge.tasks import get_task

    folder = Path(model_dir)
    manifest = Manifest.read(folder)
    task = get_task(manifest.task)
    encoder = TextEncoder.from_dir(folder / TOKENIZER_DIR, manifest.input_names, manifest.max_length, task.windows)
    eval_set = read_eval_set(data_path, task, encoder, manifest.labels, text_column, pair_column, label_column, split,
                             manifest.problem_type)
    stored = {n: e for n, e in manifest.variants.items() if e.get("deployable")}
    names = variants or list(stored)
    for name in names:
        manifest.variant(name)  # a clear error for a name the folder does not hold
    reference = reference_variant(stored)
    if reference is not None and reference not in names:
        names = [reference, *names]
    data = eval_set.data
    columns = {"text": data.columns.text, "pair": data.columns.pair, "label": data.columns.label,
               "detected": list(data.detected), "format": data.file_format, "described": data.describe()}
    report = EvaluationReport(str(folder), str(data_path), task.name, eval_set.primary, reference, columns=columns,
                              eval_data=eval_set.record(), messages=eval_set.messages())
    tick = progress or (lambda step, done, total: None)
    for i, name in enumerate(names):
        tick("evaluate", i, len(names))
        config, files = manifest.variant(name)
        row = VariantScore(name, config.precision, None)
        try:
            row.score = eval_set.score(config.open(folder, files, threads))
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001 - one runtime failing must not hide the others' scores
            row.error = f"{type(error).__name__}: {first_line(error, 200)}"
        report.rows.append(row)
    tick("evaluate", len(names), len(names))
    ref_row = next((r for r in report.rows if r.variant == reference and r.score), None)
    for row in report.rows:
        if ref_row and row.score:
            row.drop_points = drop_points(ref_row.score, row.score)
    return report


# ---------------------------------------------------------------- CLI


def write_json(path: Path, content: dict) -> None:
    """Write `content` to `path` whole or not at all (its folder is created); a path that cannot be written is a
    UserError."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(content, indent=2) + "\n")
        tmp.replace(path)
    except OSError as error:
        if tmp.is_file():
            tmp.unlink()
        raise UserError(f"Cannot write --json {path} ({error.strerror or error}); name a file in a folder you can "
                        f"write to.") from None


def check_writable(path: Path) -> None:
    """Said before the work that `write_json` ends: the nearest folder of `path` that exists must take a new file (a
    probe file, removed at once); nothing is created."""
    import tempfile

    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".inferforge-probe-"):
            pass
    except OSError as error:
        raise UserError(f"Cannot write --json {path} ({error.strerror or error}); name a file in a folder you can "
                        f"write to.") from None


def register(app) -> None:
    """Adds `inferforge evaluate DIR --data FILE` to the Typer app."""
    import typer

    @app.command("evaluate")
    def evaluate_command(
        model_dir: Path = typer.Argument(..., help="A folder written by `inferforge convert`."),
        data_file: Optional[Path] = typer.Argument(None, metavar="[DATA]", show_default=False,
                                                   help="Labelled data (same as --data)."),
        data: Optional[Path] = typer.Option(None, "--data", "-d", help="Labelled data: CSV, TSV, JSON Lines (.jsonl, "
                                            "or .json as datasets' to_json writes it), a JSON array or columns, a SQuAD "
                                            ".json, CoNLL (.conll, .iob, .bio) or CoNLL-U (.conllu), fastText .txt, "
                                            "Label Studio or Prodigy exports, BRAT .ann + .txt, these also as .gz, "
                                            ".bz2 or .xz, in UTF-8, UTF-16 or Windows-1252; an Excel .xlsx, Parquet, "
                                            "Arrow, or a folder written by datasets' save_to_disk (Dataset or "
                                            "DatasetDict) or of files named by split."),
        eval_split: Optional[str] = typer.Option(None, "--eval-split", "--split", help="Split of a dataset folder "
                                                 "(default: test, then validation), or sheet of an Excel workbook; a "
                                                 "slice such as test[:500] too (rows counted as datasets counts them, blank ones too)."),
        text_column: Optional[str] = typer.Option(None, help="Column with the text (the question for QA; the words "
                                                             "for token classification). Default: detected (text, "
                                                             "sentence, sentence1, premise, question, tokens...)."),
        pair_column: Optional[str] = typer.Option(None, help="Column with the second text (the context for QA, the "
                                                             "other sentence for similarity). Default: detected "
                                                             "(text_pair, sentence2, hypothesis, question2, context...)."),
        label_column: Optional[str] = typer.Option(None, help="Column with the label: class name or id, tags per word "
                                                              "or entity spans (token classification), answer text(s) "
                                                              "(QA) or a "
                                                              "similarity score (feature extraction). Default: "
                                                              "detected (label, labels, ner_tags, answers, score...)."),
        variants: Optional[str] = typer.Option(None, help="Comma-separated variant names (default: all stored)."),
        threads: Optional[int] = typer.Option(None, help="Threads per runtime (default: all cores)."),
        json_output: Optional[Path] = typer.Option(None, "--json", help="Also write the scores to this JSON file."),
    ) -> None:
        """Score every variant of a converted model on labelled data, with the drop against fp32 in points."""
        from inferforge.report import output_console

        if data is not None and data_file is not None and data != data_file:
            raise UserError(f"Give the labelled data once: as DATA ({data_file}) or as --data ({data}), not both.")
        data = data or data_file
        if data is None:
            raise UserError("Name the labelled data to score on: inferforge evaluate DIR DATA (or --data DATA).")
        names = [n.strip() for n in variants.split(",") if n.strip()] if variants else None
        if json_output is not None and json_output.is_dir():  # said before the variants run, not after
            raise UserError(f"--json {json_output} is a folder; name the JSON file to write, e.g. {json_output / 'scores.json'}.")
        if json_output is not None:
            check_writable(json_output)
        report = evaluate(model_dir, data, variants=names, text_column=text_column, pair_column=pair_column,
                          label_column=label_column, split=eval_split, threads=threads)
        out = output_console()  # to a file or pipe: the table's rows and the notes are never wrapped
        split = f", split '{report.eval_data['split']}'" if report.eval_data.get("split") else ""
        line = dict(highlight=False, markup=False, soft_wrap=True)  # paths and notes are never cut mid-word
        rows = report.eval_data.get("rows", 0)
        out.print(f"{report.task} on {report.data}{split} ({rows:,} row{'' if rows == 1 else 's'}), "
                  f"reference {report.reference}:", **line)
        out.print(report.columns_line(), **line)
        for message in report.messages:
            out.print(f"note: {message}", **line)
        out.print(report.markdown(), **line)
        if json_output is not None:
            write_json(json_output, report.to_dict())
