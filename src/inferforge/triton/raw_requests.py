"""KServe v2 requests built byte by byte, good and bad, and the answer a hardened server gives each.

Text travels in Triton's binary tensor extension (a JSON header, then each BYTES element as a
4-byte little-endian length and its bytes), so that content JSON cannot carry (invalid UTF-8) reaches
the server exactly as sent. Used by tests/test_reliability.py and bench/soak.py; `BAD_REQUESTS` is the
bad-input matrix of RELIABILITY.md.
"""

from __future__ import annotations

import http.client
import json
import struct
from dataclasses import dataclass
from typing import Callable

from inferforge.triton.answers import ANSWER_OUTPUT

TEXT, PAIR = "text", "text_pair"


@dataclass(frozen=True)
class RawRequest:
    body: bytes
    header_length: int


@dataclass(frozen=True)
class Reply:
    status: int
    document: dict  # the JSON part of the answer ({"error": ...} on failure)

    @property
    def error(self) -> str:
        return str(self.document.get("error", ""))

    def answers(self) -> list:
        """The task's answers (one per text) of a successful reply."""
        output = next(o for o in self.document["outputs"] if o["name"] == ANSWER_OUTPUT)
        return [json.loads(value) for value in output["data"]]


def tensor_request(inputs: list[tuple[str, str, list[int], bytes]]) -> RawRequest:
    """`inputs`: (name, datatype, shape, raw tensor bytes); asks for `answer_json` as JSON."""
    header = {
        "inputs": [
            {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": len(raw)}}
            for name, datatype, shape, raw in inputs
        ],
        "outputs": [{"name": ANSWER_OUTPUT, "parameters": {"binary_data": False}}],
    }
    head = json.dumps(header).encode()
    return RawRequest(head + b"".join(raw for *_, raw in inputs), len(head))


def bytes_tensor(values: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def text_request(texts: list[bytes | str], pairs: list[bytes | str] | None = None) -> RawRequest:
    def encoded(values):
        return [v.encode() if isinstance(v, str) else v for v in values]

    inputs = [(TEXT, "BYTES", [len(texts), 1], bytes_tensor(encoded(texts)))]
    if pairs is not None:
        inputs.append((PAIR, "BYTES", [len(pairs), 1], bytes_tensor(encoded(pairs))))
    return tensor_request(inputs)


def json_request(body: bytes) -> RawRequest:
    """A body sent as it is, as plain JSON (no binary tensors): for bodies Triton's own parser refuses."""
    return RawRequest(body, 0)


def send(connection: http.client.HTTPConnection, model: str, request: RawRequest) -> Reply:
    """POST one request on an open connection (kept alive); the reply's status and JSON."""
    headers = {"Content-Type": "application/json"}
    if request.header_length:
        headers = {"Inference-Header-Content-Length": str(request.header_length),
                   "Content-Type": "application/octet-stream"}
    connection.request("POST", f"/v2/models/{model}/infer", body=request.body, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    length = response.getheader("Inference-Header-Content-Length")
    text = raw[: int(length)] if length else raw
    try:
        document = json.loads(text) if text else {}
    except ValueError:
        document = {"error": text.decode(errors="replace")[:300]}
    return Reply(response.status, document)


@dataclass(frozen=True)
class BadRequest:
    """A bad request and what the hardened server answers: an HTTP status and words of the message."""

    build: Callable[[int], RawRequest]  # max_batch_size -> request
    status: int
    words: str  # regular expression the error message matches
    rejected_by: str  # "Triton" (before any model code) or "tokenizer" (our per-request error)


LONG_TEXT_CHARS = 1_000_000

BAD_REQUESTS: dict[str, BadRequest] = {
    "invalid UTF-8": BadRequest(lambda _: text_request([b"caf\xc3 \xff\xfe"]), 400, "not valid UTF-8", "tokenizer"),
    "NUL byte": BadRequest(lambda _: text_request([b"good text\x00 then NUL"]), 400, "NUL byte", "tokenizer"),
    "empty string": BadRequest(lambda _: text_request([b""]), 400, "is empty", "tokenizer"),
    "only whitespace": BadRequest(lambda _: text_request([b" \t\n "]), 400, "is empty", "tokenizer"),
    "1 MB text": BadRequest(lambda _: text_request([b"word " * (LONG_TEXT_CHARS // 5)]), 400,
                            "1,000,000 characters.*at most", "tokenizer"),
    "one bad text among good ones": BadRequest(lambda _: text_request([b"fine text", b"\xff"]), 400,
                                               "not valid UTF-8", "tokenizer"),
    "text pair to a single-text model": BadRequest(lambda _: text_request(["first"], ["second"]), 400,
                                                   "expected 1 inputs but got 2|text_pair", "Triton"),
    "wrong input name": BadRequest(
        lambda _: tensor_request([("txt", "BYTES", [1, 1], bytes_tensor([b"hello"]))]), 400, "txt", "Triton"),
    "wrong datatype": BadRequest(
        lambda _: tensor_request([(TEXT, "INT32", [1, 1], struct.pack("<i", 7))]), 400, "INT32|BYTES|TYPE_STRING",
        "Triton"),
    "batch over max_batch_size": BadRequest(lambda n: text_request([b"x"] * (n + 1)), 400, "batch", "Triton"),
    "shape and data disagree": BadRequest(
        lambda _: tensor_request([(TEXT, "BYTES", [2, 1], bytes_tensor([b"only one"]))]), 400,
        "unexpected|expected|size|element", "Triton"),
}

# Bodies that are not KServe v2 JSON at all. Triton 2.51's HTTP front end parses them before any model runs and
# reports its parse errors as a server fault, 500; under `inferforge serve` the library it preloads (hide_args.c,
# built where a C compiler exists) makes them the client error they are, 400 (later Triton releases answer 400
# too). Nothing inferforge runs sees them; they are here so that the tests prove the server survives them.
MALFORMED_JSON: dict[str, BadRequest] = {
    "not JSON": BadRequest(lambda _: json_request(b"not json"), 400, "parse the request JSON", "Triton"),
    "truncated JSON": BadRequest(lambda _: json_request(b'{"inputs": ['), 400, "parse the request JSON", "Triton"),
    "no inputs member": BadRequest(lambda _: json_request(b"{}"), 400, "inputs", "Triton"),
    "no shape": BadRequest(lambda _: json_request(
        json.dumps({"inputs": [{"name": TEXT, "datatype": "BYTES", "data": ["hi"]}]}).encode()),
        400, "Unable to parse 'shape'", "Triton"),
    "a number as text": BadRequest(lambda _: json_request(
        json.dumps({"inputs": [{"name": TEXT, "shape": [1, 1], "datatype": "BYTES", "data": [3]}]}).encode()),
        400, "non-string", "Triton"),
    "no batch dimension": BadRequest(lambda _: json_request(
        json.dumps({"inputs": [{"name": TEXT, "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}).encode()),
        400, "unexpected shape.*batch dimension", "Triton"),
}
