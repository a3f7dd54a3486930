"""What every endpoint-driven pipeline shares (annotate's generators, eval's judge): reading records,
concurrency, resumable output, rejection.

Output is append-only JSONL, one finished record a line, flushed and fsynced as it is written, so a
killed run loses at most the records in flight. A rerun of the same command skips every id already in
the output (and in the rejected file, unless --retry-rejected) and continues; records whose requests
kept failing (endpoint down, retries exhausted) are not written, so a rerun retries them. Records are written in
input order (results that finish early wait, bounded by the concurrency window), so the same input
gives the same file. Outputs that fail validation go to `<out stem>.rejected.jsonl` with the reason.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import CosmosLlavaError
from .openai_client import ChatClient, EndpointError, FatalEndpointError
from .records import iter_records


class Rejected(Exception):
    """The endpoint answered, but the output failed validation; `output` is kept for inspection."""

    def __init__(self, reason: str, output: str = ""):
        super().__init__(reason)
        self.reason, self.output = reason, output


@dataclass
class Job:
    id: str
    payload: Any


@dataclass
class RunReport:
    total: int = 0  # jobs in scope (after --limit)
    already_done: int = 0
    written: int = 0
    rejected: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, reason): retried on a rerun
    reasons: dict[str, int] = field(default_factory=dict)  # rejection reason (its kind) -> count
    out: Path | None = None
    rejected_path: Path | None = None

    def lines(self) -> list[str]:
        lines = [f"{self.written} written to {self.out}, {self.rejected} rejected, {len(self.failed)} failed, "
                 f"{self.already_done} already done (of {self.total})"]
        for reason, count in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  rejected {count}x: {reason}")
        if self.rejected:
            lines.append(f"rejected records and their reasons: {self.rejected_path}")
        for job_id, reason in self.failed[:3]:
            lines.append(f"  failed {job_id}: {reason}")
        if self.failed:
            lines.append("failed records are not written: rerun the same command to retry them")
        return lines


# ------------------------------------------------------------------------------------------- input

def read_records(path: str | Path) -> list[dict]:
    """A JSON list or JSONL of objects. Records without an "id" get their position as id ("#<index>"
    or "line <n>", as training names them), stable for one file."""
    path = Path(path)
    if not path.is_file():
        raise CosmosLlavaError(f"input file not found: {path}")
    records, seen = [], {}
    for position, record in iter_records(path):
        if isinstance(record, json.JSONDecodeError):
            raise CosmosLlavaError(f"{path} {position}: not valid JSON ({record.msg})")
        if not isinstance(record, dict):
            raise CosmosLlavaError(f"{path} {position}: not a JSON object")
        record["id"] = str(record["id"]) if record.get("id") not in (None, "") else position
        if record["id"] in seen:
            raise CosmosLlavaError(f"{path}: duplicate id '{record['id']}' ({seen[record['id']]} and {position})")
        seen[record["id"]] = position
        records.append(record)
    return records


def stable_seed(job_id: str) -> int:
    """A per-record seed, the same on every run, so reruns of a record ask the same question."""
    return zlib.crc32(job_id.encode("utf-8")) & 0x7FFFFFFF


# ------------------------------------------------------------------------------------------ output

def rejected_path_for(out: Path) -> Path:
    return out.with_name(f"{out.stem}.rejected.jsonl")


def finished_records(path: Path) -> dict[str, dict]:
    """The records already in an output file, by id (a later line wins). A last line cut off by a kill
    (no newline, not JSON) is removed: it was the record in flight. A bad line anywhere else is the
    user's file to look at, not ours."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    lines = data.split(b"\n")
    records = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            records[str(record["id"])] = record
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            if number == len(lines) and not data.endswith(b"\n"):  # the unfinished last write
                with path.open("r+b") as f:
                    f.truncate(len(data) - len(line))
                break
            raise CosmosLlavaError(f"{path} line {number} is not a JSON record with an id; fix or move the file") from None
    return records


def finished_ids(path: Path) -> set[str]:
    """Ids already in an output file (see `finished_records`)."""
    return set(finished_records(path))


class Appender:
    """Append-only JSONL: each record flushed and fsynced as written, so a kill loses at most one line."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = None

    def write(self, record: dict) -> None:
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


# -------------------------------------------------------------------------------------------- run

Worker = Callable[[Job, ChatClient], dict]


def run_jobs(jobs: list[Job], worker: Worker, client: ChatClient, out: Path, concurrency: int = 4,
             limit: int | None = None, retry_rejected: bool = False, progress: bool = True,
             desc: str = "records") -> RunReport:
    """Run `worker` over the jobs not done yet; each returns its output row or raises Rejected."""
    if concurrency < 1:
        raise CosmosLlavaError("--concurrency must be at least 1")
    if limit is not None and limit < 1:
        raise CosmosLlavaError("--limit must be at least 1")
    out = Path(out)
    rejected_path = rejected_path_for(out)
    scope = jobs[:limit] if limit else jobs
    done = finished_ids(out) | (set() if retry_rejected else finished_ids(rejected_path))
    todo = [job for job in scope if job.id not in done]
    report = RunReport(total=len(scope), already_done=len(scope) - len(todo), out=out, rejected_path=rejected_path)
    if retry_rejected and rejected_path.exists():
        drop_ids(rejected_path, {job.id for job in todo})
    outputs, rejections = Appender(out), Appender(rejected_path)
    bar = progress_bar(len(todo), progress, desc)

    def finish(job: Job, future: Future) -> None:
        try:
            row = future.result()
        except (Rejected, EndpointError) as exc:
            if isinstance(exc, EndpointError) and not exc.final:
                report.failed.append((job.id, str(exc)))  # transient: not written, a rerun retries it
            else:
                reason = exc.reason if isinstance(exc, Rejected) else f"endpoint: {exc}"
                rejections.write({"id": job.id, "reason": reason, "output": getattr(exc, "output", "")})
                report.rejected += 1
                kind = reason.split(":")[0]
                report.reasons[kind] = report.reasons.get(kind, 0) + 1
        else:
            outputs.write(row)
            report.written += 1
        bar.update(1)
        bar.set_postfix_str(f"{report.rejected} rejected, {len(report.failed)} failed; "
                            f"{client.usage.prompt_tokens:,}/{client.usage.completion_tokens:,} tokens", refresh=False)

    # Submit in order, at most 2x concurrency ahead of the oldest unfinished job; write in order.
    pending: list[tuple[Job, Future]] = []
    queue = iter(todo)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="jobs") as pool:
        try:
            while True:
                while len(pending) < 2 * concurrency:
                    job = next(queue, None)
                    if job is None:
                        break
                    pending.append((job, pool.submit(worker, job, client)))
                if not pending:
                    break
                wait([pending[0][1]], return_when=FIRST_COMPLETED)
                while pending and pending[0][1].done():
                    job, future = pending.pop(0)
                    if isinstance(future.exception(), FatalEndpointError):
                        raise future.exception()
                    finish(job, future)
        except BaseException:
            # Stopping (Ctrl-C, or the endpoint refuses everything): keep every answer already paid for.
            for job, future in pending:
                future.cancel()
            for job, future in pending:
                if future.done() and not future.cancelled() and not isinstance(future.exception(), FatalEndpointError):
                    finish(job, future)
            raise
        finally:
            bar.close()
            outputs.close()
            rejections.close()
    return report


def drop_ids(path: Path, ids: set[str]) -> None:
    """Remove the records about to be redone from an output file (atomically: write, then rename)."""
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and str(json.loads(line).get("id")) not in ids]
    temp = path.with_name(path.name + ".tmp")
    temp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(temp, path)


def progress_bar(total: int, enabled: bool, desc: str, unit: str = "rec"):
    """The progress bar every long run shows (on stderr, so stdout stays the command's output)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True, desc=desc)
