"""LLaVA-CoT reasoning: stage-level beam search stops at each stage's closing tag and yields all four
stages; the judge's verdicts pick the winners (position order alternating); best-of-N; cot; the
terminal chat with --reasoning; verdict and trace parsing."""

import pytest

import tiny
from conftest import run_cli
from cosmos_llava.errors import CosmosLlavaError
from cosmos_llava.loading import load_model
from cosmos_llava.openai_client import ChatClient, Endpoint
from cosmos_llava.reasoning import (COT_INSTRUCTION, STAGE_CRITERIA, EndpointJudge, ReasoningSettings, conclusion_of,
                                    parse_choice, read_stages, reason, reasoning_conversation, trace_text)
from loopback import ScriptedEndpoint
from test_generation import ScriptedHead

STAGE_TEXTS = {"SUMMARY": "Önce daireyi bulacağım.", "CAPTION": "Zeminde kırmızı bir daire var.",
               "REASONING": "Sorulan şekil daire ve görselde var.", "CONCLUSION": "Evet."}


@pytest.fixture(scope="module")
def loaded(llava_llama3):
    # The four-stage instruction is long in the tiny byte-level tokenizer: give it room (RoPE runs past
    # the config's 512 positions).
    return load_model(str(llava_llama3), context_length=4096)


@pytest.fixture
def question(loaded):
    conversation = loaded.new_conversation()
    conversation.add_user("Görselde bir daire var mı?", [tiny.solid_image()])
    return conversation


def scripted(loaded, segments: list[str]):
    """Make the tiny model emit the segments' tokens in order (each tokenized on its own), then end."""
    tok = loaded.tokenizer
    pieces = [tok(segment, add_special_tokens=False).input_ids for segment in segments]
    script = [t for piece in pieces for t in piece] + [tok.convert_tokens_to_ids("<|eot_id|>")]
    head = ScriptedHead(script, loaded.model.lm_head.out_features)
    return head, [len(piece) for piece in pieces]


@pytest.fixture
def restore_head(loaded):
    original = loaded.model.lm_head
    yield
    loaded.model.lm_head = original


def test_stage_beam_stops_at_each_closing_tag(loaded, question, restore_head):
    # Each stage's text ends with its closing tag; the opening tags are in the prompt (the search opens them).
    segments = [f"{text}</{stage}>" for stage, text in STAGE_TEXTS.items()]
    loaded.model.lm_head, lengths = scripted(loaded, segments)
    seen = []
    result = reason(loaded, question, ReasoningSettings("stage-beam", n=1, stage_max_tokens=60),
                    on_stage=lambda stage, text: seen.append((stage, text)))
    assert result.stages == STAGE_TEXTS and result.answer == "Evet."
    assert seen == list(STAGE_TEXTS.items())
    # Generation stopped at each closing tag: exactly the scripted tokens, nothing after "</CONCLUSION>".
    assert result.generated_tokens == sum(lengths)
    assert (result.comparisons, result.judge_tokens, result.well_formed) == (0, 0, True)
    assert result.text == trace_text(STAGE_TEXTS)


def test_cot_reads_the_conclusion_from_one_trace(loaded, question, restore_head):
    trace = "".join(f"{'' if stage == 'SUMMARY' else '<' + stage + '>'}{text}</{stage}>\n\n"
                    for stage, text in STAGE_TEXTS.items())
    loaded.model.lm_head, lengths = scripted(loaded, [trace])
    result = reason(loaded, question, ReasoningSettings("cot", max_new_tokens=200))
    assert result.stages == STAGE_TEXTS and result.answer == "Evet." and result.well_formed
    assert result.generated_tokens == lengths[0] + 1  # the trace and its end-of-turn token


def test_random_model_still_yields_four_stages_within_budget(loaded, question):
    settings = ReasoningSettings("stage-beam", n=2, temperature=1.0, stage_max_tokens=5, seed=3)
    result = reason(loaded, question, settings)  # the model judges itself (and says nothing readable)
    assert list(result.stages) == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
    assert all(len(result.candidates[stage]) == 2 for stage in result.stages)
    assert result.generated_tokens <= 4 * 2 * 5
    assert result.comparisons == result.unreadable_verdicts <= 4
    for stage, candidates in result.candidates.items():  # no readable verdict: the first (non-empty) one stays
        assert result.stages[stage] == next((c for c in candidates if c), candidates[0])


def always(verdict: str):
    return lambda body, n: (200, verdict, None)


def test_stage_beam_keeps_the_judges_winner(loaded, question):
    judge_server = ScriptedEndpoint(always("İkinci metin daha ayrıntılı olduğu için 2 numaralı metni seçiyorum."))
    client = ChatClient(Endpoint(judge_server.url, "hakem"))
    try:
        settings = ReasoningSettings("stage-beam", n=4, temperature=1.0, stage_max_tokens=6, seed=11)
        result = reason(loaded, question, settings, judge=EndpointJudge(client))
    finally:
        client.close()
        judge_server.stop()
    for stage in ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION"):
        c = result.candidates[stage]
        assert len(set(c)) == 4, c  # sampled candidates differ (seeded)
        # Always "2": c1 beats c0; then (flipped order) c2 vs leader c1 -> "2" is the leader; then c3 wins.
        assert result.stages[stage] == c[3]
    assert result.comparisons == 12 and result.unreadable_verdicts == 0
    requests = judge_server.requests
    assert len(requests) == 12
    summary_flipped = requests[1]["messages"][0]["content"]
    assert summary_flipped[0]["type"] == "image_url"  # the judge sees the image
    text = summary_flipped[-1]["text"]
    assert text.startswith("Soru: Görselde bir daire var mı?") and STAGE_CRITERIA["SUMMARY"] in text
    c = result.candidates["SUMMARY"]
    assert f"Metin 1:\n{c[2]}\n\nMetin 2:\n{c[1]}" in text  # alternate comparisons swap positions
    assert STAGE_CRITERIA["CONCLUSION"] in requests[-1]["messages"][0]["content"][-1]["text"]


def test_best_of_n_and_unreadable_verdicts(loaded, question):
    judge_server = ScriptedEndpoint(lambda body, n: (200, "1" if n < 3 else "Emin değilim.", None))
    client = ChatClient(Endpoint(judge_server.url, "hakem"))
    try:
        settings = ReasoningSettings("best-of-n", n=4, temperature=1.0, max_new_tokens=8, seed=5)
        first = reason(loaded, question, settings, judge=EndpointJudge(client))
        settings.n = 2
        second = reason(loaded, question, settings, judge=EndpointJudge(client))
    finally:
        client.close()
        judge_server.stop()
    traces = first.candidates["trace"]
    assert len(set(traces)) == 4
    # "1" each time: c0 stays against c1; flipped, c2 (shown first) wins; c2 stays against c3.
    assert first.stages == read_stages(traces[2]) and first.comparisons == 3
    assert first.generated_tokens <= 4 * 8
    assert (second.comparisons, second.unreadable_verdicts) == (1, 1)
    assert second.stages == read_stages(second.candidates["trace"][0])


def test_settings_are_checked():
    with pytest.raises(CosmosLlavaError, match="stage-beam with 3 candidates needs a temperature above 0"):
        ReasoningSettings("stage-beam", n=3, temperature=0).validate()
    with pytest.raises(CosmosLlavaError, match="reasoning mode must be one of off, cot, stage-beam, best-of-n"):
        ReasoningSettings("tree").validate()
    ReasoningSettings("stage-beam", n=1, temperature=0).validate()  # one greedy candidate is fine


def test_the_instruction_goes_with_the_last_question(question):
    conversation = reasoning_conversation(question)
    assert conversation.turns[-1].parts[-1] == COT_INSTRUCTION
    assert question.turns[-1].parts[-1] == "Görselde bir daire var mı?"  # the original is unchanged
    assert len(conversation.images) == 1


@pytest.mark.parametrize("reply,choice", [
    ("Daha ayrıntılı olduğu için 2 numaralı metni seçiyorum.", 2),
    ("Since response 1 is more accurate, I choose response 1.", 1),
    ("Metin 1 eksik, Metin 2 daha iyi olduğu için 2 numaralı metni seçiyorum.", 2),
    ("Metin 2'yi seçiyorum.", 2),
    ("1. metni seçiyorum", 1),
    ("Cevap: 1", 1),
    ("2", 2),
    (" 1 \n", 1),
    ("Bilmiyorum.", None),
    ("İkisi de iyi: 1 ve 2 eşit.", None),
])
def test_verdicts(reply, choice):
    assert parse_choice(reply) == choice


def test_reading_sloppy_traces():
    assert read_stages("<SUMMARY>plan</SUMMARY>\n<CAPTION>yarım") == {"SUMMARY": "plan", "CAPTION": "yarım"}
    assert conclusion_of(trace_text(STAGE_TEXTS)) == ("Evet.", True)
    assert conclusion_of("<SUMMARY>plan</SUMMARY><CONCLUSION>Hayır") == ("Hayır", False)
    assert conclusion_of("<SUMMARY>plan</SUMMARY> Cevap: kırmızı") == ("Cevap: kırmızı", False)
    assert conclusion_of("kırmızı") == ("kırmızı", False)


def test_terminal_chat_with_stage_beam(llava_llama3):
    result = run_cli("chat", "--model", llava_llama3, "--image", _scene(llava_llama3), "--prompt", "Zemin ne renk?",
                     "--reasoning", "stage-beam",
                     "--candidates", "2", "--stage-max-tokens", "4", "--context-length", "4096", "--seed", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    for stage in ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION"):
        assert any(line.startswith(f"<{stage}>") for line in lines), result.stderr
    assert "(stage-beam: " in lines[-1] and "comparisons" in lines[-1]
    assert len(result.stdout.strip("\n").splitlines()) <= 1  # only the conclusion goes to stdout

    bad = run_cli("chat", "--model", llava_llama3, "--prompt", "x", "--reasoning", "best-of-n",
                  "--reasoning-temperature", "0")
    assert bad.returncode == 1
    assert bad.stderr.strip() == ("error: best-of-n with 4 candidates needs a temperature above 0 "
                                  "(greedy sampling gives the same candidate N times)")


def _scene(folder):
    path = folder.parent / "scene.png"
    tiny.solid_image().save(path)
    return path


def test_cancel_stops_between_stages_and_comparisons(loaded, question):
    import threading

    cancel = threading.Event()
    settings = ReasoningSettings("stage-beam", n=2, temperature=1.0, stage_max_tokens=4, seed=2)
    result = reason(loaded, question, settings, on_stage=lambda stage, text: cancel.set(), cancel_event=cancel)
    assert result.cancelled and list(result.stages) == ["SUMMARY"]
    assert result.answer == result.stages["SUMMARY"] and list(result.candidates) == ["SUMMARY"]

    cancel.set()  # already set: best-of-n generates its traces, then stops before the first comparison
    result = reason(loaded, question, ReasoningSettings("best-of-n", n=3, temperature=1.0, max_new_tokens=6, seed=2),
                    cancel_event=cancel)
    assert result.cancelled and (result.stages, result.answer, result.comparisons) == ({}, "", 0)
    assert len(result.candidates["trace"]) == 3
