"""The blind side-by-side arena's rules, apart from any UI: one battle per round, two different models
drawn from the registry (sides random), both answering every turn at once, one vote once both have
finished, names revealed only after it. Everything is recorded in the `ArenaStore` (SQLite), which
also enforces the vote rules itself, so no client can vote twice or early by skipping the UI.
"""

from __future__ import annotations

import io
import queue
import random
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from .arena_store import ArenaStore, voter_id
from .conversation import Conversation
from .errors import CosmosLlavaError, first_line
from .generation import GenerationSettings
from .images import load_image
from .registry import Registry

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


def voter_salt(db_path: str | Path) -> str:
    """The server's secret for voter ids: COSMOS_LLAVA_VOTER_SALT, else a random one kept next to the
    database (so one voter keeps one id across restarts, and ids cannot be recomputed elsewhere)."""
    import os

    if os.environ.get("COSMOS_LLAVA_VOTER_SALT"):
        return os.environ["COSMOS_LLAVA_VOTER_SALT"]
    path = Path(f"{db_path}.salt")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(16))
    return path.read_text().strip()


@dataclass
class Battle:
    id: str
    models: tuple[str, str]  # (left = model_a, right = model_b)
    conversations: tuple[Conversation, Conversation]
    turns: int = 0
    finished: bool = True  # the last turn's two answers are complete
    vote: str | None = None


class ArenaSession:
    """One browser session's arena state; the store holds the truth, this only what the page needs.
    (A plain class for Gradio's State: see webapp.ChatSession.)"""

    def __init__(self, voter: str = "", battle: Battle | None = None):
        self.voter, self.battle = voter, battle
        self.cancel = threading.Event()

    def __deepcopy__(self, memo):
        import copy

        return ArenaSession(self.voter, copy.deepcopy(self.battle, memo))


class Arena:
    def __init__(self, registry: Registry, store: ArenaStore, salt: str, rng: random.Random | None = None):
        self.registry, self.store, self.salt = registry, store, salt
        self.rng = rng or random.Random()

    def voter_for(self, session_id: str) -> str:
        return voter_id(session_id, self.salt)

    def start(self, session: ArenaSession) -> Battle:
        model_a, model_b = self.registry.sample_pair(self.rng)
        conversations = []
        for name in (model_a, model_b):
            with self.registry.use(name) as backend:
                conversations.append(backend.new_conversation())
        battle_id = self.store.new_battle(model_a, model_b, session.voter, mode="blind")
        session.battle = Battle(battle_id, (model_a, model_b), tuple(conversations))
        return session.battle

    def turn(self, session: ArenaSession, text: str, image_paths: list[str], settings: GenerationSettings):
        """Ask both models; yields (answer_a, answer_b) as they stream. A failure on either side raises
        after both stopped; the turn then stays unfinished (no vote possible) and a new round is needed."""
        battle = session.battle or self.start(session)
        if battle.vote is not None:
            raise CosmosLlavaError("this battle already has a vote: start a new round")
        if not battle.finished:
            raise CosmosLlavaError("the previous answers are not finished yet")
        images = [load_image(path) for path in image_paths]  # checked before anything is recorded
        if not (text or "").strip() and not images:
            raise CosmosLlavaError("empty message: write some text or attach an image")
        for conversation in battle.conversations:
            conversation.add_user(text or "", images)
        hashes = [self.store.put_image(_png_bytes(image)) for image in images]
        index = self.store.add_turn(battle.id, text or "", hashes)
        battle.turns, battle.finished = battle.turns + 1, False
        session.cancel = threading.Event()
        answers = ["", ""]
        for side, chunk in _both(self.registry, battle, settings, session.cancel):
            answers[side] += chunk
            yield answers[0], answers[1]
        for conversation, answer in zip(battle.conversations, answers):
            conversation.add_assistant(answer.strip())
        self.store.finish_turn(battle.id, index, answers[0].strip(), answers[1].strip())
        battle.finished = True
        yield answers[0].strip(), answers[1].strip()

    def vote(self, session: ArenaSession, winner: str) -> tuple[str, str]:
        """Record the vote; returns the two model names (left, right) to reveal."""
        battle = session.battle
        if battle is None:
            raise CosmosLlavaError("there is no battle to vote on: ask something first")
        if winner not in WINNERS:
            raise CosmosLlavaError(f"unknown vote '{winner}'")
        if not self.store.vote(battle.id, winner, session.voter):
            raise CosmosLlavaError("this battle already has a vote: start a new round")
        battle.vote = winner
        return battle.models


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _both(registry: Registry, battle: Battle, settings: GenerationSettings, cancel: threading.Event):
    """(side, chunk) from both models as they come; each side streams on its own thread."""
    events: queue.Queue = queue.Queue()

    def run(side: int):
        try:
            with registry.use(battle.models[side]) as backend:
                for chunk in backend.stream(battle.conversations[side], settings, cancel):
                    events.put((side, chunk, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            events.put((side, None, exc))
        finally:
            events.put((side, None, None))

    threads = [threading.Thread(target=run, args=(side,), daemon=True) for side in (0, 1)]
    for thread in threads:
        thread.start()
    done, failure = 0, None
    try:
        while done < 2:
            side, chunk, exc = events.get()
            if exc is not None:
                failure = failure or (side, exc)
                cancel.set()  # one side failed: stop the other too, this turn cannot be voted on
            elif chunk is None:
                done += 1
            else:
                yield side, chunk
    finally:
        if done < 2:  # the consumer went away (page closed): stop generating
            cancel.set()
        for thread in threads:
            thread.join(timeout=60)
    if failure is not None:
        side, exc = failure
        # Blind: the message must not name the model; say which side instead.
        message = first_line(exc) if isinstance(exc, CosmosLlavaError) else f"{type(exc).__name__}: {first_line(exc)}"
        for number, name in enumerate(battle.models):
            message = message.replace(f"'{name}'", "AB"[number]).replace(name, "AB"[number])
        raise CosmosLlavaError(f"model {'AB'[side]} failed ({message}); start a new round")
