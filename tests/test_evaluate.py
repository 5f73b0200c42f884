"""Task metrics against hand-worked answers and scipy, and `evaluate` / `inferforge evaluate` on a real
model trained here on the movie-review sentences."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from inferforge.metrics import (accuracy, answer_scores, entities, entity_scores, macro_f1, normalize_answer, ranks,
                                spearman)


def test_accuracy_and_macro_f1_by_hand():
    gold = [0, 0, 1, 1, 2, 2]
    pred = [0, 1, 1, 1, 2, 0]
    assert accuracy(gold, pred) == pytest.approx(4 / 6)
    # per class F1: class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp1 fp0 fn1 -> 2/3
    assert macro_f1(gold, pred) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    with pytest.raises(ValueError):
        accuracy([0, 1], [0])


def test_entities_follow_conlleval_chunking():
    assert entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert entities(["I-PER", "I-PER", "I-LOC"]) == [("PER", 0, 1), ("LOC", 2, 2)]  # IOB1 starts with I-
    assert entities(["B-PER", "B-PER"]) == [("PER", 0, 0), ("PER", 1, 1)]
    assert entities(["S-LOC", "B-ORG", "E-ORG", "O"]) == [("LOC", 0, 0), ("ORG", 1, 2)]
    assert entities(["PER", "PER", "O", "LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]  # plain IO tags


def test_entity_f1_matches_seqeval_readme_example():
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    scores = entity_scores(gold, pred)
    assert (scores.precision, scores.recall, scores.f1) == (0.5, 0.5, 0.5)


def test_squad_exact_match_and_f1():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    scores = answer_scores([["the Eiffel Tower", "Eiffel"], ["in 1889"]], ["Eiffel Tower", "1889 exactly"])
    assert scores.exact_match == pytest.approx(0.5)
    # second: gold {in, 1889} vs pred {1889, exactly}: p=1/2 r=1/2 -> 0.5; first is exact -> 1.0
    assert scores.f1 == pytest.approx(0.75)


def test_spearman_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = x + rng.normal(scale=0.7, size=200)
    y[:20] = y[0]  # ties
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert np.isnan(spearman([1, 2, 3], [4, 4, 4]))


def test_fp32_onnx_accuracy_equals_pytorch_exactly(sentiment_tiny):
    from inferforge.artifacts import load
    from inferforge.engines.torch_engine import TorchEngine
    from inferforge.evaluate import read_eval_set
    from inferforge.export import export_wrapper
    from inferforge.source import load_source
    from inferforge.tasks import get_task

    hf_dir, converted, test_csv = sentiment_tiny
    task = get_task("text-classification")
    onnx_model = load(converted, "ort-fp32", threads=1)
    eval_set = read_eval_set(test_csv, task, onnx_model.encoder, onnx_model.labels)
    source = load_source(str(hf_dir), task)
    torch_engine = TorchEngine(export_wrapper(source, task), source.input_names, task.output_names, threads=1)
    onnx_score, torch_score = eval_set.score(onnx_model.engine), eval_set.score(torch_engine)
    assert len(eval_set) == 2000
    assert onnx_score.metrics == torch_score.metrics
    assert 70.0 < onnx_score.value < 90.0  # learned something real, and far from a constant answer (~52 %)
    finetune = json.loads((hf_dir / "finetune.json").read_text())
    assert abs(finetune["pytorch_test_accuracy"] * 100 - torch_score.value) < 1.0  # max length 64 vs 128 only


def test_evaluate_scores_every_variant_against_fp32(sentiment_tiny):
    from inferforge.evaluate import evaluate

    _, converted, test_csv = sentiment_tiny
    report = evaluate(converted, test_csv, threads=1)
    assert report.reference == "ort-fp32" and report.metric == "accuracy"
    assert [r.variant for r in report.rows] == ["ort-fp32", "ort-int8-dynamic"]
    fp32, int8 = report.rows
    assert fp32.drop_points == 0.0
    assert int8.drop_points == pytest.approx(fp32.score.value - int8.score.value)
    assert abs(int8.drop_points) < 3.0 and int8.score.rows == 2000
    assert set(int8.score.metrics) == {"accuracy", "macro_f1"}
    assert "| ort-int8-dynamic | int8 |" in report.markdown()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "inferforge.cli", *map(str, args)], capture_output=True, text=True)


def test_evaluate_command_prints_the_table_and_writes_json(sentiment_tiny, tmp_path):
    _, converted, test_csv = sentiment_tiny
    result = _cli("evaluate", converted, "--data", test_csv, "--threads", "1", "--variants", "ort-fp32",
                  "--json", tmp_path / "scores.json")
    assert result.returncode == 0, result.stderr
    assert "| ort-fp32 | fp32 |" in result.stdout
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["variants"][0]["variant"] == "ort-fp32" and scores["variants"][0]["rows"] == 2000


@pytest.mark.parametrize("content,message", [
    ("", "no data rows"),
    ("sentence,label\nfine,positive\n", "no column 'text'"),
    ("text,label\nfine,neutral\n", "Unknown label 'neutral' at line 2"),
])
def test_evaluate_command_bad_data_exits_2_without_traceback(sentiment_tiny, tmp_path, content, message):
    _, converted, _ = sentiment_tiny
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    result = _cli("evaluate", converted, "--data", bad)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_evaluate_command_unknown_variant_exits_2(sentiment_tiny):
    _, converted, test_csv = sentiment_tiny
    result = _cli("evaluate", converted, "--data", test_csv, "--variants", "tensorrt")
    assert result.returncode == 2 and "Variant 'tensorrt' is not in this folder" in " ".join(result.stderr.split())


# Every task's scoring, on the tiny random models of the serving tests: the gold labels are the model's own
# answers computed here by another route (Hugging Face tokenizer word ids, LoadedModel.predict, numpy
# cosines), so the evaluator must give a perfect score, and a corrupted gold must lower it.


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _row(report, name):
    return report.row(name).score


def test_token_classification_entity_f1_agrees_with_word_ids(converted_tiny, tmp_path):
    import torch
    import transformers

    from inferforge.artifacts import load
    from inferforge.evaluate import evaluate

    folder = converted_tiny("token-classification")
    model = load(folder, "ort-fp32")
    sentences = [["Alice", "met", "Bob", "in", "Paris"], ["the", "quick", "brown", "fox", "jumps"],
                 ["what", "is", "the", "capital", "of", "France"], ["Paris", "is", "large"]]
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder / "tokenizer")
    gold = []
    for words in sentences:
        encoded = tokenizer(words, is_split_into_words=True, return_tensors="np")
        logits = model.run({n: encoded[n].astype("int64") for n in model.encoder.input_names})["logits"][0]
        tags, seen = ["O"] * len(words), set()
        for token, word in enumerate(encoded.word_ids()):
            if word is not None and word not in seen:
                seen.add(word)
                tags[word] = model.labels[int(logits[token].argmax())]
        gold.append(tags)
    data = _jsonl(tmp_path / "ner.jsonl", [{"text": w, "label": t} for w, t in zip(sentences, gold)])
    score = _row(evaluate(folder, data, threads=1), "ort-fp32")
    n_entities = sum(t != "O" for tags in gold for t in tags)
    assert set(score.metrics) == {"entity_f1", "entity_precision", "entity_recall"}
    assert n_entities > 0 and score.value == 100.0
    wrong = [["O"] * len(tags) for tags in gold]
    wrong[0][0] = "B-LOC" if gold[0][0] != "B-LOC" else "B-PER"
    worse = _row(evaluate(folder, _jsonl(tmp_path / "wrong.jsonl", [{"text": w, "label": t} for w, t in zip(sentences, wrong)]), threads=1), "ort-fp32")
    assert worse.value < 100.0


def test_question_answering_exact_match_of_its_own_answers(converted_tiny, tmp_path):
    from inferforge.artifacts import load
    from inferforge.evaluate import evaluate

    folder = converted_tiny("question-answering")
    model = load(folder, "ort-fp32")
    questions = ["what is the capital of France", "who met Bob", "where did Alice meet Bob"]
    contexts = ["Paris is the capital of France and its largest city", "Alice met Bob in Paris last summer",
                "Alice met Bob in Paris last summer"]
    answers = [a["answer"] for a in model.predict(questions, contexts)]
    rows = [{"question": q, "context": c, "answers": [a, "zzz"]}
            for q, c, a in zip(questions, contexts, answers) if a.strip()]
    assert rows, "the tiny model answered nothing"
    data = _jsonl(tmp_path / "qa.jsonl", rows)
    report = evaluate(folder, data, text_column="question", pair_column="context", label_column="answers", threads=1)
    assert _row(report, "ort-fp32").metrics == {"f1": 100.0, "exact_match": 100.0}
    rows = [{"question": q, "context": c, "answers": "zzz"} for q, c in zip(questions, contexts)]
    miss = evaluate(folder, _jsonl(tmp_path / "miss.jsonl", rows), text_column="question", pair_column="context",
                    label_column="answers", threads=1)
    assert _row(miss, "ort-fp32").metrics["exact_match"] == 0.0


def test_feature_extraction_spearman_of_cosines(converted_tiny, tmp_path):
    from inferforge.artifacts import load
    from inferforge.evaluate import evaluate
    from inferforge.metrics import cosine_similarities

    folder = converted_tiny("feature-extraction")
    model = load(folder, "ort-fp32")
    first = ["the movie was great", "a terrible boring film", "Alice met Bob in Paris", "the quick brown fox",
             "what is the capital of France"]
    second = ["the actors were wonderful", "Paris is the capital of France", "the lazy dog", "no story at all",
              "Alice met Bob last summer"]
    a, b = (np.array(model.predict(side)) for side in (first, second))
    gold = cosine_similarities(a, b)
    rows = [{"text": x, "text_pair": y, "label": float(s)} for x, y, s in zip(first, second, gold)]
    assert _row(evaluate(folder, _jsonl(tmp_path / "sts.jsonl", rows), threads=1), "ort-fp32").value == pytest.approx(100.0)
    reversed_rows = [{**r, "label": -r["label"]} for r in rows]
    assert _row(evaluate(folder, _jsonl(tmp_path / "r.jsonl", reversed_rows), threads=1), "ort-fp32").value == pytest.approx(-100.0)
    with pytest.raises(Exception, match="text_pair"):
        evaluate(folder, _jsonl(tmp_path / "single.jsonl", [{"text": "a", "label": 1.0}]))
