"""Turning a conversation into model inputs, and streaming a reply.

Context rule (documented in the README): when the conversation does not fit the context window with
room for `max_new_tokens`, the oldest user/assistant exchanges are dropped, with their images, one at a
time. If the current message alone still leaves less room than `max_new_tokens`, the reply is capped to
the room left; if the current message alone does not fit at all, a `ContextOverflowError` says so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from .conversation import Conversation
from .errors import ContextOverflowError, CosmosLlavaError
from .loading import LoadedModel
from .templates import IMAGE_TOKEN


@dataclass
class GenerationSettings:
    temperature: float = 0.2
    top_p: float = 0.9
    max_new_tokens: int = 512
    repetition_penalty: float = 1.0
    seed: int | None = None

    def validate(self) -> None:
        if self.temperature < 0:
            raise CosmosLlavaError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise CosmosLlavaError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise CosmosLlavaError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.repetition_penalty <= 0:
            raise CosmosLlavaError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")


@dataclass
class PreparedPrompt:
    text: str
    images: list
    prompt_tokens: int
    dropped_turns: int
    max_new_tokens: int


def render_prompt(loaded: LoadedModel, conversation: Conversation, first_turn: int = 0) -> str:
    return loaded.tokenizer.apply_chat_template(
        conversation.messages(first_turn),
        chat_template=loaded.template.jinja,
        tokenize=False,
        add_generation_prompt=True,
    )


def count_prompt_tokens(loaded: LoadedModel, prompt: str) -> int:
    ids = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return len(ids) + prompt.count(IMAGE_TOKEN) * (loaded.image_token_count - 1)


def prepare_prompt(loaded: LoadedModel, conversation: Conversation, max_new_tokens: int,
                   assistant_prefix: str = "") -> PreparedPrompt:
    """Render the conversation for the model, fitting it to the context window (see module doc).

    `assistant_prefix` is text the reply is made to start with (the model continues it); it is part
    of the prompt, not of the generated text. Reasoning uses it to open a stage's tag."""
    if not conversation.turns or conversation.turns[-1].role != "user":
        raise CosmosLlavaError("the conversation must end with a user message")
    context = loaded.context_length
    first = 0
    while True:
        prompt = render_prompt(loaded, conversation, first) + assistant_prefix
        tokens = count_prompt_tokens(loaded, prompt)
        if tokens + max_new_tokens <= context:
            break
        if first + 2 < len(conversation.turns):
            first += 2  # drop the oldest user/assistant exchange
            continue
        if tokens < context:
            max_new_tokens = context - tokens
            break
        raise ContextOverflowError(
            f"the message is too long: {tokens} tokens (images included), the model's context window is {context}"
        )
    images = [image for turn in conversation.turns[first:] for image in turn.images]
    return PreparedPrompt(prompt, images, tokens, first, max_new_tokens)


def model_inputs(loaded: LoadedModel, prepared: PreparedPrompt):
    inputs = loaded.processor(
        text=prepared.text,
        images=prepared.images or None,
        return_tensors="pt",
        add_special_tokens=False,  # the template already wrote BOS
    )
    out = {key: value.to(loaded.device) for key, value in inputs.items()}
    if "pixel_values" in out:
        out["pixel_values"] = out["pixel_values"].to(loaded.vision_dtype)
    return out


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return self.event.is_set()


class _CountingStreamer(TextIteratorStreamer):
    """TextIteratorStreamer that also counts generated tokens (for usage figures)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.generated = 0
        self._prompt_seen = False

    def put(self, value):
        if not self._prompt_seen:
            self._prompt_seen = True
        else:
            self.generated += value.numel()
        super().put(value)


class Reply:
    """A reply being generated: iterate for text chunks as they come.

    After iteration: `text`, `prompt_tokens`, `completion_tokens`, `finish_reason` ("stop", "length"
    or "cancelled") and `dropped_turns`. `cancel()` stops generation from any thread.
    """

    def __init__(self, loaded: LoadedModel, conversation: Conversation, settings: GenerationSettings,
                 cancel_event: threading.Event | None = None, assistant_prefix: str = ""):
        settings.validate()
        self.loaded = loaded
        self.settings = settings
        self.cancel_event = cancel_event or threading.Event()
        prepared = prepare_prompt(loaded, conversation, settings.max_new_tokens, assistant_prefix)
        self.prompt_tokens = prepared.prompt_tokens
        self.dropped_turns = prepared.dropped_turns
        self.max_new_tokens = prepared.max_new_tokens
        self.inputs = model_inputs(loaded, prepared)
        self.chunks: list[str] = []
        self.finish_reason: str | None = None
        self._error: BaseException | None = None
        self._streamer = _CountingStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def completion_tokens(self) -> int:
        return self._streamer.generated

    @property
    def text(self) -> str:
        text = "".join(self.chunks)
        for stop in self.loaded.template.stop_strings:
            if stop.strip() == "" and text.endswith(stop):
                text = text[: -len(stop)]
        return text.strip()

    def _generate_kwargs(self) -> dict:
        return dict(
            **self.inputs,
            **sampling_kwargs(self.loaded, self.settings),
            max_new_tokens=self.max_new_tokens,
            streamer=self._streamer,
            stopping_criteria=StoppingCriteriaList([_Cancelled(self.cancel_event)]),
        )

    def _run(self, kwargs) -> None:
        try:
            if self.cancel_event.is_set():  # cancelled while waiting for the model's thread
                return
            if self.settings.seed is not None:
                torch.manual_seed(self.settings.seed)
            with torch.inference_mode():
                self.loaded.model.generate(**kwargs)
        except BaseException as exc:  # re-raised in the consuming thread
            self._error = exc
        finally:
            self._streamer.end()

    def __iter__(self):
        kwargs = self._generate_kwargs()
        # Runs on the model's own thread (see loading.model_thread); queued behind earlier replies.
        done = self.loaded.executor.submit(self._run, kwargs)
        exhausted = False
        try:
            for chunk in self._streamer:
                if chunk:
                    self.chunks.append(chunk)
                    yield chunk
            exhausted = True
        finally:
            if not exhausted:  # the consumer stopped listening: stop generating too
                self.cancel_event.set()
            done.result()
        if self._error is not None:
            raise _user_error(self._error)
        if self.cancel_event.is_set():
            self.finish_reason = "cancelled"
        elif self.completion_tokens >= self.max_new_tokens:
            self.finish_reason = "length"
        else:
            self.finish_reason = "stop"


def _eos_ids(loaded: LoadedModel) -> tuple[set[int], list[str]]:
    """Token ids that end a reply, and the template's stop strings that are not single tokens."""
    vocab = loaded.tokenizer.get_vocab()
    eos = loaded.model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    stop_strings = []
    for stop in loaded.template.stop_strings:
        if stop in vocab:
            eos_ids.add(vocab[stop])
        else:
            stop_strings.append(stop)
    return eos_ids, stop_strings


def sampling_kwargs(loaded: LoadedModel, settings: GenerationSettings, extra_stops=()) -> dict:
    """`generate` arguments for the settings and the template's end-of-turn rules (plus `extra_stops`)."""
    tokenizer = loaded.tokenizer
    eos_ids, stop_strings = _eos_ids(loaded)
    stop_strings += [stop for stop in extra_stops if stop not in stop_strings]
    kwargs = dict(
        eos_token_id=sorted(eos_ids) or None,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0),
        repetition_penalty=settings.repetition_penalty,
        do_sample=settings.temperature > 0,
    )
    if settings.temperature > 0:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if stop_strings:
        kwargs.update(stop_strings=stop_strings, tokenizer=tokenizer)
    return kwargs


@dataclass
class Sample:
    """One generated continuation. `text` ends before the stop string that ended it (`stop`), or
    where the token budget ran out (finish_reason "length")."""

    text: str
    completion_tokens: int
    finish_reason: str  # "stop" or "length"
    stop: str | None = None


def generate_batch(loaded: LoadedModel, prompts: list[PreparedPrompt], settings: GenerationSettings,
                   n: int = 1, stop: tuple[str, ...] = ()) -> list[list[Sample]]:
    """Generate for several prepared prompts at once, `n` samples each, without streaming.

    Prompts are left-padded into one batch; each sequence stops on its own at an end-of-turn token,
    a template stop string or one of `stop`. The budget is the smallest `max_new_tokens` among the
    prompts. Runs on the model's thread, after any reply already queued there."""
    settings.validate()
    if not prompts:
        return []
    if n < 1:
        raise CosmosLlavaError(f"n must be at least 1, got {n}")
    max_new_tokens = min(p.max_new_tokens for p in prompts)
    kwargs = sampling_kwargs(loaded, settings, stop)
    pad_id = kwargs["pad_token_id"]
    ends = set(kwargs["eos_token_id"] or ()) | {pad_id}
    stops = [*loaded.template.stop_strings, *stop]

    def run() -> list[list[Sample]]:
        # One processor call per prompt, then left padding by hand: the processor would need a pad
        # token on the tokenizer, and setting one would change the shared tokenizer for every user.
        encoded = [loaded.processor(text=p.text, images=p.images or None, return_tensors="pt",
                                    add_special_tokens=False) for p in prompts]
        width = max(e["input_ids"].shape[1] for e in encoded)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, e in enumerate(encoded):
            length = e["input_ids"].shape[1]
            ids[row, width - length:] = e["input_ids"][0]
            mask[row, width - length:] = 1
        inputs = {"input_ids": ids.to(loaded.device), "attention_mask": mask.to(loaded.device)}
        pixels = [e["pixel_values"] for e in encoded if "pixel_values" in e]
        if pixels:
            inputs["pixel_values"] = torch.cat(pixels).to(loaded.device, loaded.vision_dtype)
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        with torch.inference_mode():
            out = loaded.model.generate(**inputs, **kwargs, max_new_tokens=max_new_tokens, num_return_sequences=n)
        generated = out[:, width:].tolist()
        samples = [_sample(loaded, tokens, ends, stops, max_new_tokens) for tokens in generated]
        return [samples[i * n:(i + 1) * n] for i in range(len(prompts))]

    try:
        return loaded.executor.submit(run).result()
    except BaseException as exc:
        raise _user_error(exc) from None


def _sample(loaded: LoadedModel, tokens: list[int], ends: set[int], stops: list[str], budget: int) -> Sample:
    count = next((i + 1 for i, token in enumerate(tokens) if token in ends), len(tokens))
    ended = count <= len(tokens) and tokens[count - 1] in ends
    text = loaded.tokenizer.decode(tokens[:count], skip_special_tokens=True)
    hits = [(text.find(s), s) for s in stops if s and s in text]
    if hits:
        at, which = min(hits)
        # Tokens up to the one that completed the stop string: after it, generate only pads.
        low, high = 1, count
        while low < high:
            mid = (low + high) // 2
            if which in loaded.tokenizer.decode(tokens[:mid], skip_special_tokens=True):
                high = mid
            else:
                low = mid + 1
        return Sample(text[:at], low, "stop", which)
    if ended:
        return Sample(text, count, "stop")
    return Sample(text, count, "length" if count >= budget else "stop")


def _user_error(exc: BaseException) -> BaseException:
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return CosmosLlavaError("out of GPU memory: try --quant 4bit, a shorter conversation or fewer images")
    return exc


def stream_reply(loaded: LoadedModel, conversation: Conversation, settings: GenerationSettings | None = None,
                 cancel_event: threading.Event | None = None, assistant_prefix: str = "") -> Reply:
    """Start a reply to the conversation's last user message; iterate the result for text chunks."""
    return Reply(loaded, conversation, settings or GenerationSettings(), cancel_event, assistant_prefix)


def generate_reply(loaded: LoadedModel, conversation: Conversation, settings: GenerationSettings | None = None,
                   add_to_conversation: bool = True) -> str:
    """Generate the whole reply (no streaming); by default it is appended to the conversation."""
    reply = stream_reply(loaded, conversation, settings)
    for _ in reply:
        pass
    if add_to_conversation:
        conversation.add_assistant(reply.text)
    return reply.text
