"""Phone numbers: E.164 normalisation and masking for logs (SPEC 3.5, 4)."""
from __future__ import annotations

import hashlib

import phonenumbers


def to_e164(raw: str, default_region: str = "US") -> str | None:
    """Return `raw` as E.164, or None when it is not a possible phone number."""
    if not raw:
        return None
    try:
        parsed = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def display(e164: str) -> str:
    """A human form of the number, for a Zendesk user name."""
    try:
        parsed = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def mask(value: str | None) -> str:
    """What a log line may show of a number: country code and last four digits."""
    if not value:
        return "-"
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) < 5:
        return "•••"
    try:
        cc = phonenumbers.parse(value if value.startswith("+") else "+" + digits).country_code
    except phonenumbers.NumberParseException:
        cc = ""
    return f"+{cc} ••• ••• {digits[-4:]}"


def fingerprint(value: str) -> str:
    """A stable, non-reversible name for a number, for once-keys and log fields."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]
