"""How a text travels as SMS: its encoding and how many segments it costs.

GSM-7 when every character is in the GSM 03.38 alphabet (the `gsm0338` codec
decides, escapes such as `€` or `{` counting twice), else UCS-2, counted in
UTF-16 code units (an emoji is two). A single message holds 160 GSM-7 units or
70 UCS-2 units; a concatenated one loses room to its header: 153 or 67 per
segment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

GSM7, UCS2 = "GSM-7", "UCS-2"
SINGLE = {GSM7: 160, UCS2: 70}
PER_SEGMENT = {GSM7: 153, UCS2: 67}
MAX_CHARACTERS = 1600      # Twilio refuses a longer body
WARN_SEGMENTS = 2          # each segment is billed; more than two is worth a second look


@dataclass(frozen=True)
class SmsSize:
    encoding: str
    characters: int
    units: int
    segments: int


def measure(text: str) -> SmsSize:
    """Encoding, characters, code units and segments of `text` sent as one SMS."""
    try:
        units, encoding = len(text.encode("gsm03.38")), GSM7
    except UnicodeEncodeError:
        units, encoding = len(text.encode("utf-16-le")) // 2, UCS2
    if units == 0:
        segments = 0
    elif units <= SINGLE[encoding]:
        segments = 1
    else:
        segments = math.ceil(units / PER_SEGMENT[encoding])
    return SmsSize(encoding=encoding, characters=len(text), units=units, segments=segments)


def problems(size: SmsSize) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a text of this size."""
    errors, warnings = [], []
    if size.characters > MAX_CHARACTERS:
        errors.append(f"{size.characters} characters: over the {MAX_CHARACTERS} an SMS may carry")
    if size.segments > WARN_SEGMENTS:
        warnings.append(f"{size.segments} segments ({size.encoding}): each is billed; "
                        f"over {WARN_SEGMENTS} is long for a text")
    return errors, warnings
