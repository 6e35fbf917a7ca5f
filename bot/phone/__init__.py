"""The phone carrier behind one small interface: Twilio or the local outbox."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class MediaFile:
    content: bytes
    content_type: str


class Phone(Protocol):
    """What Hotline needs from a carrier."""

    def send_sms(self, to: str, body: str) -> str:
        """Send a text; returns the provider's message id."""

    def fetch_media(self, url: str, max_bytes: int) -> MediaFile:
        """Download an inbound MMS medium (PermanentError when over `max_bytes`)."""


def read_limited(response, max_bytes: int) -> bytes:
    """Read a streamed `requests` response, refusing more than `max_bytes`."""
    from bot.errors import PermanentError

    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PermanentError(f"media of {declared} bytes is over the {max_bytes}-byte limit")
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise PermanentError(f"media is over the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
