"""Triton Python-backend model: the selected variant, and the task's answer.

Copied as `model.py` into `<name>_model/1/` next to `artifact/`, a converted inferforge folder
holding only the selected variant, which runs through `inferforge.load` exactly as it does locally
(onnxruntime or OpenVINO). A request brings either
  - token arrays (from `<name>_tokenize` in the ensemble, with the texts and the tokenizer's
    per-token details when the answer needs them), or
  - texts alone (`tokenize_in_model` ensembles): tokenized here with the same `tokenizer.json`
    through `inferforge`'s TextEncoder, which saves a Python hop per request.
It returns the raw outputs and/or the answer (`answer_json` and typed tensors), whichever is requested.
A client of this step that sends token arrays itself and asks for the answer must send what the tokenizer
model sends beside them (the texts, the pairs when the task needs them, the per-token details at the arrays'
shape, valid window rows): what is missing or does not fit is that request's 400, before the run.

The requests of a dynamic batch have their own sequence lengths (`allow_ragged_batch`): they are
right-padded with `pad_id` to the longest, run as one batch, and cut back to their own length on the
per-token outputs. As in `predict`, rows of similar length run together (little padding is computed), and
a model that takes no attention mask (FNet) runs each length unpadded, so an answer never depends on the
requests batched with it. Bad text, or a failing run,
fails that request alone: the rest of the batch is answered.

Config parameters (string values): `threads`, `variant`, `pad_id`, `array_inputs`, `model_outputs`,
`per_token_outputs` (comma separated), `max_text_chars`.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils
from execute_deadline import bounded_execute

from inferforge.artifacts import load
from inferforge.engines.base import BUCKET_SLACK, run_by_length
from inferforge.engines.ort import SPINNING_ENV as ORT_SPINNING_ENV
from inferforge.triton.answers import (
    ANSWER_OUTPUT,
    TOKEN_DETAILS,
    WINDOW_SAMPLE,
    BadText,
    answer_tensors,
    checked_answer_inputs,
    checked_texts,
    checked_token_arrays,
    encoded_from_details,
    for_request,
    refuse_pair_parameter,
    token_limits,
)


def _names(value):
    return [name for name in value.split(",") if name]


def _error(request, message, code=None):
    message = for_request(request, message)
    error = pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    return pb_utils.InferenceResponse(output_tensors=[], error=error)


@bounded_execute
class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        artifact = os.path.join(args["model_repository"], args["model_version"], "artifact")
        threads = int(params.get("threads") or 0) or None
        # Engine threads busy-waiting between requests would take the cores the server and the client need; spinning
        # only while a call runs keeps the wake-ups out of it (see engines/ort.py).
        os.environ[ORT_SPINNING_ENV] = params.get("ort_spinning") or os.environ.get(ORT_SPINNING_ENV) or "run"
        self.model = load(artifact, variant=params.get("variant") or None, threads=threads)
        config_path = os.path.join(artifact, "config.json")
        self.token_limits = token_limits(json.load(open(config_path)) if os.path.exists(config_path) else {},
                                         self.model.manifest.max_length)
        self.array_inputs = _names(params["array_inputs"])
        self.model_outputs = _names(params["model_outputs"])
        self.per_token = set(_names(params.get("per_token_outputs", "")))
        self.pad_id = int(params.get("pad_id", "0"))
        self.max_text_chars = int(params.get("max_text_chars") or 0) or None
        self.input_names = {i["name"] for i in config["input"]}
        self.answer_outputs = [
            (o["name"], pb_utils.triton_string_to_numpy(o["data_type"]))
            for o in config["output"]
            if o["name"] not in self.model_outputs
        ]
        self.typed_outputs = [(n, t) for n, t in self.answer_outputs if n != ANSWER_OUTPUT]

    def execute(self, requests):
        prepared = []  # per request: (arrays, Encoded or None) or the error response
        for request in requests:
            try:
                prepared.append(self._prepare(request))
            except BadText as error:
                prepared.append(_error(request, str(error), pb_utils.TritonError.INVALID_ARG))
            except Exception as error:
                prepared.append(_error(request, f"bad request: {error}"))
        runnable = [p for p in prepared if isinstance(p, tuple)]
        try:
            outputs = iter(self._run_joined([arrays for arrays, _ in runnable])) if runnable else iter(())
        except Exception:
            outputs = None
        responses = []
        for request, item in zip(requests, prepared):
            if not isinstance(item, tuple):
                responses.append(item)
                continue
            arrays, encoded = item
            try:
                raw = next(outputs) if outputs is not None else self._run_joined([arrays])[0]
                responses.append(pb_utils.InferenceResponse(output_tensors=self._tensors(request, raw, encoded)))
            except Exception as error:  # one request's failure never fails the batch
                responses.append(_error(request, f"model run failed: {error}"))
        return responses

    def _prepare(self, request):
        """Token arrays for the engine, and the Encoded when the text is tokenized here."""
        first = pb_utils.get_input_tensor_by_name(request, self.array_inputs[0])
        if first is not None:
            arrays = {name: pb_utils.get_input_tensor_by_name(request, name) for name in self.array_inputs}
            missing = [name for name, tensor in arrays.items() if tensor is None]
            if missing:
                raise BadText(f"missing input(s) {', '.join(missing)}")
            arrays = checked_token_arrays({name: tensor.as_numpy() for name, tensor in arrays.items()},
                                          self.token_limits)
            wanted = set(request.requested_output_names())
            if not any(name in wanted for name, _ in self.answer_outputs):
                return arrays, None  # raw outputs only
            return arrays, self._given_encoded(request, arrays[self.array_inputs[0]].shape)
        texts = checked_texts(_numpy(pb_utils.get_input_tensor_by_name(request, "text")), "text", self.max_text_chars)
        pairs = self._pairs(request, len(texts))
        encoded = self.model.encoder.encode(texts, pairs)
        return encoded.arrays, encoded

    def _pairs(self, request, count):
        if "text_pair" not in self.input_names:
            refuse_pair_parameter(request)
        tensor = pb_utils.get_input_tensor_by_name(request, "text_pair") if "text_pair" in self.input_names else None
        if tensor is None:
            if self.model.task.needs_pairs:
                raise BadText("this model needs a text pair: send the second text as input 'text_pair'")
            return None
        pairs = checked_texts(tensor.as_numpy(), "text_pair", self.max_text_chars)
        if len(pairs) != count:
            raise BadText(f"got {count} texts but {len(pairs)} text pairs; send one pair per text")
        return pairs

    def _tensors(self, request, raw, encoded):
        wanted = set(request.requested_output_names())
        tensors = [pb_utils.Tensor(n, np.ascontiguousarray(raw[n])) for n in self.model_outputs if n in wanted]
        if any(name in wanted for name, _ in self.answer_outputs):
            answers = answer_tensors(self.model.task, self.model.labels, raw, encoded, self.typed_outputs, wanted,
                                     self.model.manifest.problem_type)
            for name, value in answers.items():
                tensors.append(pb_utils.Tensor(name, value))
        return tensors

    def _given_encoded(self, request, shape):
        """The Encoded of token arrays that came with their texts and the tokenizer's details (from the tokenizer
        model, or from a client of this step), checked against the arrays' `shape`: bad ones are `BadText`."""
        def given(name):
            return _numpy(pb_utils.get_input_tensor_by_name(request, name)) if name in self.input_names else None

        texts, pairs = given("text"), given("text_pair")
        texts = checked_texts(texts, "text", self.max_text_chars) if texts is not None else None
        pairs = checked_texts(pairs, "text_pair", self.max_text_chars) if pairs is not None else None
        details = {name: given(name) for name in TOKEN_DETAILS} if "offsets" in self.input_names else {}
        sample = given(WINDOW_SAMPLE)
        checked_answer_inputs(shape, texts, pairs, details, sample, self.model.task.needs_pairs)
        return encoded_from_details(texts, pairs, details, sample)

    def _run_joined(self, inputs):
        """Pad every request to the longest sequence, run once, split back per request."""
        first = self.array_inputs[0]
        length = max(a[first].shape[1] for a in inputs)
        joined = {}
        for name in self.array_inputs:
            parts = []
            for arrays in inputs:
                array = arrays[name].astype(np.int64, copy=False)
                missing = length - array.shape[1]
                if missing:
                    fill = self.pad_id if name == "input_ids" else 0
                    array = np.pad(array, ((0, 0), (0, missing)), constant_values=fill)
                parts.append(array)
            joined[name] = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        # A row's length: up to its last attended token or, without an attention mask (FNet), its last token that
        # is not padding. Rows of similar length run together; without a mask each row runs at its own length.
        if "attention_mask" in joined:
            real = joined["attention_mask"] != 0
        else:
            real = joined["input_ids"] != self.pad_id
        lengths = np.where(real.any(axis=1), length - np.argmax(real[:, ::-1], axis=1), 1)
        result = run_by_length(self.model.run, joined, lengths, self.per_token,
                               slack=1.0 if self.model.manifest.reads_padding else BUCKET_SLACK)
        split = []
        start = 0
        for arrays in inputs:
            rows, own_length = arrays[first].shape
            piece = {}
            for name in self.model_outputs:
                value = result[name][start : start + rows]
                piece[name] = value[:, :own_length] if name in self.per_token else value
            split.append(piece)
            start += rows
        return split


def _numpy(tensor):
    return None if tensor is None else tensor.as_numpy()
