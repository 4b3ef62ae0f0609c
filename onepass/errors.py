"""The one exception type for errors a user can cause and fix."""


class OnePassError(Exception):
    """A user-facing error: bad audio, unknown language, unsupported chunk size,
    missing or corrupt checkpoint. The message says what to do; the CLI prints it
    without a traceback and exits non-zero."""
