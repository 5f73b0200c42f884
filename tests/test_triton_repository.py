"""The Triton model repository: configs parsed back with Triton's own schema, options checked, nothing half-written.

No server here (see test_triton_server.py); the converted models are real tiny conversions.
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from inferforge.errors import UserError
from inferforge.triton.repository import BACKEND_HELPERS, BACKEND_MODELS, RepositoryOptions, write_repository


def read_config(path: Path) -> mc.ModelConfig:
    return text_format.Parse((path / "config.pbtxt").read_text(), mc.ModelConfig())


def test_python_flavour_configs_batch_and_wire_the_ensemble(converted_tiny, tmp_path):
    model_dir = converted_tiny("token-classification")
    repo = write_repository(model_dir, tmp_path / "repo", name="ner", max_batch_size=16, queue_delay_us=250,
                            instance_count=2)
    assert repo.model_names == ("ner_tokenize", "ner_model", "ner")
    assert sorted(p.name for p in repo.path.iterdir()) == sorted(repo.model_names)
    configs = {name: read_config(repo.path / name) for name in repo.model_names}
    for name in repo.model_names[:2]:
        config = configs[name]
        assert config.backend == "python"
        assert config.max_batch_size == 16
        assert config.HasField("dynamic_batching")
        assert config.dynamic_batching.max_queue_delay_microseconds == 250
        assert (repo.path / name / "1" / "model.py").is_file()
    assert [g.count for g in configs["ner_model"].instance_group] == [2]
    assert all(i.allow_ragged_batch for i in configs["ner_model"].input if i.data_type == mc.TYPE_INT64)
    assert {o.name for o in configs["ner_model"].output} == {"logits", "answer_json"}
    assert {i.name: i.data_type for i in configs["ner_tokenize"].input} == {"text": mc.TYPE_STRING}
    assert (repo.path / "ner_tokenize" / "1" / "tokenizer.json").is_file()
    assert (repo.path / "ner_model" / "1" / "artifact" / "inferforge.json").is_file()

    ensemble = configs["ner"]
    assert ensemble.platform == "ensemble" and ensemble.max_batch_size == 16
    assert [o.name for o in ensemble.output] == ["answer_json"]
    assert_ensemble_wired(repo)


def assert_ensemble_wired(repo) -> None:
    """Every tensor a step reads is an ensemble input or an earlier step's output, every mapped name
    exists in the step model's own config, and the ensemble's outputs are all produced."""
    configs = {name: read_config(repo.path / name) for name in repo.model_names}
    ensemble = configs[repo.name]
    available = {i.name for i in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        step_config = configs[step.model_name]
        assert set(step.input_map) <= {i.name for i in step_config.input}
        assert set(step.input_map.values()) <= available, step.model_name
        required = {i.name for i in step_config.input if not i.optional}
        assert required <= set(step.input_map), step.model_name
        assert set(step.output_map) <= {o.name for o in step_config.output}
        available |= set(step.output_map.values())
    assert {o.name for o in ensemble.output} <= available


def test_tokenize_in_model_is_a_one_step_ensemble(converted_tiny, tmp_path):
    repo = write_repository(converted_tiny("question-answering"), tmp_path / "repo", name="qa", tokenize_in_model=True)
    assert repo.model_names == ("qa_tokenize", "qa_model", "qa")  # the tokenizer model stays for clients
    steps = read_config(repo.path / "qa").ensemble_scheduling.step
    assert [(s.model_name, sorted(s.input_map)) for s in steps] == [("qa_model", ["text", "text_pair"])]
    assert_ensemble_wired(repo)
    with pytest.raises(UserError, match="python flavour"):
        RepositoryOptions(flavour="onnxruntime", tokenize_in_model=True)


@pytest.mark.parametrize("flavour", ["python", "onnxruntime"])
def test_question_answering_steps_carry_the_windows(converted_tiny, tmp_path, flavour):
    """The tokenizer cuts a long context into windows (a row each): the answering step reads each window's texts
    and text index from it, never the request's texts (every input of a step must have the same rows), and the
    steps after the tokenizer take WINDOW_ROWS_PER_TEXT rows per text of the ensemble's batch."""
    from inferforge.triton.repository import WINDOW_ROWS_PER_TEXT

    repo = write_repository(converted_tiny("question-answering"), tmp_path / "qa", name="qa", flavour=flavour,
                            max_batch_size=6)
    rows = 6 * WINDOW_ROWS_PER_TEXT
    tokenize = read_config(repo.path / "qa_tokenize")
    assert {p: tokenize.parameters[p].string_value for p in ("window_length", "window_stride", "max_windows")} == \
        {"window_length": "384", "window_stride": "128", "max_windows": str(rows)}
    steps = ["qa_model"] + (["qa_postprocess"] if flavour == "onnxruntime" else [])
    assert [read_config(repo.path / step).max_batch_size for step in steps] == [rows] * len(steps)
    assert (tokenize.max_batch_size, read_config(repo.path / "qa").max_batch_size) == (6, 6)
    assert {"window_text", "window_text_pair", "window_sample"} <= {o.name for o in tokenize.output}
    answering = read_config(repo.path / "qa").ensemble_scheduling.step[-1]
    assert {k: v for k, v in answering.input_map.items() if k in ("text", "text_pair", "window_sample")} == \
        {"text": "window_text", "text_pair": "window_text_pair", "window_sample": "window_sample"}
    assert_ensemble_wired(repo)
    classifier = read_config(write_repository(converted_tiny("text-classification"), tmp_path / "cls",
                                              name="cls").path / "cls_tokenize")
    assert "window_length" not in classifier.parameters and "window_sample" not in {o.name for o in classifier.output}


def test_typed_outputs_follow_the_answer(converted_tiny, tmp_path):
    qa = write_repository(converted_tiny("question-answering"), tmp_path / "qa", name="qa")
    config = read_config(qa.path / "qa")
    pair = {i.name: i for i in config.input}["text_pair"]
    assert not pair.optional  # question answering needs the context
    types = {o.name: o.data_type for o in config.output}
    assert types == {"answer_json": mc.TYPE_STRING, "answer": mc.TYPE_STRING, "score": mc.TYPE_FP32,
                     "start": mc.TYPE_INT64, "end": mc.TYPE_INT64, "no_answer_score": mc.TYPE_FP32}
    cls = write_repository(converted_tiny("text-classification"), tmp_path / "cls", name="cls")
    config = read_config(cls.path / "cls")
    assert {i.name: i.optional for i in config.input} == {"text": False, "text_pair": True}
    assert [o.name for o in config.output] == ["answer_json", "label", "score", "scores"]


@pytest.mark.parametrize("flavour", ["python", "onnxruntime"])
def test_a_classifier_names_its_classes_for_the_classification_extension(converted_tiny, tmp_path, flavour):
    """Triton's `class_count` answers "score:index:label" from the label file an output's config names, read beside
    that model's config: the ensemble's `scores` (every class's score) and the model step's raw `logits` name
    labels.txt, one class name a line in output order; other tasks and outputs name none. Every dynamically batched
    model has 3 priority levels (2 the default) and lets a request's timeout set its queue timeout; what the server
    reads from that (hardening.request_checks): the ensemble, and the 3 levels."""
    import inferforge
    from inferforge.triton.hardening import request_checks

    folder = converted_tiny("text-classification")
    repo = write_repository(folder, tmp_path / "cls", name="cls", flavour=flavour)
    model = inferforge.load(folder, threads=1)
    classes = model.run(model.encoder.encode(["a text"]).arrays)["logits"].shape[-1]
    names = [model.labels[i] if model.labels and i < len(model.labels) else f"LABEL_{i}" for i in range(classes)]
    labelled = {"cls": {"scores"}, "cls_model": {"logits", "scores"} if flavour == "python" else {"logits"}}
    if flavour == "onnxruntime":
        labelled["cls_postprocess"] = {"scores"}
    for name in repo.model_names:
        config = read_config(repo.path / name)
        named = {o.name: o.label_filename for o in config.output if o.label_filename}
        assert named == dict.fromkeys(labelled.get(name, ()), "labels.txt"), (name, named)
        if name in labelled:
            assert (repo.path / name / "labels.txt").read_text().splitlines() == names
            assert all(list(o.dims) == [classes] for o in config.output if o.name in labelled[name])
        if config.platform != "ensemble":
            batching = config.dynamic_batching
            assert (batching.priority_levels, batching.default_priority_level) == (3, 2), name
            assert batching.default_queue_policy.allow_timeout_override, name
    assert request_checks(repo.path) == (("cls",), 3)
    embeddings = write_repository(converted_tiny("feature-extraction"), tmp_path / "emb", name="emb")
    assert not list(embeddings.path.rglob("labels.txt"))
    assert not any(o.label_filename for o in read_config(embeddings.path / "emb").output)


def test_onnxruntime_flavour_is_native_with_accelerator_options(converted_tiny, tmp_path):
    repo = write_repository(converted_tiny("text-classification"), tmp_path / "repo", name="cls",
                            flavour="onnxruntime", threads=2, ort_accelerator="openvino")
    config = read_config(repo.path / "cls_model")
    assert config.platform == "onnxruntime_onnx" and not config.backend
    assert config.max_batch_size > 0 and config.HasField("dynamic_batching")
    assert [a.name for a in config.optimization.execution_accelerators.cpu_execution_accelerator] == ["openvino"]
    assert config.parameters["intra_op_thread_count"].string_value == "2"
    assert (repo.path / "cls_model" / "1" / "model.onnx").stat().st_size > 0
    assert not (repo.path / "cls_model" / "1" / "model.py").exists()
    assert repo.model_names == ("cls_tokenize", "cls_model", "cls_postprocess", "cls")
    steps = read_config(repo.path / "cls").ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["cls_tokenize", "cls_model", "cls_postprocess"]
    assert dict(steps[1].output_map) == {"logits": "logits"}
    assert_ensemble_wired(repo)

    gpu = write_repository(converted_tiny("text-classification"), tmp_path / "gpu", name="cls",
                           flavour="onnxruntime", instance_kind="KIND_GPU", ort_accelerator="tensorrt")
    accelerator = read_config(gpu.path / "cls_model").optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"


@pytest.mark.parametrize(
    "options, words",
    [
        ({"max_batch_size": 0}, "dynamic batching"),
        ({"flavour": "tensorflow"}, "flavour"),
        ({"ort_accelerator": "openvino"}, "onnxruntime flavour"),
        ({"flavour": "onnxruntime", "ort_accelerator": "tensorrt"}, "GPU"),
        ({"instance_kind": "KIND_TPU"}, "instance kind"),
        ({"name": "../escape"}, "not usable"),
        ({"threads": -1}, "threads must be at least 1"),
    ],
)
def test_bad_options_are_one_sentence(options, words):
    with pytest.raises(UserError, match=words):
        RepositoryOptions(**options)


@pytest.mark.parametrize(
    "options, words",
    [
        ({"http_port": 99999}, "HTTP port 99999 is not a port number"),
        ({"grpc_port": -1}, "gRPC port -1 is not a port number"),
        ({"host": "999.1.1.1"}, "not an address of this machine"),
        # ::1 is an address of this machine: the message said it was not.
        ({"host": "::1"}, r"'::1' is an IPv6 address; the server listens on IPv4 only"),
        ({"host": "[::]"}, r"'\[::\]' is an IPv6 address"),
    ],
)
def test_bad_server_options_are_one_sentence(options, words):
    from inferforge.triton.server import ServerOptions

    with pytest.raises(UserError, match=words):
        ServerOptions(**options)


def test_serve_on_an_address_of_another_machine_is_one_sentence(converted_tiny):
    """Before any process starts: a valid address that no interface here has (TEST-NET-1, RFC 5737)."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "inferforge", "serve", str(converted_tiny("text-classification")),
                             "--host", "192.0.2.1", "--http-port", "0"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "250"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'192.0.2.1' is not an address of this machine" in result.stderr


def test_refuses_to_overwrite_and_leaves_nothing_behind(converted_tiny, tmp_path):
    model_dir = converted_tiny("text-classification")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        write_repository(model_dir, occupied)
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]

    # A variant file missing from the folder is found while the repository is being written.
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    manifest = json.loads((broken / "inferforge.json").read_text())
    manifest["variants"]["ort-fp32"]["files"].append("variants/ort-fp32/missing.onnx.data")
    (broken / "inferforge.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="missing.onnx.data"):
        write_repository(broken, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "occupied"]

    with pytest.raises(UserError, match="not .*converted|inferforge output folder"):
        write_repository(tmp_path / "occupied", tmp_path / "out2")


def imported_modules(path: Path) -> set[str]:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    return imported


def test_tokenizer_model_needs_only_tokenizers_and_numpy():
    """It must run in a stock Triton container: no inferforge import (the helpers copied beside it: the standard
    library, numpy and tokenizers)."""
    imported = imported_modules(BACKEND_MODELS / "tokenize.py")
    helpers = {path.stem: path for path in BACKEND_HELPERS}
    beside = imported & set(helpers)
    assert imported - beside <= {"json", "os", "numpy", "tokenizers", "triton_python_backend_utils"}, imported
    for helper in beside:
        assert all(m in sys.stdlib_module_names or m in ("numpy", "tokenizers")
                   for m in imported_modules(helpers[helper])), helper


def test_repository_command(converted_tiny, tmp_path):
    import typer
    from typer.testing import CliRunner

    from inferforge.triton.commands import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    model_dir = str(converted_tiny("text-classification"))
    done = runner.invoke(app, ["repository", model_dir, "--output", str(tmp_path / "repo"), "--name", "cls",
                               "--flavour", "onnxruntime", "--accelerator", "openvino", "--max-batch-size", "4"])
    assert done.exit_code == 0, done.output
    assert "cls_tokenize, cls_model, cls_postprocess, cls" in done.output
    assert read_config(tmp_path / "repo" / "cls_model").max_batch_size == 4
    refused = runner.invoke(app, ["repository", model_dir, "--output", str(tmp_path / "other"), "--flavour", "tf"])
    assert isinstance(refused.exception, UserError) and "Unknown flavour 'tf'" in str(refused.exception)
    assert not (tmp_path / "other").exists()


def test_serve_on_a_folder_convert_did_not_write_is_one_sentence(tmp_path):
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "inferforge", "serve", str(tmp_path)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "COLUMNS": "250"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is not an inferforge output folder: it has no inferforge.json" in result.stderr
    assert "Starting Triton" not in result.stderr  # said before anything starts


def test_query_file_lines_tabs_and_mistakes(tmp_path):
    """`inferforge query --file`: one text per line, a tab before the pair, a blank line's place kept (it answers
    null), blank lines at the end ignored."""
    from inferforge.triton.commands import _texts_from_file, with_blank_lines

    single = tmp_path / "single.txt"
    single.write_text("\ufefffirst text\n\nsecond text, with a comma\n\n \n")
    assert _texts_from_file(single) == (["first text", "second text, with a comma"], None, [1])
    assert list(with_blank_lines(["A", "B"], [1])) == ["A", None, "B"]
    assert list(with_blank_lines(["A"], [0, 2])) == [None, "A", None]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("who met Bob?\tAlice met Bob in Paris\nwhere?\tin Paris, last\tsummer\n")
    assert _texts_from_file(pairs) == (["who met Bob?", "where?"], ["Alice met Bob in Paris", "in Paris, last\tsummer"],
                                       [])
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text("a question?\ta context\nno pair here\n")
    with pytest.raises(UserError, match="line 2 has none"):
        _texts_from_file(mixed)
    # A form feed (pdftotext's page break), U+2028 and U+0085 inside a line are text, not line ends: answer N is line N.
    separators = tmp_path / "separators.txt"
    separators.write_bytes("page one\x0cpage two\r\nbeta \u2028 gamma\rnext\x85line\n\n".encode())
    assert _texts_from_file(separators) == (["page one\x0cpage two", "beta \u2028 gamma", "next\x85line"], None, [])
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        _texts_from_file(latin1)
    with pytest.raises(UserError, match="Cannot read"):
        _texts_from_file(tmp_path / "missing.txt")
