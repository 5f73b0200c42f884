"""Sentence-transformers directories as the library itself writes them: inferforge's embeddings equal
`SentenceTransformer(folder).encode(...)` for every pooling mode, mode lists, Dense / LayerNorm /
Normalize modules after pooling, and configurations of the 2.x era (legacy `pooling_mode_*` flags);
what it cannot compute is refused in one sentence before anything is written."""

from __future__ import annotations

import json
import shutil
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


def _modules_path(folder: Path, index: int, path: str) -> None:
    _edit_modules(folder, lambda mods: [{**m, "path": path} if i == index else m for i, m in enumerate(mods)])


def test_the_transformer_modules_own_settings_and_truncate_dim(tmp_path):
    """What the Transformer module's configuration changes, as encode() reads it: a Transformer kept in
    0_Transformer/ with the older per-model config name (sentence_xlm-roberta_config.json), whose max_seq_length
    (12) replaces a smaller tokenizer limit (8) and whose do_lower_case lowercases for a cased tokenizer; and
    config_sentence_transformers.json's truncate_dim, which keeps the first dimensions of the finished vector."""
    from sentence_transformers import SentenceTransformer

    folder = save_sentence_transformer(tmp_path / "st", "xlm-roberta", "mean", ["dense-tanh", "normalize"])
    sub = folder / "0_Transformer"
    sub.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).rename(sub / name)
    (folder / "sentence_bert_config.json").unlink()
    (sub / "sentence_xlm-roberta_config.json").write_text(json.dumps({"max_seq_length": 12, "do_lower_case": True}))
    _edit_json(sub / "tokenizer_config.json", model_max_length=8)
    _modules_path(folder, 0, "0_Transformer")
    _edit_json(folder / "config_sentence_transformers.json", truncate_dim=6)
    texts = TEXTS + ["ALICE MET BOB IN PARIS", "The Movie Was GREAT and the actors were wonderful"]
    library = SentenceTransformer(str(folder), device="cpu")
    expected = library.encode(texts, batch_size=len(texts))
    assert expected.shape == (len(texts), 6)
    assert library[0].max_seq_length == 12 and library[0].do_lower_case  # what the edits mean to the library
    inferforge.convert(str(folder), "feature-extraction", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                       nb_measures=2, warmup=1, threads=1)
    got = np.asarray(inferforge.load(tmp_path / "out", threads=1).predict(texts), dtype=np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_a_cross_encoder_default_prompt_goes_before_the_query(tmp_path):
    """A CrossEncoder saved by sentence-transformers with prompts and a default_prompt_name: predict() puts it
    before the first text of every pair; inferforge's scores (the sigmoid of its one output) equal predict()."""
    from sentence_transformers import CrossEncoder

    hf = build_tiny_model(tmp_path / "hf", "bert", "feature-extraction")
    torch.manual_seed(0)
    CrossEncoder(str(hf), num_labels=1, device="cpu", prompts={"rerank": "Query: "},
                 default_prompt_name="rerank").save(str(tmp_path / "ce"))
    queries, documents = TEXTS[:3] + ["what was great?"], TEXTS[1:] + ["the movie"]
    expected = CrossEncoder(str(tmp_path / "ce"), device="cpu").predict(list(zip(queries, documents)))
    inferforge.convert(str(tmp_path / "ce"), "text-classification", tmp_path / "out", variants="ort-fp32",
                       shapes="1x8", nb_measures=2, warmup=1, threads=1)
    answers = inferforge.load(tmp_path / "out", threads=1).predict(queries, pairs=documents)
    np.testing.assert_allclose([a["score"] for a in answers], expected, atol=1e-4, rtol=1e-4)


def _static_embedding(folder: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(build_tiny_model(folder.parent / "hf", "bert",
                                                                            "feature-extraction"))
    SentenceTransformer(modules=[StaticEmbedding(tokenizer.backend_tokenizer, embedding_dim=16)],
                        device="cpu").save(str(folder))


def _router_of_two_encoders(folder: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Router, Transformer

    hf = build_tiny_model(folder.parent / "hf", "bert", "feature-extraction")
    router = Router.for_query_document(query_modules=[Transformer(str(hf)), Pooling(32, "mean")],
                                       document_modules=[Transformer(str(hf)), Pooling(32, "cls")])
    SentenceTransformer(modules=[router], device="cpu").save(str(folder))


def _splade(folder: Path) -> None:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    hf = build_tiny_model(folder.parent / "hf", "bert", "token-classification")  # a BERT with a head, as an MLM
    SparseEncoder(modules=[MLMTransformer(str(hf)), SpladePooling("max")], device="cpu").save(str(folder))


def _outside(path: str):
    def edit(folder: Path) -> None:
        shutil.copytree(folder / "2_Dense", folder.parent / "elsewhere")
        _modules_path(folder, 2, path.format(elsewhere=folder.parent / "elsewhere"))
    return edit


LIBRARY_DIRECTORIES = {
    # name: (how the directory is made (an edit of a saved Transformer+Pooling+Dense model, or a whole model
    # saved by the library), task, what the sentence says)
    "a StaticEmbedding model": (_static_embedding, "feature-extraction", "StaticEmbedding.*not one inferforge"),
    "a Router between query and document encoders": (_router_of_two_encoders, "feature-extraction",
                                                     "Router.*not one inferforge"),
    "a sparse SPLADE encoder": (_splade, "feature-extraction", "MLMTransformer.*not one inferforge"),
    "a module folder given by an absolute path": (_outside("{elsewhere}"), "feature-extraction",
                                                  "outside the model directory"),
    "a module folder outside through '..'": (_outside("../elsewhere"), "feature-extraction",
                                             "outside the model directory"),
    "an embedding model converted for text-classification": (None, "text-classification",
                                                             "Pooling, Dense.*feature-extraction only"),
}


@pytest.mark.parametrize("case", list(LIBRARY_DIRECTORIES))
def test_library_directories_it_cannot_compute_are_one_sentence(tmp_path, case):
    """Directories the library writes (or one a user edited to reach outside itself) that inferforge cannot
    serve as the library would: one sentence naming what, exit code 2 (checked once), no output folder."""
    make, task, words = LIBRARY_DIRECTORIES[case]
    folder = tmp_path / "st"
    if make is None or make.__name__ == "edit":
        save_sentence_transformer(folder, "bert", "mean", ["dense-tanh"])
    if make is not None:
        make(folder)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=words):
        inferforge.convert(str(folder), task, out, variants="ort-fp32", shapes="1x8")
    assert not out.exists()
    if case == "a Router between query and document encoders":  # no config.json at its root: still the module
        cli = subprocess.run([sys.executable, "-m", "inferforge", "convert", str(folder), "--task", task,
                              "--output", str(out), "--variants", "ort-fp32"], capture_output=True, text=True)
        assert cli.returncode == 2 and "Traceback" not in cli.stderr + cli.stdout
        assert "Router" in cli.stderr + cli.stdout and not out.exists()


def test_a_cross_encoder_answers_through_its_configured_activation(tmp_path):
    """A CrossEncoder saved with activation_fn Identity (as the ms-marco rerankers are): predict() gives the raw logit,
    and so does inferforge's score (it answered the sigmoid); the same activation named the pre-4.0 way in config.json
    (sbert_ce_default_activation_function) too. A plain transformers head with problem_type regression answers its raw
    value, as the transformers pipeline does; an activation inferforge does not answer (Tanh) is one sentence."""
    import transformers
    from sentence_transformers import CrossEncoder

    hf = build_tiny_model(tmp_path / "hf", "bert", "feature-extraction")
    torch.manual_seed(0)
    CrossEncoder(str(hf), num_labels=1, device="cpu", activation_fn=torch.nn.Identity()).save(str(tmp_path / "ce"))
    queries, documents = TEXTS[:3] + ["what was great?"], TEXTS[1:] + ["the movie"]
    old = tmp_path / "ce-3.x"
    shutil.copytree(tmp_path / "ce", old)
    settings = json.loads((old / "config_sentence_transformers.json").read_text())
    del settings["activation_fn"]
    (old / "config_sentence_transformers.json").write_text(json.dumps(settings))
    _edit_json(old / "config.json", sbert_ce_default_activation_function="torch.nn.modules.linear.Identity")
    for folder in (tmp_path / "ce", old):
        expected = CrossEncoder(str(folder), device="cpu").predict(list(zip(queries, documents)))
        assert (expected < 0).any()  # raw logits, not sigmoids
        out = tmp_path / f"out-{folder.name}"
        inferforge.convert(str(folder), "text-classification", out, variants="ort-fp32", shapes="1x8", nb_measures=1,
                           warmup=0, threads=1)
        answers = inferforge.load(out, threads=1).predict(queries, pairs=documents)
        np.testing.assert_allclose([a["score"] for a in answers], expected, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose([a["logit"] for a in answers], expected, atol=1e-4, rtol=1e-4)

    regression = tmp_path / "regression"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "ce")
    model.config.problem_type = "regression"
    model.save_pretrained(regression)
    transformers.AutoTokenizer.from_pretrained(tmp_path / "ce").save_pretrained(regression)
    pipeline = transformers.pipeline("text-classification", model=str(regression), device="cpu")
    inferforge.convert(str(regression), "text-classification", tmp_path / "out-regression", variants="ort-fp32",
                       shapes="1x8", nb_measures=1, warmup=0, threads=1)
    answers = inferforge.load(tmp_path / "out-regression", threads=1).predict(TEXTS)
    np.testing.assert_allclose([a["score"] for a in answers], [p["score"] for p in pipeline(TEXTS)], atol=1e-4)

    _edit_json(tmp_path / "ce" / "config_sentence_transformers.json", activation_fn="torch.nn.modules.activation.Tanh")
    with pytest.raises(UserError, match=r"scores go through torch\.nn\.Tanh, and inferforge answers a one-output "
                                        r"model's sigmoid \(Sigmoid\) or raw logit \(Identity\) only\.$"):
        inferforge.convert(str(tmp_path / "ce"), "text-classification", tmp_path / "tanh", variants="ort-fp32",
                           shapes="1x8")
    assert not (tmp_path / "tanh").exists()


def test_the_transformer_modules_loading_arguments(tmp_path):
    """sentence_bert_config.json's config_kwargs (older name config_args) change the model the library loads (here its
    activation and layer-norm epsilon): inferforge loads it so too (they were ignored: other vectors); model_kwargs
    go to the model's from_pretrained as the library passes them; tokenizer arguments that tokenizer.json cannot carry
    to the server (cutting long texts from the left) are one sentence, nothing written."""
    folder = save_sentence_transformer(tmp_path / "st", "bert", "mean", ["normalize"])
    before = library_embeddings(folder)
    _edit_json(folder / "sentence_bert_config.json", config_kwargs={"hidden_act": "relu", "layer_norm_eps": 0.5},
               model_kwargs={"add_pooling_layer": False, "dtype": "float32"})
    expected = library_embeddings(folder)
    assert np.abs(expected - before).max() > 1e-2  # what the arguments change
    np.testing.assert_allclose(convert_and_embed(folder, tmp_path / "out"), expected, atol=1e-4, rtol=1e-4)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["hidden_act"] == "relu"

    settings = json.loads((folder / "sentence_bert_config.json").read_text())
    settings["config_args"] = settings.pop("config_kwargs")
    (folder / "sentence_bert_config.json").write_text(json.dumps(settings))
    np.testing.assert_allclose(library_embeddings(folder), expected, atol=1e-6)
    np.testing.assert_allclose(convert_and_embed(folder, tmp_path / "out-old-names"), expected, atol=1e-4, rtol=1e-4)

    _edit_json(folder / "sentence_bert_config.json", processor_kwargs={"truncation_side": "left"})
    with pytest.raises(UserError, match=r"loads its tokenizer with truncation_side='left' \(sentence-transformers "
                                        r"tokenizer arguments\), which inferforge cannot give the server: it cuts long "
                                        r"texts from the left\.$"):
        inferforge.convert(str(folder), "feature-extraction", tmp_path / "left", variants="ort-fp32", shapes="1x8")
    assert not (tmp_path / "left").exists()
    _edit_json(folder / "sentence_bert_config.json", processor_kwargs={}, model_kwargs={"no_such_argument": 1})
    with pytest.raises(UserError, match=r"cannot be loaded with its sentence-transformers loading arguments "
                                        r"\(hidden_act, layer_norm_eps, no_such_argument\): BertModel.*no_such_argument"):
        inferforge.convert(str(folder), "feature-extraction", tmp_path / "bad", variants="ort-fp32", shapes="1x8")


@pytest.mark.parametrize("arch", ["longt5-tglobal", "longt5-local", "pegasus-x"])
def test_block_attention_encoders_embed_at_every_length(tmp_path, arch):
    """LongT5 (local and transient-global attention; blocks of 3 and global blocks of 4: every text padded to a
    multiple of 12, the traced 8 tokens too) and PegasusX (blocks of 4) pad a text to a multiple of their block length by an amount transformers
    computes in Python, which the exporter froze at the traced length (the graph failed at any other: refused as
    'windowed attention'). The graph pads each text itself, so the model's own pad amount is 0 at every length: at
    every length from 1 to 64, a full row and a half-padded one give transformers' encoder states mean-pooled, and
    the padded row what transformers gives it alone; predict gives each text's vector alone."""
    import transformers

    from inferforge.export import block_multiple

    hf = build_tiny_model(tmp_path / "hf", arch, "feature-extraction")
    config = transformers.AutoConfig.from_pretrained(hf)
    assert block_multiple(config) == (12 if arch == "longt5-tglobal" else 4)
    got_texts = convert_and_embed(hf, tmp_path / "out")
    model = inferforge.load(tmp_path / "out", threads=1)
    assert not model.manifest.reads_padding
    encoder = transformers.AutoModel.from_pretrained(hf).eval().get_encoder()
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)

    def pooled(ids, mask):
        with torch.no_grad():
            states = encoder(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
        weights = torch.from_numpy(mask).unsqueeze(-1).float()
        return ((states * weights).sum(1) / weights.sum(1)).numpy()

    rng = np.random.default_rng(0)
    for length in range(1, 65):
        ids = rng.integers(5, len(tokenizer), size=(2, length))
        mask = np.ones_like(ids)
        mask[1, max(1, length // 2):] = 0
        ids[1, max(1, length // 2):] = tokenizer.pad_token_id
        got = model.run({"input_ids": ids, "attention_mask": mask})["sentence_embedding"]
        np.testing.assert_allclose(got, pooled(ids, mask), atol=1e-5, rtol=1e-4, err_msg=str(length))
        alone = int(mask[1].sum())
        np.testing.assert_allclose(got[1], pooled(ids[1:, :alone], mask[1:, :alone])[0], atol=1e-5, rtol=1e-4)
    for text, vector in zip(TEXTS, got_texts):
        batch = tokenizer([text], return_tensors="np")
        np.testing.assert_allclose(vector, pooled(batch["input_ids"], batch["attention_mask"])[0], atol=1e-4)
