"""`python -m annotate instruct`: LLaVA-style visual instruction data from symbolic image context.

As in LLaVA (Liu et al. 2023), a text-only LLM never sees the image: it reads captions and object boxes
and writes what a person who sees the image would say. Three kinds, each with its own system prompt
and a worked example (few-shot), written for Turkish output:
  conversation  a multi-turn chat about the image (objects, counts, actions, positions)
  detail        a rich, paragraph-long description (the question is drawn from a fixed list)
  complex       one question that needs reasoning or background knowledge, with a detailed answer
With --via-english the prompts are English (LLaVA's originals' spirit) and every turn is then
translated to Turkish with `annotate translate`'s translator.

Input records: {"id", "image", "captions": [str, ...], "boxes": [{"label": str, "bbox": [x1, y1, x2, y2]}]}
with boxes normalised to 0..1 (COCO: divide by the image size). One output row per record and kind,
id "<record id>-<kind>".
"""

from __future__ import annotations

import argparse
import re

from cosmos_llava.errors import CosmosLlavaError

from cosmos_llava.openai_client import ChatClient
from cosmos_llava.jobs import Job, Rejected, read_records, stable_seed
from cosmos_llava.text import FormatError, language_of, looks_turkish, parse_qa_pairs
from .translate import translate_texts

KINDS = ("conversation", "detail", "complex")

_ROLE_TR = ("Sen bir görsel yapay zekâ asistanısın ve tek bir görsele bakıyorsun. Sana görseli anlatan birkaç "
            "cümle ve görseldeki nesnelerin konumları verilir. Konumlar [x1, y1, x2, y2] biçiminde, 0 ile 1 "
            "arasında normalize edilmiş kutulardır: x1, y1 sol üst köşe; x2, y2 sağ alt köşedir. Görseli kendin "
            "görüyormuş gibi yaz: cümlelerden, kutulardan ya da koordinatlardan asla söz etme. Her şeyi Türkçe yaz.")
SYSTEM_TR = {
    "conversation": _ROLE_TR + (
        "\nGörseli soran bir kullanıcı ile görseli gören bir asistan arasında bir sohbet yaz. Soruları çeşitlendir: "
        "nesnelerin türleri, sayıları, eylemler, konumlar, nesnelerin birbirine göre yerleri. Yalnızca görselden "
        "kesin olarak cevaplanabilen sorular sor; emin olunamayacak ayrıntılar hakkında soru sorma. Cevaplar "
        "görseli gören birinin tonunda, açık ve eksiksiz olsun. 3 ile 5 arası soru-cevap çifti yaz. Biçim tam "
        "olarak şöyle olmalı, başka hiçbir şey ekleme:\nSoru: ...\nCevap: ...\nSoru: ...\nCevap: ..."),
    "detail": _ROLE_TR + (
        "\nGörseli ayrıntılı ve zengin bir paragrafla anlat: sahne, nesneler, sayıları, renkleri ve biçimleri "
        "(biliniyorsa), konumları, birbirlerine göre yerleri ve yapılan eylemler. Yalnızca açıklamayı yaz; "
        "başlık, liste ya da açıklama dışında bir şey ekleme."),
    "complex": _ROLE_TR + (
        "\nGörselin içeriğine dayanan ve cevabı adım adım akıl yürütme ya da arka plan bilgisi gerektiren tek "
        "bir soru yaz (örneğin bir durumun nedeni, olası sonuçları, insanların amacı), ardından ayrıntılı ve "
        "mantıklı bir cevap ver. Cevap görselde görülenlere dayanmalı. Biçim tam olarak şöyle olmalı:\n"
        "Soru: ...\nCevap: ..."),
}

_ROLE_EN = ("You are an AI visual assistant looking at a single image. You are given a few sentences describing "
            "it and the positions of objects in it as boxes [x1, y1, x2, y2], normalised to 0..1 (top-left, then "
            "bottom-right corner). Write as if you see the image yourself: never mention the sentences, boxes or "
            "coordinates.")
SYSTEM_EN = {
    "conversation": _ROLE_EN + (
        "\nWrite a conversation between a person asking about the image and an assistant who sees it. Vary the "
        "questions: object types, counts, actions, locations, relative positions. Only ask questions with a "
        "definite answer from the image. Write 3 to 5 pairs, exactly in this format and nothing else:\n"
        "Question: ...\nAnswer: ...\nQuestion: ...\nAnswer: ..."),
    "detail": _ROLE_EN + (
        "\nDescribe the image in one rich, detailed paragraph: the scene, objects, their counts, colours, "
        "positions, relative positions and actions. Write only the description."),
    "complex": _ROLE_EN + (
        "\nWrite one question about the image whose answer needs step-by-step reasoning or background "
        "knowledge, then a detailed, well-reasoned answer grounded in what the image shows. Exactly this "
        "format:\nQuestion: ...\nAnswer: ..."),
}

# One worked example per kind (the same scene), shown to the model before the real record.
EXAMPLE_CONTEXT = {
    "captions": ["İki kişi siyah bir cipin yanında bavullarını yüklüyor.",
                 "Kapalı bir otoparkta, yolculuğa hazırlanan insanlar arabaya eşya koyuyor."],
    "boxes": [{"label": "kişi", "bbox": [0.681, 0.242, 0.774, 0.694]},
              {"label": "kişi", "bbox": [0.63, 0.222, 0.686, 0.516]},
              {"label": "araba", "bbox": [0.0, 0.171, 0.597, 0.8]},
              {"label": "bavul", "bbox": [0.758, 0.413, 0.845, 0.69]},
              {"label": "sırt çantası", "bbox": [0.384, 0.696, 0.485, 0.914]}],
}
EXAMPLE_CONTEXT_EN = {
    "captions": ["Two people load their suitcases next to a black SUV.",
                 "In an indoor garage, people getting ready for a trip put their things into the car."],
    "boxes": [{**box, "label": label} for box, label in
              zip(EXAMPLE_CONTEXT["boxes"], ["person", "person", "car", "suitcase", "backpack"])],
}
EXAMPLE_ANSWER_TR = {
    "conversation": ("Soru: Görseldeki araç ne renk?\nCevap: Görseldeki araç siyah renkli bir cip.\n"
                     "Soru: Aracın yanında kaç kişi var?\nCevap: Aracın yanında iki kişi var.\n"
                     "Soru: Bu kişiler ne yapıyor?\nCevap: Bavullarını ve çantalarını aracın arkasına "
                     "yüklüyorlar; bir yolculuğa hazırlanıyor gibi görünüyorlar."),
    "detail": ("Görselde kapalı bir otoparkta duran siyah bir cip görülüyor. Aracın sağ tarafında iki kişi, "
               "yolculuk için eşyalarını yüklemekle meşgul. Kişilerden birinin yanında yerde bir bavul duruyor, "
               "aracın önüne yakın bir yerde de bir sırt çantası var. Sahne, bir grubun yola çıkmadan önce "
               "hazırlık yaptığı anı yansıtıyor."),
    "complex": ("Soru: Bu kişiler yolculuk sırasında ne gibi zorluklarla karşılaşabilir?\nCevap: Aracın yanında "
                "birden fazla bavul ve çanta var; bu eşyaların hepsini bagaja sığdırmak zor olabilir. Eşyaları "
                "dengeli yerleştirmek ve görüşü engellememek gerekir. Ayrıca kalabalık bir grup ve çok eşyayla "
                "uzun bir yolculuk, sık mola vermeyi gerektirebilir."),
}
EXAMPLE_ANSWER_EN = {
    "conversation": ("Question: What colour is the vehicle in the image?\nAnswer: It is a black SUV.\n"
                     "Question: How many people are next to it?\nAnswer: There are two people next to the vehicle.\n"
                     "Question: What are they doing?\nAnswer: They are loading their luggage into the back, "
                     "apparently getting ready for a trip."),
    "detail": ("The image shows a black SUV parked in an indoor garage. Two people on its right are loading "
               "their belongings for a trip; a suitcase stands on the ground beside one of them and a backpack "
               "lies near the front of the car. The scene captures a group preparing to set off."),
    "complex": ("Question: What challenges might these people face on their trip?\nAnswer: There are several "
                "suitcases and bags, so fitting everything into the car may be hard; the luggage has to be "
                "packed so that it does not block the driver's view. A long trip with this much luggage may "
                "also call for frequent stops."),
}

DETAIL_QUESTIONS = (
    "Görseli ayrıntılı olarak anlatır mısın?",
    "Bu görselde neler olduğunu ayrıntılı biçimde açıkla.",
    "Görselde gördüklerini kapsamlı bir şekilde tarif et.",
    "Bu fotoğrafı ayrıntılarıyla betimler misin?",
    "Görseldeki sahneyi, nesneleri ve konumlarını ayrıntılı olarak anlat.",
    "Bu görüntüde neler var? Ayrıntılı bir açıklama yap.",
    "Görselin ayrıntılı bir açıklamasını yazar mısın?",
    "Fotoğraftaki sahneyi detaylıca açıklar mısın?",
)
MIN_DETAIL_WORDS = 20
# A generated text must not give away that it was written from captions and boxes.
CONTEXT_LEAKS = re.compile(r"\[\s*[01]?\.\d+\s*,|koordinat|sınırlayıcı kutu|kutu(?:lar)?da|bounding box|"
                           r"verilen (?:cümle|açıklama)|açıklamalarda|caption", re.IGNORECASE)


def format_context(record: dict, english: bool = False) -> str:
    captions = "\n".join(f"- {c}" for c in record["captions"])
    boxes = "\n".join(f"- {b['label']}: [{', '.join(f'{v:.3f}' for v in b['bbox'])}]" for b in record.get("boxes") or [])
    heads = ("Captions", "Objects") if english else ("Açıklamalar", "Nesneler")
    return f"{heads[0]}:\n{captions}" + (f"\n\n{heads[1]}:\n{boxes}" if boxes else "")


def check_record(record: dict) -> None:
    captions = record.get("captions")
    if not isinstance(captions, list) or not captions or not all(isinstance(c, str) and c.strip() for c in captions):
        raise Rejected("input: the record needs 'captions', a non-empty list of strings")
    for box in record.get("boxes") or []:
        bbox = box.get("bbox") if isinstance(box, dict) else None
        if not (isinstance(box, dict) and isinstance(box.get("label"), str) and isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in bbox)):
            raise Rejected(f"input: bad box {box!r}: expected {{'label': str, 'bbox': [x1, y1, x2, y2] in 0..1}}")


def build_messages(record: dict, kind: str, english: bool) -> list[dict]:
    system, context, examples = ((SYSTEM_EN, EXAMPLE_CONTEXT_EN, EXAMPLE_ANSWER_EN) if english
                                 else (SYSTEM_TR, EXAMPLE_CONTEXT, EXAMPLE_ANSWER_TR))
    return [{"role": "system", "content": system[kind]},
            {"role": "user", "content": format_context(context, english)},
            {"role": "assistant", "content": examples[kind]},
            {"role": "user", "content": format_context(record, english)}]


def parse_output(raw: str, kind: str, job_id: str) -> list[tuple[str, str]]:
    """The (question, answer) pairs of an output; `detail` gets its question from DETAIL_QUESTIONS."""
    if kind == "detail":
        text = raw.strip()
        if len(text.split()) < MIN_DETAIL_WORDS:
            raise Rejected(f"format: a detailed description needs at least {MIN_DETAIL_WORDS} words, "
                           f"got {len(text.split())}", raw)
        return [(DETAIL_QUESTIONS[stable_seed(job_id) % len(DETAIL_QUESTIONS)], text)]
    try:
        pairs = parse_qa_pairs(raw)
    except FormatError as exc:
        raise Rejected(f"format: {exc}", raw) from None
    if kind == "complex" and len(pairs) != 1:
        raise Rejected(f"format: expected one question, got {len(pairs)}", raw)
    return pairs


def validate_pairs(pairs: list[tuple[str, str]], raw: str) -> None:
    for question, answer in pairs:
        for text in (question, answer):
            leak = CONTEXT_LEAKS.search(text)
            if leak:
                raise Rejected(f"mentions the symbolic context: {leak.group(0)!r}", raw)
            if language_of(text) == "en":
                raise Rejected(f"not Turkish: {text[:60]!r}", raw)
    if not looks_turkish(" ".join(q + " " + a for q, a in pairs)):
        raise Rejected(f"not Turkish: {pairs[0][1][:60]!r}", raw)


def generate(record: dict, kind: str, client: ChatClient, args) -> dict:
    check_record(record)
    job_id = f"{record['id']}-{kind}"
    seed = stable_seed(job_id)
    raw = client.complete(build_messages(record, kind, args.via_english), max_tokens=args.max_tokens,
                          temperature=args.temperature, seed=seed).text
    pairs = parse_output(raw, kind, job_id)
    if args.via_english and kind != "detail":
        texts, _ = translate_texts(client, [t for pair in pairs for t in pair], seed)
        pairs = list(zip(texts[0::2], texts[1::2]))
    elif args.via_english:
        pairs = [(pairs[0][0], translate_texts(client, [pairs[0][1]], seed)[0][0])]
    validate_pairs(pairs, raw)
    turns = []
    for number, (question, answer) in enumerate(pairs):
        turns.append({"from": "human", "value": ("<image>\n" if number == 0 else "") + question})
        turns.append({"from": "gpt", "value": answer})
    row = {"id": job_id}
    if record.get("image"):
        row["image"] = record["image"]
    row.update(category=kind, conversations=turns)
    return row


def make_jobs(records: list[dict], kinds: list[str]) -> list[Job]:
    return [Job(f"{record['id']}-{kind}", (record, kind)) for record in records for kind in kinds]


def build_parser() -> argparse.ArgumentParser:
    from .runner import task_parser

    parser = task_parser("instruct", "Generate LLaVA-style Turkish instruction data from captions and object "
                                     "boxes (conversation, detail, complex).",
                         'JSON/JSONL of {"id", "image", "captions", "boxes"}')
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, from: {', '.join(KINDS)}")
    parser.add_argument("--via-english", action="store_true", help="generate in English, then translate to Turkish")
    return parser


def main(argv: list[str]) -> None:
    from .runner import run_from_args

    args = build_parser().parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise CosmosLlavaError(f"unknown kind '{(unknown or [''])[0]}'; choose from: {', '.join(KINDS)}")
    jobs = make_jobs(read_records(args.input), kinds)
    run_from_args(args, jobs, lambda job, client: generate(*job.payload, client, args))
