"""Triton Python-backend model: token arrays in, the selected variant's raw outputs out.

Copied as `model.py` into `<name>_model/1/` next to `artifact/`, a converted inferforge directory
holding only the selected variant. It runs that variant through `inferforge.load`, so onnxruntime
and OpenVINO variants run exactly as they do locally.

The requests of a dynamic batch have their own sequence lengths (`allow_ragged_batch`): they are
right-padded with `pad_id` to the longest, run as one batch, and each response is cut back to its
own length on the per-token outputs (config parameter `per_token_outputs`). If the joint run fails,
each request is run alone so that only a bad request gets an error.

Config parameters (string values): `threads`, `variant`, `pad_id`, `per_token_outputs`.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from inferforge.artifacts import load


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        artifact = os.path.join(args["model_repository"], args["model_version"], "artifact")
        threads = int(params.get("threads") or 0) or None
        self.model = load(artifact, variant=params.get("variant") or None, threads=threads)
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]
        self.pad_id = int(params.get("pad_id", "0"))
        self.per_token = set(filter(None, params.get("per_token_outputs", "").split(",")))

    def execute(self, requests):
        inputs = [self._read(request) for request in requests]
        try:
            outputs = self._run_joined(inputs)
        except Exception:
            outputs = None
        responses = []
        for index, arrays in enumerate(inputs):
            try:
                mine = outputs[index] if outputs is not None else self._run_joined([arrays])[0]
                tensors = [pb_utils.Tensor(name, np.ascontiguousarray(mine[name])) for name in self.output_names]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as error:
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"model run failed: {error}"))
                )
        return responses

    def _read(self, request):
        return {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.input_names}

    def _run_joined(self, inputs):
        """Pad every request to the longest sequence, run once, split back per request."""
        length = max(a[self.input_names[0]].shape[1] for a in inputs)
        joined = {}
        for name in self.input_names:
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
            rows, own_length = arrays[self.input_names[0]].shape
            piece = {}
            for name in self.output_names:
                value = result[name][start : start + rows]
                if name in self.per_token:
                    value = value[:, :own_length]
                piece[name] = value
            split.append(piece)
            start += rows
        return split
