"""Builds the Hugging Face Optimum peers; runs inside .venv-optimum (see bench/optimum_env.sh).

Usage: optimum_peer.py MODEL_DIR OUT_DIR RESULT_JSON

Each peer is made with Optimum's own command line, the way its documentation shows:
- `optimum-cli export onnx --optimize O2` (ONNX Runtime's transformer fusions, level 2);
- `optimum-cli onnxruntime quantize --avx512_vnni` (dynamic int8, the AVX512-VNNI preset). When
  the preset fails on the O2 graph (onnxruntime cannot type the fused graph's weights), it is
  applied to Optimum's plain export instead, as the quantization guide does, and the JSON says so.

RESULT_JSON receives {"versions": {...}, "peers": {name: {"onnx": path, "command": [...],
"seconds": s, "note": str}}, "errors": {name: message}}. The timing itself is done by
bench/peers.py in the main environment, interleaved with every other peer, with onnxruntime's
default CPU session (what Optimum's ORTModel opens).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

CLI = str(Path(sys.executable).with_name("optimum-cli"))


def run(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"exit code {done.returncode}")
    return seconds, done.stdout


def export(model_dir: str, out: Path, optimize: str | None) -> tuple[list[str], float]:
    command = [CLI, "export", "onnx", "--model", model_dir, "--task", "feature-extraction",
               "--library-name", "transformers"]
    if optimize:
        command += ["--optimize", optimize]
    command.append(str(out))
    seconds, _ = run(command)
    return command, seconds


def quantize(onnx_dir: Path, out: Path) -> tuple[list[str], float]:
    command = [CLI, "onnxruntime", "quantize", "--onnx_model", str(onnx_dir), "--avx512_vnni", "-o", str(out)]
    seconds, _ = run(command)
    return command, seconds


def main(model_dir: str, out_dir: str, result_json: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "versions": {p: version(p) for p in ("optimum", "optimum-onnx", "transformers", "onnxruntime", "torch")},
        "peers": {},
        "errors": {},
    }
    o2_dir = out / "o2"
    try:
        command, seconds = export(model_dir, o2_dir, "O2")
        result["peers"]["optimum-O2"] = {"onnx": str(o2_dir / "model.onnx"), "command": command,
                                         "seconds": seconds, "note": ""}
    except RuntimeError as error:
        result["errors"]["optimum-O2"] = str(error)

    name = "optimum-int8-avx512_vnni"
    try:
        if "optimum-O2" not in result["peers"]:
            raise RuntimeError("no O2 export")
        command, seconds = quantize(o2_dir, out / "o2_int8")
        result["peers"][name] = {"onnx": str(out / "o2_int8" / "model_quantized.onnx"), "command": command,
                                 "seconds": seconds, "note": "quantized the O2 export"}
    except RuntimeError as first_error:
        try:
            plain_dir = out / "plain"
            export_command, export_seconds = export(model_dir, plain_dir, None)
            command, seconds = quantize(plain_dir, out / "plain_int8")
            result["peers"][name] = {
                "onnx": str(out / "plain_int8" / "model_quantized.onnx"),
                "command": export_command + ["&&"] + command,
                "seconds": export_seconds + seconds,
                "note": f"quantized the plain export: on the O2 export the preset failed: {str(first_error)[:160]}",
            }
        except RuntimeError as error:
            result["errors"][name] = str(error)
    Path(result_json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: optimum_peer.py MODEL_DIR OUT_DIR RESULT_JSON")
    main(*sys.argv[1:])
