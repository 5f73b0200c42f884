"""Triton Python-backend model: raw model outputs in, the task's answer out (onnxruntime flavour).

Copied as `model.py` into `<name>_postprocess/1/`, after the native `onnxruntime_onnx` model. It
needs `inferforge` importable in the Triton container (the task's own post-processing, the function
`LoadedModel.predict` uses). Texts come from the ensemble's inputs, per-token details from the
tokenizer model.

Config parameters: `task`, `labels` (JSON list or null), `problem_type` (transformers' config.problem_type,
or empty), `model_outputs` (comma separated).
"""

import json

import triton_python_backend_utils as pb_utils
from execute_deadline import bounded_execute
from text_checks import for_request

from inferforge.tasks import get_task
from inferforge.triton.answers import (
    ANSWER_OUTPUT,
    TOKEN_DETAILS,
    WINDOW_SAMPLE,
    answer_tensors,
    decode_texts,
    encoded_from_details,
)


@bounded_execute
class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.task = get_task(params["task"])
        self.labels = json.loads(params.get("labels") or "null")
        self.problem_type = params.get("problem_type") or None
        self.model_outputs = params["model_outputs"].split(",")
        self.input_names = {i["name"] for i in config["input"]}
        self.typed_outputs = [
            (o["name"], pb_utils.triton_string_to_numpy(o["data_type"]))
            for o in config["output"]
            if o["name"] != ANSWER_OUTPUT
        ]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                wanted = set(request.requested_output_names())
                tensors = [pb_utils.Tensor(name, value) for name, value in self._answer(request, wanted).items()]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as failure:  # one request's failure never fails the batch
                error = pb_utils.TritonError(for_request(request, f"post-processing failed: {failure}"))
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
        return responses

    def _answer(self, request, wanted):
        outputs = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.model_outputs}
        texts = decode_texts(pb_utils.get_input_tensor_by_name(request, "text").as_numpy())
        pair = pb_utils.get_input_tensor_by_name(request, "text_pair") if "text_pair" in self.input_names else None
        pairs = decode_texts(pair.as_numpy()) if pair is not None else None
        details = {}
        if "offsets" in self.input_names:
            details = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in TOKEN_DETAILS}
        sample = pb_utils.get_input_tensor_by_name(request, WINDOW_SAMPLE) if WINDOW_SAMPLE in self.input_names else None
        encoded = encoded_from_details(texts, pairs, details, sample.as_numpy() if sample is not None else None)
        return answer_tensors(self.task, self.labels, outputs, encoded, self.typed_outputs, wanted, self.problem_type)
