"""The checks every request text goes through on the server (numpy and the standard library only).

Copied by `inferforge.triton.repository` beside each Python-backend `model.py` (like
`execute_deadline.py`), so the tokenizer model runs in a stock Triton container without inferforge,
and imported by `inferforge.triton.answers` for the models that tokenize themselves: one set of
checks, one set of messages, whichever model reads the text.
"""

import numpy as np


class BadText(ValueError):
    """Bad content in one request (its own error response; the rest of the batch is answered)."""


def decode_texts(array: np.ndarray) -> list:
    return [bytes(v).decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v) for v in array.reshape(-1)]


def checked_texts(array, name: str, max_chars=None) -> list:
    """Texts of one request input (None: the input is missing); any bad one raises `BadText`."""
    if array is None:
        raise BadText(f"missing input '{name}'")
    texts = []
    for value in array.reshape(-1):
        try:
            text = bytes(value).decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)
        except UnicodeDecodeError as error:
            raise BadText(f"input '{name}' is not valid UTF-8 ({error.reason} at byte {error.start})") from None
        if "\x00" in text:
            raise BadText(f"input '{name}' contains a NUL byte (at character {text.index(chr(0))}); send plain text")
        if max_chars is not None and len(text) > max_chars:
            raise BadText(
                f"input '{name}' has {len(text):,} characters; this server takes at most {max_chars:,} "
                "(the model reads only the first tokens anyway): send a shorter text"
            )
        if not text.strip():
            raise BadText(f"input '{name}' is empty: send some text")
        texts.append(text)
    if not texts:
        raise BadText(f"input '{name}' holds no text")
    return texts
