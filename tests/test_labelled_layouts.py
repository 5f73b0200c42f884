"""Labelled data as users bring it (an outside-in audit): each layout is scored against a reference computed here
(transformers' outputs per text, or counts worked out in the test), never against inferforge's own outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from inferforge.errors import UserError
from tiny_models import LABELS, build_tiny_model

TEXTS = ["Alice met Bob in Paris last summer", "short", "the movie was great and the actors were wonderful in every "
         "single scene of it", "a tie", "what a terrible boring film, no story at all", "fine", "it rained all day",
         "Paris is the capital of France and its largest city"]


class _HFEngine:
    """A transformers model behind the Engine protocol: token arrays in, logits out, as the ONNX graph takes them."""

    name = "transformers"
    output_names = ("logits",)

    def __init__(self, model, input_names):
        self.model, self.input_names = model, tuple(input_names)

    def run(self, inputs):
        import torch

        with torch.no_grad():
            out = self.model(**{n: torch.from_numpy(np.asarray(inputs[n], dtype=np.int64)) for n in self.input_names})
        return {"logits": out.logits.numpy()}


def test_a_model_that_reads_padding_is_scored_on_each_texts_own_answer(tmp_path):
    """FNet takes no attention mask: padded to a batch's longest, its logits changed (by up to 0.3 on this tiny model),
    so evaluate's scores could differ from predict's answers. Each row now gets the logits transformers gives it
    alone."""
    import torch
    import transformers

    from inferforge.evaluate import EvalSet
    from inferforge.labelled_data import DataColumns, LabelledData
    from inferforge.tasks import get_task
    from inferforge.tokenization import TextEncoder

    hf = build_tiny_model(tmp_path / "fnet", "fnet", "text-classification")
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(hf).eval()
    names = [n for n in tokenizer.model_input_names if n != "attention_mask"]
    alone = []
    for text in TEXTS:
        encoded = tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            alone.append(model(**{n: encoded[n] for n in names}).logits[0].numpy())
    alone = np.array(alone)
    labels = LABELS["text-classification"]
    data = LabelledData(TEXTS, None, [labels[i] for i in alone.argmax(-1)], list(range(2, len(TEXTS) + 2)), "t.csv",
                        DataColumns("text", None, "label"))
    encoder = TextEncoder.from_dir(hf, names, 128)
    eval_set = EvalSet(get_task("text-classification"), encoder, data, labels)
    engine = _HFEngine(model, names)
    got = np.zeros_like(alone)
    for (rows, _), out in zip(eval_set.batches, eval_set.outputs(engine)):
        got[rows] = out["logits"]
    np.testing.assert_allclose(got, alone, atol=1e-5)
    assert eval_set.score(engine).metrics["accuracy"] == 100.0


def test_column_options_on_a_plain_text_file_are_refused_unless_other_data_takes_them(tmp_path):
    from inferforge.labelled_data import read_texts
    from inferforge.pipeline import ConvertOptions, _read_text_option

    (tmp_path / "calib.txt").write_text("a first text\na second one\n")
    with pytest.raises(UserError, match=r"plain text, one text per line.*--text-column"):
        read_texts(tmp_path / "calib.txt", None, text_column="sentence")
    with pytest.raises(UserError, match="no columns for --text-column"):
        _read_text_option(ConvertOptions("text-classification", tmp_path / "o", calibration_data=tmp_path / "calib.txt",
                                         text_column="sentence"), "calibration_data", "--calibration-data")
    # with a table beside it, --text-column names that table's column and the text file is read as lines
    (tmp_path / "eval.csv").write_text("sentence,label\nok,POSITIVE\n")
    options = ConvertOptions("text-classification", tmp_path / "o", calibration_data=tmp_path / "calib.txt",
                             eval_data=tmp_path / "eval.csv", text_column="sentence")
    assert _read_text_option(options, "calibration_data", "--calibration-data").texts == ["a first text",
                                                                                          "a second one"]


CARD = """---
language:
- en
dataset_info:
  features:
  - name: text
    dtype: string
  - name: label
    dtype:
      class_label:
        names:
          '0': positive
          '1': negative
  - name: tags
    sequence:
      class_label:
        names:
          '0': O
          '1': B-LOC
          '2': I-LOC
          '3': B-PER
          '4': I-PER
  splits:
  - name: test
    num_examples: 3
---
# A dataset downloaded from the Hub as it is
"""


def test_class_names_of_ids_are_read_from_the_dataset_card(tmp_path):
    """A Hub repository of CSV/JSON Lines files names its ClassLabel ids only in README.md's YAML: they were taken as
    the model's ids, a silently wrong score whenever the dataset orders its classes differently."""
    from inferforge.evaluate import read_eval_data
    from inferforge.labelled_data import class_ids, tag_sequences
    from inferforge.tasks import get_task

    (tmp_path / "repo" / "data").mkdir(parents=True)
    (tmp_path / "repo" / "README.md").write_text(CARD)
    data_file = tmp_path / "repo" / "data" / "test.csv"
    data_file.write_text("text,label\ngreat,0\nawful,1\nfine,0\n")
    model = ["NEGATIVE", "POSITIVE"]
    for source in (data_file, tmp_path / "repo"):  # the file, or the repository folder (split 'test' by its name)
        data = read_eval_data(source, get_task("text-classification"))
        assert data.class_names == ("positive", "negative")
        assert class_ids(data, model).tolist() == [1, 0, 1]  # positive is the model's 1, negative its 0
        assert any("dataset card" in note for note in data.notes)
    rows = [{"tokens": ["Alice", "in", "Paris"], "tags": [3, 0, 1]}, {"tokens": ["Bob"], "tags": [3]}]
    (tmp_path / "repo" / "data" / "test.csv").unlink()
    (tmp_path / "repo" / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]  # the model's order, not the dataset's
    data = read_eval_data(tmp_path / "repo", get_task("token-classification"))
    assert tag_sequences(data, tags) == [["B-PER", "O", "B-LOC"], ["B-PER"]]
    # a file whose own features name its classes keeps them; a card without dataset_info names nothing
    (tmp_path / "repo" / "README.md").write_text("---\nlicense: mit\n---\n# no features\n")
    data = read_eval_data(tmp_path / "repo", get_task("token-classification"))
    assert data.class_names is None


def test_semicolon_csv_from_excel_with_bom_and_crlf(tmp_path):
    """Excel in locales with a decimal comma writes 'text;label' with a BOM and CRLF: read with semicolons (the rows
    with a comma in their text were 'more cells than the header')."""
    from inferforge.evaluate import read_eval_data
    from inferforge.labelled_data import class_ids
    from inferforge.tasks import get_task

    rows = [("Good, really good.", "Positive "), ("Bad; \"very\" bad", "negative"), ("ok", "POSITIVE")]
    path = tmp_path / "excel.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f, delimiter=";", lineterminator="\r\n").writerows([("Text", "Sentiment"), *rows])
    data = read_eval_data(path, get_task("text-classification"))
    assert data.texts == [t for t, _ in rows] and (data.columns.text, data.columns.label) == ("Text", "Sentiment")
    assert class_ids(data, ["NEGATIVE", "POSITIVE"]).tolist() == [1, 0, 1]
    assert any("semicolons" in note for note in data.notes)
    # its numbers have decimal commas: an STS score 4,5 is 4.5 (it was 'not a number'); a comma CSV keeps refusing it
    from inferforge.labelled_data import similarity_scores

    path.write_bytes("\ufeffsentence1;sentence2;score\r\nA man is dancing.;A man dances.;4,5\r\nA dog runs.;"
                     "A cat sleeps.;0,75\r\nHi;Hello;3\r\n".encode())
    data = read_eval_data(path, get_task("feature-extraction"))
    assert similarity_scores(data).tolist() == [4.5, 0.75, 3.0]
    path.write_text('sentence1,sentence2,score\nA,B,"4,5"\n')
    with pytest.raises(UserError, match=r"Similarity score '4,5' at line 2 of .* is not a number"):
        similarity_scores(read_eval_data(path, get_task("feature-extraction")))


def test_target_and_score_columns_are_found(tmp_path):
    from inferforge.evaluate import read_eval_data
    from inferforge.tasks import get_task

    task = get_task("text-classification")
    (tmp_path / "t.csv").write_text("sentence,target\na,1\nb,0\n")
    assert read_eval_data(tmp_path / "t.csv", task).columns.label == "target"
    (tmp_path / "sts.tsv").write_text("sentence1\tsentence2\tscore\na\tb\t4.2\nc\td\t0.5\n")
    data = read_eval_data(tmp_path / "sts.tsv", task)
    assert (data.columns.pair, data.columns.label, data.labels) == ("sentence2", "score", ["4.2", "0.5"])
    # a confidence score beside a label is no ambiguity
    (tmp_path / "c.csv").write_text("text,sentiment,score\na,POSITIVE,0.9\n")
    assert read_eval_data(tmp_path / "c.csv", task).columns.label == "sentiment"


def test_conll2003_txt_files_are_read_as_conll(tmp_path):
    """conll2003 ships train.txt / test.txt: they were 'cannot read labelled data' (a plain .txt is still refused)."""
    from inferforge.evaluate import read_eval_data
    from inferforge.labelled_data import tag_sequences
    from inferforge.tasks import get_task

    task = get_task("token-classification")
    (tmp_path / "test.txt").write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
                                       "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n")
    data = read_eval_data(tmp_path / "test.txt", task)
    assert data.texts == ["EU rejects", "Peter Blackburn"] and data.file_format == "CoNLL"
    assert tag_sequences(data, ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]) == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    (tmp_path / "plain.txt").write_text("a sentence\nanother one\n")
    with pytest.raises(UserError, match="a .txt file only in CoNLL layout"):
        read_eval_data(tmp_path / "plain.txt", task)


def test_multi_label_classes_separated_by_commas_in_a_cell(tmp_path):
    """A multi-label model's CSV often holds 'joy, anger' in one cell: it was an unknown label. Micro F1 by hand."""
    from inferforge.evaluate import read_eval_data
    from inferforge.labelled_data import class_sets, is_multi_label
    from inferforge.metrics import multi_label_scores
    from inferforge.tasks import get_task

    names = ["joy", "anger", "sadness"]
    (tmp_path / "ml.csv").write_text('text,labels\na,"joy, anger"\nb,sadness\nc,Anger|Sadness\nd,[]\n')
    data = read_eval_data(tmp_path / "ml.csv", get_task("text-classification"))
    assert is_multi_label(data, model_says=True)
    gold = class_sets(data, names)
    expected = np.array([[1, 1, 0], [0, 0, 1], [0, 1, 1], [0, 0, 0]], dtype=bool)
    assert (gold == expected).all()
    predicted = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]], dtype=bool)
    # tp 4 (joy, sadness, anger and sadness), fp 1 (joy of c), fn 1 (anger of a): 2*4 / (2*4 + 1 + 1)
    assert multi_label_scores(gold, predicted).micro_f1 == pytest.approx(0.8)
    # Label Studio's JSON-MIN export: a single choice as a string, several as {"choices": [...]}
    rows = [{"id": 1, "text": "a", "emotion": {"choices": ["Joy", "Anger"]}}, {"id": 2, "text": "b", "emotion": "Sadness"},
            {"id": 3, "text": "c", "emotion": {"choices": ["Anger", "Sadness"]}}, {"id": 4, "text": "d", "emotion": []}]
    (tmp_path / "min.json").write_text(json.dumps(rows))
    data = read_eval_data(tmp_path / "min.json", get_task("text-classification"), label_column="emotion")
    assert is_multi_label(data, model_says=True) and (class_sets(data, names) == expected).all()
    # sets of classes on a model that says it is single-label (softmax: one class per text) are refused, not scored
    # by a sigmoid that model never had
    from inferforge.evaluate import EvalSet

    _, _, encoder, _ = _multi_label_model(tmp_path, names, problem_type="single_label_classification")
    with pytest.raises(UserError, match=r"The labels of .*min.json are sets of classes \(multi-label, e.g. "
                                        r"\['Joy', 'Anger'\] at line 1 of .*\), but the model is single-label"):
        EvalSet(get_task("text-classification"), encoder, data, names, problem_type="single_label_classification")
    assert EvalSet(get_task("text-classification"), encoder, data, names, problem_type=None).multi_label


NER_WORDS = [["Alice", "met", "Bob", "in", "Paris"], ["Paris", "is", "large"], ["Bob", "and", "Alice", "walked", "home"],
             ["the", "quick", "brown", "fox", "jumps"]]


def _hand_entities(tags):
    """(start, end, type) of each entity, chunked as conlleval does: B-X, or I-X after O / another type, opens one."""
    found, start, kind = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, name = tag.partition("-")
        if start is not None and (prefix in ("O", "B") or name != kind):
            found.append((start, i, kind))
            start = None
        if prefix in ("B", "I") and start is None:
            start, kind = i, name
    return found


def _hand_f1(gold, predicted):
    g = {(row, *e) for row, tags in enumerate(gold) for e in _hand_entities(tags)}
    p = {(row, *e) for row, tags in enumerate(predicted) for e in _hand_entities(tags)}
    return 100.0 * 2 * len(g & p) / (len(g) + len(p))


def _token_model(tmp_path):
    """A tiny token-classification BERT, its tags of NER_WORDS by transformers (each word: its first token), the
    encoder and the engine evaluate runs it through."""
    import torch
    import transformers

    from inferforge.tokenization import TextEncoder

    hf = build_tiny_model(tmp_path / "ner", "bert", "token-classification")
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    model = transformers.AutoModelForTokenClassification.from_pretrained(hf).eval()
    encoded = tokenizer(NER_WORDS, is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        best = model(**encoded).logits.argmax(-1)
    labels = LABELS["token-classification"]
    predicted = []
    for row, words in enumerate(NER_WORDS):
        tags = {}
        for token, word in enumerate(encoded.word_ids(row)):
            if word is not None and word not in tags:
                tags[word] = labels[int(best[row, token])]
        predicted.append([tags[w] for w in range(len(words))])
    names = list(tokenizer.model_input_names)
    return TextEncoder.from_dir(hf, names, 128), _HFEngine(model, names), predicted


def _ner_gold(tmp_path):
    """The tiny token model (encoder, engine) and gold tags of NER_WORDS that differ from transformers' tags in places,
    with the entity F1 of transformers' tags against them, counted here."""
    encoder, engine, predicted = _token_model(tmp_path)
    gold = [list(tags) for tags in predicted]
    gold[0] = ["B-PER", "O", "B-PER", "O", "B-LOC"]
    gold[1] = ["B-LOC", "O", "O"]
    expected = _hand_f1(gold, predicted)
    assert 0 < expected < 100, (gold, predicted)
    return encoder, engine, gold, expected


def _scored(data, encoder, engine):
    from inferforge.evaluate import EvalSet
    from inferforge.tasks import get_task

    return EvalSet(get_task("token-classification"), encoder, data, LABELS["token-classification"]).score(engine)


def test_headerless_word_tag_tsv_and_a_conll2003_folder_of_txt_files(tmp_path):
    """WNUT-17's layout (word<TAB>tag lines, no header, a blank line between sentences) named .tsv was read as a table
    ('no text column (columns found: Hello!, I-LOC)'); conll2003's folder of train.txt / valid.txt / test.txt had no
    splits. Both are scored against transformers' tags of the words, F1 counted here."""
    from inferforge.evaluate import read_eval_data
    from inferforge.tasks import get_task

    encoder, engine, gold, expected = _ner_gold(tmp_path)
    task = get_task("token-classification")
    tsv = tmp_path / "wnut17_test.tsv"
    tsv.write_text("\n".join("".join(f"{w}\t{t}\n" for w, t in zip(ws, g)) for ws, g in zip(NER_WORDS, gold)))
    data = read_eval_data(tsv, task)
    assert data.texts == [" ".join(ws) for ws in NER_WORDS] and data.file_format == "CoNLL"
    assert data.notes == (f"{tsv} has no header and holds a token and its tag per line, a blank line between "
                          f"sentences, so it is read as CoNLL",)
    assert _scored(data, encoder, engine).value == pytest.approx(expected, abs=1e-9)
    with pytest.raises(UserError, match=r"holds a token and its tag per line \(CoNLL layout\), data for "
                                        r"token-classification, not text-classification; give a CSV"):
        read_eval_data(tsv, get_task("text-classification"))
    # a .tsv with a header naming its text column is still a table
    (tmp_path / "table.tsv").write_text("tokens\tner_tags\nAlice met\tB-PER O\n\nBob\tB-PER\n")
    data = read_eval_data(tmp_path / "table.tsv", task)
    assert (data.file_format, data.texts, data.notes) == ("TSV", ["Alice met", "Bob"], ())

    folder = tmp_path / "conll2003"
    folder.mkdir()
    conll = "-DOCSTART- -X- -X- O\n\n" + "\n".join("".join(f"{w} NN B-NP {t}\n" for w, t in zip(ws, g))
                                                 for ws, g in zip(NER_WORDS, gold))
    (folder / "test.txt").write_text(conll)
    (folder / "valid.txt").write_text("-DOCSTART- -X- -X- O\n\nParis NNP B-NP B-LOC\n")
    (folder / "train.txt").write_text("-DOCSTART- -X- -X- O\n\nBob NNP B-NP B-PER\n")
    (folder / "README.txt").write_text("The CoNLL-2003 shared task data.\nSee the paper.\n")  # not a split
    data = read_eval_data(folder, task)
    assert data.split == "test" and data.notes == (
        f"split 'test' of {folder} is used, read from test.txt (the first of test, validation, dev, valid it has; "
        f"choose another with --eval-split)",)
    assert _scored(data, encoder, engine).value == pytest.approx(expected, abs=1e-9)
    data = read_eval_data(folder, task, split="validation")  # conll2003's valid.txt is datasets' 'validation'
    assert (data.split, data.texts) == ("valid", ["Paris"])
    assert data.notes == (f"split 'valid' of {folder} is used, read from valid.txt (asked for 'validation')",)
    data = read_eval_data(folder, task, split="train")
    assert data.texts == ["Bob"] and data.notes == (f"split 'train' of {folder} is used, read from train.txt",)
    (folder / "test.txt").unlink()
    (folder / "dev.txt").write_text("Paris B-LOC\nis O\n\n")
    with pytest.raises(UserError, match=r"has no split 'validation' \(splits: dev, train, valid\)"):
        read_eval_data(folder, task, split="validation")  # dev and valid both: which one is not guessed


def _multi_label_model(tmp_path, names, problem_type="multi_label_classification"):
    """A tiny BERT with a head of `names` (not converted: transformers behind the Engine protocol) and its encoder."""
    import transformers

    from inferforge.tokenization import TextEncoder

    base = build_tiny_model(tmp_path / "base", "bert", "text-classification")
    import torch

    torch.manual_seed(3)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
        problem_type=problem_type, ignore_mismatched_sizes=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    inputs = list(tokenizer.model_input_names)
    return tokenizer, model, TextEncoder.from_dir(base, inputs, 128), _HFEngine(model, inputs)


def test_one_0_1_column_per_class_of_a_multi_label_model(tmp_path):
    """Jigsaw's toxic-comment CSV (id, comment_text, toxic, severe_toxic, ...) and GoEmotions' raw CSV hold a 0/1 column
    per class and no label column: it was 'no label column'. Scored against transformers' sigmoids, F1 counted here."""
    from inferforge.evaluate import EvalSet, read_eval_data
    from inferforge.tasks import get_task

    names = ["toxic", "severe_toxic", "obscene"]
    encoder, engine, predicted, gold = _toxic_gold(tmp_path, names)
    expected = _multi_label_expected(gold, predicted)
    assert 0 < expected["micro_f1"] < 100 and 0 < expected["subset_accuracy"] < 100
    # column names in another spelling, true/false in one column, a 0/1 column the model has no class for
    path = tmp_path / "jigsaw.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "comment_text", "Toxic", "Severe Toxic", "obscene", "threat"])
        for i, (text, g) in enumerate(zip(TEXTS, gold)):
            writer.writerow([f"a{i:04x}", text, int(g[0]), str(bool(g[1])).lower(), int(g[2]), i % 2])
    task = get_task("text-classification")
    data = read_eval_data(path, task)
    assert data.class_columns == ("Toxic", "Severe Toxic", "obscene", "threat") and data.columns.text == "comment_text"
    assert data.describe().startswith("text 'comment_text', labels in 0/1 columns, one per class, matched to the "
                                      "model's classes by name (candidates: Toxic, Severe Toxic, ")
    eval_set = EvalSet(task, encoder, data, names, problem_type="multi_label_classification")
    score = eval_set.score(engine)
    assert score.primary == "micro_f1" and score.metrics == pytest.approx(expected, abs=1e-9)
    note, = eval_set.messages()
    assert note.startswith("no label column, so the classes of each row are read from one 0/1 column per class of the "
                           "model (Toxic, Severe Toxic, obscene), matched as toxic = 'Toxic', severe_toxic = "
                           "'Severe Toxic'; 0/1 columns that name no class are left out: threat")
    # refusals, one sentence each
    with pytest.raises(UserError, match=r"jigsaw.csv has no label column \(columns found: comment_text, id, Toxic.*\) "
                                        r"and its 0/1 columns \(Toxic, .*\) are read as one column per class only for a "
                                        r"multi-label model .*which this model is not; name the label column"):
        EvalSet(task, encoder, data, names, problem_type="single_label_classification")
    with pytest.raises(UserError, match=r"has a 0/1 column for 3 of the model's 4 classes but none for insult; add"):
        EvalSet(task, encoder, data, names + ["insult"], problem_type="multi_label_classification")
    with pytest.raises(UserError, match=r"none of which has a column"):
        EvalSet(task, encoder, data, ["joy", "anger"], problem_type="multi_label_classification")
    rows = path.read_text().splitlines()
    rows[3] = rows[3].replace(f",{int(gold[2, 2])},", ",0.7,")  # obscene of the third text
    (tmp_path / "bad.csv").write_text("\n".join(rows) + "\n")
    data = read_eval_data(tmp_path / "bad.csv", task)
    with pytest.raises(UserError, match=r"Column 'obscene' \(class 'obscene'\) is '0.7' at line 4 of .*bad.csv, not "
                                        r"0/1; a column per class holds 0 or 1"):
        EvalSet(task, encoder, data, names, problem_type="multi_label_classification")


def _toxic_gold(tmp_path, names):
    """A multi-label model over `names`, its sigmoid predictions on TEXTS (transformers) and gold labels that differ
    from them in three classes and one row with none: (encoder, engine, predicted, gold)."""
    import torch

    tokenizer, model, encoder, engine = _multi_label_model(tmp_path, names)
    with torch.no_grad():
        predicted = torch.sigmoid(model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits).numpy() > 0.5
    gold = predicted.copy()
    gold[0, 0], gold[2, 1], gold[5, 2], gold[6] = ~gold[0, 0], ~gold[2, 1], ~gold[5, 2], False
    return encoder, engine, predicted, gold


def _multi_label_expected(gold, predicted):
    tp, fp, fn = (gold & predicted).sum(), (~gold & predicted).sum(), (gold & ~predicted).sum()
    per_class = [2 * (g & p).sum() / (g.sum() + p.sum()) for g, p in zip(gold.T, predicted.T) if g.any() or p.any()]
    return {"micro_f1": 100.0 * 2 * tp / (2 * tp + fp + fn), "macro_f1": 100.0 * np.mean(per_class),
            "subset_accuracy": 100.0 * np.mean((gold == predicted).all(1))}


def test_blank_and_minus_one_cells_of_class_columns(tmp_path):
    """A blank cell in a 0/1 column per class was refused ('is '' ..., not 0/1'). Where the columns write 0, a blank is
    a class nobody annotated: its row is left out and counted; where they never write 0 (only the classes that apply
    are marked), a blank is 0. A row of -1 in every class column (Jigsaw's test_labels.csv) has no gold: left out.
    The column line names only the columns matched to the model's classes once it is known. Scores against
    transformers' sigmoids, F1 counted here."""
    from inferforge.evaluate import EvalSet, read_eval_data
    from inferforge.tasks import get_task

    names = ["toxic", "severe_toxic", "obscene"]
    encoder, engine, predicted, gold = _toxic_gold(tmp_path, names)
    task = get_task("text-classification")

    def write(name, cell):
        path = tmp_path / name
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "comment_text", "toxic", "severe_toxic", "obscene", "threat"])
            for i, (text, g) in enumerate(zip(TEXTS, gold)):
                writer.writerow([i, text, *(cell(i, k, bool(v)) for k, v in enumerate(g)), i % 2])
        return path

    # 0 and 1 written, a blank in rows 1 and 4, -1 in every class column of row 3
    path = write("blanks.csv", lambda i, k, v: "" if (i, k) in ((1, 2), (4, 0)) else "-1" if i == 3 else int(v))
    data = read_eval_data(path, task)
    assert data.class_columns == ("toxic", "severe_toxic", "obscene", "threat")
    assert data.describe().startswith("text 'comment_text', labels in 0/1 columns, one per class, matched to the "
                                      "model's classes by name (candidates: toxic, severe_toxic, obscene, threat)")
    eval_set = EvalSet(task, encoder, data, names, problem_type="multi_label_classification")
    kept = [0, 2, 5, 6, 7]
    assert len(eval_set) == 5 and eval_set.data.texts == [TEXTS[i] for i in kept]
    assert eval_set.score(engine).metrics == pytest.approx(_multi_label_expected(gold[kept], predicted[kept]), abs=1e-9)
    assert eval_set.data.describe().startswith("text 'comment_text', labels in one 0/1 column per class of the model "
                                               "(toxic, severe_toxic, obscene) (detected: text)")
    note, = eval_set.messages()
    assert (f"; 2 rows have a blank cell in a class column (the first at line 3 of {path}), a class nobody annotated "
            f"since the columns write 0 for a class that does not apply, so such rows are left out; 1 row has -1 in every "
            f"class column (the first at line 5 of {path}), marking rows without gold labels as Jigsaw's test labels "
            f"do, so such rows are left out; 5 of the 8 rows are scored") in note
    assert eval_set.record()["columns"]["class_columns"] == ["toxic", "severe_toxic", "obscene"]
    # only the classes that apply marked (1 or blank, never 0): a blank is 0, every row scored
    path = write("marks.csv", lambda i, k, v: 1 if v else "")
    eval_set = EvalSet(task, encoder, read_eval_data(path, task), names, problem_type="multi_label_classification")
    assert len(eval_set) == len(TEXTS)
    assert eval_set.score(engine).metrics == pytest.approx(_multi_label_expected(gold, predicted), abs=1e-9)
    assert "the class columns hold 1 and blank cells only (no 0), so a blank cell is read as 0" in eval_set.messages()[0]
    # refusals: -1 beside 0/1 in a row, and no row with gold labels
    path = write("mixed.csv", lambda i, k, v: -1 if (i, k) == (2, 1) else int(v))
    with pytest.raises(UserError, match=r"Column 'severe_toxic' \(class 'severe_toxic'\) is -1 at line 4 of .*mixed.csv, "
                                        r"where the row's other class columns hold 0/1; -1 marks a row without gold "
                                        r"labels only in all of its class columns"):
        EvalSet(task, encoder, read_eval_data(path, task), names, problem_type="multi_label_classification")
    path = write("unscored.csv", lambda i, k, v: -1 if i else 0 if k else "")
    with pytest.raises(UserError, match=r"No row of .*unscored.csv has gold labels in its class columns \(toxic, "
                                        r"severe_toxic, obscene\): 1 row has a blank"):
        EvalSet(task, encoder, read_eval_data(path, task), names, problem_type="multi_label_classification")


def test_one_word_per_row_tables_are_grouped_into_sentences(tmp_path):
    """A word<TAB>tag file WITH a header line (`token<TAB>label`, `words<TAB>ner_tags`) was read as a table: each word
    a sentence of its own, a silently wrong entity F1. Now its rows are grouped into sentences at its blank lines, or
    by a sentence id column (simpletransformers' sentence_id; Kaggle's NER CSV 'Sentence #', written on a sentence's
    first word only); a CoNLL file's header line is not read as a word; a table of one word per row with nothing that
    ends a sentence is refused. Scored against transformers' word tags, F1 counted here."""
    from inferforge.evaluate import read_eval_data
    from inferforge.tasks import get_task

    encoder, engine, gold, expected = _ner_gold(tmp_path)
    task = get_task("token-classification")
    texts = [" ".join(ws) for ws in NER_WORDS]
    words = len([w for ws in NER_WORDS for w in ws])
    for name, header in (("wnut.tsv", "token\tlabel"), ("ner.tsv", "words\tner_tags\n-DOCSTART-\tO\n"),
                         ("crlf.csv", "Word,Tag")):
        separator = "," if name.endswith(".csv") else "\t"
        body = "\n".join("".join(f"{w}{separator}{t}\n" for w, t in zip(ws, g)) for ws, g in zip(NER_WORDS, gold))
        path = tmp_path / name
        path.write_bytes((header + "\n" + body).replace("\n", "\r\n" if name == "crlf.csv" else "\n").encode())
        data = read_eval_data(path, task)
        column, tag = header.split("\n")[0].replace(",", "\t").split("\t")
        assert data.texts == texts and (data.columns.text, data.columns.label) == (column, tag)
        docstart = "-DOCSTART-" in header
        assert data.notes == (f"{path} holds one word per row (column '{column}', tags in '{tag}'), so its "
                              f"{words + docstart} rows are read as 4 sentences, split at its blank lines",)
        assert data.where(1) == f"line {8 + 2 * docstart} of {path}"
        assert _scored(data, encoder, engine).value == pytest.approx(expected, abs=1e-9)
    # a sentence id column: Kaggle's, on the first word of each sentence only, and simpletransformers'
    kaggle = tmp_path / "ner_dataset.csv"
    kaggle.write_text("Sentence #,Word,POS,Tag\n" + "".join(
        f"{f'Sentence: {s + 1}' if i == 0 else ''},{w},NN,{t}\n" for s, (ws, g) in enumerate(zip(NER_WORDS, gold))
        for i, (w, t) in enumerate(zip(ws, g))))
    simple = tmp_path / "simple.csv"
    simple.write_text("sentence_id,words,labels\n" + "".join(
        f"{s},{w},{t}\n" for s, (ws, g) in enumerate(zip(NER_WORDS, gold)) for w, t in zip(ws, g)))
    for path, column in ((kaggle, "Sentence #"), (simple, "sentence_id")):
        data = read_eval_data(path, task)
        assert data.texts == texts and data.notes[0].endswith(
            f"split by column '{column}' (a new sentence where its value changes, blank cells continue one)")
        assert _scored(data, encoder, engine).value == pytest.approx(expected, abs=1e-9)
    # CoNLL text with a header line
    conll = tmp_path / "with_header.conll"
    conll.write_text("WORD POS TAG\n" + "\n".join("".join(f"{w} NN {t}\n" for w, t in zip(ws, g))
                                                   for ws, g in zip(NER_WORDS, gold)))
    data = read_eval_data(conll, task)
    assert data.texts == texts and data.notes == (f"the first line of {conll} ('WORD POS TAG') names its columns, so "
                                                  f"it is not read as a word",)
    assert _scored(data, encoder, engine).value == pytest.approx(expected, abs=1e-9)
    # refusals: nothing ends a sentence; a word without its tag
    (tmp_path / "flat.csv").write_text("words,labels\nAlice,B-PER\nmet,O\nBob,B-PER\n")
    with pytest.raises(UserError, match=r"flat.csv holds one word per row \(column 'words', tags in 'labels'\) but "
                                        r"nothing says where a sentence ends; put a blank line between sentences"):
        read_eval_data(tmp_path / "flat.csv", task)
    (tmp_path / "untagged.tsv").write_text("token\tlabel\nAlice\tB-PER\nmet\t\n\nBob\tB-PER\n")
    with pytest.raises(UserError, match=r"Column 'label' is empty at line 3 of .*untagged.tsv; every word needs a tag"):
        read_eval_data(tmp_path / "untagged.tsv", task)
    (tmp_path / "two_words.tsv").write_text("token\tlabel\nNew York\tB-LOC\nis\tO\nbig\tO\n\nBob\tB-PER\n")
    with pytest.raises(UserError, match=r"Column 'token' holds 'New York' at line 2 of .*two_words.tsv, not one word, "
                                        r"in a table of one word per row"):
        read_eval_data(tmp_path / "two_words.tsv", task)
    (tmp_path / "windows.csv").write_bytes(b"words,labels\r\r\nAlice,B-PER\r\r\nmet,O\r\r\nBob,B-PER\r\r\n")
    with pytest.raises(UserError, match=r"windows.csv holds one word per row .* and every sentence between its blank "
                                        r"lines is one word long; put a blank line only between sentences"):
        read_eval_data(tmp_path / "windows.csv", task)


def test_glue_own_mrpc_and_qqp_files_and_sicks_relatedness_score(tmp_path):
    """GLUE's own MRPC file (BOM, 'Quality', '#1 String', '#2 String', a quote inside a raw TSV text) was 'no text
    column'; QQP's own file (is_duplicate) was 'no label column'. SICK has an entailment 'label' beside its
    relatedness_score: a similarity is now judged on the score (it took the entailment ids as similarities)."""
    from inferforge.evaluate import read_eval_data
    from inferforge.labelled_data import class_ids, similarity_scores
    from inferforge.tasks import get_task

    classify, embed = get_task("text-classification"), get_task("feature-extraction")
    mrpc = tmp_path / "msr_paraphrase_test.txt"
    mrpc.write_bytes("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n1\t1089874\t1089925\tPCCW 's chief said \"no\"."
                     "\tCurrent Chief Operating Officer Mike Butcher will report.\r\n0\t3019446\t3019327\tThe dollar was "
                     "down.\tThe euro rose.\r\n".encode())
    data = read_eval_data(mrpc.rename(tmp_path / "dev.tsv"), classify)
    assert (data.columns.text, data.columns.pair, data.columns.label) == ("#1 String", "#2 String", "Quality")
    assert data.texts == ["PCCW 's chief said \"no\".", "The dollar was down."] and data.pairs[1] == "The euro rose."
    assert class_ids(data, ["not_equivalent", "equivalent"]).tolist() == [1, 0]
    qqp = tmp_path / "qqp_dev.tsv"
    qqp.write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n0\t1\t2\tWhat is it?\tWhat's it?\t1\n"
                   "1\t3\t4\tHow old?\tWhere?\t0\n")
    data = read_eval_data(qqp, classify)
    assert (data.columns.text, data.columns.pair, data.columns.label) == ("question1", "question2", "is_duplicate")
    assert class_ids(data, ["not_duplicate", "duplicate"]).tolist() == [1, 0]
    sick = tmp_path / "SICK_test.tsv"
    sick.write_text("pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\tlabel\n"
                    "1\tA man is dancing.\tA man dances.\t4.9\tENTAILMENT\t0\n"
                    "2\tA dog runs.\tNo dog is running.\t3.2\tCONTRADICTION\t2\n")
    data = read_eval_data(sick, embed)
    assert (data.columns.text, data.columns.pair, data.columns.label) == ("sentence_A", "sentence_B", "relatedness_score")
    assert similarity_scores(data).tolist() == [4.9, 3.2]
    assert read_eval_data(sick, embed, label_column="label").columns.label == "label"  # the option still wins


def test_label_studio_and_prodigy_exports_of_classes_and_entities(tmp_path):
    """Label Studio's JSON export (tasks with `data` and `annotations[].result`) was 'no text column (columns found: id,
    annotations, data...)'. Choices are classes, entity labels character spans; the first annotation not cancelled is
    the gold, tasks without one are left out (said). Scored against transformers: accuracy of its argmax, entity F1 of
    its word tags, counted here."""
    import torch
    import transformers

    from inferforge.evaluate import EvalSet, read_eval_data
    from inferforge.tasks import get_task
    from inferforge.tokenization import TextEncoder

    hf = build_tiny_model(tmp_path / "cls", "bert", "text-classification")
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(hf).eval()
    with torch.no_grad():
        best = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.argmax(-1).numpy()
    labels = LABELS["text-classification"]
    gold = [labels[b] if i % 3 else labels[1 - b] for i, b in enumerate(best)]  # every third one wrong
    expected = 100.0 * np.mean([g == labels[b] for g, b in zip(gold, best)])

    def choice(name):
        return {"value": {"choices": [name.capitalize()]}, "from_name": "sentiment", "to_name": "text", "type": "choices"}

    tasks = [{"id": i + 1, "data": {"text": t}, "annotations": [{"id": i, "result": [choice(g)], "was_cancelled": False}],
              "predictions": []} for i, (t, g) in enumerate(zip(TEXTS, gold))]
    tasks[0]["annotations"].insert(0, {"result": [choice(labels[1 - labels.index(gold[0])])], "was_cancelled": True})
    tasks[1]["annotations"].append({"result": [choice(labels[1 - labels.index(gold[1])])]})  # a second annotator
    tasks.append({"id": 99, "data": {"text": "not annotated yet"}, "annotations": []})
    path = tmp_path / "project-1-at-2026.json"
    path.write_text(json.dumps(tasks, indent=2))
    task = get_task("text-classification")
    line = path.read_text().splitlines().index('    "id": 99,')  # the line of its "{" (1-based)
    data = read_eval_data(path, task)
    assert (data.file_format, data.texts, data.labels[2]) == ("Label Studio JSON", TEXTS, gold[2].capitalize())
    assert data.notes[-1] == (f"{path} is a Label Studio export: each task's fields and the label of its first annotation "
                              f"are read; 1 task has several annotations; the first of each is taken as the gold; 1 task "
                              f"has no annotation or an empty one (the first: task 99 (line {line}) of {path}); such "
                              f"tasks are left out")
    encoder = TextEncoder.from_dir(hf, list(tokenizer.model_input_names), 128)
    engine = _HFEngine(model, list(tokenizer.model_input_names))
    assert EvalSet(task, encoder, data, labels).score(engine).value == pytest.approx(expected, abs=1e-9)
    # two choice controls (sentiment and topic) are two columns, not one set of classes (a silent multi-label row)
    for t in tasks:
        for a in t["annotations"]:
            a["result"].append({"value": {"choices": ["Sports"]}, "from_name": "topic", "to_name": "text",
                                "type": "choices"})
    path.write_text(json.dumps(tasks, indent=2))
    data = read_eval_data(path, task)
    assert (data.columns.label, data.labels[2]) == ("sentiment", gold[2].capitalize())
    assert "each choice control as a column (sentiment, topic; name the one to score with --label-column)" in data.notes[-1]
    assert EvalSet(task, encoder, data, labels).score(engine).value == pytest.approx(expected, abs=1e-9)
    assert read_eval_data(path, task, label_column="topic").labels == ["Sports"] * len(TEXTS)
    # Prodigy: accepted examples only (a rejected binary label says which class a text is NOT: it was read as its class)
    prodigy = tmp_path / "prodigy.jsonl"
    rows = [{"text": t, "label": g, "answer": "accept", "_input_hash": i, "_task_hash": i} for i, (t, g) in
            enumerate(zip(TEXTS, gold))]
    rows.insert(2, {"text": "rejected", "label": "POSITIVE", "answer": "reject", "_input_hash": 9, "_task_hash": 9})
    rows.append({"text": "skipped", "label": "NEGATIVE", "answer": "ignore", "_input_hash": 8, "_task_hash": 8})
    prodigy.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = read_eval_data(prodigy, task)
    assert data.texts == TEXTS and data.notes[-1] == (
        f"{prodigy} is a Prodigy export: the accepted examples are read; examples not accepted (1 reject, 1 ignore; the "
        f"first at line 3) say at most which class a text is not, so they are left out")
    assert EvalSet(task, encoder, data, labels).score(engine).value == pytest.approx(expected, abs=1e-9)
    choice = [{"text": t, "accept": [g], "answer": "accept", "_task_hash": i} for i, (t, g) in enumerate(zip(TEXTS, gold))]
    prodigy.write_text("".join(json.dumps(r) + "\n" for r in choice))  # the choice interface: classes in 'accept'
    data = read_eval_data(prodigy, task)
    assert data.labels == gold and data.columns.label == "label"
    assert EvalSet(task, encoder, data, labels).score(engine).value == pytest.approx(expected, abs=1e-9)
    # fastText's supervised .txt (__label__name text): it was 'a .txt file only in CoNLL layout'
    fasttext = tmp_path / "reviews.test.txt"
    fasttext.write_text("".join(f"__label__{g.lower()} {t}\n" for t, g in zip(TEXTS, gold)))
    data = read_eval_data(fasttext, task)
    assert (data.file_format, data.texts, data.labels) == ("fastText", TEXTS, [g.lower() for g in gold])
    assert EvalSet(task, encoder, data, labels).score(engine).value == pytest.approx(expected, abs=1e-9)
    fasttext.write_text("__label__positive fine\nno label here\n")
    with pytest.raises(UserError, match=r"Cannot read labelled data from .*reviews.test.txt: .*or fastText's"):
        read_eval_data(fasttext, task)  # not every line labelled: plain text, refused
    fasttext.write_text("__label__positive fine\n__label__negative\n")
    with pytest.raises(UserError, match=r"Line 2 of .*reviews.test.txt is not a fastText line \(__label__name, then "
                                        r"the text\)"):
        read_eval_data(fasttext, task)

    # entities: spans over the words of NER_WORDS; an empty result is a sentence without entities
    encoder, engine, predicted = _token_model(tmp_path)
    tags = [list(t) for t in predicted]
    tags[0] = ["B-PER", "O", "B-PER", "O", "B-LOC"]
    tags[1] = ["B-LOC", "O", "O"]
    tags[3] = ["O"] * 5
    expected = _hand_f1(tags, predicted)
    assert 0 < expected < 100
    tasks = []
    for i, (words, row) in enumerate(zip(NER_WORDS, tags)):
        starts = np.cumsum([0] + [len(w) + 1 for w in words])
        result = [{"value": {"start": int(starts[a]), "end": int(starts[b - 1] + len(words[b - 1])),
                             "text": " ".join(words[a:b]), "labels": [kind]}, "type": "labels", "from_name": "label",
                   "to_name": "text"} for a, b, kind in _hand_entities(row)]
        tasks.append({"id": i, "data": {"text": " ".join(words)}, "annotations": [{"result": result}]})
    assert tasks[3]["annotations"][0]["result"] == []
    path = tmp_path / "ner.json"
    path.write_text(json.dumps(tasks))
    data = read_eval_data(path, get_task("token-classification"))
    assert data.texts == [" ".join(w) for w in NER_WORDS] and data.file_format == "Label Studio JSON"
    assert _scored(data, encoder, engine).value == pytest.approx(expected, abs=1e-9)
    for result in ("bad", ["bad"], [{"type": "labels", "value": "zz"}]):  # a traceback before it was checked
        path.write_text(json.dumps([{"id": 5, "data": {"text": "x"}, "annotations": [{"result": result}]}]))
        with pytest.raises(UserError, match=r"The annotation at task 5 \(line 1\) of .*ner.json has a 'result' that is "
                                            r"not a list of objects with a 'value' object"):
            read_eval_data(path, get_task("token-classification"))
    tasks[0]["annotations"][0]["result"][0]["value"]["labels"] = ["PER", "LOC"]
    path.write_text(json.dumps(tasks))
    with pytest.raises(UserError, match=r"An entity at task 0 \(line 1\) of .*ner.json has 2 labels \(PER, LOC\); give "
                                        r"each entity one label\."):
        read_eval_data(path, get_task("token-classification"))


def test_a_folders_test_split_of_triplets_or_word_rows_is_not_passed_over(tmp_path):
    """A folder's default split is passed over when it has no label column (GLUE's test splits); a test split of
    triplets (no score column) or of word rows (a 'Tag' column) has gold and is read, not the dev split after it."""
    from inferforge.evaluate import read_eval_data
    from inferforge.tasks import get_task

    folder = tmp_path / "all-nli-triplet"
    folder.mkdir()
    for split, anchor in (("test", "a test anchor"), ("dev", "a dev anchor")):
        (folder / f"{split}.jsonl").write_text(json.dumps({"anchor": anchor, "positive": "p", "negative": "n"}) + "\n")
    data = read_eval_data(folder, get_task("feature-extraction"))
    assert (data.split, data.texts, data.triplets) == ("test", ["a test anchor"], True)
    folder = tmp_path / "ner"
    folder.mkdir()
    for split, word in (("test", "Alice"), ("dev", "Bob")):
        (folder / f"{split}.csv").write_text(f"Word,Tag\n{word},B-PER\nran,O\n\nParis,B-LOC\n")
    data = read_eval_data(folder, get_task("token-classification"))
    assert (data.split, data.texts) == ("test", ["Alice ran", "Paris"])


def _brat_document(folder, name, sentences, tags_of, extra=()):
    """A BRAT document: `name`.txt with a sentence per line, `name`.ann with a T line per entity of its IOB2 tags (as
    brat writes them: TYPE START END, the covered text), then `extra` lines (relations, notes...)."""
    folder.mkdir(parents=True, exist_ok=True)
    text, lines = "", []
    for words, tags in zip(sentences, tags_of):
        starts = []
        for word in words:
            starts.append(len(text))
            text += word + " "
        text = text[:-1] + "\n"
        for start, end, kind in _hand_entities(tags):
            a, b = starts[start], starts[end - 1] + len(words[end - 1])
            lines.append(f"T{len(lines) + 1}\t{kind} {a} {b}\t{text[a:b]}")
    (folder / f"{name}.txt").write_text(text)
    (folder / f"{name}.ann").write_text("".join(line + "\n" for line in [*lines, *extra]))
    return folder / f"{name}.ann"


def test_brat_standoff_documents_scored_as_entity_spans(tmp_path):
    """BRAT's .ann + .txt (brat, INCEpTION, most biomedical NER corpora) were not read. A folder of test/ and train/
    documents, a single .ann and its .txt: each line a sentence, its T lines as entity spans; relations, notes and an
    entity nested in another are left out and said. Scored against transformers' word tags, F1 counted here."""
    from inferforge.evaluate import read_eval_data
    from inferforge.tasks import get_task

    encoder, engine, gold, expected = _ner_gold(tmp_path)
    task = get_task("token-classification")
    corpus = tmp_path / "corpus"
    first = _brat_document(corpus / "test", "doc1", NER_WORDS[:2], gold[:2],
                           ["T9\tLOC 0 3\tAli", "R1\tMeets Arg1:T1 Arg2:T2", "#1\tAnnotatorNotes T1\tchecked"])
    _brat_document(corpus / "test", "doc2", NER_WORDS[2:], gold[2:], ["A1\tNegated T1"])
    _brat_document(corpus / "train", "doc3", NER_WORDS[:1], [["O"] * 5])
    data = read_eval_data(corpus, task)
    assert data.texts == [" ".join(words) for words in NER_WORDS] and data.split == "test"
    assert data.file_format == "BRAT standoff" and data.where(2) == f"line 1 of {corpus / 'test' / 'doc2.txt'}"
    assert (f"{corpus / 'test'} is BRAT standoff (2 documents): each line of a document's .txt is a row, its entities "
            f"(the T lines of its .ann) read as words tagged B-/I-; 1 relation, 1 note and 1 attribute (lines other "
            f"than T) make no tags and are left out; 1 entity is inside or overlapping another, so left out since a "
            f"word has one tag (the one starting first, the longer at the same start, is kept)") in data.notes
    assert _scored(data, encoder, engine).value == pytest.approx(expected, abs=1e-9)
    for path in (first, first.with_suffix(".txt")):  # one document, named by its .ann or its .txt
        data = read_eval_data(path, task)
        assert data.texts == [" ".join(words) for words in NER_WORDS[:2]]
    # Windows line ends in the .txt, offsets counted on Unix ones (as brat writes them)
    text = first.with_suffix(".txt")
    text.write_bytes(text.read_bytes().replace(b"\n", b"\r\n"))
    assert read_eval_data(corpus, task).texts == data.texts + [" ".join(words) for words in NER_WORDS[2:]]
    with pytest.raises(UserError, match=r"holds entities of its texts \(BRAT standoff\), data for token-classification"):
        read_eval_data(first, get_task("text-classification"))
    first.write_text("T1\tPER 0 4\tAlice\n")
    with pytest.raises(UserError, match=rf"Entity T1 on line 1 of {first} is 'Alice' but characters 0-4 of "
                                        rf"{first.with_suffix('.txt')} are 'Alic'; the offsets do not fit the text"):
        read_eval_data(first, task)
    first.with_suffix(".txt").unlink()
    with pytest.raises(UserError, match=r"doc1.ann has no doc1.txt beside it"):
        read_eval_data(first, task)


def test_one_hot_labels_on_a_single_label_model_are_its_classes(tmp_path):
    """One-hot vectors ([0, 1, 0], Keras' categorical labels) on a softmax model were read as multi-label sets and
    scored by micro F1 of sigmoids; they are each row's class, scored by accuracy against transformers' argmax. On a
    multi-label model the same vectors stay sets. Sets of several classes on a model whose config.json names no
    problem_type are multi-label (as transformers trains a model given them), and the note says why."""
    import torch

    from inferforge.evaluate import EvalSet
    from inferforge.labelled_data import DataColumns, LabelledData
    from inferforge.tasks import get_task

    task = get_task("text-classification")
    for names in (["anger", "joy", "sadness"], ["NEGATIVE", "POSITIVE"]):
        tokenizer, model, encoder, engine = _multi_label_model(tmp_path / str(len(names)), names, problem_type=None)
        with torch.no_grad():
            logits = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
        predicted = logits.argmax(-1)
        gold = [(p + 1) % len(names) if i % 3 == 0 else int(p) for i, p in enumerate(predicted)]
        expected = 100.0 * np.mean(np.array(gold) == predicted)
        assert 0 < expected < 100
        one_hot = [[int(c == g) for c in range(len(names))] for g in gold]
        data = LabelledData(TEXTS, None, one_hot, list(range(1, len(TEXTS) + 1)), "t.jsonl",
                            DataColumns("text", None, "labels"))
        eval_set = EvalSet(task, encoder, data, names, problem_type=None)
        assert eval_set.primary == "accuracy" and eval_set.score(engine).value == pytest.approx(expected, abs=1e-9)
        assert "labels are 0/1 vectors, one value per class in the model's order" in eval_set.label_mapping["note"]
        as_sets = EvalSet(task, encoder, data, names, problem_type="multi_label_classification")
        sigmoid = 1 / (1 + np.exp(-logits)) > 0.5
        hot = np.array(one_hot, dtype=bool)
        tp, fp, fn = (hot & sigmoid).sum(), (~hot & sigmoid).sum(), (hot & ~sigmoid).sum()
        assert as_sets.primary == "micro_f1"
        assert as_sets.score(engine).value == pytest.approx(100.0 * 2 * tp / (2 * tp + fp + fn), abs=1e-9)
    sets = [[0, 2], [1], [], [0, 1, 2], [2], [1, 2], [0], [1]]
    data = LabelledData(TEXTS, None, sets, list(range(1, len(TEXTS) + 1)), "t.jsonl", DataColumns("text", None, "labels"))
    _, _, encoder, _ = _multi_label_model(tmp_path / "sets", ["anger", "joy", "sadness"], problem_type=None)
    eval_set = EvalSet(task, encoder, data, ["anger", "joy", "sadness"], problem_type=None)
    assert eval_set.multi_label
    assert ("the model's config.json names no problem_type and the labels are sets of classes, so it is taken as "
            "multi-label, as transformers trains a model given such labels (a sigmoid per class)"
            in eval_set.label_mapping["note"])
