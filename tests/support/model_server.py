# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""A model host on 127.0.0.1 for tests and benchmarks: the Hugging Face Hub's resolve protocol, the Ollama
registry protocol, plain files, and a "CDN" on a second port that the Hub and the registry redirect to.

Faults can be switched on per test (``server.fault(...)``): a corrupted byte, a truncated body, no Range support,
a 500 in mid-stream, a stalled connection, a wrong size, 416, expired CDN links. A per-connection throttle
models a CDN's per-stream cap. Every request is logged (``server.log``), Authorization header included, so tests
can see that a token never reaches the CDN.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Dict, List, Optional, Tuple

from .servers import StandIn

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
_HF = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_OLLAMA = re.compile(r"^/v2/(?P<ns>[^/]+)/(?P<model>[^/]+)/(?P<what>manifests|blobs)/(?P<ref>[^/]+)$")


@dataclass
class Blob:
    size: int
    sha256: str
    data: Optional[bytes] = None
    path: Optional[str] = None  # large files stay on disk (benchmarks)

    @classmethod
    def of(cls, data: bytes) -> Blob:
        return cls(len(data), hashlib.sha256(data).hexdigest(), data=data)

    @classmethod
    def of_file(cls, path: str, sha256: Optional[str] = None) -> Blob:
        if sha256 is None:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(8 << 20), b""):
                    digest.update(block)
            sha256 = digest.hexdigest()
        return cls(os.path.getsize(path), sha256, path=path)


@dataclass
class Fault:
    kind: str  # corrupt | truncate | no_range | status | stall | wrong_size | expire
    times: Optional[int] = 1  # how many responses it hits; None: all
    status: int = 500
    offset: int = 0  # corrupt: the byte; truncate/stall: after this many body bytes of the response
    after: int = 0  # let this many body responses through first ("in mid-stream")
    seconds: float = 30.0  # stall
    delta: int = 1000  # wrong_size
    hits: int = 0


@dataclass
class HfFile:
    blob: Blob
    lfs: bool = True
    commit: str = "0123456789abcdef0123456789abcdef01234567"

    @property
    def git_sha1(self) -> str:
        data = self.blob.data or b""
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class ModelServer:
    token: Optional[str] = None  # gated repos demand it
    throttle: Optional[float] = None  # bytes/s per connection
    redirect: bool = True  # LFS files and registry blobs redirect to the CDN (another port: another origin)
    hf: Dict[Tuple[str, str, str], HfFile] = field(default_factory=dict)  # (repo, revision, path)
    gated: set = field(default_factory=set)
    blobs: Dict[str, Blob] = field(default_factory=dict)  # sha256 -> blob
    manifests: Dict[Tuple[str, str, str], bytes] = field(default_factory=dict)  # (ns, model, tag)
    files: Dict[str, Blob] = field(default_factory=dict)  # /files/<name>
    faults: List[Fault] = field(default_factory=list)
    log: List[Dict[str, Any]] = field(default_factory=list)
    tls: Optional[Tuple[str, str]] = None  # (certfile, keyfile): serve https (see tls_certificate)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        # two ports: the Hub or registry, and the CDN its LFS files and blobs redirect to (another origin)
        self.origin = StandIn(_handler(self, "origin"), tls=self.tls)
        self.cdn = StandIn(_handler(self, "cdn"), tls=self.tls)
        self.url, self.cdn_url = self.origin.url, self.cdn.url
        self.signature = 1  # the CDN accepts links signed with this; `expire` bumps it

    # -- content --

    def add_hf(
        self, repo: str, path: str, data: Optional[bytes] = None, *, blob: Optional[Blob] = None, revision: str = "main", lfs: bool = True, **kw: Any
    ) -> HfFile:
        entry = HfFile(blob or Blob.of(data or b""), lfs=lfs, **kw)
        self.hf[(repo, revision, path)] = entry
        if entry.commit != revision:
            self.hf[(repo, entry.commit, path)] = entry
        self.blobs[entry.blob.sha256] = entry.blob
        return entry

    def add_ollama(self, model: str, tag: str, layers: List[Tuple[str, bytes]], namespace: str = "library") -> bytes:
        config = json.dumps({"model_format": "gguf", "model_family": "llama", "file_type": "Q4_K_M"}).encode()
        entries = []
        for media_type, data in layers:
            blob = Blob.of(data)
            self.blobs[blob.sha256] = blob
            entries.append({"mediaType": media_type, "digest": f"sha256:{blob.sha256}", "size": blob.size})
        config_blob = Blob.of(config)
        self.blobs[config_blob.sha256] = config_blob
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": f"sha256:{config_blob.sha256}", "size": config_blob.size},
            "layers": entries,
        }
        raw = json.dumps(manifest).encode()
        self.manifests[(namespace, model, tag)] = raw
        return raw

    def add_file(self, name: str, data: bytes) -> Blob:
        blob = Blob.of(data)
        self.files[name] = blob
        return blob

    def fault(self, kind: str, **kw: Any) -> Fault:
        fault = Fault(kind, **kw)
        self.faults.append(fault)
        return fault

    def requests(self, server: Optional[str] = None, method: Optional[str] = None) -> List[Dict[str, Any]]:
        with self.lock:
            return [r for r in self.log if (server is None or r["server"] == server) and (method is None or r["method"] == method)]

    def body_bytes(self) -> int:
        with self.lock:
            return sum(r.get("sent", 0) for r in self.log)

    # -- life --

    def __enter__(self) -> ModelServer:
        self.origin.start()
        self.cdn.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.origin.stop()
        self.cdn.stop()

    def _take(self, kind: str) -> Optional[Fault]:
        with self.lock:
            for fault in self.faults:
                if fault.kind == kind and (fault.times is None or fault.times > 0):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    if fault.times is not None:
                        fault.times -= 1
                    fault.hits += 1
                    return fault
        return None


def _handler(server: ModelServer, role: str) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as CDNs do
        disable_nagle_algorithm = True  # headers and body go out at once, as real servers send them

        def log_message(self, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self._dispatch(head=True)

        def do_GET(self) -> None:
            self._dispatch(head=False)

        # -- routing --

        def _dispatch(self, head: bool) -> None:
            self.entry = {
                "server": role,
                "method": self.command,
                "path": self.path,
                "range": self.headers.get("Range"),
                "authorization": self.headers.get("Authorization"),
            }
            with server.lock:
                server.log.append(self.entry)
            path = self.path.split("?", 1)[0]
            if role == "cdn":
                match = re.match(r"^/blobs/([0-9a-f]{64})$", path)
                sig = self.path.split("sig=", 1)[1] if "sig=" in self.path else ""
                if not match or match.group(1) not in server.blobs:
                    return self._json(404, {"error": "not found"})
                if sig != str(server.signature) or server._take("expire"):
                    return self._json(403, {"error": "request has expired"})
                return self._blob(server.blobs[match.group(1)], head)
            if path.startswith("/files/"):
                blob = server.files.get(path[len("/files/") :])
                return self._blob(blob, head) if blob else self._json(404, {"error": "not found"})
            match = _OLLAMA.match(path)
            if match:
                return self._ollama(match, head)
            match = _HF.match(path)
            if match:
                return self._hf(match.group("repo"), match.group("rev"), match.group("path"), head)
            return self._json(404, {"error": "not found"})

        def _hf(self, repo: str, revision: str, path: str, head: bool) -> None:
            from urllib.parse import unquote

            revision, path = unquote(revision), unquote(path)
            known = {key[0] for key in server.hf}
            if repo not in known:
                return self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            if repo in server.gated and self.headers.get("Authorization") != f"Bearer {server.token}":
                return self._json(401, {"error": "Access to this model is restricted"}, {"X-Error-Code": "GatedRepo"})
            if not any(key[0] == repo and key[1] == revision for key in server.hf):
                return self._json(404, {"error": "Revision not found"}, {"X-Error-Code": "RevisionNotFound"})
            entry = server.hf.get((repo, revision, path))
            if entry is None:
                return self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            size = entry.blob.size
            wrong = server._take("wrong_size")
            if wrong:
                size += wrong.delta
            headers = {"X-Repo-Commit": entry.commit, "Accept-Ranges": "bytes"}
            if not entry.lfs:
                return self._blob(entry.blob, head, {**headers, "ETag": f'"{entry.git_sha1}"'})
            headers.update({"X-Linked-Etag": f'"{entry.blob.sha256}"', "X-Linked-Size": str(size), "ETag": f'"{entry.blob.sha256}"'})
            if server.redirect:
                location = f"{server.cdn_url}/blobs/{entry.blob.sha256}?sig={server.signature}"
                return self._empty(302, {**headers, "Location": location})
            return self._blob(entry.blob, head, headers)

        def _ollama(self, match: re.Match, head: bool) -> None:
            ns, model, what, ref = match.group("ns"), match.group("model"), match.group("what"), match.group("ref")
            if what == "manifests":
                raw = server.manifests.get((ns, model, ref))
                if raw is None:
                    return self._json(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
                digest = "sha256:" + hashlib.sha256(raw).hexdigest()
                return self._bytes(200, raw, {"Content-Type": MANIFEST_TYPE, "Docker-Content-Digest": digest}, head)
            blob = server.blobs.get(ref.replace("sha256:", ""))
            if blob is None:
                return self._json(404, {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]})
            if server.redirect:
                return self._empty(307, {"Location": f"{server.cdn_url}/blobs/{blob.sha256}?sig={server.signature}"})
            return self._blob(blob, head)

        # -- answers --

        def _json(self, status: int, body: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> None:
            self._bytes(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}, self.command == "HEAD")

        def _empty(self, status: int, headers: Dict[str, str]) -> None:
            self._bytes(status, b"", headers, True)

        def _bytes(self, status: int, data: bytes, headers: Dict[str, str], head: bool) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _blob(self, blob: Blob, head: bool, extra: Optional[Dict[str, str]] = None) -> None:
            start, end, status = 0, blob.size, 200
            ranged = self.headers.get("Range")
            if ranged and not head and server._take("no_range") is None:
                match = re.match(r"^bytes=(\d+)-(\d*)$", ranged)
                if match:
                    start = int(match.group(1))
                    end = min(int(match.group(2)) + 1 if match.group(2) else blob.size, blob.size)
                    if start >= blob.size or server._take("416"):
                        return self._bytes(416, b"", {"Content-Range": f"bytes */{blob.size}"}, False)
                    status = 206
            if not head:
                fault = server._take("status")
                if fault:
                    return self._json(fault.status, {"error": f"injected {fault.status}"})
            self.send_response(status)
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{blob.size}")
            self.end_headers()
            if head:
                return
            self._send_body(blob, start, end)

        def _send_body(self, blob: Blob, start: int, end: int) -> None:
            corrupt = server._take("corrupt") if start <= _corrupt_offset(server) < end else None
            cut = server._take("truncate")
            stall = server._take("stall")
            limit = end
            if cut:
                limit = min(end, start + cut.offset)
            if stall:
                limit = min(end, start + stall.offset)
            sent = 0
            try:
                if blob.path and not corrupt and not server.throttle:
                    with open(blob.path, "rb") as handle:
                        self.connection.sendfile(handle, start, limit - start)
                    sent = limit - start
                else:
                    handle = open(blob.path, "rb") if blob.path else None  # noqa: SIM115 - closed below
                    pos = start
                    t0 = time.monotonic()
                    slice_ = 256 << 10 if not server.throttle else max(16 << 10, int(server.throttle / 50))
                    while pos < limit:
                        n = min(slice_, limit - pos)
                        data = _read(blob, handle, pos, n)
                        if corrupt and pos <= corrupt.offset < pos + n:
                            i = corrupt.offset - pos
                            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
                        self.wfile.write(data)
                        pos += n
                        sent += n
                        if server.throttle:
                            ahead = sent / server.throttle - (time.monotonic() - t0)
                            if ahead > 0:
                                time.sleep(ahead)
                    if handle:
                        handle.close()
                if stall:
                    time.sleep(stall.seconds)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                self.entry["sent"] = sent
            if limit < end:
                self.close_connection = True  # truncated: the client sees the body end early

    return Handler


def tls_certificate(directory: str) -> Tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (point SSL_CERT_FILE at it to trust it)."""
    import subprocess

    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _corrupt_offset(server: ModelServer) -> int:
    for fault in server.faults:
        if fault.kind == "corrupt" and (fault.times is None or fault.times > 0):
            return fault.offset
    return -1


def _read(blob: Blob, handle: Any, pos: int, n: int) -> bytes:
    if blob.data is not None:
        return blob.data[pos : pos + n]
    return os.pread(handle.fileno(), n, pos)


def main() -> None:
    """Serve files as Hub repo ``bench/files`` (LFS, through the CDN) in a process of its own, for benchmarks:
    ``python -m tests.support.model_server FILE... [--throttle BYTES_PER_S]``; prints the endpoint, then serves."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--throttle", type=float, default=None)
    parser.add_argument("--sha256", action="append", default=[], help="the files' digests, in order (skips hashing them)")
    args = parser.parse_args()
    server = ModelServer(throttle=args.throttle)
    for index, path in enumerate(args.files):
        blob = Blob.of_file(path, args.sha256[index] if index < len(args.sha256) else None)
        server.add_hf("bench/files", os.path.basename(path), blob=blob)
        server.files[os.path.basename(path)] = blob
    with server:
        print(json.dumps({"endpoint": server.url, "cdn": server.cdn_url}), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
