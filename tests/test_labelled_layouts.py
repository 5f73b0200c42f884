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
