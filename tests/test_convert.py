"""The core pipeline on tiny local models: every task x every architecture in tiny_models (BERT with and
without token type ids, RoBERTa, DistilBERT, ALBERT, ELECTRA, MPNet, XLM-RoBERTa, CamemBERT, DeBERTa v1/v2,
ConvBERT, ModernBERT), checked against transformers itself (not against our own export wrapper)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import inferforge
from inferforge.tasks import get_task, softmax, task_names
import tiny_models
from tiny_models import ARCHITECTURES, MORE_ARCHITECTURES, build_tiny_model

TEXTS = ["The film was a complete waste of two hours.", "Paris is the capital of France.", "Meh.",
         "Barack Obama was born in Honolulu, Hawaii, and later studied law at Harvard University."]
QUESTIONS = ["Where was Barack Obama born?", "What is the capital of France?"]
CONTEXTS = ["Barack Obama was born in Honolulu, Hawaii. He studied law at Harvard.",
            "Paris is the capital and most populous city of France."]


VARIANTS = ("ort-fp32", "ort-fused", "openvino-fp32")


def variants_for(arch: str, task: str) -> tuple[str, ...]:
    """Every variant for BERT; elsewhere OpenVINO (seconds to convert and compile, most of a tiny convert)
    on text-classification only: its graph differs between tasks by nothing but a Linear head."""
    return VARIANTS if arch == "bert" or task == "text-classification" else VARIANTS[:2]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(arch, task) -> (HF dir, ConvertResult), built once: ort-fp32, ort-fused (and openvino-fp32, see
    variants_for) verified and timed (two shapes, two timed runs: seconds per model)."""
    cache = {}

    def get(arch: str, task: str):
        if (arch, task) not in cache:
            root = tmp_path_factory.mktemp(f"{arch}-{task}")
            hf = build_tiny_model(root / "hf", arch, task)
            result = inferforge.convert(str(hf), task, root / "out", variants=",".join(variants_for(arch, task)),
                                        shapes="1x8,2x16", nb_measures=2, warmup=1, threads=1)
            cache[arch, task] = hf, result
        return cache[arch, task]

    return get


def transformers_reference(hf_dir, task: str, texts, pairs=None) -> dict[str, np.ndarray]:
    """What plain transformers computes for the same texts (pooling as sentence-transformers does)."""
    import transformers

    spec = get_task(task)
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    model = spec.auto_model_class().from_pretrained(hf_dir, dtype=torch.float32).eval()  # a half checkpoint too
    batch = tokenizer(texts, pairs, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    if task == "feature-extraction":
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return {"sentence_embedding": ((out.last_hidden_state * mask).sum(1) / mask.sum(1)).numpy()}
    if task == "question-answering":
        per_token = {"start_logits": out.start_logits.numpy(), "end_logits": out.end_logits.numpy()}
    elif task == "token-classification":
        per_token = {"logits": out.logits.numpy()}
    else:
        return {"logits": out.logits.numpy()}
    if tokenizer.padding_side == "left":  # XLNet: each row's tokens moved to its start, as inferforge gives them
        lengths = batch["attention_mask"].sum(1).tolist()
        per_token = {name: np.stack([np.roll(row, n - row.shape[0], axis=0) for row, n in zip(value, lengths)])
                     for name, value in per_token.items()}
    return per_token


def assert_matches_transformers(model, hf, task: str, texts, pairs=None) -> None:
    """Our tokens through the exported graph give what transformers gives for the same texts, within 1e-4
    (per-token outputs on the real tokens: what a model writes at padding positions means nothing)."""
    expected = transformers_reference(hf, task, texts, pairs)
    encoded = model.encoder.encode(texts, pairs)
    got = model.run(encoded.arrays)
    for name, value in expected.items():
        assert got[name].shape == value.shape, name
        if 1 in get_task(task).output_axes(name):
            mask = encoded.token_mask()
            np.testing.assert_allclose(got[name][mask], value[mask], atol=1e-4, rtol=1e-4, err_msg=name)
        else:
            np.testing.assert_allclose(got[name], value, atol=1e-4, rtol=1e-4, err_msg=name)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("task", task_names())
def test_convert_every_task_and_architecture(converted, arch, task):
    hf, result = converted(arch, task)
    variants = variants_for(arch, task)
    for name in variants:
        row = result.row(name)
        assert row.usable, row.reason
        assert row.check.max_abs_diff < 1e-4
        assert set(row.latency) == {"1x8", "2x16"} and row.latency["1x8"].p50_ms > 0
    assert result.selected in variants

    model = inferforge.load(result.output, variant="ort-fp32")
    pairs = CONTEXTS if task == "question-answering" else None
    texts = QUESTIONS if pairs else TEXTS
    assert_matches_transformers(model, hf, task, texts, pairs)
    if task == "text-classification":  # text pairs: segment ids (or their absence) as transformers gives them
        assert_matches_transformers(model, hf, task, TEXTS[:2], TEXTS[2:])
    answers = model.predict(texts, pairs)
    assert len(answers) == len(texts)


def test_only_the_inputs_the_model_takes(converted):
    """token_type_ids only when the model has segment types and its tokenizer hands them over."""
    with_types = ("bert", "albert", "electra", "convbert")
    for arch in ARCHITECTURES:
        expected = ["input_ids", "attention_mask"] + (["token_type_ids"] if arch in with_types else [])
        _, result = converted(arch, "text-classification")
        manifest = json.loads((result.output / "inferforge.json").read_text())
        assert manifest["input_names"] == expected
        import onnx

        graph = onnx.load(str(result.output / "model.onnx"), load_external_data=False).graph
        assert [i.name for i in graph.input] == expected
        for tensor in graph.input:  # dynamic batch and sequence axes
            assert [d.dim_param for d in tensor.type.tensor_type.shape.dim] == ["batch", "sequence"]


def test_run_takes_a_tokenizers_arrays_with_transformers_defaults(converted):
    """`LoadedModel.run` as a transformers model is called: a tokenizer's numpy output as it is, a missing attention
    mask read as all ones and missing token types as zeros (the answers equal those of the full arrays); what it
    cannot read is one sentence, not an engine's traceback."""
    import transformers

    from inferforge.errors import UserError

    hf, result = converted("bert", "text-classification")
    model = inferforge.load(result.output, variant="ort-fp32")
    assert "token_type_ids" in model.engine.input_names
    tokens = transformers.AutoTokenizer.from_pretrained(hf)(TEXTS[:1], return_tensors="np")
    full = model.run({name: tokens[name] for name in ("input_ids", "attention_mask", "token_type_ids")})["logits"]
    np.testing.assert_array_equal(model.run(dict(tokens))["logits"], full)
    np.testing.assert_array_equal(model.run({"input_ids": tokens["input_ids"].tolist()})["logits"], full)
    for bad, said in [({"input_ids": tokens["input_ids"][0]}, "2-D"), ({"attention_mask": tokens["attention_mask"]},
                      "needs 'input_ids'"), ({"input_ids": [[101, 7592], [101]]}, "rectangular"),
                      ({"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"][:, :2]},
                       "must match"), (tokens["input_ids"], "dict of token arrays")]:
        with pytest.raises(UserError, match=said):
            model.run(bad)


def test_predict_answers_per_task(converted):
    _, result = converted("bert", "text-classification")
    model = inferforge.load(result.output)
    answers = model.predict(TEXTS)
    logits = model.run(model.encoder.encode(TEXTS).arrays)["logits"]
    assert [a["label"] for a in answers] == [["NEGATIVE", "POSITIVE"][i] for i in logits.argmax(-1)]
    np.testing.assert_allclose([a["score"] for a in answers], softmax(logits).max(-1), rtol=1e-6)
    pair_answers = model.predict(TEXTS[:2], TEXTS[2:])  # text pairs go through the same path
    assert len(pair_answers) == 2

    for arch in ARCHITECTURES:  # WordPiece, SentencePiece-style and byte-level offsets alike
        _, result = converted(arch, "question-answering")
        qa = inferforge.load(result.output)
        for answer, context in zip(qa.predict(QUESTIONS, CONTEXTS), CONTEXTS):
            assert context[answer["start"]:answer["end"]] == answer["answer"], arch
            assert answer["answer"] == answer["answer"].strip(), arch  # no "▁" space before the answer
            assert 0 <= answer["score"] <= 1

        _, result = converted(arch, "token-classification")
        ner = inferforge.load(result.output)
        for entities, text in zip(ner.predict(TEXTS), TEXTS):
            for entity in entities:
                assert entity["entity"] in ("PER", "LOC")
                assert text[entity["start"]:entity["end"]] == entity["word"], arch
                assert entity["word"] and entity["word"] == entity["word"].strip(), arch

    _, result = converted("distilbert", "feature-extraction")
    emb = inferforge.load(result.output).predict(TEXTS)
    assert np.asarray(emb).shape == (len(TEXTS), 32)


def test_report_files(converted):
    _, result = converted("bert", "feature-extraction")
    report = json.loads((result.output / "report.json").read_text())
    assert report["schema_version"] == 1 and report["task"] == "feature-extraction"
    assert report["selected"] == result.selected
    assert {v["name"] for v in report["variants"]} == {"pytorch-fp32", *VARIANTS}
    assert "amx_bf16" in report["machine"]["isa"] and report["machine"]["libraries"]["onnxruntime"]
    markdown = (result.output / "report.md").read_text()
    assert f"* {result.selected}" in markdown and "| variant |" in markdown
    assert (result.output / "latency.png").stat().st_size > 1000
    assert not list(result.output.parent.glob(".*inferforge-tmp*"))


def test_selection_respects_the_budget(tmp_path):
    """With a budget no reduced-precision variant can meet, only fp32 variants may be selected."""
    hf = build_tiny_model(tmp_path / "hf", "bert", "feature-extraction", seed=1)
    result = inferforge.convert(hf, "feature-extraction", tmp_path / "out",  # a Path works as well as a str
                                variants="ort-fp32,ort-int8-dynamic,openvino-default", shapes="1x8",
                                nb_measures=3, warmup=1, threads=1, atol=1e-5, min_agreement=0.99999)
    from inferforge.cpu import machine_info

    int8 = result.row("ort-int8-dynamic")
    assert int8.status == "failed" and "over the budget" in int8.reason
    # OpenVINO's default precision is reported as what it ran at: bf16 on a bf16 CPU (AVX512-BF16, AMX), else fp32,
    # which then is inside this budget and may be the fastest (it was on an AVX2 EPYC).
    openvino = result.row("openvino-default")
    assert openvino.precision == ("bf16" if machine_info().has_bf16 else "fp32")
    selected = result.row(result.selected)
    assert selected.precision == "fp32" and selected.check.max_abs_diff < 1e-5
    assert result.row("ort-fp32").check.max_abs_diff < 1e-5


def test_sentence_transformers_folder_with_a_transformer_subfolder(tmp_path):
    """sentence-transformers layouts that keep the transformer in 0_Transformer/, with CLS pooling and
    normalization declared in modules.json: the graph pools and normalizes the way the folder says."""
    st = tmp_path / "st"
    hf = build_tiny_model(st / "0_Transformer", "bert", "feature-extraction", seed=3)
    (st / "1_Pooling").mkdir()
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True,
                                                              "pooling_mode_mean_tokens": False}))
    (st / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    result = inferforge.convert(str(st), "feature-extraction", tmp_path / "out", variants="ort-fp32",
                                shapes="1x8", nb_measures=2, warmup=1, threads=1)
    assert result.manifest.pooling["mode"] == "cls" and result.manifest.pooling["normalize"]
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    model = transformers.AutoModel.from_pretrained(hf).eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        cls = model(**batch).last_hidden_state[:, 0]
    expected = torch.nn.functional.normalize(cls, dim=-1).numpy()
    np.testing.assert_allclose(np.asarray(inferforge.load(result.output).predict(TEXTS)), expected, atol=1e-5)


def test_large_models_use_external_data(tmp_path, converted):
    """Past the size threshold (2 GB by default) weights go to a side file that onnxruntime still loads."""
    import shutil

    from inferforge.engines.ort import OrtEngine
    from inferforge.export import resave_onnx

    _, result = converted("bert", "text-classification")
    copy = tmp_path / "model.onnx"
    shutil.copy(result.output / "model.onnx", copy)
    resave_onnx(copy, external_threshold=0)
    assert (tmp_path / "model.onnx.data").stat().st_size > copy.stat().st_size
    arrays = inferforge.load(result.output).encoder.encode(TEXTS).arrays
    expected = OrtEngine(result.output / "model.onnx").run(arrays)["logits"]
    np.testing.assert_allclose(OrtEngine(copy).run(arrays)["logits"], expected, atol=1e-6)


def test_public_names_resolve_and_import_stays_light():
    import subprocess
    import sys

    import inferforge.pipeline  # noqa: F401 - a submodule import must not shadow inferforge.convert

    for name in inferforge.__all__:
        assert getattr(inferforge, name) is not None
    assert callable(inferforge.convert) and callable(inferforge.load)
    code = "import sys, inferforge, inferforge.artifacts; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_attention_is_exported_as_plain_ops_and_the_reference_keeps_its_own(tmp_path, arch):
    """The traced scaled_dot_product_attention brings IsNaN/Where guards no runtime fuses; the export uses
    the eager attention (MatMul, mask, Softmax, MatMul) and gives the model its own attention back."""
    import onnx

    from inferforge.export import export_onnx
    from inferforge.source import load_source

    task = get_task("feature-extraction")
    source = load_source(str(build_tiny_model(tmp_path / "hf", arch, task.name, seed=2)), task)
    before = source.model.config._attn_implementation
    path = export_onnx(source, task, tmp_path / "model.onnx")
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    # One attention Softmax per layer (ConvBERT adds one for its convolution kernels).
    assert "IsNaN" not in ops and ops.count("Softmax") in (source.model.config.num_hidden_layers,
                                                            2 * source.model.config.num_hidden_layers)
    assert source.model.config._attn_implementation == before


@pytest.mark.parametrize("arch", ["xlm-roberta", "modernbert", "albert"])
def test_padding_uses_the_tokenizer_pad_token(converted, arch):
    """The pad id is the tokenizer's (1 for XLM-RoBERTa's <pad>, 3 for this ModernBERT's [PAD]), for
    verification, load() and the Triton tokenizer alike (encoder.json)."""
    import transformers

    hf, result = converted(arch, "feature-extraction")
    expected = transformers.AutoTokenizer.from_pretrained(hf).pad_token_id
    meta = json.loads((result.output / "tokenizer" / "encoder.json").read_text())
    encoder = inferforge.load(result.output).encoder
    assert meta["pad_id"] == encoder.pad_id == expected
    ids = encoder.encode(["Meh.", TEXTS[0]]).arrays["input_ids"]
    assert ids[0, -1] == expected


def test_max_length_leaves_room_for_padding_offset_positions(tmp_path, converted):
    """RoBERTa-style embeddings count positions from pad_token_id + 1: 66 positions hold 64 tokens, even
    when the tokenizer states no limit of its own."""
    from types import SimpleNamespace

    from inferforge.source import _max_length, load_source

    task = get_task("feature-extraction")
    no_limit = SimpleNamespace(model_max_length=int(1e30))
    for arch in ("xlm-roberta", "mpnet", "bert"):
        source = load_source(str(build_tiny_model(tmp_path / arch, arch, task.name)), task)
        assert _max_length(no_limit, source.config, None, source.model) == 64, arch
    _, result = converted("xlm-roberta", "feature-extraction")
    model = inferforge.load(result.output)
    long_text = " ".join(TEXTS * 20)  # far over the limit: truncated, every position in range
    assert model.encoder.encode([long_text]).arrays["input_ids"].shape == (1, 64)
    assert np.isfinite(np.asarray(model.predict([long_text]))).all()


def test_unexportable_operator_is_one_sentence(tmp_path, monkeypatch):
    """An operator no opset expresses: one UserError naming it, after a retry at the newest opset."""
    from inferforge import export as export_module
    from inferforge.errors import UserError
    from inferforge.source import load_source

    tried = []

    def refuse(wrapper, source, task, path, opset):
        tried.append(opset)
        raise RuntimeError(f"Exporting the operator 'aten::fft_fftn' to ONNX opset version {opset} is not supported.")

    monkeypatch.setattr(export_module, "_torch_export", refuse)
    task = get_task("feature-extraction")
    source = load_source(str(build_tiny_model(tmp_path / "hf", "bert", task.name)), task)
    with pytest.raises(UserError) as error:
        export_module.export_onnx(source, task, tmp_path / "model.onnx")
    assert tried == [export_module.OPSET, export_module.MAX_OPSET]
    message = str(error.value)
    assert message == f"BertModel cannot be exported to ONNX: operator aten::fft_fftn is not supported at ONNX opset {export_module.MAX_OPSET}."


def test_repeat_interleave_along_a_negative_dim_exports(tmp_path):
    """CANINE repeats its molecules with repeat_interleave(dim=-2), which the TorchScript exporter recorded with the
    wrong shape: the attention after it got a wrong transpose and its graph failed on every input, the traced one
    too. Exported with the dim counted from the front, the graph gives transformers' per-character logits at the
    traced shape (CANINE stays refused: its local attention is cut into chunks by a Python loop over the length)."""
    import onnxruntime as ort

    from inferforge import export as export_module
    from inferforge.source import load_source

    task = get_task("token-classification")
    source = load_source(str(build_tiny_model(tmp_path / "hf", "canine", task.name)), task)
    wrapper = export_module.export_wrapper(source, task)
    export_module._torch_export(wrapper, source, task, tmp_path / "model.onnx", export_module.OPSET)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    taken = {i.name for i in session.get_inputs()}
    for inputs in export_module.traced_shape_probes(source, task):
        with torch.no_grad():
            expected = source.model(**dict(zip(source.input_names, inputs))).logits.numpy()
        got = session.run(["logits"], {n: t.numpy() for n, t in zip(source.input_names, inputs) if n in taken})[0]
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


# transformers has no question-answering head for these: their per-token head is checked instead.
NO_QA_HEAD = ("esm", "esmc", "eurobert", "gte", "nomic-bert", "openai-privacy-filter", "t5gemma", "modernvbert",
              "ultravbert", "t5gemma2")
# ... nor a sequence-classification head for these: the base model's pooled embedding is the sentence-level check.
NO_SEQUENCE_HEAD = ("splinter", "openai-privacy-filter")


def more_encoder_tasks(arch: str) -> tuple[str, str]:
    return ("feature-extraction" if arch in NO_SEQUENCE_HEAD else "text-classification",
            "token-classification" if arch in NO_QA_HEAD else "question-answering")


def assert_mean_pooled_matches_transformers(model, hf, texts: list[str], encoder_only: bool = False) -> None:
    """A converted sentence-embedding model against transformers' token states mean-pooled over the mask, for `texts`
    (mixed lengths) and one text far over the limit. `encoder_only`: an encoder-decoder's encoder stack (as
    sentence-transformers reads it), else the model AutoModel loads."""
    import transformers

    reference = transformers.AutoModel.from_pretrained(hf).eval()
    if encoder_only and reference.config.is_encoder_decoder:
        reference = reference.get_encoder()
    for batch in (texts, [" ".join(texts * 20)]):
        encoded = model.encoder.encode(batch)
        arrays = {k: torch.from_numpy(v) for k, v in encoded.arrays.items()}
        with torch.no_grad():
            states = reference(input_ids=arrays["input_ids"], attention_mask=arrays["attention_mask"]).last_hidden_state
        mask = arrays["attention_mask"].unsqueeze(-1).float()
        np.testing.assert_allclose(model.run(encoded.arrays)["sentence_embedding"],
                                   ((states * mask).sum(1) / mask.sum(1)).numpy(), atol=1e-4, rtol=1e-4)


def assert_longest_input_matches_transformers(model, hf, task: str) -> None:
    """A text far over the limit, cut where inferforge cuts it: every position the graph sees exists in the
    model (PyTorch would fail on one past its table), and the numbers are transformers' on the same tokens."""
    import inspect

    spec = get_task(task)
    pairs = CONTEXTS[:1] if spec.needs_pairs else None
    encoded = model.encoder.encode([" ".join(TEXTS * 20)], pairs)
    assert encoded.arrays["input_ids"].shape[1] == model.encoder.max_length
    got = model.run(encoded.arrays)
    reference = spec.auto_model_class().from_pretrained(hf).eval()
    params = inspect.signature(reference.forward).parameters
    with torch.no_grad():
        out = reference(**{k: torch.from_numpy(v) for k, v in encoded.arrays.items() if k in params})
    if spec.name == "feature-extraction":  # mean pooling, as sentence-transformers does
        mask = torch.from_numpy(encoded.arrays["attention_mask"]).unsqueeze(-1).float()
        pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
        np.testing.assert_allclose(got["sentence_embedding"], pooled.numpy(), atol=1e-4, rtol=1e-4)
        return
    for name in task_outputs(spec):
        np.testing.assert_allclose(got[name], getattr(out, name).numpy(), atol=1e-4, rtol=1e-4, err_msg=name)


def task_outputs(spec) -> tuple[str, ...]:
    return ("start_logits", "end_logits") if spec.name == "question-answering" else ("logits",)


@pytest.mark.parametrize("arch, task", [(arch, task) for arch in MORE_ARCHITECTURES for task in more_encoder_tasks(arch)])
def test_more_encoders(tmp_path, arch, task):
    """MobileBERT, SqueezeBERT, BigBird, RemBERT, RoFormer, ERNIE, Megatron-BERT, RoCBERT, NomicBERT, UltraBERT,
    YOSO, GTE, Data2VecText, XLM-RoBERTa-XL, RoBERTa-PreLayerNorm, I-BERT, LUKE, X-MOD, Jina v3, ESM, ESM C,
    EuroBERT, XLM, FlauBERT, XLNet (left padding), Nystromformer, Splinter, the OpenAI privacy filter, FNet, the
    encoder-decoders T5, BART, UMT5, mBART and T5Gemma, and on their text alone the image-and-text encoders
    ModernVBERT, UltraVBERT and T5Gemma 2 (refused as needing an image, and T5Gemma 2's vmapped masks untraceable): a
    sentence-level head (text and text pairs; the pooled embedding where there is none) and a per-token one,
    onnxruntime fp32 against transformers within 1e-4, answers with their character spans."""
    hf = build_tiny_model(tmp_path / "hf", arch, task)
    # OpenVINO too where its graph once differed: EuroBERT's mask input took a second, internal tensor name.
    variants = ("ort-fp32", "openvino-fp32") if arch == "eurobert" and task == "text-classification" else ("ort-fp32",)
    result = inferforge.convert(str(hf), task, tmp_path / "out", variants=",".join(variants), shapes="1x8",
                                nb_measures=1, warmup=0, threads=1)
    for name in variants:
        row = result.row(name)
        assert row.usable, row.reason
        assert row.check.max_abs_diff < 1e-4
    model = inferforge.load(result.output, variant="ort-fp32")
    pairs = CONTEXTS if task == "question-answering" else None
    texts = QUESTIONS if pairs else TEXTS
    assert_matches_transformers(model, hf, task, texts, pairs)
    if task == "text-classification":
        assert_matches_transformers(model, hf, task, TEXTS[:2], TEXTS[2:])
    assert_longest_input_matches_transformers(model, hf, task)
    answers = model.predict(texts, pairs)
    if task == "question-answering":
        for answer, context in zip(answers, CONTEXTS):
            assert context[answer["start"]:answer["end"]] == answer["answer"] == answer["answer"].strip()
    elif task == "token-classification":
        for entities, text in zip(answers, TEXTS):
            for entity in entities:
                assert entity["word"] and text[entity["start"]:entity["end"]] == entity["word"]


PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKAL",
            "MKV", "GLSDGEWQQVLNVWGKVEAD", "mkv XB <mask>Z"]


@pytest.mark.parametrize("task", ["text-classification", "token-classification"])
def test_esm_with_its_python_tokenizer(tmp_path, task):
    """ESM checkpoints ship a tokenizer transformers has in Python only (vocab.txt, no tokenizer.json): inferforge
    builds its tokenizer.json twin, used because it gives the same ids, and the answers are transformers'."""
    import transformers

    hf = tmp_path / "esm"
    hf.mkdir()
    letters = list("LAGVSERTIDPKQNFYMHWCXBUZO.-")
    (hf / "vocab.txt").write_text("\n".join(["<cls>", "<pad>", "<eos>", "<unk>", *letters, "<null_1>", "<mask>"]))
    transformers.EsmTokenizer(str(hf / "vocab.txt"), model_max_length=64).save_pretrained(hf)
    labels = ["O", "B-HELIX", "I-HELIX"] if task == "token-classification" else ["NEGATIVE", "POSITIVE"]
    config = transformers.EsmConfig(vocab_size=len(letters) + 6, pad_token_id=1, mask_token_id=len(letters) + 5,
                                    position_embedding_type="rotary", num_labels=len(labels),
                                    id2label=dict(enumerate(labels)), **tiny_models.SMALL, **tiny_models.INIT,
                                    max_position_embeddings=66)
    model = convert_with_python_tokenizer(hf, task, config, tmp_path / "out")
    assert_matches_transformers(model, hf, task, PROTEINS)  # the first is cut at 64 tokens, as transformers cuts it
    if task == "text-classification":
        assert_matches_transformers(model, hf, task, PROTEINS[:2], PROTEINS[2:])


LAYOUT = "cannot be served by inferforge: besides the text it needs the page layout, a bounding box per token (`bbox`)"
MORE_REFUSALS = {
    ("reformer", "question-answering"): "ReformerForQuestionAnswering cannot be exported to ONNX: it runs Python code "
                                        "the exporter cannot trace (custom torch.autograd.Function _ReversibleFunction).",
    ("lilt", "text-classification"): f"LiltForSequenceClassification {LAYOUT}",
    ("bros", "token-classification"): f"BrosForTokenClassification {LAYOUT}",
    ("layoutlmv3", "question-answering"): f"LayoutLMv3ForQuestionAnswering {LAYOUT}",
    ("markuplm", "text-classification"): "MarkupLMForSequenceClassification cannot be served by inferforge: besides the "
                                         "text it needs the HTML structure, an XPath per token (`xpath_tags_seq`)",
    ("switch-transformers", "feature-extraction"): "SwitchTransformersEncoderModel cannot be exported to ONNX "
                                                   "faithfully (its graph follows the tokens and padding seen while "
                                                   "tracing: Python code that branches on them, such as expert "
                                                   "routing or windowed attention, is frozen at the traced input): "
                                                   "the graph traced on 2 texts of 8 tokens fails on",
    ("lxmert", "question-answering"): "LxmertForQuestionAnswering cannot be served by inferforge: besides the text it "
                                      "needs image regions (`visual_feats` and their boxes)",
    ("tapas", "text-classification"): "TapasForSequenceClassification cannot be served by inferforge: besides the text "
                                      "it needs a table, the column, row and rank of every token (`token_type_ids` of "
                                      "several kinds), and inferforge gives a model text only.",
}


@pytest.mark.parametrize("arch, task", sorted(MORE_REFUSALS))
def test_more_refused_encoders_are_one_sentence(tmp_path, arch, task):
    """Reformer (its reversible layers are Python the exporter cannot trace: said so, not "unordered_map::at"),
    LiLT, BROS, LayoutLMv3 (layout boxes), MarkupLM (XPaths), TAPAS (tables): one sentence, nothing written (LED
    converts since its attention windows export: tests/test_encoder_sweep.py)."""
    from inferforge.errors import UserError

    hf = build_tiny_model(tmp_path / "hf", arch, task)
    with pytest.raises(UserError) as error:
        inferforge.convert(str(hf), task, tmp_path / "out", variants="ort-fp32", shapes="1x8", nb_measures=1,
                           warmup=0, threads=1)
    message = str(error.value)
    assert message.startswith(MORE_REFUSALS[arch, task]) and message.endswith(".") and "\n" not in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


@pytest.mark.parametrize("arch", ["canine", "tapas"])
def test_checkpoints_with_python_only_tokenizers_are_one_sentence(tmp_path, arch):
    """As their checkpoints come, with the tokenizer transformers has in Python only. CANINE (Unicode code points as
    ids, 1.1 million of them; past its tokenizer, its local attention is cut into chunks by a Python loop over the
    length, and texts under 4 characters fail in PyTorch itself): refused for its tokenizer. TAPAS: refused for the
    table it reads, whatever its tokenizer. One sentence, nothing written."""
    import transformers

    from inferforge.errors import UserError

    hf = tmp_path / "hf"
    if arch == "canine":
        tokenizer = transformers.CanineTokenizer(model_max_length=64)
        config = transformers.CanineConfig(**tiny_models.SMALL, downsampling_rate=4, num_hash_buckets=64,
                                           max_position_embeddings=256)
        model = transformers.CanineForSequenceClassification(config)
        expected = (f"'{hf}' has no fast tokenizer (tokenizer.json; its CanineTokenizer exists in Python only); "
                    "inferforge needs one to serve the model.")
        assert not tokenizer.is_fast
        tokenizer.save_pretrained(hf)
    else:  # TapasTokenizer's files as its checkpoints hold them (it needs pandas even to load: refused before that)
        hf.mkdir()
        (hf / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[EMPTY]", *"abcdef"]))
        (hf / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "TapasTokenizer",
                                                              "model_max_length": 64}))
        model = transformers.TapasForSequenceClassification(transformers.TapasConfig(
            **tiny_models.SMALL, vocab_size=12, max_position_embeddings=64))
        expected = MORE_REFUSALS["tapas", "text-classification"]
    model.save_pretrained(hf)
    with pytest.raises(UserError) as error:
        inferforge.convert(str(hf), "text-classification", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                           nb_measures=1, warmup=0, threads=1)
    assert str(error.value) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def convert_with_python_tokenizer(hf, task: str, config, out):
    """A random-weight model of `config` saved beside a tokenizer transformers has in Python only, converted
    (ort-fp32, verified within 1e-4) and loaded."""
    import transformers

    torch.manual_seed(0)
    get_task(task).auto_model_class().from_config(config).save_pretrained(hf)
    assert not transformers.AutoTokenizer.from_pretrained(hf).is_fast
    result = inferforge.convert(str(hf), task, out, variants="ort-fp32", shapes="1x8", nb_measures=1, warmup=0,
                                threads=1)
    assert result.row("ort-fp32").check.max_abs_diff < 1e-4
    return inferforge.load(result.output)


@pytest.mark.parametrize("arch, task", [("perceiver", "text-classification"), ("byt5", "token-classification")])
def test_byte_tokenizers(tmp_path, arch, task):
    """Perceiver and ByT5 read UTF-8 bytes, with tokenizers transformers has in Python only: inferforge builds their
    tokenizer.json twin (each byte's id, the special tokens where they go), used because it gives the same ids, and
    the answers are transformers' (the Python tokenizer's ids), accented and non-Latin text too."""
    import transformers

    hf = tmp_path / "hf"
    labels = tiny_models.LABELS[task]
    head = dict(num_labels=len(labels), id2label=dict(enumerate(labels)), **tiny_models.INIT)
    if arch == "perceiver":  # 128 bytes: no text pair below is cut (the Python tokenizer cuts a tie in another place)
        tokenizer = transformers.PerceiverTokenizer(model_max_length=128)
        config = transformers.PerceiverConfig(d_model=32, d_latents=32, num_latents=8, num_blocks=1,
                                              num_self_attends_per_block=1, num_self_attention_heads=2,
                                              num_cross_attention_heads=2, max_position_embeddings=128,
                                              vocab_size=len(tokenizer), **head)
    else:
        tokenizer = transformers.ByT5Tokenizer(model_max_length=128)
        config = transformers.T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=2,
                                       num_decoder_layers=1, num_heads=2, pad_token_id=0, eos_token_id=1,
                                       decoder_start_token_id=0, **head)
    tokenizer.save_pretrained(hf)
    model = convert_with_python_tokenizer(hf, task, config, tmp_path / "out")
    texts = [*TEXTS, "Zoë fuhr nach Köln, 東京 und São Paulo.", "naïve café 🙂"]
    assert_matches_transformers(model, hf, task, texts)
    if task == "text-classification":
        assert_matches_transformers(model, hf, task, texts[:3], texts[3:])
    else:  # one entity never spans two words unless tagged I-: words end at white space
        for entities, text in zip(model.predict(texts), texts):
            for entity in entities:
                assert text[entity["start"]:entity["end"]] == entity["word"]
    assert_longest_input_matches_transformers(model, hf, task)


def test_t5gemma_sentence_embeddings_read_its_encoder(tmp_path):
    """T5Gemma's encoder-only class refuses a whole checkpoint's config: its sentence embeddings are its encoder
    stack's tokens, mean-pooled (was refused: "T5GemmaEncoderModel only supports encoder-only model")."""
    import transformers

    hf = build_tiny_model(tmp_path / "hf", "t5gemma", "feature-extraction")
    result = inferforge.convert(str(hf), "feature-extraction", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                                nb_measures=1, warmup=0, threads=1)
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    encoder = transformers.AutoModel.from_pretrained(hf).get_encoder().eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = ((states * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(np.asarray(inferforge.load(result.output).predict(TEXTS)), expected, atol=1e-4)


@pytest.mark.parametrize("arch", ["bert", "roberta", "xlnet", "t5"])
def test_benchmark_ids_sit_in_the_tokenizers_frame_of_special_tokens(tmp_path, arch):
    """The benchmark's random ids start and end with the special tokens the model's tokenizer puts around a text
    ([CLS] ... [SEP]; XLNet's <sep> <cls> last; T5-style </s>), as BART's and T5's classification heads need
    (they pool the end-of-sequence token), and hold no other special token."""
    import transformers

    from inferforge.benchmark import Shape, random_inputs
    from inferforge.tokenization import TextEncoder

    tiny_models.build_tokenizer(tmp_path, arch)
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    text = hf("word", return_special_tokens_mask=True)
    content = [i for i, special in enumerate(text["special_tokens_mask"]) if not special]
    prefix, suffix = text["input_ids"][:content[0]], text["input_ids"][content[-1] + 1:]
    assert prefix or suffix
    frame = TextEncoder(tokenizers_twin(hf), ("input_ids", "attention_mask"), 64).id_frame()
    ids = random_inputs(("input_ids",), Shape(3, 16), frame, np.random.default_rng(0))["input_ids"]
    body = ids[:, len(prefix):16 - len(suffix)]
    assert (ids[:, :len(prefix)] == prefix).all() and (ids[:, 16 - len(suffix):] == suffix).all()
    assert not np.isin(body, hf.all_special_ids).any() and len(np.unique(body)) > 10
    assert list(random_inputs(("input_ids",), Shape(1, 1), frame, np.random.default_rng(0))["input_ids"][0]) == \
        (suffix or prefix)[-1:]


def tokenizers_twin(hf_tokenizer):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_checkpoints_are_read_in_fp32(tmp_path, dtype):
    """A checkpoint saved in fp16 or bf16 (common on the hub; transformers 5 loads a model in the dtype it was
    saved in): the reference and the exported graph are fp32, and the answers transformers' in fp32."""
    import onnx
    import transformers

    hf = build_tiny_model(tmp_path / "hf", "bert", "text-classification")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(hf)
    model.to(getattr(torch, dtype)).save_pretrained(hf)
    assert transformers.AutoModelForSequenceClassification.from_pretrained(hf).dtype == getattr(torch, dtype)
    result = inferforge.convert(str(hf), "text-classification", tmp_path / "out", variants="ort-fp32,ort-int8-dynamic",
                                shapes="1x8", nb_measures=1, warmup=0, threads=1)
    assert result.row("ort-fp32").check.max_abs_diff < 1e-4
    assert result.row("ort-int8-dynamic").status in ("passed", "failed", "selected")  # built and judged
    graph = onnx.load(str(tmp_path / "out" / "model.onnx"))
    assert {t.data_type for t in graph.graph.initializer if t.data_type in (1, 10, 16)} == {onnx.TensorProto.FLOAT}
    assert_matches_transformers(inferforge.load(result.output, variant="ort-fp32"), hf, "text-classification", TEXTS)


def test_mixture_of_experts_graphs_hold_for_any_routing(tmp_path):
    """The OpenAI privacy filter's experts: transformers routes tokens with sizes and loops the exporter froze at
    the traced input (the graph then failed on about a quarter of other inputs, or dropped experts). Exported
    with every token computed the same way, it gives transformers' logits on any ids, batch and length."""
    import transformers

    from inferforge.benchmark import Shape, random_inputs

    hf = build_tiny_model(tmp_path / "hf", "openai-privacy-filter", "token-classification")
    result = inferforge.convert(str(hf), "token-classification", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                                nb_measures=1, warmup=0, threads=1)
    model = inferforge.load(result.output)
    reference = transformers.AutoModelForTokenClassification.from_pretrained(hf).eval()
    rng = np.random.default_rng(0)
    for batch, length in [(1, 5), (2, 12), (3, 30), (1, 64)] * 6:
        arrays = random_inputs(("input_ids", "attention_mask"), Shape(batch, length), model.encoder.id_frame(), rng)
        with torch.no_grad():
            expected = reference(**{k: torch.from_numpy(v) for k, v in arrays.items()}).logits.numpy()
        np.testing.assert_allclose(model.run(arrays)["logits"], expected, atol=1e-4, rtol=1e-4)


def test_trust_remote_code_converts_a_model_with_its_own_code(tmp_path):
    """With trust_remote_code the model's own classes are loaded (as transformers loads them) and exported."""
    import transformers

    hf = tiny_models.build_custom_code_model(tmp_path / "hf")
    result = inferforge.convert(str(hf), "text-classification", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                                nb_measures=1, warmup=0, threads=1, trust_remote_code=True)
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(hf, trust_remote_code=True).eval()
    assert type(reference).__name__ == "CustomForSequenceClassification"
    model = inferforge.load(result.output)
    encoded = model.encoder.encode(TEXTS)
    with torch.no_grad():
        expected = reference(**{k: torch.from_numpy(v) for k, v in encoded.arrays.items()}).logits.numpy()
    np.testing.assert_allclose(model.run(encoded.arrays)["logits"], expected, atol=1e-4, rtol=1e-4)


def test_a_result_prints_as_one_line_and_as_its_table_in_a_notebook(converted):
    """`print(inferforge.convert(...))` is one line (the dataclass repr printed every latency of every variant);
    a notebook shows report.md's table."""
    _, result = converted("bert", "text-classification")
    text = repr(result)
    assert "\n" not in text and f"selected={result.selected!r}" in text and len(text) < 600
    assert all(f"{row.name}: {row.status}" in text for row in result.rows)
    assert result._repr_markdown_() == (result.output / "report.md").read_text()


def test_a_base_checkpoint_converted_for_classification_is_warned_about_its_random_head(tmp_path, converted):
    """A checkpoint without its task's head (bert-base-uncased for text-classification) converts, verified and
    timed as any model, but transformers initialized the head at random: report.json, report.md and the
    command line say so. A checkpoint with its head, or an embedding model without a pooler, is not warned."""
    import transformers
    from typer.testing import CliRunner

    from inferforge.cli import app

    hf, _ = converted("bert", "feature-extraction")
    base = tmp_path / "base"
    model = transformers.AutoModel.from_pretrained(hf, add_pooling_layer=False)
    model.save_pretrained(base)
    transformers.AutoTokenizer.from_pretrained(hf).save_pretrained(base)
    out = tmp_path / "cls"
    run = CliRunner().invoke(app, ["convert", str(base), "--task", "text-classification", "--output", str(out),
                                   "--variants", "ort-fp32", "--shapes", "1x8", "--nb-measures", "1", "--threads", "1"])
    assert run.exit_code == 0, run.output
    warnings = json.loads((out / "report.json").read_text())["warnings"]
    assert len(warnings) == 1 and "classifier.weight" in warnings[0] and "pooler" in warnings[0], warnings
    assert "initialized them at random" in warnings[0]
    assert f"**Warning:** {warnings[0]}" in (out / "report.md").read_text()
    assert "warning: " in run.output and "at random" in " ".join(run.output.split())
    embedded = inferforge.convert(str(base), "feature-extraction", tmp_path / "emb", variants="ort-fp32",
                                  shapes="1x8", nb_measures=1, warmup=0, threads=1)
    assert embedded.report["warnings"] == []
    assert converted("bert", "text-classification")[1].report["warnings"] == []


def test_a_model_whose_padding_leaks_in_answers_each_text_alone(converted):
    """ConvBERT's convolutions run over the padded positions (its mask does not reach them): in transformers a
    text's logits changed with the texts padded beside it (by up to 1.2 on this model). Found at convert
    (manifest reads_padding), its texts run at their own length, and each gets transformers' answer for it alone;
    BERT, whose mask hides padding, keeps its padded groups."""
    import transformers

    assert not json.loads((converted("bert", "token-classification")[1].output / "inferforge.json").read_text())[
        "reads_padding"]
    hf, result = converted("convbert", "token-classification")
    model = inferforge.load(result.output, variant="ort-fp32")
    assert model.manifest.reads_padding
    encoded = model.encoder.encode(TEXTS)
    got = model.run_encoded(encoded)["logits"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    reference = transformers.AutoModelForTokenClassification.from_pretrained(hf).eval()
    for row, text in enumerate(TEXTS):
        with torch.no_grad():
            alone = reference(**tokenizer([text], return_tensors="pt")).logits[0].numpy()
        np.testing.assert_allclose(got[row, :len(alone)], alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "-inf"])
def test_atol_must_be_a_finite_number_of_zero_or_more(tmp_path, value):
    """--atol inf would pass every variant (nan none, a negative one none): one sentence and exit 2, before the model
    is read (the model path given does not exist: its error would come second)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "inferforge", "convert", str(tmp_path / "absent"), "--task",
                          "feature-extraction", "--output", str(tmp_path / "out"), f"--atol={value}"],
                         capture_output=True, text=True)
    said = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 2, said
    assert said == f"error: --atol is the largest output difference allowed and cannot be negative, infinite or NaN; " \
                   f"give a number such as 0.05 (got {float(value):g}).", said
    assert not (tmp_path / "out").exists()


def test_a_model_needing_more_than_text_is_refused_for_that_before_its_weights(tmp_path):
    """LayoutLMv2 reads layout boxes and a page image; transformers builds it only with detectron2 installed. It is
    refused for the boxes, from its class, before the weights are read (it was refused for the missing package, with
    a sentence cut short: 'Check out the instructions on the.'). One sentence, exit 2, nothing written."""
    import subprocess
    import sys

    import transformers
    from safetensors.torch import save_file

    hf = tmp_path / "hf"
    tiny_models.build_tokenizer(hf, "bert")
    transformers.LayoutLMv2Config(**tiny_models.SMALL, max_position_embeddings=64, vocab_size=600).save_pretrained(hf)
    save_file({"unused": torch.zeros(1)}, str(hf / "model.safetensors"))
    run = subprocess.run([sys.executable, "-m", "inferforge", "convert", str(hf), "--task", "token-classification",
                          "--output", str(tmp_path / "out")], capture_output=True, text=True)
    said = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 2 and "Traceback" not in said, said
    assert said.endswith("error: LayoutLMv2ForTokenClassification cannot be served by inferforge: besides the text it "
                         "needs the page layout, a bounding box per token (`bbox`), and inferforge gives a model text "
                         "only."), said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


@pytest.mark.skipif(not __import__("inferforge.cpu", fromlist=["machine_info"]).machine_info().has_bf16,
                    reason="PyTorch bf16 runs only on a CPU with AVX512-BF16 or AMX")
def test_pytorch_bf16_runs_a_model_autocast_cannot(tmp_path):
    """X-MOD's language adapters write autocast's bf16 products into fp32 tensors in place ("Index put requires the
    source and destination dtypes match"): the pytorch-bf16 row was an error. It now runs the model cast to bf16."""
    hf = build_tiny_model(tmp_path / "hf", "xmod", "text-classification")
    result = inferforge.convert(str(hf), "text-classification", tmp_path / "out", variants="pytorch-bf16,ort-fp32",
                                shapes="1x8", nb_measures=1, warmup=0, threads=1)
    row = result.row("pytorch-bf16")
    assert row.status != "error" and row.check is not None, row.reason
    assert 0 < row.check.max_abs_diff < 0.1  # bf16, measured against fp32


def test_the_bf16_fallback_computes_only_linear_layers_in_bf16(tmp_path):
    """The fallback keeps layer norms and embeddings in fp32 (the whole model cast to bf16 moved the answers further
    from fp32), and leaves the model it copies untouched."""
    import copy

    from transformers import AutoModelForSequenceClassification

    from inferforge.engines.torch_engine import bf16_linear_copy

    hf = build_tiny_model(tmp_path / "hf", "bert", "text-classification")
    model = AutoModelForSequenceClassification.from_pretrained(hf).eval()
    ids = torch.randint(5, 100, (4, 12), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = model(input_ids=ids).logits
        linear_bf16 = bf16_linear_copy(model)(input_ids=ids).logits
        all_bf16 = copy.deepcopy(model).to(torch.bfloat16)(input_ids=ids).logits.float()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert linear_bf16.dtype == torch.float32
    linear_error = (linear_bf16 - reference).abs().max().item()
    assert 0 < linear_error < (all_bf16 - reference).abs().max().item()


def test_openvino_conversion_sends_no_telemetry_without_consent(tmp_path):
    """OpenVINO's convert_model (and NNCF) count a machine without a consent file as consenting to usage telemetry:
    a client id and statistics under ~/intel, processes posting to Google Analytics. inferforge's conversion declines
    it where the user did not opt in (a run of openvino.convert_model itself, the control, writes ~/intel)."""
    import subprocess
    import sys

    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    runs = {"inferforge": "from inferforge.openvino_tools import convert_onnx; convert_onnx(path)",
            "control": "import openvino as ov; ov.convert_model(str(path))"}
    for name, code in runs.items():
        home = tmp_path / name
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
        done = subprocess.run([sys.executable, "-c", f"path = {str(path)!r}\n{code}\nimport time; time.sleep(1)"],
                              env={**env, "HOME": str(home)}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
        if name == "control":
            assert written, "openvino.convert_model wrote nothing under ~/intel: the control no longer shows telemetry"
        else:
            assert written == [], written


@pytest.mark.parametrize("arch", ["bert", "roberta", "deberta-v2"])
def test_entities_are_grouped_as_the_transformers_simple_aggregation(tmp_path, arch):
    """Entities against transformers' own token-classification pipeline, aggregation_strategy="simple", on random
    weights (tags that change inside words). Two B- tags on the pieces of one word were one entity ("Smith"), the
    pipeline's two ("Sm", "ith")."""
    import transformers

    hf = build_tiny_model(tmp_path / "hf", arch, "token-classification")
    inferforge.convert(str(hf), "token-classification", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                       nb_measures=1, warmup=0, threads=1)
    texts = ["John Smith lives in Paris and works for the United Nations in Geneva.",
             "Marie Curie discovered polonium with Pierre Curie in Warsaw and Paris."] + list(TEXTS_FOR_ENTITIES)
    ours = inferforge.load(tmp_path / "out").predict(texts)
    pipeline = transformers.pipeline("token-classification", model=str(hf), aggregation_strategy="simple",
                                     device="cpu")
    theirs = pipeline(texts)
    assert sum(len(entities) for entities in ours) > 10
    for text, mine, expected in zip(texts, ours, theirs):
        got = [(e["entity"], e["start"], e["end"]) for e in mine]
        # The pipeline also gives "entities" of a lone SentencePiece "▁" (white space alone): not answers here.
        expected = [e for e in expected if (lambda span: span[1] > span[0])(trim(text, e["start"], e["end"]))]
        wanted = [(e["entity_group"], *trim(text, e["start"], e["end"])) for e in expected]
        assert got == wanted, text
        np.testing.assert_allclose([e["score"] for e in mine], [e["score"] for e in expected], atol=1e-4)


TEXTS_FOR_ENTITIES = ("The quick brown fox jumps over the lazy dog near Amsterdam.",
                      "Barack Obama visited Berlin, Tokyo and Nairobi in one week.")


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    from inferforge.tasks import trim_span

    return trim_span(text, start, end)
