"""A small client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, `python -m cosmos_llava serve`).

Why not the `openai` package: one more dependency for one POST; with httpx (already installed with
Gradio) we control exactly what is retried: 429, 5xx, timeouts and dropped connections are retried
with exponential backoff (honouring Retry-After); other 4xx answers are final.
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .errors import CosmosLlavaError
from .registry import http_error

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
FATAL_STATUS = {401, 403, 404}  # wrong key or model: every request would fail the same way


class EndpointError(CosmosLlavaError):
    """A request did not succeed; other records may still work. `final`: the endpoint refused this
    request as such (a 4xx such as a too-long prompt), so asking again would fail the same way;
    otherwise it kept failing transiently (retries exhausted) and a later rerun may succeed."""

    def __init__(self, message: str, final: bool = True):
        super().__init__(message)
        self.final = final


class FatalEndpointError(CosmosLlavaError):
    """The endpoint cannot serve any request as configured (wrong URL, key or model name)."""


@dataclass
class Endpoint:
    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0  # first wait; doubles each retry, with jitter, capped at max_backoff_s
    max_backoff_s: float = 60.0


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


@dataclass
class Usage:
    """Tokens spent across threads, and what they cost at the given prices (USD per million tokens)."""

    price_in: float = 0.0
    price_out: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, prompt: int, completion: int) -> None:
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.requests += 1

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    @property
    def cost(self) -> float | None:
        if not (self.price_in or self.price_out):
            return None
        return (self.prompt_tokens * self.price_in + self.completion_tokens * self.price_out) / 1e6

    def summary(self) -> str:
        cost = f"${self.cost:.4f}" if self.cost is not None else "n/a (give --price-in/--price-out)"
        return (f"tokens: {self.prompt_tokens:,} in, {self.completion_tokens:,} out over {self.requests:,} "
                f"requests ({self.retries} retried); estimated cost {cost}")


class ChatClient:
    def __init__(self, endpoint: Endpoint, usage: Usage | None = None, sleep=time.sleep):
        self.endpoint = endpoint
        self.usage = usage or Usage()
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        self._http = httpx.Client(base_url=endpoint.base_url.rstrip("/") + "/", headers=headers,
                                  timeout=endpoint.timeout_s)

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: list[dict], max_tokens: int = 1024, temperature: float = 0.7,
                 seed: int | None = None, **extra) -> Completion:
        body = {"model": self.endpoint.model, "messages": messages, "max_tokens": max_tokens,
                "temperature": temperature, **({"seed": seed} if seed is not None else {}), **extra}
        attempt = 0
        while True:
            try:
                response = self._http.post("chat/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem, retry_after = f"{type(exc).__name__}: {exc}", None
            else:
                if response.status_code == 200:
                    return self._parse(response)
                problem, retry_after = http_error(response), response.headers.get("retry-after")
                if response.status_code in FATAL_STATUS:
                    raise FatalEndpointError(f"{self.endpoint.base_url}: {problem}")
                if response.status_code not in RETRY_STATUS:
                    raise EndpointError(problem)
            if attempt >= self.endpoint.max_retries:
                raise EndpointError(f"gave up after {attempt + 1} tries: {problem}", final=False)
            self.usage.retried()
            self._sleep(self._wait(attempt, retry_after))
            attempt += 1

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.endpoint.max_backoff_s)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        base = min(self.endpoint.backoff_s * 2**attempt, self.endpoint.max_backoff_s)
        return base * (0.5 + random.random() / 2)  # jitter: retries from many threads spread out

    def _parse(self, response: httpx.Response) -> Completion:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise EndpointError(f"not an OpenAI chat completion: {response.text[:200]!r}") from None
        completion = Completion(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                                choice.get("finish_reason"))
        self.usage.add(completion.prompt_tokens, completion.completion_tokens)
        return completion


def image_part(path: str | Path, max_side: int | None = None) -> dict:
    """An `image_url` content part holding the image as a base64 data URL (PNG/JPEG kept as they are)."""
    from .images import load_image, to_data_url

    path = Path(path)
    raw = path.read_bytes()
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(path.suffix.lower())
    image = load_image(raw if mime else path)  # checks the file either way
    if mime is None or (max_side and max(image.size) > max_side):
        if max_side and max(image.size) > max_side:
            image.thumbnail((max_side, max_side))
        return {"type": "image_url", "image_url": {"url": to_data_url(image)}}  # re-encoded as PNG
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(raw).decode()}"}}


def add_endpoint_arguments(parser) -> None:
    group = parser.add_argument_group("endpoint (any OpenAI-compatible chat API)")
    group.add_argument("--endpoint", default=os.environ.get("COSMOS_LLAVA_ENDPOINT") or os.environ.get("OPENAI_BASE_URL"),
                       help="base URL ending in /v1 (env: COSMOS_LLAVA_ENDPOINT or OPENAI_BASE_URL)")
    group.add_argument("--model", default=os.environ.get("COSMOS_LLAVA_MODEL"),
                       help="model name at the endpoint (env: COSMOS_LLAVA_MODEL)")
    group.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                       help="environment variable holding the API key (default: OPENAI_API_KEY; unset: no key)")
    group.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    group.add_argument("--max-retries", type=int, default=5, help="retries on 429 / 5xx / timeouts")
    group.add_argument("--price-in", type=float, default=0.0, help="USD per million prompt tokens (cost estimate)")
    group.add_argument("--price-out", type=float, default=0.0, help="USD per million completion tokens")


def endpoint_from_args(args) -> Endpoint:
    if not args.endpoint:
        raise CosmosLlavaError("no endpoint: give --endpoint URL (e.g. http://127.0.0.1:8000/v1) "
                               "or set COSMOS_LLAVA_ENDPOINT")
    if not args.endpoint.startswith(("http://", "https://")):
        raise CosmosLlavaError(f"--endpoint must be an http(s) URL, got '{args.endpoint}'")
    if not args.model:
        raise CosmosLlavaError("no model: give --model NAME or set COSMOS_LLAVA_MODEL")
    if args.max_retries < 0:
        raise CosmosLlavaError("--max-retries must be 0 or more")
    return Endpoint(args.endpoint, args.model, os.environ.get(args.api_key_env) or None, timeout_s=args.timeout,
                    max_retries=args.max_retries)
