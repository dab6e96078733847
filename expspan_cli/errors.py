"""The one exception type for mistakes a user can make (bad input, missing data, unsupported combos)."""

from __future__ import annotations


class ExpspanError(Exception):
    """A user-facing error: the CLI prints it as one red line (plus an optional hint) and exits with code 2."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


def require(condition: bool, message: str, hint: str | None = None) -> None:
    """Raise ExpspanError(message) unless condition holds."""
    if not condition:
        raise ExpspanError(message, hint)
