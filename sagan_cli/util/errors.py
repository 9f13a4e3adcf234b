"""The one exception type that reaches the user as a one-line message, and every exit code, named once."""

EXIT_OK = 0
EXIT_USAGE = 2  # a problem the user can fix: bad option, missing or wrong file, missing device
EXIT_DIVERGED = 3  # training produced NaN/inf: nothing non-finite is ever checkpointed
EXIT_PEER_LOST = 4  # a process of a multi-process run died or hung; the others stop
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT) where it cannot be finished cleanly
EXIT_SIGTERM = 143  # 128 + SIGTERM: train saved a checkpoint and stopped


class SaganError(Exception):
    """A problem the user can fix (bad option, missing file, wrong device...).

    The CLI prints ``error: <message>`` on stderr and exits with ``exit_code``;
    no traceback is shown.
    """

    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
