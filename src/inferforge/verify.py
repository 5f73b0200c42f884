"""Every variant against the PyTorch fp32 reference, on real tokenized text, batched with padding."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np

from inferforge.engines.base import Engine
from inferforge.errors import UserError
from inferforge.tasks import TaskSpec
from inferforge.tokenization import Encoded, TextEncoder

VALIDATION_BATCH = 8


@dataclass(frozen=True)
class AccuracyBudget:
    """The user's budget: largest output difference and smallest task agreement a variant may have."""

    atol: float
    min_agreement: float

    @classmethod
    def for_task(cls, task: TaskSpec, atol: float | None = None, min_agreement: float | None = None) -> "AccuracyBudget":
        return cls(task.default_atol if atol is None else atol,
                   task.default_min_agreement if min_agreement is None else min_agreement)


@dataclass
class VerifyResult:
    """How far a variant is from the reference. `max_abs_diff` is raw; `scaled_diff` divides it by
    max(1, largest reference magnitude) so one budget fits logits and normalized embeddings alike."""

    passed: bool
    max_abs_diff: float
    scaled_diff: float
    agreement: float
    agreement_metric: str
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _lines(text: str) -> list[str]:
    return [line.rstrip("\r") for line in text.splitlines() if line.strip()]


def builtin_texts(task: TaskSpec, purpose: str = "validation") -> tuple[list[str], list[str] | None]:
    """A varied set of real English sentences of mixed lengths (question/context pairs for QA).

    `purpose` "validation" gives the texts every variant is verified on; "calibration" gives a different
    set, so int8 ranges are never fitted on the very texts that judge them.
    """
    name = f"{purpose}_qa.tsv" if task.needs_pairs else f"{purpose}_en.txt"
    lines = _lines(resources.files("inferforge.data").joinpath(name).read_text(encoding="utf-8"))
    return split_pairs(lines, task)


def split_pairs(lines: list[str], task: TaskSpec) -> tuple[list[str], list[str] | None]:
    """Lines with a TAB are text pairs (question<TAB>context for QA)."""
    if task.needs_pairs or (task.supports_pairs and all("\t" in line for line in lines)):
        bad = [i + 1 for i, line in enumerate(lines) if "\t" not in line]
        if bad:
            raise UserError(f"{task.name} needs text pairs separated by a TAB; line {bad[0]} has none.")
        texts, pairs = zip(*(line.split("\t", 1) for line in lines))
        return list(texts), list(pairs)
    return lines, None


def validation_batches(encoder: TextEncoder, texts: list[str], pairs: list[str] | None,
                       batch_size: int = VALIDATION_BATCH) -> list[Encoded]:
    """Consecutive batches in file order, so every batch mixes lengths and exercises padding."""
    return [
        encoder.encode(texts[i : i + batch_size], pairs[i : i + batch_size] if pairs else None)
        for i in range(0, len(texts), batch_size)
    ]


def run_batches(engine: Engine, batches: list[Encoded]) -> list[dict[str, np.ndarray]]:
    return [engine.run(b.arrays) for b in batches]


SCORE_AGREEMENT = 0.01  # one-output classifiers: scores (sigmoids) this close count as the same answer


def agreement_metric(task: TaskSpec, reference: list[dict[str, np.ndarray]]) -> str:
    """The agreement measured: a one-output classifier (reranker, regression) has no top-1 to agree on."""
    if task.agreement == "top1" and reference and reference[0]["logits"].shape[-1] == 1:
        return f"score_within_{SCORE_AGREEMENT:g}"
    return task.agreement


def _agreement(task: TaskSpec, batches, reference, candidate) -> float:
    if agreement_metric(task, reference) != task.agreement:  # the share of texts scored the same
        from inferforge.tasks import sigmoid

        ref = np.concatenate([sigmoid(r["logits"][:, 0]) for r in reference])
        got = np.concatenate([sigmoid(c["logits"][:, 0]) for c in candidate])
        return float((np.abs(ref - got) <= SCORE_AGREEMENT).mean())
    if task.agreement == "top1":
        ref = np.concatenate([r["logits"].argmax(-1) for r in reference])
        got = np.concatenate([c["logits"].argmax(-1) for c in candidate])
        return float((ref == got).mean())
    if task.agreement == "token_top1":
        same = total = 0
        for b, r, c in zip(batches, reference, candidate):
            mask = b.token_mask(r["logits"].shape[1])
            same += int(((r["logits"].argmax(-1) == c["logits"].argmax(-1)) & mask).sum())
            total += int(mask.sum())
        return same / max(total, 1)
    if task.agreement == "cosine":
        ref = np.concatenate([r["sentence_embedding"] for r in reference]).astype(np.float64)
        got = np.concatenate([c["sentence_embedding"] for c in candidate]).astype(np.float64)
        cos = (ref * got).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(got, axis=-1) + 1e-12)
        return float(cos.min())
    if task.agreement == "span":
        same = total = 0
        for b, r, c in zip(batches, reference, candidate):
            for a, g in zip(task.postprocess(r, b, None), task.postprocess(c, b, None)):
                same += (a["start"], a["end"]) == (g["start"], g["end"])
                total += 1
        return same / max(total, 1)
    raise ValueError(f"unknown agreement metric {task.agreement}")


def compare(task: TaskSpec, batches: list[Encoded], reference: list[dict], candidate: list[dict],
            budget: AccuracyBudget) -> VerifyResult:
    """Max absolute difference over every output and the task agreement, judged against the budget."""
    max_diff = 0.0
    scale = 1.0
    for batch, r, c in zip(batches, reference, candidate):
        for name in task.output_names:
            a = r[name].astype(np.float64)
            b = c[name].astype(np.float64)
            if a.shape != b.shape:
                return VerifyResult(False, float("inf"), float("inf"), 0.0, task.agreement,
                                    f"output {name} has shape {b.shape}, the reference {a.shape}")
            if 1 in task.output_axes(name):  # per-token outputs: padding positions mean nothing, in any runtime
                mask = batch.token_mask(a.shape[1])
                a, b = a[mask], b[mask]
            if not np.isfinite(b).all():
                return VerifyResult(False, float("inf"), float("inf"), 0.0, task.agreement, f"output {name} has NaN or inf")
            max_diff = max(max_diff, float(np.abs(a - b).max()))
            scale = max(scale, float(np.abs(a).max()))
    scaled = max_diff / scale
    agreement = _agreement(task, batches, reference, candidate)
    metric = agreement_metric(task, reference)
    reasons = []
    if scaled > budget.atol:
        # The budget holds the scaled difference; the table shows the raw one: say how one becomes the other.
        how = f" (max abs diff {max_diff:.3g} over the reference's largest value {scale:.3g})" if scale > 1 else ""
        reasons.append(f"difference {scaled:.3g}{how} is over the budget {budget.atol:g} by {scaled - budget.atol:.3g}")
    if agreement < budget.min_agreement:
        reasons.append(f"{metric} agreement {agreement:.4f} is under {budget.min_agreement:g} "
                       f"by {budget.min_agreement - agreement:.4f}")
    return VerifyResult(not reasons, max_diff, scaled, agreement, metric, "; ".join(reasons))
