"""How an adapter tells a job what went wrong, whatever the provider."""
from __future__ import annotations


class ProviderError(Exception):
    """A call to Zendesk or Twilio failed."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class TransientError(ProviderError):
    """Worth trying again later: timeout, connection error, 5xx, 429.

    `retry_after` is the provider's own word on when (429 `Retry-After`).
    `unknown_outcome` means the request may have been carried out: a write
    must be checked, not blindly repeated.
    """

    def __init__(self, message: str, *, retry_after: float | None = None,
                 unknown_outcome: bool = False, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after
        self.unknown_outcome = unknown_outcome


class Throttled(TransientError):
    """Not called at all: Zendesk asked every worker to wait, or Hotline's share of
    its limit is used. Waiting is not a failure: it does not use up a job's tries."""


class PermanentError(ProviderError):
    """Trying again will not help (4xx other than 429, invalid number…)."""


class NotFound(PermanentError):
    pass


class TicketClosed(PermanentError):
    """Zendesk refused an update because the ticket is closed (422)."""


class UpdateConflict(ProviderError):
    """The ticket changed since Hotline last wrote it (409 on a safe update)."""
