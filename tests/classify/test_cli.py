"""`carebot classify` and `carebot eval` on small fixtures, through click."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from bot.classify.cli import OUTPUT_COLUMNS, classify, eval_cmd, read_rows, train
from bot.config import CareConfig

pytestmark = pytest.mark.slow

ROWS = [
    ("1", "@NimbusSupport mein Laptop startet nach dem Update nicht mehr, Hilfe!", "case", "de"),
    ("2", "@NimbusSupport how do I export my contacts to CSV?", "query", "en"),
    ("3", "@NimbusSupport merci, votre support est génial !", "rave", "fr"),
    ("4", "@NimbusSupport el peor servicio del mundo, nunca más", "rant", "es"),
    ("5", "nice sunset at the beach tonight", "noise", "en"),
    ("6", "@NimbusSupport someone is selling cracked keygen copies of your app", "fraud", "en"),
]


@pytest.fixture
def labelled_csv(tmp_path):
    path = tmp_path / "mentions.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "category", "lang"])
        writer.writerows(ROWS)
    return path


def test_classify_csv_to_stdout(labelled_csv, real_engine, care_config: CareConfig) -> None:
    result = CliRunner().invoke(classify, [str(labelled_csv)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = result.stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(ROWS)
    # The input's own category and lang columns are kept beside the predictions.
    assert list(rows[0]) == ["id", "text", "input_category", "input_lang", *OUTPUT_COLUMNS]
    assert [(r["input_category"], r["input_lang"]) for r in rows] == [(c, lang) for *_x, c, lang
                                                                      in ROWS]
    departments = set(care_config.departments) | {"triage", "noise"}
    threshold = care_config.classification.threshold
    for row, (ident, *_rest) in zip(rows, ROWS, strict=True):
        assert row["id"] == ident
        assert row["route"] in departments
        assert (row["route"] == "triage") == (float(row["confidence"]) < threshold)
        assert row["sentiment"] in ("negative", "neutral", "positive")
        assert -1 <= float(row["sentiment_score"]) <= 1


def test_classify_jsonl_in_and_out(tmp_path, real_engine) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t, "ref": i}) + "\n" for i, t, _c, _l in ROWS))
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(classify, [str(src), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows, columns = read_rows(out)
    assert len(rows) == len(ROWS) and columns[:2] == ["text", "ref"]
    assert [r["lang"] for r in rows] == [lang for *_x, lang in ROWS]


def test_classify_on_openvino_agrees_with_int8_onnx(labelled_csv, real_engine) -> None:
    """`--backend` picks the encoder backend; both give the same calls on clear mentions."""
    outputs = {}
    for backend in ("onnx", "openvino"):
        result = CliRunner().invoke(
            classify, [str(labelled_csv), "--backend", backend], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        outputs[backend] = list(csv.DictReader(io.StringIO(result.stdout)))
    onnx, openvino = outputs["onnx"], outputs["openvino"]
    assert [r["category"] for r in openvino] == [r["category"] for r in onnx]
    assert [r["sentiment"] for r in openvino] == [r["sentiment"] for r in onnx]
    for a, b in zip(onnx, openvino, strict=True):
        assert abs(float(a["confidence"]) - float(b["confidence"])) < 0.1
    assert sum(r["category"] == c for r, (*_x, c, _l) in zip(openvino, ROWS, strict=True)) >= 5


def test_classify_tsv_in_and_out(tmp_path, real_engine) -> None:
    """A tab-separated file keeps its commas and quotes in the text, and `-o x.tsv`
    writes tab-separated rows that read back the same."""
    src = tmp_path / "in.tsv"
    texts = ['@NimbusSupport my order, #1234, never arrived "tracking" says delivered',
             "@NimbusSupport thank you, you are the best"]
    src.write_text("ref\ttext\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    out = tmp_path / "out.tsv"
    result = CliRunner().invoke(classify, [str(src), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "\t" in out.read_text().splitlines()[0]
    rows, columns = read_rows(out)
    assert columns == ["ref", "text", *OUTPUT_COLUMNS]
    assert [r["text"] for r in rows] == texts
    assert rows[1]["category"] == "rave"


def test_classify_requires_text_column(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("body\nhello\n")
    result = CliRunner().invoke(classify, [str(bad)])
    assert result.exit_code != 0 and "no `text` column (columns: `body`)" in result.output
    # A tab-separated file named .csv: the header did not split, and the error says so.
    misnamed = tmp_path / "mentions.csv"
    misnamed.write_text("text\tsentiment\nI love it\tpositive\n")
    result = CliRunner().invoke(eval_cmd, [str(misnamed)])
    assert result.exit_code == 2
    assert "does the file's extension name its delimiter?" in result.output


def test_unreadable_input_is_a_clear_error_naming_the_line(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n\n{"text": "cut off\n')
    result = CliRunner().invoke(classify, [str(bad)])
    assert result.exit_code == 2
    assert "bad.jsonl line 3 is not valid JSON" in result.output
    assert "Traceback" not in result.output

    bad.write_text('{"text": "fine"}\n["text"]\n')
    result = CliRunner().invoke(eval_cmd, [str(bad)])
    assert result.exit_code == 2 and "line 2 is not a JSON object" in result.output

    latin = tmp_path / "latin.csv"
    latin.write_bytes("text\ncaf\xe9 au lait\n".encode("latin-1"))
    result = CliRunner().invoke(classify, [str(latin)])
    assert result.exit_code == 2 and "latin.csv is not UTF-8" in result.output

    # A quote opened and never closed would swallow the rest of the file into one
    # field; the error names the line the broken record starts on instead.
    stray = tmp_path / "stray.tsv"
    stray.write_text('id\ttext\n1\tfine\n2\t"forgot to close\n3\tlost\n4\talso lost\n')
    result = CliRunner().invoke(classify, [str(stray)])
    assert result.exit_code == 2
    assert "stray.tsv line 3: a quoted field opened here is never closed" in result.output
    stray = tmp_path / "stray.csv"
    stray.write_text('text,lang\nfine,en\n"quoted" then more,en\n')
    result = CliRunner().invoke(eval_cmd, [str(stray)])
    assert result.exit_code == 2 and "stray.csv line 3:" in result.output


def test_eval_reads_labels_in_any_case_and_refuses_unknown_ones(tmp_path, real_engine) -> None:
    def report(labels: list[str]) -> dict:
        path = tmp_path / "gold.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "category"])
            texts = [text for _i, text, _c, _l in ROWS]
            writer.writerows(zip(texts, labels, strict=True))
        result = CliRunner().invoke(eval_cmd, [str(path), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["category"]["all"]["engine"]

    lower = report([c for _i, _t, c, _l in ROWS])
    shouted = report([f" {c.upper()} " for _i, _t, c, _l in ROWS])
    assert shouted == lower and lower["accuracy"] >= 0.83

    path = tmp_path / "odd.csv"
    path.write_text("text,sentiment\nlove it,Positive\nmeh,2\nawful,2\nok,\n")
    result = CliRunner().invoke(eval_cmd, [str(path)])
    assert result.exit_code == 2
    assert "`sentiment` has labels carebot does not know: '2' (2 rows)" in result.output


def test_train_refuses_feedback_it_cannot_read_before_training(tmp_path) -> None:
    feedback = tmp_path / "fb.csv"
    feedback.write_text("text,category\nany student discount?,Lead\nfake keys on ebay,scam\n")
    result = CliRunner().invoke(train, ["--feedback", str(feedback), "--out",
                                        str(tmp_path / "heads.jsonl")])
    assert result.exit_code == 2
    assert "'scam' (1 rows)" in result.output and "--feedback" in result.output
    assert not (tmp_path / "heads.jsonl").exists()


def test_eval_json_engine_and_rules_side_by_side(labelled_csv, real_engine) -> None:
    result = CliRunner().invoke(eval_cmd, [str(labelled_csv), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == len(ROWS)
    overall = report["category"]["all"]
    for name in ("engine", "rules"):
        block = overall[name]
        assert 0.0 <= block["macro_f1"] <= 1.0
        matrix = block["confusion_matrix"]["rows_gold_cols_pred"]
        assert sum(map(sum, matrix)) == len(ROWS)
        assert 0.0 <= block["automation_rate"] <= 1.0
        assert set(block["per_class"]) == set(block["confusion_matrix"]["labels"])
    # per language where a lang column exists
    assert {"de", "en", "fr", "es"} <= set(report["category"])
    assert report["category"]["en"]["engine"]["n"] == 3
    # On this easy multilingual set the engine automates more than the keyword rules and
    # gets at least 5 of 6 right. The one it may miss is the brandless sunset tweet, which
    # sits near the threshold: noise at about 0.5 now, a rave at 0.58-0.61 with the heads
    # and int8 export of an earlier commit — see the model card's limitations.
    engine, rules = overall["engine"], overall["rules"]
    # What moving the threshold would trade: the configured one matches the headline.
    sweep = {row["threshold"]: row for row in engine["thresholds"]}
    assert sweep[report["threshold"]]["automation_rate"] == engine["automation_rate"]
    rates = [row["automation_rate"] for row in engine["thresholds"]]
    assert rates == sorted(rates, reverse=True) and rates[0] > rates[-1]
    assert engine["automation_rate"] > rules["automation_rate"]
    assert engine["accuracy"] >= 0.83
    assert engine["automated_precision"] >= 0.83


def test_eval_sentiment_file(tmp_path, real_engine) -> None:
    path = tmp_path / "sent.jsonl"
    rows = [
        ("I love it, thank you so much!", "positive"),
        ("Terrible, I hate this", "negative"),
        ("Das ist großartig, danke!", "positive"),
        ("Questo è orribile", "negative"),
    ]
    path.write_text("".join(json.dumps({"text": t, "sentiment": s}) + "\n" for t, s in rows))
    result = CliRunner().invoke(eval_cmd, [str(path), "--json"], catch_exceptions=False)
    report = json.loads(result.stdout)
    assert "category" not in report
    assert report["sentiment"]["all"]["polarity_accuracy_binary"] >= 0.75
    text = CliRunner().invoke(eval_cmd, [str(path)], catch_exceptions=False).stdout
    binary = report["sentiment"]["all"]["polarity_accuracy_binary"]
    assert f"(by the score's sign {binary:.3f})" in text


def test_eval_groups_languages_however_the_file_writes_them(tmp_path, real_engine) -> None:
    path = tmp_path / "langs.csv"
    path.write_text("text,sentiment,lang\nJag älskar det här!,positive,SV\n"
                    "Det här är hemskt,negative,swe\nЭто ужасно,negative,RU\n")
    report = json.loads(CliRunner().invoke(eval_cmd, [str(path), "--json"],
                                           catch_exceptions=False).stdout)
    assert set(report["sentiment"]) == {"all", "ru", "sv"}
    assert report["sentiment"]["sv"]["n"] == 2


def test_train_without_a_database_creates_none(tmp_path, monkeypatch) -> None:
    """`carebot train` adds the reclassifications stored by the bot; where no bot has run
    (no SQLite file yet) it says so and leaves no empty database behind."""
    from bot.cli import main

    db = tmp_path / "never-ran.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "sentiment_train.csv").write_text("text,label,lang,source\n")
    feedback = tmp_path / "fb.csv"
    feedback.write_text("text,category\nfake keys on ebay,scam\n")  # stops before training
    result = CliRunner().invoke(main, ["train", "--shared-data", str(shared), "--feedback",
                                       str(feedback), "--out", str(tmp_path / "h.jsonl")])
    assert result.exit_code == 2, result.output
    assert f"no database at {db}" in result.output
    assert not db.exists()
