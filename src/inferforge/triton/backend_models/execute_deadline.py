"""A deadline on `execute()` inside a Triton Python-backend stub (standard library only).

Copied by `inferforge.triton.repository` next to each Python-backend `model.py`, which imports it
(Triton puts the model version folder on the stub's `sys.path`), so it also works in a stock Triton
container without inferforge installed. The deadline is the config parameter `execute_timeout_s`.
"""

import functools
import json
import os
import signal
import sys
import threading
import time


class ExecuteDeadline:
    """Ends the stub process when one `execute()` runs longer than `timeout_s`.

    Triton has no watchdog on `execute()`: a call that hangs blocks its model instance forever. This
    daemon thread kills its own stub instead; the serving watchdog sees the stub gone and restarts the
    server, and the requests of the hung batch get an error instead of waiting forever.
    """

    def __init__(self, timeout_s: float, model_name: str) -> None:
        self.timeout_s = timeout_s
        self.model_name = model_name
        self._started: float | None = None
        self._thread = threading.Thread(target=self._watch, name="inferforge-execute-deadline", daemon=True)
        self._thread.start()

    def __enter__(self) -> "ExecuteDeadline":
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self._started = None

    def _watch(self) -> None:
        period = min(1.0, self.timeout_s / 4)
        while True:
            time.sleep(period)
            started = self._started
            if started is not None and time.monotonic() - started > self.timeout_s:
                print(f"inferforge: execute() of model '{self.model_name}' ran over {self.timeout_s:g} s; "
                      "ending this stub so that the server is restarted", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)


def bounded_execute(model_class):
    """Class decorator for a `TritonPythonModel`: `execute()` bounded by the config parameter
    `execute_timeout_s` (no parameter: unbounded, as in Triton)."""
    initialize, execute = model_class.initialize, model_class.execute

    @functools.wraps(initialize)
    def guarded_initialize(self, args):
        config = json.loads(args["model_config"])
        value = config.get("parameters", {}).get("execute_timeout_s", {}).get("string_value", "")
        self._execute_deadline = ExecuteDeadline(float(value), config.get("name", "?")) if value else None
        return initialize(self, args)

    @functools.wraps(execute)
    def guarded_execute(self, requests):
        deadline = getattr(self, "_execute_deadline", None)
        if deadline is None:
            return execute(self, requests)
        with deadline:
            return execute(self, requests)

    model_class.initialize, model_class.execute = guarded_initialize, guarded_execute
    return model_class
