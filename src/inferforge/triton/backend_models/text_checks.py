"""The checks every request text goes through on the server (numpy and the standard library only).

Copied by `inferforge.triton.repository` beside each Python-backend `model.py` (like
`execute_deadline.py`), so the tokenizer model runs in a stock Triton container without inferforge,
and imported by `inferforge.triton.answers` for the models that tokenize themselves: one set of
checks, one set of messages, whichever model reads the text.
"""

import json

import numpy as np


class BadText(ValueError):
    """Bad content in one request (its own error response; the rest of the batch is answered)."""


def decode_texts(array: np.ndarray) -> list:
    return [bytes(v).decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v) for v in array.reshape(-1)]


def checked_texts(array, name: str, max_chars=None) -> list:
    """Texts of one request input (None: the input is missing); any bad one raises `BadText`."""
    if array is None:
        raise BadText(f"missing input '{name}'")
    values = array.reshape(-1)
    texts = []
    for index, value in enumerate(values):
        # Which one, when the request holds several: a batch of 32 texts with one bad text is otherwise a hunt.
        where = f"input '{name}'" + (f" (text {index + 1} of {len(values)})" if len(values) > 1 else "")
        try:
            text = bytes(value).decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)
        except UnicodeDecodeError as error:
            raise BadText(f"{where} is not valid UTF-8 ({error.reason} at byte {error.start})") from None
        if "\x00" in text:
            raise BadText(f"{where} contains a NUL byte (at character {text.index(chr(0))}); send plain text")
        if max_chars is not None and len(text) > max_chars:
            raise BadText(
                f"{where} has {len(text):,} characters; this server takes at most {max_chars:,} "
                "(`inferforge serve --max-text-chars` sets it): send a shorter text"
            )
        if not text.strip():
            raise BadText(f"{where} is empty: send some text")
        texts.append(text)
    if not texts:
        raise BadText(f"input '{name}' holds no text")
    return texts


# Said when a request's contexts need more reading windows (question answering) than the model after the tokenizer
# takes in one request; `inferforge.triton.client` splits such a batch of texts on these words.
TOO_MANY_WINDOWS = "reading windows"


def too_many_windows(needed: int, texts: int, limit: int) -> str:
    contexts = "the context of this request needs" if texts == 1 else f"the {texts} contexts of this request need"
    return (f"{contexts} {needed} {TOO_MANY_WINDOWS} and the model reads at most {limit} per request (its "
            "max_batch_size): send " + ("a shorter context" if texts == 1 else "fewer or shorter contexts per request"))


# The key of `token_limits` that holds the most tokens a row may have: the length the model was converted and verified
# for. Past its position embeddings a row failed inside the runtime, a 500 naming its internals.
TOKENS = "tokens"


def token_limits(config: dict, max_length: int | None = None) -> dict:
    """How many values each token input takes, from a model's config.json: its vocabulary rows, its segment
    types, 0/1 for the mask. An id past them fails the model's embedding lookup, and with it every request
    batched with it. And under TOKENS `max_length`, the most tokens a row may have."""
    limits = {"attention_mask": 2} if max_length is None else {"attention_mask": 2, TOKENS: int(max_length)}
    for name, key in (("input_ids", "vocab_size"), ("token_type_ids", "type_vocab_size")):
        if isinstance(config.get(key), int) and config[key] > 0:
            limits[name] = config[key]
    return limits


def checked_token_arrays(arrays: dict, limits: dict) -> dict:
    """Token arrays sent directly (a client of the `_model` step): 2-D integers of one shape, each input's values
    inside its `token_limits`; else `BadText` naming the input and what it holds."""
    shape = None
    for name, array in arrays.items():
        if array.ndim != 2 or array.dtype.kind not in "iu":
            raise BadText(f"input '{name}' must be integer token ids of shape [texts, tokens], not "
                          f"{array.dtype} of shape {list(array.shape)}")
        if shape is not None and array.shape != shape:
            raise BadText(f"input '{name}' has shape {list(array.shape)} but the first input {list(shape)}: "
                          "send every token input at one shape")
        shape = array.shape
        if array.shape[1] == 0:  # a run of no tokens failed inside the model step: a 500 naming an internal detail
            raise BadText(f"input '{name}' holds no tokens (shape {list(array.shape)}): send at least one token per row")
        if TOKENS in limits and array.shape[1] > limits[TOKENS]:
            raise BadText(f"input '{name}' holds rows of {array.shape[1]} tokens and this model reads at most "
                          f"{limits[TOKENS]}: send shorter rows")
        limit = limits.get(name)
        if limit is None or not array.size:
            continue
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= limit:
            raise BadText(f"input '{name}' holds {low if low < 0 else high}, outside this model's {limit} values "
                          f"(0 to {limit - 1})")
    return arrays


def checked_answer_inputs(shape, texts, pairs, details: dict, sample, pair_needed: bool) -> None:
    """What an answer to token arrays of `shape` ([rows, tokens]) is read from, when a client of the `_model` step
    sends the arrays itself rather than the tokenizer model: the texts (`None`: not sent), the pairs when the task
    needs them, the tokenizer's per-token details (name -> array or None) at the arrays' shape, and with windows
    `sample`, each row's text index (0 to texts - 1, every text at least one row). Else `BadText`: such a request
    was answered with a 500 naming an internal detail ("0 is not in list"), or answered from details that do not
    fit its tokens."""
    raw_only = "(or request only the model's raw outputs)"
    if texts is None:
        raise BadText(f"the answer needs the input 'text' beside the token arrays {raw_only}")
    if pairs is None and pair_needed:
        raise BadText(f"the answer needs the input 'text_pair' beside the token arrays {raw_only}")
    rows, tokens = shape
    for name, array in details.items():
        if array is None:
            raise BadText(f"the answer needs the tokenizer's '{name}' beside the token arrays {raw_only}")
        expected = (rows, tokens, 2) if name == "offsets" else (rows, tokens)
        if tuple(array.shape) != expected:
            raise BadText(f"input '{name}' has shape {list(array.shape)} but the token arrays need {list(expected)}")
    if sample is not None:
        owners = np.asarray(sample).reshape(-1)
        if owners.size and (owners.min() < 0 or len(set(owners.tolist())) != int(owners.max()) + 1):
            raise BadText(f"input 'window_sample' holds {sorted(set(owners.tolist()))}; it gives each row the index "
                          "of its text in the request: 0 to texts - 1, every text at least one row")


def refuse_pair_parameter(request) -> None:
    """For a model without a `text_pair` input: a request naming `text_pair` among its parameters is refused rather
    than answered for the text alone (Triton's generate endpoint passes JSON keys that are not inputs as parameters,
    so `{"text": ..., "text_pair": ...}` to a single-text model would otherwise lose the pair without a word).
    `request`: a Python-backend request (`parameters()` is its JSON; older backends without it pass)."""
    parameters = request.parameters() if hasattr(request, "parameters") else ""
    if '"text_pair"' in (parameters or "") and "text_pair" in json.loads(parameters):
        raise BadText("this model takes single texts, not text pairs: 'text_pair' is not one of its inputs; "
                      "leave it out")


def for_request(request, message: str) -> str:
    """`message` as Triton words its own errors: "[request id: ID] ..." when the client gave the request an id. A
    gRPC stream client with several requests in flight gets a failed one's error without its id (tritonclient's
    callback receives no result), so the id in the message is how it tells which request failed."""
    request_id = request.request_id() if hasattr(request, "request_id") else ""
    return f"[request id: {request_id}] {message}" if request_id else message
