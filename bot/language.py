"""Which language a customer writes in, with lingua (a detection library built for short texts).

Only the languages in settings (`languages:`) are considered; a text too short
or too ambiguous to tell gives None, and the reply falls back to English.
"""
from __future__ import annotations

import functools

from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

MIN_LETTERS = 8   # fewer, and a guess is worse than English
MIN_WORDS = 2


@functools.lru_cache(maxsize=8)
def _detector(codes: tuple[str, ...]):
    languages = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in codes]
    return LanguageDetectorBuilder.from_languages(*languages) \
        .with_minimum_relative_distance(0.1).build()


def warm(codes: tuple[str, ...]) -> None:
    """Build the detector now (seconds and ~100 MB), not in the first job that needs it."""
    if len(codes) >= 2:
        _detector(tuple(codes))


def detect(text: str, codes: tuple[str, ...] = ("en", "es")) -> str | None:
    """ISO 639-1 code of `text`'s language, or None when it cannot be told."""
    if sum(ch.isalpha() for ch in text or "") < MIN_LETTERS or len((text or "").split()) < MIN_WORDS \
            or len(codes) < 2:
        return codes[0] if len(codes) == 1 else None
    found = _detector(tuple(codes)).detect_language_of(text)
    return found.iso_code_639_1.name.lower() if found else None


NAMES = {"en": "English", "es": "Spanish", "fr": "French", "pt": "Portuguese", "de": "German",
         "it": "Italian", "zh": "Chinese", "vi": "Vietnamese"}
