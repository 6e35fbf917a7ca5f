"""SMS size (bot/sms.py): GSM-7 or UCS-2 by the GSM 03.38 alphabet, 160/153 and 70/67 per segment."""
import pytest

from bot import sms


@pytest.mark.parametrize("text,encoding,units,segments", [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),          # escaped characters take two septets
    ("{" * 81, "GSM-7", 162, 2),
    ("ñ" * 160, "GSM-7", 160, 1),         # in the GSM alphabet
    ("á" * 70, "UCS-2", 70, 1),           # not in it
    ("á" * 71, "UCS-2", 71, 2),
    ("á" * 134, "UCS-2", 134, 2),
    ("á" * 135, "UCS-2", 135, 3),
    ("🐶" * 35, "UCS-2", 70, 1),          # an emoji is two UTF-16 units
    ("🐶" * 36, "UCS-2", 72, 2),
])
def test_measure(text, encoding, units, segments):
    size = sms.measure(text)
    assert (size.encoding, size.units, size.segments, size.characters) == (
        encoding, units, segments, len(text))


def test_problems_warn_over_two_segments_and_refuse_over_1600_characters():
    assert sms.problems(sms.measure("a" * 306)) == ([], [])
    errors, warnings = sms.problems(sms.measure("a" * 307))
    assert errors == [] and warnings == ["3 segments (GSM-7): each is billed; over 2 is long for a text"]
    errors, _ = sms.problems(sms.measure("a" * 1601))
    assert errors == ["1601 characters: over the 1600 an SMS may carry"]
    assert sms.problems(sms.measure("a" * 1600))[0] == []
