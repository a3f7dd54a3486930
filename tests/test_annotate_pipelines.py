"""annotate/: the runner (retries, resume, order, rejection) and the instruct / translate / cot pipelines,
over real HTTP on loopback: a scripted OpenAI-compatible endpoint for answers a tiny random model cannot
give, and `python -m cosmos_llava serve` hosting the tiny model for the end-to-end runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tiny
from conftest import REPO
from loopback import ScriptedEndpoint, ServeProcess

from cosmos_llava.openai_client import ChatClient, Endpoint, EndpointError, FatalEndpointError, Usage
from cosmos_llava.jobs import Job, Rejected, finished_ids, run_jobs


def run_annotate(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "annotate", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "\n".join(p.get("text", "") for p in content)


def client_for(endpoint: ScriptedEndpoint, retries: int = 3) -> ChatClient:
    return ChatClient(Endpoint(endpoint.url, "scripted", max_retries=retries, backoff_s=0.01), Usage(1.0, 2.0))


# --------------------------------------------------------------------------------------------- client

def test_client_retries_429_and_5xx_then_succeeds():
    answers = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
               (503, {"error": {"message": "overloaded"}}, None),
               (200, "Tamam.", None)]
    with ScriptedEndpoint(lambda body, n: answers[n]) as endpoint:
        client = client_for(endpoint)
        result = client.complete([{"role": "user", "content": "Merhaba"}], max_tokens=5, seed=7)
    assert result.text == "Tamam." and result.prompt_tokens == 10 and result.completion_tokens == 5
    assert len(endpoint.requests) == 3 and endpoint.requests[0]["seed"] == 7 and endpoint.requests[0]["model"] == "scripted"
    assert client.usage.retries == 2 and client.usage.requests == 1
    assert client.usage.summary() == ("tokens: 10 in, 5 out over 1 requests (2 retried); estimated cost $0.0000")


def test_client_final_and_fatal_errors():
    with ScriptedEndpoint(lambda body, n: (400, {"error": {"message": "context too long"}}, None)) as endpoint:
        with pytest.raises(EndpointError, match="^HTTP 400: context too long$"):
            client_for(endpoint).complete([{"role": "user", "content": "x"}])
        assert len(endpoint.requests) == 1  # a 400 is not retried
    with ScriptedEndpoint(lambda body, n: (401, {"error": {"message": "Incorrect API key provided"}}, None)) as endpoint:
        with pytest.raises(FatalEndpointError, match="HTTP 401: Incorrect API key provided$"):
            client_for(endpoint).complete([{"role": "user", "content": "x"}])
    with ScriptedEndpoint(lambda body, n: (500, {"error": {"message": "boom"}}, None)) as endpoint:
        with pytest.raises(EndpointError, match=r"^gave up after 3 tries: HTTP 500: boom$"):
            client_for(endpoint, retries=2).complete([{"role": "user", "content": "x"}])


# --------------------------------------------------------------------------------------------- runner

def test_runner_order_rejects_failures_and_resume(tmp_path):
    """Out of order completions are written in input order; rejected ones (by validation, or refused by
    the endpoint) go to the side file; failed ones (retries exhausted) are not written and a rerun does
    them (and only them)."""
    import random

    def script(body, n):
        text = user_text(body)
        time.sleep(random.Random(text).random() * 0.05)
        if text == "job-3":
            return 503, {"error": {"message": "overloaded"}}, None
        if text == "job-8":
            return 400, {"error": {"message": "prompt too long"}}, None
        return 200, f"answer {text}", None

    def worker(job: Job, client: ChatClient) -> dict:
        text = client.complete([{"role": "user", "content": job.id}]).text
        if job.id == "job-5":
            raise Rejected("format: not what we asked", text)
        return {"id": job.id, "text": text}

    jobs = [Job(f"job-{i}", None) for i in range(10)]
    out = tmp_path / "out.jsonl"
    with ScriptedEndpoint(script) as endpoint:
        report = run_jobs(jobs, worker, client_for(endpoint, retries=0), out, concurrency=4, progress=False)
        assert [r["id"] for r in lines(out)] == [f"job-{i}" for i in range(10) if i not in (3, 5, 8)]
        assert lines(tmp_path / "out.rejected.jsonl") == [
            {"id": "job-5", "reason": "format: not what we asked", "output": "answer job-5"},
            {"id": "job-8", "reason": "endpoint: HTTP 400: prompt too long", "output": ""}]
        assert (report.written, report.rejected) == (7, 2)
        assert report.failed == [("job-3", "gave up after 1 tries: HTTP 503: overloaded")]
        assert report.lines() == [f"7 written to {out}, 2 rejected, 1 failed, 0 already done (of 10)",
                                  "  rejected 1x: format", "  rejected 1x: endpoint",
                                  f"rejected records and their reasons: {tmp_path / 'out.rejected.jsonl'}",
                                  "  failed job-3: gave up after 1 tries: HTTP 503: overloaded",
                                  "failed records are not written: rerun the same command to retry them"]
        first_requests = len(endpoint.requests)
        again = run_jobs(jobs, worker, client_for(endpoint, retries=0), out, concurrency=4, progress=False)
        assert len(endpoint.requests) == first_requests + 1  # only the failed job-3 is asked again
        assert (again.already_done, again.written, len(again.failed)) == (9, 0, 1)
        redo = run_jobs(jobs, worker, client_for(endpoint, retries=0), out, retry_rejected=True, progress=False)
        assert (redo.already_done, redo.rejected) == (7, 2)
        assert [r["id"] for r in lines(tmp_path / "out.rejected.jsonl")] == ["job-5", "job-8"]  # replaced, not doubled
        limited = run_jobs(jobs, worker, client_for(endpoint, retries=0), tmp_path / "few.jsonl", limit=2,
                           progress=False)
        assert [r["id"] for r in lines(tmp_path / "few.jsonl")] == ["job-0", "job-1"] and limited.total == 2


def test_finished_ids_repairs_only_a_cut_last_line(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "conv', encoding="utf-8")
    assert finished_ids(out) == {"a", "b"}
    assert out.read_text(encoding="utf-8") == '{"id": "a"}\n{"id": "b"}\n'
    out.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n', encoding="utf-8")
    from cosmos_llava.errors import CosmosLlavaError

    with pytest.raises(CosmosLlavaError, match="line 2 is not a JSON record with an id; fix or move the file$"):
        finished_ids(out)
    assert out.read_text(encoding="utf-8") == '{"id": "a"}\nnot json\n{"id": "b"}\n'  # untouched


# ------------------------------------------------------------------------------------------ translate

ENGLISH = [
    {"id": "r1", "image": "a.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat is the man holding?"},
        {"from": "gpt", "value": "He is holding 2 red umbrellas in London."}]},
    {"id": "r2", "image": "b.png", "conversations": [
        {"from": "human", "value": "Görselde kaç kedi var?\n<image>"},
        {"from": "gpt", "value": "There are 3 cats on the sofa."}]},
]
TURKISH = {
    "⟦0⟧\nWhat is the man holding?": "⟦0⟧\nAdam elinde ne tutuyor?",
    "He is holding 2 red umbrellas in London.": "London'da elinde 2 kırmızı şemsiye tutuyor.",
    "There are 3 cats on the sofa.": "Kanepede 3 kedi var.",
}


def fake_translator(mistakes: dict | None = None):
    def script(body, n):
        strings = json.loads(user_text(body))
        return 200, json.dumps([(mistakes or {}).get(s, TURKISH[s]) for s in strings], ensure_ascii=False), None
    return script


def test_translate_keeps_structure_and_skips_turkish(tmp_path):
    data = tmp_path / "en.json"
    data.write_text(json.dumps(ENGLISH), encoding="utf-8")
    out = tmp_path / "tr.jsonl"
    with ScriptedEndpoint(fake_translator()) as endpoint:
        result = run_annotate("translate", "--input", data, "--out", out, "--endpoint", endpoint.url,
                              "--model", "scripted", "--no-progress", "--concurrency", "1")
    assert result.returncode == 0, result.stderr
    assert lines(out) == [
        {"id": "r1", "image": "a.png", "conversations": [
            {"from": "human", "value": "<image>\nAdam elinde ne tutuyor?"},
            {"from": "gpt", "value": "London'da elinde 2 kırmızı şemsiye tutuyor."}]},
        {"id": "r2", "image": "b.png", "conversations": [
            {"from": "human", "value": "Görselde kaç kedi var?\n<image>"},
            {"from": "gpt", "value": "Kanepede 3 kedi var."}]},
    ]
    sent = [json.loads(user_text(body)) for body in endpoint.requests]
    assert sent == [["⟦0⟧\nWhat is the man holding?", "He is holding 2 red umbrellas in London."],
                    ["There are 3 cats on the sofa."]]  # the Turkish question was not sent
    assert "2 written to" in result.stdout and "tokens: 20 in, 10 out over 2 requests" in result.stdout


@pytest.mark.parametrize("mistake, reason", [
    ({"He is holding 2 red umbrellas in London.": "London'da elinde kırmızı şemsiyeler tutuyor."},
     "numbers changed: 2 -> (none) (string 2)"),
    ({"⟦0⟧\nWhat is the man holding?": "Adam elinde ne tutuyor?"}, "placeholder ⟦0⟧ is missing (string 1)"),
    ({"He is holding 2 red umbrellas in London.": "Londra'da elinde 2 kırmızı şemsiye tutuyor."},
     "named entity dropped: 'London' (string 2)"),
    ({"He is holding 2 red umbrellas in London.": "He holds 2 red umbrellas in London."},
     "not Turkish: 'He holds 2 red umbrellas in London.' (string 2)"),
])
def test_translate_rejects_bad_translations(tmp_path, mistake, reason):
    data = tmp_path / "en.json"
    data.write_text(json.dumps(ENGLISH[:1]), encoding="utf-8")
    out = tmp_path / "tr.jsonl"
    with ScriptedEndpoint(fake_translator(mistake)) as endpoint:
        result = run_annotate("translate", "--input", data, "--out", out, "--endpoint", endpoint.url,
                              "--model", "scripted", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert not out.exists() or out.read_text() == ""
    rejected = lines(tmp_path / "tr.rejected.jsonl")
    assert [(r["id"], r["reason"]) for r in rejected] == [("r1", reason)]


def test_kill_and_resume_loses_nothing_and_duplicates_nothing(tmp_path):
    records = [{"id": f"r{i}", "conversations": [{"from": "human", "value": f"What is item number {i}?"},
                                                  {"from": "gpt", "value": f"It is item {i}."}]} for i in range(30)]
    data = tmp_path / "en.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "tr.jsonl"

    def script(body, n):
        strings = json.loads(user_text(body))
        number = re.search(r"\d+", strings[0]).group(0)
        return 200, json.dumps([f"{number} numaralı öğe nedir?", f"Bu {number} numaralı öğe."], ensure_ascii=False), None

    args = ["-m", "annotate", "translate", "--input", data, "--out", out, "--model", "scripted", "--no-progress",
            "--concurrency", "3"]
    with ScriptedEndpoint(script, delay_s=0.15) as endpoint:
        child = subprocess.Popen([sys.executable, *map(str, args), "--endpoint", endpoint.url], cwd=REPO,
                                 env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 5):
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        written_before = len(finished_ids(out))
        assert 5 <= written_before < 30
        requests_before = len(endpoint.requests)
        result = run_annotate("translate", *map(str, args[3:]), "--endpoint", endpoint.url)
    assert result.returncode == 0, result.stderr
    ids = [r["id"] for r in lines(out)]
    assert ids == [f"r{i}" for i in range(30)]  # each once, in input order
    assert lines(out)[7]["conversations"][1]["value"] == "Bu 7 numaralı öğe."
    # the rerun asked only for what was not written (plus at most the few in flight at the kill)
    assert len(endpoint.requests) - requests_before == 30 - written_before
    assert f"{30 - written_before} written" in result.stdout and f"{written_before} already done" in result.stdout


# ------------------------------------------------------------------------------------------------ cot

def write_cot_input(tmp_path: Path) -> Path:
    tiny.solid_image((200, 30, 30), size=(32, 32)).save(tmp_path / "kirmizi.png")
    records = [{"id": "q1", "image": "kirmizi.png", "question": "Zemin ne renk? A) Mavi B) Kırmızı", "answer": "B"},
               {"id": "q2", "image": "kirmizi.png", "question": "Görselde bir daire var mı?", "answer": "Hayır"},
               {"id": "q3", "image": "kirmizi.png", "question": "Kaç renk var?", "answer": "1"}]
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


TRACE = ("<SUMMARY>Görseldeki zemin rengine bakıp seçeneklerle karşılaştıracağım.</SUMMARY>\n"
         "<CAPTION>Görsel tamamen kırmızı renkte, düz bir zeminden oluşuyor.</CAPTION>\n"
         "<REASONING>Zemin kırmızı olduğu için doğru seçenek kırmızı olan seçenektir, bu da B şıkkıdır.</REASONING>\n"
         "<CONCLUSION>B</CONCLUSION>")


def test_cot_keeps_only_well_formed_correct_turkish_traces(tmp_path):
    data = write_cot_input(tmp_path)
    answers = {"q1": TRACE,
               "q2": TRACE.replace("<CONCLUSION>B</CONCLUSION>", "<CONCLUSION>Evet, bir daire var.</CONCLUSION>"),
               "q3": TRACE.replace("<CAPTION>", "").replace("</CAPTION>", "")}

    def script(body, n):
        question = re.search(r"Question: (.*)", user_text(body)).group(1)
        qid = {"Zemin": "q1", "Görselde": "q2", "Kaç": "q3"}[question.split()[0]]
        return 200, answers[qid], None

    out = tmp_path / "cot.jsonl"
    with ScriptedEndpoint(script) as endpoint:
        result = run_annotate("cot", "--input", data, "--out", out, "--endpoint", endpoint.url, "--model", "scripted",
                              "--no-progress", "--concurrency", "1")
    assert result.returncode == 0, result.stderr
    assert lines(out) == [{"id": "q1", "image": "kirmizi.png", "category": "cot", "conversations": [
        {"from": "human", "value": "<image>\nZemin ne renk? A) Mavi B) Kırmızı"},
        {"from": "gpt", "value": TRACE.replace("</SUMMARY>\n", "</SUMMARY>\n\n").replace("</CAPTION>\n", "</CAPTION>\n\n")
         .replace("</REASONING>\n", "</REASONING>\n\n")}]}]
    rejected = {r["id"]: r["reason"] for r in lines(tmp_path / "cot.rejected.jsonl")}
    assert rejected["q2"] == "wrong answer: conclusion 'Evet, bir daire var.' does not match 'Hayır'"
    assert rejected["q3"] == "format: missing <CAPTION>"
    first = endpoint.requests[0]["messages"][0]["content"]
    assert first[0]["type"] == "image_url" and first[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "Standard answer: B" in first[1]["text"] and "Question: Zemin ne renk? A) Mavi B) Kırmızı" in first[1]["text"]


# ------------------------------------------------------------------------------------------- instruct

SCENE = [{"id": "img1", "image": "img1.jpg",
          "captions": ["Parkta iki çocuk top oynuyor.", "Çimlerin üzerinde kırmızı bir top var."],
          "boxes": [{"label": "çocuk", "bbox": [0.1, 0.2, 0.3, 0.9]}, {"label": "top", "bbox": [0.5, 0.7, 0.6, 0.8]}]}]
CONVERSATION = ("Soru: Görselde kaç çocuk var?\nCevap: Görselde iki çocuk var.\n"
                "Soru: Çocuklar ne yapıyor?\nCevap: Parkta çimlerin üzerinde kırmızı bir topla oynuyorlar.")
DETAIL = ("Görselde yeşil çimlerle kaplı bir parkta oynayan iki çocuk görülüyor. Çocuklardan biri sol tarafta "
          "duruyor, kırmızı top ise çimlerin üzerinde, çocukların biraz sağında yer alıyor. Hava aydınlık ve sahne "
          "neşeli bir oyun anını yansıtıyor.")
COMPLEX = ("Soru: Çocuklar bu oyunu oynarken nelere dikkat etmeli?\nCevap: Parkta başka insanlar da olabileceği "
           "için topu kontrollü atmalı ve yola yakın yerlerden uzak durmalılar; ayrıca çimler kaygan olabilir.")


def instruct(tmp_path, answers: dict, *extra) -> tuple[subprocess.CompletedProcess, Path, ScriptedEndpoint]:
    data = tmp_path / "scenes.json"
    data.write_text(json.dumps(SCENE, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "instruct.jsonl"

    def script(body, n):
        system = body["messages"][0]["content"]
        kind = ("conversation" if "sohbet" in system or "conversation" in system
                else "detail" if "paragraf" in system or "paragraph" in system else "complex")
        if body["messages"][0]["content"].startswith("You are a professional English-to-Turkish translator"):
            kind = "translate"
        answer = answers[kind]
        return 200, answer(body) if callable(answer) else answer, None

    with ScriptedEndpoint(script) as endpoint:
        result = run_annotate("instruct", "--input", data, "--out", out, "--endpoint", endpoint.url,
                              "--model", "scripted", "--no-progress", "--concurrency", "1", *extra)
    return result, out, endpoint


def test_instruct_writes_the_three_kinds(tmp_path):
    result, out, endpoint = instruct(tmp_path, {"conversation": CONVERSATION, "detail": DETAIL, "complex": COMPLEX})
    assert result.returncode == 0, result.stderr
    rows = lines(out)
    assert [(r["id"], r["category"], r["image"]) for r in rows] == [
        ("img1-conversation", "conversation", "img1.jpg"), ("img1-detail", "detail", "img1.jpg"),
        ("img1-complex", "complex", "img1.jpg")]
    assert rows[0]["conversations"] == [
        {"from": "human", "value": "<image>\nGörselde kaç çocuk var?"}, {"from": "gpt", "value": "Görselde iki çocuk var."},
        {"from": "human", "value": "Çocuklar ne yapıyor?"},
        {"from": "gpt", "value": "Parkta çimlerin üzerinde kırmızı bir topla oynuyorlar."}]
    from annotate.instruct import DETAIL_QUESTIONS

    assert rows[1]["conversations"][0]["value"].removeprefix("<image>\n") in DETAIL_QUESTIONS
    assert rows[1]["conversations"][1]["value"] == DETAIL
    context = endpoint.requests[0]["messages"][-1]["content"]
    assert context == ("Açıklamalar:\n- Parkta iki çocuk top oynuyor.\n- Çimlerin üzerinde kırmızı bir top var.\n\n"
                       "Nesneler:\n- çocuk: [0.100, 0.200, 0.300, 0.900]\n- top: [0.500, 0.700, 0.600, 0.800]")
    assert [m["role"] for m in endpoint.requests[0]["messages"]] == ["system", "user", "assistant", "user"]
    # the rows are training data as they are
    from training.data import read_rows

    (tmp_path / "img1.jpg").write_bytes(b"")  # read_rows checks paths only when asked
    parsed, skipped = read_rows(out, tmp_path, check_images=False)
    assert [r.id for r in parsed] == ["img1-conversation", "img1-detail", "img1-complex"] and skipped == []


@pytest.mark.parametrize("answers, reasons", [
    ({"conversation": "Görselde iki çocuk var.", "detail": "Kısa.", "complex": COMPLEX + "\n" + COMPLEX},
     {"img1-conversation": "format: no question/answer pairs found",
      "img1-detail": "format: a detailed description needs at least 20 words, got 1",
      "img1-complex": "format: expected one question, got 2"}),
    ({"conversation": CONVERSATION.replace("iki çocuk var.", "[0.1, 0.2] kutusunda iki çocuk var."),
      "detail": "The image shows two children playing with a red ball in a green park on a sunny day, "
                "one of them standing on the left while the ball lies on the grass to their right side.",
      "complex": COMPLEX.replace("Cevap: Parkta", "Cevap: Koordinatlara göre parkta")},
     {"img1-conversation": "mentions the symbolic context: '[0.1,'",
      "img1-detail": "not Turkish: 'The image shows two children playing with a red ball in a gr'",
      "img1-complex": "mentions the symbolic context: 'Koordinat'"}),
])
def test_instruct_rejects_bad_outputs(tmp_path, answers, reasons):
    result, out, _ = instruct(tmp_path, answers)
    assert result.returncode == 0, result.stderr
    assert not out.exists() or out.read_text() == ""
    assert {r["id"]: r["reason"] for r in lines(tmp_path / "instruct.rejected.jsonl")} == reasons


def test_instruct_via_english_translates_every_turn(tmp_path):
    english = "Question: How many children are there?\nAnswer: There are two children."

    def translate(body):
        strings = json.loads(user_text(body))
        assert strings == ["How many children are there?", "There are two children."]
        return json.dumps(["Kaç çocuk var?", "İki çocuk var."], ensure_ascii=False)

    result, out, endpoint = instruct(tmp_path, {"conversation": english, "translate": translate}, "--kinds",
                                     "conversation", "--via-english")
    assert result.returncode == 0, result.stderr
    assert lines(out)[0]["conversations"] == [{"from": "human", "value": "<image>\nKaç çocuk var?"},
                                              {"from": "gpt", "value": "İki çocuk var."}]
    assert endpoint.requests[0]["messages"][-1]["content"].startswith("Captions:\n- Parkta")


def test_instruct_examples_pass_their_own_checks():
    """The few-shot answers we show the model must be outputs our validators accept."""
    from annotate.instruct import EXAMPLE_ANSWER_TR, parse_output, validate_pairs

    for kind, answer in EXAMPLE_ANSWER_TR.items():
        validate_pairs(parse_output(answer, kind, f"example-{kind}"), answer)


# --------------------------------------------------------------------- end to end: our own server

@pytest.fixture(scope="module")
def tiny_server(llava_llama3):
    # The tiny model's 512-token context cannot hold the few-shot prompts (its tokenizer makes them
    # long); random weights do not care where their context ends: --context-length stretches it.
    proc = ServeProcess(llava_llama3, "--served-model-name", "tiny", "--max-tokens", "24", "--context-length", "4096")
    yield proc
    proc.stop()


def test_pipelines_against_our_server_reject_nonsense(tmp_path, tiny_server):
    """The tiny model answers nonsense: every pipeline runs end to end over HTTP, writes nothing bad,
    and says why each record was rejected."""
    endpoint = ["--endpoint", f"{tiny_server.url}/v1", "--model", "tiny", "--no-progress", "--max-tokens", "24"]
    data = tmp_path / "scenes.json"
    data.write_text(json.dumps(SCENE, ensure_ascii=False), encoding="utf-8")
    en = tmp_path / "en.json"
    en.write_text(json.dumps(ENGLISH), encoding="utf-8")
    runs = {
        "instruct": ["--input", data, "--kinds", "conversation,complex"],
        "translate": ["--input", en],
        "cot": ["--input", write_cot_input(tmp_path), "--limit", "2"],
    }
    for task, args in runs.items():
        out = tmp_path / f"{task}.jsonl"
        result = run_annotate(task, *args, "--out", out, *endpoint)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        rejected = lines(tmp_path / f"{task}.rejected.jsonl")
        assert len(rejected) == 2 and all(r["reason"] and r["output"] for r in rejected), rejected
        assert re.search(r"^0 written to .*, 2 rejected, 0 failed, 0 already done \(of 2\)$", result.stdout, re.M)
        assert re.search(r"^tokens: [\d,]+ in, [\d,]+ out over \d+ requests \(0 retried\)", result.stdout, re.M)


def test_cli_errors(tmp_path):
    result = run_annotate("translate", "--input", tmp_path / "missing.json", "--out", tmp_path / "o.jsonl",
                          "--endpoint", "http://127.0.0.1:9/v1", "--model", "m")
    assert (result.returncode, result.stderr) == (1, f"error: input file not found: {tmp_path / 'missing.json'}\n")
    data = tmp_path / "en.json"
    data.write_text(json.dumps(ENGLISH), encoding="utf-8")
    result = run_annotate("translate", "--input", data, "--out", tmp_path / "o.jsonl", "--model", "m",
                          env={"COSMOS_LLAVA_ENDPOINT": "", "OPENAI_BASE_URL": ""})
    assert result.stderr == ("error: no endpoint: give --endpoint URL (e.g. http://127.0.0.1:8000/v1) or set "
                             "COSMOS_LLAVA_ENDPOINT\n")
    with ScriptedEndpoint(lambda body, n: (401, {"error": {"message": "Incorrect API key provided"}}, None)) as endpoint:
        result = run_annotate("translate", "--input", data, "--out", tmp_path / "o.jsonl", "--model", "m",
                              "--endpoint", endpoint.url, "--no-progress")
    assert result.returncode == 1
    assert result.stderr == f"error: {endpoint.url}: HTTP 401: Incorrect API key provided\n"
    result = run_annotate("instruct", "--input", data, "--out", tmp_path / "o.jsonl", "--kinds", "poem",
                          "--endpoint", "http://127.0.0.1:9/v1", "--model", "m")
    assert result.stderr == "error: unknown kind 'poem'; choose from: conversation, detail, complex\n"
