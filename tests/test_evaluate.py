"""Task metrics against hand-worked answers and scipy, and `evaluate` / `inferforge evaluate` on a real
model trained here on the movie-review sentences."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from tiny_models import build_tiny_model

from inferforge.metrics import (accuracy, answer_scores, entities, entity_scores, macro_f1, normalize_answer, pearson,
                                ranks, spearman)


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
    # BILOU (spaCy's offsets_to_biluo_tags): L- ends an entity, U- is one of a single word, as IOBES's E- and S-
    assert entities(["U-LOC", "B-ORG", "I-ORG", "L-ORG", "U-PER", "U-PER"]) == [("LOC", 0, 0), ("ORG", 1, 3),
                                                                               ("PER", 4, 4), ("PER", 5, 5)]


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
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
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
    # every deployable variant the folder stores: the verification search adds ort-int8-dynamic-keepN on the runs
    # where full int8 misses the verification budget on this tiny model
    stored = [n for n, e in json.loads((converted / "inferforge.json").read_text())["variants"].items()
              if e.get("deployable")]
    assert [r.variant for r in report.rows] == stored and stored[:2] == ["ort-fp32", "ort-int8-dynamic"]
    fp32, int8 = report.rows[:2]
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
    ("phrase,label\nfine,positive\n", "no text column (columns found: phrase, label; looked for text, sentence"),
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


SQUAD2_QUESTIONS = ["what is the capital of France", "who met Bob", "where did Alice meet Bob", "what did the fox do"]
SQUAD2_CONTEXTS = ["Paris is the capital of France and its largest city", "Alice met Bob in Paris last summer",
                   "Alice met Bob in Paris last summer", "the quick brown fox jumps over the lazy dog"]
SQUAD2_UNANSWERED = [True, False, True, False]  # the questions on which the model is made to say "no answer"


def _squad2_scores(model, path, gold_texts):
    """The metrics of SQuAD 2.0 rows (answers {"text": gold_texts[i]}) on the real outputs of `model`, with the [CLS]
    logits raised on the SQUAD2_UNANSWERED questions: the tiny random model never prefers [CLS] by itself."""
    from inferforge.evaluate import read_eval_set

    rows = [{"question": q, "context": c, "answers": {"text": texts, "answer_start": []}}
            for q, c, texts in zip(SQUAD2_QUESTIONS, SQUAD2_CONTEXTS, gold_texts)]
    eval_set = read_eval_set(_jsonl(path, rows), model.task, model.encoder, None, "question", "context", "answers")
    outputs = eval_set.outputs(model.engine)
    for (idx, _), out in zip(eval_set.batches, outputs):
        for position, row in enumerate(idx):
            if SQUAD2_UNANSWERED[row]:
                out["start_logits"][position, 0] = out["end_logits"][position, 0] = 40.0  # [CLS] is token 0
    return eval_set.score_outputs(outputs).metrics


def test_squad2_unanswerable_questions_use_the_no_answer_score(converted_tiny, tmp_path):
    """SQuAD 2.0 data (empty answer lists): the model says "no answer" where its no-answer score beats its best
    span. The gold that says "no answer" exactly where the model does scores 100, the gold flipped does not."""
    from inferforge.artifacts import load

    model = load(converted_tiny("question-answering"), "ort-fp32")
    predicted = model.predict(SQUAD2_QUESTIONS, SQUAD2_CONTEXTS)
    for answer in predicted:
        assert 0.0 < answer["no_answer_score"] < answer["score"]  # BERT's [CLS] counts, and loses here

    def gold(empty):
        return [[] if e else [a["answer"]] for a, e in zip(predicted, empty)]

    assert _squad2_scores(model, tmp_path / "squad2.jsonl", gold(SQUAD2_UNANSWERED)) == {"f1": 100.0, "exact_match": 100.0}
    flipped = _squad2_scores(model, tmp_path / "flipped.jsonl", gold([not u for u in SQUAD2_UNANSWERED]))
    assert flipped["exact_match"] == 0.0


def test_squad2_gold_answers_without_text_follow_the_official_script(converted_tiny, tmp_path):
    """Gold answers that normalize to "" ("the", "."), as the SQuAD v2.0 evaluation script reads them: dropped when
    the question has others (was: "the" matched the model's "no answer", 100 points), else the question is
    unanswerable, matched by "no answer" or an answer that normalizes to "" too."""
    from inferforge.artifacts import load

    model = load(converted_tiny("question-answering"), "ort-fp32")
    spans = [a["answer"] for a in model.predict(SQUAD2_QUESTIONS, SQUAD2_CONTEXTS)]
    assert all(normalize_answer(a) for a in spans)
    gold = [["the", "Paris"],         # said "no answer": the gold is Paris alone, missed (0)
            [spans[1], "."],          # answered with the gold span (1)
            ["The", "", "."],         # said "no answer", and no gold has text: unanswerable, matched (1)
            ["the"]]                  # answered with a span that has text: an unanswerable question missed (0)
    assert _squad2_scores(model, tmp_path / "squad2.jsonl", gold) == {"f1": 50.0, "exact_match": 50.0}
    # the script's own per-question rules, by hand
    scores = answer_scores([["the", "Paris"], ["The", "."], [""], [""], ["an"], ["a Paris", "Paris!"]],
                           ["", "", "", "Paris", "a", "Paris"])
    assert (scores.exact_match, scores.f1) == (pytest.approx(4 / 6), pytest.approx(4 / 6))


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


# Labelled data as users bring it (the shapes Hugging Face datasets export, SQuAD, CoNLL), columns found by
# their usual names, scored end to end on tiny models of tests/tiny_models.py; every expected value comes
# from the model's own PyTorch predictions, computed here with transformers, not through the evaluator.


@pytest.fixture(scope="module")
def tiny_converted(tmp_path_factory):
    """tiny_converted(task) -> (hf_dir, converted_dir), a tiny BERT converted to ort-fp32 once per task."""
    import inferforge
    from tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("tiny-eval")
    built = {}

    def get(task_name):
        if task_name not in built:
            hf = build_tiny_model(root / f"hf-{task_name}", "bert", task_name)
            out = root / f"converted-{task_name}"
            inferforge.convert(str(hf), task_name, out, variants="ort-fp32", shapes="1x8", nb_measures=2, warmup=1,
                               threads=1)
            built[task_name] = (hf, out)
        return built[task_name]

    return get


PAIRS = [("the movie was great", "the actors were wonderful"), ("a terrible boring film", "no story at all"),
         ("Alice met Bob in Paris", "they walked by the river"), ("what is the capital of France", "Paris"),
         ("the quick brown fox", "jumps over the lazy dog"), ("it rained all day", "we stayed inside"),
         ("the soup was cold", "the waiter was rude"), ("a fine summer evening", "music in the park")]


def _torch_logits(hf_dir, auto_class, first, second=None):
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    model = getattr(transformers, auto_class).from_pretrained(hf_dir).eval()
    with torch.no_grad():
        return tokenizer, model(**tokenizer(first, second, padding=True, return_tensors="pt"))


def test_glue_pair_csv_with_detected_columns_and_label_names_in_any_case(tiny_converted, tmp_path):
    hf, folder = tiny_converted("text-classification")
    _, out = _torch_logits(hf, "AutoModelForSequenceClassification", [a for a, _ in PAIRS], [b for _, b in PAIRS])
    predicted = out.logits.argmax(-1).tolist()
    names = ["negative", "positive"]  # the model says NEGATIVE / POSITIVE
    # rows 1 and 5 are labelled against the model; labels alternate between names and ids as datasets writes them
    gold = [1 - p if i % 4 == 1 else p for i, p in enumerate(predicted)]
    cells = [names[g] if i % 2 == 0 else str(g) for i, g in enumerate(gold)]
    path = tmp_path / "mrpc.csv"
    path.write_text("Sentence1,Sentence2,Label,idx\n" + "".join(f"{a},{b},{c},{i}\n" for i, ((a, b), c) in
                                                                  enumerate(zip(PAIRS, cells))))
    expected = 100.0 * np.mean(np.array(gold) == np.array(predicted))
    assert expected == 75.0
    result = _cli("evaluate", folder, "--data", path, "--threads", "1", "--json", tmp_path / "scores.json")
    assert result.returncode == 0, result.stderr
    assert ("columns: text 'Sentence1', pair 'Sentence2', label 'Label' (detected: text, pair, label), read as CSV"
            in " ".join(result.stdout.split()))
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["columns"]["text"] == "Sentence1" and scores["columns"]["pair"] == "Sentence2"
    assert scores["variants"][0]["metrics"]["accuracy"] == expected and scores["variants"][0]["rows"] == 8


def _gold_and_expected_f1(hf_dir, sentences, labels):
    """Gold tags = PyTorch's own word tags with two sentences changed (one wholly tagged, "Paris is large"
    tagged B-LOC), and the entity F1 PyTorch's tags then score: strictly between 0 and 100."""
    predicted = _torch_word_tags(hf_dir, sentences, labels)
    gold = [list(tags) for tags in predicted]
    gold[0] = ["B-PER", "O", "B-PER", "O", "B-LOC"]
    gold[next(i for i, s in enumerate(sentences) if s == ["Paris", "is", "large"])] = ["B-LOC", "O", "O"]
    expected = 100.0 * entity_scores(gold, predicted).f1
    assert 0.0 < expected < 100.0, (gold, predicted)
    return gold, expected


def _torch_word_tags(hf_dir, sentences, labels):
    tokenizer, out = _torch_logits_split(hf_dir, sentences)
    return _first_token_tags(tokenizer(sentences, is_split_into_words=True, padding=True), out.logits, sentences, labels)


def _first_token_tags(encoded, logits, sentences, labels):
    """Each word's tag: the prediction on its first token, as the tokenizer's word_ids() number the words."""
    tags = []
    for row, words in enumerate(sentences):
        row_tags, seen = ["O"] * len(words), set()
        for token, word in enumerate(encoded.word_ids(row)):
            if word is not None and word not in seen:
                seen.add(word)
                row_tags[word] = labels[int(logits[row, token].argmax())]
        assert len(seen) == len(words)  # the tokenizer's words are the whitespace words
        tags.append(row_tags)
    return tags


def _torch_logits_split(hf_dir, sentences):
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    model = transformers.AutoModelForTokenClassification.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        return tokenizer, model(**tokenizer(sentences, is_split_into_words=True, padding=True, return_tensors="pt"))


def test_token_classification_from_datasets_jsonl_and_conll(tiny_converted, tmp_path):
    from inferforge.evaluate import evaluate
    from inferforge.metrics import entity_scores

    hf, folder = tiny_converted("token-classification")
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]  # tests/tiny_models.py LABELS
    sentences = [["Alice", "met", "Bob", "in", "Paris"], ["the", "quick", "brown", "fox", "jumps"],
                 ["what", "is", "the", "capital", "of", "France"], ["Paris", "is", "large"],
                 ["Bob", "and", "Alice", "walked", "home"]]
    gold, expected = _gold_and_expected_f1(hf, sentences, labels)
    # conll2003.to_json(): ids as ints, extra columns
    rows = [{"id": str(i), "tokens": w, "pos_tags": [0] * len(w), "ner_tags": [labels.index(t) for t in g]}
            for i, (w, g) in enumerate(zip(sentences, gold))]
    jsonl = _jsonl(tmp_path / "ner.json", rows)
    report = evaluate(folder, jsonl, threads=1)
    assert report.columns["text"] == "tokens" and report.columns["label"] == "ner_tags"
    assert _row(report, "ort-fp32").value == pytest.approx(expected, abs=1e-9)
    conll = tmp_path / "ner.conll"
    conll.write_text("-DOCSTART- O\n\n" + "\n".join("".join(f"{w}\t{t.lower()}\n" for w, t in zip(ws, g))
                                                    for ws, g in zip(sentences, gold)))
    assert _row(evaluate(folder, conll, threads=1), "ort-fp32").value == pytest.approx(expected, abs=1e-9)


def test_original_squad_json_scored_against_pytorch_answers(tiny_converted, tmp_path):
    from inferforge.artifacts import TOKENIZER_DIR, Manifest
    from inferforge.engines.torch_engine import TorchEngine
    from inferforge.evaluate import evaluate
    from inferforge.export import export_wrapper
    from inferforge.source import load_source
    from inferforge.tasks import get_task
    from inferforge.tokenization import TextEncoder

    hf, folder = tiny_converted("question-answering")
    task = get_task("question-answering")
    manifest = Manifest.read(folder)
    encoder = TextEncoder.from_dir(folder / TOKENIZER_DIR, manifest.input_names, manifest.max_length)
    source = load_source(str(hf), task)
    torch_engine = TorchEngine(export_wrapper(source, task), source.input_names, task.output_names, threads=1)
    context = "Alice met Bob in Paris last summer and Paris is the capital of France"
    questions = ["who met Bob", "where did Alice meet Bob", "what is the capital of France"]
    encoded = encoder.encode(questions, [context] * 3)
    answers = [a["answer"] for a in task.postprocess(torch_engine.run(encoded.arrays), encoded, None)]
    assert all(a.strip() for a in answers), answers
    gold = [["zzz", answers[0]], ["zzz"], [answers[2]]]  # the second question is answered wrongly
    squad = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": f"q{i}", "question": q, "answers": [{"text": t, "answer_start": 0} for t in g]}
        for i, (q, g) in enumerate(zip(questions, gold))]}]}]}
    (tmp_path / "dev.json").write_text(json.dumps(squad))
    report = evaluate(folder, tmp_path / "dev.json", threads=1)
    assert report.columns["format"] == "SQuAD JSON" and report.columns["pair"] == "context"
    score = _row(report, "ort-fp32")
    assert score.metrics["exact_match"] == pytest.approx(200.0 / 3)
    assert score.metrics["f1"] < 100.0
    # MRQA's shared-task layout (a header line, then a context per line with its questions; answers as texts), gzip
    import gzip

    with gzip.open(tmp_path / "SQuAD.jsonl.gz", "wt") as f:
        f.write(json.dumps({"header": {"dataset": "SQuAD", "split": "dev"}}) + "\n")
        f.write(json.dumps({"id": "c0", "context": context, "qas": [
            {"qid": f"q{i}", "question": q, "answers": g, "detected_answers": []}
            for i, (q, g) in enumerate(zip(questions, gold))]}) + "\n")
    report = evaluate(folder, tmp_path / "SQuAD.jsonl.gz", threads=1)
    assert report.columns["format"] == "MRQA JSON Lines" and report.eval_data["rows"] == 3
    assert _row(report, "ort-fp32").metrics == pytest.approx(score.metrics, abs=1e-9)


def _torch_mean_pooling(hf_dir):
    """texts -> transformers' token embeddings of `hf_dir` averaged over the attention mask (sentence-transformers'
    mean pooling), the reference the embedding metrics are checked against."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    model = transformers.AutoModel.from_pretrained(hf_dir).eval()

    def embed(texts):
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return ((hidden * mask).sum(1) / mask.sum(1)).numpy()

    return embed


def test_stsb_csv_spearman_against_pytorch_mean_pooling(tiny_converted, tmp_path):
    from inferforge.evaluate import evaluate

    stats = pytest.importorskip("scipy.stats")
    hf, folder = tiny_converted("feature-extraction")
    embed = _torch_mean_pooling(hf)
    a, b = embed([x for x, _ in PAIRS]), embed([y for _, y in PAIRS])
    cosines = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    gold = [5.0, 0.4, 3.2, 1.0, 2.2, 4.8, 0.0, 3.9]
    expected = 100.0 * stats.spearmanr(cosines, gold).statistic
    expected_pearson = 100.0 * stats.pearsonr(cosines, gold).statistic
    path = tmp_path / "sts-dev.csv"
    path.write_text("sentence1,sentence2,score\n" + "".join(f"{x},{y},{s}\n" for (x, y), s in zip(PAIRS, gold)))
    report = evaluate(folder, path, threads=1)
    assert (report.columns["text"], report.columns["pair"], report.columns["label"]) == ("sentence1", "sentence2", "score")
    assert _row(report, "ort-fp32").value == pytest.approx(expected, abs=1e-6)
    # Pearson moves with the cosines themselves: onnxruntime against PyTorch differs ~1e-6 per cosine, ~2e-4 points here
    assert _row(report, "ort-fp32").metrics["pearson"] == pytest.approx(expected_pearson, abs=5e-3)
    assert abs(expected) < 99.0  # the gold is not the model's own ranking: a wrong pairing would show


# Parquet, Arrow and `datasets` folders, written with pyarrow the way datasets writes them (features in the
# schema metadata under b"huggingface"), scored on the tiny models; the expected numbers come from the
# model's own PyTorch predictions.


def _hf_parquet(path, columns, features):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(columns).replace_schema_metadata({b"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(table, path)
    return table


def _class_label(names):
    return {"names": names, "_type": "ClassLabel"}


def _save_split(folder, table, split, features):
    """A split as DatasetDict.save_to_disk writes it: an Arrow stream, dataset_info.json and state.json."""
    import pyarrow as pa

    folder.mkdir(parents=True)
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    (folder / "dataset_info.json").write_text(json.dumps({"features": features}))
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}],
                                                   "_split": split}))


def test_parquet_with_class_names_in_another_order_than_the_model(tiny_converted, tmp_path):
    hf, folder = tiny_converted("text-classification")  # the model's labels: 0 NEGATIVE, 1 POSITIVE
    texts = [a for a, _ in PAIRS]
    _, out = _torch_logits(hf, "AutoModelForSequenceClassification", texts)
    predicted = out.logits.argmax(-1).tolist()
    gold = [1 - p if i % 3 == 0 else p for i, p in enumerate(predicted)]  # rows 0, 3 and 6 against the model
    expected = 100.0 * np.mean(np.array(gold) == np.array(predicted))
    assert expected == 62.5
    # the dataset numbers its classes the other way round: 0 positive, 1 negative
    dataset_ids = [1 - g for g in gold]
    path = tmp_path / "test-00000-of-00001.parquet"
    _hf_parquet(path, {"sentence": texts, "label": dataset_ids, "idx": list(range(len(texts)))},
                {"sentence": {"dtype": "string", "_type": "Value"}, "label": _class_label(["positive", "negative"]),
                 "idx": {"dtype": "int32", "_type": "Value"}})
    result = _cli("evaluate", folder, path, "--threads", "1", "--json", tmp_path / "scores.json")  # DIR DATA
    assert result.returncode == 0, result.stderr
    stdout = " ".join(result.stdout.split())
    assert "columns: text 'sentence', label 'label' (detected: text, label), read as Parquet" in stdout
    assert ("note: label ids mapped through the dataset's class names to the model's labels: 0 positive -> 1 POSITIVE, "
            "1 negative -> 0 NEGATIVE") in stdout
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["variants"][0]["metrics"]["accuracy"] == expected  # taking the ids as the model's would give 37.5
    labels = scores["eval_data"]["labels"]
    assert labels["how"] == ["class-names"] and labels["dataset_class_names"] == ["positive", "negative"]
    assert {p["dataset_id"]: p["model_label"] for p in labels["pairs"]} == {0: "POSITIVE", 1: "NEGATIVE"}
    assert scores["eval_data"]["rows"] == 8 and scores["eval_data"]["format"] == "Parquet"


def test_dataset_dict_folder_split_choice_said_and_recorded(tiny_converted, tmp_path):
    import pyarrow as pa

    hf, folder = tiny_converted("text-classification")
    texts = [a for a, _ in PAIRS]
    _, out = _torch_logits(hf, "AutoModelForSequenceClassification", texts)
    predicted = out.logits.argmax(-1).tolist()
    features = {"sentence": {"dtype": "string", "_type": "Value"}, "label": _class_label(["negative", "positive"])}
    data = tmp_path / "sst2"
    data.mkdir()
    (data / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "validation", "test"]}))
    splits = {"train": (texts[:2], [1 - p for p in predicted[:2]]), "validation": (texts, predicted),
              "test": (texts[:3], [-1, -1, -1])}  # GLUE's test splits have no labels
    for name, (rows, labels) in splits.items():
        _save_split(data / name, pa.table({"sentence": rows, "label": labels}), name, features)
    result = _cli("evaluate", folder, "--data", data, "--threads", "1", "--json", tmp_path / "v.json")
    assert result.returncode == 0, result.stderr
    stdout = " ".join(result.stdout.split())
    assert f"note: split 'test' of {data} has no labels (every label is -1, as in GLUE's test splits), so 'validation' is used" in stdout
    assert f"on {data}, split 'validation' (8 rows)" in stdout
    scores = json.loads((tmp_path / "v.json").read_text())
    assert scores["split"] == "validation" and scores["variants"][0]["metrics"]["accuracy"] == 100.0
    result = _cli("evaluate", folder, data, "--eval-split", "train", "--threads", "1", "--json", tmp_path / "t.json")
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "t.json").read_text())
    assert scores["split"] == "train" and scores["variants"][0]["rows"] == 2
    assert scores["variants"][0]["metrics"]["accuracy"] == 0.0


def test_ner_tags_as_class_label_ids_in_a_saved_dataset(tiny_converted, tmp_path):
    import pyarrow as pa

    from inferforge.evaluate import evaluate
    from inferforge.metrics import entity_scores

    hf, folder = tiny_converted("token-classification")
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]  # the model's (tests/tiny_models.py LABELS)
    sentences = [["Alice", "met", "Bob", "in", "Paris"], ["the", "quick", "brown", "fox", "jumps"],
                 ["Paris", "is", "large"], ["Bob", "and", "Alice", "walked", "home"]]
    gold, expected = _gold_and_expected_f1(hf, sentences, labels)
    names = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]  # the dataset's own tag order
    features = {"tokens": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
                "ner_tags": {"feature": _class_label(names), "_type": "Sequence"}}
    table = pa.table({"id": [str(i) for i in range(len(sentences))], "tokens": sentences,
                      "ner_tags": [[names.index(t) for t in tags] for tags in gold]})
    _save_split(tmp_path / "conll", table.replace_schema_metadata(
        {b"huggingface": json.dumps({"info": {"features": features}})}), "test", features)
    report = evaluate(folder, tmp_path / "conll", threads=1)
    assert report.eval_data["split"] == "test" and report.columns["label"] == "ner_tags"
    assert report.eval_data["labels"]["how"] == ["class-names"]
    assert _row(report, "ort-fp32").value == pytest.approx(expected, abs=1e-9)


def test_squad_parquet_with_nested_answers(tiny_converted, tmp_path):
    from inferforge.artifacts import load
    from inferforge.evaluate import evaluate

    _, folder = tiny_converted("question-answering")
    model = load(folder, "ort-fp32")
    context = "Alice met Bob in Paris last summer and Paris is the capital of France"
    questions = ["who met Bob", "where did Alice meet Bob", "what is the capital of France"]
    answers = [a["answer"] for a in model.predict(questions, [context] * 3)]
    assert all(a.strip() for a in answers), answers
    gold = [{"text": ["zzz", answers[0]], "answer_start": [0, 0]}, {"text": ["zzz"], "answer_start": [0]},
            {"text": [answers[2]], "answer_start": [0]}]
    path = tmp_path / "validation-00000-of-00001.parquet"
    _hf_parquet(path, {"id": ["a", "b", "c"], "title": ["t"] * 3, "context": [context] * 3, "question": questions,
                       "answers": gold},
                {"answers": {"feature": {"text": {"dtype": "string", "_type": "Value"},
                                         "answer_start": {"dtype": "int32", "_type": "Value"}}, "_type": "Sequence"}})
    report = evaluate(folder, path, threads=1)
    assert (report.columns["text"], report.columns["pair"], report.columns["label"]) == ("question", "context", "answers")
    assert _row(report, "ort-fp32").metrics["exact_match"] == pytest.approx(200.0 / 3)


def _bad_parquet(tmp_path, case):
    features = {"text": {"dtype": "string", "_type": "Value"}, "label": _class_label(["neg", "pos", "neutral"])}
    path = tmp_path / f"{case}.parquet"
    if case == "no-label":
        _hf_parquet(path, {"text": ["a"], "stars": [1]}, {})
    elif case == "out-of-range":
        _hf_parquet(path, {"text": ["a", "b"], "label": [0, 3]}, features)
    elif case == "unknown-class":
        _hf_parquet(path, {"text": ["a", "b"], "label": [1, 2]}, features)
    elif case == "corrupt":
        _hf_parquet(path, {"text": ["a"], "label": [1]}, features)
        path.write_bytes(path.read_bytes()[:-30])
    elif case == "missing-split":
        path = tmp_path / "repo"
        (path / "data").mkdir(parents=True)
        _hf_parquet(path / "data" / "train-00000-of-00001.parquet", {"text": ["a"], "label": [1]}, features)
        _hf_parquet(path / "data" / "test-00000-of-00001.parquet", {"text": ["a"], "label": [1]}, features)
    return path


@pytest.mark.parametrize("case,extra,message", [
    ("missing-split", ["--eval-split", "validation"], "has no split 'validation' (splits: test, train); name one of "
                                                      "them with --eval-split"),
    ("no-label", [], "no-label.parquet has no label column (columns found: text, stars; looked for label"),
    ("out-of-range", [], "Label id 3 at row index 1 of"),
    ("unknown-class", [], "Class 'neutral' (id 2 of column 'label') at row index 1 of"),
    ("corrupt", [], "corrupt.parquet is not a readable Parquet file"),
])
def test_bad_parquet_and_folders_exit_2_in_one_sentence(tiny_converted, tmp_path, case, extra, message):
    _, folder = tiny_converted("text-classification")
    result = _cli("evaluate", folder, _bad_parquet(tmp_path, case), *extra)
    stderr = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert message in stderr and "Traceback" not in result.stderr
    assert stderr.count(". ") == 0  # one sentence


def _cli_to_pipe(*args):
    """The command as a script or CI runs it: stdout and stderr are pipes and COLUMNS is not set."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "inferforge.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)


def test_output_to_a_pipe_keeps_table_rows_and_errors_on_one_line(tiny_converted, tmp_path):
    _, folder = tiny_converted("token-classification")
    words = ["Alice", "met", "Bob", "in", "Paris"]
    data = tmp_path / "a-folder-name-long-enough-to-push-the-error-past-eighty-columns" / "ner.conll"
    data.parent.mkdir()
    data.write_text("".join(f"{w}\tO\n" for w in words))
    result = _cli_to_pipe("evaluate", folder, data, "--threads", "1")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("| variant |"))
    assert header == ("| variant | precision | entity_f1 | entity_precision | entity_recall | "
                      "change in entity_f1 (points) |")  # 96 columns, one line
    assert any(line.startswith("| ort-fp32 | fp32 |") and line.endswith("| reference |")
               for line in result.stdout.splitlines())
    data.write_text("".join(f"{w}\tB-ORGANISATION\n" for w in words))
    result = _cli_to_pipe("evaluate", folder, data, "--threads", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: None of the entity types of {data} (ORGANISATION) is one the model tags "
                                    f"(PER, LOC), e.g. tag 'B-ORGANISATION' at line 1 of {data}; evaluate on data "
                                    f"labelled with the model's entity types.")
    assert result.stderr.count("\n") == 1 and len(result.stderr) > 160  # one line, however long


def test_evaluate_command_reads_short_label_names_from_jsonl(tiny_converted, tmp_path):
    _, folder = tiny_converted("text-classification")  # NEGATIVE / POSITIVE
    path = tmp_path / "imdb.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in
                            [("a great film", "pos"), ("a dull film", "neg"), ("fine acting", "pos")]))
    result = _cli_to_pipe("evaluate", folder, path, "--threads", "1", "--json", tmp_path / "scores.json")
    assert result.returncode == 0, result.stderr
    assert ("note: label names matched to the model's ignoring punctuation or as a prefix: pos = POSITIVE, "
            "neg = NEGATIVE") in result.stdout.splitlines()
    assert json.loads((tmp_path / "scores.json").read_text())["variants"][0]["rows"] == 3


# Word-level tags on the tokenizers multilingual NER models use: SentencePiece ("▁re" starts on the space before
# "rejects", a lone "▁" opens "German") and byte-level BPE (a lone zero-width "Ġ"). The reference is PyTorch's
# prediction on the first token of each word as the Hugging Face tokenizer's own word_ids() number them.
NER_SENTENCES = [["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
                 ["Peter", "Blackburn"], ["Alice", "met", "Bob", "in", "Paris", ",", "1996", "."],
                 ["naïve", "café", "über", "Zürich"]]


@pytest.mark.parametrize("arch", ["xlm-roberta", "modernbert"])
def test_word_tags_are_the_first_subword_of_each_word_on_sentencepiece_and_bpe(tmp_path, arch):
    import torch
    import transformers

    import inferforge
    from inferforge.evaluate import evaluate
    from inferforge.metrics import entities
    from tiny_models import LABELS, build_tiny_model

    hf = build_tiny_model(tmp_path / "hf", arch, "token-classification")
    folder = tmp_path / "out"
    inferforge.convert(str(hf), "token-classification", folder, variants="ort-fp32", shapes="1x8", nb_measures=2,
                       warmup=1, threads=1)
    labels = LABELS["token-classification"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    model = transformers.AutoModelForTokenClassification.from_pretrained(hf).eval()
    batch = tokenizer([" ".join(words) for words in NER_SENTENCES], padding=True, return_tensors="pt")
    with torch.no_grad():
        gold = _first_token_tags(batch, model(**batch).logits, NER_SENTENCES, labels)
    assert sum(len(entities(tags)) for tags in gold) >= 5
    data = _jsonl(tmp_path / "wikiann.jsonl", [{"tokens": w, "ner_tags": t} for w, t in zip(NER_SENTENCES, gold)])
    assert _row(evaluate(folder, data, threads=1), "ort-fp32").metrics == {
        "entity_f1": 100.0, "entity_precision": 100.0, "entity_recall": 100.0}


def test_boolq_question_and_passage_are_read_as_a_pair(tmp_path):
    import torch
    import transformers

    import inferforge
    from inferforge.evaluate import evaluate

    # Every question with every passage, on a tiny classifier whose bias puts half of these pairs in each class
    # (a random one says NEGATIVE to everything): the question alone then answers otherwise on some rows.
    questions, passages = [a for a, _ in PAIRS for _ in PAIRS], [b for _ in PAIRS for _, b in PAIRS]
    hf = build_tiny_model(tmp_path / "hf", "bert", "text-classification")
    _, pair_out = _torch_logits(hf, "AutoModelForSequenceClassification", questions, passages)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(hf)
    with torch.no_grad():
        model.classifier.bias[1] -= (pair_out.logits[:, 1] - pair_out.logits[:, 0]).median() - 1e-4
    model.save_pretrained(hf)
    inferforge.convert(str(hf), "text-classification", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                       nb_measures=1, warmup=0, threads=1)
    _, pair_out = _torch_logits(hf, "AutoModelForSequenceClassification", questions, passages)
    _, alone_out = _torch_logits(hf, "AutoModelForSequenceClassification", questions)
    gold = pair_out.logits.argmax(-1).tolist()
    alone = alone_out.logits.argmax(-1).tolist()
    assert 0 < sum(gold) < len(gold) and gold != alone  # the question alone would score differently
    path = tmp_path / "boolq.jsonl"
    _jsonl(path, [{"question": q, "passage": p, "idx": i, "label": g}
                  for i, (q, p, g) in enumerate(zip(questions, passages, gold))])
    report = evaluate(tmp_path / "out", path, threads=1)
    assert (report.columns["text"], report.columns["pair"]) == ("question", "passage")
    assert _row(report, "ort-fp32").value == 100.0


def test_rank_correlation_needs_two_gold_scores_and_a_collapsed_variant_scores_zero(tiny_converted, tmp_path):
    from inferforge.artifacts import load
    from inferforge.errors import UserError
    from inferforge.evaluate import drop_points, evaluate, read_eval_set

    _, folder = tiny_converted("feature-extraction")
    rows = [{"sentence1": a, "sentence2": b, "label": 3.0} for a, b in PAIRS]
    with pytest.raises(UserError, match=r"Every score in column 'label' of .*sts\.jsonl is 3: a rank correlation "
                                        r"needs at least two different gold scores"):
        evaluate(folder, _jsonl(tmp_path / "sts.jsonl", rows), threads=1)
    gold = [5.0, 0.4, 3.2, 1.0, 2.2, 4.8, 0.0, 3.9]
    model = load(folder, "ort-fp32")
    eval_set = read_eval_set(_jsonl(tmp_path / "sts2.jsonl", [{**r, "label": g} for r, g in zip(rows, gold)]),
                             model.task, model.encoder, None)
    outputs = eval_set.outputs(model.engine)
    reference = eval_set.score_outputs(outputs)
    collapsed = [{**out, "sentence_embedding": np.ones_like(out["sentence_embedding"])} for out in outputs]
    score = eval_set.score_outputs(collapsed)  # every cosine 1.0: no ranking at all (was NaN, inside any budget)
    assert score.metrics == {"spearman": 0.0, "pearson": 0.0}
    assert drop_points(reference, score) == pytest.approx(reference.value)


def test_one_output_model_with_class_names_says_it_wants_numbers(tmp_path):
    import torch
    import transformers

    import inferforge
    from inferforge.errors import UserError
    from inferforge.evaluate import evaluate
    from tiny_models import build_tiny_model

    base = build_tiny_model(tmp_path / "base", "bert", "text-classification")
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=1, id2label={0: "RELEVANCE"}, label2id={"RELEVANCE": 0}, ignore_mismatched_sizes=True)
    model.save_pretrained(tmp_path / "hf")
    transformers.AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "hf")
    inferforge.convert(str(tmp_path / "hf"), "text-classification", tmp_path / "out", variants="ort-fp32",
                       shapes="1x8", nb_measures=2, warmup=1, threads=1)
    path = tmp_path / "imdb.csv"
    path.write_text("text,label\nthe movie was great,positive\na terrible boring film,negative\n")
    with pytest.raises(UserError) as error:
        evaluate(tmp_path / "out", path, threads=1)
    assert str(error.value) == ("Label 'positive' at line 2 of " + str(path) + " is not a number; the model has one "
                                "output (RELEVANCE), so each row's label is a number (a relevance grade, a regression "
                                "target) ranked against it.")


def test_evaluate_json_into_a_new_folder_and_a_folder_as_the_file(tiny_converted, tmp_path):
    _, folder = tiny_converted("text-classification")
    data = tmp_path / "sst2.tsv"
    data.write_text("sentence\tlabel\tidx\nthe movie was great\t1\t0\na terrible boring film\t0\t1\n")
    target = tmp_path / "results" / "run1" / "scores.json"
    result = _cli_to_pipe("evaluate", folder, data, "--threads", "1", "--json", target)
    assert result.returncode == 0, result.stderr  # was a FileNotFoundError traceback after every variant ran
    assert json.loads(target.read_text())["variants"][0]["rows"] == 2
    assert [p.name for p in target.parent.iterdir()] == ["scores.json"]
    result = _cli_to_pipe("evaluate", folder, data, "--threads", "1", "--json", target.parent)
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr.strip() == (f"error: --json {target.parent} is a folder; name the JSON file to write, "
                                     f"e.g. {target}.")
    # A place no file can be written to is said before the variants run (it was said after all of them), and no
    # folder is made for it.
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    result = _cli_to_pipe("evaluate", folder, data, "--threads", "1", "--json", blocked / "sub" / "scores.json")
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stdout == "", result.stderr
    assert result.stderr.startswith(f"error: Cannot write --json {blocked / 'sub' / 'scores.json'} (")
    assert blocked.read_text() == "not a folder" and not list(tmp_path.glob(".inferforge-probe-*"))


def test_multi_label_scores_against_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    from inferforge.metrics import multi_label_scores

    rng = np.random.default_rng(1)
    gold = rng.random((40, 5)) < 0.3
    predicted = gold ^ (rng.random((40, 5)) < 0.2)
    gold[:, 4] = predicted[:, 4] = False  # a class nobody has: left out of the macro average, as macro_f1 does
    found = multi_label_scores(gold, predicted)
    assert found.micro_f1 == pytest.approx(metrics.f1_score(gold, predicted, average="micro"), abs=1e-12)
    assert found.macro_f1 == pytest.approx(metrics.f1_score(gold, predicted, average="macro", labels=[0, 1, 2, 3]),
                                           abs=1e-12)
    assert found.subset_accuracy == pytest.approx(metrics.accuracy_score(gold, predicted), abs=1e-12)


def test_multi_label_data_scores_label_sets_by_sigmoid(tmp_path):
    """go_emotions-style labels (a list of classes per row, none to all) on a multi-label model: a class is
    predicted where PyTorch's sigmoid passes 0.5; micro F1, macro F1 and subset accuracy from sklearn."""
    import torch

    import inferforge
    from inferforge.evaluate import evaluate

    metrics = pytest.importorskip("sklearn.metrics")
    names = ["anger", "joy", "sadness"]
    model, tokenizer = _multi_label_model(tmp_path, names, seed=1)
    inferforge.convert(str(tmp_path / "hf"), "text-classification", tmp_path / "out", variants="ort-fp32",
                       shapes="1x8", nb_measures=2, warmup=1, threads=1)
    texts = [a for a, _ in PAIRS] + [b for _, b in PAIRS]
    with torch.no_grad():
        predicted = torch.sigmoid(model(**tokenizer(texts, padding=True, return_tensors="pt")).logits).numpy() > 0.5
    gold = predicted.copy()
    gold[0, 0], gold[3, 1], gold[7] = ~gold[0, 0], ~gold[3, 1], False  # two classes flipped, one row with none
    expected = {"micro_f1": 100 * metrics.f1_score(gold, predicted, average="micro"),
                "macro_f1": 100 * metrics.f1_score(gold, predicted, average="macro",
                                                   labels=np.flatnonzero(gold.any(0) | predicted.any(0))),
                "subset_accuracy": 100 * metrics.accuracy_score(gold, predicted)}
    assert 0 < expected["micro_f1"] < 100 and expected["subset_accuracy"] == 100 * 13 / 16
    jsonl = _jsonl(tmp_path / "go_emotions.jsonl", [{"text": t, "labels": [names[c] if c % 2 else c for c in
                                                                           np.flatnonzero(g).tolist()]}
                                                    for t, g in zip(texts, gold)])
    csv = tmp_path / "go_emotions.csv"  # as to_csv writes a list column
    csv.write_text("text,labels\n" + "".join(f"{t},\"{np.flatnonzero(g).tolist()}\"\n" for t, g in zip(texts, gold)))
    # multi-hot vectors, one 0/1 per class (data prepared for training): [0, 1, 1] is joy and sadness, not ids 0 and 1
    multi_hot = _jsonl(tmp_path / "multi_hot.jsonl", [{"text": t, "labels": g.astype(int).tolist()}
                                                      for t, g in zip(texts, gold)])
    for path in (jsonl, csv, multi_hot):
        report = evaluate(tmp_path / "out", path, threads=1)
        assert report.metric == "micro_f1"
        assert _row(report, "ort-fp32").metrics == pytest.approx(expected, abs=1e-9)
        assert "multi-label" in report.eval_data["labels"]["note"]  # printed by evaluate and convert alike
    # one class per row, as lists: still sets for this multi-label model (its config says so)
    single = [[int(np.argmax(p))] for p in predicted]
    report = evaluate(tmp_path / "out", _jsonl(tmp_path / "one.jsonl", [{"text": t, "labels": c} for t, c in
                                                                         zip(texts, single)]), threads=1)
    assert report.metric == "micro_f1"
    one_hot = np.zeros_like(gold)
    one_hot[np.arange(len(single)), [c for c, in single]] = True
    assert _row(report, "ort-fp32").value == pytest.approx(100 * metrics.f1_score(one_hot, predicted, average="micro"))
    # convert reads the model's problem_type too: the same lists are label sets there
    result = inferforge.convert(str(tmp_path / "hf"), "text-classification", tmp_path / "out2", variants="ort-fp32",
                                shapes="1x8", nb_measures=1, warmup=0, threads=1, eval_data=tmp_path / "one.jsonl")
    assert result.report["accuracy"]["metric"] == "micro_f1"
    assert result.row("ort-fp32").extra["accuracy"]["value"] == pytest.approx(_row(report, "ort-fp32").value)


def test_single_labels_written_as_lists_of_one_are_single_labels(tiny_converted, tmp_path):
    from inferforge.evaluate import evaluate

    hf, folder = tiny_converted("text-classification")
    _, out = _torch_logits(hf, "AutoModelForSequenceClassification", [a for a, _ in PAIRS])
    gold = [1 - p if i % 3 == 0 else p for i, p in enumerate(out.logits.argmax(-1).tolist())]
    expected = 100.0 * np.mean(np.array(gold) == out.logits.argmax(-1).numpy())
    path = _jsonl(tmp_path / "sst.jsonl", [{"text": a, "label": [g]} for (a, _), g in zip(PAIRS, gold)])
    report = evaluate(folder, path, threads=1)  # a softmax model: argmax, not a sigmoid per class
    assert report.metric == "accuracy" and _row(report, "ort-fp32").value == pytest.approx(expected)
    assert 0 < expected < 100


def _multi_label_model(tmp_path, names, *, seed):
    """A tiny BERT with a multi-label head over `names` (random weights from `seed`), saved with its tokenizer in
    tmp_path / "hf"; returns the model (in eval mode) and its tokenizer."""
    import torch
    import transformers

    base = build_tiny_model(tmp_path / "base", "bert", "text-classification")
    torch.manual_seed(seed)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
        problem_type="multi_label_classification", ignore_mismatched_sizes=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    model.save_pretrained(tmp_path / "hf")
    tokenizer.save_pretrained(tmp_path / "hf")
    return model, tokenizer


def _iob2(tags):
    """IO tags (I-PER I-PER O) as IOB2 (B-PER I-PER O), the scheme WikiANN and conll2003 write."""
    return [t if t == "O" else ("I-" if i and tags[i - 1] == t else "B-") + t[2:] for i, t in enumerate(tags)]


def test_iob2_data_on_a_model_that_tags_io_only(tmp_path):
    """A model tagging I-PER / I-LOC only (as camembert-ner) judged on IOB2 data (B-PER...): entities are compared,
    so B-PER, a tag the model lacks for a type it knows, is read as written (was "Unknown tag 'B-PER'")."""
    import torch
    import transformers

    import inferforge
    from inferforge.evaluate import evaluate
    from inferforge.metrics import entities, entity_scores
    from tiny_models import build_tiny_model

    labels = ["O", "I-PER", "I-LOC"]
    base = build_tiny_model(tmp_path / "base", "bert", "token-classification")
    torch.manual_seed(2)
    model = transformers.AutoModelForTokenClassification.from_pretrained(
        base, num_labels=3, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        ignore_mismatched_sizes=True).eval()
    model.save_pretrained(tmp_path / "hf")
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    tokenizer.save_pretrained(tmp_path / "hf")
    inferforge.convert(str(tmp_path / "hf"), "token-classification", tmp_path / "out", variants="ort-fp32",
                       shapes="1x8", nb_measures=2, warmup=1, threads=1)
    batch = tokenizer(NER_SENTENCES, is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        predicted = _first_token_tags(batch, model(**batch).logits, NER_SENTENCES, labels)
    gold = [_iob2(tags) for tags in predicted]
    assert any(t.startswith("B-") for tags in gold for t in tags) and sum(map(len, map(entities, gold))) >= 3
    path = _jsonl(tmp_path / "wikiann.jsonl", [{"tokens": w, "ner_tags": t} for w, t in zip(NER_SENTENCES, gold)])
    report = evaluate(tmp_path / "out", path, threads=1)
    assert _row(report, "ort-fp32").value == 100.0
    assert report.messages[-1].startswith("tags the model does not have, for entity types it has, are compared as "
                                          "written (entities, not tags, are scored): B-")
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]  # WikiANN's ner_tags: ids of a Sequence of ClassLabel
    _hf_parquet(tmp_path / "test.parquet", {"tokens": NER_SENTENCES, "ner_tags": [[names.index(t) for t in g] for g in gold]},
                {"ner_tags": {"feature": _class_label(names), "_type": "Sequence"}})
    assert _row(evaluate(tmp_path / "out", tmp_path / "test.parquet", threads=1), "ort-fp32").value == 100.0
    gold[0] = ["B-PER"] + ["O"] * (len(gold[0]) - 1)
    expected = 100 * entity_scores(gold, predicted).f1
    assert 0 < expected < 100
    conll = tmp_path / "wikiann.iob2"
    conll.write_text("\n".join("".join(f"{w} {t}\n" for w, t in zip(ws, g)) for ws, g in zip(NER_SENTENCES, gold)))
    assert _row(evaluate(tmp_path / "out", conll, threads=1), "ort-fp32").value == pytest.approx(expected, abs=1e-9)
    conll.write_text("Paris B-ORG\n")  # data of types the model does not know at all is still refused
    with pytest.raises(Exception, match=r"None of the entity types of .* \(ORG\) is one the model tags \(PER, LOC\), "
                                        r"e.g. tag 'B-ORG' at line 1"):
        evaluate(tmp_path / "out", conll, threads=1)


def test_a_model_with_generic_tag_names_is_chunked_by_the_datasets_tag_names(tmp_path):
    """An NER model whose config names its ids LABEL_0... and a dataset whose ClassLabel names them (B-PER...):
    entities are chunked by the dataset's names (was LABEL_1 LABEL_2: two one-word entities of two 'types')."""
    import torch
    import transformers

    import inferforge
    from inferforge.evaluate import evaluate
    from inferforge.metrics import entity_scores
    from tiny_models import build_tiny_model

    hf = build_tiny_model(tmp_path / "hf", "bert", "token-classification")
    config = json.loads((hf / "config.json").read_text())
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(5)}
    config["label2id"] = {f"LABEL_{i}": i for i in range(5)}
    (hf / "config.json").write_text(json.dumps(config))
    inferforge.convert(str(hf), "token-classification", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                       nb_measures=2, warmup=1, threads=1)
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]  # the dataset's ClassLabel, in the model's id order
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    model = transformers.AutoModelForTokenClassification.from_pretrained(hf).eval()
    batch = tokenizer(NER_SENTENCES, is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        predicted = _first_token_tags(batch, model(**batch).logits, NER_SENTENCES, names)
    gold = [list(tags) for tags in predicted]
    gold[0][:4] = ["B-PER", "I-PER", "B-LOC", "I-LOC"]
    gold[1] = ["B-PER", "I-PER"]
    expected = 100 * entity_scores(gold, predicted).f1
    generic = [[f"LABEL_{names.index(t)}" for t in tags] for tags in gold + predicted]
    assert expected != 100 * entity_scores(generic[:len(gold)], generic[len(gold):]).f1
    _hf_parquet(tmp_path / "test.parquet", {"tokens": NER_SENTENCES, "ner_tags": [[names.index(t) for t in g] for g in gold]},
                {"ner_tags": {"feature": _class_label(names), "_type": "Sequence"}})
    report = evaluate(tmp_path / "out", tmp_path / "test.parquet", threads=1)
    assert _row(report, "ort-fp32").value == pytest.approx(expected, abs=1e-9)


CONLL2003_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def test_gold_entity_types_the_model_does_not_tag_count_as_missed(tiny_converted, tmp_path):
    """Gold B-MISC for a model tagging PER and LOC only (was "Unknown tag 'B-MISC'"): scored as seqeval does, the
    MISC entities are missed: precision as when those words are tagged O, recall over the MISC entities too; the
    report names the type. Data none of whose types the model tags is refused in one sentence."""
    from inferforge.evaluate import evaluate
    from inferforge.metrics import entities

    hf, folder = tiny_converted("token-classification")
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]  # tests/tiny_models.py LABELS
    predicted = _torch_word_tags(hf, NER_SENTENCES, labels)
    misc = {0: 1, 2: 3}  # sentence -> first of two words tagged B-MISC I-MISC
    without, gold = [list(tags) for tags in predicted], [list(tags) for tags in predicted]
    for row, start in misc.items():
        without[row][start:start + 2] = ["O", "O"]
        gold[row][start:start + 2] = ["B-MISC", "I-MISC"]

    def scored(tags, name):
        path = _jsonl(tmp_path / name, [{"tokens": w, "ner_tags": t} for w, t in zip(NER_SENTENCES, tags)])
        report = evaluate(folder, path, threads=1)
        return report, _row(report, "ort-fp32").metrics

    _, base = scored(without, "without.jsonl")
    report, metrics = scored(gold, "misc.jsonl")
    entity_count = sum(len(entities(tags)) for tags in without)
    hits = base["entity_recall"] / 100 * entity_count
    assert hits > 0 and metrics["entity_recall"] < base["entity_recall"]
    assert metrics["entity_precision"] == pytest.approx(base["entity_precision"], abs=1e-9)
    assert metrics["entity_recall"] == pytest.approx(100 * hits / (entity_count + len(misc)), abs=1e-9)
    assert metrics["entity_f1"] == pytest.approx(100 * entity_scores(gold, predicted).f1, abs=1e-9)
    assert report.eval_data["labels"]["entity_types_missing_from_model"] == ["MISC"]
    assert report.messages[-1].startswith("gold entity types the model does not tag: MISC (")
    # conll2003's ner_tags: ids of a Sequence of ClassLabel whose names include B-MISC / I-MISC (ids 7, 8)
    _hf_parquet(tmp_path / "test.parquet", {"tokens": NER_SENTENCES,
                                            "ner_tags": [[CONLL2003_TAGS.index(t) for t in g] for g in gold]},
                {"ner_tags": {"feature": _class_label(CONLL2003_TAGS), "_type": "Sequence"}})
    report = evaluate(folder, tmp_path / "test.parquet", threads=1)
    assert _row(report, "ort-fp32").metrics == pytest.approx(metrics, abs=1e-9)
    assert "7 B-MISC -> as written" in report.messages[-1]
    # no gold type is one of the model's: another model's data
    other = _jsonl(tmp_path / "orgs.jsonl", [{"tokens": ["EU", "rejects", "German"], "ner_tags": ["B-ORG", "O", "B-MISC"]}])
    result = _cli("evaluate", folder, "--data", other, "--threads", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("None of the entity types of " in result.stderr and "(ORG, MISC) is one the model tags (PER, LOC), e.g. "
            "tag 'B-ORG' at line 1 of" in " ".join(result.stderr.split()))


SPAN_SENTENCES = [("Alice met Bob in Paris, 1996.", ["Alice", "met", "Bob", "in", "Paris", ",", "1996", "."]),
                  ("Peter Blackburn's (BBC) report.", ["Peter", "Blackburn", "'", "s", "(", "BBC", ")", "report", "."]),
                  ("EU rejects German call to boycott British lamb.",
                   ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]),
                  ("Dr. Jean-Luc Picard met Starfleet's crew.",
                   ["Dr", ".", "Jean", "-", "Luc", "Picard", "met", "Starfleet", "'", "s", "crew", "."])]


def test_entity_spans_from_doccano_scored_as_words(tiny_converted, tmp_path):
    """doccano / spaCy character spans on texts with punctuation (was "has 5 words but 2 tags"): the spans of the
    model's own entities (PyTorch, on the words split at spaces and punctuation) score 100; spans with one entity
    left out and one of another type score what entity F1 gives the same words."""
    from inferforge.evaluate import evaluate
    from inferforge.metrics import entities

    hf, folder = tiny_converted("token-classification")
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]  # tests/tiny_models.py LABELS
    predicted = _torch_word_tags(hf, [words for _, words in SPAN_SENTENCES], labels)
    offsets = []  # each word's characters in its text
    for text, words in SPAN_SENTENCES:
        found, position = [], 0
        for word in words:
            position = text.index(word, position)
            found.append((position, position + len(word)))
            position += len(word)
        offsets.append(found)
    found_entities = [entities(tags) for tags in predicted]
    assert sum(map(len, found_entities)) >= 4

    def spans(row_entities):
        return [[[where[first][0], where[last][1], kind] for kind, first, last in row]
                for where, row in zip(offsets, row_entities)]

    rows = [{"id": i, "text": text, "label": s} for i, ((text, _), s) in enumerate(zip(SPAN_SENTENCES, spans(found_entities)))]
    report = evaluate(folder, _jsonl(tmp_path / "doccano.jsonl", rows), threads=1)
    assert _row(report, "ort-fp32").metrics == {"entity_f1": 100.0, "entity_precision": 100.0, "entity_recall": 100.0}
    assert report.messages == ["entities given as character spans were read as words (split at spaces and punctuation) "
                               "tagged B-/I- where they overlap an entity"]
    changed = [list(row) for row in found_entities]
    dropped, retyped = [i for i, row in enumerate(changed) if row][::-1][:2]
    changed[dropped] = changed[dropped][1:]  # one entity left out
    kind, first, last = changed[retyped][0]
    changed[retyped][0] = ("LOC" if kind == "PER" else "PER", first, last)  # one of another type
    gold = [["O"] * len(words) for _, words in SPAN_SENTENCES]
    for tags, row in zip(gold, changed):
        for kind, first, last in row:
            tags[first:last + 1] = [f"B-{kind}"] + [f"I-{kind}"] * (last - first)
    expected = entity_scores(gold, predicted)
    assert 0 < expected.f1 < 1
    rows = [{"text": text, "entities": [{"start_offset": a, "end_offset": b, "label": k} for a, b, k in s]}
            for (text, _), s in zip(SPAN_SENTENCES, spans(changed))]
    metrics = _row(evaluate(folder, _jsonl(tmp_path / "entities.jsonl", rows), threads=1), "ort-fp32").metrics
    assert metrics == pytest.approx({"entity_f1": 100 * expected.f1, "entity_precision": 100 * expected.precision,
                                     "entity_recall": 100 * expected.recall}, abs=1e-9)


def test_csv_with_a_quote_left_open_exits_2_naming_its_line(tiny_converted, tmp_path):
    """A CSV cell that opens a quote and never closes it: one sentence naming its line, exit 2 (was "'label' is empty
    at line 6"; with a later quote, fewer rows scored without a word); once closed, the rows score as PyTorch does."""
    hf, folder = tiny_converted("text-classification")
    texts = ["the movie was great", "bad start, worse end", "a fine summer evening", "the soup was cold",
             "it rained all day"]
    _, out = _torch_logits(hf, "AutoModelForSequenceClassification", texts)
    predicted = out.logits.argmax(-1).tolist()
    gold = [p if i % 2 else 1 - p for i, p in enumerate(predicted)]
    cells = [f"{t},{['NEGATIVE', 'POSITIVE'][g]}\n" for t, g in zip(texts, gold)]
    broken = tmp_path / "broken.csv"
    broken.write_text("text,label\n" + "".join(cells[:1] + ['"' + cells[1]] + cells[2:]))
    result = _cli("evaluate", folder, "--data", broken, "--threads", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (f'Line 3 of {broken} opens a quote (") that is never closed, so the lines after it would be read as one '
            f"cell" in " ".join(result.stderr.split()))
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(broken.read_text().replace("worse end,", 'worse end",'))
    result = _cli("evaluate", folder, "--data", fixed, "--threads", "1", "--json", tmp_path / "scores.json")
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())["variants"][0]
    assert scores["rows"] == 5 and scores["metrics"]["accuracy"] == pytest.approx(100 * np.mean(np.array(gold) == predicted))


def test_snli_rows_without_gold_label_left_out_of_the_score_and_said(tiny_converted, tmp_path):
    """SNLI's validation and test splits hold rows labelled -1 (datasets) or '-' (its own files) among labelled ones:
    they are left out, as SNLI's evaluation does, and the output says how many."""
    from inferforge.evaluate import evaluate

    hf, folder = tiny_converted("text-classification")
    _, out = _torch_logits(hf, "AutoModelForSequenceClassification", [a for a, _ in PAIRS], [b for _, b in PAIRS])
    predicted = out.logits.argmax(-1).tolist()
    gold = [1 - p if i == 0 else p for i, p in enumerate(predicted)]
    cells = [-1 if i in (3, 6) else g for i, g in enumerate(gold)]
    path = _jsonl(tmp_path / "snli.jsonl", [{"premise": a, "hypothesis": b, "label": c} for (a, b), c in zip(PAIRS, cells)])
    report = evaluate(folder, path, threads=1)
    kept = [i for i in range(len(PAIRS)) if i not in (3, 6)]
    assert _row(report, "ort-fp32").rows == 6
    assert _row(report, "ort-fp32").value == pytest.approx(100.0 * 5 / 6)
    assert report.eval_data["rows"] == len(kept)
    assert any("are left out: 2 of the 8 rows" in m for m in report.messages)
    assert "are left out: 2 of the 8 rows" in report.eval_data["labels"]["note"]  # convert prints and keeps it too


def test_words_past_the_models_length_are_said_to_count_as_missed(tiny_converted, tmp_path):
    from inferforge.evaluate import evaluate

    _, folder = tiny_converted("token-classification")
    long = ("the quick brown fox jumps over the lazy dog " * 12).split() + ["Alice", "met", "Bob"]
    rows = [{"tokens": long, "ner_tags": ["O"] * (len(long) - 3) + ["B-PER", "O", "B-PER"]},
            {"tokens": ["Alice", "met", "Bob"], "ner_tags": ["B-PER", "O", "B-PER"]}]
    report = evaluate(folder, _jsonl(tmp_path / "long.jsonl", rows), threads=1)
    note = report.eval_data["labels"]["note"]
    assert "1 of the 2 texts are longer than the model's 64 tokens (the first at line 1 of " in note
    assert "so the 2 gold entities there count as missed" in note
    assert not any("longer than" in m for m in evaluate(folder, _jsonl(tmp_path / "short.jsonl", rows[1:]),
                                                          threads=1).messages)


def test_sentence_embedding_triplets_scored_by_triplet_accuracy(tiny_converted, tmp_path):
    """Triplets without a score (sentence-transformers' all-nli: anchor, positive, negative; MS MARCO: query, positive,
    negative) were 'no text column'. Scored as sentence-transformers' TripletEvaluator scores them: the share of
    triplets whose anchor is closer (cosine) to the positive than to the negative, against PyTorch mean pooling."""
    from inferforge.evaluate import evaluate

    hf, folder = tiny_converted("feature-extraction")
    pooled = _torch_mean_pooling(hf)

    def embed(texts):
        vectors = pooled(texts)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    anchors = [x for x, _ in PAIRS]
    positives = [y for _, y in PAIRS]
    negatives = positives[3:] + positives[:3]
    a, p, n = embed(anchors), embed(positives), embed(negatives)
    margins = (a * p).sum(1) - (a * n).sum(1)
    assert np.abs(margins).min() > 1e-4  # no near-tie that a rounding difference flips
    expected = 100.0 * np.mean(margins > 0)
    assert 0 < expected < 100
    path = tmp_path / "triplets.jsonl"
    _jsonl(path, [{"query": x, "positive": y, "negative": z} for x, y, z in zip(anchors, positives, negatives)])
    report = evaluate(folder, path, threads=1)
    assert report.metric == "triplet_accuracy" and report.eval_data["columns"]["triplets"] is True
    assert (report.columns["text"], report.columns["pair"], report.columns["label"]) == ("query", "positive", "negative")
    assert _row(report, "ort-fp32").value == pytest.approx(expected, abs=1e-9)
    assert any("share of triplets whose anchor embedding is closer" in m for m in report.messages)
    _jsonl(path, [{"anchor": "a", "positive": "b", "negative": ["c", "d"]}])
    result = _cli("evaluate", str(folder), str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Column 'negative' at line 1 of" in result.stderr and "holds list, not text" in result.stderr


def test_evaluate_command_on_0_1_columns_names_only_the_models_columns(tmp_path):
    """`inferforge evaluate` on a Jigsaw-style CSV (a 0/1 column per class, a blank cell, a -1 row, a column the model
    has no class for) with a converted multi-label model: its column line names the three columns of the model's
    classes (it listed every 0/1 column), the note counts the rows left out, micro F1 is transformers' on the kept
    rows; a -1 beside 0/1 exits 2 in one line."""
    import torch

    import inferforge

    names = ["toxic", "severe_toxic", "obscene"]
    model, tokenizer = _multi_label_model(tmp_path, names, seed=3)
    folder = tmp_path / "converted"
    inferforge.convert(str(tmp_path / "hf"), "text-classification", folder, variants="ort-fp32", shapes="1x16",
                       nb_measures=2, warmup=1, threads=1)
    texts = [a for a, _ in PAIRS] + [b for _, b in PAIRS]
    with torch.no_grad():
        predicted = torch.sigmoid(model(**tokenizer(texts, padding=True, return_tensors="pt")).logits).numpy() > 0.5
    gold = predicted.copy()
    gold[0, 0], gold[3, 1], gold[9] = ~gold[0, 0], ~gold[3, 1], ~gold[9]
    cells = [[str(int(v)) for v in row] for row in gold]
    cells[4][2] = ""  # a class nobody annotated
    cells[6] = ["-1"] * 3  # a row without gold (Jigsaw's test labels)
    path = tmp_path / "jigsaw.csv"
    path.write_text("id,comment_text,toxic,severe_toxic,obscene,threat\n" + "".join(
        f"r{i},{t},{','.join(c)},{i % 2}\n" for i, (t, c) in enumerate(zip(texts, cells))))
    kept = [i for i in range(len(texts)) if i not in (4, 6)]
    g, p = gold[kept], predicted[kept]
    tp, fp, fn = (g & p).sum(), (~g & p).sum(), (g & ~p).sum()
    expected = 100.0 * 2 * tp / (2 * tp + fp + fn)
    assert 0 < expected < 100
    result = _cli_to_pipe("evaluate", folder, path, "--threads", "1", "--json", tmp_path / "scores.json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"text-classification on {path} (14 rows), reference ort-fp32:"
    assert lines[1] == ("columns: text 'comment_text', labels in one 0/1 column per class of the model (toxic, "
                        "severe_toxic, obscene) (detected: text), read as CSV")
    assert "14 of the 16 rows are scored" in lines[2]
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["variants"][0]["value"] == pytest.approx(expected, abs=1e-6)
    cells[2][1] = "-1"
    path.write_text("id,comment_text,toxic,severe_toxic,obscene,threat\n" + "".join(
        f"r{i},{t},{','.join(c)},{i % 2}\n" for i, (t, c) in enumerate(zip(texts, cells))))
    result = _cli_to_pipe("evaluate", folder, path, "--threads", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: Column 'severe_toxic' (class 'severe_toxic') is -1 at line 4 of {path}, "
                                    f"where the row's other class columns hold 0/1")


def _sentiment_gold(hf, texts):
    """transformers' argmax class of each text on the tiny sentiment model, gold labels that differ from it on every
    third row, and the accuracy of the one against the other, counted here."""
    _, out = _torch_logits(hf, "AutoModelForSequenceClassification", texts)
    predicted = out.logits.argmax(-1).tolist()
    gold = [1 - p if i % 3 == 0 else p for i, p in enumerate(predicted)]
    expected = 100.0 * np.mean(np.array(gold) == np.array(predicted))
    assert 0 < expected < 100
    return gold, expected


ACCENTED = ["Un café crème, très “bon”", "naïve plot – dull", "Über gut für 5 €", "mañana será mejor",
            "œuvre d’art", "plain ascii text", "señor Müller’s «idée»", "déjà vu"]


def test_files_saved_by_excel_and_notepad_in_cp1252_or_utf16_are_read(tiny_converted, tmp_path):
    """Excel's plain 'CSV' on Western European Windows is cp1252, its 'Unicode Text' a UTF-16 TSV named .txt, and a
    blank row or text cell is common in a spreadsheet: all three were refused ('not UTF-8', 'a .txt file only in CoNLL
    layout', "Column 'text' is empty"). Read, said in notes, and scored as transformers' argmax; damaged UTF-8 exits 2
    in one sentence."""
    hf, folder = tiny_converted("text-classification")
    names = ["negative", "positive"]
    gold, expected = _sentiment_gold(hf, ACCENTED)
    cp1252 = tmp_path / "reviews.csv"  # with CRLF, as Excel writes it
    cp1252.write_bytes("text,label\r\n".encode() + "".join(f"\"{t}\",{names[g]}\r\n" for t, g in zip(ACCENTED, gold))
                       .encode("cp1252"))
    unicode_text = tmp_path / "reviews.txt"
    unicode_text.write_bytes(("Text\tSentiment\r\n" + "".join(f"{t}\t{names[g].upper()}\r\n" for t, g in
                                                           zip(ACCENTED, gold))).encode("utf-16"))
    for path, note in ((cp1252, f"note: {cp1252} is not UTF-8 (byte 0xE9 on line 2 is not), so it is read as "
                                f"Windows-1252 (cp1252, Western European)"),
                       (unicode_text, f"note: {unicode_text} holds tab-separated columns under a header line (as Excel "
                                      f"saves a sheet as Unicode Text), so it is read as TSV")):
        result = _cli_to_pipe("evaluate", folder, path, "--threads", "1", "--json", tmp_path / "scores.json")
        assert result.returncode == 0, result.stderr
        assert note in result.stdout
        scores = json.loads((tmp_path / "scores.json").read_text())
        assert scores["variants"][0]["metrics"]["accuracy"] == pytest.approx(expected, abs=1e-9)
        assert scores["eval_data"]["rows"] == len(ACCENTED)
    # blank texts: a blank row between the rows and empty text cells are left out, counted, and the rest scored
    blank = tmp_path / "blank.csv"
    rows = [f"\"{t}\",{names[g]}\n" for t, g in zip(ACCENTED, gold)]
    rows[2:2] = [",positive\n", "   ,negative\n", ",\n"]
    blank.write_text("text,label\n" + "".join(rows))
    result = _cli_to_pipe("evaluate", folder, blank, "--threads", "1", "--json", tmp_path / "scores.json")
    assert result.returncode == 0, result.stderr
    assert (f"note: 2 rows have no text (a blank 'text' cell, the first at line 4 of {blank}), so they are left out: "
            f"8 of the 10 rows of {blank} are read") in result.stdout
    assert json.loads((tmp_path / "scores.json").read_text())["variants"][0]["metrics"]["accuracy"] == pytest.approx(
        expected, abs=1e-9)
    blank.write_text("text,label\n,positive\n  ,negative\n")
    result = _cli_to_pipe("evaluate", folder, blank)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(f"Column 'text' is empty in every row of {blank} (the "
                                                           f"first at line 2 of {blank}); name the column that holds "
                                                           f"the texts with --text-column.")
    damaged = tmp_path / "damaged.csv"  # UTF-8 with one latin-1 row pasted in
    damaged.write_bytes("text,label\n".encode() + "".join(rows[:6]).encode() + "olé,positive\n".encode("latin-1"))
    result = _cli_to_pipe("evaluate", folder, damaged)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (f"{damaged} is UTF-8 text but for 1 byte (the first, 0xE9, on line 8): it is damaged, or pasted together "
            f"from files of two encodings; save it again as UTF-8.") in result.stderr


def test_excel_workbook_sheets_are_read_as_splits(tiny_converted, tmp_path):
    """A .xlsx was 'Cannot read labelled data'. Its first non-empty row names the columns, its sheets are splits (test
    by default, --eval-split names another), ids and names alike; scored as transformers' argmax. A sheet it lacks, a
    value right of the header's columns and the old .xls exit 2 in one sentence."""
    openpyxl = pytest.importorskip("openpyxl")  # the dev extra installs it

    hf, folder = tiny_converted("text-classification")
    texts = [a for a, _ in PAIRS]
    gold, expected = _sentiment_gold(hf, texts)
    other = [b for _, b in PAIRS]
    other_gold, other_expected = _sentiment_gold(hf, other)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "train"
    sheet.append(["Review", "Label"])
    for t, g in zip(other, other_gold):
        sheet.append([t, ["Negative", "Positive"][g]])
    sheet = book.create_sheet("Test")
    sheet.append([])  # a title row left empty, then the header
    sheet.append(["sentence", "label", None])
    for i, (t, g) in enumerate(zip(texts, gold)):
        sheet.append([t, g])  # class ids, stored as numbers
        if i == 3:
            sheet.append([None, None])
    path = tmp_path / "labels.xlsx"
    book.save(path)
    result = _cli_to_pipe("evaluate", folder, path, "--threads", "1", "--json", tmp_path / "scores.json")
    assert result.returncode == 0, result.stderr
    assert (f"note: {path} has 2 sheets ('train', 'Test'); sheet 'Test' is read (the first of test, validation, dev, "
            f"valid it has; choose another with --eval-split)") in result.stdout
    assert "read as Excel" in result.stdout
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["variants"][0]["metrics"]["accuracy"] == pytest.approx(expected, abs=1e-9)
    assert scores["eval_data"]["rows"] == len(texts)
    result = _cli_to_pipe("evaluate", folder, path, "--eval-split", "train", "--threads", "1", "--json",
                          tmp_path / "scores.json")
    assert result.returncode == 0, result.stderr
    assert f"note: sheet 'train' of {path} is read" in result.stdout
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["variants"][0]["metrics"]["accuracy"] == pytest.approx(other_expected, abs=1e-9)
    for args, message in (((path, "--eval-split", "dev"), f"{path} has no sheet 'dev' (sheets: 'train', 'Test'); name "
                                                          f"one of them with --eval-split."),
                          ((tmp_path / "old.xls",), f"{tmp_path / 'old.xls'} is an Excel 97-2003 workbook, which is "
                                                    f"not read; save the sheet as .xlsx")):
        (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0 not really")
        result = _cli_to_pipe("evaluate", folder, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr
    book["Test"].cell(row=5, column=4, value="stray")
    book.save(path)
    result = _cli_to_pipe("evaluate", folder, path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (f"Row 5 of sheet 'Test' of {path} has a value in column D, right of the columns its header row (row 2) "
            f"names") in result.stderr


@pytest.mark.parametrize("task", ["text-classification", "token-classification", "question-answering",
                                  "feature-extraction"])
def test_a_large_set_is_tokenized_at_each_pass_and_scores_the_same(converted_tiny, tmp_path, monkeypatch, task):
    """Every tokenized batch of a labelled set was kept for the whole run (20,000 rows of 400 tokens: 2 GB, mostly
    offsets). A set over KEEP_ENCODED_ROWS texts is tokenized again at each pass instead, and scored batch by batch:
    the same metrics, on several batches, as the set kept tokenized."""
    from inferforge.artifacts import load
    from inferforge.evaluate import EvalSet, read_eval_set

    folder = converted_tiny(task)
    model = load(folder, "ort-fp32")
    words = [t.split() for t in ["Alice met Bob in Paris", "the quick brown fox jumps over the lazy dog", "it rained",
                                 "what is the capital of France", "a terrible boring film with no story at all",
                                 "the soup was cold and the waiter was rude", "music in the park"]]
    rng = np.random.default_rng(0)
    if task == "text-classification":
        rows = [{"text": " ".join(w), "label": model.labels[i % len(model.labels)]} for i, w in enumerate(words)]
    elif task == "token-classification":
        rows = [{"text": w, "label": [model.labels[int(k)] for k in rng.integers(0, len(model.labels), len(w))]}
                for w in words]
    elif task == "question-answering":
        rows = [{"question": " ".join(w[:3]), "context": " ".join(w), "answers": [w[-1]]} for w in words]
    else:
        rows = [{"text": " ".join(w), "text_pair": " ".join(words[i - 1]), "label": float(rng.random())}
                for i, w in enumerate(words)]
    columns = ("question", "context", "answers") if task == "question-answering" else (None, None, None)
    read = read_eval_set(_jsonl(tmp_path / "rows.jsonl", rows), model.task, model.encoder, model.labels, *columns)
    kept = EvalSet(read.task, read.encoder, read.data, read.labels, batch_size=2)
    monkeypatch.setattr(EvalSet, "KEEP_ENCODED_ROWS", 0)
    streamed = EvalSet(read.task, read.encoder, read.data, read.labels, batch_size=2)
    assert kept._encoded is not None and len(kept._encoded) >= 4 and streamed._encoded is None
    expected = kept.score(model.engine).metrics
    assert streamed.score(model.engine).metrics == expected
    assert streamed.score_outputs(streamed.outputs(model.engine)).metrics == expected


def test_token_predict_says_which_texts_are_cut(tiny_converted, tmp_path):
    """Token classification reads no windows: a text longer than the model reads gets no entity past the cut. predict
    says which texts were cut (a CutTextWarning; `inferforge predict` prints it as a note on stderr), counted against
    the transformers tokenizer's own token count; texts that fit say nothing."""
    import warnings

    import transformers

    from inferforge.artifacts import load
    from inferforge.tokenization import CutTextWarning

    hf, folder = tiny_converted("token-classification")
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    long = "the quick brown fox jumps over the lazy dog " * 12 + "Alice met Bob"
    texts = ["Alice met Bob in Paris", long, "a short one", long + " again"]
    expected = [i + 1 for i, t in enumerate(texts) if len(tokenizer(t)["input_ids"]) > tokenizer.model_max_length]
    assert expected == [2, 4]
    model = load(folder, threads=1)
    with pytest.warns(CutTextWarning, match=r"2 of the 4 texts \(text 2, 4\) are longer than the model's 64 tokens"):
        answers = model.predict(texts)
    assert len(answers) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error", CutTextWarning)
        model.predict(texts[:1] + texts[2:3])
    result = subprocess.run([sys.executable, "-m", "inferforge", "predict", str(folder), *texts, "--threads", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 4 and all(json.loads(line) is not None for line in result.stdout.splitlines())
    assert "note: 2 of the 4 texts (text 2, 4) are longer than the model's 64 tokens" in " ".join(result.stderr.split())
    # from a file with blank lines (each answers null): numbered as the answers' lines
    result = subprocess.run([sys.executable, "-m", "inferforge", "predict", str(folder), "--file", "-", "--threads", "1"],
                            input="\n".join([texts[0], "", texts[1]]) + "\n", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "null"
    assert "note: 1 of the 2 texts (text 3) is longer than the model's 64 tokens" in " ".join(result.stderr.split())


def test_questions_longer_than_the_window_are_said_in_evaluate_and_predict(tiny_converted, tmp_path):
    """A question that leaves its context no room is cut (longest first) with its context: evaluate says how many,
    counted against the transformers tokenizer (question tokens plus [CLS] [SEP] [SEP] reach the model's 64), and
    predict warns."""
    import transformers

    from inferforge.artifacts import load
    from inferforge.evaluate import evaluate
    from inferforge.tokenization import CutTextWarning

    hf, folder = tiny_converted("question-answering")
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    long_question = "what did the quick brown fox do " * 12 + "in Paris?"
    questions = ["where did Alice meet Bob?", long_question, "who met Bob?", long_question + " and why?"]
    context = "Alice met Bob in Paris."
    cut = [i for i, q in enumerate(questions) if len(tokenizer(q)["input_ids"]) + 1 >= tokenizer.model_max_length]
    assert cut == [1, 3]
    rows = [{"question": q, "context": context, "answers": {"text": ["Paris"], "answer_start": [17]}} for q in questions]
    report = evaluate(folder, _jsonl(tmp_path / "qa.jsonl", rows), threads=1)
    said = [m for m in report.messages if "questions are longer" in m]
    assert len(said) == 1 and said[0].startswith("2 of the 4 questions are longer than the model's 64 tokens leave "
                                                 "room for (the first at line 2 of ")
    assert "questions are longer" in report.eval_data["labels"]["note"]  # kept in report.json by convert too
    short = evaluate(folder, _jsonl(tmp_path / "short.jsonl", [rows[0], rows[2]]), threads=1)
    assert not any("questions are longer" in m for m in short.messages)
    with pytest.warns(CutTextWarning, match=r"2 of the 4 questions \(question 2, 4\)"):
        load(folder, threads=1).predict(questions, [context] * 4)
    # a question read whole beside a long context (windows of the full 64 tokens) whose last character is no token (a
    # zero-width space, which the tokenizer drops) is not said to be cut
    import warnings

    assert tokenizer("who met Bob?\u200b")["input_ids"] == tokenizer("who met Bob?")["input_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CutTextWarning)
        load(folder, threads=1).predict(["who met Bob?\u200b"], [context * 30])


def test_a_qa_subset_keeps_the_whole_sets_no_answer_choice(tiny_converted, tmp_path):
    """Data with unanswerable questions lets the model say "no answer" (its no-answer score over its best span's).
    The accuracy search's subset of such data decided again on its own rows: a subset without an unanswerable
    question never let the model abstain, so a row was scored on another answer than in the whole set."""
    from inferforge.artifacts import load
    from inferforge.evaluate import read_eval_set
    from inferforge.tasks import get_task

    _, folder = tiny_converted("question-answering")
    model = load(folder, threads=1)
    question, context = "Alice what Alice brown Paris river?", "when met."
    answer = model.predict([question], [context])[0]
    assert answer["no_answer_score"] > answer["score"]  # this model would rather say "no answer" here
    rows = [{"question": question, "context": context, "answers": {"text": [answer["answer"]], "answer_start": [0]}},
            {"question": "who is the king?", "context": "Alice met Bob.", "answers": {"text": [], "answer_start": []}}]
    whole = read_eval_set(_jsonl(tmp_path / "qa.jsonl", rows), get_task("question-answering"), model.encoder, None)
    first = whole.subset(1)
    assert first.data.texts == [question]
    alone = read_eval_set(_jsonl(tmp_path / "one.jsonl", rows[:1]), get_task("question-answering"), model.encoder, None)
    assert alone.score(model.engine).value == 100.0  # alone (no unanswerable question): the span, which is gold
    assert first.score(model.engine).value == 0.0  # as in the whole set: "no answer", not the gold span
