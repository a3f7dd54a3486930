"""`python -m annotate translate`: an English LLaVA-format dataset to Turkish, structure kept.

Each record's turns go to the endpoint in one request, as a JSON array of strings (batched: one
round trip a record). Before sending, what must survive unchanged - the `<image>` markers, code, URLs -
is swapped for placeholders (⟦0⟧, ⟦1⟧, ...) and put back after; turns already in Turkish are not sent.
Every translation is checked: same number of strings, placeholders intact, the same numbers, named
entities kept (unless --no-entity-check), and Turkish. Every other field of the record is kept as is.
"""

from __future__ import annotations

import argparse
import json
import re

from cosmos_llava.openai_client import ChatClient
from cosmos_llava.jobs import Job, Rejected, read_records, stable_seed
from cosmos_llava.text import FormatError, check_translation, language_of, looks_turkish, protect, restore

SYSTEM_PROMPT = """You are a professional English-to-Turkish translator of visual instruction-tuning data \
(questions and answers about images). The user sends a JSON array of English strings. Translate every string \
into natural, fluent Turkish.
Rules:
- Answer with ONLY a JSON array of exactly as many strings as you received, in the same order. No comments.
- Keep every placeholder such as ⟦0⟧ exactly as written, in the right place in the sentence.
- Keep all numbers exactly as written (digits stay digits).
- Keep names of people, places, brands and titles exactly as written; add Turkish suffixes after an \
apostrophe (London'da, Google'ın).
- Keep the meaning, tone and line breaks; do not add or drop information."""

EXAMPLE_IN = ["⟦0⟧\nWhat is the man in the photo holding?",
              "He is holding a red umbrella while walking with Anna in Central Park."]
EXAMPLE_OUT = ["⟦0⟧\nFotoğraftaki adam elinde ne tutuyor?",
               "Anna ile Central Park'ta yürürken elinde kırmızı bir şemsiye tutuyor."]


def translate_texts(client: ChatClient, texts: list[str], seed: int, temperature: float = 0.2,
                    max_tokens: int = 2048, entities: bool = True) -> tuple[list[str], str]:
    """Translate `texts` to Turkish in one request; returns (translations, raw output).

    Texts already in Turkish, and empty ones, are returned unchanged and not sent."""
    protected = [protect(text) for text in texts]
    send = [i for i, text in enumerate(texts) if text.strip() and not looks_turkish(text)]
    if not send:
        return list(texts), ""
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": json.dumps(EXAMPLE_IN, ensure_ascii=False)},
        {"role": "assistant", "content": json.dumps(EXAMPLE_OUT, ensure_ascii=False)},
        {"role": "user", "content": json.dumps([protected[i][0] for i in send], ensure_ascii=False)},
    ]
    raw = client.complete(messages, max_tokens=max_tokens, temperature=temperature, seed=seed).text
    answers = parse_string_array(raw, len(send))
    out = list(texts)
    for i, answer in zip(send, answers):
        try:
            translated = restore(answer.strip(), protected[i][1])
            check_translation(texts[i], translated, entities=entities)
        except FormatError as exc:
            raise Rejected(f"{exc} (string {i + 1})", raw) from None
        if language_of(translated) == "en":
            raise Rejected(f"not Turkish: {translated[:60]!r} (string {i + 1})", raw)
        out[i] = translated
    return out, raw


def parse_string_array(raw: str, expected: int) -> list[str]:
    """The JSON array in a model's answer (code fences and text around it are tolerated)."""
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", raw.strip())
    start, end = text.find("["), text.rfind("]")
    try:
        if start < 0 or end < start:
            raise ValueError
        value = json.loads(text[start:end + 1])
    except ValueError:
        raise Rejected("format: the answer is not a JSON array of strings", raw) from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Rejected("format: the answer is not a JSON array of strings", raw)
    if len(value) != expected:
        raise Rejected(f"format: expected {expected} strings, got {len(value)}", raw)
    return value


def translate_record(record: dict, client: ChatClient, args) -> dict:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not all(isinstance(t, dict) and isinstance(t.get("value"), str) for t in turns):
        raise Rejected("input: the record has no 'conversations' list of {from, value} turns")
    values, raw = translate_texts(client, [t["value"] for t in turns], stable_seed(record["id"]), args.temperature,
                                  args.max_tokens, entities=not args.no_entity_check)
    return {**record, "conversations": [{**turn, "value": value} for turn, value in zip(turns, values)]}


def jobs_from_file(path: str) -> list[Job]:
    return [Job(record["id"], record) for record in read_records(path)]


def build_parser() -> argparse.ArgumentParser:
    from .runner import task_parser

    parser = task_parser("translate", "Translate a LLaVA-format dataset (JSON or JSONL) to Turkish.",
                         "LLaVA JSON list or JSONL", temperature=0.2, max_tokens=2048)
    parser.add_argument("--no-entity-check", action="store_true",
                        help="do not require English proper nouns to reappear in the translation")
    return parser


def main(argv: list[str]) -> None:
    from .runner import run_from_args

    args = build_parser().parse_args(argv)
    jobs = jobs_from_file(args.input)
    run_from_args(args, jobs, lambda job, client: translate_record(job.payload, client, args))
