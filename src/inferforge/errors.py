"""Errors a user can cause. The CLI prints their message in one sentence and exits with code 2."""


class UserError(Exception):
    """A mistake in the user's input: the message says what is wrong and how to fix it."""

    exit_code = 2
