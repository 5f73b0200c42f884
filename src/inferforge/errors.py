"""Errors a user can cause. The CLI prints their message in one sentence and exits with code 2."""


class UserError(Exception):
    """A mistake in the user's input: the message says what is wrong and how to fix it."""

    exit_code = 2


class NotApplicable(Exception):
    """A variant that cannot be built for this model (not for this machine: `Variant.unavailable_reason`); `convert`
    marks it skipped with this message and goes on with the others."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """The error's first non-empty line, cut at a word within `limit` characters (with "..."); its type's
    name when it says nothing (a bare `assert` in a library)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = (lines[0] if lines else type(error).__name__).rstrip(".")
    return line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + "..."
