# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Stand-in servers on 127.0.0.1 for tests, and the waits for servers that run as processes."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

S = TypeVar("S", bound="StandIn")


def free_port() -> int:
    """A loopback port that nothing listens on (bound once, then closed): for a server to come, or a refused connection."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, proc: Optional[subprocess.Popen] = None, *, name: str = "the server", output: Callable[[], str] = str) -> float:
    """Seconds until ``url`` answers 2xx (llama-server's /health answers 503 while it loads); fails early if ``proc`` exits.

    A failure ends with ``output()`` (the process's log)."""
    begin = time.monotonic()
    while time.monotonic() - begin < timeout:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode} before answering {url}\n{output()[-3000:]}".rstrip())
        try:
            with urllib.request.urlopen(url, timeout=2):
                return time.monotonic() - begin
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"{name}: {url} did not answer within {timeout} s\n{output()[-3000:]}".rstrip())


def wait_port(port: int, proc: Optional[subprocess.Popen] = None, timeout: float = 15, *, name: str = "the server") -> None:
    """Return once something accepts connections on loopback ``port`` (for servers that answer no plain HTTP GET)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")


class StandIn:
    """An HTTP server on a thread of this process: the one way the tests start a stand-in (subclass it, or hold one per port).

    It is bound and listening once constructed, so ``url`` is known and a client may connect at once (the kernel queues
    the connection): there is nothing to wait for. ``with`` serves it until the block ends; ``stop`` may come earlier."""

    def __init__(
        self, handler: Type[BaseHTTPRequestHandler], *, path: str = "", host: str = "127.0.0.1", port: int = 0, tls: Optional[Tuple[str, str]] = None
    ) -> None:
        self.server = ThreadingHTTPServer((host, port), handler)
        scheme = "http"
        if tls:  # (certfile, keyfile), e.g. from model_server.tls_certificate
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.port: int = self.server.server_address[1]
        self.url = f"{scheme}://{host}:{self.port}{path}"
        # a short poll: shutdown() waits until serve_forever looks
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self: S) -> S:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; again, or before ``start``, it does no harm."""
        if self._thread.ident is not None:  # shutdown() waits for a serve_forever that never ran
            self.server.shutdown()
        self.server.server_close()

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


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


class OpenAIStub(StandIn):
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

        super().__init__(Handler, path="/v1")


class EgressRecorder(StandIn):
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

        super().__init__(Handler)

    def env(self) -> Dict[str, str]:
        """The variables that send a program's outbound HTTP here (loopback goes direct)."""
        names = {"HTTP_PROXY": self.url, "HTTPS_PROXY": self.url, "NO_PROXY": "127.0.0.1,localhost"}
        return {**names, **{k.lower(): v for k, v in names.items()}}  # some clients read only the lower-case ones
