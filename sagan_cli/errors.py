"""The one exception type that reaches the user as a one-line message."""


class SaganError(Exception):
    """A problem the user can fix (bad option, missing file, wrong device...).

    The CLI prints ``error: <message>`` on stderr and exits with ``exit_code``;
    no traceback is shown.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
