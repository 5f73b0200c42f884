"""Every bad input of `inferforge convert`: one clear sentence, exit code 2, no traceback, no folder left."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tiny_models import build_custom_code_model, build_tiny_model


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "inferforge", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("cli") / "hf", "bert", "text-classification")


@pytest.fixture(scope="module")
def tiny_fourier(tmp_path_factory):
    """An operator ONNX cannot express: a model (its own code) whose last step is a Fourier transform
    (aten::fft_fft; inferforge rewrites FNet's own Fourier layers, not any model's)."""
    folder = tmp_path_factory.mktemp("fourier")
    return build_custom_code_model(folder, "\n    def forward(self, *args, **kwargs):\n"
                                           "        out = super().forward(*args, **kwargs)\n"
                                           "        out.last_hidden_state = torch.fft.fft(out.last_hidden_state).real\n"
                                           "        return out\n")


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    message = result.stderr + result.stdout
    assert result.returncode == 2, message
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_model_path(tmp_path):
    result = run_cli("convert", str(tmp_path / "no-such-model"), "--task", "feature-extraction",
                     "--output", str(tmp_path / "out"))
    assert_user_error(result, "does not exist")
    assert not (tmp_path / "out").exists()


def test_hub_unreachable_suggests_a_local_path(tmp_path):
    result = run_cli("convert", "some-org/some-model", "--task", "feature-extraction", "--output", str(tmp_path / "out"))
    assert_user_error(result, "Hugging Face Hub", "local directory")
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def _unreachable_hub_env(tmp_path) -> dict:
    """The environment of a run whose hub refuses every connection (a port nothing listens on), HF_HUB_OFFLINE unset
    and the Hugging Face cache in tmp_path/hf."""
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    return {**env, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "COLUMNS": "200"}


def test_a_hub_that_does_not_answer_is_said_at_once(tmp_path):
    """huggingface_hub retried an unreachable hub for about 50 s, printing every retry, before the error."""
    import time

    env = _unreachable_hub_env(tmp_path)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "inferforge", "convert", "some-org/some-model", "--task",
                             "feature-extraction", "--output", str(tmp_path / "out")], capture_output=True, text=True,
                            env=env,
                            timeout=300)
    assert_user_error(result, "'some-org/some-model' is not a local folder, and the Hugging Face Hub (127.0.0.1) "
                              "cannot be reached", "local directory")
    assert "Retry" not in result.stderr and time.monotonic() - started < 30
    assert not (tmp_path / "out").exists()


def test_a_cached_hub_model_is_read_from_the_cache_when_the_hub_does_not_answer(tmp_path, tiny_bert):
    """A hub id in the local Hugging Face cache, the hub out of reach (a laptop offline) and HF_HUB_OFFLINE not set:
    transformers and huggingface_hub retried each file's request for minutes, printing every retry, before reading
    the cache. Now read at once, as with HF_HUB_OFFLINE=1."""
    import shutil
    import time

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--some-org--cached-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_bert, repo / "snapshots" / commit)
    env = _unreachable_hub_env(tmp_path)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "inferforge", "convert", "some-org/cached-model", "--task",
                             "text-classification", "--output", str(tmp_path / "out"), "--variants", "ort-fp32",
                             "--shapes", "1x8", "--nb-measures", "2"], capture_output=True, text=True,
                            env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Retry" not in result.stderr and time.monotonic() - started < 60, result.stderr
    assert (tmp_path / "out" / "inferforge.json").exists()


def test_a_mistyped_local_path_is_not_taken_for_a_hub_id(tmp_path, tiny_bert):
    """'models/bert-tcc', where the folder 'models' is here, went to the hub (about 50 s, then "could not fetch")."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "bert-tc").symlink_to(tiny_bert)
    result = run_cli("convert", "models/bert-tcc", "--task", "text-classification", "--output", "out", cwd=tmp_path)
    assert_user_error(result, "Model path 'models/bert-tcc' does not exist ('models' is a local folder of models, so "
                              "this is read as a path, not a hub id; it holds: bert-tc)")
    assert not (tmp_path / "out").exists()
    # A folder named like a hub organisation that holds no model (a clone of its code, say) leaves the hub id alone.
    (tmp_path / "some-org").mkdir()
    result = run_cli("convert", "some-org/some-model", "--task", "text-classification", "--output", "out", cwd=tmp_path)
    assert_user_error(result, "Hugging Face Hub")


def test_a_models_config_file_given_as_the_model_names_its_folder(tmp_path, tiny_bert):
    result = run_cli("convert", str(tiny_bert / "config.json"), "--task", "text-classification", "--output",
                     str(tmp_path / "out"))
    assert_user_error(result, f"'{tiny_bert / 'config.json'}' is a file; give the model's folder ('{tiny_bert}').")


def test_unknown_task(tmp_path, tiny_bert):
    result = run_cli("convert", str(tiny_bert), "--task", "translation", "--output", str(tmp_path / "out"))
    assert_user_error(result, "Unknown task 'translation'", "feature-extraction")


def test_unexportable_architecture_names_the_operator(tmp_path, tiny_fourier):
    result = run_cli("convert", str(tiny_fourier), "--task", "feature-extraction", "--output", str(tmp_path / "out"),
                     "--shapes", "1x8", "--trust-remote-code")
    assert_user_error(result, "CustomModel cannot be exported to ONNX: operator aten::fft_fft is not supported")
    assert not list(tmp_path.iterdir())  # neither the output nor a temporary folder


@pytest.mark.parametrize("shapes", ["1by16", "0x16", "1x", ""])
def test_malformed_shapes(tmp_path, tiny_bert, shapes):
    result = run_cli("convert", str(tiny_bert), "--task", "text-classification", "--output", str(tmp_path / "out"),
                     "--shapes", shapes)
    assert_user_error(result, "1x16")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, value, words", [
    ("--atol", "-1", "--atol is the largest output difference allowed and cannot be negative"),
    ("--min-agreement", "2", "--min-agreement is a fraction between 0 and 1"),
    ("--variants", ",", "names no variant"),
    ("--threads", "0", "--threads must be at least 1"),
    ("--nb-measures", "0", "--nb-measures must be at least 1"),
])
def test_option_out_of_range(tmp_path, tiny_bert, option, value, words):
    result = run_cli("convert", str(tiny_bert), "--task", "text-classification", "--output", str(tmp_path / "out"),
                     option, value)
    assert_user_error(result, words)
    assert not (tmp_path / "out").exists()


def test_model_folder_without_tokenizer(tmp_path, tiny_bert):
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert / name, bare / name)
    result = run_cli("convert", str(bare), "--task", "text-classification", "--output", str(tmp_path / "out"))
    assert_user_error(result, "has no tokenizer files")
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_force(tmp_path, tiny_bert):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("convert", str(tiny_bert), "--task", "text-classification", "--output", str(out))
    assert_user_error(result, "already exists", "--force")
    assert (out / "keep.txt").read_text() == "mine"


def test_unknown_variant(tmp_path, tiny_bert):
    result = run_cli("convert", str(tiny_bert), "--task", "text-classification", "--output", str(tmp_path / "out"),
                     "--variants", "ort-fp32,tensorrt-magic")
    assert_user_error(result, "Unknown variant 'tensorrt-magic'", "ort-fp32")


def test_cli_end_to_end_prints_the_table(tmp_path, tiny_bert):
    out = tmp_path / "out"
    result = run_cli("convert", str(tiny_bert), "--task", "text-classification", "--output", str(out),
                     "--variants", "ort-fp32,ort-int8-dynamic", "--shapes", "1x8,4x16", "--nb-measures", "3",
                     "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert "pytorch-fp32" in result.stdout and "ort-int8-dynamic" in result.stdout and "Selected:" in result.stdout
    assert (out / "inferforge.json").exists() and (out / "report.md").exists()


def test_missing_option_is_a_usage_error(tmp_path, tiny_bert):
    result = run_cli("convert", str(tiny_bert), "--output", str(tmp_path / "out"))
    assert_user_error(result, "--task")


TEXT_ONLY = "and inferforge gives a model text only."
REFUSALS = {
    "layoutlm": "LayoutLMForSequenceClassification cannot be served by inferforge: besides the text it needs the page "
                f"layout, a bounding box per token (`bbox`), {TEXT_ONLY}",
    "xmod-no-language": "XmodForSequenceClassification cannot be served by inferforge: besides the text it needs a "
                        f"language id per text (`lang_ids`, or a default_language in its config.json), {TEXT_ONLY}",
    "xlm-languages": "XLMForSequenceClassification cannot be served by inferforge: besides the text it needs a "
                     f"language id per token (`langs`), {TEXT_ONLY}",
    "nystromformer": "NystromformerForSequenceClassification cannot be exported to ONNX: tracing it on 2 texts of 8 "
                     "tokens fails (shape '[-1, 2, 4, 16, 16]' is invalid for input of size 512).",
    "mra": "MraForSequenceClassification cannot be served on this machine: in PyTorch here its tokens do not see each "
           "other (its attention gives nothing, as a GPU-only kernel does without a GPU), so its outputs would mean "
           "nothing.",
}


@pytest.mark.parametrize("arch", sorted(REFUSALS))
def test_encoders_that_cannot_be_served_are_one_sentence(tmp_path, arch):
    """Layout boxes, language ids, graphs that only hold at the traced shape, attention that is a CUDA kernel:
    refused in one sentence before any variant is built, and nothing left behind."""
    import inferforge
    from inferforge.errors import UserError

    hf = build_tiny_model(tmp_path / "hf", arch, "text-classification")
    with pytest.raises(UserError) as error:
        inferforge.convert(str(hf), "text-classification", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                           nb_measures=1, warmup=0, threads=1)
    message = str(error.value)
    assert message.startswith(REFUSALS[arch]) and message.endswith(".") and "\n" not in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # neither the output nor a temporary folder


def test_refused_encoder_exits_2_from_the_cli(tmp_path):
    hf = build_tiny_model(tmp_path / "hf", "layoutlm", "text-classification")
    result = run_cli("convert", str(hf), "--task", "text-classification", "--output", str(tmp_path / "out"),
                     "--variants", "ort-fp32", "--shapes", "1x8", "--nb-measures", "1")
    assert_user_error(result, REFUSALS["layoutlm"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def test_tokenizer_with_python_code_is_one_sentence(tmp_path, tiny_bert, monkeypatch):
    """A pre-tokenizer written in Python (RoFormer's jieba word splitting) cannot go into tokenizer.json."""
    import transformers
    from tokenizers.pre_tokenizers import PreTokenizer

    from inferforge.errors import UserError
    from inferforge.source import load_source
    from inferforge.tasks import get_task

    class Words:
        def pre_tokenize(self, pretok):
            pretok.split(lambda i, s: [s])

    load = transformers.AutoTokenizer.from_pretrained

    def custom(*args, **kwargs):
        tokenizer = load(*args, **kwargs)
        tokenizer.backend_tokenizer.pre_tokenizer = PreTokenizer.custom(Words())
        return tokenizer

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", custom)
    with pytest.raises(UserError, match="has a tokenizer that runs Python code .* tokenizer.json cannot hold"):
        load_source(str(tiny_bert), get_task("text-classification"))


def test_roformer_tokenizer_is_one_sentence(tmp_path):
    """RoFormer's own tokenizer splits Chinese words with rjieba in Python: without the package it cannot load,
    with it tokenizer.json cannot hold it; either way one sentence, exit code 2."""
    import json

    import transformers

    hf = tmp_path / "roformer"
    hf.mkdir()
    (hf / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "was"]) + "\n")
    (hf / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "RoFormerTokenizer",
                                                          "model_max_length": 64}))
    config = transformers.RoFormerConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64, embedding_size=32, vocab_size=8,
                                         max_position_embeddings=64)
    transformers.RoFormerModel(config).save_pretrained(hf)
    result = run_cli("convert", str(hf), "--task", "feature-extraction", "--output", str(tmp_path / "out"))
    assert_user_error(result)
    message = result.stderr + result.stdout
    assert "needs a package that is not installed" in message or "runs Python code" in message, message
    assert not (tmp_path / "out").exists()


def test_no_servable_variant_passes_writes_nothing(tmp_path, tiny_bert):
    """--atol 0: ort-fp32 differs from PyTorch by ~1e-7 and int8 by far more, so no variant the folder could serve
    passes. Exit 2, one sentence naming each variant and by how much it missed, what to loosen, and no folder
    (the PyTorch reference alone cannot be served: `inferforge.load` and `serve` would only fail later)."""
    out = tmp_path / "out"
    result = run_cli("convert", str(tiny_bert), "--task", "text-classification", "--output", str(out),
                     "--variants", "ort-fp32,ort-int8-dynamic", "--atol", "0", "--no-accuracy-search",
                     "--shapes", "1x8", "--nb-measures", "2", "--threads", "1")
    assert_user_error(result)
    message = " ".join(result.stderr.split())
    assert f"error: No variant the output folder could serve passed against PyTorch fp32, so {out} was not written: " \
           "ort-fp32 failed (difference " in message
    assert "is over the budget 0 by " in message and "ort-int8-dynamic failed (difference " in message
    assert message.endswith("; loosen --atol (now 0) or --min-agreement (now 0.98), or choose other --variants.")
    assert message.count("error:") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no folder, no temporary folder


def test_no_servable_variant_in_python_raises_user_error(tmp_path, tiny_bert):
    import inferforge

    with pytest.raises(inferforge.UserError, match=r"ort-fp32 failed \(difference .* is over the budget 0 by "):
        inferforge.convert(tiny_bert, "text-classification", tmp_path / "out", variants="ort-fp32", atol=0.0,
                           shapes="1x8", nb_measures=2, threads=1)
    assert list(tmp_path.iterdir()) == []


def test_only_pytorch_variants_is_refused_before_the_model_loads(tmp_path):
    result = run_cli("convert", str(tmp_path / "no-model-needed"), "--task", "text-classification",
                     "--output", str(tmp_path / "out"), "--variants", "pytorch-bf16")
    assert_user_error(result)
    assert ("error: --variants 'pytorch-bf16' names only PyTorch variants, which the output folder cannot serve; add "
            "one it can, such as ort-fp32 or openvino-default.") in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def test_calibration_pairs_missing_for_qa_stop_before_the_model_loads(tmp_path):
    data = tmp_path / "calib.csv"
    data.write_text("question,label\nWhat is it?,1\n")
    result = run_cli("convert", str(tmp_path / "no-model-needed"), "--task", "question-answering",
                     "--output", str(tmp_path / "out"), "--calibration-data", str(data))
    assert_user_error(result)
    assert (f"error: {data} has no second-text column for question-answering (columns found: question, label); name "
            "it with --pair-column.") in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def test_a_shape_longer_than_the_model_reads_is_one_sentence(tmp_path, tiny_bert):
    """The tiny BERT reads 64 tokens: the default shapes (1x128, 32x128) and --shapes 1x1024 used to end in a
    PyTorch traceback after export and verification; now one sentence that suggests shapes that fit."""
    result = run_cli("convert", str(tiny_bert), "--task", "text-classification", "--output", str(tmp_path / "out"),
                     "--variants", "ort-fp32")
    assert_user_error(result, "Shape 1x128 is longer than the 64 tokens this model reads",
                      "--shapes 1x16,1x64,32x64")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_python_convert_takes_lists_and_says_force_true(tmp_path, tiny_bert):
    import inferforge
    from inferforge.errors import UserError

    out = tmp_path / "out"
    result = inferforge.convert(tiny_bert, "text-classification", out, variants=["ort-fp32"], shapes=["1x8", "2x8"],
                                nb_measures=1, warmup=0, threads=1)
    assert result.selected == "ort-fp32" and result.report["shapes"] == ["1x8", "2x8"]
    with pytest.raises(UserError, match=r"force=True in Python"):
        inferforge.convert(tiny_bert, "text-classification", out, variants="ort-fp32", shapes="1x8")
    with pytest.raises(UserError, match="variants must be names"):
        inferforge.convert(tiny_bert, "text-classification", tmp_path / "o2", variants=[1], shapes="1x8")
    with pytest.raises(UserError, match="shapes must be like"):
        inferforge.convert(tiny_bert, "text-classification", tmp_path / "o2", shapes=[(1, 8)])

    model = inferforge.load(out)
    for texts, pairs, words in [([1], None, "not int"), ([("a", "b")], None, "two lists: predict(texts, pairs)"),
                                ({"text": "a"}, None, "not dict"), (["fine", "  "], None, "text 2 of 2 is empty"),
                                (["a"], [""], "pair 1 of 1 is empty"), (["a\x00b"], None, "NUL byte"),
                                (["ok", "half \ud83d emoji"], None, "text 2 of 2 is not valid Unicode: a lone "
                                 "surrogate (U+D83D) at character 5"),
                                (["a"], ["b\udce9"], "pair 1 of 1 is not valid Unicode")]:
        with pytest.raises(UserError, match=re.escape(words)):
            model.predict(texts, pairs)
    assert model.predict(np.array([["good"], ["bad"]])) == model.predict(["good", "bad"])


def test_a_config_whose_labels_disagree_with_the_head_is_one_sentence(tmp_path, tiny_bert):
    """id2label edited after training (a label dropped): transformers 5 refuses the classifier's weights, pointing at
    a report in its log; this ended in a RuntimeError traceback and exit code 1."""
    import json
    import shutil

    hf = tmp_path / "hf"
    shutil.copytree(tiny_bert, hf)
    config = json.loads((hf / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "ONLY"}, {"ONLY": 0}
    (hf / "config.json").write_text(json.dumps(config))
    result = run_cli("convert", str(hf), "--task", "text-classification", "--output", str(tmp_path / "out"))
    assert_user_error(result, "has weights of other shapes than its config.json gives them (classifier.bias: [2] in "
                      "the checkpoint, [1] by the config;", "its config names 1 label (id2label / num_labels) where "
                      "the checkpoint's head has 2 outputs; give config.json's id2label one name per output.")
    assert not (tmp_path / "out").exists()


def test_tokens_added_without_resizing_the_model_are_said_and_refused(tmp_path, tiny_bert):
    """Tokens added to the tokenizer, the model's embeddings not resized: a text holding one failed in `predict` with
    onnxruntime's Gather error (the server answered a 400 naming the id). Said at convert, refused in one sentence."""
    import shutil

    import transformers

    import inferforge
    from inferforge.errors import UserError

    hf = tmp_path / "hf"
    shutil.copytree(tiny_bert, hf)
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    rows = len(tokenizer)
    tokenizer.add_tokens(["inferforge"])
    tokenizer.save_pretrained(hf)
    result = inferforge.convert(hf, "text-classification", tmp_path / "out", variants="ort-fp32", shapes="1x8",
                                nb_measures=1, warmup=0, threads=1)
    assert any(f"tokens 'inferforge' (ids {rows} and up) are past its model's {rows} token embedding rows" in warning
               for warning in result.report["warnings"]), result.report["warnings"]
    model = inferforge.load(tmp_path / "out")
    assert model.predict(["a fine text"])[0]["label"] in ("NEGATIVE", "POSITIVE")
    with pytest.raises(UserError, match=re.escape(f"The text 2 of 2 holds the token 'inferforge' (id {rows}), outside "
                                                  f"this model's {rows} embedding rows")):
        model.predict(["a fine text", "so inferforge"])


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_a_weights_file_cut_short_is_one_sentence(tmp_path, tiny_bert, weights):
    """A download or copy cut short: safetensors' SafetensorError and torch's PytorchStreamReader RuntimeError ended
    in a traceback and exit code 1."""
    import shutil

    import torch
    from safetensors.torch import load_file

    hf = tmp_path / "hf"
    shutil.copytree(tiny_bert, hf)
    if weights == "pytorch_model.bin":
        torch.save(load_file(hf / "model.safetensors"), hf / weights)
        (hf / "model.safetensors").unlink()
    data = (hf / weights).read_bytes()
    (hf / weights).write_bytes(data[: len(data) // 2])
    result = run_cli("convert", str(hf), "--task", "text-classification", "--output", str(tmp_path / "out"))
    assert_user_error(result, "has a weights file that cannot be read (", "): it is damaged or incomplete, as after an "
                      "interrupted download or copy; fetch or save it again.")
    assert not (tmp_path / "out").exists()


def test_a_model_with_its_own_code_needs_trust_remote_code(tmp_path):
    """Custom code (config.json auto_map) is never run unless asked: one sentence naming the files and the flag."""
    from tiny_models import build_custom_code_model

    hf = build_custom_code_model(tmp_path / "hf")
    result = run_cli("convert", str(hf), "--task", "text-classification", "--output", str(tmp_path / "out"))
    assert_user_error(result, "runs its own Python code (configuration_custom.py, modeling_custom.py)",
                      "--trust-remote-code")
    assert not (tmp_path / "out").exists()


def test_an_error_that_says_nothing_is_named_by_its_type():
    """A library's bare `assert` (onnxruntime's fusion optimizer asserts on a model without attention heads) has
    no message: the variant's reason, and any sentence quoting an error, names its type instead of crashing on
    an empty first line."""
    from inferforge.errors import first_line

    assert first_line(AssertionError()) == "AssertionError"
    assert first_line(ValueError("\n\n  shape mismatch.\nmore")) == "shape mismatch"
    long = ValueError("word " * 100)
    assert first_line(long, 50).endswith("...") and len(first_line(long, 50)) <= 53


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`inferforge ARGS` in this process, through the CLI's own main() (its error handling and exit codes); the
    signal handlers main() installs are put back afterwards."""
    import signal

    from inferforge import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(sys, "argv", ["inferforge", *args])
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        cli.main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


def test_force_replaces_only_a_folder_inferforge_wrote(tmp_path, tiny_bert, monkeypatch, capsys):
    """--force used to rmtree whatever --output named, after the conversion: a folder of the user's files, the
    model's own folder (its weights gone), and a file ended in a traceback after the whole run. Each is refused
    before the model loads, and nothing is touched."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    afile = tmp_path / "notes.txt"
    afile.write_text("mine too")
    model_files = sorted(p.name for p in tiny_bert.iterdir())
    monkeypatch.chdir(tmp_path)
    for output, words in [(mine, "was not written by inferforge (it has no inferforge.json), so --force does not "
                                 "replace it"),
                          (tiny_bert, "was not written by inferforge"),
                          (afile, f"Output '{afile}' is a file, not a folder"),
                          (afile / "sub", f"cannot be created: '{afile}' is a file"),
                          (tmp_path, "is the current folder (or holds it)")]:
        code, _, err = run_main(monkeypatch, capsys, "convert", str(tiny_bert), "--task", "text-classification",
                                "--output", str(output), "--force")
        assert code == 2 and words in err and err.count("error:") == 1, err
    assert (mine / "thesis.txt").read_text() == "years of work" and afile.read_text() == "mine too"
    assert sorted(p.name for p in tiny_bert.iterdir()) == model_files
    # The model's folder is refused even when it holds an inferforge.json, and a folder inferforge wrote is
    # still replaced: with it, the run goes on to the model (missing here) and leaves the folder as it was.
    (tiny_bert / "inferforge.json").write_text("{}")
    try:
        code, _, err = run_main(monkeypatch, capsys, "convert", str(tiny_bert), "--task", "text-classification",
                                "--output", str(tiny_bert), "--force")
        assert code == 2 and "is the model's own folder (or holds it)" in err, err
    finally:
        (tiny_bert / "inferforge.json").unlink()
    (mine / "inferforge.json").write_text("{}")
    code, _, err = run_main(monkeypatch, capsys, "convert", str(tmp_path / "no-model"), "--task",
                            "text-classification", "--output", str(mine), "--force")
    assert code == 2 and "no-model" in err and "--force" not in err, err
    assert sorted(p.name for p in mine.iterdir()) == ["inferforge.json", "thesis.txt"]


@pytest.mark.parametrize("args, words", [
    (["--shapes", "1x8,2x8,1x8"], "--shapes names 1x8 more than once; give each shape once."),
    (["--max-accuracy-drop", "nan", "--eval-data", __file__], "--max-accuracy-drop is in accuracy points"),
    (["--max-accuracy-drop", "2"], "--max-accuracy-drop applies to --eval-data, which was not given"),
    (["--label-column", "y"], "--label-column applies to --eval-data, which was not given"),
    (["--text-column", "t"], "--text-column applies to --eval-data or --validation-texts or --calibration-data, "
                             "which were not given"),
])
def test_options_that_would_be_ignored_or_repeated_are_refused(tmp_path, monkeypatch, capsys, args, words):
    """Accepted before, then ignored (no data for them to apply to; NaN compares false to every drop) or run
    twice (a shape named twice: two identical columns in the table)."""
    code, _, err = run_main(monkeypatch, capsys, "convert", str(tmp_path / "no-model-needed"), "--task",
                            "text-classification", "--output", str(tmp_path / "out"), *args)
    assert code == 2 and words in err and err.count("error:") == 1, err
    assert not list(tmp_path.iterdir())


def test_more_threads_than_cores_is_said(tmp_path, monkeypatch, capsys):
    from inferforge.cpu import machine_info

    cores = machine_info().cores
    code, _, err = run_main(monkeypatch, capsys, "convert", str(tmp_path / "no-model"), "--task",
                            "text-classification", "--output", str(tmp_path / "out"), "--threads", str(cores + 1))
    assert code == 2 and f"note: --threads {cores + 1} is more than the {cores} cores this process may use" in err


@pytest.mark.parametrize("signum", [2, 15])  # SIGINT (Ctrl-C), SIGTERM
def test_a_signal_during_convert_leaves_nothing(tmp_path, tiny_bert, signum):
    """SIGTERM killed the run and left its temporary folder; Ctrl-C exited 130 without a word (typer swallowed
    the KeyboardInterrupt). Both now unwind: one sentence, 128 + the signal, and nothing left, not even the
    folders created above the output."""
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    process = subprocess.Popen([sys.executable, "-m", "inferforge", "convert", str(tiny_bert), "--task",
                                "text-classification", "--output", str(tmp_path / "new" / "deeper" / "out"),
                                "--shapes", "1x8", "--threads", "1"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "new" / "deeper").glob(".out.inferforge-tmp-*")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    name = {2: "SIGINT", 15: "SIGTERM"}[signum]
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err and f"interrupted ({name}); nothing was left half-written." in err, err
    assert not list(tmp_path.iterdir())


def test_the_table_keeps_every_number_on_a_narrow_terminal(monkeypatch):
    """At 60 columns rich cut every cell to "0.…" and "pas…": the table said nothing. A table that does not fit is
    printed one variant per line, every value whole."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from inferforge import cli
    from inferforge.benchmark import LatencyStats
    from inferforge.report import VariantResult
    from inferforge.verify import VerifyResult

    rows = []
    for name, ms in (("pytorch-fp32", 2.55), ("ort-int8-dynamic", 0.77)):
        row = VariantResult(name, {}, "fp32" if name.startswith("pytorch") else "int8", name != "pytorch-fp32")
        row.status = "passed" if name.startswith("pytorch") else "selected"
        row.check = VerifyResult(True, 0.366, 0.217, 1.0, "top1")
        row.latency = {"1x8": LatencyStats(ms, ms, ms, ms, 1000 / ms, 2), "2x16": LatencyStats(ms, ms, ms, ms, 1, 2)}
        rows.append(row)
    result = SimpleNamespace(rows=rows, selected="ort-int8-dynamic", output="out",
                             report={"task": "text-classification", "shapes": ["1x8", "2x16"], "optimize_for": "1x8"})
    for width, boxed in ((60, False), (200, True)):
        buffer = io.StringIO()
        monkeypatch.setattr(cli, "out", Console(file=buffer, width=width, color_system=None))
        cli.print_variant_table(result)
        text = buffer.getvalue()
        assert "…" not in text and ("┃" in text) == boxed, text
        assert "3.66e-01" in text and "0.77 (3.3x)" in text and "2.55 (1.0x)" in text and "selected" in text, text
        assert max(map(len, text.splitlines())) <= width or not boxed, text


def test_help_in_a_pipe_keeps_option_names_whole_and_version_completion_work(monkeypatch, capsys):
    """Piped (`| cat`, `| less`) the boxed help at 80 columns cut names: "--trust-remote-co…", "--no-accuracy-se…"."""
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run_main(monkeypatch, capsys, "convert", "--help")
    assert code == 0 and "…" not in out and "╭" not in out, out
    for flag in ("--trust-remote-code / --no-trust-remote-code", "--accuracy-search / --no-accuracy-search",
                 "--max-accuracy-drop", "--force"):
        assert flag in out, out
    from inferforge import __version__

    assert run_main(monkeypatch, capsys, "--version")[:2] == (0, f"inferforge {__version__}\n")
    code, out, _ = run_main(monkeypatch, capsys, "--show-completion", "bash")
    assert code == 0 and "_INFERFORGE_COMPLETE=complete_bash" in out


SIGNAL_IN_A_FINALIZER = """
import os, signal, sys, time, weakref
from inferforge import cli
from inferforge.triton import commands

class Holder:
    pass

def finalize(*_):
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(200000):  # Python runs the handler between these bytecodes, inside the finalizer
        pass

def work(prog_name=None):
    holder = Holder()
    if FINALIZER == "__del__":
        Holder.__del__ = finalize
    else:
        weakref.finalize(holder, finalize)
    del holder
    time.sleep(2)
    print("the run went on")

if COMMAND == "convert":  # cli.main's handler, raising Interrupted
    cli.app = work
    cli.main()
else:  # `serve`'s handler, raising KeyboardInterrupt
    signal.signal(signal.SIGTERM, commands._raise_interrupt)
    try:
        work()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        sys.exit(143)
"""


@pytest.mark.parametrize("finalizer", ["__del__", "weakref"])
@pytest.mark.parametrize("command", ["convert", "serve"])
def test_a_signal_inside_a_finalizer_still_stops_the_run_quietly(finalizer, command):
    """In CI, SIGTERM landed while regex's `Group.__del__` ran during "load model": the handler's raise went into
    the `__del__`, Python printed "Exception ignored ... Traceback" and the run went on. The signal arrives here
    inside a finalizer on purpose; the run must still stop, quietly, with 143."""
    script = f"FINALIZER, COMMAND = {finalizer!r}, {command!r}\n" + SIGNAL_IN_A_FINALIZER
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 143, done.stderr
    assert "the run went on" not in done.stdout
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    said = "interrupted (SIGTERM); nothing was left half-written." if command == "convert" else "stopped"
    assert said in done.stderr, done.stderr


SIGNAL_AROUND_THE_COMMIT = """
import os, signal, sys
from inferforge import cli
from inferforge.pipeline import WRITTEN_STEP

original = cli.RichProgress.__call__

def progress(self, step, done, total):
    if step == WRITTEN_STEP and done == WHEN:
        os.kill(os.getpid(), signal.SIGINT)  # at 0: before the output is moved in place; at 1: right after
    return original(self, step, done, total)

cli.RichProgress.__call__ = progress
sys.argv = ["inferforge", "convert", MODEL, "--task", "text-classification", "--output", OUTPUT,
            "--variants", "ort-fp32", "--shapes", "1x8", "--nb-measures", "2", *EXTRA]
cli.main()
"""


@pytest.mark.parametrize("when", [0, 1], ids=["before", "after"])
def test_a_ctrl_c_at_the_commit_gives_the_old_folder_or_the_new_one_and_says_which(tiny_bert, tmp_path, when):
    """A Ctrl-C that came after the output folder was in place gave exit 130 and no word (or "nothing was left
    half-written" beside a complete folder). Now: before the commit, the run stops and the folder it replaces (--force)
    is still there; after it, the run ends with 0 and says the output is complete."""
    output = tmp_path / "out"
    output.mkdir()
    (output / "inferforge.json").write_text("{}")  # what --force replaces: a folder inferforge wrote
    (output / "old.txt").write_text("the previous conversion")
    script = (f"MODEL, OUTPUT, WHEN, EXTRA = {str(tiny_bert)!r}, {str(output)!r}, {when}, ['--force']\n"
              + SIGNAL_AROUND_THE_COMMIT)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    if when == 0:
        assert done.returncode == 130, done.stderr
        assert "interrupted (SIGINT); nothing was left half-written." in done.stderr
        assert sorted(p.name for p in output.iterdir()) == ["inferforge.json", "old.txt"]
    else:
        assert done.returncode == 0, done.stderr
        assert "SIGINT came after the output was written: it is complete." in done.stderr
        assert (output / "report.json").exists() and not (output / "old.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing set aside or half-moved is left


def test_tokenizer_that_truncates_from_the_left_is_one_sentence(tmp_path, tiny_bert):
    """A tokenizer_config.json with truncation_side 'left' makes transformers keep a long text's end; the encoder
    predict and the server run kept its start (other answers on long texts, unseen by the verification's short
    texts). It is refused in one sentence, as the same setting among sentence-transformers' tokenizer arguments is."""
    import json
    import shutil

    from inferforge.errors import UserError
    from inferforge.source import load_source
    from inferforge.tasks import get_task

    folder = tmp_path / "left"
    shutil.copytree(tiny_bert, folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings["truncation_side"] = "left"
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    with pytest.raises(UserError, match=r"cuts long texts from the left \(truncation_side 'left' in its "
                                        r"tokenizer_config.json\), which inferforge cannot give the server"):
        load_source(str(folder), get_task("text-classification"))
    load_source(str(tiny_bert), get_task("text-classification"))  # the right-truncating original loads


def test_a_sentencepiece_only_tokenizer_with_a_protobuf_too_old_names_protobuf(tmp_path):
    """sentencepiece installed (as the sentence above advises) beside a protobuf older than the code transformers 5.23
    generated for SentencePiece models (gencode 7.36.1; this environment's onnx and pytriton had 6.33.6): transformers'
    error said that tiktoken was needed. Runs only where that is so (pip install sentencepiece here)."""
    import importlib.util

    if importlib.util.find_spec("sentencepiece") is None:
        pytest.skip("sentencepiece is not installed here (the test above covers that)")
    try:
        from transformers.convert_slow_tokenizer import import_protobuf

        import_protobuf()
        pytest.skip("this protobuf reads transformers' SentencePiece model code")
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - protobuf's VersionError: the case under test
        pass
    import sentencepiece

    folder = build_tiny_model(tmp_path / "albert", "albert", "text-classification")
    (folder / "tokenizer.json").unlink()
    (tmp_path / "texts.txt").write_text("\n".join(["a few words to train on", "and some more words here"] * 20))
    sentencepiece.SentencePieceTrainer.train(input=str(tmp_path / "texts.txt"), model_prefix=str(folder / "spiece"),
                                             vocab_size=20, minloglevel=2)
    output = tmp_path / "out"
    done = run_cli("convert", str(folder), "--task", "text-classification", "--output", str(output))
    assert_user_error(done, f"'{folder}' has its tokenizer as a SentencePiece model (spiece.model) and no "
                            "tokenizer.json, and transformers cannot read it here:", "(pip install -U protobuf)")
    assert "tiktoken" not in done.stderr
    assert not output.exists()


def test_a_sentencepiece_only_tokenizer_without_its_package_names_the_package(tmp_path):
    """A folder whose tokenizer is a SentencePiece model alone (spiece.model, no tokenizer.json), where the
    sentencepiece package is not installed: transformers' error said that tiktoken was needed. The sentence names the
    file and what to do."""
    import importlib.util

    if importlib.util.find_spec("sentencepiece") is not None:
        pytest.skip("sentencepiece is installed here: such a folder loads")
    folder = build_tiny_model(tmp_path / "albert", "albert", "text-classification")
    (folder / "tokenizer.json").unlink()
    (folder / "spiece.model").write_bytes(bytes(range(256)))
    output = tmp_path / "out"
    done = run_cli("convert", str(folder), "--task", "text-classification", "--output", str(output))
    assert_user_error(done, f"'{folder}' has its tokenizer as a SentencePiece model (spiece.model) and no "
                            "tokenizer.json; reading it needs the sentencepiece package (pip install sentencepiece)")
    assert not output.exists()
