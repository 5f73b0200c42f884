"""Query a model served by `inferforge serve DIR` with plain HTTP JSON (KServe v2), no client library.

    inferforge serve out/minilm --name minilm          # in another shell
    python examples/plain_http.py --model minilm "A sentence." "Another one."

The same request with curl:
    curl -s -X POST 127.0.0.1:8000/v2/models/minilm/infer -H 'Content-Type: application/json' \
      -d '{"inputs":[{"name":"text","shape":[1,1],"datatype":"BYTES","data":["A sentence."]}]}'
"""

import argparse
import json
import urllib.error
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--pair", action="append", help="second text of a pair, once per text")
    parser.add_argument("--model", required=True, help="the name `inferforge serve` printed")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    args = parser.parse_args()

    inputs = [{"name": "text", "shape": [len(args.texts), 1], "datatype": "BYTES", "data": args.texts}]
    if args.pair:
        inputs.append({"name": "text_pair", "shape": [len(args.pair), 1], "datatype": "BYTES", "data": args.pair})
    request = urllib.request.Request(
        f"{args.url}/v2/models/{args.model}/infer",
        data=json.dumps({"inputs": inputs, "outputs": [{"name": "answer_json"}]}).encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as error:  # Triton explains a bad request in {"error": ...}
        body = error.read()
        try:
            message = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            message = body.decode("utf-8", "replace") or error.reason
        raise SystemExit(f"error: HTTP {error.code}: {message}")
    except (urllib.error.URLError, OSError) as error:  # nothing listens there, or the connection broke
        reason = getattr(error, "reason", error)
        raise SystemExit(f"error: cannot reach {args.url} ({reason}); is `inferforge serve` running there?")
    for document in reply["outputs"][0]["data"]:
        print(json.dumps(json.loads(document)))


if __name__ == "__main__":
    main()
