"""Noise filtering before classification: what is dropped, and why.

Reasons (each counted per source as ``noise:<reason>``):

- ``excluded_term``: the text contains an exclude term of a brand in scope
  ("nimbus 2000" for Nimbus);
- ``language``: the source says the text is in a language outside the
  allow-list (the source's ``languages``, else its brands' languages);
- ``link_farm``: more links than ``noise.max_links``, or links and hardly any words;
- ``duplicate_text``: the same text from different authors — copy-paste spam
  (decided by the poller, which sees what was stored).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.config import CareConfig
from bot.domain import MentionIn
from bot.sources.config import NoiseConfig, SourceConfig
from bot.sources.dedup import count_links, normalize_text

LangDetector = Callable[[str], str | None]


@dataclass(frozen=True)
class NoiseRules:
    exclude: tuple[str, ...]
    languages: frozenset[str]
    noise: NoiseConfig

    @classmethod
    def for_source(cls, config: CareConfig, source: SourceConfig) -> NoiseRules:
        brands = [b for b in config.brands if not source.brands or b.name in source.brands]
        exclude = tuple(dict.fromkeys(normalize_text(t) for b in brands for t in b.exclude
                                      if normalize_text(t)))
        if source.languages:
            languages = frozenset(lang.lower() for lang in source.languages)
        else:
            languages = frozenset(lang.lower() for b in brands for lang in b.languages)
        return cls(exclude=exclude, languages=languages, noise=config.noise)

    def reason(self, item: MentionIn, detect: LangDetector | None = None) -> str | None:
        """Why ``item`` is noise, or ``None`` when it should be classified."""
        normalized = f" {normalize_text(item.text)} "
        if any(f" {term} " in normalized for term in self.exclude):
            return "excluded_term"
        lang = item.lang or (detect(item.text) if detect is not None else None)
        if self.languages and lang and lang not in self.languages:
            return "language"
        links = count_links(item.text)
        words = len(normalized.split())
        if links > self.noise.max_links or (links >= 2 and words <= 3 * links):
            return "link_farm"
        return None
