"""Real HTTP servers on 127.0.0.1 for tests: `cosmos_llava serve` in a child process, and a scripted
OpenAI-compatible endpoint in a thread (for answers a tiny random model cannot give). Both bounded:
every wait has a deadline, and both are stopped by their owner (the child by its own process id)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

REPO = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """`python -m cosmos_llava serve --model MODEL ...` on a free loopback port."""

    def __init__(self, model: str | Path, *args: str, env: dict | None = None, startup_s: float = 120):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cosmos_llava", "serve", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(self.port), *args],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.process.stderr.read()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server did not answer /health within {startup_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        self.process.stderr.close()


class ScriptedEndpoint:
    """An OpenAI-compatible /v1/chat/completions whose answers come from `script(body, n) -> (status,
    payload, headers)`, n counting requests from 0. A payload that is a str becomes a completion
    (streamed as server-sent events when the request asks for a stream)."""

    def __init__(self, script, delay_s: float = 0.0, stream_pieces: int = 9, completion_tokens: int = 5):
        self.script, self.delay_s = script, delay_s
        self.stream_pieces, self.completion_tokens = stream_pieces, completion_tokens
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with endpoint.lock:
                    n = len(endpoint.requests)
                    endpoint.requests.append(body)
                time.sleep(endpoint.delay_s)
                status, payload, headers = endpoint.script(body, n)
                if isinstance(payload, str) and status == 200 and body.get("stream"):
                    self.stream(completion(payload, completion_tokens=endpoint.completion_tokens))
                    return
                if isinstance(payload, str):
                    payload = completion(payload, completion_tokens=endpoint.completion_tokens)
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def stream(self, reply: dict) -> None:
                """A streamed request gets the reply in `stream_pieces` server-sent events, then usage."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                text = reply["choices"][0]["message"]["content"]
                size = max(1, -(-len(text) // endpoint.stream_pieces))
                events = [{"choices": [{"index": 0, "delta": {"content": text[i:i + size]}, "finish_reason": None}]}
                          for i in range(0, len(text), size)]
                events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                events.append({"choices": [], "usage": reply["usage"]})
                for event in events:
                    self.wfile.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def completion(text: str, prompt_tokens: int = 10, completion_tokens: int = 5) -> dict:
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


@contextmanager
def served_app(demo, options: dict, queue: bool = True):
    """A Gradio app on a free loopback port in this process; yields its URL and closes it on exit."""
    port = free_port()
    (demo.queue() if queue else demo).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                                             quiet=True, **options)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
