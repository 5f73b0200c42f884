#!/usr/bin/env bash
# Creates .venv-optimum/ (Hugging Face Optimum's ONNX exporter needs transformers<4.58, which
# cannot share the main environment's transformers 5) and, given arguments, runs the Optimum
# peers there: bench/optimum_peer.py MODEL_DIR OUT_DIR RESULT_JSON.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${OPTIMUM_VENV:-$ROOT/.venv-optimum}"
PYTHON="${PYTHON:-python3.11}"
if [ ! -x "$VENV/bin/optimum-cli" ]; then
  "$PYTHON" -m venv "$VENV" >&2
  # torch pinned: an unpinned torch pulls a multi-GB CUDA build.
  "$VENV/bin/pip" install --quiet "torch==2.13.0" >&2
  "$VENV/bin/pip" install --quiet "optimum-onnx[onnxruntime]==0.1.0" "optimum==2.1.0" "transformers==4.57.6" \
    "onnxruntime==1.31.1" "torch==2.13.0" >&2
fi
if [ "$#" -gt 0 ]; then
  exec "$VENV/bin/python" "$ROOT/bench/optimum_peer.py" "$@"
fi
