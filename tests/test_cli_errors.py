"""Every bad input of `inferforge convert`: one clear sentence, exit code 2, no traceback, no folder left."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tiny_models import build_tiny_model


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "inferforge", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("cli") / "hf", "bert", "text-classification")


@pytest.fixture(scope="module")
def tiny_fnet(tmp_path_factory):
    """An architecture ONNX cannot express: FNet mixes tokens with a Fourier transform (aten::fft_fftn)."""
    import transformers

    folder = tmp_path_factory.mktemp("fnet")
    build_tiny_model(folder, "bert", "feature-extraction")  # reuses the tokenizer files
    config = transformers.FNetConfig(hidden_size=32, num_hidden_layers=1, intermediate_size=64, vocab_size=600,
                                     max_position_embeddings=64)
    transformers.FNetModel(config).save_pretrained(folder)
    return folder


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


def test_unknown_task(tmp_path, tiny_bert):
    result = run_cli("convert", str(tiny_bert), "--task", "translation", "--output", str(tmp_path / "out"))
    assert_user_error(result, "Unknown task 'translation'", "feature-extraction")


def test_unexportable_architecture_names_the_operator(tmp_path, tiny_fnet):
    result = run_cli("convert", str(tiny_fnet), "--task", "feature-extraction", "--output", str(tmp_path / "out"))
    assert_user_error(result, "FNetModel cannot be exported", "fft")
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
