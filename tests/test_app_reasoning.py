"""The chat tab's reasoning option (LLaVA-CoT, cosmos_llava/reasoning.py): stages shown as Gradio
"thought" messages, only the conclusion kept in the conversation; on a tiny model made to write a known
trace, on the random tiny model (searches), on a streaming endpoint, through the API and in a browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tiny
from loopback import ScriptedEndpoint, served_app
from test_generation import ScriptedHead

from cosmos_llava.generation import GenerationSettings
from cosmos_llava.reasoning import COT_INSTRUCTION, ReasoningSettings, reason
from cosmos_llava.registry import ModelSpec, Registry
from cosmos_llava.webapp import LABELS, ChatSession, build_app, chat_reply, launch_options, reasoning_from

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
TR, EN = LABELS["tr"], LABELS["en"]
MODEL = "Tiny CoT"
# What the model writes after the reply was opened with "<SUMMARY>".
TRACE = ("Plan.</SUMMARY>\n\n<CAPTION>Kırmızı daire.</CAPTION>\n\n<REASONING>Daire kırmızı.</REASONING>\n\n"
         "<CONCLUSION>Evet.</CONCLUSION>")
COT = ReasoningSettings(mode="cot")
GREEDY = GenerationSettings(temperature=0, max_new_tokens=200)


def thought(title: str, content: str, status: str = "done") -> dict:
    return {"role": "assistant", "content": content, "metadata": {"title": title, "status": status}}


THOUGHTS_TR = [thought("Özet", "Plan."), thought("Görsel betimleme", "Kırmızı daire."),
               thought("Akıl yürütme", "Daire kırmızı.")]
REPLY_TR = [*THOUGHTS_TR, {"role": "assistant", "content": "Evet."}]


@pytest.fixture(scope="module")
def cot_registry(llava_llama3):
    # The four-stage instruction is long in the tiny byte-level tokenizer: a context past the tiny
    # model's 512 positions (RoPE runs on).
    return Registry([ModelSpec(MODEL, model=str(llava_llama3), context_length=2048)], max_resident=1)


@pytest.fixture(scope="module")
def loaded(cot_registry):
    with cot_registry.use(MODEL) as backend:
        return backend.loaded  # stays resident: the registry has no other model


@pytest.fixture
def scripted(loaded):
    """The model writes TRACE, then <|eot_id|> (set `.step = 0` to have it write it again)."""
    tok = loaded.tokenizer
    script = tok(TRACE, add_special_tokens=False).input_ids + [tok.convert_tokens_to_ids("<|eot_id|>")]
    original = loaded.model.lm_head
    loaded.model.lm_head = head = ScriptedHead(script, original.out_features)
    yield head
    loaded.model.lm_head = original


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "kirmizi.png"
    tiny.solid_image((200, 30, 30), size=(48, 48)).save(path)
    return str(path)


def steps_of(*args, **kwargs) -> list:
    return list(chat_reply(*args, **kwargs))


def statuses(history: list[dict]) -> list[tuple[str, str]]:
    return [(m["metadata"]["title"], m["metadata"]["status"]) for m in history if m.get("metadata")]


def test_cot_reply_shows_stages_live_and_keeps_the_conclusion(cot_registry, scripted, image):
    session = ChatSession()
    steps = steps_of(cot_registry, session, [], MODEL, "Bu daire kırmızı mı?", [image], GREEDY, TR, reasoning=COT)
    history, notice, error = steps[-1]
    assert error is None
    assert history == [{"role": "user", "content": {"path": image}},
                       {"role": "user", "content": "Bu daire kırmızı mı?"}, *REPLY_TR]
    turns = session.conversation.turns
    assert [(t.role, t.text) for t in turns] == [("user", "Bu daire kırmızı mı?"), ("assistant", "Evet.")]
    assert len(turns[0].images) == 1  # the instruction went to the model, not into the conversation
    tokens = len(scripted.script)  # the trace and its end-of-turn token
    assert notice == f"Akıl yürütme (LLaVA-CoT): {tokens} token üretildi"
    assert all(n is None for _, n, _ in steps[:-1])

    # live: the first step shows the summary being written; each stage is "pending" while written,
    # "done" once the next one starts; the conclusion appears as an ordinary message as it comes
    assert steps[0][0][2:] == [thought("Özet", "", "pending")]
    pending = []
    for shown, _, _ in steps:
        for title, status in statuses(shown):
            if status == "pending" and title not in pending:
                pending.append(title)
    assert pending == ["Özet", "Görsel betimleme", "Akıl yürütme"]
    assert any(shown[2:5] == THOUGHTS_TR and shown[5:] == [] for shown, _, _ in steps)  # between stages
    assert all(len(shown) <= 6 and shown[-1]["role"] == "assistant" for shown, _, _ in steps)

    # a second turn: the model sees the first answer as its conclusion only
    scripted.step = 0
    history2, notice, error = steps_of(cot_registry, session, history, MODEL, "Emin misin?", [], GREEDY, TR,
                                       reasoning=COT)[-1]
    assert error is None and notice == f"Akıl yürütme (LLaVA-CoT): {tokens} token üretildi"
    assert history2 == [*history, {"role": "user", "content": "Emin misin?"}, *REPLY_TR]
    assert [(t.role, t.text) for t in session.conversation.turns] == [
        ("user", "Bu daire kırmızı mı?"), ("assistant", "Evet."), ("user", "Emin misin?"), ("assistant", "Evet.")]

    # regenerate replaces the whole reply, stage blocks included: with reasoning ...
    scripted.step = 0
    again, _, error = steps_of(cot_registry, session, history2, MODEL, "", [], GREEDY, TR, regenerate=True,
                               reasoning=COT)[-1]
    assert error is None and again == history2
    # ... and without: the four messages make way for one (the model writes the trace as plain text)
    scripted.step = 0
    plain, notice, error = steps_of(cot_registry, session, again, MODEL, "", [], GREEDY, TR, regenerate=True)[-1]
    assert error is None and notice is None
    assert plain == [*history2[:-4], {"role": "assistant", "content": TRACE}]
    assert [t.text for t in session.conversation.turns] == ["Bu daire kırmızı mı?", "Evet.", "Emin misin?", TRACE]


def test_english_stage_names(cot_registry, scripted):
    history, notice, error = steps_of(cot_registry, ChatSession(), [], MODEL, "Is it red?", [], GREEDY, EN,
                                      reasoning=COT)[-1]
    assert error is None and notice.startswith("Reasoning (LLaVA-CoT): ") and notice.endswith(" tokens generated")
    assert history[1:] == [thought("Summary", "Plan."), thought("Image description", "Kırmızı daire."),
                           thought("Reasoning", "Daire kırmızı."), {"role": "assistant", "content": "Evet."}]


def test_stage_beam_settles_stage_by_stage(cot_registry, loaded, image):
    """The random tiny model, two candidates per stage, judged by itself; the same search run directly
    (seeded sampling, greedy judge) gives the stages, answer and figures the chat shows."""
    settings = ReasoningSettings(mode="stage-beam", n=2, temperature=1.0, top_p=1.0, stage_max_tokens=8, seed=5)
    session = ChatSession()
    steps = steps_of(cot_registry, session, [], MODEL, "Ne görüyorsun?", [image], GREEDY, TR, reasoning=settings)
    history, notice, error = steps[-1]
    assert error is None

    conversation = loaded.new_conversation()
    conversation.add_user("Ne görüyorsun?", [image])
    result = reason(loaded, conversation, settings)
    assert result.comparisons >= 1  # sampled candidates differ
    stages = result.stages
    assert history[2:] == [thought("Özet", stages["SUMMARY"]), thought("Görsel betimleme", stages["CAPTION"]),
                           thought("Akıl yürütme", stages["REASONING"]),
                           {"role": "assistant", "content": result.answer}]
    assert session.conversation.turns[-1].role == "assistant"
    assert session.conversation.turns[-1].text == result.answer
    expected = (f"Akıl yürütme (LLaVA-CoT): {result.generated_tokens} token üretildi; "
                f"yargıç {result.judge_tokens} token, {result.comparisons} karşılaştırma")
    if result.unreadable_verdicts:
        expected += f"; {result.unreadable_verdicts} karar okunamadı"
    assert notice == expected
    # each stage shows as pending (empty) while searched, then settled; the conclusion comes last
    assert [statuses(shown) for shown, _, _ in steps[:-1]] == [
        [("Özet", "pending")],
        [("Özet", "done"), ("Görsel betimleme", "pending")],
        [("Özet", "done"), ("Görsel betimleme", "done"), ("Akıl yürütme", "pending")],
        [("Özet", "done"), ("Görsel betimleme", "done"), ("Akıl yürütme", "done")],
    ]
    assert steps[1][0][2]["content"] == stages["SUMMARY"] and steps[1][0][3]["content"] == ""


def test_stop_ends_a_search_between_stages(cot_registry, loaded):
    settings = ReasoningSettings(mode="stage-beam", n=1, temperature=0, stage_max_tokens=8)
    session = ChatSession()
    steps = []
    for step in chat_reply(cot_registry, session, [], MODEL, "Anlat.", [], GREEDY, TR, reasoning=settings):
        steps.append(step)
        session.cancel.set()  # the Stop button, before the search has started
    history, notice, error = steps[-1]
    conversation = loaded.new_conversation()
    conversation.add_user("Anlat.")
    summary = reason(loaded, conversation, settings).stages["SUMMARY"]
    # the summary settles, the search stops before the caption; the last stage standing is the answer
    assert (error, notice) == (None, None)
    assert history == [{"role": "user", "content": "Anlat."}, {"role": "assistant", "content": summary}]
    assert [(t.role, t.text) for t in session.conversation.turns] == [("user", "Anlat."), ("assistant", summary)]


def test_best_of_n_and_settings_from_the_ui(cot_registry, loaded):
    settings = reasoning_from("best-of-n", 2.0, GenerationSettings(temperature=1.0, top_p=1.0, max_new_tokens=12))
    assert (settings.mode, settings.n, settings.temperature, settings.max_new_tokens, settings.stage_max_tokens) == \
        ("best-of-n", 2, 1.0, 12, 12)
    settings.seed = 3
    history, notice, error = steps_of(cot_registry, ChatSession(), [], MODEL, "Anlat.", [], GREEDY, TR,
                                      reasoning=settings)[-1]
    conversation = loaded.new_conversation()
    conversation.add_user("Anlat.")
    result = reason(loaded, conversation, settings)
    assert error is None and history[-1] == {"role": "assistant", "content": result.answer}
    assert f"{result.generated_tokens} token üretildi; yargıç {result.judge_tokens} token, " \
           f"{result.comparisons} karşılaştırma" in notice

    assert reasoning_from("off", 4, GREEDY) is None and reasoning_from(None, 4, GREEDY) is None
    assert reasoning_from("stage-beam", 3, GenerationSettings(max_new_tokens=512)).stage_max_tokens == 256
    from cosmos_llava.errors import CosmosLlavaError

    with pytest.raises(CosmosLlavaError, match="^the number of candidates must be between 1 and 8, got 9$"):
        reasoning_from("best-of-n", 9, GREEDY)
    with pytest.raises(CosmosLlavaError, match="^stage-beam with 4 candidates needs a temperature above 0"):
        reasoning_from("stage-beam", 4, GREEDY)
    with pytest.raises(CosmosLlavaError, match="^reasoning mode must be one of off, cot, stage-beam, best-of-n"):
        reasoning_from("think-hard", 4, GREEDY)


def test_a_failed_reasoned_reply_leaves_everything_as_it_was(cot_registry, scripted):
    session = ChatSession()
    history, _, error = steps_of(cot_registry, session, [], MODEL, "Bu ne?", [], GREEDY, TR, reasoning=COT)[-1]
    assert error is None and history[-1] == {"role": "assistant", "content": "Evet."}
    too_long = "kırmızı mavi yeşil " * 1500
    for settings in (COT, ReasoningSettings(mode="stage-beam", n=2), ReasoningSettings(mode="best-of-n", n=2)):
        steps = steps_of(cot_registry, session, history, MODEL, too_long, [], GREEDY, TR, reasoning=settings)
        shown, notice, error = steps[-1]
        assert error.startswith("the message is too long: ") and error.endswith("context window is 2048")
        assert shown == history and notice is None
        assert [t.text for t in session.conversation.turns] == ["Bu ne?", "Evet."]
    # a failed regenerate puts the previous answer back
    steps = steps_of(cot_registry, session, history, MODEL, "", [], GenerationSettings(temperature=-1), TR,
                     regenerate=True, reasoning=COT)
    assert steps[-1] == (history, None, "temperature must be >= 0, got -1")
    assert [t.text for t in session.conversation.turns] == ["Bu ne?", "Evet."]


# ------------------------------------------------------------------------------------------ endpoint

def test_endpoint_cot_and_searches_refused(image):
    with ScriptedEndpoint(lambda body, n: (200, "<SUMMARY>" + TRACE, None), completion_tokens=42) as endpoint:
        registry = Registry([ModelSpec("Uzak", endpoint=endpoint.url, endpoint_model="m", timeout_s=10)])
        session = ChatSession()
        history, notice, error = steps_of(registry, session, [], "Uzak", "Bu daire kırmızı mı?", [image], GREEDY,
                                          TR, reasoning=COT)[-1]
        assert error is None and notice == "Akıl yürütme (LLaVA-CoT): 42 token üretildi"
        assert history[1:] == [{"role": "user", "content": "Bu daire kırmızı mı?"}, *REPLY_TR]
        assert [(t.role, t.text) for t in session.conversation.turns] == [("user", "Bu daire kırmızı mı?"),
                                                                           ("assistant", "Evet.")]
        question = endpoint.requests[0]["messages"][-1]["content"]
        assert [part["type"] for part in question] == ["image_url", "text", "text"]
        assert [part["text"] for part in question[1:]] == ["Bu daire kırmızı mı?", COT_INSTRUCTION]

        for mode in ("stage-beam", "best-of-n"):
            settings = ReasoningSettings(mode=mode, n=2)
            shown, notice, error = steps_of(registry, session, history, "Uzak", "Emin misin?", [], GREEDY, TR,
                                            reasoning=settings)[-1]
            assert (shown, notice, error) == (history, None, TR["reasoning_needs_local"])
        assert len(session.conversation.turns) == 2 and len(endpoint.requests) == 1  # nothing changed, nothing sent
        assert EN["reasoning_needs_local"] == ("This reasoning search needs a local model; endpoint models can only "
                                               "give the four-stage answer (CoT).")


# ------------------------------------------------------------------------------------- API, browser

def test_reasoning_through_the_api(cot_registry, scripted, tmp_path):
    from gradio_client import Client

    with served_app(build_app(cot_registry, str(tmp_path / "arena.db")), launch_options()) as url:
        client = Client(url, verbose=False)
        history, box = client.predict({"text": "Bu daire kırmızı mı?", "files": []}, [], MODEL, 0.0, 0.9, 200, "cot",
                                      4, api_name="/chat")
        reply = [(m["role"], (m.get("metadata") or {}).get("title"), (m.get("metadata") or {}).get("status"),
                  m["content"]) for m in history[1:]]
        assert [r[:3] for r in reply] == [("assistant", "Özet", "done"), ("assistant", "Görsel betimleme", "done"),
                                          ("assistant", "Akıl yürütme", "done"), ("assistant", None, None)]
        assert "Evet." in json.dumps(reply[-1][3], ensure_ascii=False)
        scripted.step = 0
        again, box = client.predict(history, MODEL, 0.0, 0.9, 200, "cot", 4, api_name="/regenerate")
        assert len(again) == len(history) == 5
        refused, box = client.predict({"text": "Peki?", "files": []}, history, MODEL, 0.0, 0.9, 200, "stage-beam", 4,
                                      api_name="/chat")  # greedy search: refused with a warning
        assert len(refused) == 5 and box["text"] == "Peki?"


def test_reasoning_in_a_real_browser(browser_page, cot_registry, scripted, tmp_path):
    with served_app(build_app(cot_registry, str(tmp_path / "arena.db")), launch_options()) as url:
        page = browser_page
        page.goto(url)
        page.locator("#chat-settings").get_by_text(TR["settings"]).click()
        assert page.locator("#chat-candidates input[type=number]").is_disabled()
        candidates_disabled = "() => document.querySelector('#chat-candidates input[type=number]').disabled"
        for mode, disabled in (("stage-beam", False), ("cot", True)):  # N is for the searches only
            page.locator("#chat-reasoning input").click()
            page.get_by_role("option", name=TR["reasoning_modes"][mode]).click()
            page.wait_for_function(f"() => ({candidates_disabled})() === {str(disabled).lower()}", timeout=15_000)
        box = page.locator("#chat-input")
        box.locator("textarea").fill("Bu daire kırmızı mı?")
        box.locator("textarea").press("Enter")
        page.wait_for_function("() => document.querySelector('#chat-history').innerText.includes('Evet.')",
                               timeout=90_000)
        chat = page.locator("#chat-history")
        page.wait_for_timeout(1000)
        text = chat.inner_text()
        for title in ("Özet", "Görsel betimleme", "Akıl yürütme"):
            assert title in text
        assert "<CONCLUSION>" not in text and "</SUMMARY>" not in text
        assert "Plan." not in text  # the finished stages are folded away ...
        chat.get_by_text("Özet").click()
        page.wait_for_function("() => document.querySelector('#chat-history').innerText.includes('Plan.')",
                               timeout=15_000)  # ... and open on a click
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "reasoning.png"), full_page=True)
