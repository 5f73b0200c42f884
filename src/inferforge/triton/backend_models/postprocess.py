"""Triton Python-backend model: raw model outputs in, the task's answer out.

Copied as `model.py` into `<name>_postprocess/1/`. It calls the task's own post-processing from
`inferforge.tasks`, the function `LoadedModel.predict` uses, so the server answers exactly what the
local engine answers. The per-token details it needs (offsets, special-token mask, word and
sequence ids) come from the tokenizer model; texts come from the ensemble's inputs.

Outputs: `answer_json` (one JSON document per text) and typed tensors named after the answer's
fields: `embedding` for a list of floats, `label`/`score`/`start`/`end`/`answer` for a dict of
scalars. Config parameters: `task`, `labels` (JSON list or null), `model_outputs` (comma separated).
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from inferforge.tasks import get_task
from inferforge.tokenization import Encoded

DETAILS = ("offsets", "special_mask", "word_ids", "sequence_ids")


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.task = get_task(params["task"])
        self.labels = json.loads(params.get("labels") or "null")
        self.model_outputs = params["model_outputs"].split(",")
        self.input_names = {i["name"] for i in config["input"]}
        self.typed_outputs = [
            (o["name"], pb_utils.triton_string_to_numpy(o["data_type"]))
            for o in config["output"]
            if o["name"] != "answer_json"
        ]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._answer(request)))
            except Exception as error:  # one request's failure never fails the batch
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[], error=pb_utils.TritonError(f"post-processing failed: {error}")
                    )
                )
        return responses

    def _answer(self, request):
        outputs = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.model_outputs}
        texts = _texts(pb_utils.get_input_tensor_by_name(request, "text"))
        pair_tensor = pb_utils.get_input_tensor_by_name(request, "text_pair") if "text_pair" in self.input_names else None
        pairs = _texts(pair_tensor) if pair_tensor is not None else None
        encoded = Encoded(arrays={}, texts=texts, pairs=pairs)
        if "offsets" in self.input_names:
            details = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in DETAILS}
            encoded.offsets = [[(int(s), int(e)) for s, e in row] for row in details["offsets"]]
            encoded.special_mask = details["special_mask"].tolist()
            encoded.word_ids = [[None if w < 0 else w for w in row] for row in details["word_ids"].tolist()]
            encoded.sequence_ids = [[None if s < 0 else s for s in row] for row in details["sequence_ids"].tolist()]
        answers = self.task.postprocess(outputs, encoded, self.labels)
        tensors = [
            pb_utils.Tensor(
                "answer_json",
                np.array([[json.dumps(a, ensure_ascii=False).encode("utf-8")] for a in answers], dtype=np.object_),
            )
        ]
        for name, dtype in self.typed_outputs:
            if name == "embedding":
                value = np.asarray(answers, dtype=dtype)
            elif dtype == np.object_:
                value = np.array([[str(a[name]).encode("utf-8")] for a in answers], dtype=np.object_)
            else:
                value = np.array([[a[name]] for a in answers], dtype=dtype)
            tensors.append(pb_utils.Tensor(name, value))
        return tensors


def _texts(tensor):
    return [bytes(v).decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v) for v in tensor.as_numpy().reshape(-1)]
