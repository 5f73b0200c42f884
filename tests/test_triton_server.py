"""A real Triton server on real conversions: answers equal the local engine's, batching, bad requests, clean stop.

One server per module hosts a tiny model of every task and the real MiniLM (feature-extraction).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import inferforge
from inferforge.errors import UserError
from inferforge.triton.client import TritonTextClient
from inferforge.triton.repository import write_repository
from inferforge.triton.server import ServerOptions, TritonServer

pytestmark = pytest.mark.slow

MAX_BATCH = 8
TASK_MODELS = {
    "text-classification": "tiny_cls",
    "token-classification": "tiny_ner",
    "feature-extraction": "tiny_emb",
    "question-answering": "tiny_qa",
}
# Ensembles that send text straight to <name>_model, which tokenizes itself (one Python hop).
ONE_HOP_MODELS = {"tiny_ner_1hop": "token-classification", "tiny_qa_1hop": "question-answering"}
TEXTS = [
    "Alice met Bob in Paris last summer",
    "the movie was great and the actors were wonderful in every single scene of it",
    "Ünïcödé text, with punctuation! And émojis 🙂 too.",
]
CONTEXTS = [
    "Paris is the capital of France and its largest city",
    "the quick brown fox jumps over the lazy dog",
    "a terrible boring film with no story at all",
]


def _ended(serve: subprocess.Popen) -> None:
    """An `inferforge serve` run a test started is over (killed if the test failed before stopping it)."""
    if serve.poll() is None:
        serve.kill()
        serve.wait()


def _assert_nothing_left_by(serve: subprocess.Popen) -> None:
    """No process and no /dev/shm region of that run is left (its shared-memory prefix names its pid)."""
    marker = f"inferforge_{serve.pid}_"
    assert not running_processes_with(marker)
    assert not [p for p in os.listdir("/dev/shm") if p.startswith(marker)]


def running_processes_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def served(converted_tiny, converted_minilm, tmp_path_factory):
    """One server, one repository holding every model: the tiny ones and MiniLM."""
    root = tmp_path_factory.mktemp("serving-repo")
    combined = root / "repository"
    combined.mkdir()
    folders = {name: converted_tiny(task) for task, name in TASK_MODELS.items()}
    folders.update({name: converted_tiny(task) for name, task in ONE_HOP_MODELS.items()})
    folders["minilm"] = converted_minilm
    # A sentence-transformers model with a default prompt ("query: "), as convert writes it: in encoder.json.
    folders["tiny_emb_prompt"] = root / "converted-prompted"
    shutil.copytree(folders["tiny_emb"], folders["tiny_emb_prompt"])
    encoder_json = folders["tiny_emb_prompt"] / "tokenizer" / "encoder.json"
    encoder_json.write_text(json.dumps({**json.loads(encoder_json.read_text()), "prefix": "query: "}))
    python_models = 0
    for name, folder in folders.items():
        repo = write_repository(folder, root / name, name=name, max_batch_size=MAX_BATCH, threads=1,
                                tokenize_in_model=name in ONE_HOP_MODELS)
        python_models += repo.python_models
        for model in repo.model_names:
            shutil.move(str(repo.path / model), str(combined / model))
    server = TritonServer(combined, ServerOptions(python_models=python_models, ready_timeout_s=300))
    server.start()
    yield server, folders
    prefix = server.shm_prefix
    server.stop()
    assert server.process is None
    assert not running_processes_with(prefix), "a tritonserver or stub process outlived stop()"
    assert not [p for p in Path("/dev/shm").iterdir() if p.name.startswith(prefix)]


@pytest.fixture(scope="module")
def local_models(served):
    _, folders = served
    return {name: inferforge.load(folder, threads=1) for name, folder in folders.items()}


def assert_same_answers(got, expected, atol=1e-4):
    """Equal answers: same labels, spans and words; floats within `atol`."""
    if isinstance(expected, float):
        assert got == pytest.approx(expected, abs=atol)
    elif isinstance(expected, dict):
        assert set(got) == set(expected)
        for key in expected:
            assert_same_answers(got[key], expected[key], atol)
    elif isinstance(expected, list):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_same_answers(g, e, atol)
    else:
        assert got == expected


def local_answers(model, texts, pairs=None):
    # One text at a time: the reference answer of each text on its own.
    return [model.predict([t], [p] if pairs else None)[0] for t, p in zip(texts, pairs or texts)]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("name", [*TASK_MODELS.values(), *ONE_HOP_MODELS, "minilm"])
def test_answers_equal_the_local_engine(served, local_models, name, protocol):
    server, _ = served
    model = local_models[name]
    pairs = CONTEXTS if model.task.needs_pairs else None
    url = server.http_url if protocol == "http" else server.grpc_url
    with TritonTextClient(url, protocol, name) as client:
        one_by_one = [client.predict([t], [p] if pairs else None)[0] for t, p in zip(TEXTS, pairs or TEXTS)]
        together = client.predict(TEXTS, pairs)  # one request with three texts
    expected = local_answers(model, TEXTS, pairs)
    assert_same_answers(one_by_one, expected)
    assert_same_answers(together, expected)


def test_the_default_prompt_is_put_before_the_text_in_the_server(served, local_models):
    server, _ = served
    with TritonTextClient(server.http_url, "http", "tiny_emb_prompt") as client:
        got = client.predict(TEXTS)
    assert_same_answers(got, local_answers(local_models["tiny_emb_prompt"], TEXTS))
    assert_same_answers(got, local_answers(local_models["tiny_emb"], [f"query: {t}" for t in TEXTS]))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("name", ["tiny_qa", "tiny_qa_1hop"])
def test_long_contexts_are_read_in_windows_as_locally(served, local_models, name, protocol):
    """Contexts longer than the tiny model's 64 tokens: several windows each, answered as the local engine
    answers (one request with a long, a short and a long context: more windows than texts, one row each)."""
    server, _ = served
    model = local_models[name]
    contexts = [" ".join(CONTEXTS), CONTEXTS[0], " ".join(reversed(CONTEXTS))]
    assert len(TEXTS) < len(model.encoder.encode(TEXTS, contexts).sample) <= MAX_BATCH
    url = server.http_url if protocol == "http" else server.grpc_url
    with TritonTextClient(url, protocol, name) as client:
        together = client.predict(TEXTS, contexts)
        one_by_one = [client.predict([t], [c])[0] for t, c in zip(TEXTS, contexts)]
    expected = local_answers(model, TEXTS, contexts)
    assert_same_answers(together, expected)
    assert_same_answers(one_by_one, expected)


@pytest.mark.parametrize("name", ["tiny_qa", "tiny_qa_1hop"])
def test_concurrent_long_contexts_batched_together_are_answered_as_locally(served, local_models, name):
    """12 clients at once, contexts of 1 to 6 windows: the dynamic batcher joins requests of different window
    counts into one execution, and each request gets its own answers back."""
    server, _ = served
    model = local_models[name]
    contexts = [" ".join(CONTEXTS[: 1 + i % 3] * (1 + i % 2)) for i in range(12)]
    questions = [TEXTS[i % 3] for i in range(12)]
    expected = local_answers(model, questions, contexts)
    assert_same_answers(concurrent_answers(server, name, questions, contexts, repeats=3), expected)
    assert max(len(model.encoder.encode([q], [c]).rows_of(0)) for q, c in zip(questions, contexts)) > 3


def test_contexts_needing_more_windows_than_max_batch_size_are_refused_not_cut(served, local_models):
    """The tokenizer model cannot hand the next model more rows than its max_batch_size (WINDOW_ROWS_PER_TEXT rows
    per text of the ensemble's). A request whose contexts need more was answered from their first windows only: not
    `predict`'s answer, and nothing said. It is now refused with a message naming the limit; the client sends such a
    batch again in halves (answers as `predict`'s), and the model that tokenizes itself reads every window."""
    from inferforge.triton.repository import WINDOW_ROWS_PER_TEXT

    server, _ = served
    model = local_models["tiny_qa"]
    rows = MAX_BATCH * WINDOW_ROWS_PER_TEXT
    question = TEXTS[1]
    windows = lambda context: model.encoder.encode([question], [context]).arrays["input_ids"].shape[0]  # noqa: E731
    repeat = 1
    while windows(" ".join(CONTEXTS * repeat)) <= rows // 2:
        repeat += 1
    middle, long = " ".join(CONTEXTS * repeat), " ".join(CONTEXTS * 12)
    assert rows // 2 < windows(middle) <= rows < windows(long)

    raw = httpclient.InferenceServerClient(server.http_url)
    try:
        inputs = []
        for name, values in (("text", [question] * 3), ("text_pair", [middle] * 3)):
            tensor = httpclient.InferInput(name, [3, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[v.encode()] for v in values], dtype=np.object_))
            inputs.append(tensor)
        with pytest.raises(InferenceServerException) as refused:
            raw.infer("tiny_qa", inputs)
    finally:
        raw.close()
    assert f"the 3 contexts of this request need {3 * windows(middle)} reading windows and the model reads at most " \
           f"{rows} per request" in str(refused.value)

    with TritonTextClient(server.http_url, "http", "tiny_qa") as client:
        split = client.predict([question, TEXTS[0], question], [middle, CONTEXTS[0], middle])
        with pytest.raises(UserError, match=r"the context of this request needs \d+ reading windows .*--tokenize-in-model"):
            client.predict([question], [long])
        assert client.is_ready()
    assert_same_answers(split, local_answers(model, [question, TEXTS[0], question], [middle, CONTEXTS[0], middle]))
    with TritonTextClient(server.http_url, "http", "tiny_qa_1hop") as client:
        whole = client.predict([question], [long])[0]
    assert_same_answers(whole, local_answers(local_models["tiny_qa_1hop"], [question], [long])[0])


def concurrent_answers(server, name, texts, pairs=None, repeats=1) -> list:
    """One HTTP client per text, all started together, each sending its text (and pair) `repeats` times, one
    request at a time; every client's last answer, in text order. Any client's error fails the test."""
    answers: dict[int, object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(texts))

    def client_thread(index: int) -> None:
        try:
            with TritonTextClient(server.http_url, "http", name) as client:
                barrier.wait(timeout=30)
                for _ in range(repeats):
                    answers[index] = client.predict([texts[index]], [pairs[index]] if pairs else None)[0]
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    return [answers[i] for i in range(len(texts))]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_more_texts_than_max_batch_size_are_sent_in_batches(served, local_models, protocol):
    """19 question-context pairs, sent in requests of max_batch_size: some contexts take two windows, so a request
    of 8 texts is 11 rows for the model, answered whole (the model steps take WINDOW_ROWS_PER_TEXT rows per text;
    with 8 rows, the second windows were dropped and answers changed)."""
    server, _ = served
    model = local_models["tiny_qa"]
    texts = [TEXTS[i % 3] + f" {i}" for i in range(2 * MAX_BATCH + 3)]
    pairs = [CONTEXTS[i % 3] for i in range(len(texts))]
    with TritonTextClient(server.http_url if protocol == "http" else server.grpc_url, protocol, "tiny_qa") as client:
        assert client.max_batch_size() == MAX_BATCH
        assert_same_answers(client.predict(texts, pairs), local_answers(model, texts, pairs))


def test_typed_outputs_carry_the_same_answer(served, local_models):
    server, _ = served
    with TritonTextClient(server.http_url, "http", "minilm") as client:
        result = client.infer(TEXTS)
        embedding = result.as_numpy("embedding")
        answers = [json.loads(v) for v in result.as_numpy("answer_json").reshape(-1)]
    assert embedding.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(embedding, np.array(answers, dtype=np.float32), atol=1e-6)
    expected = np.array(local_answers(local_models["minilm"], TEXTS), dtype=np.float32)
    cosine = (embedding * expected).sum(-1) / np.linalg.norm(embedding, axis=-1) / np.linalg.norm(expected, axis=-1)
    assert cosine.min() > 0.9999


def test_tokenizer_model_matches_the_local_encoder(served, local_models):
    server, _ = served
    encoder = local_models["tiny_qa"].encoder
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        inputs = []
        for name, values in (("text", TEXTS), ("text_pair", CONTEXTS)):
            tensor = httpclient.InferInput(name, [len(values), 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[v.encode()] for v in values], dtype=np.object_))
            inputs.append(tensor)
        result = client.infer("tiny_qa_tokenize", inputs)
    finally:
        client.close()
    expected = encoder.encode(TEXTS, CONTEXTS)
    for name, array in expected.arrays.items():
        np.testing.assert_array_equal(result.as_numpy(name), array)


def test_32_concurrent_clients_are_answered_right_and_batched(served, local_models):
    server, _ = served
    model = local_models["tiny_cls"]
    texts = [f"{TEXTS[i % 3]} number {i}" for i in range(32)]
    expected = local_answers(model, texts)
    assert_same_answers(concurrent_answers(server, "tiny_cls", texts, repeats=5), expected)
    with TritonTextClient(server.http_url, "http", "tiny_cls") as client:
        stats = client.statistics("tiny_cls_model")
    sizes = {int(b["batch_size"]) for b in stats["batch_stats"]}
    assert max(sizes) > 1, f"the dynamic batcher never formed a batch: {stats['batch_stats']}"
    executed = sum(int(b["batch_size"]) * int(b["compute_infer"]["count"]) for b in stats["batch_stats"])
    assert executed >= 32 * 5


def raw_infer(server, model, inputs):
    """`inputs`: (name, datatype, numpy array) triples, sent as they are through tritonclient HTTP."""
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        tensors = []
        for name, datatype, array in inputs:
            tensor = httpclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        return client.infer(model, tensors)
    finally:
        client.close()


def text_array(*texts) -> np.ndarray:
    return np.array([[t if isinstance(t, bytes) else t.encode()] for t in texts], dtype=np.object_)


BAD_REQUESTS = {
    "empty text": ("tiny_cls", [("text", "BYTES", text_array(""))], "empty"),
    "invalid UTF-8": ("tiny_cls", [("text", "BYTES", text_array(b"caf\xc3 \xff\xfe"))], "UTF-8"),
    # Which text of the request is bad (was "input 'text' is not valid UTF-8": no way to tell which of 8 texts).
    "one bad text among good ones": ("tiny_cls", [("text", "BYTES", text_array("fine", b"\xff"))],
                                     r"input 'text' \(text 2 of 2\) is not valid UTF-8"),
    "wrong input name": ("tiny_cls", [("txt", "BYTES", text_array("hello"))], "txt"),
    "wrong input type": ("tiny_cls", [("text", "INT32", np.array([[7]], dtype=np.int32))], "INT32|TYPE_STRING|BYTES"),
    "batch over max_batch_size": ("tiny_cls", [("text", "BYTES", text_array(*["x"] * (MAX_BATCH + 1)))], "batch"),
    "question without context": ("tiny_qa", [("text", "BYTES", text_array("who?"))], "text_pair|pair"),
    "one hop: empty context": ("tiny_qa_1hop", [("text", "BYTES", text_array("who?")),
                                                ("text_pair", "BYTES", text_array(" "))], "empty"),
    "one hop: the second of three contexts empty": (
        "tiny_qa_1hop", [("text", "BYTES", text_array("who?", "what?", "where?")),
                         ("text_pair", "BYTES", text_array("a context", "", "another"))],
        r"input 'text_pair' \(text 2 of 3\) is empty"),
    "one hop: invalid UTF-8": ("tiny_qa_1hop", [("text", "BYTES", text_array(b"\xc3(")),
                                                ("text_pair", "BYTES", text_array("a context"))], "UTF-8"),
    "one hop: question without context": ("tiny_qa_1hop", [("text", "BYTES", text_array("who?"))], "pair"),
    "one hop: batch over max_batch_size": ("tiny_qa_1hop", [("text", "BYTES", text_array(*["x"] * 9)),
                                                            ("text_pair", "BYTES", text_array(*["y"] * 9))], "batch"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_an_error_and_the_server_keeps_answering(served, local_models, case):
    server, _ = served
    model_name, inputs, words = BAD_REQUESTS[case]
    with pytest.raises(Exception, match=words):
        raw_infer(server, model_name, inputs)
    assert server.check_health() is None
    with TritonTextClient(server.http_url, "http", "tiny_cls") as client:
        assert_same_answers(client.predict(TEXTS[:1]), local_answers(local_models["tiny_cls"], TEXTS[:1]))


def test_bad_request_inside_a_dynamic_batch_fails_alone(served, local_models):
    """Concurrent good and bad requests: only the bad ones get errors."""
    server, _ = served
    good, bad = [], []

    def send(index: int) -> None:
        text = b"\xff bad" if index % 4 == 0 else f"good text {index}".encode()
        try:
            result = raw_infer(server, "tiny_cls", [("text", "BYTES", text_array(text))])
            good.append((index, json.loads(result.as_numpy("answer_json")[0, 0])))
        except Exception as error:  # noqa: BLE001
            bad.append((index, str(error)))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(i for i, _ in bad) == list(range(0, 24, 4))
    assert all("UTF-8" in message for _, message in bad)
    expected = local_answers(local_models["tiny_cls"], [f"good text {i}" for i, _ in sorted(good)])
    assert_same_answers([a for _, a in sorted(good)], expected)


def test_token_ids_outside_the_vocabulary_fail_alone_at_the_model_step(served, local_models):
    """A client of the `_model` step sends token arrays itself (perf_analyzer sends random int64): ids past the
    vocabulary, inputs of two shapes, rows longer than the model reads or of no tokens, get one sentence naming the
    input, and the requests batched with them
    are answered as the local engine answers (the lookup failed the whole batch before, retried one by one)."""
    server, _ = served
    model = local_models["tiny_cls"]
    good_arrays = model.encoder.encode(TEXTS[:1]).arrays
    vocab = json.loads((Path(model.folder) / "config.json").read_text())["vocab_size"]
    expected = model.run(good_arrays)["logits"]
    ids = good_arrays["input_ids"]
    bad_cases = {
        "past the vocabulary": {**good_arrays, "input_ids": np.where(ids == ids[0, 1], vocab + 7, ids)},
        "negative": {**good_arrays, "input_ids": -ids},
        "two shapes": {**good_arrays, "attention_mask": good_arrays["attention_mask"][:, :-1]},
        # rows longer than the model reads failed in the runtime, a 500 naming its internals; rows of none a 500 too
        "too long": {name: np.ones((1, model.manifest.max_length + 1), dtype=np.int64) for name in good_arrays},
        "no tokens": {name: np.ones((1, 0), dtype=np.int64) for name in good_arrays},
    }
    results: dict = {}

    def send(key: str, arrays: dict) -> None:
        client = httpclient.InferenceServerClient(server.http_url)
        try:
            tensors = []
            for name, array in arrays.items():
                tensors.append(httpclient.InferInput(name, list(array.shape), "INT64"))
                tensors[-1].set_data_from_numpy(np.ascontiguousarray(array, dtype=np.int64))
            results[key] = client.infer("tiny_cls_model", tensors,
                                        outputs=[httpclient.InferRequestedOutput("logits")]).as_numpy("logits")
        except Exception as error:  # noqa: BLE001
            results[key] = str(error)
        finally:
            client.close()

    jobs = [(f"good {i}", good_arrays) for i in range(6)] + list(bad_cases.items())
    threads = [threading.Thread(target=send, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert f"input 'input_ids' holds {vocab + 7}, outside this model's {vocab} values" in results["past the vocabulary"]
    assert "input 'input_ids' holds -" in results["negative"]
    assert "input 'attention_mask' has shape" in results["two shapes"]
    assert (f"[400] input 'input_ids' holds rows of {model.manifest.max_length + 1} tokens and this model reads at most "
            f"{model.manifest.max_length}: send shorter rows") in results["too long"], results["too long"]
    assert "[400] input 'input_ids' holds no tokens (shape [1, 0])" in results["no tokens"], results["no tokens"]
    for i in range(6):
        np.testing.assert_allclose(results[f"good {i}"], expected, atol=1e-4)
    assert server.check_health() is None


@pytest.mark.parametrize("name", ["tiny_ner", "tiny_ner_1hop"])
def test_a_100000_character_text_is_truncated_and_answered(served, local_models, name):
    server, _ = served
    long_text = ("Alice met Bob in Paris. " * 4200)[:100_000]
    assert len(long_text) == 100_000
    with TritonTextClient(server.http_url, "http", name) as client:
        answer = client.predict([long_text])
    assert_same_answers(answer, local_answers(local_models[name], [long_text]))


def test_plain_http_json_request(served, local_models):
    """What examples/plain_http.py and curl send: KServe v2 JSON, no client library."""
    server, _ = served
    body = {"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [TEXTS[0]]}]}
    request = urllib.request.Request(
        f"http://{server.http_url}/v2/models/tiny_cls/infer", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        reply = json.loads(response.read())
    outputs = {o["name"]: o["data"] for o in reply["outputs"]}
    assert_same_answers([json.loads(outputs["answer_json"][0])], local_answers(local_models["tiny_cls"], TEXTS[:1]))
    assert outputs["label"][0] == json.loads(outputs["answer_json"][0])["label"]
    with pytest.raises(urllib.error.HTTPError) as error:
        body["inputs"][0]["data"] = [""]
        urllib.request.urlopen(urllib.request.Request(
            f"http://{server.http_url}/v2/models/tiny_cls/infer", data=json.dumps(body).encode()), timeout=30)
    assert "empty" in json.loads(error.value.read())["error"]


def generate(server, name: str, body: dict) -> dict:
    """Triton's generate extension: one JSON object in (a key per input), one out."""
    request = urllib.request.Request(f"http://{server.http_url}/v2/models/{name}/generate",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("name", ["tiny_cls", "tiny_qa"])
def test_plain_text_through_the_generate_endpoint(served, local_models, name):
    """Triton's generate extension maps JSON keys to inputs: `{"text": ...}` is the whole request (curl)."""
    server, _ = served
    pairs = CONTEXTS[:2] if name == "tiny_qa" else None
    for row in range(2):
        body = {"text": TEXTS[row], **({"text_pair": pairs[row]} if pairs else {})}
        reply = generate(server, name, body)
        assert_same_answers([json.loads(reply["answer_json"])],
                            local_answers(local_models[name], TEXTS[row:row + 1], pairs[row:row + 1] if pairs else None))
    both = generate(server, name, {"text": TEXTS[:2], **({"text_pair": pairs} if pairs else {})})  # a list: one answer each
    assert_same_answers([json.loads(a) for a in both["answer_json"]], local_answers(local_models[name], TEXTS[:2], pairs))
    with pytest.raises(urllib.error.HTTPError) as error:
        generate(server, name, {"text": " ", **({"text_pair": pairs[0]} if pairs else {})})
    assert error.value.code == 400 and "empty" in json.loads(error.value.read())["error"]


@pytest.mark.parametrize("name", ["tiny_ner", "tiny_ner_1hop", "tiny_emb"])
def test_generate_refuses_a_text_pair_the_model_cannot_read(served, local_models, name):
    """Triton passes a generate key that is no input of the model as a request parameter, so a `text_pair` sent to a
    single-text model was dropped without a word and the text answered alone; it is a 400 now, as through /infer.
    Other parameters are still ignored."""
    server, _ = served
    with pytest.raises(urllib.error.HTTPError) as error:
        generate(server, name, {"text": TEXTS[0], "text_pair": CONTEXTS[0]})
    assert error.value.code == 400
    assert "takes single texts, not text pairs" in json.loads(error.value.read())["error"]
    reply = generate(server, name, {"text": TEXTS[0], "temperature": 0})
    assert_same_answers([json.loads(reply["answer_json"])], local_answers(local_models[name], TEXTS[:1]))


def test_generate_reads_a_text_pair_for_a_pair_classifier(served, local_models):
    server, _ = served
    reply = generate(server, "tiny_cls", {"text": TEXTS[0], "text_pair": CONTEXTS[0]})
    expected = local_answers(local_models["tiny_cls"], TEXTS[:1], CONTEXTS[:1])
    assert_same_answers([json.loads(reply["answer_json"])], expected)
    assert expected != local_answers(local_models["tiny_cls"], TEXTS[:1])  # the pair changes the answer


def _answers_of(json_values) -> list:
    return [json.loads(v.decode() if isinstance(v, bytes) else v) for v in np.asarray(json_values).ravel()]


def _pytriton_client(url: str, name: str, texts: np.ndarray, pairs: np.ndarray | None) -> list:
    from pytriton.client import ModelClient

    with ModelClient(url, name, init_timeout_s=60, inference_timeout_s=60) as client:
        result = client.infer_batch(text=texts, **({"text_pair": pairs} if pairs is not None else {}))
    return _answers_of(result["answer_json"])


def _tritonclient_aio(url: str, protocol: str, name: str, texts: np.ndarray, pairs: np.ndarray | None) -> list:
    import asyncio

    if protocol == "http":
        import tritonclient.http.aio as aio
    else:
        import tritonclient.grpc.aio as aio

    async def infer():
        client = aio.InferenceServerClient(url)
        inputs = []
        for input_name, array in (("text", texts), ("text_pair", pairs)):
            if array is not None:
                inputs.append(aio.InferInput(input_name, list(array.shape), "BYTES"))
                inputs[-1].set_data_from_numpy(array)
        try:
            result = await client.infer(name, inputs)
        finally:
            await client.close()
        return _answers_of(result.as_numpy("answer_json"))

    return asyncio.run(infer())


def grpc_text_inputs(texts: np.ndarray, pairs: np.ndarray | None) -> list:
    """tritonclient gRPC inputs `text` (and `text_pair`) from [n, 1] arrays of UTF-8 bytes."""
    import tritonclient.grpc as grpcclient

    inputs = []
    for input_name, array in (("text", texts), ("text_pair", pairs)):
        if array is not None:
            inputs.append(grpcclient.InferInput(input_name, list(array.shape), "BYTES"))
            inputs[-1].set_data_from_numpy(array)
    return inputs


@contextmanager
def grpc_stream(url: str):
    """(client, queue of (result, error)) of an open tritonclient gRPC bidirectional stream, closed at the end."""
    import queue

    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    replies: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: replies.put((result, error)))
    try:
        yield client, replies
    finally:
        client.stop_stream()
        client.close()


def _grpc_stream(url: str, name: str, texts: np.ndarray, pairs: np.ndarray | None) -> list:
    """Bidirectional gRPC streaming, one text per request, answers matched back by request id."""
    with grpc_stream(url) as (client, replies):
        for row in range(len(texts)):
            inputs = grpc_text_inputs(texts[row:row + 1], pairs[row:row + 1] if pairs is not None else None)
            client.async_stream_infer(name, inputs, request_id=str(row))
        by_id = {}
        for _ in range(len(texts)):
            result, error = replies.get(timeout=60)
            assert error is None, error
            by_id[int(result.get_response().id)] = _answers_of(result.as_numpy("answer_json"))[0]
    return [by_id[row] for row in range(len(texts))]


def _compressed_http(url: str, name: str, texts: np.ndarray, pairs: np.ndarray | None) -> list:
    """gzip request and response bodies, inputs as JSON (no binary extension)."""
    client = httpclient.InferenceServerClient(url)
    inputs = []
    for input_name, array in (("text", texts), ("text_pair", pairs)):
        if array is not None:
            inputs.append(httpclient.InferInput(input_name, list(array.shape), "BYTES"))
            inputs[-1].set_data_from_numpy(array, binary_data=False)
    result = client.infer(name, inputs, request_compression_algorithm="gzip", response_compression_algorithm="gzip")
    client.close()
    return _answers_of(result.as_numpy("answer_json"))


def _generate_stream(url: str, name: str, texts: np.ndarray, pairs: np.ndarray | None) -> list:
    """Server-sent events from the generate_stream endpoint, one text per request."""
    answers = []
    for row in range(len(texts)):
        body = {"text": texts[row, 0].decode(), **({"text_pair": pairs[row, 0].decode()} if pairs is not None else {})}
        request = urllib.request.Request(f"http://{url}/v2/models/{name}/generate_stream", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            events = [line[len(b"data: "):] for line in response.read().splitlines() if line.startswith(b"data: ")]
        assert len(events) == 1, events
        answers.append(json.loads(json.loads(events[0])["answer_json"]))
    return answers


@pytest.mark.parametrize("name", ["tiny_qa", "tiny_qa_1hop"])
def test_a_failed_request_in_a_grpc_stream_names_its_request_id(served, local_models, name):
    """tritonclient's stream callback gets a failed request's error without a result, so without its id: the
    message names the request id (as Triton's own errors do), or a client with several requests in flight cannot
    tell which one failed. The others are answered as locally."""
    server, _ = served
    contexts = [CONTEXTS[0], " ", CONTEXTS[2]]  # the second request's context is empty
    with grpc_stream(server.grpc_url) as (client, replies):
        for row, context in enumerate(contexts):
            client.async_stream_infer(name, grpc_text_inputs(text_array(TEXTS[row]), text_array(context)),
                                      request_id=f"req-{row}")
        got = [replies.get(timeout=60) for _ in contexts]
    errors = [error.message() for result, error in got if error is not None]
    assert len(errors) == 1 and "[request id: req-1]" in errors[0] and "is empty" in errors[0], errors
    answers = {result.get_response().id: _answers_of(result.as_numpy("answer_json"))[0]
               for result, error in got if error is None}
    expected = local_answers(local_models[name], [TEXTS[0], TEXTS[2]], [CONTEXTS[0], CONTEXTS[2]])
    assert_same_answers([answers["req-0"], answers["req-2"]], expected)


OFF_THE_SHELF_CLIENTS = {
    "pytriton-http": lambda server, *args: _pytriton_client(f"http://{server.http_url}", *args),
    "pytriton-grpc": lambda server, *args: _pytriton_client(f"grpc://{server.grpc_url}", *args),
    "tritonclient-http-aio": lambda server, *args: _tritonclient_aio(server.http_url, "http", *args),
    "tritonclient-grpc-aio": lambda server, *args: _tritonclient_aio(server.grpc_url, "grpc", *args),
    "tritonclient-grpc-stream": lambda server, *args: _grpc_stream(server.grpc_url, *args),
    "tritonclient-http-gzip-json": lambda server, *args: _compressed_http(server.http_url, *args),
    "generate-stream-sse": lambda server, *args: _generate_stream(server.http_url, *args),
}


@pytest.mark.filterwarnings("ignore::Warning:pytriton")  # pytriton warns that gRPC ignores its network timeout
@pytest.mark.parametrize("client", sorted(OFF_THE_SHELF_CLIENTS))
@pytest.mark.parametrize("name", ["tiny_qa", "minilm"])
def test_off_the_shelf_clients_get_the_local_answers(served, local_models, client, name):
    """Clients users already have, used as their documentation shows (only the model's metadata known)."""
    server, _ = served
    model = local_models[name]
    pairs = CONTEXTS if model.task.needs_pairs else None
    texts = np.array([[t.encode()] for t in TEXTS], dtype=object)
    pair_array = np.array([[p.encode()] for p in pairs], dtype=object) if pairs else None
    got = OFF_THE_SHELF_CLIENTS[client](server, name, texts, pair_array)
    assert_same_answers(got, local_answers(model, TEXTS, pairs))


@pytest.mark.parametrize("spinning", ["default", "config", "env"])
def test_served_onnxruntime_threads_do_not_busy_wait_between_requests(converted_tiny, tmp_path, spinning):
    """On a few cores, engine threads spinning after each call starve the server and the clients (measured
    2x fewer requests/s at concurrency 16): the served model's stub must use no CPU while idle. With
    spinning asked for (config parameter `ort_spinning`, or INFERFORGE_ORT_SPINNING=1 in the server's
    environment), the same measurement sees the spin, so the test can fail."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    repo = write_repository(converted_tiny("text-classification"), tmp_path / "repo", name="spin", threads=2)
    if spinning == "config":
        path = repo.path / "spin_model" / "config.pbtxt"
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        config.parameters["ort_spinning"].string_value = "1"
        path.write_text(text_format.MessageToString(config))
    env = (("INFERFORGE_ORT_SPINNING", "1"),) if spinning == "env" else ()
    with TritonServer(repo.path, ServerOptions(python_models=repo.python_models, extra_env=env)) as server:
        client = TritonTextClient(server.http_url, "http", "spin")
        (stub,) = [pid for pid in running_processes_with(server.shm_prefix)
                   if b"spin_model" in Path(f"/proc/{pid}/cmdline").read_bytes()]

        def cpu_seconds() -> float:
            fields = Path(f"/proc/{stub}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        idle = []
        for _ in range(5):
            client.predict(TEXTS[:1])
            start = cpu_seconds()
            time.sleep(0.3)
            idle.append(cpu_seconds() - start)
        if spinning == "default":
            assert sorted(idle)[2] < 0.02, idle  # median CPU seconds in the 0.3 s after a request
        else:
            assert sorted(idle)[2] > 0.03, idle


@pytest.mark.parametrize("mode, allow, stop", [("0", "0", ""), ("run", "", "1"), ("1", "", ""), (None, "", ""),
                                               ("bogus", "", "")])
def test_ort_spinning_modes_map_to_session_options(monkeypatch, mode, allow, stop):
    """INFERFORGE_ORT_SPINNING: 0 never spins, run spins only while a call runs (the served default), 1 and anything
    else are onnxruntime's default (spin after calls too)."""
    from inferforge.engines.ort import SPINNING_ENV, session_options

    if mode is None:
        monkeypatch.delenv(SPINNING_ENV, raising=False)
    else:
        monkeypatch.setenv(SPINNING_ENV, mode)
    options = session_options(2)

    def entry(key: str) -> str:  # "" when the key was never set (onnxruntime raises)
        try:
            return options.get_session_config_entry(key)
        except RuntimeError:
            return ""

    assert entry("session.intra_op.allow_spinning") == allow
    assert entry("session.force_spinning_stop") == stop


def test_metrics_are_served(served):
    server, _ = served
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    assert 'nv_inference_request_success{model="tiny_cls"' in text


def test_client_errors_are_one_sentence(served):
    server, _ = served
    with TritonTextClient(server.http_url, "http", "no_such_model") as client:
        with pytest.raises(UserError, match="refused the request"):
            client.predict(["hello"])
    with TritonTextClient(server.http_url, "http") as client:
        with pytest.raises(UserError, match="name one with --model"):
            client.predict(["hello"])  # several inferforge models are served: the client cannot guess


def test_taken_port_is_one_sentence(served):
    server, _ = served
    taken = int(server.http_url.rsplit(":", 1)[1])
    with pytest.raises(UserError, match=f"Port {taken}"):
        TritonServer(server.repository, ServerOptions(http_port=taken)).start()


def test_one_port_given_twice_is_one_sentence_before_starting(served):
    """Both ports 18000 was refused by Triton itself, after seconds of starting, pointing at its log."""
    server, _ = served
    started = time.monotonic()
    with pytest.raises(UserError, match="The HTTP and gRPC ports are both 18123; give each its own"):
        TritonServer(server.repository, ServerOptions(http_port=18123, grpc_port=18123)).start()
    with pytest.raises(UserError, match="The gRPC and metrics ports are both 18124"):
        TritonServer(server.repository, ServerOptions(grpc_port=18124, metrics_port=18124)).start()
    assert time.monotonic() - started < 2


def tokenizer_alone(converted_tiny, tmp_path: Path, name: str) -> Path:
    """A repository holding only the tiny classifier's tokenizer model, `<name>_tokenize` (one Python model: it
    starts fast), for the tests of starting and stopping a server."""
    repo = write_repository(converted_tiny("text-classification"), tmp_path / "repo", name=name)
    alone = tmp_path / "alone"
    shutil.move(str(repo.path / f"{name}_tokenize"), str(alone / f"{name}_tokenize"))
    return alone


def test_a_port_whose_last_server_stopped_with_clients_connected_is_free(converted_tiny, tmp_path):
    """A server stopped while clients keep connections open leaves its side of them in FIN-WAIT/TIME-WAIT for up
    to a minute. tritonserver binds over those (SO_REUSEADDR), so `inferforge serve` started again right away on
    the same port must start; it was refused with "Port ... is already in use" by the check before launching."""
    import socket

    from inferforge.triton.server import port_is_free

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tritonserver's own listeners
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first, as a stopping server does, and the client keeps its end
    listener.close()
    try:
        assert port_is_free("127.0.0.1", port)
        alone = tokenizer_alone(converted_tiny, tmp_path, "reuse")
        with TritonServer(alone, ServerOptions(python_models=1, http_port=port)) as server:
            assert server.ports.http == port and server.is_ready()
            with urllib.request.urlopen(f"http://{server.http_url}/v2/models/reuse_tokenize/ready", timeout=10) as ready:
                assert ready.status == 200
    finally:
        client.close()


def test_a_server_that_never_gets_ready_is_stopped_with_the_reason(converted_tiny, tmp_path):
    alone = tokenizer_alone(converted_tiny, tmp_path, "broken")
    model_py = alone / "broken_tokenize" / "1" / "model.py"
    model_py.write_text(model_py.read_text().replace("def initialize(self, args):",
                                                     "def initialize(self, args):\n        raise RuntimeError('boom')"))
    server = TritonServer(alone, ServerOptions(ready_timeout_s=120))
    started = time.monotonic()
    with pytest.raises(UserError, match="boom|broken_tokenize"):
        server.start()
    assert time.monotonic() - started < 120
    assert server.process is None
    assert not running_processes_with(server.shm_prefix)
    assert not server.leftover_shm_regions()


def test_cli_serve_query_and_sigterm_leave_nothing_behind(converted_tiny):
    """`inferforge serve` on free ports, `inferforge query` over HTTP and gRPC, then SIGTERM."""
    model_dir = converted_tiny("text-classification")
    cli = [sys.executable, "-c", "from inferforge.cli import main; main()"]
    serve = subprocess.Popen(
        [*cli, "serve", str(model_dir), "--name", "cli_cls", "--http-port", "0", "--grpc-port", "0",
         "--metrics-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = serve.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Try:"):
                break
        printed = "".join(lines)
        assert "Try:" in printed, printed + serve.stderr.read() if serve.poll() is not None else printed
        http_url = printed.split("HTTP     http://")[1].split("/")[0]
        grpc_url = printed.split("gRPC     ")[1].split()[0]
        expected = inferforge.load(model_dir).predict([TEXTS[0]])[0]
        for extra in ([], ["--grpc", "--url", grpc_url]):
            url = [] if extra else ["--url", http_url]
            done = subprocess.run([*cli, "query", TEXTS[0], *url, *extra], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert_same_answers(json.loads(done.stdout.strip()), expected)
        # Standard input, more lines than the server's max_batch_size (32): sent in batches, one answer per line.
        many = [TEXTS[i % len(TEXTS)] + f" number {i}" for i in range(40)]
        done = subprocess.run([*cli, "query", "--file", "-", "--url", http_url], input="\n".join(many) + "\n\n",
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert_same_answers([json.loads(line) for line in done.stdout.splitlines()],
                            [inferforge.load(model_dir).predict([t])[0] for t in many])
        refused = subprocess.run([*cli, "query", "--url", http_url], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and "Nothing to send" in refused.stderr and "Traceback" not in refused.stderr
        refused = subprocess.run([*cli, "query", "", "--url", http_url], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and "empty" in refused.stderr and "Traceback" not in refused.stderr
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
    finally:
        _ended(serve)
    _assert_nothing_left_by(serve)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_interrupted_while_starting_says_so_and_leaves_nothing(converted_tiny, stop):
    """Ctrl-C (or SIGTERM) before the server is ready: one sentence, exit 128+signal, no process, no /dev/shm, no
    folder (the server's log folder was left behind)."""
    model_dir = converted_tiny("text-classification")
    ours = lambda: set(Path(tempfile.gettempdir()).glob("inferforge-*"))  # noqa: E731
    before = ours()
    serve = subprocess.Popen([sys.executable, "-c", "from inferforge.cli import main; main()", "serve", str(model_dir),
                              "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stderr.readline().startswith("Starting Triton on")
        deadline = time.monotonic() + 30
        while not any((d / "tritonserver.log").exists() for d in ours() - before) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # tritonserver launched: its Python stubs are starting (ready takes several seconds)
        serve.send_signal(stop)
        assert serve.wait(timeout=60) == 128 + stop
        said = serve.stderr.read()
        assert "Interrupted while the server was starting" in said and "Traceback" not in said, said
        assert "Serving" not in serve.stdout.read()
    finally:
        _ended(serve)
    _assert_nothing_left_by(serve)
    assert not ours() - before



def test_a_hangup_stops_a_running_server_and_leaves_nothing(converted_tiny):
    """SIGHUP (the terminal or SSH session of `inferforge serve` closed) stops the server as SIGTERM does: its default
    action ended the command at once, and the repository and log folders were left in the temporary folder."""
    model_dir = converted_tiny("text-classification")
    ours = lambda: set(Path(tempfile.gettempdir()).glob("inferforge-*"))  # noqa: E731
    before = ours()
    serve = subprocess.Popen([sys.executable, "-c", "from inferforge.cli import main; main()", "serve", str(model_dir),
                              "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))  # as from a terminal
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = serve.stdout.readline()
            if not line or line.startswith("Try:"):
                break
        assert serve.poll() is None, serve.stderr.read()
        serve.send_signal(signal.SIGHUP)
        assert serve.wait(timeout=60) == 0
        assert "Server stopped." in serve.stderr.read()
    finally:
        _ended(serve)
    _assert_nothing_left_by(serve)
    assert not ours() - before


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", ["plain_http.py", "tritonclient_http_grpc.py"])
def test_example_clients_print_the_local_answers(served, local_models, script):
    server, _ = served
    urls = (["--url", f"http://{server.http_url}"] if script == "plain_http.py"
            else ["--http-url", server.http_url, "--grpc-url", server.grpc_url])
    pairs = [a for c in CONTEXTS[:2] for a in ("--pair", c)]
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--model", "tiny_qa", *urls, *TEXTS[:2], *pairs],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    expected = local_answers(local_models["tiny_qa"], TEXTS[:2], CONTEXTS[:2])
    assert_same_answers(printed, expected * (len(printed) // 2))
    assert len(printed) == (2 if script == "plain_http.py" else 4)


def test_a_picked_port_taken_before_the_server_binds_it_is_picked_again(converted_tiny, tmp_path):
    import socket

    alone = tokenizer_alone(converted_tiny, tmp_path, "race")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]

    class LosesTheFirstRace(TritonServer):
        picks = 0

        def _choose_ports(self):
            ports = super()._choose_ports()
            if LosesTheFirstRace.picks == 0:
                ports.http = taken  # as if another program bound it right after we picked it
            LosesTheFirstRace.picks += 1
            return ports

    try:
        with LosesTheFirstRace(alone, ServerOptions(python_models=1)) as server:
            assert LosesTheFirstRace.picks == 2
            assert server.ports.http != taken and server.is_ready()
    finally:
        squatter.close()
