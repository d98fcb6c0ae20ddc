# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Small servers on 127.0.0.1 for tests, and a helper to wait for real ones."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler that speaks JSON: the base of the stand-in servers."""

    def log_message(self, *args: Any) -> None:
        pass

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def send_json(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None, content_type: str = "application/json") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class OpenAIStub:
    """An OpenAI-compatible chat endpoint (what llama-server offers) that records the requests it gets."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        stub = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                body = self.read_json()
                stub.requests.append({"path": self.path, "body": body, "authorization": self.headers.get("Authorization")})
                if self.path.rstrip("/").endswith("/chat/completions"):
                    answer = {
                        "id": "chatcmpl-stub",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                    }
                    self.send_json(200, answer)
                else:
                    self.send_error(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OpenAIStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class EgressRecorder:
    """An HTTP(S) proxy that lets nothing through: it records what a program tried to reach and answers 403.

    Given as HTTP_PROXY/HTTPS_PROXY, it shows what a program would have fetched from outside this machine (where its
    client honours those variables), instead of only failing it as a closed port would."""

    def __init__(self) -> None:
        self.requests: List[str] = []
        recorder = self

        class Handler(JsonHandler):
            def _refuse(self) -> None:
                recorder.requests.append(f"{self.command} {self.path}")
                self.send_json(403, {"error": "no egress from the test machine"})

            do_GET = do_POST = do_PUT = do_HEAD = do_CONNECT = _refuse

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def env(self) -> Dict[str, str]:
        """The variables that send a program's outbound HTTP here (loopback goes direct)."""
        names = {"HTTP_PROXY": self.url, "HTTPS_PROXY": self.url, "NO_PROXY": "127.0.0.1,localhost"}
        return {**names, **{k.lower(): v for k, v in names.items()}}  # some clients read only the lower-case ones

    def __enter__(self) -> EgressRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
