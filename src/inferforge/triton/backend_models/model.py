"""Triton Python-backend model: token arrays in, the selected variant's outputs and the task's answer out.

Copied as `model.py` into `<name>_model/1/` next to `artifact/`, a converted inferforge folder
holding only the selected variant, which runs through `inferforge.load` exactly as it does locally
(onnxruntime or OpenVINO). In the ensemble it also writes the answer (`answer_json` and typed
tensors) from the texts and the tokenizer's details, saving a separate post-processing hop; called
alone with token arrays it returns the raw outputs.

The requests of a dynamic batch have their own sequence lengths (`allow_ragged_batch`): they are
right-padded with `pad_id` to the longest, run as one batch, and cut back to their own length on the
per-token outputs. If the joint run fails, each request runs alone, so only a bad request gets an error.

Config parameters (string values): `threads`, `variant`, `pad_id`, `array_inputs`, `model_outputs`,
`per_token_outputs` (comma separated).
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils
from execute_deadline import bounded_execute

from inferforge.artifacts import load
from inferforge.triton.answers import ANSWER_OUTPUT, TOKEN_DETAILS, answer_tensors, decode_texts, encoded_from_details


def _names(value):
    return [name for name in value.split(",") if name]


@bounded_execute
class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        artifact = os.path.join(args["model_repository"], args["model_version"], "artifact")
        threads = int(params.get("threads") or 0) or None
        self.model = load(artifact, variant=params.get("variant") or None, threads=threads)
        self.array_inputs = _names(params["array_inputs"])
        self.model_outputs = _names(params["model_outputs"])
        self.per_token = set(_names(params.get("per_token_outputs", "")))
        self.pad_id = int(params.get("pad_id", "0"))
        self.input_names = {i["name"] for i in config["input"]}
        self.answer_outputs = [
            (o["name"], pb_utils.triton_string_to_numpy(o["data_type"]))
            for o in config["output"]
            if o["name"] not in self.model_outputs
        ]
        self.typed_outputs = [(n, t) for n, t in self.answer_outputs if n != ANSWER_OUTPUT]

    def execute(self, requests):
        inputs = [self._arrays(request) for request in requests]
        try:
            outputs = self._run_joined(inputs)
        except Exception:
            outputs = None
        responses = []
        for index, request in enumerate(requests):
            try:
                mine = outputs[index] if outputs is not None else self._run_joined([inputs[index]])[0]
                responses.append(pb_utils.InferenceResponse(output_tensors=self._tensors(request, mine)))
            except Exception as error:  # one request's failure never fails the batch
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"model run failed: {error}"))
                )
        return responses

    def _arrays(self, request):
        return {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.array_inputs}

    def _tensors(self, request, raw):
        wanted = set(request.requested_output_names())
        tensors = [pb_utils.Tensor(n, np.ascontiguousarray(raw[n])) for n in self.model_outputs if n in wanted]
        if any(name in wanted for name, _ in self.answer_outputs):
            for name, value in self._answer(request, raw).items():
                if name in wanted:
                    tensors.append(pb_utils.Tensor(name, value))
        return tensors

    def _answer(self, request, raw):
        text = pb_utils.get_input_tensor_by_name(request, "text")
        if text is None:
            raise ValueError("the answer needs the input 'text' (or request only the raw outputs)")
        texts = decode_texts(text.as_numpy())
        pair = pb_utils.get_input_tensor_by_name(request, "text_pair") if "text_pair" in self.input_names else None
        pairs = decode_texts(pair.as_numpy()) if pair is not None else None
        details = {}
        if "offsets" in self.input_names:
            for name in TOKEN_DETAILS:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is None:
                    raise ValueError(f"the answer needs the tokenizer's '{name}'")
                details[name] = tensor.as_numpy()
        encoded = encoded_from_details(texts, pairs, details)
        return answer_tensors(self.model.task, self.model.labels, raw, encoded, self.typed_outputs)

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
        result = self.model.run(joined)
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
