"""Arena store benchmark: how fast votes are stored with many voters writing at once.

Each vote is what the arena app does for a one-turn battle: new_battle + add_turn (with one image,
stored once by hash) + finish_turn + vote, i.e. four write transactions, each committed before the
call returns. --voters voters (threads sharing one ArenaStore, as in the Gradio app, or with
--processes separate processes with one ArenaStore each, all on one file) store --votes votes between
them on a fresh database in a temporary folder (or --db PATH). The clock runs from the moment all
voters are ready until the last one is done. Afterwards the stored votes are counted: anything but
exactly --votes more than before is an error (exit 1).

  python bench/votes.py                                   # 20 threads, 10,000 votes
  python bench/votes.py --processes                       # 20 processes
  python bench/votes.py --synchronous FULL                # fsync at every commit (power-loss safe)

Prints one line: votes/s, write transactions/s, and the median, 99th-percentile and longest time of
one whole vote sequence (the four calls): the wait a voter would see under that load, and how far the
worst wait stays from the store's 10 s busy timeout.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from cosmos_llava.arena_store import WINNERS, ArenaStore, voter_id  # noqa: E402
from cosmos_llava.errors import CosmosLlavaError  # noqa: E402

MODELS = ("cosmos-llava-llama3", "cosmos-llava-mistral", "llava-1.5-7b", "turkish-llava-v0.1")
WRITES_PER_VOTE = 4


def _image_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def vote_many(store: ArenaStore, voter_number: int, votes: int) -> list[float]:
    """One voter's work: `votes` one-turn battles, each voted on; returns each sequence's seconds."""
    voter = voter_id(f"bench-session-{voter_number}", salt="bench-salt")
    image = store.put_image(_image_bytes())  # every voter the same picture: one row
    latencies = []
    for n in range(votes):
        pair = (voter_number + n) % len(MODELS)
        start = time.perf_counter()
        battle = store.new_battle(MODELS[pair], MODELS[(pair + 1) % len(MODELS)], voter)
        turn = store.add_turn(battle, "Bu görselde ne var?", [image])
        store.finish_turn(battle, turn, "Kırmızı bir kare.", "Bir görsel.")
        if not store.vote(battle, WINNERS[n % len(WINNERS)], voter):
            raise CosmosLlavaError(f"a fresh battle refused its first vote: {battle}")
        latencies.append(time.perf_counter() - start)
    return latencies


def _process_voter(path: str, synchronous: str, voter_number: int, votes: int, barrier, results) -> None:
    try:
        store = ArenaStore(path, synchronous=synchronous)  # opened before the clock starts
        barrier.wait()
        start = time.perf_counter()
        latencies = vote_many(store, voter_number, votes)
        results.put((start, time.perf_counter(), latencies, None))
    except Exception as exc:  # reported to the parent, which exits 1
        results.put((0.0, 0.0, [], f"{type(exc).__name__}: {exc}"))


def run_threads(path: Path, synchronous: str, shares: list[int]) -> tuple[float, list[float]]:
    store = ArenaStore(path, synchronous=synchronous)
    barrier = threading.Barrier(len(shares) + 1)
    latencies: list[float] = []
    errors: list[str] = []

    def voter(number: int, votes: int) -> None:
        barrier.wait()
        try:
            latencies.extend(vote_many(store, number, votes))
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=voter, args=(n, votes)) for n, votes in enumerate(shares)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise CosmosLlavaError(f"{len(errors)} voter(s) failed, first: {errors[0]}")
    return elapsed, latencies


def run_processes(path: Path, synchronous: str, shares: list[int]) -> tuple[float, list[float]]:
    context = multiprocessing.get_context("spawn")  # fresh interpreters: nothing SQLite crosses a fork
    barrier, results = context.Barrier(len(shares)), context.Queue()
    workers = [
        context.Process(target=_process_voter, args=(str(path), synchronous, n, votes, barrier, results))
        for n, votes in enumerate(shares)
    ]
    for worker in workers:
        worker.start()
    reports = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    errors = [error for *_, error in reports if error]
    if errors:
        raise CosmosLlavaError(f"{len(errors)} voter process(es) failed, first: {errors[0]}")
    elapsed = max(end for _, end, _, _ in reports) - min(start for start, _, _, _ in reports)
    return elapsed, [latency for _, _, latencies, _ in reports for latency in latencies]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voters", type=int, default=20, help="concurrent voters (default 20)")
    parser.add_argument("--votes", type=int, default=10_000, help="votes to store in all (default 10000)")
    parser.add_argument("--db", type=Path, help="database file (default: a fresh one in a temporary folder)")
    parser.add_argument("--processes", action="store_true", help="voters are processes, not threads")
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL",
                        help="SQLite synchronous mode (default NORMAL: safe against process crashes)")
    args = parser.parse_args(argv)
    if args.voters < 1 or args.votes < args.voters:
        parser.error("need --voters >= 1 and --votes >= --voters")

    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        path = args.db or Path(tmp) / "arena.db"
        try:
            with ArenaStore(path, synchronous=args.synchronous) as store:
                before = store.counts()["votes"]
            shares = [args.votes // args.voters + (n < args.votes % args.voters) for n in range(args.voters)]
            run = run_processes if args.processes else run_threads
            elapsed, latencies = run(path, args.synchronous, shares)
            with ArenaStore(path) as store:
                stored = store.counts()["votes"] - before
        except CosmosLlavaError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    kind = "processes" if args.processes else "threads"
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"{stored} votes by {args.voters} voter {kind} in {elapsed:.2f} s: {stored / elapsed:.0f} votes/s "
        f"({WRITES_PER_VOTE * stored / elapsed:.0f} write transactions/s), one vote sequence "
        f"p50 {quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms, max {max(latencies) * 1000:.0f} ms "
        f"(synchronous={args.synchronous})"
    )
    if stored != args.votes:
        print(f"error: {stored} votes stored, expected exactly {args.votes}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
