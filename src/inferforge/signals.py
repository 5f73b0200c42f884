"""Signal handlers that stop a run by raising, without the raise landing where Python cannot unwind it.

A handler runs between two bytecodes of whatever the main thread is doing. When that is a finalizer (a `__del__`,
a weakref or gc callback), an exception raised there is "unraisable": Python prints "Exception ignored ...
Traceback" and carries on, so the run is neither stopped nor quiet. In CI, SIGTERM landed in regex's
`Group.__del__` while `convert` loaded the model. Here the raise is deferred until the finalizer has returned.
"""

from __future__ import annotations

import signal
import sys

RETRY_S = 0.02
_stop_types: set[type] = {KeyboardInterrupt}  # what the handlers raise: swallowed by a finalizer, it is retried


def raise_outside_finalizers(exception: BaseException, frame) -> None:
    """Raise `exception` now, or, inside a `__del__`, 20 ms later (again until it is outside one)."""
    _stop_types.add(type(exception))
    _hook_unraisable()
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            _retry_soon(exception)
            return
        frame = frame.f_back
    raise exception


def _retry_soon(exception: BaseException) -> None:
    if hasattr(signal, "setitimer"):
        signal.signal(signal.SIGALRM, lambda _signum, frame: raise_outside_finalizers(exception, frame))
        signal.setitimer(signal.ITIMER_REAL, RETRY_S)
    # Without timers (Windows) the caller's own checkpoints (a progress callback, a poll loop) raise it.


def _hook_unraisable() -> None:
    """The backstop for finalizers the frame walk cannot see (weakref and gc callbacks): the signal's exception
    swallowed there is retried, not printed; any other unraisable exception still goes to Python's hook."""
    previous = sys.unraisablehook
    if getattr(previous, "_inferforge", False):
        return

    def unraisable(info) -> None:
        if isinstance(info.exc_value, tuple(_stop_types)):
            _retry_soon(info.exc_value)
        else:
            previous(info)

    unraisable._inferforge = True
    sys.unraisablehook = unraisable
