"""The one error type the CLI turns into a one-line message and an exit code."""


class EbmkitError(Exception):
    """A failure the user can act on. `exit_code` 2: bad usage or input; 1: failure at run time."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
