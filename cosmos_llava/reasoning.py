"""LLaVA-CoT structured reasoning: the four-stage format, stage-level beam search and best-of-N.

A reasoned reply has four stages, each in its tags: `<SUMMARY>` (the plan), `<CAPTION>` (what in
the image matters for the question), `<REASONING>` (step by step) and `<CONCLUSION>` (the answer,
which is what a user or a metric reads). Modes:

- `cot`: one reply in that format (the instruction is added to the question and the reply is opened
  with `<SUMMARY>`, so a model not trained on LLaVA-CoT data still follows it as best it can).
- `stage-beam` (LLaVA-CoT's inference-time scaling): for each stage in turn, sample N continuations
  of the trace so far that stop at the stage's closing tag; a judge compares them in pairs with
  criteria for that stage and the winner is kept (a knockout: N-1 comparisons); then the next stage.
- `best-of-n`: N whole traces; the judge keeps the best one by the conclusion criterion.

The judge is the answering model itself by default (as in LLaVA-CoT), or any OpenAI-compatible
endpoint. A verdict that cannot be read keeps the current leader and is counted.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Callable

from .conversation import Conversation, Turn
from .errors import CosmosLlavaError
from .generation import GenerationSettings, Sample, generate_batch, prepare_prompt
from .loading import LoadedModel
from .text import COT_STAGES, TraceError, parse_cot

REASONING_MODES = ("off", "cot", "stage-beam", "best-of-n")

STAGE_NAMES_TR = {"SUMMARY": "Özet", "CAPTION": "Görsel betimleme", "REASONING": "Akıl yürütme",
                  "CONCLUSION": "Sonuç"}

COT_INSTRUCTION = """\
Bu soruyu dört aşamada cevapla ve her aşamayı kendi etiketlerinin arasına yaz:
<SUMMARY>Soruyu çözmek için izleyeceğin yolun kısa bir özeti.</SUMMARY>
<CAPTION>Görselin soruyla ilgili kısımlarının betimlemesi.</CAPTION>
<REASONING>Adım adım, mantıklı bir akıl yürütme.</REASONING>
<CONCLUSION>Son cevap: kısa ve doğrudan.</CONCLUSION>
Etiketleri aynen böyle yaz; etiketlerin içini Türkçe yaz."""

# Stage-specific criteria after LLaVA-CoT's judge prompts, in Turkish.
STAGE_CRITERIA = {
    "SUMMARY": "Hangi metin, soruyu çözmek için ne yapılması gerektiğini daha iyi özetliyor? İyi bir özet, "
               "ayrıntılı hesaplara girmeden ana yaklaşımı ana hatlarıyla anlatır.",
    "CAPTION": "Hangi metin, görseldeki soruyla ilgili bilgiyi daha iyi ve daha az hatayla betimliyor? İyi bir "
               "betimleme doğru kalarak olabildiğince ayrıntılıdır; genel yorumlarla yetinmez.",
    "REASONING": "Hangi metin, soruyu çözmek için akıl yürütmeyi daha iyi ve daha az hatayla açıklıyor? Önce "
                 "soruyu, sonra her metni ayrı ayrı incele, farklarını karşılaştır ve hangisinin daha sağlam "
                 "bir akıl yürütme olduğuna karar ver.",
    "CONCLUSION": "Hangi metin soruya daha etkili bir sonuç veriyor? İyi bir sonuç akıl yürütmeyle tutarlıdır "
                  "ve soruyu cevaplamayı asla reddetmez.",
}
JUDGE_FORMAT = ("Cevabını kesinlikle şu biçimde ver, başka bir şey yazma: "
                "\"[gerekçe] olduğu için [1/2] numaralı metni seçiyorum.\"")


@dataclass
class ReasoningSettings:
    mode: str = "cot"
    n: int = 4  # candidates per stage (stage-beam) or whole traces (best-of-n)
    temperature: float = 0.7
    top_p: float = 0.9
    stage_max_tokens: int = 256  # per stage, in stage-beam
    max_new_tokens: int = 1024  # the whole trace, in cot and best-of-n
    seed: int | None = None

    def validate(self) -> None:
        if self.mode not in REASONING_MODES:
            raise CosmosLlavaError(f"reasoning mode must be one of {', '.join(REASONING_MODES)}, got '{self.mode}'")
        if self.n < 1:
            raise CosmosLlavaError(f"the number of candidates must be at least 1, got {self.n}")
        if self.mode in ("stage-beam", "best-of-n") and self.n > 1 and self.temperature <= 0:
            raise CosmosLlavaError(f"{self.mode} with {self.n} candidates needs a temperature above 0 "
                                   "(greedy sampling gives the same candidate N times)")
        for name in ("stage_max_tokens", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise CosmosLlavaError(f"{name} must be at least 1")

    def generation(self, max_new_tokens: int) -> GenerationSettings:
        return GenerationSettings(self.temperature, self.top_p, max_new_tokens, 1.0, self.seed)


@dataclass
class ReasoningResult:
    stages: dict[str, str]  # the stages the trace has (a sloppy cot trace may lack some)
    mode: str
    well_formed: bool  # the trace had all four stages, in order, closed (cot); always true when searched
    answer: str = ""  # the CONCLUSION; without one, what `conclusion_of` read from the trace
    generated_tokens: int = 0  # by the answering model, every candidate counted
    judge_tokens: int = 0  # prompt + completion tokens the judge spent
    comparisons: int = 0
    unreadable_verdicts: int = 0
    cancelled: bool = False  # stopped early (cancel_event): `stages` holds what had settled
    candidates: dict[str, list[str]] = field(default_factory=dict)  # what each search step chose from

    @property
    def text(self) -> str:
        return trace_text(self.stages)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "answer": self.answer, "stages": self.stages, "well_formed": self.well_formed,
                "generated_tokens": self.generated_tokens, "judge_tokens": self.judge_tokens,
                "comparisons": self.comparisons, "unreadable_verdicts": self.unreadable_verdicts,
                "candidates": self.candidates}


def trace_text(stages: dict[str, str]) -> str:
    """The stages present, in order, each in its tags, separated by blank lines."""
    return "\n\n".join(f"<{name}>{stages[name].strip()}</{name}>" for name in COT_STAGES if name in stages)


_TAG = re.compile(r"<(/?)(" + "|".join(COT_STAGES) + r")>")


def read_stages(text: str) -> dict[str, str]:
    """The stages of a possibly unfinished or sloppy trace, leniently: a stage runs from its tag to its
    closing tag, the next tag or the end. For showing a trace while it streams, and for reading what a
    model wrote when it did not follow the format exactly (`parse_cot` is the strict check)."""
    stages: dict[str, str] = {}
    current, start = None, 0
    for m in _TAG.finditer(text):
        if current is not None and current not in stages:
            stages[current] = text[start:m.start()].strip()
        current, start = (None, m.end()) if m.group(1) else (m.group(2), m.end())
    if current is not None and current not in stages:
        stages[current] = text[start:].strip()
    return stages


def conclusion_of(text: str) -> tuple[str, bool]:
    """(the answer, whether the trace was well formed) from a cot reply. Without a CONCLUSION stage the
    answer is the text after the last tag (a model that gave up on the format usually answers there)."""
    try:
        return parse_cot(text)["CONCLUSION"], True
    except TraceError:
        stages = read_stages(text)
        if stages.get("CONCLUSION"):
            return stages["CONCLUSION"], False
        tail = _TAG.split(text)[-1] if _TAG.search(text) else text
        return tail.strip(), False


def reasoning_conversation(conversation: Conversation) -> Conversation:
    """A copy whose last user message carries the four-stage instruction."""
    if not conversation.turns or conversation.turns[-1].role != "user":
        raise CosmosLlavaError("the conversation must end with a user message")
    last = conversation.turns[-1]
    return Conversation(conversation.system_prompt,
                        [*conversation.turns[:-1], Turn("user", [*last.parts, COT_INSTRUCTION])])


# -------------------------------------------------------------------------------------------- judges

_CHOICE_PATTERNS = [
    re.compile(r"\b([12])\s*(?:numaralı|nolu|no\.?lu|\.)?\s*(?:metn|cevab|yanıt|seçene)\w*\s*(?:\w+\s+){0,2}?seç", re.I),
    re.compile(r"(?:metin|cevap|yanıt|response|answer|text)\s*:?\s*\[?([12])\]?(?!\d)", re.I),
    re.compile(r"(?:seçiyorum|seçerim|choose|select)\D{0,30}?\b([12])\b", re.I),
    re.compile(r"\b([12])\b\D{0,30}?(?:seçiyorum|seçerim|daha iyi)", re.I),
]


def parse_choice(reply: str) -> int | None:
    """1 or 2 from a pairwise verdict ("... olduğu için 2 numaralı metni seçiyorum.", "I choose
    response 1", a bare "2"); None when no verdict form names exactly one of them."""
    text = reply.strip()
    if text in ("1", "2"):
        return int(text)
    for pattern in _CHOICE_PATTERNS:  # strongest verdict forms first; one naming both is no verdict
        found = {m.group(1) for m in pattern.finditer(text)}
        if len(found) == 1:
            return int(found.pop())
    return None


def judge_prompt(question: str, first: str, second: str, stage: str) -> str:
    return (f"Soru: {question}\n\n{STAGE_CRITERIA[stage]}\n\n"
            f"Metin 1:\n{first.strip() or '(boş)'}\n\nMetin 2:\n{second.strip() or '(boş)'}\n\n{JUDGE_FORMAT}")


class SelfJudge:
    """The answering model judges its own candidates (LLaVA-CoT's setup), greedily, seeing the image."""

    def __init__(self, loaded: LoadedModel, max_new_tokens: int = 128):
        self.loaded, self.max_new_tokens = loaded, max_new_tokens

    def compare(self, question: Turn, first: str, second: str, stage: str) -> tuple[int | None, int]:
        conversation = Conversation()
        conversation.turns.append(Turn("user", [*question.images, judge_prompt(question.text, first, second, stage)]))
        prepared = prepare_prompt(self.loaded, conversation, self.max_new_tokens)
        sample = generate_batch(self.loaded, [prepared], GenerationSettings(0.0, 1.0, prepared.max_new_tokens))[0][0]
        return parse_choice(sample.text), prepared.prompt_tokens + sample.completion_tokens


class EndpointJudge:
    """Any OpenAI-compatible chat model as the judge (`openai_client.ChatClient`), shown the image."""

    def __init__(self, client, max_tokens: int = 256):
        self.client, self.max_tokens = client, max_tokens

    def compare(self, question: Turn, first: str, second: str, stage: str) -> tuple[int | None, int]:
        from .images import to_data_url

        content = [{"type": "image_url", "image_url": {"url": to_data_url(image)}} for image in question.images]
        content.append({"type": "text", "text": judge_prompt(question.text, first, second, stage)})
        reply = self.client.complete([{"role": "user", "content": content}], max_tokens=self.max_tokens,
                                     temperature=0.0)
        return parse_choice(reply.text), reply.prompt_tokens + reply.completion_tokens


# ------------------------------------------------------------------------------------------- search

def cot_prompt(loaded: LoadedModel, conversation: Conversation, max_new_tokens: int):
    """The prepared prompt of a cot reply (for batched generation): instruction added, reply opened."""
    return prepare_prompt(loaded, reasoning_conversation(conversation), max_new_tokens, assistant_prefix="<SUMMARY>")


def reason(loaded: LoadedModel, conversation: Conversation, settings: ReasoningSettings, judge=None,
           on_stage: Callable[[str, str], None] | None = None,
           cancel_event: threading.Event | None = None) -> ReasoningResult:
    """Answer the conversation's last user message with reasoning (mode `settings.mode`, not "off").

    `on_stage(stage, text)` is called as each stage is settled (stage-beam), or once per stage at the
    end (cot, best-of-n). The judge defaults to the model itself. `cancel_event` stops a search between
    stages and between comparisons (a batch being generated runs to its end): the result is then
    `cancelled`, with the stages settled so far and the last of them as the answer."""
    settings.validate()
    if settings.mode == "off":
        raise CosmosLlavaError("reasoning mode 'off' has nothing to search; answer normally")
    judge = judge or SelfJudge(loaded)
    question = conversation.turns[-1] if conversation.turns else None
    if question is None or question.role != "user":
        raise CosmosLlavaError("the conversation must end with a user message")
    if settings.mode == "stage-beam":
        result = _stage_beam(loaded, conversation, question, settings, judge, on_stage, cancel_event)
    else:
        n = 1 if settings.mode == "cot" else settings.n
        prepared = cot_prompt(loaded, conversation, settings.max_new_tokens)
        samples = generate_batch(loaded, [prepared], settings.generation(prepared.max_new_tokens), n=n)[0]
        texts = ["<SUMMARY>" + s.text for s in samples]
        result = ReasoningResult({}, settings.mode, False, generated_tokens=sum(s.completion_tokens for s in samples))
        if n > 1:
            result.candidates["trace"] = texts
        best = _knockout(texts, question, "CONCLUSION", judge, result, cancel_event)
        if best is None:
            result.cancelled = True
            return result
        result.stages = read_stages(best)
        result.answer, result.well_formed = conclusion_of(best)
        for stage in COT_STAGES:
            if on_stage is not None and stage in result.stages:
                on_stage(stage, result.stages[stage])
    return result


def _stage_beam(loaded, conversation, question, settings, judge, on_stage, cancel_event) -> ReasoningResult:
    base = reasoning_conversation(conversation)
    result = ReasoningResult({}, "stage-beam", True)
    for stage in COT_STAGES:
        prefix = trace_text(result.stages) + ("\n\n" if result.stages else "") + f"<{stage}>"
        prepared = prepare_prompt(loaded, base, settings.stage_max_tokens, assistant_prefix=prefix)
        samples: list[Sample] = generate_batch(loaded, [prepared], settings.generation(prepared.max_new_tokens),
                                               n=settings.n, stop=(f"</{stage}>",))[0]
        result.generated_tokens += sum(s.completion_tokens for s in samples)
        # A candidate is the stage's text; one that ran into another tag is cut there.
        texts = [_TAG.split(s.text)[0].strip() for s in samples]
        nonempty = [t for t in texts if t] or texts
        result.candidates[stage] = texts
        winner = _knockout(nonempty, question, stage, judge, result, cancel_event)
        if winner is not None:
            result.stages[stage] = winner
            if on_stage is not None:
                on_stage(stage, winner)
        if winner is None or (stage != COT_STAGES[-1] and cancel_event is not None and cancel_event.is_set()):
            result.cancelled, result.well_formed = True, False
            break
    settled = [stage for stage in COT_STAGES if stage in result.stages]
    result.answer = result.stages[settled[-1]].strip() if settled else ""
    return result


def _knockout(candidates: list[str], question: Turn, stage: str, judge, result: ReasoningResult,
              cancel_event: threading.Event | None = None) -> str | None:
    """The winner of pairwise comparisons: the leader meets each challenger in turn. Presentation
    order alternates, so a judge's position bias does not always favour the leader. None when
    `cancel_event` is set before a comparison."""
    leader = candidates[0]
    for index, challenger in enumerate(candidates[1:]):
        if challenger.strip() == leader.strip():
            continue
        if cancel_event is not None and cancel_event.is_set():
            return None
        flipped = index % 2 == 1
        first, second = (challenger, leader) if flipped else (leader, challenger)
        verdict, tokens = judge.compare(question, first, second, stage)
        result.comparisons += 1
        result.judge_tokens += tokens
        if verdict is None:
            result.unreadable_verdicts += 1
            continue
        if (verdict == 2) != flipped:
            leader = challenger
    return leader


# ------------------------------------------------------------------------------------- command line

def add_reasoning_arguments(parser) -> None:
    """The reasoning flags `chat` and `eval` share."""
    group = parser.add_argument_group("reasoning (LLaVA-CoT)")
    group.add_argument("--reasoning", choices=REASONING_MODES, default="off",
                       help="cot: answer in four stages; stage-beam: LLaVA-CoT's stage-level beam search; "
                            "best-of-n: N whole traces, the judge keeps one")
    group.add_argument("--candidates", type=int, default=4, metavar="N",
                       help="candidates per stage (stage-beam) or traces (best-of-n)")
    group.add_argument("--reasoning-temperature", type=float, default=0.7, help="sampling temperature of candidates")
    group.add_argument("--stage-max-tokens", type=int, default=256, help="token budget of each stage (stage-beam)")
    group.add_argument("--reasoning-max-tokens", type=int, default=1024,
                       help="token budget of a whole trace (cot, best-of-n)")
    group.add_argument("--reasoning-judge-endpoint", default=None, metavar="URL",
                       help="OpenAI-compatible judge of the candidates (default: the model judges itself)")
    group.add_argument("--reasoning-judge-model", default=None, metavar="NAME", help="model name at that endpoint")
    group.add_argument("--reasoning-judge-api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                       help="environment variable holding that endpoint's key")


def reasoning_from_args(args, seed: int | None = None) -> ReasoningSettings | None:
    """The settings the flags ask for (None for --reasoning off), checked before any model loads."""
    if args.reasoning == "off":
        return None
    settings = ReasoningSettings(args.reasoning, args.candidates, args.reasoning_temperature, 0.9,
                                 args.stage_max_tokens, args.reasoning_max_tokens, seed)
    settings.validate()
    url = args.reasoning_judge_endpoint
    if url and not url.startswith(("http://", "https://")):
        raise CosmosLlavaError(f"--reasoning-judge-endpoint must be an http(s) URL, got '{url}'")
    if url and not args.reasoning_judge_model:
        raise CosmosLlavaError("--reasoning-judge-endpoint needs --reasoning-judge-model NAME")
    return settings


def judge_from_args(args, loaded: LoadedModel):
    """The candidates' judge: the endpoint the flags name, else the model itself."""
    if not args.reasoning_judge_endpoint:
        return SelfJudge(loaded)
    import os

    from .openai_client import ChatClient, Endpoint

    key = os.environ.get(args.reasoning_judge_api_key_env) or None
    return EndpointJudge(ChatClient(Endpoint(args.reasoning_judge_endpoint, args.reasoning_judge_model, key)))
