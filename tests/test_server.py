"""`python -m cosmos_llava serve`: the OpenAI-compatible endpoint, over real HTTP on loopback."""

from __future__ import annotations

import base64
import io
import json
import random
import threading

import httpx
import pytest

import tiny
from loopback import ServeProcess

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
ERROR_KEYS = {"message", "type", "param", "code"}


def png_data_url(colour=(200, 30, 30), size=(40, 30)) -> str:
    buffer = io.BytesIO()
    tiny.solid_image(colour, size=size).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def user(text: str, *images: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text},
                                        *({"type": "image_url", "image_url": {"url": url}} for url in images)]}


@pytest.fixture(scope="module")
def server(llava_llama3):
    proc = ServeProcess(llava_llama3, "--served-model-name", "tiny-llava", "--api-key-env", "TEST_SERVE_KEY",
                        "--max-concurrent-requests", "1", "--max-image-mb", "0.05",
                        env={"TEST_SERVE_KEY": KEY})
    yield proc
    proc.stop()


def post(server, body: dict, headers=AUTH) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=120)


def assert_error(response: httpx.Response, status: int, code, type_="invalid_request_error", message=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["code"] == code and error["type"] == type_
    if message is not None:
        assert error["message"] == message


def test_models_lists_the_served_name(server):
    response = httpx.get(f"{server.url}/v1/models", headers=AUTH, timeout=30)
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in data["data"]] == [("tiny-llava", "model", "cosmos-llava")]


def test_completion_shape_and_usage(server):
    body = {"model": "tiny-llava", "messages": [user("Görselde ne var?", png_data_url())], "max_tokens": 6,
            "temperature": 0}
    response = post(server, body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["object"] == "chat.completion" and data["model"] == "tiny-llava" and data["id"].startswith("chatcmpl-")
    choice = data["choices"][0]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = data["usage"]
    # 16 image tokens for one image, plus the template and text
    assert usage["prompt_tokens"] > 16 and 1 <= usage["completion_tokens"] <= 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_reassembles_to_the_non_streamed_reply(server):
    body = {"model": "tiny-llava", "messages": [{"role": "system", "content": "Kısa cevap ver."},
                                                user("Zemin ne renk?", png_data_url((30, 200, 30)))],
            "max_tokens": 12, "temperature": 0}
    whole = post(server, body).json()
    events = []
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", headers=AUTH, timeout=120,
                      json={**body, "stream": True, "stream_options": {"include_usage": True}}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line:
                assert line.startswith("data: ")
                events.append(line[len("data: "):])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]


def test_multi_turn_with_images_at_two_turns(server):
    body = {"model": "tiny-llava", "max_tokens": 4, "temperature": 0, "messages": [
        user("Bu ne renk?", png_data_url((200, 30, 30))),
        {"role": "assistant", "content": "Kırmızı."},
        user("Peki bu?", png_data_url((30, 30, 200)))]}
    first = post(server, body).json()
    assert first["usage"]["prompt_tokens"] > 32  # both images' 16 tokens each


@pytest.mark.parametrize("body, status, code, message", [
    ({"model": "gpt-4o", "messages": [user("Merhaba")]}, 404, "model_not_found",
     "The model 'gpt-4o' does not exist; this server serves 'tiny-llava'"),
    ({"messages": [user("Merhaba")]}, 400, None, "you must provide a model parameter"),
    ({"model": "tiny-llava", "messages": []}, 400, None, "'messages' must be a non-empty list"),
    ({"model": "tiny-llava", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, 400, None,
     "unsupported content part type 'input_audio'"),
    ({"model": "tiny-llava", "messages": [{"role": "robot", "content": "x"}]}, 400, None,
     "unknown message role 'robot': expected system, user or assistant"),
    ({"model": "tiny-llava", "messages": [user("Merhaba"), {"role": "assistant", "content": "Selam"}]}, 400, None,
     "the last message must be from the user"),
    ({"model": "tiny-llava", "messages": [user("x", "data:image/png;base64,@@@")]}, 400, "invalid_image",
     "the image data URL is not valid base64"),
    ({"model": "tiny-llava", "messages": [user("x", "data:image/png;base64," + base64.b64encode(b"not a png").decode())]},
     400, "invalid_image", "not an image file (unrecognised format): uploaded image"),
    ({"model": "tiny-llava", "messages": [user("x", "https://example.com/cat.png")]}, 400, "remote_image_not_allowed",
     "remote image URLs are not allowed on this server; send the image as a base64 data URL (or start the server "
     "with --allow-remote-images)"),
    ({"model": "tiny-llava", "messages": [user("x")], "n": 2}, 400, None, "only n=1 is supported"),
    ({"model": "tiny-llava", "messages": [user("x")], "temperature": 3}, 400, None, "'temperature' must be between 0 and 2, got 3"),
    ({"model": "tiny-llava", "messages": [user("x")], "max_tokens": 0}, 400, None, "'max_tokens' must be at least 1, got 0"),
    ({"model": "tiny-llava", "messages": [user("x")], "stop": ["a", "b", "c", "d", "e"]}, 400, None,
     "'stop' must be a string or a list of up to 4 non-empty strings"),
])
def test_bad_requests_get_openai_errors(server, body, status, code, message):
    assert_error(post(server, body), status, code, message=message)


def test_oversized_image_and_too_many_tokens(server):
    from PIL import Image

    noise = Image.frombytes("RGB", (200, 200), random.Random(0).randbytes(200 * 200 * 3))  # ~120 KB as PNG
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    big = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    response = post(server, {"model": "tiny-llava", "messages": [user("x", big)]})
    assert_error(response, 400, "image_too_large")
    assert response.json()["error"]["message"].startswith("image is too large: ")
    assert response.json()["error"]["message"].endswith("bytes, the limit is 52,428")

    long_text = "kırmızı mavi yeşil " * 400  # far past the tiny model's 512-token context
    response = post(server, {"model": "tiny-llava", "messages": [user(long_text)]})
    assert_error(response, 400, "context_length_exceeded")
    assert response.json()["error"]["message"].startswith("the message is too long: ")


def test_auth(server):
    body = {"model": "tiny-llava", "messages": [user("x")], "max_tokens": 1}
    assert_error(post(server, body, headers={}), 401, "invalid_api_key",
                 message="Missing bearer token in Authorization header")
    assert_error(post(server, body, headers={"Authorization": "Bearer wrong"}), 401, "invalid_api_key",
                 message="Incorrect API key provided")
    assert httpx.get(f"{server.url}/v1/models", timeout=30).status_code == 401
    assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200  # health needs no key


def test_bounded_concurrency_and_malformed_json(server):
    body = {"model": "tiny-llava", "messages": [user("Uzun anlat.")], "max_tokens": 200, "temperature": 0,
            "stream": True}
    started = threading.Event()
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=120) as first:
        lines = first.iter_lines()
        assert next(lines).startswith("data: ")  # admitted and streaming: the one slot is taken
        started.set()
        second = post(server, {**body, "stream": False, "max_tokens": 1})
        assert_error(second, 429, "server_busy", type_="rate_limit_error",
                     message="the server is busy (all 1 request slots in use); retry shortly")
        assert second.headers["retry-after"] == "1"
    # the slot frees when the stream ends (here: the client hung up), then requests are served again
    for _ in range(50):
        response = post(server, {**body, "stream": False, "max_tokens": 1})
        if response.status_code != 429:
            break
    assert response.status_code == 200

    response = httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json", headers=AUTH, timeout=30)
    assert_error(response, 400, None)
    assert response.json()["error"]["message"].startswith("the request body is not valid JSON: ")
    assert_error(httpx.get(f"{server.url}/v1/nothing", timeout=30), 404, None, type_="not_found_error",
                 message="Not Found: GET /v1/nothing")


def test_reply_text_stops_and_trims():
    from cosmos_llava.server import ReplyText

    text = ReplyText(["###", "END"])
    pieces = [text.feed(c) for c in ["  Merhaba", " dünya ", "#", "#", "# devamı"]]
    assert pieces == ["Merhaba", " dünya", "", "", ""]
    assert text.stopped and text.finish() == ""
    text = ReplyText(["END"])
    assert [text.feed(c) for c in ["Bir E", "N", "D yok", "  \n"]] == ["Bir", "", "", ""]
    assert text.stopped
    text = ReplyText(["END"])
    assert [text.feed(c) for c in ["E", "v", "et. "]] + [text.finish()] == ["", "Ev", "et.", ""]
    assert not text.stopped


def test_serve_cli_errors(llava_llama3):
    from conftest import run_cli

    result = run_cli("serve", "--model", llava_llama3, "--api-key-env", "SURELY_UNSET_VAR_123")
    assert result.returncode == 1
    assert result.stderr == "error: --api-key-env SURELY_UNSET_VAR_123: that environment variable is not set\n"
    result = run_cli("serve", "--model", llava_llama3, "--port", "70000")
    assert result.stderr == "error: --port must be between 1 and 65535, got 70000\n"
    result = run_cli("serve", "--model", llava_llama3, "--context-length", "0")
    assert result.stderr == "error: --context-length must be at least 1, got 0\n"


def test_context_length_overrides_the_config(llava_llama3):
    from cosmos_llava.loading import load_model

    assert load_model(str(llava_llama3)).context_length == 512
    assert load_model(str(llava_llama3), context_length=4096).context_length == 4096
