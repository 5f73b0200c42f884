"""Raw model outputs of one Triton request to the task's answers, as tensors.

Shared by the Python-backend models that answer (the python-flavour `<name>_model` and the
onnxruntime flavour's `<name>_postprocess`). The answers come from the task's own post-processing
(`inferforge.tasks`), the function `LoadedModel.predict` uses, so the server answers exactly what the
local engine answers. No Triton import here.
"""

from __future__ import annotations

import json

import numpy as np

from inferforge.tokenization import Encoded
from inferforge.triton.backend_models.text_checks import (  # noqa: F401 (re-exported)
    BadText,
    checked_answer_inputs,
    checked_texts,
    checked_token_arrays,
    decode_texts,
    for_request,
    refuse_pair_parameter,
    token_limits,
)

ANSWER_OUTPUT = "answer_json"
TOKEN_DETAILS = ("offsets", "special_mask", "word_ids", "sequence_ids")


WINDOW_SAMPLE = "window_sample"  # per row, the index of its text in the request (a long QA context: several rows)
# A classifier's score for every class, in class order (the function its answer's `score` comes from: softmax, a
# sigmoid per label for multi-label models, the raw value for regression); its config names LABEL_FILE for Triton's
# classification extension (`class_count`), which answers "score:index:label" strings from it.
SCORES_OUTPUT = "scores"


def encoded_from_details(texts: list[str], pairs: list[str] | None, details: dict[str, np.ndarray],
                         sample: np.ndarray | None = None) -> Encoded:
    """The `Encoded` post-processing reads, rebuilt from the tokenizer model's detail tensors.

    Padding positions carry special_mask 1 and ids -1 (None), so post-processing skips them. With `sample`
    the rows are windows and `texts`/`pairs` hold each window's texts: the request's texts are read back
    from the first window of each.
    """
    owners = None
    if sample is not None:
        owners = [int(owner) for owner in np.asarray(sample).reshape(-1)]
        firsts = [owners.index(index) for index in range(max(owners) + 1)]
        texts = [texts[row] for row in firsts]
        pairs = [pairs[row] for row in firsts] if pairs is not None else None
    encoded = Encoded(arrays={}, texts=texts, pairs=pairs, sample=owners)
    if details:
        encoded.offsets = [[(int(s), int(e)) for s, e in row] for row in details["offsets"]]
        encoded.special_mask = details["special_mask"].tolist()
        encoded.word_ids = [[None if w < 0 else w for w in row] for row in details["word_ids"].tolist()]
        encoded.sequence_ids = [[None if s < 0 else s for s in row] for row in details["sequence_ids"].tolist()]
    return encoded


try:
    import orjson
except ImportError:  # a container without inferforge's dependencies: the standard library writes it
    orjson = None


def answer_json(answer) -> bytes:
    """One answer as UTF-8 JSON. orjson writes a 384-float embedding in 0.02 ms where the standard
    library takes 0.4 ms (measured), a tenth of a 16-token MiniLM request; the text is the same JSON."""
    if orjson is not None:
        try:
            return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:  # what orjson does not write (an integer over 64 bits, a subclass)
            pass
    return json.dumps(answer, ensure_ascii=False).encode("utf-8")


def answer_tensors(task, labels, outputs: dict[str, np.ndarray], encoded: Encoded,
                   typed_outputs: list[tuple[str, np.dtype]], wanted: set[str] | None = None,
                   problem_type: str | None = None) -> dict[str, np.ndarray]:
    """`answer_json` (one JSON document per text) and the typed tensors named after answer fields;
    with `wanted`, only the outputs the request asked for are built."""
    answers = task.postprocess(outputs, encoded, labels, problem_type)
    tensors = {}
    if wanted is None or ANSWER_OUTPUT in wanted:
        tensors[ANSWER_OUTPUT] = np.array([[answer_json(a)] for a in answers], dtype=np.object_)
    for name, dtype in typed_outputs:
        if wanted is not None and name not in wanted:
            continue
        if name == "embedding":
            tensors[name] = np.asarray(answers, dtype=dtype)
        elif name == SCORES_OUTPUT:
            from inferforge.tasks import class_scores

            tensors[name] = class_scores(outputs["logits"], problem_type).astype(dtype)
        elif dtype == np.object_:
            tensors[name] = np.array([[str(a[name]).encode("utf-8")] for a in answers], dtype=np.object_)
        else:
            tensors[name] = np.array([[a[name]] for a in answers], dtype=dtype)
    return tensors
