"""The Gradio app (app.py, cosmos_llava/webapp.py): chat logic on a real tiny model, and the app in a
real browser."""

from __future__ import annotations

from pathlib import Path

import pytest

import tiny
from loopback import served_app

from cosmos_llava.generation import GenerationSettings
from cosmos_llava.registry import ModelSpec, Registry
from cosmos_llava.webapp import LABELS, ChatSession, build_app, chat_reply, launch_options

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
GREEDY = GenerationSettings(temperature=0, max_new_tokens=8)
TR = LABELS["tr"]


@pytest.fixture(scope="module")
def registry(llava_llama3, llava_mistral):
    return Registry([ModelSpec("Tiny LLaMA", model=str(llava_llama3)), ModelSpec("Tiny Mistral", model=str(llava_mistral))],
                    max_resident=2)


@pytest.fixture
def images(tmp_path):
    paths = []
    for name, colour in (("kirmizi.png", (200, 30, 30)), ("mavi.png", (30, 30, 200))):
        tiny.solid_image(colour, size=(48, 48)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    (tmp_path / "bozuk.png").write_text("bu bir görsel değil", encoding="utf-8")
    return paths + [str(tmp_path / "bozuk.png")]


def last(steps):
    steps = list(steps)
    return steps[-1]


def test_two_turns_with_images_at_both(registry, images):
    session = ChatSession()
    history, notice, error = last(chat_reply(registry, session, [], "Tiny LLaMA", "Bu ne renk?", [images[0]], GREEDY, TR))
    assert error is None and notice is None
    history, _, error = last(chat_reply(registry, session, history, "Tiny LLaMA", "Peki bu?", [{"path": images[1]}],
                                        GREEDY, TR))
    assert error is None
    assert [(m["role"], m["content"] if isinstance(m["content"], str) else "file") for m in history[:-1]] == [
        ("user", "file"), ("user", "Bu ne renk?"), ("assistant", history[2]["content"]),
        ("user", "file"), ("user", "Peki bu?")]
    assert history[0]["content"] == {"path": images[0]} and history[3]["content"] == {"path": images[1]}
    turns = session.conversation.turns
    assert [t.role for t in turns] == ["user", "assistant", "user", "assistant"]
    assert [len(t.images) for t in turns] == [1, 0, 1, 0]
    assert turns[3].text == history[-1]["content"] and history[-1]["content"]


def test_errors_leave_everything_as_it_was(registry, images):
    session = ChatSession()
    history, _, _ = last(chat_reply(registry, session, [], "Tiny LLaMA", "Merhaba", [], GREEDY, TR))
    before = [t.render() for t in session.conversation.turns]
    shown, _, error = last(chat_reply(registry, session, history, "Tiny LLaMA", "Bu ne?", [images[2]], GREEDY, TR))
    assert error == f"not an image file (unrecognised format): {images[2]}"
    assert shown == history and [t.render() for t in session.conversation.turns] == before
    shown, _, error = last(chat_reply(registry, session, history, "Tiny LLaMA", "  ", [], GREEDY, TR))
    assert error == TR["empty"] and shown == history
    too_long = "kırmızı mavi yeşil " * 400
    shown, _, error = last(chat_reply(registry, session, history, "Tiny LLaMA", too_long, [], GREEDY, TR))
    assert error.startswith("the message is too long: ") and shown == history
    assert [t.render() for t in session.conversation.turns] == before


def test_regenerate_stop_and_model_change(registry, images):
    session = ChatSession()
    history, _, _ = last(chat_reply(registry, session, [], "Tiny LLaMA", "Anlat.", [images[0]], GREEDY, TR))
    first = history[-1]["content"]
    again, _, error = last(chat_reply(registry, session, history, "Tiny LLaMA", "", [], GREEDY, TR, regenerate=True))
    assert error is None and again[-1]["content"] == first and len(again) == len(history)  # greedy: same reply
    assert len(session.conversation.turns) == 2

    long = GenerationSettings(temperature=0, max_new_tokens=200)
    steps = chat_reply(registry, session, again, "Tiny LLaMA", "Uzun anlat.", [], long, TR)
    seen = 0
    for shown, _, error in steps:
        seen += 1
        if seen == 3:
            session.cancel.set()  # the Stop button
    assert error is None
    assert session.conversation.turns[-1].role == "assistant"
    assert shown[-1]["content"] == session.conversation.turns[-1].text  # the partial reply is kept
    assert len(shown[-1]["content"]) < 200

    shown, notice, error = last(chat_reply(registry, session, shown, "Tiny Mistral", "Merhaba", [], GREEDY, TR))
    assert notice is None and error is None  # the notice comes with the first step
    first_step = next(chat_reply(registry, ChatSession(model="Tiny LLaMA", conversation=session.conversation),
                                 shown, "Tiny Mistral", "Selam", [], GREEDY, TR))
    assert first_step[1] == TR["model_changed"] and first_step[0][0] == {"role": "user", "content": "Selam"}


# The n-th reply is there and has stopped changing for a second (the stream ended).
REPLY_DONE = """(n) => {
    const bots = [...document.querySelectorAll('#chat-history [data-testid="bot"]')];
    if (bots.length < n) return false;
    const text = bots[n - 1].innerText;
    if (text.trim() && window.__lastReply === text) { window.__stable = (window.__stable || 0) + 1; }
    else { window.__stable = 0; window.__lastReply = text; }
    return window.__stable >= 5;
}"""


def wait_for_reply(page, n: int) -> None:
    page.wait_for_function(REPLY_DONE, arg=n, polling=200, timeout=90_000)


def test_app_without_models_says_how_to_add_them(browser_page, tmp_path):
    with served_app(build_app(None, str(tmp_path / "arena.db")), launch_options(), queue=False) as url:
        browser_page.goto(url)
        text = browser_page.locator("#no-models").inner_text(timeout=30_000)
        assert "Henüz model yok" in text and "python app.py --models models.yaml" in text


def test_chat_in_a_real_browser(browser_page, registry, images, tmp_path):
    with served_app(build_app(registry, str(tmp_path / "arena.db")), launch_options()) as url:
        page = browser_page
        page.goto(url)
        box = page.locator("#chat-input")
        box.locator("input[type=file]").set_input_files(images[0])
        box.locator("textarea").fill("Bu görselde ne var?")
        page.wait_for_timeout(500)  # the upload finishes
        box.locator("textarea").press("Enter")
        wait_for_reply(page, 1)
        assert page.locator("#chat-history img").count() >= 1  # the image shows in the conversation
        box.locator("textarea").fill("Peki zemin ne renk?")
        box.locator("textarea").press("Enter")
        wait_for_reply(page, 2)
        users = page.locator('#chat-history [data-testid="user"]')
        assert "Peki zemin ne renk?" in users.last.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)

        # a broken upload: a one-line warning, and the typed message stays in the box
        box.locator("input[type=file]").set_input_files(images[2])
        box.locator("textarea").fill("Bu ne?")
        page.wait_for_timeout(500)
        box.locator("textarea").press("Enter")
        warning = page.locator(".toast-body, [data-testid='toast-body']").first
        warning.wait_for(timeout=30_000)
        assert "not an image file" in warning.inner_text()
        page.wait_for_function("() => document.querySelector('#chat-input textarea').value === 'Bu ne?'",
                               timeout=15_000)
        assert page.locator('#chat-history [data-testid="bot"]').count() == 2


# --------------------------------------------------------------------------------------------- arena

@pytest.fixture
def arena(registry, tmp_path):
    from cosmos_llava.arena import Arena
    from cosmos_llava.arena_store import ArenaStore

    import random

    return Arena(registry, ArenaStore(tmp_path / "arena.db"), salt="test-salt", rng=random.Random(1))


def test_arena_battle_vote_once_and_reveal(arena, images):
    from cosmos_llava.arena import ArenaSession
    from cosmos_llava.errors import CosmosLlavaError

    session = ArenaSession(voter=arena.voter_for("session-1"))
    assert session.voter != "session-1" and len(session.voter) == 64
    steps = list(arena.turn(session, "Bu ne renk?", [images[0]], GREEDY))
    battle = session.battle
    assert set(battle.models) == {"Tiny LLaMA", "Tiny Mistral"}
    assert steps[-1][0] and steps[-1][1] and battle.finished
    list(arena.turn(session, "Peki bu?", [images[1]], GREEDY))
    stored = arena.store.battle(battle.id)
    assert [t["user_text"] for t in stored["turns"]] == ["Bu ne renk?", "Peki bu?"]
    assert all(len(t["image_hashes"]) == 1 for t in stored["turns"])
    assert arena.vote(session, "model_b") == battle.models  # names come only with the vote
    with pytest.raises(CosmosLlavaError, match="^this battle already has a vote: start a new round$"):
        arena.vote(session, "model_a")
    with pytest.raises(CosmosLlavaError, match="^this battle already has a vote: start a new round$"):
        list(arena.turn(session, "Bir soru daha", [], GREEDY))
    assert arena.store.rating_battles() == [{"model_a": battle.models[0], "model_b": battle.models[1],
                                             "winner": "model_b"}]


def test_arena_cannot_vote_before_answers_finish(arena):
    from cosmos_llava.arena import ArenaSession
    from cosmos_llava.errors import CosmosLlavaError

    session = ArenaSession(voter=arena.voter_for("s2"))
    steps = arena.turn(session, "Uzun anlat.", [], GenerationSettings(temperature=0, max_new_tokens=64))
    next(steps)  # streaming has begun: the turn is recorded, not finished
    with pytest.raises(CosmosLlavaError):
        arena.vote(session, "tie")
    assert arena.store.rating_battles() == []
    list(steps)
    assert arena.vote(session, "tie")


def test_arena_failure_does_not_reveal_names(registry, tmp_path, images):
    from cosmos_llava.arena import Arena, ArenaSession
    from cosmos_llava.arena_store import ArenaStore
    from cosmos_llava.errors import CosmosLlavaError

    broken = Registry([ModelSpec("Tiny LLaMA", model=registry.spec("Tiny LLaMA").model),
                       ModelSpec("Gizli Uzak", endpoint="http://127.0.0.1:9/v1", endpoint_model="m", timeout_s=3)],
                      max_resident=1)
    arena = Arena(broken, ArenaStore(tmp_path / "a.db"), salt="s")
    session = ArenaSession(voter=arena.voter_for("s3"))
    with pytest.raises(CosmosLlavaError) as info:
        list(arena.turn(session, "Merhaba", [], GREEDY))
    message = str(info.value)
    assert "Gizli Uzak" not in message and "Tiny LLaMA" not in message
    assert message.startswith("model ") and message.endswith("; start a new round")
    with pytest.raises(CosmosLlavaError):
        arena.vote(session, "model_a")  # an unfinished turn cannot be voted on


def test_arena_and_leaderboard_in_a_real_browser(browser_page, registry, tmp_path):
    with served_app(build_app(registry, str(tmp_path / "arena.db"), bootstrap_rounds=20), launch_options()) as url:
        page = browser_page
        page.goto(url)
        page.get_by_role("tab", name=TR["arena"]).click()
        assert page.locator("#vote-a").is_disabled()
        box = page.locator("#arena-input")
        box.locator("textarea").fill("Merhaba, kendini tanıtır mısın?")
        box.locator("textarea").press("Enter")
        page.wait_for_function("""() => !document.querySelector('#vote-a').disabled""", timeout=90_000)
        for side in ("a", "b"):
            assert page.locator(f'#arena-{side} [data-testid="bot"]').last.inner_text().strip()
        assert "Tiny" not in page.locator("#arena-a").inner_text() + page.locator("#arena-b").inner_text()
        page.locator("#vote-a").click()
        reveal = page.locator("#arena-reveal")
        page.wait_for_function("() => document.querySelector('#arena-reveal').innerText.includes('Tiny')",
                               timeout=30_000)
        assert "Tiny LLaMA" in reveal.inner_text() and "Tiny Mistral" in reveal.inner_text()
        assert page.locator("#vote-b").is_disabled()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "arena.png"), full_page=True)

        page.get_by_role("tab", name=TR["leaderboard"]).click()
        page.wait_for_function("() => document.querySelector('#leaderboard-table').innerText.includes('Tiny')",
                               timeout=60_000)
        table = page.locator("#leaderboard-table").inner_text()
        assert "Tiny LLaMA" in table and "Tiny Mistral" in table
        assert "1 kör oy, 2 model" in page.locator("#leaderboard-summary").inner_text()
        page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)


def test_export_battles_then_leaderboard_cli(tmp_path):
    from conftest import run_cli

    from cosmos_llava.arena_store import ArenaStore, voter_id

    store = ArenaStore(tmp_path / "arena.db")
    voter = voter_id("s", "salt")
    for model_a, model_b, winner in [("A", "B", "model_a"), ("B", "C", "tie"), ("A", "C", "model_a"), ("C", "B", "model_b")]:
        battle = store.new_battle(model_a, model_b, voter)
        store.finish_turn(battle, store.add_turn(battle, "soru", []), "x", "y")
        store.vote(battle, winner, voter)
    out = tmp_path / "battles.jsonl"
    result = run_cli("export-battles", "--db", tmp_path / "arena.db", "--out", out)
    assert (result.returncode, result.stderr) == (0, f"4 blind battles written to {out}\n")
    from_db = run_cli("leaderboard", "--db", tmp_path / "arena.db", "--bootstrap", "10", "--json")
    from_file = run_cli("leaderboard", "--battles", out, "--bootstrap", "10", "--json")
    assert from_db.returncode == 0 and from_db.stdout == from_file.stdout
    assert run_cli("export-battles", "--db", tmp_path / "nope.db", "--out", out).stderr == \
        f"error: --db {tmp_path / 'nope.db'}: no such file\n"


def test_chat_and_arena_through_the_api(registry, images, tmp_path):
    """People can script evaluations: gradio_client drives the chat and a whole arena battle."""
    from gradio_client import Client, handle_file

    with served_app(build_app(registry, str(tmp_path / "arena.db"), bootstrap_rounds=10), launch_options()) as url:
        client = Client(url, verbose=False)
        history, box = client.predict({"text": "Bu ne renk?", "files": [handle_file(images[0])]}, [], "Tiny LLaMA",
                                      0.0, 0.9, 16, api_name="/chat")
        assert [m["role"] for m in history] == ["user", "user", "assistant"] and history[-1]["content"]
        assert not history[-1].get("metadata")
        # inputs: message, history, model, temperature, top_p, max_new_tokens, reasoning, candidates; the
        # last two default to reasoning off (as above, a caller from before they existed), given here
        client.predict(api_name="/clear")
        history, box = client.predict({"text": "Merhaba", "files": []}, [], "Tiny LLaMA", 0.0, 0.9, 16, "off", 4,
                                      api_name="/chat")
        assert [m["role"] for m in history] == ["user", "assistant"] and not history[-1].get("metadata")
        again, box = client.predict(history, "Tiny LLaMA", 0.0, 0.9, 16, "off", 4, api_name="/regenerate")
        assert again == history  # greedy: the same single reply
        left, right, box, *buttons = client.predict({"text": "Merhaba", "files": []}, [], [], 0.0, 16,
                                                    api_name="/arena_send")
        assert left[-1]["role"] == right[-1]["role"] == "assistant"
        reveal = client.predict(api_name="/vote_model_a")[0]
        assert "Tiny LLaMA" in reveal and "Tiny Mistral" in reveal
        again = client.predict(api_name="/vote_model_b")[0]
        assert again == reveal or "Tiny" not in str(again)  # the second vote is refused, not recorded
        from cosmos_llava.arena_store import ArenaStore

        assert [b["winner"] for b in ArenaStore(tmp_path / "arena.db").rating_battles()] == ["model_a"]
        summary, table, *_ = client.predict(api_name="/leaderboard")
        assert "1 kör oy, 2 model" in summary and "Tiny LLaMA" in table


def test_both_languages_label_everything():
    assert set(LABELS["tr"]) == set(LABELS["en"])
    from cosmos_llava.webapp import NO_MODELS

    assert set(NO_MODELS) == set(LABELS)
