"""Sentence-transformers directories as the library itself writes them: inferforge's embeddings equal
`SentenceTransformer(folder).encode(...)` for every pooling mode, mode lists, Dense / LayerNorm /
Normalize modules after pooling, and configurations of the 2.x era (legacy `pooling_mode_*` flags);
what it cannot compute is refused in one sentence before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import inferforge
from inferforge.errors import UserError
from tiny_models import build_tiny_model

st = pytest.importorskip("sentence_transformers")
torch = pytest.importorskip("torch")

TEXTS = [
    "Alice met Bob in Paris last summer",
    "the movie was great and the actors were wonderful in every single scene of it",
    "short",
    "Ünïcödé text, with punctuation! And émojis 🙂 too.",
]


def save_sentence_transformer(folder: Path, arch: str, pooling_mode, after: list[str], seed: int = 0) -> Path:
    """A tiny model saved by sentence-transformers: Transformer, Pooling(pooling_mode), then `after` modules."""
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers 6 moved the modules; 2.x-5.x keep them in `models`
        import sentence_transformers.sentence_transformer.modules as models
    except ImportError:
        from sentence_transformers import models

    hf = build_tiny_model(folder.parent / f"{folder.name}-hf", arch, "feature-extraction", seed=seed)
    torch.manual_seed(seed)
    transformer = models.Transformer(str(hf))
    width = transformer.get_embedding_dimension()
    modules = [transformer, models.Pooling(width, pooling_mode=pooling_mode)]
    width *= 1 if isinstance(pooling_mode, str) else len(pooling_mode)
    for kind in after:
        if kind == "dense-tanh":
            modules.append(models.Dense(width, 16, activation_function=torch.nn.Tanh()))
            width = 16
        elif kind == "dense-identity-nobias":
            modules.append(models.Dense(width, 24, bias=False, activation_function=torch.nn.Identity()))
            width = 24
        elif kind == "dense-residual":
            modules.append(models.Dense(width, width, activation_function=torch.nn.GELU(), use_residual=True))
        elif kind == "layernorm":
            modules.append(models.LayerNorm(width))
            with torch.no_grad():  # not the identity LayerNorm a fresh module starts as
                modules[-1].norm.weight.uniform_(0.5, 1.5)
                modules[-1].norm.bias.uniform_(-0.5, 0.5)
        elif kind == "dropout":
            modules.append(models.Dropout(0.3))
        elif kind == "normalize":
            modules.append(models.Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder


def library_embeddings(folder: Path) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True, batch_size=len(TEXTS))


def convert_and_embed(folder: Path, out: Path) -> np.ndarray:
    result = inferforge.convert(str(folder), "feature-extraction", out, variants="ort-fp32", shapes="1x8",
                                nb_measures=2, warmup=1, threads=1)
    assert result.selected == "ort-fp32"
    return np.asarray(inferforge.load(out, threads=1).predict(TEXTS), dtype=np.float32)


CASES = {
    # name: (architecture, pooling mode(s), modules after pooling)
    "cls-dense-tanh-normalize (LaBSE style)": ("bert", "cls", ["dense-tanh", "normalize"]),
    "mean-max-concatenated": ("bert", ("mean", "max"), []),
    "mean-sqrt-len-layernorm": ("roberta", "mean_sqrt_len_tokens", ["layernorm"]),
    "weightedmean-dense-no-bias-dropout": ("bert", "weightedmean", ["dense-identity-nobias", "dropout"]),
    "lasttoken-dense-residual-normalize": ("xlm-roberta", "lasttoken", ["dense-residual", "normalize"]),
    "cls-max-mean-all-three": ("distilbert", ("cls", "max", "mean"), ["normalize"]),
    # An encoder-decoder read by its encoder alone (T5EncoderModel), as sentence-t5 and GTR-T5 are.
    "t5-encoder-mean-dense-normalize (sentence-t5 style)": ("t5", "mean", ["dense-identity-nobias", "normalize"]),
    "pegasus-encoder-stack-cls": ("pegasus", "cls", ["normalize"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_embeddings_equal_the_sentence_transformers_library(tmp_path, case):
    arch, mode, after = CASES[case]
    folder = save_sentence_transformer(tmp_path / "st", arch, mode, after)
    expected = library_embeddings(folder)
    got = convert_and_embed(folder, tmp_path / "out")
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ["t5", "pegasus"])
def test_whole_encoder_decoder_checkpoints_embed_with_their_encoder(tmp_path, arch):
    """A whole T5 or Pegasus checkpoint (encoder and decoder) for sentence embeddings: the encoder's token states,
    mean-pooled, as sentence-transformers reads these models (T5's AutoModel needs decoder inputs; Pegasus's
    would give the decoder's states)."""
    import transformers

    hf = build_tiny_model(tmp_path / "hf", arch, "feature-extraction")
    got = convert_and_embed(hf, tmp_path / "out")
    arrays = inferforge.load(tmp_path / "out").encoder.encode(TEXTS).arrays
    encoder = transformers.AutoModel.from_pretrained(hf).eval().get_encoder()
    with torch.no_grad():
        states = encoder(input_ids=torch.from_numpy(arrays["input_ids"]),
                         attention_mask=torch.from_numpy(arrays["attention_mask"])).last_hidden_state
    mask = torch.from_numpy(arrays["attention_mask"]).unsqueeze(-1).float()
    np.testing.assert_allclose(got, ((states * mask).sum(1) / mask.sum(1)).numpy(), atol=1e-4, rtol=1e-4)


def test_legacy_pooling_flags_of_sentence_transformers_2(tmp_path):
    """A 2.x-era Pooling config (booleans per mode, CLS and mean both on) still means cls then mean."""
    folder = save_sentence_transformer(tmp_path / "st", "bert", ("cls", "mean"), ["normalize"])
    expected = library_embeddings(folder)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    got = convert_and_embed(folder, tmp_path / "out")
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert json.loads((tmp_path / "out" / "inferforge.json").read_text())["pooling"]["modes"] == ["cls", "mean"]


def test_the_default_prompt_goes_before_every_text_as_encode_puts_it(tmp_path):
    """`default_prompt_name` (an E5/BGE-style "query: " prompt): encode() prefixes every text, so must we; and
    include_prompt false with no prompt to exclude is the plain pooling, not refused."""
    folder = save_sentence_transformer(tmp_path / "st", "bert", "mean", ["normalize"])
    _edit_json(folder / "config_sentence_transformers.json", prompts={"query": "query: ", "passage": "passage: "},
               default_prompt_name="query")
    expected = library_embeddings(folder)
    got = convert_and_embed(folder, tmp_path / "out")
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    _edit_json(folder / "config_sentence_transformers.json", default_prompt_name=None)
    assert np.abs(library_embeddings(folder) - expected).max() > 1e-3  # the prompt changes the vectors
    assert json.loads((tmp_path / "out" / "inferforge.json").read_text())["pooling"]["prompt"] == "query: "

    _edit_json(folder / "1_Pooling" / "config.json", include_prompt=False)
    np.testing.assert_allclose(convert_and_embed(folder, tmp_path / "out2"), library_embeddings(folder),
                               atol=1e-4, rtol=1e-4)


def test_prompt_name_chooses_another_of_the_models_prompts(tmp_path):
    """--prompt-name passage / none: what encode(prompt_name="passage") and encode(prompt="") give; a name the
    model lacks, or a task without prompts, is one sentence and no folder."""
    from sentence_transformers import SentenceTransformer

    folder = save_sentence_transformer(tmp_path / "st", "bert", "mean", ["normalize"])
    _edit_json(folder / "config_sentence_transformers.json", prompts={"query": "query: ", "passage": "passage: "},
               default_prompt_name="query")
    library = SentenceTransformer(str(folder), device="cpu")
    for name, expected in (("passage", library.encode(TEXTS, prompt_name="passage")),
                           ("none", library.encode(TEXTS, prompt=""))):
        out = tmp_path / f"out-{name}"
        inferforge.convert(str(folder), "feature-extraction", out, variants="ort-fp32", shapes="1x8", nb_measures=2,
                           warmup=1, threads=1, prompt_name=name)
        got = np.asarray(inferforge.load(out, threads=1).predict(TEXTS), dtype=np.float32)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(UserError, match="'document' is not among the model's prompts \\('query', 'passage'\\)"):
        inferforge.convert(str(folder), "feature-extraction", tmp_path / "bad", variants="ort-fp32", shapes="1x8",
                           prompt_name="document")
    assert not (tmp_path / "bad").exists()
    cli = subprocess.run([sys.executable, "-m", "inferforge", "convert", str(folder), "--task", "text-classification",
                          "--output", str(tmp_path / "bad"), "--prompt-name", "query"], capture_output=True, text=True)
    assert cli.returncode == 2 and "feature-extraction only" in cli.stdout + cli.stderr
    assert "Traceback" not in cli.stdout + cli.stderr and not (tmp_path / "bad").exists()


REFUSED = {
    "a module it cannot compute": (
        lambda folder: _edit_modules(folder, lambda mods: mods + [{"idx": 9, "name": "9", "path": "",
                                                                  "type": "sentence_transformers.models.LSTM"}]),
        "LSTM.*not one inferforge can compute"),
    "a default prompt left out of pooling": (
        lambda folder: (_edit_json(folder / "1_Pooling" / "config.json", include_prompt=False),
                        _edit_json(folder / "config_sentence_transformers.json", prompts={"query": "query: "},
                                   default_prompt_name="query")),
        "include_prompt"),
    "a default prompt that is not among the prompts": (
        lambda folder: _edit_json(folder / "config_sentence_transformers.json", prompts={"query": "query: "},
                                  default_prompt_name="passage"),
        "passage"),
    "a Dense layer on token embeddings": (
        lambda folder: _edit_json(folder / "2_Dense" / "config.json", module_input_name="token_embeddings"),
        "token embeddings"),
    "an activation from outside torch": (
        lambda folder: _edit_json(folder / "2_Dense" / "config.json", activation_function="mypackage.Swish"),
        "activation"),
}


def _edit_modules(folder: Path, change) -> None:
    path = folder / "modules.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _edit_json(path: Path, **values) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_it_cannot_compute_is_one_sentence_and_no_folder(tmp_path, case):
    edit, words = REFUSED[case]
    folder = save_sentence_transformer(tmp_path / "st", "bert", "mean", ["dense-tanh"])
    edit(folder)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=words):
        inferforge.convert(str(folder), "feature-extraction", out, variants="ort-fp32", shapes="1x8")
    assert not out.exists()
    if case != next(iter(REFUSED)):
        return  # the command line is checked once: the same UserError path for every case
    cli = subprocess.run([sys.executable, "-m", "inferforge", "convert", str(folder), "--task", "feature-extraction",
                          "--output", str(out), "--variants", "ort-fp32"], capture_output=True, text=True)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr + cli.stdout
    assert not out.exists()
