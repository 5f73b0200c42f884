"""Query a model served by `inferforge serve DIR` with NVIDIA's tritonclient, over HTTP and gRPC.

    inferforge serve out/minilm --name minilm          # in another shell
    python examples/tritonclient_http_grpc.py --model minilm "A sentence." "Another one."
    python examples/tritonclient_http_grpc.py --model qa --pair "Paris is the capital of France." "What is the capital?"

Inputs: `text` (BYTES, shape [batch, 1]) and, for pairs, `text_pair`. Outputs: `answer_json` (one JSON
document per text) plus typed tensors where natural (`embedding`, `label`/`score`, `answer`/`start`/`end`).
"""

import argparse
import json

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def bytes_input(module, name, values):
    array = np.array([[v.encode("utf-8")] for v in values], dtype=np.object_)
    tensor = module.InferInput(name, list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return tensor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--pair", action="append", help="second text of a pair, once per text")
    parser.add_argument("--model", required=True, help="the name `inferforge serve` printed")
    parser.add_argument("--http-url", default="127.0.0.1:8000")
    parser.add_argument("--grpc-url", default="127.0.0.1:8001")
    args = parser.parse_args()

    for module, url in ((httpclient, args.http_url), (grpcclient, args.grpc_url)):
        client = module.InferenceServerClient(url)
        inputs = [bytes_input(module, "text", args.texts)]
        if args.pair:
            inputs.append(bytes_input(module, "text_pair", args.pair))
        try:
            result = client.infer(args.model, inputs)
        except InferenceServerException as error:  # the server's one sentence (a 4xx/5xx, or UNAVAILABLE)
            raise SystemExit(f"error: {module.__name__} at {url}: {error.message()}")
        except OSError as error:  # HTTP: nothing listens there (gRPC says so as UNAVAILABLE above)
            raise SystemExit(f"error: cannot reach {url} ({error}); is `inferforge serve` running there?")
        finally:
            client.close()
        print(f"--- {module.__name__} at {url}")
        for raw in result.as_numpy("answer_json").reshape(-1):
            print(json.dumps(json.loads(raw)))


if __name__ == "__main__":
    main()
