"""`python -m cosmos_llava eval` end to end: answers from tiny local models and from an endpoint, the
judge over real HTTP on loopback (the project's own server, and a scripted judge for readable
scores), resumption, failures recorded as failures, and the report files."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from cosmos_llava.errors import CosmosLlavaError
from cosmos_llava.evaluation.run import answer_type_of, read_items
from loopback import REPO, ScriptedEndpoint, ServeProcess

EXAMPLES = REPO / "cosmos_llava" / "evaluation" / "examples"


@pytest.fixture
def testset(tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(EXAMPLES, folder)
    return folder / "testset.json"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_rows_are_checked_before_anything_runs(tmp_path, testset):
    items = read_items(testset, None)
    assert [item.answer_type for item in items].count("yes_no") == 6
    assert [i.answer_type for i in items if i.category in ("renk", "sayma")] == ["short"] * 6
    assert {i.answer_type for i in items if i.category == "betimleme"} == {"open"}
    first = items[0]
    assert (first.question, first.reference) == ("Görselde bir daire var mı?", "Evet, görselde bir daire var.")
    conversation = first.conversation()
    assert len(conversation.images) == 1 and conversation.turns[-1].role == "user"

    assert answer_type_of("Hayır değil.") == "yes_no"
    assert answer_type_of("Var olan üç şekil daire, kare ve üçgendir.") == "open"  # not mistaken for yes/no
    assert answer_type_of("iki mavi kare") == "short"

    rows = json.loads(testset.read_text(encoding="utf-8"))
    rows[3]["image"] = "images/yok.png"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CosmosLlavaError, match=r"row 'hayir-2': image not found: .*yok\.png"):
        read_items(bad, testset.parent)
    rows[3]["image"] = rows[2]["image"]
    rows[3]["conversations"] = rows[3]["conversations"][:1]
    bad.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CosmosLlavaError, match="row 'hayir-2': needs 'conversations' with a question and a reference"):
        read_items(bad, testset.parent)


def test_bad_flags_are_one_line_errors(testset, llava_llama3):
    cases = [
        (["--metrics", "judge100"], "judge100 and relative need a judge: give --judge-endpoint URL and --judge-model NAME"),
        (["--metrics", "bleu"], "--metrics: unknown metric 'bleu' (choose from judge100, relative, binary, exact)"),
        (["--reasoning", "stage-beam", "--reasoning-temperature", "0"],
         "stage-beam with 4 candidates needs a temperature above 0"),
    ]
    for extra, message in cases:
        result = run_cli("eval", "--model", llava_llama3, "--data", testset, "--out", testset.parent / "out", *extra)
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    result = run_cli("eval", "--model", "no/such/model/here", "--data", testset, "--out", testset.parent / "out")
    assert result.stderr.strip() == ("error: --model no/such/model/here: not a model folder, hub id "
                                     "(or give --models YAML for names)")


def test_two_local_models_judged_by_our_own_server(tmp_path, testset, llava_llama3, llava_mistral):
    """The whole command as a user runs it; the tiny judge cannot give a score, so every judgement is
    recorded as a failure (never as 0), and a rerun answers nothing again but retries the judgements."""
    judge = ServeProcess(llava_llama3, "--served-model-name", "judge", "--max-tokens", "6", "--context-length", "4096")
    out = tmp_path / "report"
    args = ["eval", "--model", llava_llama3, "--model", llava_mistral, "--data", testset, "--out", out,
            "--limit", "5", "--max-new-tokens", "8", "--batch-size", "3", "--judge-endpoint", f"{judge.url}/v1",
            "--judge-model", "judge", "--judge-retries", "0", "--judge-max-tokens", "6", "--no-progress"]
    try:
        first = run_cli(*args)
        assert first.returncode == 0, first.stderr
        second = run_cli(*args)
    finally:
        judge.stop()
    assert second.returncode == 0, second.stderr
    names = [llava_llama3.name, llava_mistral.name]
    assert f"{names[0]}: 5 answered now, 0 already done" in first.stderr
    assert f"{names[0]}: 0 answered now, 5 already done" in second.stderr
    assert f"{names[1]} judge100: 5 judged now, 0 already done" in second.stderr  # failures are retried

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["rows"] == 5 and summary["metrics"] == ["binary", "exact", "judge100", "relative"]
    assert summary["judge"]["model"] == "judge"
    for name in names:
        model = summary["models"][name]
        assert model["generation"]["answered"] == 5 and model["generation"]["errors"] == 0
        assert model["judge100"]["overall"] == {"n": 5, "scored": 0, "failed": 5, "mean": None, "low": None,
                                                "high": None}
        assert model["relative"]["overall"]["failed"] == 5 and model["relative"]["overall"]["score"] is None
        assert model["binary"]["overall"]["n"] == 5  # the first five rows are yes/no questions
        assert model["exact"] == {}
        answers = read_jsonl(out / "answers" / f"{name}.jsonl")
        assert [a["id"] for a in answers] == ["evet-1", "hayir-1", "evet-2", "hayir-2", "evet-3"]
        assert all(isinstance(a["answer"], str) and a["completion_tokens"] <= 8 for a in answers)
        judged = read_jsonl(out / "judged" / f"{name}.judge100.jsonl")
        assert len(judged) == 5 and all(j["score"] is None and "no score" in j["error"] for j in judged)
    results = read_jsonl(out / "results.jsonl")
    assert len(results) == 10 and all("judge100" in r and "binary" in r for r in results)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"| category | {names[0]} | {names[1]} |" in report
    assert "| **overall** | — (n=0, 5 failed) | — (n=0, 5 failed) |" in report
    for metric in ("binary", "judge100", "relative"):
        assert (out / "plots" / f"{metric}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "plots" / "exact.png").exists()  # no short-answer rows among the first five


def scripted_answers(body, n):
    """An answer model that knows the example scenes: right on colours, yes to everything."""
    question = next(p["text"] for p in body["messages"][-1]["content"] if p["type"] == "text")
    known = {"Dairenin rengi ne?": "Kırmızı.", "Üçgen ne renk?": "Mavi", "Kareler ne renk?": "mavi",
             "Görselde kaç tane kare var?": "iki", "Kaç daire var?": "3", "Görselde kaç şekil var?": "Bir tane."}
    for key, answer in known.items():
        if key in question:
            return 200, answer, None
    if "var mı" in question or question.endswith("mi?"):
        return 200, "Evet.", None
    return 200, "Görselde renkli şekiller var.", None


def scripted_judge(body, n):
    text = body["messages"][-1]["content"]
    text = text if isinstance(text, str) else " ".join(p.get("text", "") for p in text)
    if "Puan:" in body["messages"][0]["content"]:  # the 0-100 judge
        if "Kaç daire var?" in text:
            return 200, "Bu cevabı değerlendiremiyorum.", None  # never a score: a failure, not 0
        if "Dairenin rengi ne?" in text and body.get("temperature") == 0:
            return 200, "Çok iyi bir cevap.", None  # unreadable at first; the retry gives a score
        return 200, "Puan: 80\nGerekçe: Cevap doğru ve kısa.", None
    return 200, "9 5\nBirinci asistan daha ayrıntılı.", None  # always favours position 1


def test_scores_from_an_endpoint_model_and_a_scripted_judge(tmp_path, testset):
    answerer, judge = ScriptedEndpoint(scripted_answers), ScriptedEndpoint(scripted_judge)
    registry = tmp_path / "models.yaml"
    registry.write_text(f"models:\n  - name: Bilen\n    endpoint: {answerer.url}\n    endpoint_model: bilen\n",
                        encoding="utf-8")
    out = tmp_path / "out"
    try:
        result = run_cli("eval", "--models", registry, "--model", "Bilen", "--data", testset, "--out", out,
                         "--judge-endpoint", judge.url, "--judge-model", "hakem", "--judge-retries", "1",
                         "--judge-image", "--no-progress")
    finally:
        answerer.stop()
        judge.stop()
    assert result.returncode == 0, result.stderr
    model = json.loads((out / "summary.json").read_text(encoding="utf-8"))["models"]["Bilen"]
    # Yes to all six yes/no questions: 3 right, 3 wrong.
    assert model["binary"]["overall"] == {"n": 6, "tp": 3, "fp": 3, "tn": 0, "fn": 0, "unknown": 0, "accuracy": 0.5,
                                          "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                                          "yes_ratio": 1.0}
    # Colours: "Kırmızı." and "mavi" right, "Mavi" for a green triangle wrong; counts: "iki", "3", "Bir tane." -
    # words count as numbers, "Bir tane." is not a bare number.
    assert model["exact"]["renk"] == {"n": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)}
    assert model["exact"]["sayma"] == {"n": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)}
    assert model["exact"]["overall"]["correct"] == 4
    # judge100: 80 everywhere it could read a score; "Kaç daire var?" never gave one.
    assert model["judge100"]["sayma"] == {"n": 3, "scored": 2, "failed": 1, "mean": 80.0, "low": 80.0, "high": 80.0}
    assert model["judge100"]["overall"]["scored"] == 13 and model["judge100"]["overall"]["mean"] == 80.0
    # A judge that always prefers position 1 ("9 5") is cancelled by asking in both orders.
    assert model["relative"]["overall"]["score"] == 100.0
    assert model["relative"]["overall"]["reference_mean"] == 7.0
    judged = {row["id"]: row for row in read_jsonl(out / "judged" / "Bilen.judge100.jsonl")}
    assert judged["sayi-2"]["score"] is None and "after 2 tries" in judged["sayi-2"]["error"]
    assert judged["renk-1"]["score"] == 80 and judged["renk-1"]["reason"] == "Cevap doğru ve kısa."
    relative = {row["id"]: row for row in read_jsonl(out / "judged" / "Bilen.relative.jsonl")}
    assert relative["betimle-1"]["orders"] == [{"reference": 9, "candidate": 5}, {"reference": 5, "candidate": 9}]
    # The judge saw the image (--judge-image); the answer model got it as a data URL.
    assert any(p["type"] == "image_url" for p in judge.requests[0]["messages"][-1]["content"])
    assert answerer.requests[0]["messages"][-1]["content"][0]["image_url"]["url"].startswith("data:image/png")
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| sayma | 80.0 [80.0, 80.0] (n=2, 1 failed) |" in report
    assert "| Bilen | **overall** | 6 | 50.0% | 0.500 | 1.000 | 0.667 | 100.0% | 0 |" in report
    assert "| renk | 66.7% (2/3) |" in report
