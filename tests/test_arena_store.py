"""The arena store on real SQLite files: one vote per battle under races, threads and processes,
votes surviving a SIGKILL, schema migration, images by hash, salted voter ids, refusals, export."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import multiprocessing
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from cosmos_llava.arena_store import SCHEMA_VERSION, WINNERS, ArenaStore, voter_id
from cosmos_llava.errors import CosmosLlavaError, ImageError

REPO = Path(__file__).resolve().parent.parent
VOTER = voter_id("session-1", "test-salt")
ISO_UTC_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "arena.db"


@pytest.fixture
def store(db_path):
    with ArenaStore(db_path) as store:
        yield store


def raw(path) -> sqlite3.Connection:
    """A plain sqlite3 connection, to look at the file without the store."""
    return sqlite3.connect(path, isolation_level=None)


def png(size=(8, 6), color=(255, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def finished_battle(store, model_a="cosmos-llava", model_b="llava-1.5", mode="blind", voter=VOTER) -> str:
    battle = store.new_battle(model_a, model_b, voter, mode=mode)
    turn = store.add_turn(battle, "Görselde ne var?")
    store.finish_turn(battle, turn, "Bir kedi.", "Bir köpek.")
    return battle


def vote_count(path) -> int:
    with raw(path) as conn:
        return conn.execute("SELECT count(*) FROM votes").fetchone()[0]


# -- the basics --------------------------------------------------------------------------------------


def test_fresh_database_is_current_in_wal_mode(store, db_path):
    assert store.schema_version == SCHEMA_VERSION
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"battles", "turns", "images", "votes"} <= tables


def test_battle_with_turns_images_and_vote(store):
    image = store.put_image(png())
    battle = store.new_battle("cosmos-llava", "llava-1.5", VOTER)
    assert re.fullmatch(r"[0-9a-f]{32}", battle)
    assert store.add_turn(battle, "Görselde ne var?", [image]) == 0
    store.finish_turn(battle, 0, "Bir kedi.", "Bir köpek.")
    assert store.add_turn(battle, "Rengi ne?") == 1
    store.finish_turn(battle, 1, "Kırmızı.", "Mavi.")
    assert store.vote(battle, "model_a", VOTER) is True

    record = store.battle(battle)
    assert {k: record[k] for k in ("id", "mode", "model_a", "model_b", "voter", "status")} == {
        "id": battle, "mode": "blind", "model_a": "cosmos-llava", "model_b": "llava-1.5", "voter": VOTER,
        "status": "voted",
    }
    assert [(t["index"], t["user_text"], t["image_hashes"], t["answer_a"], t["answer_b"], t["finished"])
            for t in record["turns"]] == [
        (0, "Görselde ne var?", [image], "Bir kedi.", "Bir köpek.", True),
        (1, "Rengi ne?", [], "Kırmızı.", "Mavi.", True),
    ]
    assert record["vote"]["winner"] == "model_a" and record["vote"]["voter"] == VOTER
    for created in [record["created"], record["vote"]["created"], *(t["created"] for t in record["turns"])]:
        assert ISO_UTC_MS.fullmatch(created)
    assert store.battle(store.new_battle("a", "b", VOTER))["vote"] is None


# -- one vote per battle -----------------------------------------------------------------------------


def test_second_vote_is_refused_and_first_kept(store, db_path):
    battle = finished_battle(store)
    assert store.vote(battle, "tie", VOTER) is True
    assert store.vote(battle, "model_b", VOTER) is False
    assert store.battle(battle)["vote"]["winner"] == "tie"
    assert vote_count(db_path) == 1


def test_database_itself_allows_one_vote_per_battle(store, db_path):
    battle = finished_battle(store)
    store.vote(battle, "tie", VOTER)
    with raw(db_path) as conn, pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("INSERT INTO votes (battle_id, winner, voter, created) VALUES (?, 'model_a', ?, 'now')",
                     [battle, VOTER])


def test_racing_votes_on_one_battle_store_exactly_one(store, db_path):
    battle = finished_battle(store)
    barrier = threading.Barrier(20)
    results: dict[int, bool] = {}

    def attempt(n):
        barrier.wait()
        results[n] = store.vote(battle, WINNERS[n % len(WINNERS)], VOTER)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, accepted in results.items() if accepted]
    assert len(results) == 20 and len(winners) == 1
    assert vote_count(db_path) == 1
    assert store.battle(battle)["vote"]["winner"] == WINNERS[winners[0] % len(WINNERS)]


def vote_many(store: ArenaStore, voter_number: int, votes: int) -> list[str]:
    voter = voter_id(f"session-{voter_number}", "test-salt")
    battles = []
    for n in range(votes):
        battle = finished_battle(store, f"model-{n % 3}", f"model-{n % 3 + 1}", voter=voter)
        assert store.vote(battle, WINNERS[n % len(WINNERS)], voter)
        battles.append(battle)
    return battles


def test_parallel_voter_threads_lose_no_vote(store, db_path):
    battles: list[str] = []
    errors: list[BaseException] = []

    def voter(number):
        try:
            battles.extend(vote_many(store, number, 50))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=voter, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(battles)) == 1000
    assert vote_count(db_path) == 1000
    assert store.counts()["votes"] == store.counts()["battles"] == 1000


def _vote_in_process(args) -> list[str]:
    path, number, votes = args
    with ArenaStore(path) as store:
        return vote_many(store, number, votes)


def test_parallel_voter_processes_lose_no_vote(store, db_path):
    # spawn: each process opens its own store, as separate app workers would
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        battles = [b for share in pool.map(_vote_in_process, [(str(db_path), n, 100) for n in range(4)])
                   for b in share]
    assert len(set(battles)) == 400
    assert vote_count(db_path) == 400
    assert store.counts()["votes"] == 400


def _open_and_vote(args) -> bool:
    path, barrier = args
    barrier.wait()
    with ArenaStore(path) as store:
        return store.vote(finished_battle(store), "tie", VOTER)


def test_processes_opening_a_fresh_file_at_once(tmp_path):
    # app workers starting together: one creates the schema and switches to WAL, none fails
    # (the race is narrow: 20 rounds, each on a fresh file)
    context = multiprocessing.get_context("spawn")
    paths = [tmp_path / f"arena-{n}.db" for n in range(20)]
    with context.Manager() as manager, context.Pool(4) as pool:
        barrier = manager.Barrier(4)
        for path in paths:
            assert pool.map(_open_and_vote, [(str(path), barrier)] * 4, chunksize=1) == [True] * 4
    for path in paths:
        with ArenaStore(path) as store:
            assert store.schema_version == SCHEMA_VERSION and store.counts()["votes"] == 4


# -- durability ----------------------------------------------------------------------------------------

KILLED_VOTER = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from cosmos_llava.arena_store import ArenaStore, voter_id
store = ArenaStore(sys.argv[1])
voter = voter_id("killed-session", "test-salt")
while True:
    battle = store.new_battle("cosmos-llava", "llava-1.5", voter)
    turn = store.add_turn(battle, "Görselde ne var?")
    store.finish_turn(battle, turn, "Bir kedi.", "Bir köpek.")
    assert store.vote(battle, "model_a", voter)
    print(battle, flush=True)  # only after vote() returned, i.e. committed
"""


def test_votes_reported_committed_survive_sigkill(store, db_path):
    child = subprocess.Popen([sys.executable, "-c", KILLED_VOTER, str(db_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reported = []
    try:
        while len(reported) < 300:
            line = child.stdout.readline()
            assert line, f"the voter died early: {child.stderr.read()}"
            reported.append(line.strip())
    finally:
        os.kill(child.pid, signal.SIGKILL)  # mid-loop: most likely inside a transaction
        child.wait(timeout=30)
    reported += child.stdout.read().split()  # printed before the kill, not read yet
    child.stdout.close()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    with raw(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        voted = {row[0] for row in conn.execute("SELECT battle_id FROM votes")}
    assert [battle for battle in reported if battle not in voted] == []  # reported, then lost
    assert len(voted) <= len(reported) + 1  # at most one more: committed, then killed before its print
    with ArenaStore(db_path) as reopened:  # and the store opens it and goes on
        assert reopened.counts()["votes"] == len(voted)
        assert reopened.vote(finished_battle(reopened), "tie", VOTER) is True


# -- schema versions ---------------------------------------------------------------------------------

V1_SCHEMA = """
CREATE TABLE battles (id TEXT PRIMARY KEY, model_a TEXT NOT NULL, model_b TEXT NOT NULL, voter TEXT NOT NULL,
                      created TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open');
CREATE TABLE turns (battle_id TEXT NOT NULL REFERENCES battles(id), "index" INTEGER NOT NULL,
                    user_text TEXT NOT NULL, answer_a TEXT, answer_b TEXT, created TEXT NOT NULL,
                    finished INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (battle_id, "index"));
CREATE TABLE votes (id INTEGER PRIMARY KEY, battle_id TEXT NOT NULL REFERENCES battles(id),
                    winner TEXT NOT NULL, voter TEXT NOT NULL, created TEXT NOT NULL);
CREATE UNIQUE INDEX votes_one_per_battle ON votes (battle_id);
INSERT INTO battles VALUES ('b1', 'cosmos-llava', 'llava-1.5', '{voter}', '2025-01-02T03:04:05.006+00:00', 'voted');
INSERT INTO turns VALUES ('b1', 0, 'Görselde ne var?', 'Bir kedi.', 'Bir köpek.', '2025-01-02T03:04:06.000+00:00', 1);
INSERT INTO turns VALUES ('b1', 1, 'Rengi ne?', 'Siyah.', 'Beyaz.', '2025-01-02T03:04:07.000+00:00', 1);
INSERT INTO votes VALUES (1, 'b1', 'model_b', '{voter}', '2025-01-02T03:04:08.000+00:00');
INSERT INTO battles VALUES ('b2', 'llava-1.5', 'cosmos-llava', '{voter}', '2025-01-03T00:00:00.000+00:00', 'open');
INSERT INTO turns VALUES ('b2', 0, 'Kaç kişi var?', NULL, NULL, '2025-01-03T00:00:01.000+00:00', 0);
PRAGMA user_version = 1;
"""


def test_v1_database_migrates_with_data_intact(db_path):
    with raw(db_path) as conn:
        conn.executescript(V1_SCHEMA.format(voter=VOTER))
    with ArenaStore(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        old = store.battle("b1")
        assert (old["mode"], old["model_a"], old["model_b"], old["voter"], old["created"], old["status"]) == (
            "blind", "cosmos-llava", "llava-1.5", VOTER, "2025-01-02T03:04:05.006+00:00", "voted")
        assert [(t["index"], t["user_text"], t["answer_a"], t["answer_b"], t["image_hashes"], t["finished"])
                for t in old["turns"]] == [
            (0, "Görselde ne var?", "Bir kedi.", "Bir köpek.", [], True),
            (1, "Rengi ne?", "Siyah.", "Beyaz.", [], True),
        ]
        assert old["vote"] == {"winner": "model_b", "voter": VOTER, "created": "2025-01-02T03:04:08.000+00:00"}
        assert store.rating_battles() == [{"model_a": "cosmos-llava", "model_b": "llava-1.5", "winner": "model_b"}]
        assert store.vote("b1", "model_a", VOTER) is False

        # the open v1 battle goes on under the new schema, images included
        image = store.put_image(png())
        store.finish_turn("b2", 0, "Üç.", "İki.")
        assert store.add_turn("b2", "Ya şimdi?", [image]) == 1
        store.finish_turn("b2", 1, "Dört.", "Beş.")
        assert store.vote("b2", "tie", VOTER) is True
        assert store.counts()["blind"] == {"battles": 2, "votes": 2}
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_newer_database_is_refused_untouched(db_path):
    with raw(db_path) as conn:
        conn.executescript(f"CREATE TABLE battles (id TEXT PRIMARY KEY); PRAGMA user_version = {SCHEMA_VERSION + 1};")
    before = db_path.read_bytes()
    with pytest.raises(CosmosLlavaError) as refused:
        ArenaStore(db_path)
    assert str(refused.value) == (
        f"{db_path}: database schema v{SCHEMA_VERSION + 1} is newer than this version of cosmos_llava "
        f"(v{SCHEMA_VERSION}); upgrade cosmos_llava"
    )
    assert db_path.read_bytes() == before
    assert sorted(p.name for p in db_path.parent.iterdir()) == ["arena.db"]  # not even switched to WAL


def test_not_a_database_is_one_line_error(db_path):
    db_path.write_bytes(b"this is no sqlite file, just text " * 100)
    with pytest.raises(CosmosLlavaError) as refused:
        ArenaStore(db_path)
    assert str(refused.value) == f"arena database {db_path}: file is not a database"


# -- images and voters ---------------------------------------------------------------------------------


def test_images_are_stored_once_by_hash(store, db_path):
    data = png((8, 6))
    first, second = store.put_image(data), store.put_image(bytes(data))
    assert first == second == hashlib.sha256(data).hexdigest()
    other = store.put_image(png((8, 6), (0, 0, 255)))
    assert other != first
    for _ in range(2):
        battle = store.new_battle("a", "b", VOTER)
        store.add_turn(battle, "Görselde ne var?", [first, other])
    with raw(db_path) as conn:
        rows = conn.execute("SELECT hash, mime, format, width, height, size FROM images ORDER BY rowid").fetchall()
    assert rows == [(first, "image/png", "PNG", 8, 6, len(data)), (other, "image/png", "PNG", 8, 6, rows[1][5])]
    assert store.get_image(first) == data
    assert store.counts()["images"] == 2


def test_image_refusals(store):
    with pytest.raises(ImageError, match=r"^not an image \(unrecognised format\)$"):
        store.put_image(b"GIF89a but not really")
    with pytest.raises(ImageError, match=r"^uploaded image is empty \(0 bytes\)$"):
        store.put_image(b"")
    missing = "0" * 64
    with pytest.raises(CosmosLlavaError) as refused:
        store.get_image(missing)
    assert str(refused.value) == f"unknown image {missing}"
    battle = store.new_battle("a", "b", VOTER)
    with pytest.raises(CosmosLlavaError) as refused:
        store.add_turn(battle, "?", [missing])
    assert str(refused.value) == f"unknown image {missing}: store it with put_image first"
    assert store.battle(battle)["turns"] == []


def test_voter_ids_are_salted_hashes(store, tmp_path, db_path):
    session = "session-7f3a9c-raw-identifier"
    voter = voter_id(session, "salt-1")
    assert voter == hmac.new(b"salt-1", session.encode(), hashlib.sha256).hexdigest()
    assert voter == voter_id(session, "salt-1")
    assert voter != voter_id(session, "salt-2")
    assert voter != voter_id(session + "x", "salt-1")
    with pytest.raises(CosmosLlavaError, match="^voter_id needs a non-empty server salt$"):
        voter_id(session, "")

    for _ in range(3):
        battle = finished_battle(store, voter=voter)
        store.vote(battle, "model_a", voter)
    for bad in (session, "203.0.113.7", voter.upper()):
        with pytest.raises(CosmosLlavaError) as refused:
            store.new_battle("a", "b", bad)
        assert str(refused.value) == "voter must be a voter_id() hash (64 hex digits), never a raw session id or IP"
    store.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(db_path.name))
    assert voter.encode() in stored  # the scan does see what is stored ...
    assert session.encode() not in stored  # ... and the raw session is not there


# -- refusals ------------------------------------------------------------------------------------------


def refusal(call, *args, **kwargs) -> str:
    with pytest.raises(CosmosLlavaError) as refused:
        call(*args, **kwargs)
    return str(refused.value)


def test_vote_refusals(store, db_path):
    assert refusal(store.vote, "nope", "model_a", VOTER) == "unknown battle nope"
    battle = store.new_battle("cosmos-llava", "llava-1.5", VOTER)
    assert refusal(store.vote, battle, "model_a", VOTER) == (
        f"battle {battle} has no turns yet: vote after both answers have finished")
    store.add_turn(battle, "Görselde ne var?")
    assert refusal(store.vote, battle, "model_a", VOTER) == (
        f"battle {battle} turn 0 has not finished: vote after both answers have finished")
    store.finish_turn(battle, 0, "Bir kedi.", "Bir köpek.")
    for bad in ("left", "Model_A", "tie(bothbad)"):
        assert refusal(store.vote, battle, bad, VOTER) == (
            f"bad winner {bad!r}: expected one of 'model_a', 'model_b', 'tie', 'tie (bothbad)'")
    assert vote_count(db_path) == 0
    assert store.vote(battle, "tie (bothbad)", VOTER) is True


def test_turn_and_battle_refusals(store):
    battle = store.new_battle("cosmos-llava", "llava-1.5", VOTER)
    store.add_turn(battle, "Görselde ne var?")
    assert refusal(store.add_turn, battle, "Ve?") == f"battle {battle} turn 0 has not finished: wait for both answers"
    assert refusal(store.finish_turn, battle, 1, "a", "b") == f"battle {battle} has no turn 1"
    assert refusal(store.add_turn, "nope", "?") == "unknown battle nope"
    store.finish_turn(battle, 0, "Bir kedi.", "Bir köpek.")
    store.vote(battle, "model_a", VOTER)
    assert refusal(store.add_turn, battle, "Ve?") == f"battle {battle} already has a vote: start a new battle"
    assert refusal(store.finish_turn, battle, 0, "x", "y") == f"battle {battle} already has a vote: start a new battle"
    assert store.battle(battle)["turns"][0]["answer_a"] == "Bir kedi."
    assert refusal(store.new_battle, "a", "b", VOTER, mode="anonymous") == (
        "unknown mode 'anonymous': expected 'blind' or 'named'")
    assert refusal(store.new_battle, "a", "a", VOTER) == "a battle needs two different models, got 'a' twice"
    assert refusal(store.battle, "nope") == "unknown battle nope"
    assert refusal(store.rating_battles, "all") == "unknown mode 'all': expected 'blind' or 'named'"


# -- what the rating module reads ----------------------------------------------------------------------


def test_rating_battles_in_vote_order(store):
    first, second, third = (finished_battle(store, f"m{n}", f"m{n + 1}") for n in range(3))
    store.vote(third, "model_b", VOTER)
    store.vote(first, "tie", VOTER)
    finished_battle(store)  # never voted: not a rating battle
    assert store.rating_battles() == [
        {"model_a": "m2", "model_b": "m3", "winner": "model_b"},
        {"model_a": "m0", "model_b": "m1", "winner": "tie"},
    ]


def test_export_keeps_blind_and_named_apart(store, tmp_path):
    blind = [finished_battle(store, "cosmos-llava", "llava-1.5") for _ in range(3)]
    named = [finished_battle(store, "llava-1.5", "cosmos-llava", mode="named") for _ in range(2)]
    finished_battle(store, mode="named")  # not voted
    for n, battle in enumerate(blind + named):
        store.vote(battle, WINNERS[n % len(WINNERS)], VOTER)

    assert store.export_battles(tmp_path / "blind.jsonl") == 3
    assert store.export_battles(tmp_path / "named.jsonl", mode="named") == 2
    for mode, battles in (("blind", blind), ("named", named)):
        lines = [json.loads(line) for line in (tmp_path / f"{mode}.jsonl").read_text().splitlines()]
        assert [line["id"] for line in lines] == battles
        assert [{k: line[k] for k in ("model_a", "model_b", "winner")} for line in lines] == store.rating_battles(mode)
        for line in lines:
            assert set(line) == {"id", "mode", "model_a", "model_b", "winner", "turns", "created", "voted"}
            assert line["mode"] == mode and line["turns"] == 1
            assert ISO_UTC_MS.fullmatch(line["created"]) and ISO_UTC_MS.fullmatch(line["voted"])
    assert store.counts() == {"battles": 6, "votes": 5, "images": 0,
                              "blind": {"battles": 3, "votes": 3}, "named": {"battles": 3, "votes": 2}}
    assert not list(tmp_path.glob("*.partial"))
    missing = tmp_path / "no-such-folder" / "blind.jsonl"
    assert refusal(store.export_battles, missing) == f"cannot write {missing}: No such file or directory"
