"""`inferforge query`, `serve` and `repository` on the command line: bad options and misdirected requests are one
sentence (exit 2, flags named as typed), and the hint `serve` prints works for the task it serves.

The tests that need a server share one (module scope) serving a tiny model of three tasks: `cls`
(text-classification, optional pair), `token` (token-classification, single texts) and `qa` (question-answering,
pairs required).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from inferforge.triton.repository import write_repository
from inferforge.triton.server import ServerOptions, TritonServer

MODELS = {"cls": "text-classification", "token": "token-classification", "qa": "question-answering"}


def run_cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}  # wide: sentences are not wrapped
    return subprocess.run([sys.executable, "-m", "inferforge", *args], capture_output=True, text=True, env=env,
                          input=input, timeout=120)


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    message = result.stderr + result.stdout
    assert result.returncode == 2, message
    assert "Traceback" not in message, message
    assert message.count("error:") == 1, message
    for fragment in fragments:
        assert fragment in message, message


# ----- without a server ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-3"])
def test_query_timeout_must_be_positive(value):
    # Checked before connecting: nothing listens on port 1, yet the answer is about the option.
    done = run_cli("query", "hello", "--timeout", value, "--url", "127.0.0.1:1")
    assert_user_error(done, f"--timeout must be more than 0 seconds (got {value})")
    assert "No Triton server" not in done.stderr


def test_the_python_client_refuses_a_timeout_of_zero():
    from inferforge.errors import UserError
    from inferforge.triton.client import TritonTextClient

    with pytest.raises(UserError, match="timeout_s"):
        TritonTextClient("127.0.0.1:1", timeout_s=0)


def test_a_file_mixing_pairs_and_single_texts_names_the_real_line(tmp_path):
    texts = tmp_path / "texts.tsv"
    texts.write_text("x\tb\n\n\n\nfoo\n")
    assert_user_error(run_cli("query", "--file", str(texts), "--url", "127.0.0.1:1"), "(line 5 has none)")
    done = run_cli("query", "--file", "-", "--url", "127.0.0.1:1", input="\n  \na\tb\nc\td\nlone\n")
    assert_user_error(done, "(line 5 has none)")


def test_command_line_texts_that_are_not_utf8_are_one_sentence(tmp_path):
    """A text typed in a Latin-1 terminal reaches Python as lone surrogates: `query` failed encoding it and `predict`
    in the tokenizer, both with a traceback. Checked before connecting or loading (nothing at port 1, no folder)."""
    latin1 = "caf\xe9".encode("latin-1")
    for number, args in [(1, ["query", latin1, "--url", "127.0.0.1:1"]), (2, ["predict", str(tmp_path), "ok", latin1])]:
        assert_user_error(run_cli(*args), f"Text {number} on the command line is not UTF-8 (byte 0xe9 at byte 3): set "
                          "the terminal to UTF-8, or save the texts as UTF-8 and use --file.")
    assert_user_error(run_cli("query", "ok", "--pair", latin1, "--url", "127.0.0.1:1"), "--pair value 1 on the command "
                      "line is not UTF-8")


def _same(got, expected, tol=1e-6) -> None:
    """JSON answers against `LoadedModel.predict`'s (floats within `tol`, everything else equal)."""
    import numpy as np

    if isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), (got, expected)
        for key in expected:
            _same(got[key], expected[key], tol)
    elif isinstance(expected, (list, tuple, np.ndarray)) and not isinstance(expected, str):
        assert len(got) == len(expected), (got, expected)
        for g, e in zip(got, expected):
            _same(g, e, tol)
    elif isinstance(expected, (float, np.floating)):
        assert abs(got - float(expected)) <= tol, (got, expected)
    else:
        assert got == expected, (got, expected)


@pytest.mark.parametrize("task", ["text-classification", "token-classification", "question-answering"])
def test_predict_answers_on_this_machine_like_the_python_api(converted_tiny, task):
    """`inferforge predict DIR TEXTS` (no server): one JSON answer per line, LoadedModel.predict's answers."""
    import inferforge

    model_dir = converted_tiny(task)
    texts = ["Where do the ducks go in winter?", "Who wrote it?", "The café opened in 1999 — a small place."]
    contexts = ["In winter the ducks fly south to warmer lakes.", "It was written by Mary Shelley in 1818.",
                "Nobody knows when it opened."]
    model = inferforge.load(model_dir)
    if task == "question-answering":
        # A blank line answers null (answer N is line N; the blank lines had been dropped, shifting every later answer),
        # blank lines at the end are not texts.
        answers = model.predict(texts, contexts)
        expected = [answers[0], None, answers[1], None, answers[2]]
        done = run_cli("predict", str(model_dir), "--file", "-",
                       input="".join(f"{t}\t{c}\n\n" for t, c in zip(texts, contexts)) + "\n \n")
    else:
        expected = model.predict(texts)
        done = run_cli("predict", str(model_dir), *texts)
    assert done.returncode == 0, done.stderr
    _same([json.loads(line) for line in done.stdout.splitlines()], expected)
    if task == "question-answering":
        assert_user_error(run_cli("predict", str(model_dir), texts[0]), "needs a text pair for every text (question, "
                          "context): give one --pair per text, or question<TAB>context lines with --file.")
    elif task == "token-classification":
        assert_user_error(run_cli("predict", str(model_dir), "a", "--pair", "b"), "takes single texts, not text pairs; "
                          "leave out --pair")
    else:
        assert_user_error(run_cli("predict", str(model_dir), "a", "--variant", "nope"), "Variant 'nope' is not in")
    assert_user_error(run_cli("predict", str(model_dir)), "give one or more texts")


@pytest.mark.parametrize("value", ["-5", "0"])
def test_serve_exit_timeout_must_be_positive(tmp_path, value):
    assert_user_error(run_cli("serve", str(tmp_path), "--exit-timeout", value),
                      f"--exit-timeout (exit_timeout_s) must be at least 1 second (got {value})")


@pytest.mark.parametrize(
    "command, option, value, sentence",
    [
        ("repository", "--max-batch-size", "0", "--max-batch-size (max_batch_size) must be at least 1 (got 0;"),
        ("repository", "--instances", "0", "--instances (instance_count) must be at least 1 (got 0)."),
        ("repository", "--threads", "0", "--threads must be at least 1 (got 0)"),
        ("repository", "--queue-delay-us", "-1", "--queue-delay-us (queue_delay_us) cannot be negative (got -1)."),
        ("repository", "--max-queue-size", "0", "--max-queue-size (max_queue_size) must be more than 0 (got 0)."),
        ("serve", "--threads", "0", "--threads must be at least 1 (got 0)"),
        ("serve", "--instances", "0", "--instances (instance_count) must be at least 1"),
        ("serve", "--execute-timeout", "0", "--execute-timeout (execute_timeout_s) must be more than 0 (got 0)."),
    ],
)
def test_bad_serving_options_name_their_flag(converted_tiny, tmp_path, command, option, value, sentence):
    model_dir = str(converted_tiny("text-classification"))
    extra = ["--output", str(tmp_path / "repo")] if command == "repository" else []
    assert_user_error(run_cli(command, model_dir, *extra, option, value), sentence)
    assert not (tmp_path / "repo").exists()


def test_repository_into_an_existing_folder_names_the_overwrite_flag(converted_tiny, tmp_path):
    model_dir = str(converted_tiny("text-classification"))
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    assert_user_error(run_cli("repository", model_dir, "--output", str(occupied)), "already exists", "--overwrite")
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]
    # --overwrite used to rmtree any folder: the user's files (or the converted model itself) were gone.
    assert_user_error(run_cli("repository", model_dir, "--output", str(occupied), "--overwrite"),
                      "is not a Triton model repository", "so --overwrite does not replace it")
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]
    assert_user_error(run_cli("repository", model_dir, "--output", model_dir, "--overwrite"),
                      "is the converted model's folder (or holds it)")
    (occupied / "keep.txt").unlink()
    assert run_cli("repository", model_dir, "--output", str(occupied)).returncode == 0  # an empty folder is fine
    done = run_cli("repository", model_dir, "--output", str(occupied), "--overwrite")  # a repository is replaced
    assert done.returncode == 0, done.stderr
    assert any(p.name.endswith("_tokenize") for p in occupied.iterdir())


# ----- against a real server --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(converted_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("query-cli")
    combined = root / "repository"
    combined.mkdir()
    python_models = 0
    for name, task in MODELS.items():
        repo = write_repository(converted_tiny(task), root / name, name=name, max_batch_size=4, threads=1)
        python_models += repo.python_models
        for model in repo.model_names:
            shutil.move(str(repo.path / model), str(combined / model))
    with TritonServer(combined, ServerOptions(python_models=python_models, ready_timeout_s=300)) as started:
        yield started



@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_an_internal_step_is_one_sentence_naming_the_served_models(server, protocol):
    url = server.http_url if protocol == "http" else server.grpc_url
    extra = ["--grpc"] if protocol == "grpc" else []
    done = run_cli("query", "hello", "--model", "cls_tokenize", "--url", url, *extra)
    assert_user_error(done, "'cls_tokenize' is an internal step, not a model that takes text; served: cls, qa, token.")


@pytest.mark.slow
def test_pairs_to_a_single_text_model_and_single_texts_to_a_pair_model_are_one_sentence(server):
    done = run_cli("query", "a", "--pair", "b", "--model", "token", "--url", server.http_url)
    assert_user_error(done, "Model 'token' takes single texts, not text pairs; leave out --pair.")
    assert "missing required input" not in done.stderr
    done = run_cli("query", "a", "--model", "qa", "--url", server.http_url)
    assert_user_error(done, "Model 'qa' needs a text pair for every text (question, context)")
    # What they may take is still answered: an optional pair (cls) and a required one (qa).
    for model in ("cls", "qa"):
        done = run_cli("query", "a", "--pair", "b", "--model", model, "--url", server.http_url)
        assert done.returncode == 0, done.stderr
        assert isinstance(json.loads(done.stdout), dict)


@contextmanager
def _pretend_served(server, name: str, task: str):
    """What `serve_converted` yields, over the module's server (which already serves `name`)."""
    repository = SimpleNamespace(name=name, task=task, inputs=["text", "text_pair"], outputs=["answer_json"])
    yield SimpleNamespace(server=server, repository=repository, watchdog=None)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qa", "token"])
def test_the_hint_serve_prints_works_for_the_task(server, converted_tiny, monkeypatch, name):
    import typer
    from typer.testing import CliRunner

    import inferforge.triton.serve
    from inferforge.triton import commands

    real_sleep = commands.time.sleep

    def stop(seconds):  # Ctrl-C in serve's wait loop only: time.sleep is global, other callers (threads) sleep on
        if sys._getframe(1).f_code.co_filename == commands.__file__:
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(inferforge.triton.serve, "serve_converted",
                        lambda model_dir, *args, **kwargs: _pretend_served(server, name, MODELS[name]))
    monkeypatch.setattr(commands.time, "sleep", stop)
    app = typer.Typer()
    commands.register(app)
    done = CliRunner().invoke(app, ["serve", str(converted_tiny(MODELS[name]))])
    assert done.exit_code == 0, done.output
    hint = done.output.split("Try: ", 1)[1].splitlines()
    query_args = shlex.split(hint[0])
    assert query_args[:2] == ["inferforge", "query"]
    assert ("--pair" in query_args) == (name == "qa")
    answered = run_cli(*query_args[1:])
    assert answered.returncode == 0, answered.stderr
    assert isinstance(json.loads(answered.stdout), (dict, list))
    curl = shlex.split(hint[1].strip())
    assert curl[:2] == ["or:", "curl"]
    url, body = curl[3], curl[curl.index("-d") + 1]
    assert ("text_pair" in json.loads(body)) == (name == "qa")
    request = urllib.request.Request(f"http://{url}", data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert "answer_json" in json.loads(response.read())


def test_serve_on_a_missing_folder_says_it_does_not_exist(tmp_path):
    done = run_cli("serve", str(tmp_path / "no-such-folder"))
    assert_user_error(done, f"'{tmp_path / 'no-such-folder'}' does not exist; give a folder written by `inferforge convert`.")
    assert "Starting Triton" not in done.stderr


def test_a_query_without_model_waits_out_a_restart_while_finding_the_model(monkeypatch):
    """`inferforge query` without --model finds the ensemble through the statistics API first: during a watchdog
    restart that call gets the restarting 503 too, and is asked again (as the inference is), not given up at once
    with a message saying it waited 30 s."""
    from inferforge.triton import client as client_module

    class Restarting(Exception):
        def message(self):
            return "the server is restarting after a worker crash; retry in a few seconds"

    calls = []

    class FakeClient:
        def get_inference_statistics(self, name, **kwargs):
            calls.append(name)
            if len(calls) < 3:
                raise Restarting()
            return {"model_stats": [{"name": "cls"}, {"name": "cls_tokenize"}, {"name": "cls_model"}]}

    monkeypatch.setattr(client_module.time, "sleep", lambda seconds: None)
    text_client = client_module.TritonTextClient("127.0.0.1:1", "http", None, 30.0)
    text_client._client = FakeClient()
    monkeypatch.setattr(text_client, "_answered_restarting", lambda: False)
    assert text_client.model_name() == "cls"
    assert len(calls) == 3
