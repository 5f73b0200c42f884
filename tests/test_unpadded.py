"""A model that takes no attention mask (FNet mixes every position, padding included) gives each text the answer
transformers gives that text alone, whatever texts it is batched with: rows of each length run unpadded."""

from __future__ import annotations

import numpy as np
import pytest

import inferforge
from inferforge.engines.base import length_groups, run_by_length
from tiny_models import build_tiny_model

torch = pytest.importorskip("torch")

TEXTS = ["Alice met Bob in Paris last summer", "short", "the movie was great and the actors were wonderful in every "
         "single scene of it", "Ünïcödé text, with émojis 🙂 too.", "a tie", "short"]


@pytest.mark.parametrize("task", ["text-classification", "token-classification", "feature-extraction"])
def test_each_text_gets_its_answer_alone(tmp_path, task):
    import transformers

    hf = build_tiny_model(tmp_path / "hf", "fnet", task)
    inferforge.convert(str(hf), task, tmp_path / "out", variants="ort-fp32", shapes="1x8", nb_measures=1, warmup=0,
                       threads=1)
    model = inferforge.load(tmp_path / "out", threads=1)
    assert model.manifest.reads_padding
    together = model.predict(TEXTS)
    alone = [model.predict([text])[0] for text in TEXTS]
    if task == "token-classification":
        assert together == alone
    elif task == "text-classification":
        assert [a["label"] for a in together] == [a["label"] for a in alone]
        np.testing.assert_allclose([a["score"] for a in together], [a["score"] for a in alone], atol=1e-6)
    # and what transformers gives each text alone, unpadded
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    auto = {"text-classification": transformers.AutoModelForSequenceClassification,
            "token-classification": transformers.AutoModelForTokenClassification,
            "feature-extraction": transformers.AutoModel}[task]
    reference = auto.from_pretrained(hf).eval()
    for index, text in enumerate(TEXTS):
        encoded = tokenizer([text], return_tensors="pt")
        encoded.pop("attention_mask", None)
        with torch.no_grad():
            out = reference(**encoded)
        if task == "text-classification":
            probs = out.logits.softmax(-1)[0].numpy()
            assert together[index]["label"] == reference.config.id2label[int(probs.argmax())]
            assert together[index]["score"] == pytest.approx(float(probs.max()), abs=1e-5)
        elif task == "feature-extraction":  # mean pooling over the real tokens
            mean = out.last_hidden_state[0].mean(0).numpy()
            np.testing.assert_allclose(np.asarray(together[index]), mean, atol=1e-4, rtol=1e-4)


def test_rows_of_one_length_run_together_and_per_token_outputs_are_padded_back():
    calls = []

    def run(arrays):
        ids = arrays["input_ids"]
        calls.append(ids.shape)
        return {"pooled": ids.sum(axis=1, keepdims=True) * 1.0 + ids.shape[1], "tokens": ids * 10}

    ids = np.array([[5, 6, 0, 0], [7, 8, 9, 4], [1, 2, 0, 0]])
    out = run_by_length(run, {"input_ids": ids}, [2, 4, 2], {"tokens"}, slack=1.0)
    assert sorted(calls) == [(1, 4), (2, 2)]
    np.testing.assert_array_equal(out["pooled"][:, 0], [11 + 2, 28 + 4, 3 + 2])
    np.testing.assert_array_equal(out["tokens"], [[50, 60, 0, 0], [70, 80, 90, 40], [10, 20, 0, 0]])


def test_length_groups_bound_the_padding_computed():
    lengths = [30, 5, 6, 28, 7, 120, 29, 5]
    groups = length_groups(lengths, slack=1.25)
    assert sorted(row for group in groups for row in group) == list(range(len(lengths)))
    for group in groups:  # each group padded to its longest computes at most 1.25x its real tokens
        assert len(group) * max(lengths[r] for r in group) <= 1.25 * sum(lengths[r] for r in group)
    assert [sorted(lengths[r] for r in group) for group in groups] == [[5, 5, 6, 7], [28, 29, 30], [120]]
    assert length_groups([4, 4, 9], slack=1.0) == [[0, 1], [2]]
