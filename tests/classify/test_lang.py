"""Language detection for the ten languages."""

from __future__ import annotations

import pytest

from bot.classify.lang import OTHER, detect_lang, detect_langs

SAMPLES = {
    "en": "My laptop will not start since the update yesterday, can you help me?",
    "da": "Min computer vil ikke starte efter opdateringen i går, kan I hjælpe mig?",
    "nl": "Mijn laptop start niet meer op sinds de update van gisteren, kunnen jullie helpen?",
    "fr": "Mon ordinateur ne démarre plus depuis la mise à jour d'hier, pouvez-vous m'aider ?",
    "de": "Mein Laptop startet seit dem Update gestern nicht mehr, könnt ihr mir helfen?",
    "it": "Il mio portatile non si avvia più dall'aggiornamento di ieri, potete aiutarmi?",
    "pt": "Meu notebook não liga desde a atualização de ontem, vocês podem me ajudar?",
    "es": "Mi portátil no arranca desde la actualización de ayer, ¿me podéis ayudar?",
    "sv": "Min dator startar inte sedan uppdateringen igår, kan ni hjälpa mig?",
    "ru": "Мой ноутбук не включается после вчерашнего обновления, помогите пожалуйста",
}


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_detects_each_supported_language(lang: str) -> None:
    assert detect_lang("@NimbusSupport " + SAMPLES[lang] + "\nhttps://t.co/abc") == lang


def test_unsupported_language_is_other() -> None:
    assert detect_lang("アップデート以降ノートパソコンが起動しません。助けてください。") == OTHER
    assert detect_lang("   @someone https://t.co/x ") == OTHER


def test_source_hint_wins_only_for_supported_languages() -> None:
    texts = [SAMPLES["de"], SAMPLES["fr"]]
    assert detect_langs(texts, ["de", "xx"]) == ["de", "fr"]


def test_a_given_language_is_read_in_the_forms_files_use() -> None:
    # Text in one language, hint naming another: the hint is taken only when it is read
    # as a supported code, so the result shows which forms are understood.
    text = SAMPLES["fr"]
    hints = ["SV", "sv-SE", "pt_BR", "swe", "rus", "Deu", " es ", "nor", "", None]
    assert detect_langs([text] * len(hints), hints) == [
        "sv", "sv", "pt", "sv", "ru", "de", "es", "fr", "fr", "fr"]
