"""The arena's SQLite store: battles, their turns, the images they show, and one vote per battle.

The arena is a blind side-by-side comparison of two vision-language chat models (like Chatbot Arena):
a voter asks one or more questions about images, both models answer, and the voter picks a winner
("model_a" is the model shown on the LEFT). Votes in "named" mode, where the voter saw the model
names, are kept apart from "blind" ones: only blind votes are fair ratings.

The Gradio app calls one `ArenaStore` from many worker threads (and may run several processes on one
file), so:

* One sqlite3 connection PER THREAD (`threading.local`): a connection must not be shared between
  threads, and one per thread lets readers run in parallel. A connection is also never reused across
  `fork()` (SQLite forbids it): a forked child opens its own.
* WAL journal mode: readers never block the writer and the writer never blocks readers; only writers
  queue, one at a time.
* Every write is ONE explicit transaction started with `BEGIN IMMEDIATE`, which takes the write lock
  up front. A plain (deferred) `BEGIN` that reads first and writes later can fail at once with
  SQLITE_BUSY, without waiting, when another connection committed in between (its snapshot is stale
  and it cannot upgrade to a writer); taking the lock first makes every check-then-write below
  (one vote per battle, the next turn index, "all turns finished") atomic, and the only wait is
  for the lock, governed by the busy timeout.
* `busy_timeout` (10 s): a writer waits that long for another writer (thread or process) to finish
  instead of failing at once. Threads of one process first queue on a Python lock (with the same
  timeout), because SQLite's busy handler retries after sleeps of up to 100 ms and under load lets
  some writers win again and again while one keeps losing: in bench/votes.py (20 threads flat out)
  the longest vote took 2.4-3 s without the lock (5 s with synchronous=FULL), close enough to the
  10 s timeout to turn into errors under a burst; with it, 0.2-0.4 s, for ~25% less peak throughput,
  still far above what human voters produce. Processes meet through SQLite's lock alone (20
  processes flat out: longest vote 2.5-6.5 s), so serve the app from one process with threads.
* Every write commits before it returns, so a process killed right after `vote()` returns keeps the
  vote. `synchronous=NORMAL` in WAL mode survives any process crash; only a power loss or OS crash
  may lose the last commits (never corrupting the file). Pass `synchronous="FULL"` to fsync at every
  commit and survive those too, at a cost (see bench/votes.py).

Schema versions live in `PRAGMA user_version` (an integer in the database header, written in the same
transaction as the migration, so a migration and its version number commit together or not at all).
`MIGRATIONS[n]` moves a database from version n to n + 1; a new file runs them all, so the path an old
database takes is the one every test exercises. A database newer than this code is refused untouched.

    v1  battles(id, model_a, model_b, voter, created, status 'open' | 'voted'), turns(battle_id, index, user_text,
        answer_a, answer_b, created, finished), votes(id, battle_id UNIQUE, winner, voter, created)
    v2  battles.mode ('blind' | 'named', existing battles become 'blind'), indexed
    v3  images(hash = sha256 of the bytes, data, mime, format, width, height, size, created) and
        turns.image_hashes (a JSON list of image hashes, '[]' for existing turns)

sqlite-utils creates the tables and does the inserts; raw SQL is used where it says more (the
transactions, the PRAGMAs, conditional updates and the joins of the reads).

Errors: every refusal is a `CosmosLlavaError` with a one-line message the app can show. A second
vote on a battle is not an error: `vote()` returns False ("this battle already has a vote").
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import os
import re
import sqlite3
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import sqlite_utils
from PIL import Image

from .errors import CosmosLlavaError, ImageError

MODES = ("blind", "named")
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
BUSY_TIMEOUT_S = 10.0
SYNCHRONOUS = ("NORMAL", "FULL")

_VOTER_ID = re.compile(r"[0-9a-f]{64}")


def voter_id(session_id: str, salt: str) -> str:
    """The privacy-preserving id stored for a voter: hex HMAC-SHA256 of the session id keyed with a
    server-side salt. Stable for one session and salt (so one voter's votes can be told apart), but
    without the salt it cannot be linked back to the session, and a raw IP or session id is never
    stored (`ArenaStore` accepts nothing but such a hash)."""
    if not salt:
        raise CosmosLlavaError("voter_id needs a non-empty server salt")
    return hmac.new(salt.encode("utf-8"), session_id.encode("utf-8"), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Schema migrations: MIGRATIONS[n] takes a database at version n to version n + 1, inside the caller's
# write transaction.


def _v1_tables(db: sqlite_utils.Database) -> None:
    db.create_table(
        "battles",
        {"id": str, "model_a": str, "model_b": str, "voter": str, "created": str, "status": str},
        pk="id",
        not_null=["model_a", "model_b", "voter", "created", "status"],
        defaults={"status": "open"},
    )
    db.create_table(
        "turns",
        {"battle_id": str, "index": int, "user_text": str, "answer_a": str, "answer_b": str,
         "created": str, "finished": int},
        pk=("battle_id", "index"),
        foreign_keys=[("battle_id", "battles", "id")],
        not_null=["battle_id", "index", "user_text", "created", "finished"],
        defaults={"finished": 0},
    )
    votes = db.create_table(
        "votes",
        {"id": int, "battle_id": str, "winner": str, "voter": str, "created": str},
        pk="id",  # INTEGER PRIMARY KEY: increasing, so it gives the vote order
        foreign_keys=[("battle_id", "battles", "id")],
        not_null=["battle_id", "winner", "voter", "created"],
    )
    # The one-vote-per-battle rule lives here, in the database, whatever the code above it does.
    votes.create_index(["battle_id"], index_name="votes_one_per_battle", unique=True)


def _v2_mode(db: sqlite_utils.Database) -> None:
    # Named side-by-side votes must not mix with blind ones; everything before v2 was blind.
    db.table("battles").add_column("mode", str, not_null_default="blind")
    db.table("battles").create_index(["mode"], index_name="battles_mode")


def _v3_images(db: sqlite_utils.Database) -> None:
    db.create_table(
        "images",
        {"hash": str, "data": bytes, "mime": str, "format": str, "width": int, "height": int,
         "size": int, "created": str},
        pk="hash",
        not_null=["data", "mime", "format", "width", "height", "size", "created"],
    )
    db.table("turns").add_column("image_hashes", str, not_null_default="[]")


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_v1_tables, _v2_mode, _v3_images)
SCHEMA_VERSION = len(MIGRATIONS)

# Connections a forked child inherited from its parent. SQLite forbids using them in the child, and
# closing them there could checkpoint or delete the parent's WAL: they are kept here, untouched.
_INHERITED_CONNECTIONS: list[sqlite_utils.Database] = []


class ArenaStore:
    """The arena's battles, turns, images and votes in one SQLite file; safe to share between threads."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL"):
        if synchronous.upper() not in SYNCHRONOUS:
            raise CosmosLlavaError(f"unknown synchronous mode {synchronous!r}: expected NORMAL or FULL")
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._lock_pid = os.getpid()
        self._open()

    # -- connections and transactions ---------------------------------------------------------------

    def _open(self) -> None:
        """Check the schema version, switch to WAL, migrate. A newer database is left untouched."""
        if not self.path.parent.is_dir():
            raise CosmosLlavaError(f"cannot create the arena database {self.path}: no folder {self.path.parent}")
        db = self._db()
        try:
            self._refuse_newer(db)  # before anything writes (even the journal mode) to the file
            with self._sqlite_errors():
                self._enable_wal(db)
            with self._write() as db:
                # Checked again under the write lock: another process may have migrated meanwhile.
                version = self._refuse_newer(db)
                for migrate in MIGRATIONS[version:]:
                    migrate(db)
                if version != SCHEMA_VERSION:
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _enable_wal(db: sqlite_utils.Database) -> None:
        """Switch the file to WAL (persistent: done once, by whichever process opens it first).
        Changing the journal mode needs an exclusive lock and SQLite does not wait for it with the
        busy handler (it fails at once while another process reads or switches), so wait here."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while db.journal_mode != "wal":
            try:
                db.enable_wal()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _refuse_newer(self, db: sqlite_utils.Database) -> int:
        with self._sqlite_errors():
            version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CosmosLlavaError(
                f"{self.path}: database schema v{version} is newer than this version of cosmos_llava "
                f"(v{SCHEMA_VERSION}); upgrade cosmos_llava"
            )
        return version

    def _db(self) -> sqlite_utils.Database:
        """This thread's connection, opened on first use."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            if getattr(local, "db", None) is not None:
                _INHERITED_CONNECTIONS.append(local.db)  # copied by fork(): the parent's, not ours
            local.db = self._connect()
            local.pid = os.getpid()
        return local.db

    def _connect(self) -> sqlite_utils.Database:
        with self._sqlite_errors():
            # isolation_level=None: the sqlite3 module opens no implicit transactions; every
            # transaction here is an explicit BEGIN ... COMMIT, so nothing holds a lock by accident.
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                conn.execute("PRAGMA foreign_keys = ON")  # per connection, off by default
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
                # execute_plugins=False: no installed sqlite-utils plugin gets to change our connections.
                return sqlite_utils.Database(conn, execute_plugins=False)
            except BaseException:
                conn.close()
                raise

    def _lock(self) -> threading.Lock:
        if self._lock_pid != os.getpid():  # a forked child must not inherit a lock held by a parent thread
            self._write_lock, self._lock_pid = threading.Lock(), os.getpid()
        return self._write_lock

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction: BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        db = self._db()
        lock = self._lock()
        if not lock.acquire(timeout=BUSY_TIMEOUT_S):
            raise self._busy_error()
        try:
            with self._sqlite_errors():
                db.execute("BEGIN IMMEDIATE")  # waits up to the busy timeout for other processes
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    db.rollback()  # a no-op when the error already ended the transaction
                    raise
        finally:
            lock.release()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite_utils.Database]:
        """A read transaction, so that reads of several tables see one snapshot."""
        db = self._db()
        with self._sqlite_errors():
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.rollback()

    @contextlib.contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise self._busy_error() from None
            raise CosmosLlavaError(f"arena database {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise CosmosLlavaError(f"arena database {self.path}: {exc}") from None

    def _busy_error(self) -> CosmosLlavaError:
        return CosmosLlavaError(
            f"the arena database {self.path} stayed locked by another writer for {BUSY_TIMEOUT_S:g} s; try again"
        )

    def close(self) -> None:
        """Close the calling thread's connection (other threads' close when those threads end)."""
        db = getattr(self._local, "db", None)
        if db is not None and getattr(self._local, "pid", None) == os.getpid():
            db.close()
        self._local.db = self._local.pid = None

    def __enter__(self) -> "ArenaStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._db().execute("PRAGMA user_version").fetchone()[0]

    # -- writes -------------------------------------------------------------------------------------

    def new_battle(self, model_a: str, model_b: str, voter: str, mode: str = "blind") -> str:
        """Start a battle between `model_a` (shown on the left) and `model_b`; returns its id."""
        _check_mode(mode)
        _check_voter(voter)
        if not model_a or not model_b:
            raise CosmosLlavaError("a battle needs two model names")
        if model_a == model_b:
            raise CosmosLlavaError(f"a battle needs two different models, got {model_a!r} twice")
        battle_id = uuid.uuid4().hex
        with self._write() as db:
            db.table("battles").insert({
                "id": battle_id, "mode": mode, "model_a": model_a, "model_b": model_b, "voter": voter,
                "created": _now(), "status": "open",
            })
        return battle_id

    def add_turn(self, battle_id: str, user_text: str, image_hashes: list[str] | tuple = ()) -> int:
        """Record the voter's next message (text and the hashes of its images, from `put_image`);
        returns the turn's index (0, 1, ...). Refused while the previous turn has not finished."""
        image_hashes = list(image_hashes)
        with self._write() as db:
            self._open_battle(db, battle_id)
            last = db.execute(
                'SELECT "index", finished FROM turns WHERE battle_id = ? ORDER BY "index" DESC LIMIT 1',
                [battle_id],
            ).fetchone()
            if last is not None and not last[1]:
                raise CosmosLlavaError(
                    f"battle {battle_id} turn {last[0]} has not finished: wait for both answers"
                )
            for image_hash in image_hashes:
                if db.execute("SELECT 1 FROM images WHERE hash = ?", [image_hash]).fetchone() is None:
                    raise CosmosLlavaError(f"unknown image {image_hash}: store it with put_image first")
            index = 0 if last is None else last[0] + 1
            db.table("turns").insert({
                "battle_id": battle_id, "index": index, "user_text": user_text,
                "image_hashes": json.dumps(image_hashes), "created": _now(), "finished": 0,
            })
        return index

    def finish_turn(self, battle_id: str, index: int, answer_a: str, answer_b: str) -> None:
        """Store both models' answers to turn `index`; the turn is then finished. Calling it again
        before the vote replaces the answers (a regenerated turn)."""
        with self._write() as db:
            self._open_battle(db, battle_id)
            updated = db.execute(
                'UPDATE turns SET answer_a = ?, answer_b = ?, finished = 1 WHERE battle_id = ? AND "index" = ?',
                [answer_a, answer_b, battle_id, index],
            ).rowcount
            if not updated:
                raise CosmosLlavaError(f"battle {battle_id} has no turn {index}")

    def put_image(self, data: bytes) -> str:
        """Store an image once by the sha256 of its bytes (idempotent); returns the hash."""
        data = bytes(data)
        image_hash = hashlib.sha256(data).hexdigest()
        with self._read() as db:
            if db.execute("SELECT 1 FROM images WHERE hash = ?", [image_hash]).fetchone() is not None:
                return image_hash
        image_format, width, height = _image_header(data)  # outside the write lock: it takes time
        with self._write() as db:
            # ignore=True: another thread may have stored the same bytes since the check above.
            db.table("images").insert({
                "hash": image_hash, "data": data, "format": image_format,
                "mime": Image.MIME.get(image_format, "application/octet-stream"),
                "width": width, "height": height, "size": len(data), "created": _now(),
            }, ignore=True)
        return image_hash

    def vote(self, battle_id: str, winner: str, voter: str) -> bool:
        """Record the vote on a battle. Returns False, storing nothing, when the battle already has a
        vote (exactly one vote per battle, enforced by a UNIQUE index). Refused (CosmosLlavaError) for
        an unknown battle, a bad winner, or before every turn of the battle has both answers."""
        if winner not in WINNERS:
            raise CosmosLlavaError(
                f"bad winner {winner!r}: expected one of " + ", ".join(repr(w) for w in WINNERS)
            )
        _check_voter(voter)
        with self._write() as db:
            self._battle_row(db, battle_id)
            turns, unfinished = db.execute(
                'SELECT count(*), min(CASE WHEN finished THEN NULL ELSE "index" END) '
                "FROM turns WHERE battle_id = ?",
                [battle_id],
            ).fetchone()
            if not turns:
                raise CosmosLlavaError(
                    f"battle {battle_id} has no turns yet: vote after both answers have finished"
                )
            if unfinished is not None:
                raise CosmosLlavaError(
                    f"battle {battle_id} turn {unfinished} has not finished: vote after both answers have finished"
                )
            try:
                db.table("votes").insert(
                    {"battle_id": battle_id, "winner": winner, "voter": voter, "created": _now()}
                )
            except sqlite3.IntegrityError:  # votes_one_per_battle: the battle already has its vote
                return False
            db.execute("UPDATE battles SET status = 'voted' WHERE id = ?", [battle_id])
        return True

    # -- reads --------------------------------------------------------------------------------------

    def get_image(self, image_hash: str) -> bytes:
        with self._read() as db:
            row = db.execute("SELECT data FROM images WHERE hash = ?", [image_hash]).fetchone()
        if row is None:
            raise CosmosLlavaError(f"unknown image {image_hash}")
        return row[0]

    def battle(self, battle_id: str) -> dict:
        """The battle's row with its `turns` (list, in order) and its `vote` (dict, or None)."""
        with self._read() as db:
            battle = self._battle_row(db, battle_id)
            battle["turns"] = [
                {**turn, "image_hashes": json.loads(turn["image_hashes"]), "finished": bool(turn["finished"])}
                for turn in db.query(
                    'SELECT "index", user_text, image_hashes, answer_a, answer_b, created, finished '
                    'FROM turns WHERE battle_id = ? ORDER BY "index"', [battle_id])
            ]
            battle["vote"] = next(db.query(
                "SELECT winner, voter, created FROM votes WHERE battle_id = ?", [battle_id]), None)
        return battle

    def rating_battles(self, mode: str = "blind") -> list[dict]:
        """`{"model_a", "model_b", "winner"}` for every voted battle of `mode`, in vote order: the
        input of the rating module."""
        return [
            {"model_a": row["model_a"], "model_b": row["model_b"], "winner": row["winner"]}
            for row in self._voted(mode)
        ]

    def export_battles(self, path: str | Path, mode: str = "blind") -> int:
        """Write the voted battles of `mode` as JSON lines, in vote order: the rating keys
        (model_a, model_b, winner) plus id, mode, turns (how many), created (battle start, UTC) and
        voted (vote time, UTC). Voter ids stay in the database. Returns the number of lines."""
        path = Path(path)
        rows = self._voted(mode)
        partial = path.with_name(path.name + ".partial")
        try:
            # Written beside and renamed over: a reader never sees half a file.
            with partial.open("w", encoding="utf-8") as out:
                for row in rows:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise CosmosLlavaError(f"cannot write {path}: {exc.strerror or exc}") from None
        return len(rows)

    def counts(self) -> dict:
        """{"battles", "votes", "images", "blind": {"battles", "votes"}, "named": {"battles", "votes"}}."""
        with self._read() as db:
            per_mode = {mode: {"battles": 0, "votes": 0} for mode in MODES}
            for mode, battles, votes in db.execute(
                "SELECT b.mode, count(*), count(v.id) FROM battles b LEFT JOIN votes v ON v.battle_id = b.id "
                "GROUP BY b.mode"
            ):
                per_mode[mode] = {"battles": battles, "votes": votes}
            images = db.execute("SELECT count(*) FROM images").fetchone()[0]
        return {
            "battles": sum(m["battles"] for m in per_mode.values()),
            "votes": sum(m["votes"] for m in per_mode.values()),
            "images": images,
            **per_mode,
        }

    # -- helpers ------------------------------------------------------------------------------------

    def _voted(self, mode: str) -> list[dict]:
        _check_mode(mode)
        with self._read() as db:
            return list(db.query(
                "SELECT b.id, b.mode, b.model_a, b.model_b, v.winner, "
                "(SELECT count(*) FROM turns t WHERE t.battle_id = b.id) AS turns, "
                "b.created, v.created AS voted "
                "FROM votes v JOIN battles b ON b.id = v.battle_id WHERE b.mode = ? ORDER BY v.id",
                [mode],
            ))

    @staticmethod
    def _battle_row(db: sqlite_utils.Database, battle_id: str) -> dict:
        row = next(db.query(
            "SELECT id, mode, model_a, model_b, voter, created, status FROM battles WHERE id = ?",
            [battle_id]), None)
        if row is None:
            raise CosmosLlavaError(f"unknown battle {battle_id}")
        return row

    def _open_battle(self, db: sqlite_utils.Database, battle_id: str) -> dict:
        battle = self._battle_row(db, battle_id)
        if battle["status"] == "voted":
            raise CosmosLlavaError(f"battle {battle_id} already has a vote: start a new battle")
        return battle


def _now() -> str:
    """UTC, ISO-8601 with milliseconds: 2026-05-09T07:35:25.123+00:00."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise CosmosLlavaError(f"unknown mode {mode!r}: expected 'blind' or 'named'")


def _check_voter(voter: str) -> None:
    # Only hashes get in: a raw session id or IP address passed by mistake is refused, not stored.
    if not isinstance(voter, str) or not _VOTER_ID.fullmatch(voter):
        raise CosmosLlavaError("voter must be a voter_id() hash (64 hex digits), never a raw session id or IP")


def _image_header(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the image's header; nothing is decoded."""
    if not data:
        raise ImageError("uploaded image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format, image.width, image.height
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image is too large: {exc}") from None
    except (OSError, ValueError):
        raise ImageError("not an image (unrecognised format)") from None
