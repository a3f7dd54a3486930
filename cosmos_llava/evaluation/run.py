"""`python -m cosmos_llava eval`: answer a LLaVA-format test set with one or more models, score the
answers, and write a report.

Steps, each resumable (a rerun of the same command skips what is already on disk, and tries again
what failed: rows recorded with an "error"):
1. **answers**: each model answers every row (`<out>/answers/<model>.jsonl`); local models in batches
   on their own thread, endpoint models with concurrent requests. Optionally with LLaVA-CoT reasoning.
2. **judging** (judge100, relative): an OpenAI-compatible judge scores each answer
   (`<out>/judged/<model>.<metric>.jsonl`). A reply with no readable score is asked again, then
   recorded as a failure: it is counted as failed, never as a score of 0.
3. **summary**: binary (yes/no rows) and exact (short-answer rows) are computed from the answers; all
   metrics per category and overall go to `summary.json`, `report.md`, `results.jsonl` (every answer with
   its scores) and `plots/`.

Which rows count for which metric (a row's optional "answer_type" decides; without it, the reference):
binary: "yes_no", or a reference whose first word is evet / hayır / yes / no; exact: "short", or a
reference of at most four words that is not yes/no; judge100 and relative: every row.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..conversation import Conversation
from ..errors import CosmosLlavaError, first_line
from ..jobs import Appender, Job, drop_ids, finished_ids, finished_records, progress_bar, read_records, run_jobs
from ..text import answers_match, turkish_casefold
from .judge import (judge100_messages, parse_pair_scores, parse_reason, parse_score100, relative_messages,
                    relative_score, relative_summary)
from .metrics import by_category, mean_and_ci, yes_no

METRICS = ("judge100", "relative", "binary", "exact")
JUDGE_METRICS = ("judge100", "relative")
ANSWER_TYPES = ("yes_no", "short", "open")
_YES_NO_WORDS = {"evet", "hayır", "yes", "no"}


# ------------------------------------------------------------------------------------------- the data

@dataclass
class Item:
    """One test question: the conversation up to the question, and the reference answer."""

    id: str
    position: str
    turns: list[tuple[str, str]]  # (role, text) up to and including the question; earlier answers as given
    images: list[Path]
    reference: str
    category: str
    context: str | None
    answer_type: str

    @property
    def question(self) -> str:
        return self.turns[-1][1].replace("<image>", "").strip()

    def conversation(self, system_prompt: str | None = None) -> Conversation:
        """The conversation the model answers; images attach where the text has `<image>` markers
        (LLaVA data style), or all to the first question when no turn has one."""
        conversation = Conversation(system_prompt=system_prompt)
        images = list(self.images)
        markers = sum(text.count("<image>") for role, text in self.turns if role == "user")
        for index, (role, text) in enumerate(self.turns):
            if role == "assistant":
                conversation.add_assistant(text)
                continue
            if markers:
                mine, images = images[:text.count("<image>")], images[text.count("<image>"):]
            else:
                mine, images = (images, []) if index == 0 else ([], images)
            conversation.add_user(text, mine)
        return conversation


def answer_type_of(reference: str) -> str:
    words = turkish_casefold(reference).split()
    if words and words[0].strip(".,!;:") in _YES_NO_WORDS:
        return "yes_no"
    return "short" if len(words) <= 4 else "open"


def read_items(path: str | Path, images: str | Path | None) -> list[Item]:
    """Every row checked up front (structure, image files), so a long run does not stop half-way."""
    root = Path(images) if images else Path(path).parent
    if images and not root.is_dir():
        raise CosmosLlavaError(f"--images {images}: no such folder")
    items = []
    for record in read_records(path):
        where = f"{path} row '{record['id']}'"
        conversations = record.get("conversations")
        if not isinstance(conversations, list) or len(conversations) < 2:
            raise CosmosLlavaError(f"{where}: needs 'conversations' with a question and a reference answer")
        turns = []
        for number, turn in enumerate(conversations):
            role = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}.get(
                turn.get("from") if isinstance(turn, dict) else None)
            if role is None or not isinstance(turn.get("value"), str):
                raise CosmosLlavaError(f"{where}: turn {number} needs 'from' (human or gpt) and a text 'value'")
            if role == ("user" if number % 2 == 0 else "assistant"):
                turns.append((role, turn["value"]))
            else:
                raise CosmosLlavaError(f"{where}: turns must alternate human, gpt, ... starting with human")
        if turns[-1][0] != "assistant":
            raise CosmosLlavaError(f"{where}: the last turn must be the reference answer (from gpt)")
        names = record.get("image") or []
        names = [names] if isinstance(names, str) else names
        files = [root / name for name in names]
        for file in files:
            if not file.is_file():
                raise CosmosLlavaError(f"{where}: image not found: {file}")
        answer_type = record.get("answer_type") or answer_type_of(turns[-1][1])
        if answer_type not in ANSWER_TYPES:
            raise CosmosLlavaError(f"{where}: answer_type must be one of {', '.join(ANSWER_TYPES)}")
        category = record.get("category")
        items.append(Item(record["id"], where, turns[:-1], files, turns[-1][1].strip(),
                          str(category) if category not in (None, "") else "(none)",
                          record.get("context") or record.get("caption"), answer_type))
    if not items:
        raise CosmosLlavaError(f"{path}: no rows")
    return items


# ----------------------------------------------------------------------------------------- answering

@dataclass
class AnswerSettings:
    temperature: float = 0.0
    top_p: float = 0.9
    max_new_tokens: int = 512
    batch_size: int = 8
    seed: int | None = 0
    concurrency: int = 4  # endpoint models
    reasoning: object = None  # ReasoningSettings, or None for plain answers
    reasoning_judge: object = None  # args namespace for judge_from_args; None: the model itself
    progress: bool = True


def slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name).strip("-.") or "model"


def _answer_row(item: Item, model: str, answer: str, **extra) -> dict:
    return {"id": item.id, "model": model, "category": item.category, "answer_type": item.answer_type,
            "question": item.question, "reference": item.reference, "answer": answer, **extra}


def answer_local(loaded, name: str, items: list[Item], out: Path, settings: AnswerSettings) -> tuple[int, int]:
    """Answer the rows not yet in `out`, in batches; returns (answered now, already there)."""
    from ..generation import GenerationSettings, generate_batch, prepare_prompt
    from ..reasoning import cot_prompt, conclusion_of, judge_from_args, reason, SelfJudge

    done = finished_ids(out)
    todo = [item for item in items if item.id not in done]
    reasoning = settings.reasoning
    search = reasoning is not None and reasoning.mode in ("stage-beam", "best-of-n")
    judge = None
    if search:
        judge = judge_from_args(settings.reasoning_judge, loaded) if settings.reasoning_judge else SelfJudge(loaded)
    budget = reasoning.max_new_tokens if reasoning is not None and reasoning.mode == "cot" else settings.max_new_tokens
    generation = GenerationSettings(settings.temperature, settings.top_p, budget, 1.0, settings.seed)
    writer = Appender(out)
    bar = progress_bar(len(todo), settings.progress, f"answers {name}", unit="row")
    batch_size = 1 if search else settings.batch_size
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            rows: dict[str, dict] = {}
            ready = []
            for item in batch:
                try:
                    conversation = item.conversation(loaded.new_conversation().system_prompt)
                    if search:
                        began = time.perf_counter()
                        result = reason(loaded, conversation, reasoning, judge)
                        rows[item.id] = _answer_row(item, name, result.answer, completion_tokens=result.generated_tokens,
                                                    seconds=round(time.perf_counter() - began, 3),
                                                    reasoning=result.to_dict())
                    elif reasoning is not None:
                        ready.append((item, cot_prompt(loaded, conversation, budget)))
                    else:
                        ready.append((item, prepare_prompt(loaded, conversation, budget)))
                except CosmosLlavaError as exc:
                    rows[item.id] = _answer_row(item, name, None, error=first_line(exc))
            if ready:
                began = time.perf_counter()
                samples = generate_batch(loaded, [prepared for _, prepared in ready], generation)
                seconds = (time.perf_counter() - began) / len(ready)
                for (item, prepared), (sample,) in zip(ready, samples):
                    extra = dict(prompt_tokens=prepared.prompt_tokens, completion_tokens=sample.completion_tokens,
                                 finish_reason=sample.finish_reason, seconds=round(seconds, 3))
                    if reasoning is not None:
                        trace = "<SUMMARY>" + sample.text
                        answer, well_formed = conclusion_of(trace)
                        extra["reasoning"] = {"mode": "cot", "trace": trace, "well_formed": well_formed,
                                              "generated_tokens": sample.completion_tokens}
                    else:
                        answer = sample.text.strip()
                    rows[item.id] = _answer_row(item, name, answer, **extra)
            for item in batch:
                writer.write(rows[item.id])
                bar.update(1)
    finally:
        bar.close()
        writer.close()
    return len(todo), len(items) - len(todo)


def answer_endpoint(spec, items: list[Item], out: Path, settings: AnswerSettings) -> tuple[int, int]:
    """Answer through an OpenAI-compatible endpoint (a registry entry), `concurrency` requests at once."""
    from ..openai_client import ChatClient, Endpoint, EndpointError
    from ..reasoning import conclusion_of, reasoning_conversation
    from ..registry import EndpointBackend

    reasoning = settings.reasoning
    if reasoning is not None and reasoning.mode != "cot":
        raise CosmosLlavaError(f"--reasoning {reasoning.mode} needs a local model; '{spec.name}' is an endpoint")
    client = ChatClient(Endpoint(spec.endpoint, spec.endpoint_model, spec.api_key(), timeout_s=spec.timeout_s))
    backend = EndpointBackend(spec)
    budget = reasoning.max_new_tokens if reasoning is not None else settings.max_new_tokens
    by_id = {item.id: item for item in items}

    def work(job: Job, client: ChatClient) -> dict:
        item = by_id[job.id]
        try:
            conversation = item.conversation()
            if reasoning is not None:
                conversation = reasoning_conversation(conversation)
            reply = client.complete(backend.messages(conversation), max_tokens=budget,
                                    temperature=settings.temperature, seed=settings.seed)
        except CosmosLlavaError as exc:
            if isinstance(exc, EndpointError) and not exc.final:
                raise  # transient: not written, a rerun asks again
            return _answer_row(item, spec.name, None, error=first_line(exc))
        extra = dict(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                     finish_reason=reply.finish_reason)
        answer = reply.text.strip()
        if reasoning is not None:
            answer, well_formed = conclusion_of(reply.text)
            extra["reasoning"] = {"mode": "cot", "trace": reply.text, "well_formed": well_formed}
        return _answer_row(item, spec.name, answer, **extra)

    try:
        report = run_jobs([Job(item.id, None) for item in items], work, client, out, settings.concurrency,
                          progress=settings.progress, desc=f"answers {spec.name}")
    finally:
        client.close()
    if report.failed:
        print(f"{len(report.failed)} answers from '{spec.name}' failed ({report.failed[0][1]}); "
              "rerun the same command to retry them", file=sys.stderr)
    return report.written, report.already_done


# ------------------------------------------------------------------------------------------- judging

@dataclass
class JudgeSettings:
    endpoint: str
    model: str
    api_key: str | None = None
    concurrency: int = 4
    retries: int = 2  # extra requests when a reply has no readable score
    show_image: bool = False
    max_tokens: int = 512
    timeout_s: float = 120.0
    progress: bool = True


def _with_images(messages: list[dict], images: list[Path]) -> list[dict]:
    """The judge's user message with the item's images attached (for judges that can see)."""
    from ..openai_client import image_part

    out = [dict(m) for m in messages]
    out[-1]["content"] = [*(image_part(path, max_side=1024) for path in images),
                          {"type": "text", "text": out[-1]["content"]}]
    return out


def _ask(client, messages: list[dict], parse, retries: int, max_tokens: int):
    """(parsed, raw reply): greedy first, then sampled retries while the reply does not parse."""
    raw = ""
    for attempt in range(1 + retries):
        raw = client.complete(messages, max_tokens=max_tokens, temperature=0.0 if attempt == 0 else 0.7,
                              seed=attempt).text
        parsed = parse(raw)
        if parsed is not None:
            return parsed, raw
    return None, raw


def judge_answers(metric: str, answers: list[dict], items: dict[str, Item], out: Path, settings: JudgeSettings):
    """Score answers with the judge; one JSON line per answer in `out` (resumable)."""
    from ..openai_client import ChatClient, Endpoint, EndpointError

    client = ChatClient(Endpoint(settings.endpoint, settings.model, settings.api_key, timeout_s=settings.timeout_s))

    def judge100(row: dict, item: Item) -> dict:
        messages = judge100_messages(item.question, item.reference, row["answer"], item.context)
        if settings.show_image and item.images:
            messages = _with_images(messages, item.images)
        score, raw = _ask(client, messages, parse_score100, settings.retries, settings.max_tokens)
        if score is None:
            return {"score": None, "error": f"no score in the judge's reply after {1 + settings.retries} tries",
                    "raw": raw}
        return {"score": score, "reason": parse_reason(raw), "raw": raw}

    def relative(row: dict, item: Item) -> dict:
        orders, raws = [], []
        for first, second in ((item.reference, row["answer"]), (row["answer"], item.reference)):
            messages = relative_messages(item.question, item.context, first, second)
            if settings.show_image and item.images:
                messages = _with_images(messages, item.images)
            pair, raw = _ask(client, messages, parse_pair_scores, settings.retries, settings.max_tokens)
            orders.append(pair)
            raws.append(raw)
        (ref_first, cand_second), (cand_first, ref_second) = (p or (None, None) for p in orders)
        if orders[0] is None and orders[1] is None:
            return {"reference": None, "candidate": None, "raw": raws,
                    "error": f"no score pair in the judge's replies after {1 + settings.retries} tries per order"}
        reference, candidate = relative_score((ref_first, ref_second), (cand_second, cand_first))
        return {"reference": reference, "candidate": candidate,
                "orders": [{"reference": ref_first, "candidate": cand_second},
                           {"reference": ref_second, "candidate": cand_first}], "raw": raws}

    score = {"judge100": judge100, "relative": relative}[metric]

    def work(job: Job, client) -> dict:
        row = job.payload
        try:
            result = score(row, items[row["id"]])
        except EndpointError as exc:
            if not exc.final:
                raise
            result = {"error": f"endpoint: {first_line(exc)}"}
        return {"id": row["id"], **result}

    jobs = [Job(row["id"], row) for row in answers if row.get("answer") is not None]
    try:
        report = run_jobs(jobs, work, client, out, settings.concurrency, progress=settings.progress,
                          desc=f"{metric} {out.stem.rsplit('.', 1)[0]}")
    finally:
        client.close()
    return report, client.usage


# ------------------------------------------------------------------------------------------- summary

def _grouped(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["category"], []).append(row)
    out = {name: groups[name] for name in sorted(groups)}
    if rows:
        out["overall"] = rows
    return out


def _judge100_summary(rows: list[dict], judged: dict[str, dict]) -> dict:
    out = {}
    for category, group in _grouped(rows).items():
        scores = [judged[r["id"]]["score"] for r in group
                  if r["id"] in judged and judged[r["id"]].get("score") is not None]
        entry = {"n": len(group), "scored": len(scores), "failed": len(group) - len(scores),
                 "mean": None, "low": None, "high": None}
        if scores:
            entry["mean"], entry["low"], entry["high"] = mean_and_ci(scores)
        out[category] = entry
    return out


def _relative_summary(rows: list[dict], judged: dict[str, dict]) -> dict:
    out = {}
    for category, group in _grouped(rows).items():
        pairs = [(judged[r["id"]]["reference"], judged[r["id"]]["candidate"]) for r in group
                 if r["id"] in judged and judged[r["id"]].get("candidate") is not None]
        entry = {"n": len(group), "scored": len(pairs), "failed": len(group) - len(pairs),
                 "score": None, "reference_mean": None, "candidate_mean": None}
        if pairs:
            entry["reference_mean"] = sum(r for r, _ in pairs) / len(pairs)
            entry["candidate_mean"] = sum(c for _, c in pairs) / len(pairs)
            if entry["reference_mean"] > 0:
                entry["score"] = relative_summary(pairs)
        out[category] = entry
    return out


def _binary_summary(rows: list[dict]) -> dict:
    chosen = [{"prediction": r.get("answer"), "label": r["reference"], "category": r["category"]}
              for r in rows if r["answer_type"] == "yes_no"]
    return {name: report.to_dict() for name, report in by_category(chosen).items()} if chosen else {}


def _exact_summary(rows: list[dict]) -> dict:
    chosen = [r for r in rows if r["answer_type"] == "short"]
    out = {}
    for category, group in _grouped(chosen).items():
        correct = sum(1 for r in group if r.get("answer") is not None and answers_match(r["answer"], r["reference"]))
        out[category] = {"n": len(group), "correct": correct, "accuracy": correct / len(group)}
    return out


def summarise_model(name: str, items: list[Item], answers: dict[str, dict], judged: dict[str, dict[str, dict]],
                    metrics: list[str]) -> tuple[dict, list[dict]]:
    """(the model's summary, every answer row with its scores) over the items in scope."""
    rows = [answers[item.id] for item in items if item.id in answers]
    errors = sum(1 for r in rows if r.get("answer") is None)
    tokens = [r["completion_tokens"] for r in rows if r.get("completion_tokens") is not None]
    seconds = [r["seconds"] for r in rows if r.get("seconds") is not None]
    summary: dict = {"generation": {
        "rows": len(items), "answered": len(rows) - errors, "errors": errors, "missing": len(items) - len(rows),
        "completion_tokens_mean": sum(tokens) / len(tokens) if tokens else None,
        "seconds_per_answer": sum(seconds) / len(seconds) if seconds else None}}
    traced = [r["reasoning"] for r in rows if r.get("reasoning")]
    if traced:
        summary["generation"]["reasoning"] = {
            "mode": traced[0]["mode"], "well_formed": sum(1 for t in traced if t.get("well_formed")) / len(traced),
            "judge_tokens_mean": sum(t.get("judge_tokens", 0) for t in traced) / len(traced),
            "comparisons_mean": sum(t.get("comparisons", 0) for t in traced) / len(traced)}
    if "judge100" in metrics:
        summary["judge100"] = _judge100_summary(rows, judged.get("judge100", {}))
    if "relative" in metrics:
        summary["relative"] = _relative_summary(rows, judged.get("relative", {}))
    if "binary" in metrics:
        summary["binary"] = _binary_summary(rows)
    if "exact" in metrics:
        summary["exact"] = _exact_summary(rows)
    scored = []
    for row in rows:
        row = dict(row)
        for metric, by_id in judged.items():
            if row["id"] in by_id:
                row[metric] = {k: v for k, v in by_id[row["id"]].items() if k not in ("id", "raw")}
        if "binary" in metrics and row["answer_type"] == "yes_no":
            row["binary"] = {"prediction": yes_no(row["answer"]) if row.get("answer") is not None else "unknown",
                             "label": yes_no(row["reference"])}
        if "exact" in metrics and row["answer_type"] == "short":
            row["exact"] = row.get("answer") is not None and answers_match(row["answer"], row["reference"])
        scored.append(row)
    return summary, scored


# ------------------------------------------------------------------------------------------- command

@dataclass
class EvalPlan:
    models: list  # ModelSpec
    items: list[Item]
    out: Path
    metrics: list[str]
    answer: AnswerSettings
    judge: JudgeSettings | None
    data: str
    notes: list[str] = field(default_factory=list)


def add_eval_parser(sub) -> None:
    from ..loading import DTYPE_CHOICES, QUANT_CHOICES
    from ..reasoning import add_reasoning_arguments

    p = sub.add_parser("eval", help="answer a test set with one or more models, judge the answers, write a report")
    p.add_argument("--model", action="append", required=True, metavar="DIR_OR_NAME",
                   help="a LLaVA folder, hub id, or a name in --models (repeat to compare models)")
    p.add_argument("--models", default=None, metavar="YAML", help="model registry (app.py's) to look names up in")
    p.add_argument("--data", required=True, help="LLaVA JSON/JSONL: conversations ending in the reference answer")
    p.add_argument("--images", default=None, help="folder the rows' images are relative to (default: the data's)")
    p.add_argument("--out", required=True, help="output folder (a rerun continues where it stopped)")
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated, from {','.join(METRICS)} (default: binary,exact, and the judge "
                        "metrics when --judge-endpoint is given)")
    p.add_argument("--limit", type=int, default=None, help="only the first N rows")
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("answering")
    g.add_argument("--batch-size", type=int, default=8, help="rows generated at once by a local model")
    g.add_argument("--temperature", type=float, default=0.0, help="0: greedy (reproducible)")
    g.add_argument("--top-p", type=float, default=0.9)
    g.add_argument("--max-new-tokens", type=int, default=512)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--concurrency", type=int, default=4, help="requests at once to endpoint models")
    g.add_argument("--quant", choices=QUANT_CHOICES, default="none", help="for local models given as folders")
    g.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto")
    g.add_argument("--device-map", default=None)
    g.add_argument("--context-length", type=int, default=None)
    add_reasoning_arguments(p)
    g = p.add_argument_group("judge (any OpenAI-compatible chat model: GPT-4o, vLLM, cosmos_llava serve)")
    g.add_argument("--judge-endpoint", default=os.environ.get("COSMOS_LLAVA_JUDGE_ENDPOINT"), metavar="URL",
                   help="base URL ending in /v1 (env: COSMOS_LLAVA_JUDGE_ENDPOINT)")
    g.add_argument("--judge-model", default=os.environ.get("COSMOS_LLAVA_JUDGE_MODEL"), metavar="NAME")
    g.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", metavar="VAR")
    g.add_argument("--judge-concurrency", type=int, default=4)
    g.add_argument("--judge-retries", type=int, default=2, help="extra requests when a reply has no readable score")
    g.add_argument("--judge-image", action="store_true", help="also show the judge the image (a vision judge)")
    g.add_argument("--judge-timeout", type=float, default=120.0, help="seconds per judge request")
    g.add_argument("--judge-max-tokens", type=int, default=512, help="longest judge reply")


def plan_from_args(args) -> EvalPlan:
    """Everything checked before any model loads: flags, data, images, registry names."""
    from ..reasoning import reasoning_from_args
    from ..registry import ModelSpec, load_registry

    if args.metrics:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            raise CosmosLlavaError(f"--metrics: unknown metric '{unknown[0] if unknown else ''}' "
                                   f"(choose from {', '.join(METRICS)})")
    else:
        metrics = ["binary", "exact", *(JUDGE_METRICS if args.judge_endpoint else ())]
    judge = None
    if any(m in JUDGE_METRICS for m in metrics):
        if not args.judge_endpoint or not args.judge_model:
            raise CosmosLlavaError("judge100 and relative need a judge: give --judge-endpoint URL and --judge-model NAME")
        if not args.judge_endpoint.startswith(("http://", "https://")):
            raise CosmosLlavaError(f"--judge-endpoint must be an http(s) URL, got '{args.judge_endpoint}'")
        if args.judge_retries < 0 or args.judge_concurrency < 1:
            raise CosmosLlavaError("--judge-retries must be 0 or more and --judge-concurrency at least 1")
        judge = JudgeSettings(args.judge_endpoint, args.judge_model, os.environ.get(args.judge_api_key_env) or None,
                              args.judge_concurrency, args.judge_retries, args.judge_image,
                              max_tokens=args.judge_max_tokens, timeout_s=args.judge_timeout,
                              progress=not args.no_progress)
    for flag in ("batch_size", "max_new_tokens", "concurrency"):
        if getattr(args, flag) < 1:
            raise CosmosLlavaError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise CosmosLlavaError("--limit must be at least 1")
    if args.temperature < 0:
        raise CosmosLlavaError("--temperature must be 0 or more")
    reasoning = reasoning_from_args(args, seed=args.seed)
    registry = load_registry(args.models) if args.models else None
    specs, names = [], set()
    for given in args.model:
        if registry is not None and given in registry.names:
            spec = registry.spec(given)
        elif Path(given).exists() or given.count("/") == 1:
            spec = ModelSpec(name=Path(given).name if Path(given).exists() else given, model=given, quant=args.quant,
                             dtype=args.dtype, device_map=args.device_map, context_length=args.context_length)
        else:
            where = f" or a name in {args.models}" if registry is not None else " (or give --models YAML for names)"
            raise CosmosLlavaError(f"--model {given}: not a model folder, hub id{where}")
        if slug(spec.name) in names:
            raise CosmosLlavaError(f"--model {given}: two models would share the name '{slug(spec.name)}'")
        names.add(slug(spec.name))
        specs.append(spec)
    items = read_items(args.data, args.images)
    if args.limit:
        items = items[:args.limit]
    answer = AnswerSettings(args.temperature, args.top_p, args.max_new_tokens, args.batch_size, args.seed,
                            args.concurrency, reasoning, args if args.reasoning_judge_endpoint else None,
                            progress=not args.no_progress)
    return EvalPlan(specs, items, Path(args.out), metrics, answer, judge, str(args.data))


def run_eval(plan: EvalPlan, echo=lambda line: print(line, file=sys.stderr)) -> dict:
    """Answer, judge, summarise; returns the summary (also written to `<out>/summary.json`)."""
    from ..loading import load_model
    from .report import write_report

    out = plan.out
    (out / "answers").mkdir(parents=True, exist_ok=True)
    by_id = {item.id: item for item in plan.items}
    summary = {"data": plan.data, "rows": len(plan.items), "metrics": plan.metrics,
               "reasoning": plan.answer.reasoning.mode if plan.answer.reasoning else "off",
               "judge": {"endpoint": plan.judge.endpoint, "model": plan.judge.model} if plan.judge else None,
               "models": {}}
    results = []
    for spec in plan.models:
        answers_path = out / "answers" / f"{slug(spec.name)}.jsonl"
        if forget_failures(answers_path):
            echo(f"{spec.name}: retrying the answers that failed last time")
        if spec.is_local:
            done = finished_ids(answers_path)
            todo = [item for item in plan.items if item.id not in done]
            if todo:
                echo(f"loading {spec.name} ...")
                loaded = load_model(spec.model, quant=spec.quant, dtype=spec.dtype, device_map=spec.device_map,
                                    adapter=spec.adapter, template=spec.template, system_prompt=spec.system_prompt,
                                    context_length=spec.context_length)
                try:
                    done, before = answer_local(loaded, spec.name, plan.items, answers_path, plan.answer)
                finally:
                    loaded.executor.shutdown(wait=True)
                    del loaded
            else:
                done, before = 0, len(plan.items)
        else:
            done, before = answer_endpoint(spec, plan.items, answers_path, plan.answer)
        echo(f"{spec.name}: {done} answered now, {before} already done")
        answers = finished_records(answers_path)
        judged: dict[str, dict] = {}
        for metric in plan.metrics:
            if metric not in JUDGE_METRICS:
                continue
            path = out / "judged" / f"{slug(spec.name)}.{metric}.jsonl"
            forget_failures(path)
            rows = [answers[item.id] for item in plan.items if item.id in answers]
            report, usage = judge_answers(metric, rows, by_id, path, plan.judge)
            echo(f"{spec.name} {metric}: {report.written} judged now, {report.already_done} already done"
                 + (f", {len(report.failed)} failed (rerun to retry)" if report.failed else "")
                 + f"; judge {usage.prompt_tokens:,} tokens in, {usage.completion_tokens:,} out")
            judged[metric] = finished_records(path)
        summary["models"][spec.name], scored = summarise_model(spec.name, plan.items, answers, judged, plan.metrics)
        results.extend(scored)
    _write_atomic(out / "summary.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    _write_atomic(out / "results.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
    for path in write_report(summary, out):
        echo(f"wrote {path}")
    return summary


def forget_failures(path: Path) -> int:
    """Remove the rows recorded with an "error" from a results file, so this run tries them again
    (a judge that was down or too small, a context that was too short); returns how many."""
    failed = {id_ for id_, row in finished_records(path).items() if row.get("error")}
    if failed:
        drop_ids(path, failed)
    return len(failed)


def _write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
