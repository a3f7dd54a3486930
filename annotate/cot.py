"""`python -m annotate cot`: LLaVA-CoT reasoning traces for question + image + ground-truth answer.

The endpoint sees the image (as a data URL) and, when the record has one, a text context; it writes
the four stages <SUMMARY>, <CAPTION>, <REASONING>, <CONCLUSION> (LLaVA-CoT's prompt, asking for Turkish
text inside the English tags). A trace is kept only if it has exactly the four stages in order, is
Turkish, and its conclusion matches the ground truth (normalised: case with Turkish İ/ı, punctuation,
option letters, yes/no, numbers). Kept traces are LLaVA rows ready for `training/`.

Input records: {"id", "image" (relative to --image-folder), "question", "answer", "context" (optional)}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cosmos_llava.errors import CosmosLlavaError, ImageError

from cosmos_llava.openai_client import ChatClient, image_part
from cosmos_llava.jobs import Job, Rejected, read_records, stable_seed
from cosmos_llava.text import COT_STAGES, TraceError, answers_match, format_cot, language_of, parse_cot

# LLaVA-CoT's generation prompt (Xu et al. 2024), with the answer language set to Turkish.
PROMPT = """I have an image and a question that I want you to answer. I need you to strictly follow the format \
with four specific sections: SUMMARY, CAPTION, REASONING, and CONCLUSION. It is crucial that you adhere to this \
structure exactly as outlined and that the final answer in the CONCLUSION matches the standard correct answer \
precisely.
To explain further:
In SUMMARY, briefly explain what steps you'll take to solve the problem.
In CAPTION, describe the contents of the image, specifically focusing on details relevant to the question.
In REASONING, outline a step-by-step thought process you would use to solve the problem based on the image.
In CONCLUSION, give the final answer in a direct format, and it must match the correct answer exactly.
If it's a multiple choice question, the conclusion should only include the option without repeating what the \
option is.
Here's how the format should look:
<SUMMARY>[Summarize how you will approach the problem and explain the steps you will take to reach the answer.] \
</SUMMARY>
<CAPTION>[Provide a detailed description of the image, particularly emphasizing the aspects related to the \
question.] </CAPTION>
<REASONING>[Provide a chain-of-thought, logical explanation of the problem. This should outline step-by-step \
reasoning.] </REASONING>
<CONCLUSION>[State the final answer in a clear and direct format. It must match the correct answer exactly.] \
</CONCLUSION>
(Do not forget </CONCLUSION>!)
Write everything inside the tags in Turkish; keep the tag names in English exactly as shown.
Please apply this format meticulously to analyze the given image and answer the related question, ensuring that \
the answer matches the standard one perfectly.
{context}
Question: {question}"""
ANSWER_LINE = "\nStandard answer: {answer}"


def build_messages(record: dict, image_folder: Path, max_side: int | None, show_answer: bool = True) -> list[dict]:
    context = f"\nText about the image: {record['context']}\n" if record.get("context") else ""
    text = PROMPT.format(context=context, question=record["question"])
    if show_answer:  # as LLaVA-CoT made its data: the model explains a known answer
        text += ANSWER_LINE.format(answer=record["answer"])
    content = [{"type": "text", "text": text}]
    if record.get("image"):
        content.insert(0, image_part(image_folder / record["image"], max_side))
    return [{"role": "user", "content": content}]


def check_record(record: dict) -> None:
    for key in ("question", "answer"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise Rejected(f"input: the record needs a non-empty '{key}'")


def validate_trace(raw: str, truth: str) -> dict[str, str]:
    try:
        stages = parse_cot(raw)
    except TraceError as exc:
        raise Rejected(f"format: {exc}", raw) from None
    conclusion = stages["CONCLUSION"]
    if not answers_match(conclusion, truth):
        raise Rejected(f"wrong answer: conclusion {conclusion[:60]!r} does not match {truth!r}", raw)
    prose = " ".join(stages[s] for s in COT_STAGES if s != "CONCLUSION")
    if language_of(prose) != "tr":
        raise Rejected(f"not Turkish: {prose[:60]!r}", raw)
    return stages


def trace_record(record: dict, client: ChatClient, args) -> dict:
    check_record(record)
    try:
        messages = build_messages(record, Path(args.image_folder), args.max_image_side, not args.hide_answer)
    except ImageError as exc:
        raise Rejected(f"input: {exc}") from None
    raw = client.complete(messages, max_tokens=args.max_tokens, temperature=args.temperature,
                          seed=stable_seed(record["id"])).text
    stages = validate_trace(raw, record["answer"])
    row = {"id": record["id"]}
    if record.get("image"):
        row["image"] = record["image"]
    question = ("<image>\n" if record.get("image") else "") + record["question"]
    row.update(category="cot", conversations=[{"from": "human", "value": question},
                                              {"from": "gpt", "value": format_cot(stages)}])
    return row


def build_parser() -> argparse.ArgumentParser:
    from .runner import task_parser

    parser = task_parser("cot", "Generate LLaVA-CoT reasoning traces (SUMMARY, CAPTION, REASONING, CONCLUSION) "
                                "checked against ground-truth answers.",
                         'JSON/JSONL of {"id", "image", "question", "answer"}', temperature=0.7, max_tokens=2048)
    parser.add_argument("--image-folder", default=None, help="images are relative to this (default: the input's folder)")
    parser.add_argument("--hide-answer", action="store_true",
                        help="do not show the endpoint the ground-truth answer (traces it must find on its own)")
    parser.add_argument("--max-image-side", type=int, default=1024, help="larger images are scaled down before sending")
    return parser


def main(argv: list[str]) -> None:
    from .runner import run_from_args

    args = build_parser().parse_args(argv)
    if args.image_folder is None:
        args.image_folder = str(Path(args.input).parent)
    if not Path(args.image_folder).is_dir():
        raise CosmosLlavaError(f"image folder not found: {args.image_folder}")
    jobs = [Job(record["id"], record) for record in read_records(args.input)]
    run_from_args(args, jobs, lambda job, client: trace_record(job.payload, client, args))
