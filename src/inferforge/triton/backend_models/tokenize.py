"""Triton Python-backend model: text (and an optional text pair) in, int64 token arrays out.

Copied as `model.py` into `<name>_tokenize/1/` with the model's `tokenizer.json`. It needs only
numpy and the Hugging Face `tokenizers` package, so it also runs in a stock Triton container.
Its behaviour matches `inferforge.tokenization.TextEncoder`: truncation to `max_length` with the
longest-first strategy, right padding with the tokenizer's pad id to the longest sequence of the
request. Each request of a dynamic batch gets its own arrays: requests never pad each other.

Bad content (invalid UTF-8, an empty text, a missing pair) fails that request alone with a
`TritonError`; the other requests of the batch are answered.

Question answering reads a long context in overlapping windows, as `inferforge.tokenization.TextEncoder`
does (`token_windows.py`, copied beside this file): a request of n texts then gives one row per window, and
`window_text`, `window_text_pair` (each window's question and context) and `window_sample` (the index of its
text in the request) say which text each row belongs to, so that every tensor of the next step has the same
number of rows. A request needing more windows than `max_windows` (the next model's max_batch_size) is refused
with a message that says so: answered from some of its windows only, it would get another answer than
`inferforge.load(DIR).predict`, which reads every window.

Config parameters (string values): `max_length`, `input_names` (comma separated), `pad_id`, `cls_id`,
`tokenizer_file`, `text_prefix` (put before every text: a sentence-transformers model's default prompt), and for windows `window_length`, `window_stride`, `max_windows`. Outputs besides the model's
inputs, returned only when requested: `offsets` [tokens, 2], `special_mask` (2 on the classifier token),
`word_ids`, `sequence_ids` (-1 where the tokenizer says None), and the window outputs above.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

from execute_deadline import bounded_execute  # copied beside this file (standard library only)
# copied beside this file (numpy only)
from text_checks import BadText, checked_texts, for_request, refuse_pair_parameter, too_many_windows
from token_windows import Windows, encode_windows, special_marks  # copied beside this file (tokenizers only)

DETAIL_OUTPUTS = ("offsets", "special_mask", "word_ids", "sequence_ids")
WINDOW_OUTPUTS = ("window_text", "window_text_pair", "window_sample")


@bounded_execute
class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.max_length = int(params["max_length"])
        self.input_names = tuple(params["input_names"].split(","))
        self.pad_id = int(params["pad_id"])
        self.pair_required = params.get("pair_required", "false") == "true"
        self.takes_pairs = any(i["name"] == "text_pair" for i in config["input"])
        # Longer texts are refused: the tokenizer truncates only after reading the whole text (1 MB: seconds).
        self.max_text_chars = int(params.get("max_text_chars") or 0) or None
        model_dir = os.path.join(args["model_repository"], args["model_version"])
        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, params.get("tokenizer_file", "tokenizer.json")))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_length, strategy="longest_first")
        self.cls_id = int(params.get("cls_id") or -1)
        self.prefix = params.get("text_prefix", "")
        self.windows = None
        if params.get("window_length"):
            self.windows = Windows(int(params["window_length"]), int(params["window_stride"]))
            self.max_windows = int(params["max_windows"])

    def execute(self, requests):
        parsed = []  # per request: list of items to encode, or a BadText
        for request in requests:
            try:
                parsed.append(self._read(request))
            except BadText as error:
                parsed.append(error)
        responses = []
        for request, p in zip(requests, self._encode(parsed)):
            if isinstance(p, BadText):
                error = pb_utils.TritonError(for_request(request, str(p)), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            try:
                wanted = set(request.requested_output_names())
                responses.append(pb_utils.InferenceResponse(output_tensors=self._tensors(*p, wanted)))
            except Exception as failure:  # one request's failure never fails the batch
                error = pb_utils.TritonError(for_request(request, f"tokenization failed: {failure}"))
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
        return responses

    def _encode(self, parsed):
        """Every request's texts tokenized in one call. Per request: (its encodings, and with windows each row's
        (question, context) and the index of its text in the request, else None, None), or its BadText."""
        items = [item for p in parsed if not isinstance(p, BadText) for item in p]
        windows = self.windows is not None and bool(items) and isinstance(items[0], tuple)
        if windows:
            encodings, owners = encode_windows(self.tokenizer, items, self.max_length, self.windows)
        else:
            encodings = self.tokenizer.encode_batch(items, add_special_tokens=True) if items else []
            owners = list(range(len(items)))
        result, first, row = [], 0, 0  # first: this request's first item; row: its first encoding
        for p in parsed:
            if isinstance(p, BadText):
                result.append(p)
                continue
            end = row
            while end < len(owners) and owners[end] < first + len(p):
                end += 1
            if windows and end - row > self.max_windows:
                result.append(BadText(too_many_windows(end - row, len(p), self.max_windows)))
            elif windows:
                samples = [owner - first for owner in owners[row:end]]
                result.append((encodings[row:end], [p[i] for i in samples], samples))
            else:
                result.append((encodings[row:end], None, None))
            first, row = first + len(p), end
        return result

    def _read(self, request):
        texts = _decode(pb_utils.get_input_tensor_by_name(request, "text"), "text", self.max_text_chars)
        if self.prefix:
            texts = [self.prefix + text for text in texts]
        pair_tensor = pb_utils.get_input_tensor_by_name(request, "text_pair")
        if not self.takes_pairs:
            refuse_pair_parameter(request)
        if pair_tensor is None:
            if self.pair_required:
                raise BadText("this model needs a text pair: send the second text as input 'text_pair'")
            return texts
        pairs = _decode(pair_tensor, "text_pair", self.max_text_chars)
        if len(pairs) != len(texts):
            raise BadText(f"got {len(texts)} texts but {len(pairs)} text pairs; send one pair per text")
        return list(zip(texts, pairs))

    def _tensors(self, encodings, window_items, window_samples, wanted):
        length = max(len(e.ids) for e in encodings)
        batch = len(encodings)
        arrays = {}
        ids = np.full((batch, length), self.pad_id, dtype=np.int64)
        mask = np.zeros((batch, length), dtype=np.int64)
        types = np.zeros((batch, length), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
        arrays.update(input_ids=ids, attention_mask=mask, token_type_ids=types)
        if wanted & set(DETAIL_OUTPUTS):
            offsets = np.zeros((batch, length, 2), dtype=np.int64)
            special = np.ones((batch, length), dtype=np.int64)  # padding counts as special
            words = np.full((batch, length), -1, dtype=np.int64)
            sequences = np.full((batch, length), -1, dtype=np.int64)
            for row, enc in enumerate(encodings):
                n = len(enc.ids)
                offsets[row, :n] = enc.offsets
                special[row, :n] = special_marks(enc, self.cls_id)
                words[row, :n] = [-1 if w is None else w for w in enc.word_ids]
                sequences[row, :n] = [-1 if s is None else s for s in enc.sequence_ids]
            arrays.update(offsets=offsets, special_mask=special, word_ids=words, sequence_ids=sequences)
        if window_items is not None:
            arrays.update(window_text=_strings([first for first, _ in window_items]),
                          window_text_pair=_strings([second for _, second in window_items]),
                          window_sample=np.array(window_samples, dtype=np.int64).reshape(-1, 1))
        names = [n for n in (*self.input_names, *DETAIL_OUTPUTS, *WINDOW_OUTPUTS) if n in wanted] or list(self.input_names)
        return [pb_utils.Tensor(name, arrays[name]) for name in names]


def _strings(values):
    return np.array([[v.encode("utf-8")] for v in values], dtype=np.object_)


def _decode(tensor, name, max_chars=None):
    return checked_texts(None if tensor is None else tensor.as_numpy(), name, max_chars)
