"""Masking card numbers and US Social Security numbers before text goes anywhere (SPEC 5).

Applied when a webhook normalises a message, so the text Hotline keeps in
Redis, writes to Zendesk, or could ever log already has them masked. The
last four digits stay, so an agent can still tell which card was meant.
"""
from __future__ import annotations

import re

# 12 to 19 digits, each optionally followed by one space or dash.
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])")
# 123-45-6789 / 123 45 6789; or nine bare digits right after "SSN"/"social security".
SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
SSN_BARE = re.compile(r"(?i)\b(ssn|social security(?: number| no\.?| #)?|seguro social)"
                      r"(\W{0,4}(?:is|es|number|no\.?|#)?\W{0,4})(\d{9})(?!\d)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _valid_ssn(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and not area.startswith("9") and group != "00" \
        and serial != "0000"


def _card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if not 12 <= len(digits) <= 19 or not luhn_ok(digits):
        return match.group(0)
    return f"[card ending {digits[-4:]}]"


def _ssn(match: re.Match) -> str:
    area, _, group, serial = match.groups()
    if not _valid_ssn(area, group, serial):
        return match.group(0)
    return f"[SSN ending {serial}]"


def _ssn_bare(match: re.Match) -> str:
    label, gap, digits = match.groups()
    if not _valid_ssn(digits[:3], digits[3:5], digits[5:]):
        return match.group(0)
    return f"{label}{gap}[SSN ending {digits[-4:]}]"


def redact(text: str) -> str:
    """`text` with Luhn-valid card numbers and SSNs masked, last four digits kept."""
    if not text:
        return text
    text = CARD.sub(_card, text)
    text = SSN_BARE.sub(_ssn_bare, text)
    return SSN.sub(_ssn, text)
