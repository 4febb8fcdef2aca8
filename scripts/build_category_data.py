"""Build carebot's labelled category set (``bot/data/category_train.jsonl``).

Sources (see docs/DATA_CARD.md):
* hand-written seed examples, ``bot/data/category_seed_<lang>.tsv`` — all eight
  categories in all ten languages; ``{b}`` is replaced by a brand handle;
* written examples in the style of real customer tweets with their own brand
  handles, ``bot/data/category_styled_<lang>.tsv``, one row each: English for the
  rare categories (lead, rfe, query, fraud), the other nine languages for all eight;
* weak labels from ``../shared/data/airline_train.csv`` (sentiment + negativereason
  + wording heuristics) and ``customer_tweets_unlabeled.csv`` (wording heuristics);
* noise: general tweets from the UMSAB *train* split and Mozetič rows of
  ``sentiment_train.csv`` that carry no customer-care signal;
* gold: 12,766 real customer tweets (airline + twcs training parts) labelled by
  reading each one, ``bot/data/category_gold_real.tsv``. A weak row whose text is
  also a gold row is dropped (the gold label wins, and a gold dev row never
  leaks into training through its weak twin).

Only training splits are read; no held-out row exists in ``shared/data``.

Usage: ``python scripts/build_category_data.py [--shared-data ../shared/data]``
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bot" / "data"
BRANDS = [
    "@NimbusSupport", "@nimbus", "Nimbus", "@AppleSupport", "@SpotifyCares", "@AmazonHelp",
    "@Uber_Support", "@comcastcares", "@sprintcare", "@united", "@Delta", "@VirginAtlantic",
    "@115712", "@Ask_Spectrum", "@XboxSupport", "@hulu_support", "@O2", "@KLM", "@ING_news",
]  # fmt: skip
SEED_VARIANTS = 2
WEAK_CAP = 350  # per category per weak source

_THANKS = re.compile(
    r"\b(thank|thanks|thx|love|great|awesome|amazing|best|kudos|excellent)\b", re.I
)
_REQUEST = re.compile(
    r"(\?|\bhelp\b|\bplease\b|\bpls\b|\bcan you\b|\bcould you\b|\bneed\b|\bdm\b|\bassist|"
    r"\brefund|\brebook|\bfix\b|\bwhy\b)",
    re.I,
)
_PROBLEM = re.compile(
    r"\b(not working|isn'?t working|won'?t|can'?t|cannot|doesn'?t|error|issue|problem|broken|"
    r"crash\w*|stuck|still|charged|refund|down|outage|fix|keeps|lost|missing|never received)\b",
    re.I,
)
_HOWTO = re.compile(
    r"\b(how (do|can|to) (i|you|we)|is there a way|where (can|do) i|does (it|the \w+) support|"
    r"what is the difference|can i use|is it possible)\b",
    re.I,
)
_ANGRY = re.compile(
    r"\b(worst|terrible|awful|ridiculous|hate|useless|joke|pathetic|disgrace|unacceptable|"
    r"disgusting|shameful|never again|sucks|fail)\b",
    re.I,
)
_CARE_WORDS = re.compile(
    r"(@\w*(support|help|care|service)|customer service|refund|order|account|subscription|"
    r"app\b|update|delivery|flight|kundenservice|service client|atención al cliente)",
    re.I,
)


NOISE_PER_LANG = 200


def seeds(rng: random.Random) -> list[dict[str, str]]:
    rows = []
    for path in sorted(DATA.glob("category_seed_*.tsv")):
        lang = path.stem.rsplit("_", 1)[1]
        for n, line in enumerate(path.read_text("utf-8").splitlines()):
            if not line.strip():
                continue
            category, text = line.split("\t", 1)
            for brand in rng.sample(BRANDS, SEED_VARIANTS):
                filled = text.replace("{b}", brand).strip()
                rows.append(_row(filled, category, lang, "seed", f"seed-{lang}-{n}"))
    return rows


def styled() -> list[dict[str, str]]:
    """Written tweets with their own brand handles (``category_styled_<lang>.tsv``):
    no random draw, so adding some leaves every other row of the set as it was."""
    rows = []
    for path in sorted(DATA.glob("category_styled_*.tsv")):
        lang = path.stem.rsplit("_", 1)[1]
        for n, line in enumerate(path.read_text("utf-8").splitlines()):
            if line.strip() and not line.startswith("#"):
                category, text = line.split("\t", 1)
                rows.append(_row(text.strip(), category, lang, "seed", f"styled-{lang}-{n}"))
    return rows


def airline(shared: Path, rng: random.Random) -> list[dict[str, str]]:
    buckets: dict[str, list[dict[str, str]]] = {}
    with (shared / "airline_train.csv").open(encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh):
            text, sentiment, reason = rec["text"], rec["airline_sentiment"], rec["negativereason"]
            category = None
            if sentiment == "positive" and _THANKS.search(text) and not _PROBLEM.search(text):
                category = "rave"
            elif sentiment == "negative":
                if _REQUEST.search(text):
                    category = "case"
                elif _ANGRY.search(text) or reason in {"Bad Flight", "Flight Attendant Complaints"}:
                    category = "rant"
            elif sentiment == "neutral" and _HOWTO.search(text) and not _PROBLEM.search(text):
                category = "query"
            if category:
                buckets.setdefault(category, []).append(
                    _row(text, category, "en", "airline-weak", f"air-{rec['tweet_id']}")
                )
    return _cap(buckets, rng)


def twcs(shared: Path, rng: random.Random) -> list[dict[str, str]]:
    buckets: dict[str, list[dict[str, str]]] = {}
    seen: set[str] = set()
    with (shared / "customer_tweets_unlabeled.csv").open(encoding="utf-8", newline="") as fh:
        for n, rec in enumerate(csv.DictReader(fh)):
            text = rec["text"].strip()
            if text in seen or len(text) < 15:
                continue
            seen.add(text)
            problem, thanks = bool(_PROBLEM.search(text)), bool(_THANKS.search(text))
            category = None
            if _HOWTO.search(text) and not problem:
                category = "query"
            elif _ANGRY.search(text) and "?" not in text:
                category = "rant"
            elif problem and not thanks:
                category = "case"
            elif thanks and not problem and "?" not in text:
                category = "rave"
            if category:
                buckets.setdefault(category, []).append(
                    _row(text, category, "en", "twcs-weak", f"twcs-{n}")
                )
    return _cap(buckets, rng)


def noise(shared: Path, rng: random.Random, per_lang: int = 70) -> list[dict[str, str]]:
    by_lang: dict[str, list[dict[str, str]]] = {}
    with (shared / "sentiment_train.csv").open(encoding="utf-8", newline="") as fh:
        for n, rec in enumerate(csv.DictReader(fh)):
            if rec["source"] not in ("umsab_train", "mozetic"):
                continue
            text = rec["text"].strip()
            if _CARE_WORDS.search(text) or "?" in text or len(text) < 20:
                continue
            by_lang.setdefault(rec["lang"], []).append(
                _row(text, "noise", rec["lang"], f"{rec['source']}-noise", f"sent-{n}")
            )
    rows = []
    for items in by_lang.values():
        rows += rng.sample(items, min(per_lang, len(items)))
    return rows


def gold() -> list[dict[str, str]]:
    sys.path.insert(0, str(ROOT))
    from bot.classify.lang import detect_lang
    from bot.classify.train import labelled_tweets

    rows = []
    for n, (category, source, text) in enumerate(labelled_tweets()):
        lang = detect_lang(text)
        rows.append(
            _row(text, category, lang if lang != "other" else "en", f"{source}-gold", f"gold-{n}")
        )
    return rows


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def _cap(buckets: dict[str, list[dict[str, str]]], rng: random.Random) -> list[dict[str, str]]:
    rows = []
    for items in buckets.values():
        rows += rng.sample(items, min(WEAK_CAP, len(items)))
    return rows


def _row(text: str, category: str, lang: str, source: str, group: str) -> dict[str, str]:
    return {"text": text, "category": category, "lang": lang, "source": source, "group": group}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=DATA / "category_train.jsonl")
    parser.add_argument("--noise-per-lang", type=int, default=NOISE_PER_LANG)
    args = parser.parse_args()
    rng = random.Random(7)
    rows = seeds(rng) + airline(args.shared_data, rng) + twcs(args.shared_data, rng)
    rows += noise(args.shared_data, rng, args.noise_per_lang)
    rows += styled()
    labelled = gold()
    # One row per text: a gold label wins over a weak one, and a text seen twice (the
    # airline file repeats some tweets) must not land in both the dev and training split.
    taken = {_normal(r["text"]) for r in labelled}
    kept = []
    for row in rows:
        if _normal(row["text"]) not in taken:
            taken.add(_normal(row["text"]))
            kept.append(row)
    rows = kept + labelled
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = Counter((r["source"], r["category"]) for r in rows)
    for key in sorted(counts):
        print(*key, counts[key], sep="\t")
    print("total", len(rows), sep="\t")


if __name__ == "__main__":
    main()
