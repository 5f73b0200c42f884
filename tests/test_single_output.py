"""Text classifiers with one output (cross-encoder rerankers, regression heads such as STS-B): the score is
the sigmoid of the output, as the transformers pipeline gives it, the raw value travels beside it, and
verification compares scores (a top-1 of one class always agrees, whatever a variant computes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import inferforge
from inferforge.tasks import sigmoid
from tiny_models import build_tiny_model

QUERIES = ["who met Bob in Paris?", "what is the capital of France?", "is the film any good?"]
PASSAGES = ["Alice met Bob in Paris last summer", "the quick brown fox jumps over the lazy dog",
            "a terrible boring film with no story at all"]


def one_output_model(tmp_path: Path, arch: str) -> Path:
    import transformers

    base = build_tiny_model(tmp_path / "base", arch, "text-classification")
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=1, id2label={0: "RELEVANCE"}, label2id={"RELEVANCE": 0}, ignore_mismatched_sizes=True)
    folder = tmp_path / "reranker"
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


def reference_logits(folder: Path, queries, passages) -> np.ndarray:
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        batch = tokenizer(queries, passages, padding=True, return_tensors="pt")
        return model(**batch).logits[:, 0].numpy()


@pytest.mark.parametrize("arch", ["bert", "xlm-roberta"])
def test_reranker_scores_are_sigmoids_and_verification_compares_scores(tmp_path, arch):
    folder = one_output_model(tmp_path, arch)
    out = tmp_path / "out"
    result = inferforge.convert(str(folder), "text-classification", out, variants="ort-fp32,ort-int8-dynamic",
                                shapes="1x16", nb_measures=2, warmup=1, threads=1)
    checks = {r.name: r.check for r in result.rows if r.check is not None}
    assert checks["ort-fp32"].agreement_metric == "score_within_0.01"
    assert checks["ort-fp32"].agreement == 1.0
    report = json.loads((out / "report.json").read_text())
    assert {v["check"]["agreement_metric"] for v in report["variants"] if v.get("check")} == {"score_within_0.01"}

    answers = inferforge.load(out, variant="ort-fp32").predict(QUERIES, PASSAGES)
    logits = reference_logits(folder, QUERIES, PASSAGES)
    assert [a["label"] for a in answers] == ["RELEVANCE"] * 3
    np.testing.assert_allclose([a["logit"] for a in answers], logits, atol=1e-4)
    np.testing.assert_allclose([a["score"] for a in answers], sigmoid(logits), atol=1e-5)
    assert len({round(a["score"], 6) for a in answers}) == 3  # three passages, three different scores


def test_labelled_scores_judge_a_reranker_by_rank_correlation(tmp_path):
    """Graded relevance (or STS-style scores) as labels: evaluate reports Spearman of the model's raw
    output against them, the number computed here from transformers' own logits."""
    import csv

    from inferforge.evaluate import evaluate
    from inferforge.metrics import spearman

    folder = one_output_model(tmp_path, "bert")
    out = tmp_path / "out"
    inferforge.convert(str(folder), "text-classification", out, variants="ort-fp32", shapes="1x16",
                       nb_measures=2, warmup=1, threads=1)
    queries = [q for q in QUERIES for _ in PASSAGES]
    passages = PASSAGES * len(QUERIES)
    gold = [0.0, 1.5, 3.0, 4.5, 2.0, 0.5, 1.0, 5.0, 2.5]
    data = tmp_path / "graded.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "passage", "score"])
        writer.writerows(zip(queries, passages, gold))
    report = evaluate(out, data, text_column="query", pair_column="passage", label_column="score", threads=1)
    assert report.metric == "spearman"
    row = next(r for r in report.rows if r.variant == "ort-fp32")
    expected = 100.0 * spearman(reference_logits(folder, queries, passages), gold)
    assert row.score.value == pytest.approx(expected, abs=1e-6)


def test_a_variant_whose_scores_drift_fails_the_score_agreement():
    """The agreement itself: scores off by more than 0.01 for some texts lower it, top-1 would not."""
    from inferforge.tasks import get_task
    from inferforge.verify import AccuracyBudget, compare

    task = get_task("text-classification")
    reference = [{"logits": np.array([[0.0], [1.0], [2.0], [-1.0]], dtype=np.float32)}]
    drifted = [{"logits": np.array([[0.0], [1.0], [2.5], [-1.0]], dtype=np.float32)}]  # one text moved
    budget = AccuracyBudget.for_task(task, atol=10.0)  # only the agreement judges here

    class Batch:
        arrays = {"input_ids": np.zeros((4, 3), dtype=np.int64)}

    check = compare(task, [Batch()], reference, drifted, budget)
    assert check.agreement_metric == "score_within_0.01" and check.agreement == 0.75
    assert not check.passed and "score_within_0.01 agreement 0.7500" in check.reason
    assert compare(task, [Batch()], reference, reference, budget).passed


def test_multi_label_classifier_scores_every_label_with_its_own_sigmoid(tmp_path):
    """config.problem_type multi_label_classification: sigmoids, not a softmax over labels that are not exclusive;
    the same answers from the folder, the Triton repository's answer code and both repository flavours' settings."""
    import transformers

    from inferforge.triton.answers import answer_tensors
    from inferforge.triton.repository import write_repository

    base = build_tiny_model(tmp_path / "base", "bert", "text-classification")
    torch.manual_seed(0)
    labels = ["toxic", "insult", "threat", "obscene"]
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=4, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        problem_type="multi_label_classification", ignore_mismatched_sizes=True)
    folder = tmp_path / "multi"
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    out = tmp_path / "out"
    inferforge.convert(str(folder), "text-classification", out, variants="ort-fp32", shapes="1x16",
                       nb_measures=2, warmup=1, threads=1)

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        expected = torch.sigmoid(model.eval()(**tokenizer(PASSAGES, padding=True, return_tensors="pt")).logits).numpy()
    loaded = inferforge.load(out)
    answers = loaded.predict(PASSAGES)
    for answer, probs in zip(answers, expected):
        np.testing.assert_allclose([answer["scores"][n] for n in labels], probs, atol=1e-5)
        assert answer["label"] == labels[int(probs.argmax())] and abs(answer["score"] - probs.max()) < 1e-5
    assert probs.sum() != pytest.approx(1.0, abs=1e-3)  # independent sigmoids, not a distribution

    encoded = loaded.encoder.encode(PASSAGES)
    served = answer_tensors(loaded.task, loaded.labels, loaded.run(encoded.arrays), encoded, [("score", np.float32)],
                            problem_type=loaded.manifest.problem_type)
    assert [json.loads(v) for v in served["answer_json"].ravel()] == json.loads(json.dumps(answers))
    repo = write_repository(out, tmp_path / "repo", flavour="onnxruntime")
    config = (repo.path / f"{repo.name}_postprocess" / "config.pbtxt").read_text()
    assert "multi_label_classification" in config
