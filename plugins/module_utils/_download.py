# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Parallel, resumable, verified downloads over HTTP(S). Standard library only.

This file also runs inside the model pull Job (a stock Python image, delivered through a ConfigMap) and on
nodes, so it imports nothing outside the standard library.

How one file is fetched:

- The file is cut into parts (``part_size``); ``connections`` threads each take the next part in file order and
  fetch it with a Range request over a keep-alive connection, writing every chunk with ``os.pwrite`` into a
  preallocated staging file ``<dir>/.homelab-pull/<name>.part``. The target path only ever sees a complete,
  verified file: the staging file is renamed onto it (same filesystem, ``os.replace``).
- sha256 without a second pass: a hasher thread hashes the contiguous prefix as it grows. Chunks that land within
  ``memory`` bytes ahead of the hash frontier are handed to it in memory; chunks further ahead (a slow connection
  holding the head part) are dropped after the write and re-read by the hasher from the page cache, which they
  have just entered. Memory is therefore bounded by ``memory`` whatever the file size.
- hashlib's state cannot be saved, so resume keeps no hash: every ``checkpoint`` seconds the data is fdatasync'ed
  and then the bytes written of each part are recorded in ``<name>.state.json``. A later run (after an error or
  ``kill -9``) fetches only what is not recorded, and the hasher reads the recorded bytes once from disk (a read
  of what was kept, not a second download). Per-part hashes would only help where the server gives part digests,
  which neither the Hub nor the Ollama registry does; a mismatch of the whole file discards the staging file.
- Transient failures (connection errors, timeouts, truncated bodies, 5xx, 429, 416) are retried per part with
  exponential backoff; a connection that delivers less than ``min_speed`` bytes/s for ``timeout`` seconds is
  stalled and is dropped and retried. A server that answers a Range request with 200 gets one plain stream.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import os
import random
import ssl
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple, TypeVar
from urllib.parse import urljoin, urlsplit

__all__ = [
    "CHUNK",
    "STAGING_DIR",
    "DiskFullError",
    "DownloadError",
    "HttpClient",
    "LockBusyError",
    "Options",
    "Progress",
    "Remote",
    "RemoteError",
    "Transfer",
    "TransientError",
    "WrongContentError",
    "discard",
    "download",
    "file_sha256",
    "locked",
    "origin_of",
    "pending_bytes",
    "staging_paths",
]

CHUNK = 1 << 20
STAGING_DIR = ".homelab-pull"
_REDIRECTS = (301, 302, 303, 307, 308)
_USER_AGENT = "homelab.ai-model-pull/1"


class DownloadError(RuntimeError):
    """A download failed; the message says what and what to do. The target path was not touched."""


class RemoteError(DownloadError):
    """The server refused for good (404, 401, ...); retrying will not help."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class DiskFullError(DownloadError):
    pass


class WrongContentError(DownloadError):
    """The bytes arrived whole but are not the file asked for (another sha256, another format): discarded."""


class LockBusyError(DownloadError):
    pass


class TransientError(Exception):
    """A transient failure of one request (connection, timeout, 5xx): retried with backoff."""


class _NoRanges(Exception):
    """The server answered a Range request with the whole file."""


class _Expired(Exception):
    """A signed (redirect) URL was refused: resolve the source again."""


@dataclass(frozen=True)
class Remote:
    """What to fetch: a URL and what is known of its content."""

    url: str
    size: Optional[int]  # None: the server does not say (then one plain stream, no resume)
    sha256: Optional[str] = None  # expected digest, from the user or the protocol
    etag: str = ""  # identifies the content, to refuse resuming onto a different file
    revision: str = ""  # the commit or version the source resolved to (reported, recorded)
    headers: Tuple[Tuple[str, str], ...] = ()  # sent only to ``origin`` (tokens never follow a redirect elsewhere)
    origin: str = ""  # scheme://host:port the headers belong to; empty: the origin of url
    ranges: bool = True
    refresh: Optional[Callable[[], Remote]] = field(default=None, compare=False, repr=False)

    @property
    def identity(self) -> str:
        return self.sha256 or self.etag or f"{_strip_query(self.url)}|{self.size}"


@dataclass(frozen=True)
class Progress:
    name: str
    done: int  # bytes on disk (including those kept from an earlier run)
    total: Optional[int]
    transferred: int  # bytes fetched in this run
    elapsed: float
    speed: float  # bytes/s of this run

    def line(self) -> str:
        eta = ""
        if self.total and self.speed > 0:
            eta = f" ETA {_duration((self.total - self.done) / self.speed)}"
        pct = f"{100.0 * self.done / self.total:5.1f}% " if self.total else ""
        total = f" / {_size(self.total)}" if self.total else ""
        return f"{self.name}: {pct}{_size(self.done)}{total} {self.speed / 1e6:.1f} MB/s{eta}"


@dataclass(frozen=True)
class Options:
    connections: int = 8
    part_size: int = 16 << 20
    retries: int = 5  # per part, after the first try
    timeout: float = 30.0  # connect and read; a connection silent this long is stalled
    min_speed: int = 1024  # bytes/s over `timeout`; a connection slower than that is stalled too
    backoff: float = 1.0  # first retry delay in seconds; doubles up to backoff_max, with jitter
    backoff_max: float = 30.0
    memory: int = 64 << 20  # bytes ahead of the hash frontier kept in memory for the hasher
    checkpoint: float = 2.0  # seconds between fdatasync + state records
    progress: Optional[Callable[[Progress], None]] = field(default=None, compare=False, repr=False)
    progress_interval: float = 10.0
    name: str = ""  # for progress lines
    verify_tls: bool = True
    magic: bytes = b""  # the bytes the file must start with (b"GGUF" for a llama.cpp model); checked before it is placed


@dataclass(frozen=True)
class Transfer:
    path: str
    size: int
    sha256: str
    transferred: int  # bytes fetched in this run
    reused: int  # bytes kept from an interrupted earlier run
    seconds: float

    @property
    def throughput(self) -> float:
        return self.transferred / self.seconds if self.seconds > 0 else 0.0


# --- HTTP ----------------------------------------------------------------------------------------------------


_T = TypeVar("_T")


def with_retries(call: Callable[[], _T], retries: int, what: str) -> _T:
    """A metadata request (resolve, manifest, HEAD): ``TransientError`` is retried after 1, 2, 4 ... (at most 10) s;
    after ``retries`` retries it is a ``RemoteError`` saying ``what`` did not answer."""
    for attempt in range(retries + 1):
        try:
            return call()
        except TransientError as exc:
            if attempt >= retries:
                raise RemoteError(f"{what} did not answer ({exc}); run again later") from None
            time.sleep(min(2.0**attempt, 10.0))
    raise AssertionError("unreachable")


def origin_of(url: str) -> str:
    split = urlsplit(url)
    port = split.port or (443 if split.scheme == "https" else 80)
    return f"{split.scheme}://{(split.hostname or '').lower()}:{port}"


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


_TLS: Dict[Tuple[bool, str], ssl.SSLContext] = {}
_TLS_LOCK = threading.Lock()


def _tls_context(verify: bool) -> ssl.SSLContext:
    """One context per process: loading the CA store takes a good part of a second."""
    key = (verify, os.environ.get("SSL_CERT_FILE", ""))  # a private CA given by SSL_CERT_FILE (mirrors, tests)
    with _TLS_LOCK:
        if key not in _TLS:
            _TLS[key] = ssl.create_default_context() if verify else ssl._create_unverified_context()
        return _TLS[key]


class HttpClient:
    """Keep-alive connections of one thread, redirects, and headers that never leave their origin."""

    def __init__(self, timeout: float = 30.0, verify_tls: bool = True):
        self.timeout = timeout
        self._conns: Dict[str, http.client.HTTPConnection] = {}
        self.verify_tls = verify_tls

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _conn(self, url: str) -> Tuple[http.client.HTTPConnection, bool]:
        key = origin_of(url)
        conn = self._conns.get(key)
        if conn is not None:
            return conn, True
        split = urlsplit(url)
        if split.scheme == "https":
            conn = http.client.HTTPSConnection(split.hostname or "", split.port, timeout=self.timeout, context=_tls_context(self.verify_tls))
        elif split.scheme == "http":
            conn = http.client.HTTPConnection(split.hostname or "", split.port, timeout=self.timeout)
        else:
            raise RemoteError(f"{_strip_query(url)}: only http and https URLs can be fetched")
        self._conns[key] = conn
        return conn, False

    def drop(self, url: str) -> None:
        conn = self._conns.pop(origin_of(url), None)
        if conn is not None:
            conn.close()

    def request(
        self,
        method: str,
        url: str,
        headers: Optional[Mapping[str, str]] = None,
        *,
        auth: Tuple[Tuple[str, str], ...] = (),
        origin: str = "",
        follow: bool = True,
        max_redirects: int = 8,
    ) -> Tuple[http.client.HTTPResponse, str]:
        """Send one request (following redirects) and return the response with its final URL.

        ``auth`` headers go only to ``origin`` (default: the first URL's): a redirect to a CDN on another host
        never sees the token, as huggingface_hub and requests do it.
        """
        origin = origin or origin_of(url)
        for _ in range(max_redirects + 1):
            sent = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
            if origin_of(url) == origin:
                sent.update(auth)
            resp = self._send(method, url, sent)
            if follow and resp.status in _REDIRECTS and resp.getheader("Location"):
                resp.read()
                if resp.will_close:
                    self.drop(url)
                url = urljoin(url, resp.getheader("Location") or "")
                continue
            return resp, url
        raise RemoteError(f"{_strip_query(url)}: more than {max_redirects} redirects")

    def _send(self, method: str, url: str, headers: Mapping[str, str]) -> http.client.HTTPResponse:
        split = urlsplit(url)
        path = (split.path or "/") + (f"?{split.query}" if split.query else "")
        for attempt in (0, 1):
            conn, reused = self._conn(url)
            try:
                conn.request(method, path, headers=dict(headers))
                return conn.getresponse()
            except (http.client.HTTPException, OSError) as exc:
                self.drop(url)
                # a kept-alive connection the server has closed meanwhile: one fresh try, not a retry
                if reused and attempt == 0 and isinstance(exc, (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine)):
                    continue
                raise TransientError(f"{split.hostname}: {exc or type(exc).__name__}") from exc
        raise AssertionError("unreachable")


# --- staging files and the lock ------------------------------------------------------------------------------


def staging_paths(target: str, staging_dir: Optional[str] = None) -> Dict[str, str]:
    """The side files of a target: partial data, resume state, lock (in a hidden directory beside the target)."""
    directory = staging_dir or os.path.join(os.path.dirname(os.path.abspath(target)), STAGING_DIR)
    name = os.path.basename(target)
    return {
        "dir": directory,
        "part": os.path.join(directory, f"{name}.part"),
        "state": os.path.join(directory, f"{name}.state.json"),
        "lock": os.path.join(directory, f"{name}.lock"),
        "record": os.path.join(directory, f"{name}.verified.json"),
    }


def discard(paths: Mapping[str, str]) -> None:
    """Forget a partial download."""
    for key in ("part", "state"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths[key])


@contextlib.contextmanager
def locked(path: str, timeout: float, what: str = "") -> Iterator[None]:
    """An exclusive flock on ``path``: a second run on the same target waits, then finds the work done."""
    import fcntl  # POSIX only; imported here so that the module still imports elsewhere (docs, tests)

    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
                    raise LockBusyError(
                        f"{what or path} is being downloaded by another run (pid {holder}) and was not free within {timeout:g} s; "
                        "wait for it to finish or raise lock_timeout"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def pending_bytes(remote: Remote, paths: Mapping[str, str]) -> int:
    """How many bytes a download would still fetch, given a partial download that may be there."""
    if remote.size is None:
        return 0
    state = _load_state(paths, remote)
    if state is None:
        return remote.size
    return sum(part.end - part.start - part.written for part in state)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(CHUNK * 4)
            if not block:
                return digest.hexdigest()
            digest.update(block)


# --- the download --------------------------------------------------------------------------------------------


@dataclass
class _Part:
    start: int
    end: int
    written: int = 0  # contiguous bytes from start on disk

    @property
    def done(self) -> bool:
        return self.start + self.written >= self.end


def _load_state(paths: Mapping[str, str], remote: Remote) -> Optional[List[_Part]]:
    try:
        with open(paths["state"], encoding="utf-8") as handle:
            state = json.load(handle)
        if state.get("identity") != remote.identity or state.get("size") != remote.size:
            return None  # another file now: its bytes are worthless
        if os.path.getsize(paths["part"]) != remote.size:
            return None
        parts = [_Part(int(s), int(e), int(w)) for s, e, w in state["parts"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not parts or parts[0].start != 0 or parts[-1].end != remote.size or any(a.end != b.start for a, b in zip(parts, parts[1:])):
        return None
    if any(not 0 <= p.written <= p.end - p.start for p in parts):
        return None
    return parts


def _plan(size: int, part_size: int) -> List[_Part]:
    return [_Part(start, min(start + part_size, size)) for start in range(0, size, part_size)] or [_Part(0, 0)]


def download(remote: Remote, target: str, options: Options = Options(), staging_dir: Optional[str] = None) -> Transfer:
    """Fetch ``remote`` into ``target``: whole and verified, or not at all. The caller holds ``locked()``."""
    paths = staging_paths(target, staging_dir)
    os.makedirs(paths["dir"], exist_ok=True)
    started = time.monotonic()
    if remote.size is None or not remote.ranges:
        return _Download(remote, target, paths, options, started, single=True).run()
    try:
        return _Download(remote, target, paths, options, started, single=False).run()
    except _NoRanges:
        discard(paths)
        return _Download(remote, target, paths, options, started, single=True).run()


class _Download:
    def __init__(self, remote: Remote, target: str, paths: Mapping[str, str], options: Options, started: float, single: bool):
        self.remote = remote
        self.target = target
        self.paths = paths
        self.opt = options
        self.started = started
        self.single = single
        self.cond = threading.Condition()  # guards the parts, `kept` and `failed`; the hasher waits on it for data
        self.waiting = False  # the hasher waits: only then do workers pay for a notify
        self.done = threading.Event()  # the hasher finished, or the download failed
        self.failed: Optional[BaseException] = None
        self.transferred = 0
        self.kept: Dict[int, bytes] = {}  # offset -> chunk, for the hasher
        self.hashed = 0
        self.digest = ""
        self.size = remote.size
        parts = None if single else _load_state(paths, remote)
        self.reused = sum(p.written for p in parts) if parts else 0
        if single or remote.size is None:
            parts = [_Part(0, remote.size if remote.size is not None else -1)]
        elif parts is None:
            parts = _plan(remote.size, max(1, options.part_size))
        self.parts = parts
        self.starts = [p.start for p in parts]
        self.pending = [i for i, p in enumerate(parts) if not p.done]
        self.fd = -1
        self.single_total: Optional[int] = None

    # -- main thread: start, watch, checkpoint, finish --

    def run(self) -> Transfer:
        try:
            self._open()
            workers = [threading.Thread(target=self._worker, name=f"pull-{i}", daemon=True) for i in range(self._connections())]
            hasher = threading.Thread(target=self._hasher, name="pull-hash", daemon=True)
            for thread in [*workers, hasher]:
                thread.start()
            last_checkpoint = last_progress = time.monotonic()
            tick = max(0.05, min(0.5, self.opt.checkpoint, self.opt.progress_interval))
            while not self.done.wait(tick):
                now = time.monotonic()
                if not self.single and now - last_checkpoint >= self.opt.checkpoint:
                    self._checkpoint()
                    last_checkpoint = now
                if self.opt.progress and now - last_progress >= self.opt.progress_interval:
                    self.opt.progress(self._progress())
                    last_progress = now
            hasher.join()
            for worker in workers:
                worker.join()
            if self.failed is not None:
                raise self.failed
            return self._finish()
        except BaseException as exc:
            self._abandon(exc)
            raise
        finally:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1

    def _connections(self) -> int:
        return 1 if self.single else max(1, min(self.opt.connections, len(self.pending)))

    def _open(self) -> None:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        if self.single or not self.reused:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.paths["state"])
            flags |= os.O_TRUNC
        self.fd = os.open(self.paths["part"], flags, 0o644)
        if self.size is not None and not self.reused:
            self._reserve(self.size)
        if not self.single:
            self._checkpoint()  # the plan is on disk before the first byte: a kill -9 from here on resumes

    def _reserve(self, size: int) -> None:
        """Take the space up front: a full disk fails now, clearly, not after gigabytes."""
        stat = os.statvfs(self.paths["dir"])
        free = stat.f_bavail * stat.f_frsize
        if free < size:
            raise DiskFullError(self._disk_full_message(size, free))
        try:
            os.posix_fallocate(self.fd, 0, size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskFullError(self._disk_full_message(size, free)) from exc
            os.ftruncate(self.fd, size)  # a filesystem without fallocate (NFS, some FUSE): sparse, checked as it fills
        except AttributeError:
            os.ftruncate(self.fd, size)

    def _disk_full_message(self, size: int, free: Optional[int]) -> str:
        have = f", {_size(free)} free" if free is not None else ""
        return (
            f"not enough space for {os.path.basename(self.target)} in {os.path.dirname(os.path.abspath(self.target))}: "
            f"it needs {_size(size)}{have}. Free space or give the volume more (e.g. the PVC size in the inventory); "
            f"nothing was left at {self.target}"
        )

    def _checkpoint(self) -> None:
        with self.cond:
            parts = [[p.start, p.end, p.written] for p in self.parts]
        with contextlib.suppress(OSError):
            os.fdatasync(self.fd)  # the bytes recorded below are on disk before the record says so
        state = {"version": 1, "identity": self.remote.identity, "size": self.size, "url": _strip_query(self.remote.url), "parts": parts}
        tmp = self.paths["state"] + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.replace(tmp, self.paths["state"])

    def _progress(self) -> Progress:
        with self.cond:
            done = sum(p.written for p in self.parts)
            transferred = self.transferred
        elapsed = max(time.monotonic() - self.started, 1e-6)
        total = self.size if self.size is not None else self.single_total
        return Progress(self.opt.name or os.path.basename(self.target), done, total, transferred, elapsed, transferred / elapsed)

    def _abandon(self, exc: BaseException) -> None:
        if isinstance(exc, (DiskFullError, WrongContentError, _NoRanges)) or self.single:
            # a full disk gets its space back; a wrong file or a plain stream cannot be resumed
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
            discard(self.paths)
        elif self.fd >= 0:
            with contextlib.suppress(OSError):
                self._checkpoint()

    def _finish(self) -> Transfer:
        size = self.size if self.size is not None else self.hashed
        expected = (self.remote.sha256 or "").lower()
        if expected and self.digest != expected:
            raise WrongContentError(
                f"{os.path.basename(self.target)}: sha256 mismatch, expected {expected}, got {self.digest} "
                f"({_size(size)} from {_strip_query(self.remote.url)}); the download was discarded and {self.target} left as it was. "
                "Run again; if it persists, the source or the sha256 given for it is wrong"
            )
        head = os.pread(self.fd, len(self.opt.magic), 0) if self.opt.magic else b""
        if head != self.opt.magic:
            raise WrongContentError(
                f"{os.path.basename(self.target)}: {_strip_query(self.remote.url)} served {_size(size)} that start with {head!r}, "
                f"not {self.opt.magic!r} as the file format must: the download was discarded and {self.target} left as it was. "
                "The source is likely a web page or the wrong file; name the file itself (hf://org/repo/file.gguf)"
            )
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        os.chmod(self.paths["part"], 0o644)
        os.replace(self.paths["part"], self.target)
        _fsync_dir(os.path.dirname(os.path.abspath(self.target)))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths["state"])
        seconds = time.monotonic() - self.started
        if self.opt.progress:
            name = self.opt.name or os.path.basename(self.target)
            self.opt.progress(Progress(name, size, size, self.transferred, seconds, self.transferred / max(seconds, 1e-6)))
        return Transfer(self.target, size, self.digest, self.transferred, self.reused, seconds)

    def _fail(self, exc: BaseException) -> None:
        with self.cond:
            if self.failed is None:
                self.failed = exc
            self.pending.clear()
            self.cond.notify_all()
        self.done.set()

    # -- worker threads: fetch parts --

    def _worker(self) -> None:
        client = HttpClient(self.opt.timeout, self.opt.verify_tls)
        try:
            while True:
                with self.cond:
                    if self.failed is not None or not self.pending:
                        return
                    index = self.pending.pop(0)
                self._fetch_part(client, index)
        except BaseException as exc:  # every failure ends the download; the main thread reports it
            self._fail(exc)
        finally:
            client.close()

    def _fetch_part(self, client: HttpClient, index: int) -> None:
        part = self.parts[index]
        tries = 0
        while True:
            if self.failed is not None:
                return
            try:
                self._stream(client, part)
                return
            except _Expired:
                if self.remote.refresh is None:
                    raise RemoteError(f"{_strip_query(self.remote.url)} refused the download (its link expired)") from None
                self._refresh()
                error = "link expired"
            except TransientError as exc:
                error = str(exc)
                client.drop(self.remote.url)
            tries += 1
            if tries > self.opt.retries:
                raise DownloadError(
                    f"{os.path.basename(self.target)}: bytes {part.start + part.written}-{part.end - 1} failed {tries} times, last: {error}. "
                    f"What arrived is kept in {self.paths['dir']}; run again to resume"
                )
            delay = min(self.opt.backoff * (2 ** (tries - 1)), self.opt.backoff_max)
            time.sleep(delay * (0.5 + random.random() / 2))

    def _refresh(self) -> None:
        assert self.remote.refresh is not None
        fresh = self.remote.refresh()
        if fresh.size != self.remote.size or fresh.identity != self.remote.identity:
            raise DownloadError(f"{_strip_query(self.remote.url)} changed during the download (now {fresh.size} bytes); run again")
        with self.cond:
            self.remote = fresh

    def _stream(self, client: HttpClient, part: _Part) -> None:
        remote = self.remote
        offset = part.start + part.written
        headers = {}
        if not self.single:
            headers["Range"] = f"bytes={offset}-{part.end - 1}"
        resp, url = client.request("GET", remote.url, headers, auth=remote.headers, origin=remote.origin)
        status = resp.status
        if status == 206 and not self.single:
            self._check_content_range(resp)
        elif status == 200:
            if not self.single:
                resp.close()
                client.drop(url)
                raise _NoRanges()
            if remote.size is not None and resp.length is not None and resp.length != remote.size:
                resp.close()
                raise DownloadError(f"{_strip_query(url)} sent {resp.length} bytes where {remote.size} were expected; the source is not what it claims")
            self.single_total = resp.length
        else:
            resp.read(64 << 10)
            resp.close()
            client.drop(url)
            self._refuse(status, url, resp)
        end = part.end if part.end >= 0 else None
        window_start, window_bytes = time.monotonic(), 0
        fd = self.fd
        while end is None or offset < end:
            want = CHUNK if end is None else min(CHUNK, end - offset)
            try:
                data = resp.read1(want)
            except (OSError, http.client.HTTPException) as exc:  # socket.timeout is an OSError: a silent (stalled) peer
                client.drop(url)
                raise TransientError(f"{_strip_query(url)}: {exc or type(exc).__name__} after {offset - part.start} bytes of the part") from exc
            if not data:
                client.drop(url)
                if end is None:
                    break
                raise TransientError(f"{_strip_query(url)}: the body ended after {offset - part.start} of {part.end - part.start} bytes")
            try:
                written = os.pwrite(fd, data, offset)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DiskFullError(self._disk_full_message(self.size or offset + len(data), None)) from exc
                raise
            if written != len(data):
                raise DownloadError(f"short write to {self.paths['part']}")
            with self.cond:
                if self.failed is not None:
                    return
                if offset < self.hashed + self.opt.memory:
                    self.kept[offset] = data
                part.written += len(data)
                self.transferred += len(data)
                if self.waiting:
                    self.cond.notify()
            offset += len(data)
            # a connection that trickles is as bad as a silent one
            window_bytes += len(data)
            now = time.monotonic()
            if now - window_start >= self.opt.timeout:
                if window_bytes < self.opt.min_speed * (now - window_start):
                    client.drop(url)
                    raise TransientError(f"{_strip_query(url)}: stalled ({window_bytes} bytes in {now - window_start:.0f} s)")
                window_start, window_bytes = now, 0
        if end is None:
            with self.cond:
                self.size = offset
                part.end = offset
                self.cond.notify_all()
        if resp.length == 0 and not resp.will_close:
            resp.read()  # marks the response complete, so the connection takes the next request
        else:  # more than asked for is waiting, or the server closes: the connection cannot be reused
            resp.close()
            client.drop(url)

    def _check_content_range(self, resp: http.client.HTTPResponse) -> None:
        value = resp.getheader("Content-Range") or ""
        try:
            total = int(value.rsplit("/", 1)[1])
        except (IndexError, ValueError):
            return
        if total != self.size:
            resp.close()
            raise DownloadError(
                f"{_strip_query(self.remote.url)} is {total} bytes now, not the {self.size} announced; the source changed or lies about its size. "
                "Run again (a partial download of another size is discarded)"
            )

    def _refuse(self, status: int, url: str, resp: http.client.HTTPResponse) -> None:
        where = _strip_query(url)
        if status in (429, 500, 502, 503, 504, 408) or status == 416:
            # 416 is an edge cache that has not got the whole object yet as often as a wrong size; retry, then tell
            raise TransientError(f"{where}: HTTP {status} {resp.reason}")
        if status in (401, 403, 410) and self.remote.refresh is not None and origin_of(url) != (self.remote.origin or origin_of(self.remote.url)):
            raise _Expired()  # a signed CDN link that has expired: resolve the source again
        if status in (401, 403):
            raise RemoteError(f"{where}: HTTP {status}: access refused; a gated or private model needs a token (token option or HF_TOKEN)", status)
        raise RemoteError(f"{where}: HTTP {status} {resp.reason}", status)

    # -- the hasher thread: sha256 of the contiguous prefix, in file order --

    def _available(self, pos: int) -> int:
        index = bisect_right(self.starts, pos) - 1
        if index < 0:
            return 0
        part = self.parts[index]
        return part.start + part.written - pos

    def _hasher(self) -> None:
        digest = hashlib.sha256()
        pos = 0
        try:
            while True:
                with self.cond:
                    while True:
                        if self.failed is not None:
                            return
                        if self.size is not None and pos >= self.size:
                            self.digest = digest.hexdigest()
                            self.hashed = pos
                            return
                        available = self._available(pos)
                        if available > 0:
                            break
                        self.waiting = True
                        self.cond.wait(0.5)
                        self.waiting = False
                    data: Optional[bytes] = self.kept.pop(pos, None)
                    if data is None:
                        length = min(available, CHUNK)
                        for offset in self.kept:
                            if pos < offset < pos + length:
                                length = offset - pos
                if data is None:
                    data = _pread(self.fd, length, pos)
                digest.update(data)
                pos += len(data)
                with self.cond:
                    self.hashed = pos
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.done.set()


def _pread(fd: int, length: int, pos: int) -> bytes:
    data = os.pread(fd, length, pos)
    while len(data) < length:
        more = os.pread(fd, length - len(data), pos + len(data))
        if not more:
            raise DownloadError("the staging file is shorter than what was written to it")
        data += more
    return data


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _size(n: Optional[float]) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
