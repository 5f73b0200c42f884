"""OpenVINO's model conversion and NNCF, without their usage telemetry unless the user opted in.

`openvino.convert_model` and NNCF report usage to Google Analytics through `openvino_telemetry`, which counts a
machine without a consent file (`~/intel/openvino_telemetry`, written by `opt_in_out --opt_in` or `--opt_out`) as
consenting: on first use it writes a client id and statistics under `~/intel` and starts processes that post over
HTTPS (which printed tracebacks when a Ctrl-C stopped `inferforge convert`). Here a missing consent file counts as
declined; an explicit opt-in is kept.
"""

from __future__ import annotations

from pathlib import Path

_declined = False


def decline_telemetry_without_consent() -> None:
    """Before OpenVINO's tools or NNCF are used: no consent file means no telemetry."""
    global _declined
    if _declined:
        return
    _declined = True
    try:
        from openvino_telemetry.utils import opt_in_checker
    except Exception:  # noqa: BLE001 (not installed, or another layout: OpenVINO then uses its own no-op stub)
        return
    results = opt_in_checker.ConsentCheckResult
    original = opt_in_checker.OptInChecker.check

    def check(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        return results.DECLINED if result == results.NO_FILE else result

    opt_in_checker.OptInChecker.check = check


def convert_onnx(path: Path | str):
    """`openvino.convert_model` of an ONNX file (an `ov.Model`), without telemetry unless the user opted in."""
    decline_telemetry_without_consent()
    import openvino as ov

    return ov.convert_model(str(path))
