"""`python -m cosmos_llava serve`: an OpenAI-compatible chat endpoint for a LLaVA model.

    GET  /v1/models            the one model served
    POST /v1/chat/completions  OpenAI chat completions, streaming (server-sent events) or not
    GET  /health               {"status": "ok"} once the model is loaded

Images arrive as `image_url` content parts holding base64 data URLs; remote http(s) URLs are refused
unless the server was started with --allow-remote-images. Errors use OpenAI's body
(`{"error": {"message", "type", "param", "code"}}`) and status codes, so OpenAI clients report them
as they would OpenAI's own. Built on FastAPI/uvicorn (both already installed with Gradio).

Generation runs on the model's single thread (loading.model_thread), one request at a time; at most
--max-concurrent-requests are admitted (running or queued), the next gets 429 with Retry-After.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .conversation import Conversation
from .errors import ContextOverflowError, CosmosLlavaError, ImageError, first_line
from .generation import GenerationSettings, Reply, stream_reply
from .images import load_image
from .loading import LoadedModel

MAX_STOP_SEQUENCES = 4  # as OpenAI
DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)$", re.DOTALL)


@dataclass
class ServerSettings:
    model_name: str
    api_key: str | None = None
    max_concurrent_requests: int = 8
    max_image_bytes: int = 20 * 2**20
    max_request_bytes: int = 64 * 2**20
    default_max_tokens: int = 512
    allow_remote_images: bool = False
    remote_image_timeout_s: float = 10.0


class APIError(Exception):
    """An error returned to the client in OpenAI's shape."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


# ----------------------------------------------------------------------------------------- requests

@dataclass
class ChatRequest:
    conversation: Conversation
    settings: GenerationSettings
    stream: bool
    include_usage: bool
    stop: list[str]


def parse_chat_request(body, loaded: LoadedModel, settings: ServerSettings) -> ChatRequest:
    """Check an OpenAI chat request and turn it into the project's conversation and settings."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", param="model")
    if model != settings.model_name:
        raise APIError(404, f"The model '{model}' does not exist; this server serves '{settings.model_name}'",
                       param="model", code="model_not_found")
    for unsupported in ("tools", "functions", "logprobs", "top_logprobs"):
        if body.get(unsupported):
            raise bad_request(f"'{unsupported}' is not supported by this server", param=unsupported)
    if body.get("n", 1) != 1:
        raise bad_request("only n=1 is supported", param="n")
    for penalty in ("frequency_penalty", "presence_penalty"):
        if body.get(penalty, 0) not in (0, 0.0, None):
            raise bad_request(f"'{penalty}' is not supported; use 'repetition_penalty'", param=penalty)
    response_format = body.get("response_format")
    if response_format not in (None, {"type": "text"}):
        raise bad_request("only response_format {'type': 'text'} is supported", param="response_format")

    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = settings.default_max_tokens if max_tokens is None else max_tokens
    generation = GenerationSettings(
        temperature=_number(body, "temperature", 1.0, 0, 2),
        top_p=_number(body, "top_p", 1.0, 0, 1),
        max_new_tokens=_integer(max_tokens, "max_tokens", minimum=1),
        repetition_penalty=_number(body, "repetition_penalty", 1.0, 0, None),
        seed=None if body.get("seed") is None else _integer(body.get("seed"), "seed"),
    )
    try:
        generation.validate()
    except CosmosLlavaError as exc:
        raise bad_request(str(exc)) from None

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object", param="stream_options")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > MAX_STOP_SEQUENCES:
        raise bad_request(f"'stop' must be a string or a list of up to {MAX_STOP_SEQUENCES} non-empty strings",
                          param="stop")
    conversation = parse_messages(body.get("messages"), loaded, settings)
    return ChatRequest(conversation, generation, stream, bool(options.get("include_usage")), stop)


def _number(body: dict, name: str, default: float, low: float, high: float | None) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_request(f"'{name}' must be a number", param=name)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise bad_request(f"'{name}' must be {bounds}, got {value}", param=name)
    return float(value)


def _integer(value, name: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"'{name}' must be an integer", param=name)
    if minimum is not None and value < minimum:
        raise bad_request(f"'{name}' must be at least {minimum}, got {value}", param=name)
    return value


def parse_messages(messages, loaded: LoadedModel, settings: ServerSettings) -> Conversation:
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list", param="messages")
    system = None
    rest = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad_request(f"messages[{index}] must be an object with a 'role'", param=f"messages[{index}]")
        content = message.get("content")
        if not (content is None or isinstance(content, str) or isinstance(content, list)):
            raise bad_request(f"messages[{index}].content must be a string or a list of parts",
                              param=f"messages[{index}].content")
        if isinstance(content, list) and not all(isinstance(part, dict) for part in content):
            raise bad_request(f"messages[{index}].content parts must be objects", param=f"messages[{index}].content")
        if message["role"] in ("system", "developer"):
            text = content if isinstance(content, str) else "\n".join(
                p.get("text", "") for p in content or [] if p.get("type") == "text")
            system = text if system is None else system + "\n" + text
        else:
            rest.append({"role": message["role"], "content": content})
    try:
        parsed = Conversation.from_messages(rest, image_loader=lambda ref: fetch_image(ref, settings))
    except ImageError as exc:
        raise bad_request(str(exc), param="messages", code="invalid_image") from None
    except CosmosLlavaError as exc:
        raise bad_request(str(exc), param="messages") from None
    if not parsed.turns or parsed.turns[-1].role != "user":
        raise bad_request("the last message must be from the user", param="messages")
    conversation = loaded.new_conversation(system)  # no system message: the model's own prompt
    conversation.turns = parsed.turns
    return conversation


def fetch_image(ref, settings: ServerSettings):
    """An `image_url` part's image: a base64 data URL, or a remote URL when the server allows them."""
    url = ref.get("url") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url:
        raise bad_request("an image_url part needs a 'url'", param="messages", code="invalid_image")
    match = DATA_URL.match(url)
    if match:
        data = match.group("data")
        if len(data) * 3 // 4 > settings.max_image_bytes:  # before decoding: base64 is 4 chars per 3 bytes
            raise _too_large(len(data) * 3 // 4, settings)
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("the image data URL is not valid base64", param="messages", code="invalid_image") from None
        return load_image(raw)
    if url.startswith(("http://", "https://")):
        if not settings.allow_remote_images:
            raise bad_request("remote image URLs are not allowed on this server; send the image as a base64 data "
                              "URL (or start the server with --allow-remote-images)", param="messages",
                              code="remote_image_not_allowed")
        return load_image(_download(url, settings))
    raise bad_request("image_url must be a data URL (data:image/...;base64,...) or an http(s) URL",
                      param="messages", code="invalid_image")


def _too_large(size: int, settings: ServerSettings) -> APIError:
    return bad_request(f"image is too large: {size:,} bytes, the limit is {settings.max_image_bytes:,}",
                       param="messages", code="image_too_large")


def _download(url: str, settings: ServerSettings) -> bytes:
    import httpx

    try:
        with httpx.stream("GET", url, timeout=settings.remote_image_timeout_s, follow_redirects=True) as response:
            response.raise_for_status()
            data = bytearray()
            for chunk in response.iter_bytes():
                data.extend(chunk)
                if len(data) > settings.max_image_bytes:
                    raise _too_large(len(data), settings)
            return bytes(data)
    except httpx.HTTPError as exc:
        raise bad_request(f"cannot fetch image {url}: {first_line(exc)}", param="messages",
                          code="invalid_image") from None


# ------------------------------------------------------------------------------------------ replies

class StopScanner:
    """Cuts streamed text at the first of the request's stop strings. Text that might be the start of
    a stop string is held back until it is known not to be, so a stop string never reaches the client."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.pending = ""
        self.stopped = False

    def feed(self, chunk: str) -> str:
        if self.stopped:
            return ""
        self.pending += chunk
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            out, self.pending = self.pending[:min(hits)], ""
            return out
        keep = max((k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])), default=0)
        out = self.pending[:len(self.pending) - keep]
        self.pending = self.pending[len(out):]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out


class ReplyText:
    """The client-visible text of a reply, chunk by chunk: cut at a stop string, with no leading or
    trailing whitespace (trailing whitespace is held until more text follows). Streaming and
    non-streaming responses both go through it, so a stream reassembles to the non-streamed text."""

    def __init__(self, stops: list[str]):
        self.scanner = StopScanner(stops)
        self.started = False
        self.held = ""

    @property
    def stopped(self) -> bool:
        return self.scanner.stopped

    def feed(self, chunk: str) -> str:
        return self._shape(self.scanner.feed(chunk))

    def finish(self) -> str:
        return self._shape(self.scanner.flush())

    def _shape(self, text: str) -> str:
        if not self.started:
            text = text.lstrip()
            self.started = bool(text)
        combined = self.held + text
        body = combined.rstrip()
        self.held = combined[len(body):]
        return body


def _finish_reason(reply: Reply, text: ReplyText) -> str:
    return "stop" if text.stopped else ("length" if reply.finish_reason == "length" else "stop")


def _usage(reply: Reply) -> dict:
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens}


class Admission:
    """At most `limit` requests admitted at once (running or waiting for the model)."""

    def __init__(self, limit: int):
        self.limit, self.active, self.lock = limit, 0, threading.Lock()

    def enter(self) -> None:
        with self.lock:
            if self.active >= self.limit:
                raise APIError(429, f"the server is busy (all {self.limit} request slots in use); retry shortly",
                               type="rate_limit_error", code="server_busy", headers={"Retry-After": "1"})
            self.active += 1

    def leave(self) -> None:
        with self.lock:
            self.active -= 1


def create_app(loaded: LoadedModel, settings: ServerSettings) -> FastAPI:
    app = FastAPI(title="Cosmos-LLaVA", docs_url=None, redoc_url=None, openapi_url=None)
    admission = Admission(settings.max_concurrent_requests)
    created = int(time.time())

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return APIError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}", type=kind).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        return APIError(500, f"internal error: {type(exc).__name__}: {first_line(exc)}", type="server_error").response()

    def authorize(request: Request) -> None:
        if settings.api_key is None:
            return
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), settings.api_key.encode()):
            raise APIError(401, "Incorrect API key provided" if token else "Missing bearer token in Authorization header",
                           code="invalid_api_key")

    @app.get("/health")
    def health():
        return {"status": "ok", "model": settings.model_name}

    @app.get("/v1/models")
    def models(request: Request):
        authorize(request)
        return {"object": "list", "data": [
            {"id": settings.model_name, "object": "model", "created": created, "owned_by": "cosmos-llava"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        authorize(request)
        raw = await request.body()
        if len(raw) > settings.max_request_bytes:
            raise APIError(413, f"request body is too large: {len(raw):,} bytes, the limit is "
                                f"{settings.max_request_bytes:,}", code="request_too_large")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise bad_request(f"the request body is not valid JSON: {exc}") from None
        admission.enter()
        try:
            # Decoding images and rendering the prompt are blocking: off the event loop.
            chat, reply = await anyio.to_thread.run_sync(_start, body, loaded, settings)
        except BaseException:
            admission.leave()
            raise
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": settings.model_name}
        if chat.stream:
            return StreamingResponse(_stream(reply, chat, meta, admission), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            return await anyio.to_thread.run_sync(_complete, reply, chat, meta)
        finally:
            admission.leave()

    return app


def _start(body, loaded: LoadedModel, settings: ServerSettings) -> tuple[ChatRequest, Reply]:
    chat = parse_chat_request(body, loaded, settings)
    try:
        return chat, stream_reply(loaded, chat.conversation, chat.settings)
    except ContextOverflowError as exc:
        raise bad_request(str(exc), param="messages", code="context_length_exceeded") from None
    except CosmosLlavaError as exc:
        raise bad_request(str(exc), param="messages") from None


def _complete(reply: Reply, chat: ChatRequest, meta: dict) -> dict:
    text = ReplyText(chat.stop)
    parts = []
    try:
        for chunk in reply:  # after a stop string, the cancelled generation winds down (usage counts)
            parts.append(text.feed(chunk))
            if text.stopped:
                reply.cancel()
    except CosmosLlavaError as exc:
        raise APIError(500, str(exc), type="server_error") from None
    parts.append(text.finish())
    return {**meta, "object": "chat.completion", "choices": [{
        "index": 0, "message": {"role": "assistant", "content": "".join(parts)},
        "finish_reason": _finish_reason(reply, text)}], "usage": _usage(reply)}


async def _stream(reply: Reply, chat: ChatRequest, meta: dict, admission: Admission):
    """Server-sent events as OpenAI sends them; if the client goes away, generation is cancelled."""
    text = ReplyText(chat.stop)
    chunks = iter(reply)
    done = object()

    def event(delta: dict | None, finish: str | None = None, **extra) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        payload = {**meta, "object": "chat.completion.chunk", "choices": choices, **extra}
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    try:
        yield event({"role": "assistant", "content": ""})
        while True:
            chunk = await anyio.to_thread.run_sync(next, chunks, done)
            if chunk is done:
                break
            piece = text.feed(chunk)
            if piece:
                yield event({"content": piece})
            if text.stopped:
                reply.cancel()
                await anyio.to_thread.run_sync(lambda: [None for _ in chunks])  # let generation wind down
                break
        tail = text.finish()
        if tail:
            yield event({"content": tail})
        yield event({}, _finish_reason(reply, text))
        if chat.include_usage:
            yield event(None, usage=_usage(reply))
        yield "data: [DONE]\n\n"
    except Exception as exc:  # headers are sent: report in the stream, as OpenAI does
        message = str(exc) if isinstance(exc, CosmosLlavaError) else f"internal error: {type(exc).__name__}: {first_line(exc)}"
        yield f"data: {json.dumps(APIError(500, message, type='server_error').body(), ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        reply.cancel()  # a no-op when finished; stops generating when the client disconnected
        admission.leave()


def serve(loaded: LoadedModel, settings: ServerSettings, host: str = "127.0.0.1", port: int = 8000,
          announce=print) -> None:
    import uvicorn

    app = create_app(loaded, settings)
    announce(f"serving '{settings.model_name}' at http://{host}:{port}/v1 (OpenAI-compatible; Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
