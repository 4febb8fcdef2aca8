"""`carebot classify`, `eval` and the metrics, used as a demanding data analyst would.

Fast: the keyword rules (``--model rules``) or the fake engine of conftest.py stand in for
the encoder wherever the real model is not the point.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.classify.cli import OUTPUT_COLUMNS, classify, eval_cmd
from bot.classify.metrics import classification_report, threshold_sweep

RULES = ["--model", "rules"]


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _run(command, args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(command, args)


def test_classify_with_the_rules_model(tmp_path, monkeypatch) -> None:
    """CAREBOT_MODEL=rules (README: `default`, `rules` or a model id) classifies with the
    keyword rules alone: no heads to train, no encoder."""
    src = _csv(tmp_path / "in.csv", ["id", "text"],
               [["1", "my laptop won't boot since the update, help"], ["2", "nice sunset"]])
    monkeypatch.setenv("CAREBOT_MODEL", "rules")
    result = _run(classify, [str(src)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["id", "text", *OUTPUT_COLUMNS]
    assert [r["method"] for r in rows] == ["rules", "rules"]
    assert rows[1]["route"] == "triage"  # no rule matched: confidence 0
    result = _run(eval_cmd, [str(_csv(tmp_path / "gold.csv", ["text", "category"],
                                      [["my laptop won't boot, help", "case"]])), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["category"]["all"]
    report["engine"].pop("thresholds")
    assert report["engine"] == report["rules"] and report["rules"]["accuracy"] == 1.0


def test_classify_keeps_an_input_column_already_named_input_x(tmp_path) -> None:
    """`category` is kept as `input_category`; a file that has both must lose neither."""
    src = _csv(tmp_path / "in.csv", ["text", "category", "input_category"],
               [["my laptop won't boot, help", "case", "old"]])
    result = _run(classify, [str(src), *RULES])
    assert result.exit_code == 0, result.output
    reader = csv.reader(io.StringIO(result.stdout))
    header = next(reader)
    assert len(set(header)) == len(header), header
    row = dict(zip(header, next(reader), strict=True))
    assert header == ["text", "input_input_category", "input_category", *OUTPUT_COLUMNS]
    assert (row["input_input_category"], row["input_category"]) == ("case", "old")


def test_classify_jsonl_keeps_values_as_json(tmp_path) -> None:
    """Numbers, booleans and objects in a JSONL input come out as the same JSON values
    (JSONL out) or as their JSON text (CSV out), never as Python reprs."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "my laptop won't boot, help", "ref": 17, "vip": True,
                               "meta": {"a": [1, "é"]}, "gone": None}) + "\n", "utf-8")
    out = tmp_path / "out.jsonl"
    result = _run(classify, [str(src), "-o", str(out), *RULES])
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text("utf-8"))
    assert (row["ref"], row["vip"], row["meta"], row["gone"]) == (17, True, {"a": [1, "é"]}, None)
    result = _run(classify, [str(src), *RULES])
    assert result.exit_code == 0, result.output
    row = next(csv.DictReader(io.StringIO(result.stdout)))
    assert (row["ref"], row["vip"], json.loads(row["meta"]), row["gone"]) == (
        "17", "true", {"a": [1, "é"]}, "")


def test_jsonl_rows_without_text_are_no_traceback(tmp_path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "my laptop won\'t boot, help", "category": "case"}\n'
                   '{"body": "no text here", "category": "case"}\n')
    result = _run(classify, [str(src), *RULES])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["body"] for r in rows] == ["", "no text here"]
    assert rows[1]["category"] == ""  # nothing to classify
    result = _run(eval_cmd, [str(src), *RULES, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["category"]["all"]["engine"]["n"] == 1


def test_blank_text_is_left_unclassified_not_called_noise(tmp_path) -> None:
    """An empty or whitespace-only text has nothing to classify: its row is kept with the
    prediction columns empty (stderr says how many) and eval leaves it out."""
    src = _csv(tmp_path / "in.csv", ["id", "text", "category"],
               [["1", "", "case"], ["2", "  \t ", "rant"], ["3", "my laptop won't boot, help",
                                                          "case"]])
    result = _run(classify, [str(src), *RULES])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert all(rows[i][c] == "" for i in (0, 1) for c in OUTPUT_COLUMNS if c != "lang")
    assert rows[2]["category"] == "case"
    assert "2 rows with an empty text" in result.stderr
    result = _run(eval_cmd, [str(src), *RULES, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["category"]["all"]["rules"]
    assert report["n"] == 1 and report["accuracy"] == 1.0
    assert "2 rows with an empty text" in result.stderr


def test_unwritable_out_is_a_clear_error(tmp_path) -> None:
    src = _csv(tmp_path / "in.csv", ["text"], [["hello"]])
    result = _run(classify, [str(src), "-o", str(tmp_path / "no" / "such" / "out.csv"), *RULES])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "out.csv" in result.output


def test_batch_size_below_one_is_refused(tmp_path) -> None:
    src = _csv(tmp_path / "in.csv", ["text"], [["hello"]])
    for size in ("0", "-3"):
        result = _run(classify, [str(src), "--batch-size", size, *RULES])
        assert result.exit_code == 2 and "--batch-size" in result.output, result.output


def test_eval_without_labelled_rows_is_an_error(tmp_path) -> None:
    """Metrics over nothing (a header-only file, every label empty) are not 0.0 scores."""
    for rows in ([], [["my laptop won't boot", ""], ["nice", " "]]):
        src = _csv(tmp_path / "gold.csv", ["text", "category"], rows)
        result = _run(eval_cmd, [str(src), *RULES, "--json"])
        assert result.exit_code == 2, result.output
        assert "no labelled rows" in result.output and result.stdout == ""


def test_eval_reports_a_task_only_where_it_has_labels(
    tmp_path, monkeypatch, fake_engine
) -> None:
    """A language with sentiment labels only gets no category scores of 0.0 over no rows."""
    engine, _encoder = fake_engine
    monkeypatch.setattr("bot.classify.factory.build_classifier", lambda *a, **k: engine)
    src = _csv(tmp_path / "gold.csv", ["text", "category", "sentiment", "lang"],
               [["my laptop won't boot, help", "case", "", "en"],
                ["ich liebe es", "", "positive", "de"]])
    result = _run(eval_cmd, [str(src), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["category"]) == {"all", "en"}
    assert set(report["sentiment"]) == {"all", "de"}


def test_eval_text_says_when_nothing_is_automated(tmp_path) -> None:
    src = _csv(tmp_path / "gold.csv", ["text", "category"], [["nice sunset", "noise"]])
    result = _run(eval_cmd, [str(src), *RULES])
    assert result.exit_code == 0, result.output
    assert "auto 0.0% @ n/a" in result.stdout, result.stdout


def test_eval_refuses_sentiment_the_model_does_not_score(tmp_path) -> None:
    """The keyword rules give no sentiment: scoring their blanks as wrong answers would
    report a macro-F1 of 0 for a model that never answered."""
    src = _csv(tmp_path / "gold.csv", ["text", "sentiment"], [["I love it", "positive"]])
    result = _run(eval_cmd, [str(src), *RULES, "--json"])
    assert result.exit_code == 2 and "sentiment" in result.output and result.stdout == ""
    both = _csv(tmp_path / "both.csv", ["text", "category", "sentiment"],
                [["my laptop won't boot, help", "case", "negative"]])
    result = _run(eval_cmd, [str(both), *RULES, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "sentiment" not in report and "category" in report
    assert "does not score sentiment" in result.stderr


def test_eval_errors_name_the_file_argument(tmp_path) -> None:
    src = _csv(tmp_path / "gold.csv", ["body", "category"], [["x", "case"]])
    result = _run(eval_cmd, [str(src)])
    assert result.exit_code == 2 and "Invalid value for INFILE" in result.output


def test_csv_fields_longer_than_128k_characters_are_read(tmp_path) -> None:
    """A valid quoted field over the csv module's default limit is not 'a quote left open'."""
    src = _csv(tmp_path / "long.csv", ["id", "text"],
               [["1", "my laptop won't boot, help " * 6000], ["2", "ok"]])
    result = _run(classify, [str(src), *RULES])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["1", "2"]


def test_help_texts_name_every_format_and_the_rules_model() -> None:
    text = _run(classify, ["--help"]).output
    assert "TSV" in text.split("--out")[1].split("--model")[0]
    assert "rules" in text.split("--model")[1]


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        # sklearn.metrics.f1_score(gold, pred, average="macro") for each
        (["a", "a", "b", "b"], ["a", "b", "b", "b"], 0.7333),
        (["a", "a", "a", "a"], ["a", "a", "c", "c"], 0.3333),  # c predicted, never gold
        (["a", "a", "b", "c"], ["a", "a", "b", "b"], 0.5556),  # c gold, never predicted
        (["a", "b"], ["c", "c"], 0.0),
    ],
)
def test_macro_f1_matches_scikit_learn(gold, pred, expected) -> None:
    report = classification_report(gold, pred, ["a", "b", "c", "d"])
    assert report["macro_f1"] == pytest.approx(expected, abs=1e-4)


def test_precision_of_nothing_automated_is_none_everywhere() -> None:
    report = classification_report(["a"], ["b"], ["a", "b"], [0.1], 0.6)
    assert report["automation_rate"] == 0.0 and report["automated_precision"] is None
    sweep = {row["threshold"]: row for row in threshold_sweep(["a"], ["b"], [0.1])}
    assert sweep[0.6] == {"threshold": 0.6, "automation_rate": 0.0, "automated_precision": None}


def test_jsonl_text_with_unicode_line_separators_reads_back(tmp_path) -> None:
    """JSON strings may hold U+2028, U+2029 and NEL unescaped (json.dumps with
    ensure_ascii=False writes them so, as classify's own JSONL output does): they are
    not line breaks of a JSONL file."""
    src = tmp_path / "in.jsonl"
    texts = ["my laptop won't boot\u2028help", "par\u2029two", "nel\x85here"]
    src.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts),
                   "utf-8")
    out = tmp_path / "out.jsonl"
    result = _run(classify, [str(src), "-o", str(out), *RULES])
    assert result.exit_code == 0, result.output
    result = _run(classify, [str(out), *RULES])
    assert result.exit_code == 0, result.output
    assert [r["text"] for r in csv.DictReader(io.StringIO(result.stdout))] == texts


def test_json_document_with_a_list_of_rows(tmp_path) -> None:
    """A `.json` file may hold a list of objects or one object, as `carebot import`
    reads it."""
    src = tmp_path / "in.json"
    src.write_text(json.dumps([{"id": 1, "text": "my laptop won't boot, help"},
                               {"id": 2, "text": "nice sunset"}], indent=2))
    result = _run(classify, [str(src), *RULES])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["1", "2"]
    src.write_text(json.dumps({"id": 3, "text": "nice sunset"}, indent=2))
    result = _run(classify, [str(src), *RULES])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["3"]
    src.write_text("[1, 2]")
    result = _run(classify, [str(src), *RULES])
    assert result.exit_code == 2 and "item 1 is not a JSON object" in result.output


def test_deeply_nested_jsonl_is_an_error_not_a_traceback(tmp_path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "hi"}\n' + "[" * 100_000 + "\n")
    result = _run(classify, [str(src), *RULES])
    assert result.exit_code == 2 and "line 2 is not valid JSON" in result.output


def test_an_encoder_that_cannot_load_is_a_config_error(tmp_path) -> None:
    """`CAREBOT_MODEL=/no/such/dir carebot train` printed a transformers traceback; a
    ConfigError is one line from `carebot` (exit 2) naming the model."""
    from bot.classify.engine import get_encoder
    from bot.errors import ConfigError

    for model in (str(tmp_path / "no-such-model"), str(tmp_path)):
        with pytest.raises(ConfigError, match="cannot load the encoder") as info:
            get_encoder(model, "torch")
        assert model in str(info.value) and "\n" not in str(info.value)
