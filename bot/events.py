"""Normalised events: what `handlers/` hand to `bot/` (SPEC 3.2).

`bot/` never reads a provider's field names; it reads these.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field


@dataclass
class Media:
    url: str                        # https://… (Twilio media) or blob:<key> (kept in Redis)
    content_type: str = ""
    filename: str = ""


@dataclass
class InboundMessage:
    """A customer's text (SMS or MMS) as Hotline received it."""

    provider_id: str
    sender: str
    body: str = ""
    recipient: str = ""
    channel: str = "sms"
    source: str = "twilio"
    media: list[Media] = field(default_factory=list)
    location: dict[str, str] = field(default_factory=dict)
    opt_out_type: str = ""          # the carrier's own reading: STOP, START, HELP
    kind_of: str = "text"           # text | voicemail | transcription | missed_call | answered_call
    triage_hint: str = ""           # a category the caller chose (menu 1 = emergency)
    recording: dict = field(default_factory=dict)   # voicemail: sid, url, duration
    sender_name: str = ""           # email: the display name in From
    subject: str = ""               # email
    message_id: str = ""            # email: its Message-ID
    thread_ids: list[str] = field(default_factory=list)  # email: In-Reply-To + References
    tags: list[str] = field(default_factory=list)        # extra ticket tags (spam_suspected…)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    received_at: float = field(default_factory=time.time)
    # Recovered by reconciliation (its webhook never reached Hotline): when Twilio
    # had it, and when Hotline found it. `received_at` is then Twilio's time, so the
    # conversation's order is Twilio's.
    provider_sent_at: float = 0.0
    recovered_at: float = 0.0

    kind = "inbound_message"

    @property
    def conversation_key(self) -> str:
        """The conversation this message belongs to: channel family + sender."""
        return f"email:{self.sender}" if self.channel == "email" else f"phone:{self.sender}"

    @property
    def dedupe_key(self) -> str:
        return f"{self.source}:{self.channel}:{self.provider_id}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "InboundMessage":
        data = {k: v for k, v in data.items() if k != "kind"}
        data["media"] = [Media(**m) for m in data.get("media", [])]
        return cls(**data)
