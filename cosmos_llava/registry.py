"""The models an app offers: a YAML registry of local LLaVA models and OpenAI-compatible endpoints.

    max_resident: 2              # local models kept loaded at once (the rest load when asked)
    models:
      - name: Cosmos-LLaVA 8B    # what people see (after an arena vote)
        model: models/turkish-llava-v0.1
        quant: 4bit              # any load_model option: quant, dtype, template, system_prompt,
        weight: 2                #   adapter, context_length; weight: arena sampling weight
      - name: GPT-4o
        endpoint: https://api.openai.com/v1
        endpoint_model: gpt-4o
        api_key_env: OPENAI_API_KEY

Every model answers through the same interface, `backend.stream(conversation, settings)`, so the chat
and the arena do not care where a model runs. Local models load lazily, once, shared by every tab and
user; `use(name)` leases a model, and beyond `max_resident` the least recently used one with no lease
is unloaded to make room (a leased model is never unloaded under a running reply).
"""

from __future__ import annotations

import gc
import json
import os
import random
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterator

from .conversation import Conversation
from .errors import CosmosLlavaError, first_line

LOCAL_OPTIONS = ("quant", "dtype", "template", "system_prompt", "adapter", "context_length", "device_map")


@dataclass
class ModelSpec:
    name: str
    model: str | None = None  # a local LLaVA folder or hub id ...
    endpoint: str | None = None  # ... or an OpenAI-compatible base URL (ending in /v1)
    endpoint_model: str | None = None
    api_key_env: str | None = None
    weight: float = 1.0
    quant: str = "none"
    dtype: str = "auto"
    template: str | None = None
    system_prompt: str | None = None
    adapter: str | None = None
    context_length: int | None = None
    device_map: str | None = None
    timeout_s: float = 120.0
    # Replies in flight at once; more wait their turn. A local model generates one reply at a time on
    # its own thread anyway (loading.model_thread), so this matters for endpoints (default 4 there).
    max_concurrent: int | None = None

    @property
    def is_local(self) -> bool:
        return self.model is not None

    def api_key(self) -> str | None:
        """The endpoint's key from `api_key_env`; a named variable that is unset is a one-line error."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise CosmosLlavaError(f"model '{self.name}': the environment variable {self.api_key_env} is not set")
        return key


class RegistryError(CosmosLlavaError):
    """A registry file that cannot be used as written."""


@dataclass
class Example:
    """A ready-made message the app offers (an image and a question about it)."""

    image: str
    text: str


def parse_registry(data, source: str = "registry") -> tuple[list[ModelSpec], int]:
    """Specs and max_resident from the parsed YAML; every problem is one line naming the entry."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), list) or not data["models"]:
        raise RegistryError(f"{source}: expected a mapping with a non-empty 'models' list")
    unknown = set(data) - {"models", "max_resident", "note", "examples"}
    if unknown:
        raise RegistryError(f"{source}: unknown key '{sorted(unknown)[0]}' "
                            "(expected models, max_resident, note, examples)")
    max_resident = data.get("max_resident", 1)
    if not isinstance(max_resident, int) or max_resident < 1:
        raise RegistryError(f"{source}: max_resident must be a whole number of at least 1")
    known = {f.name for f in fields(ModelSpec)}
    specs: list[ModelSpec] = []
    for index, entry in enumerate(data["models"]):
        where = f"{source}: models[{index}]"
        if not isinstance(entry, dict):
            raise RegistryError(f"{where} must be a mapping")
        extra = set(entry) - known
        if extra:
            raise RegistryError(f"{where}: unknown key '{sorted(extra)[0]}'")
        if not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise RegistryError(f"{where} needs a 'name'")
        spec = ModelSpec(**entry)
        if (spec.model is None) == (spec.endpoint is None):
            raise RegistryError(f"{where} ('{spec.name}') needs exactly one of 'model' (local) or 'endpoint'")
        if spec.endpoint is not None and not spec.endpoint_model:
            raise RegistryError(f"{where} ('{spec.name}'): an endpoint needs 'endpoint_model', the name it serves")
        if spec.max_concurrent is not None and (not isinstance(spec.max_concurrent, int) or spec.max_concurrent < 1):
            raise RegistryError(f"{where} ('{spec.name}'): max_concurrent must be a whole number of at least 1")
        if not isinstance(spec.weight, (int, float)) or spec.weight <= 0:
            raise RegistryError(f"{where} ('{spec.name}'): weight must be a positive number")
        if any(s.name == spec.name for s in specs):
            raise RegistryError(f"{where}: the name '{spec.name}' is used twice")
        specs.append(spec)
    return specs, max_resident


def load_registry(path: str | Path) -> "Registry":
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"model registry not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path} is not valid YAML: {first_line(exc)}") from None
    specs, max_resident = parse_registry(data, str(path))
    # Relative local paths are relative to the registry file, so a registry travels with its models.
    for spec in specs:
        if spec.model and not Path(spec.model).is_absolute() and (path.parent / spec.model).exists():
            spec.model = str(path.parent / spec.model)
    registry = Registry(specs, max_resident)
    registry.note = _note(data.get("note"), path)
    registry.examples = _examples(data.get("examples"), path)
    return registry


def _note(note, path: Path) -> dict[str, str]:
    """`note:` is Markdown shown above the app's tabs: one text, or one per language ({tr: ..., en: ...})."""
    if note is None:
        return {}
    if isinstance(note, str):
        return {"tr": note, "en": note}
    if isinstance(note, dict) and note and all(isinstance(k, str) and isinstance(v, str) for k, v in note.items()):
        return dict(note)
    raise RegistryError(f"{path}: 'note' must be a text or a mapping of language to text")


def _examples(examples, path: Path) -> list[Example]:
    """`examples:` is a list of {image, text}; images are relative to the registry file and must exist."""
    if examples is None:
        return []
    if not isinstance(examples, list):
        raise RegistryError(f"{path}: 'examples' must be a list of {{image, text}}")
    out = []
    for index, entry in enumerate(examples):
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str) or not isinstance(entry.get("text"), str):
            raise RegistryError(f"{path}: examples[{index}] needs 'image' and 'text'")
        image = Path(entry["image"]) if Path(entry["image"]).is_absolute() else path.parent / entry["image"]
        if not image.is_file():
            raise RegistryError(f"{path}: examples[{index}]: image not found: {image}")
        out.append(Example(str(image), entry["text"]))
    return out


# -------------------------------------------------------------------------------------------- backends

@dataclass
class ReplyStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    seconds: float = 0.0


class LocalBackend:
    """A model this process loads with `load_model`."""

    def __init__(self, spec: ModelSpec, loaded):
        self.spec, self.loaded = spec, loaded

    def new_conversation(self, system_prompt: str | None = None) -> Conversation:
        return self.loaded.new_conversation(system_prompt)

    def stream(self, conversation: Conversation, settings, cancel_event: threading.Event | None = None,
               stats: ReplyStats | None = None) -> Iterator[str]:
        from .generation import stream_reply

        start = time.perf_counter()
        reply = stream_reply(self.loaded, conversation, settings, cancel_event)
        yield from reply
        if stats is not None:
            stats.prompt_tokens, stats.completion_tokens = reply.prompt_tokens, reply.completion_tokens
            stats.finish_reason, stats.seconds = reply.finish_reason, time.perf_counter() - start


class EndpointBackend:
    """A model behind an OpenAI-compatible chat endpoint (vLLM, an API, `cosmos_llava serve`)."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    def new_conversation(self, system_prompt: str | None = None) -> Conversation:
        return Conversation(system_prompt=system_prompt or None)  # the endpoint applies its own default

    def messages(self, conversation: Conversation) -> list[dict]:
        from PIL import Image

        from .images import to_data_url

        out = [{"role": "system", "content": conversation.system_prompt}] if conversation.system_prompt else []
        for turn in conversation.turns:
            if turn.role == "assistant":
                out.append({"role": "assistant", "content": turn.text})
                continue
            out.append({"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": to_data_url(part)}} if isinstance(part, Image.Image)
                else {"type": "text", "text": part} for part in turn.parts]})
        return out

    def stream(self, conversation: Conversation, settings, cancel_event: threading.Event | None = None,
               stats: ReplyStats | None = None) -> Iterator[str]:
        import httpx

        spec = self.spec
        key = spec.api_key()
        body = {"model": spec.endpoint_model, "messages": self.messages(conversation), "stream": True,
                "stream_options": {"include_usage": True}, "max_tokens": settings.max_new_tokens,
                "temperature": settings.temperature, "top_p": settings.top_p}
        if settings.seed is not None:
            body["seed"] = settings.seed
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        start = time.perf_counter()
        finish = None
        try:
            with httpx.stream("POST", spec.endpoint.rstrip("/") + "/chat/completions", json=body, headers=headers,
                              timeout=spec.timeout_s) as response:
                if response.status_code != 200:
                    response.read()
                    raise CosmosLlavaError(f"model '{spec.name}': {http_error(response)}")
                for line in response.iter_lines():
                    if cancel_event is not None and cancel_event.is_set():
                        finish = "cancelled"
                        break
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    event = json.loads(data)
                    if "error" in event:
                        raise CosmosLlavaError(f"model '{spec.name}': {event['error'].get('message', 'error')}")
                    if event.get("usage") and stats is not None:
                        stats.prompt_tokens = event["usage"].get("prompt_tokens", 0)
                        stats.completion_tokens = event["usage"].get("completion_tokens", 0)
                    for choice in event.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            yield text
                        finish = choice.get("finish_reason") or finish
        except httpx.HTTPError as exc:
            raise CosmosLlavaError(f"model '{spec.name}' is unreachable: {first_line(exc)}") from None
        if stats is not None:
            stats.finish_reason, stats.seconds = finish, time.perf_counter() - start


def http_error(response) -> str:
    """One line for a failed OpenAI-compatible response: its status and the error body's message (or
    the start of the body). Shared by every client of such endpoints (the app, annotate/)."""
    try:
        error = response.json().get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = None
    return f"HTTP {response.status_code}: {message or response.text[:200] or response.reason_phrase}"


# -------------------------------------------------------------------------------------------- registry

@dataclass
class _Resident:
    backend: LocalBackend
    leases: int = 0
    last_used: float = field(default_factory=time.monotonic)


class Registry:
    def __init__(self, specs: list[ModelSpec], max_resident: int = 1, loader=None, wait_s: float = 600.0):
        self.specs = {spec.name: spec for spec in specs}
        self.max_resident = max_resident
        self.note: dict[str, str] = {}  # Markdown above the app's tabs, by language (registry `note:`)
        self.examples: list[Example] = []  # ready-made messages the chat offers (registry `examples:`)
        self.wait_s = wait_s
        self._loader = loader  # tests give a stand-in for load_model
        self._resident: dict[str, _Resident] = {}
        self._loading: set[str] = set()
        self._changed = threading.Condition()
        self._slots = {spec.name: threading.BoundedSemaphore(spec.max_concurrent or (1 if spec.is_local else 4))
                       for spec in specs}

    @property
    def names(self) -> list[str]:
        return list(self.specs)

    def spec(self, name: str) -> ModelSpec:
        if name not in self.specs:
            raise CosmosLlavaError(f"unknown model '{name}'; the registry has: {', '.join(self.specs)}")
        return self.specs[name]

    def sample_pair(self, rng: random.Random | None = None) -> tuple[str, str]:
        """Two different models, drawn by weight, in random order (the arena's left and right)."""
        rng = rng or random.Random()
        if len(self.specs) < 2:
            raise CosmosLlavaError("the arena needs at least two models in the registry")
        names = list(self.specs)
        first = rng.choices(names, weights=[self.specs[n].weight for n in names])[0]
        rest = [n for n in names if n != first]
        second = rng.choices(rest, weights=[self.specs[n].weight for n in rest])[0]
        return (first, second) if rng.random() < 0.5 else (second, first)

    def use(self, name: str) -> "_Lease":
        """`with registry.use(name) as backend:` - the model, loaded if needed, held while in use."""
        return _Lease(self, name)

    def resident(self) -> list[str]:
        with self._changed:
            return list(self._resident)

    # Leasing: a local model is loaded once (other threads asking for it wait), and unloaded only
    # when nobody holds it and room is needed for another.
    def _acquire(self, name: str):
        spec = self.spec(name)
        if not spec.is_local:
            return EndpointBackend(spec)
        deadline = time.monotonic() + self.wait_s
        with self._changed:
            while True:
                if name in self._resident:
                    entry = self._resident[name]
                    entry.leases += 1
                    entry.last_used = time.monotonic()
                    return entry.backend
                if name not in self._loading and self._make_room():
                    self._loading.add(name)
                    break
                if not self._changed.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise CosmosLlavaError(f"model '{name}' could not be loaded: all {self.max_resident} model "
                                           "slots stayed busy; try again shortly")
        try:
            backend = LocalBackend(spec, self._load(spec))
        except BaseException:
            with self._changed:
                self._loading.discard(name)
                self._changed.notify_all()
            raise
        with self._changed:
            self._loading.discard(name)
            self._resident[name] = _Resident(backend, leases=1)
            self._changed.notify_all()
        return backend

    def _make_room(self) -> bool:
        """Unload idle models until one more fits; False if every slot is leased or loading."""
        while len(self._resident) + len(self._loading) >= self.max_resident:
            idle = [(entry.last_used, n) for n, entry in self._resident.items() if entry.leases == 0]
            if not idle:
                return False
            _, victim = min(idle)
            entry = self._resident.pop(victim)
            executor = getattr(entry.backend.loaded, "executor", None)
            if executor is not None:
                executor.shutdown(wait=False)
            del entry
            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass
        return True

    def _release(self, name: str) -> None:
        with self._changed:
            entry = self._resident.get(name)
            if entry is not None:
                entry.leases -= 1
                entry.last_used = time.monotonic()
            self._changed.notify_all()

    def _load(self, spec: ModelSpec):
        options = {key: getattr(spec, key) for key in LOCAL_OPTIONS}
        if self._loader is not None:
            return self._loader(spec.model, **options)
        from .loading import load_model

        return load_model(spec.model, **options)


class _Lease:
    def __init__(self, registry: Registry, name: str):
        self.registry, self.name = registry, name
        self.backend = None

    def __enter__(self):
        self.registry.spec(self.name)  # an unknown name: a clear error before waiting for a slot
        slot = self.registry._slots[self.name]
        if not slot.acquire(timeout=self.registry.wait_s):
            raise CosmosLlavaError(f"model '{self.name}' is busy: try again shortly")
        try:
            self.backend = self.registry._acquire(self.name)
        except BaseException:
            slot.release()
            raise
        return self.backend

    def __exit__(self, *exc):
        if isinstance(self.backend, LocalBackend):
            self.registry._release(self.name)
        self.registry._slots[self.name].release()
        return False
