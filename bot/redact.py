"""Masking card numbers and US Social Security numbers before text goes anywhere (SPEC 5).

Applied when a webhook normalises a message, so the text Hotline keeps in
Redis, writes to Zendesk, or could ever log already has them masked. The
last four digits stay, so an agent can still tell which card was meant.
"""
from __future__ import annotations

import re

# A run of digit groups (12 digits or more in all) split by spaces, dots or dashes —
# "4111 1111 1111 1111", "4111-1111-1111-1111 05 28", "4111.1111…", no-break spaces.
CARD_RUN = re.compile(r"(?<!\d)\d+(?:[\s.\-\u2013]{1,3}\d+)*")
SEPARATOR = re.compile(r"[\s.\-\u2013]{1,3}")
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
    """Mask the first Luhn-valid 12–19-digit stretch of whole groups in a run.

    Whole groups only, so an expiry or a CVV typed after the number ("… 1111 05 28")
    does not hide the card, and a long reference number is not cut at random.
    """
    run = match.group(0)
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", run)]
    for i in range(len(groups)):
        for j in range(len(groups) - 1, i - 1, -1):
            start, end = groups[i][0], groups[j][1]
            digits = re.sub(r"\D", "", run[start:end])
            if 12 <= len(digits) <= 19 and luhn_ok(digits):
                return f"{run[:start]}[card ending {digits[-4:]}]{_card_rest(run[end:])}"
    return run


def _card_rest(rest: str) -> str:
    """The part of a run after a masked card may hold another card."""
    found = CARD_RUN.search(rest)
    if not found:
        return rest
    return rest[:found.start()] + _card(found) + rest[found.end():]


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
    text = CARD_RUN.sub(lambda m: _card(m) if len(re.sub(r"\D", "", m.group(0))) >= 12
                        else m.group(0), text)
    text = SSN_BARE.sub(_ssn_bare, text)
    return SSN.sub(_ssn, text)
