# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Pull one catalog model into a directory: decide, download, verify, record. Standard library only.

The same code runs as the ``homelab.ai.model_pull`` module (on a host path) and as the model pull Job
(``python -m <package>._pull --spec JSON``, inside a stock Python image, delivered through a ConfigMap).

Idempotence without re-hashing: after a file is verified and renamed into place, a record
``.homelab-pull/<name>.verified.json`` keeps its sha256 with the size, mtime and inode it had. A later run whose
target still matches the record trusts it (no network, no hashing); ``verify`` re-hashes on request. Ollama blobs
need no record: they are content-addressed and only ever renamed into place after their digest was checked.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ._download import (
    DownloadError,
    Options,
    Progress,
    Remote,
    discard,
    download,
    file_sha256,
    locked,
    pending_bytes,
    staging_paths,
)
from ._hf import hf_endpoint, hf_token, is_commit, resolve_hf
from ._ollama_registry import Manifest, blob_path, blob_remote, fetch_manifest, local_manifest, manifest_path, missing_blobs, parse_manifest
from ._problems import InputError, Problem
from ._sources import Source, SourceError, parse_source

__all__ = ["PullRequest", "PullResult", "check_request", "main", "pull"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
STATES = ("present", "latest", "absent")
MIN_PART = 4096


@dataclass(frozen=True)
class PullRequest:
    source: str
    dest: str  # hf/https: the directory of the file; ollama: Ollama's models directory (OLLAMA_MODELS)
    filename: str = ""  # hf/https: the file name in dest; default the source's
    sha256: str = ""  # expected; hf LFS files and Ollama blobs carry their own
    token: Optional[str] = field(default=None, repr=False)  # Hub token (gated repos); default $HF_TOKEN
    endpoint: str = ""  # hf: the Hub (default $HF_ENDPOINT, huggingface.co); ollama: the registry's base URL
    state: str = "present"
    verify: bool = False  # re-hash what is there instead of trusting the record
    connections: int = 8
    part_size: int = 16 << 20
    retries: int = 5
    timeout: float = 30.0
    lock_timeout: float = 3600.0
    memory: int = 64 << 20
    name: str = ""  # what progress lines call it
    magic: str = ""  # hf/https: what the file must start with ("GGUF" for llama.cpp); anything else is discarded
    # tuning that tests turn down; the module and the Job keep the defaults
    backoff: float = 1.0
    checkpoint: float = 2.0
    min_speed: int = 1024


@dataclass
class PullResult:
    changed: bool
    action: str  # downloaded | resumed | verified | unchanged | removed | absent, prefixed "would " in check mode
    source: str
    path: str
    size: int = 0
    sha256: str = ""
    revision: str = ""
    bytes_transferred: int = 0
    bytes_to_transfer: int = 0
    seconds: float = 0.0
    throughput: float = 0.0  # bytes/s
    files: List[Dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def check_request(req: PullRequest, where: str = "") -> Source:
    """Every problem with the request, raised together before anything is written or fetched."""
    problems: List[Problem] = []
    at = f"{where}." if where else ""
    source: Optional[Source] = None
    try:
        source = parse_source(req.source)
    except SourceError as exc:
        problems.append(Problem(f"{at}source", str(exc), "use hf://org/repo/file.gguf[@revision], https://host/path/file or ollama://model:tag"))
    if not req.dest:
        problems.append(Problem(f"{at}dest", "is empty", "give the directory the model goes into"))
    if req.state not in STATES:
        problems.append(Problem(f"{at}state", f"{req.state!r} is not a state", f"use one of {', '.join(STATES)}"))
    if req.sha256 and not _SHA256.match(req.sha256.lower()):
        problems.append(Problem(f"{at}sha256", f"{req.sha256!r} is not a sha256 digest", "write the 64 hex digits, or leave it out"))
    if req.filename and (os.sep in req.filename or req.filename in (".", "..") or req.filename.startswith(".")):
        problems.append(Problem(f"{at}filename", f"{req.filename!r} is not a plain file name", "give a name without '/', not starting with '.'"))
    if source is not None and source.scheme == "ollama":
        if req.sha256:
            problems.append(Problem(f"{at}sha256", "does not apply to ollama:// sources", "leave it out: every blob is checked against its digest"))
        if req.filename:
            problems.append(Problem(f"{at}filename", "does not apply to ollama:// sources", "leave it out: Ollama's layout names the files"))
    if not 1 <= req.connections <= 64:
        problems.append(Problem(f"{at}connections", f"{req.connections} is out of range", "use 1 to 64"))
    if req.part_size < MIN_PART:
        problems.append(Problem(f"{at}part_size", f"{req.part_size} bytes is too small", f"use at least {MIN_PART} bytes (16Mi is a good size)"))
    if req.retries < 0:
        problems.append(Problem(f"{at}retries", f"{req.retries} is negative", "use 0 or more"))
    if req.timeout <= 0 or req.lock_timeout < 0:
        problems.append(Problem(f"{at}timeout", "must be positive", "give seconds, e.g. 30"))
    if problems:
        raise InputError(problems)
    assert source is not None
    return source


def pull(req: PullRequest, *, check_mode: bool = False, progress: Optional[Callable[[Progress], None]] = None, progress_interval: float = 10.0) -> PullResult:
    source = check_request(req)
    dest = os.path.abspath(req.dest)
    options = Options(
        connections=req.connections,
        part_size=req.part_size,
        retries=req.retries,
        timeout=req.timeout,
        memory=req.memory,
        backoff=req.backoff,
        checkpoint=req.checkpoint,
        min_speed=req.min_speed,
        progress=progress,
        progress_interval=progress_interval,
        name=req.name,
        magic=req.magic.encode("ascii"),
    )
    if source.scheme == "ollama":
        return _Ollama(req, source, dest, options, check_mode).run()
    return _File(req, source, dest, options, check_mode).run()


def _lock(path: str, req: PullRequest, check_mode: bool, what: str) -> Any:
    # check mode writes nothing, not even a lock file
    return contextlib.nullcontext() if check_mode else locked(path, req.lock_timeout, what)


def _stat(path: str) -> Optional[os.stat_result]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not os.path.isfile(path):
        raise DownloadError(f"{path} exists and is not a file; move it away or choose another dest/filename")
    return st


def _starts_with(path: str, magic: bytes) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(magic)) == magic


def _write_json(path: str, doc: Mapping[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


class _File:
    """An hf:// or https:// file."""

    def __init__(self, req: PullRequest, source: Source, dest: str, options: Options, check_mode: bool):
        self.req, self.source, self.options, self.check_mode = req, source, options, check_mode
        self.target = os.path.join(dest, req.filename or source.filename)
        self.paths = staging_paths(self.target)
        self.expected = req.sha256.lower()

    def result(self, changed: bool, action: str, **kw: Any) -> PullResult:
        return PullResult(changed=changed, action=action, source=self.req.source, path=self.target, **kw)

    def resolve(self) -> Remote:
        if self.source.scheme == "hf":
            endpoint = hf_endpoint(self.req.endpoint)
            remote = resolve_hf(self.source, endpoint, hf_token(self.req.token), timeout=self.req.timeout, retries=self.req.retries)
        else:
            remote = _resolve_https(self.source, self.req)
        if self.expected and remote.sha256 and remote.sha256 != self.expected:
            raise DownloadError(
                f"{self.source.uri}: the source says its sha256 is {remote.sha256}, the sha256 given is {self.expected}; "
                "nothing was downloaded. Fix the sha256 in the catalog, or pin the source to the revision it belongs to (@commit)"
            )
        return dataclasses.replace(remote, sha256=self.expected or remote.sha256)

    def record(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self.paths["record"], encoding="utf-8") as handle:
                doc = json.load(handle)
            return doc if isinstance(doc, dict) else None
        except (OSError, ValueError):
            return None

    def trusted(self, st: os.stat_result, rec: Optional[Dict[str, Any]]) -> bool:
        """The file is the one the record verified, for this source (and the sha256 asked for)."""
        return bool(
            rec
            and rec.get("source") == self.source.uri
            and (rec.get("size"), rec.get("mtime_ns"), rec.get("ino")) == (st.st_size, st.st_mtime_ns, st.st_ino)
            and (not self.expected or rec.get("sha256") == self.expected)
        )

    def keep_record(self, sha256: str, identity: str, revision: str) -> None:
        st = os.stat(self.target)
        doc = {
            "version": 1,
            "source": self.source.uri,
            "sha256": sha256,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ino": st.st_ino,
            "identity": identity,
            "revision": revision,
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.makedirs(self.paths["dir"], exist_ok=True)
        _write_json(self.paths["record"], doc)

    def run(self) -> PullResult:
        if self.req.state == "absent":
            return self.remove()
        with _lock(self.paths["lock"], self.req, self.check_mode, self.target):
            return self.present()

    def present(self) -> PullResult:
        st = _stat(self.target)
        if st is not None and self.req.magic and not _starts_with(self.target, self.req.magic.encode("ascii")):
            # not the format the server reads (an earlier pull of a web page): it goes, and the file is fetched again
            if not self.check_mode:
                for path in (self.target, self.paths["record"]):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            st = None
        rec = (self.record() or {}) if st else {}
        trusted = st is not None and self.trusted(st, rec)
        pinned = self.source.scheme == "hf" and is_commit(self.source.revision)
        upstream = self.req.state == "latest" and not pinned  # does the source hold something newer?
        if st is not None and trusted and not upstream and not self.req.verify:
            # the record vouches for the file: no network, no hashing
            return self.result(False, "unchanged", size=st.st_size, sha256=rec["sha256"], revision=rec.get("revision", ""))
        remote = self.resolve() if upstream or not (trusted or self.expected) else None
        moved = upstream and trusted and remote is not None and remote.identity != rec.get("identity")
        if st is not None and not moved:
            if trusted and not self.req.verify:
                return self.result(False, "unchanged", size=st.st_size, sha256=rec["sha256"], revision=rec.get("revision", ""))
            actual = file_sha256(self.target)
            expected = self.expected or (remote.sha256 if remote else None) or (rec.get("sha256") if trusted else None)
            if expected is None and remote is not None and remote.size == st.st_size:
                expected = actual  # a plain URL without sha256: nothing to check but the size, so adopt the file
            if actual == expected:
                revision = remote.revision if remote else rec.get("revision", "")
                if not self.check_mode:
                    self.keep_record(actual, remote.identity if remote else rec.get("identity", ""), revision)
                return self.result(False, "verified", size=st.st_size, sha256=actual, revision=revision)
        if remote is None:
            remote = self.resolve()
        todo = pending_bytes(remote, self.paths) if remote.size is not None else 0
        if self.check_mode:
            return self.result(True, "would download", size=remote.size or 0, sha256=remote.sha256 or "", revision=remote.revision, bytes_to_transfer=todo)
        transfer = download(remote, self.target, self.options)
        self.keep_record(transfer.sha256, remote.identity, remote.revision)
        files = [{"path": self.target, "size": transfer.size, "sha256": transfer.sha256, "action": "downloaded"}]
        return self.result(
            True,
            "resumed" if transfer.reused else "downloaded",
            size=transfer.size,
            sha256=transfer.sha256,
            revision=remote.revision,
            bytes_transferred=transfer.transferred,
            seconds=round(transfer.seconds, 3),
            throughput=round(transfer.throughput, 1),
            files=files,
        )

    def remove(self) -> PullResult:
        present = [p for p in (self.target, self.paths["part"], self.paths["state"], self.paths["record"]) if os.path.lexists(p)]
        if present and not self.check_mode:
            with locked(self.paths["lock"], self.req.lock_timeout, self.target):
                for path in present:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
        return self.result(bool(present), ("would remove" if self.check_mode else "removed") if present else "absent")


def _resolve_https(source: Source, req: PullRequest) -> Remote:
    """A plain URL: HEAD for its size (and whether it serves ranges); the sha256 only where the user gives it."""
    from ._download import HttpClient, RemoteError, TransientError, origin_of, with_retries

    client = HttpClient(req.timeout)

    def head() -> tuple:
        resp, url = client.request("HEAD", source.url)
        resp.read()
        if resp.status >= 500 or resp.status == 429:
            raise TransientError(f"HTTP {resp.status}")
        return resp, url

    try:
        resp, url = with_retries(head, req.retries, source.uri)
    finally:
        client.close()
    if resp.status in (405, 501):  # no HEAD: one plain stream, size unknown
        return Remote(url=source.url, size=None, sha256=req.sha256 or None, etag="", origin=origin_of(source.url), ranges=False)
    if resp.status != 200:
        raise RemoteError(f"{source.uri}: HTTP {resp.status} {resp.reason}", resp.status)
    length = resp.getheader("Content-Length")
    size = int(length) if length and length.isdigit() else None
    etag = (resp.getheader("ETag") or "").strip('"')
    ranges = (resp.getheader("Accept-Ranges") or "").lower() == "bytes"
    return Remote(url=url, size=size, sha256=req.sha256 or None, etag=etag, origin=origin_of(url), ranges=ranges and size is not None, revision=etag)


class _Ollama:
    """An ollama:// model, written into Ollama's own layout."""

    def __init__(self, req: PullRequest, source: Source, dest: str, options: Options, check_mode: bool):
        self.req, self.source, self.dest, self.options, self.check_mode = req, source, dest, options, check_mode
        self.manifest_file = manifest_path(dest, source)
        self.staging = os.path.join(dest, ".homelab-pull")

    def result(self, changed: bool, action: str, manifest: Optional[Manifest], **kw: Any) -> PullResult:
        size = manifest.size if manifest else 0
        digest = manifest.digest if manifest else ""
        return PullResult(changed=changed, action=action, source=self.req.source, path=self.manifest_file, size=size, sha256=digest, revision=digest, **kw)

    def run(self) -> PullResult:
        if self.req.state == "absent":
            return self.remove()
        lock = os.path.join(self.staging, f"{self.source.model}-{self.source.tag}.lock")
        with _lock(lock, self.req, self.check_mode, self.source.ollama_name):
            return self.present()

    def present(self) -> PullResult:
        local = local_manifest(self.dest, self.source)
        if local is not None and self.req.state == "present" and not self.req.verify and not missing_blobs(self.dest, local):
            return self.result(False, "unchanged", local)
        manifest = fetch_manifest(self.source, self.req.endpoint, timeout=self.req.timeout, retries=self.req.retries)
        todo = missing_blobs(self.dest, manifest)
        if self.req.verify:
            for layer in manifest.layers:
                if layer not in todo and file_sha256(blob_path(self.dest, layer)) != layer.sha256:
                    todo.append(layer)
        same_manifest = local is not None and local.raw == manifest.raw
        if not todo and same_manifest:
            return self.result(False, "verified" if self.req.verify else "unchanged", manifest)
        if self.check_mode:
            pending = sum(
                pending_bytes(blob_remote(self.source, layer, self.req.endpoint), staging_paths(blob_path(self.dest, layer), self.staging)) for layer in todo
            )
            files = [{"path": blob_path(self.dest, layer), "size": layer.size, "sha256": layer.sha256, "action": "would download"} for layer in todo]
            return self.result(True, "would download", manifest, bytes_to_transfer=pending, files=files)
        os.makedirs(os.path.join(self.dest, "blobs"), exist_ok=True)
        started = time.monotonic()
        transferred, reused, files = 0, 0, []
        for index, layer in enumerate(todo):
            target = blob_path(self.dest, layer)
            name = f"{self.req.name or self.source.ollama_name} blob {index + 1}/{len(todo)}"
            paths = staging_paths(target, self.staging)
            with locked(paths["lock"], self.req.lock_timeout, target):
                if missing_blobs(self.dest, Manifest(b"", (layer,))) or self.req.verify:
                    transfer = download(blob_remote(self.source, layer, self.req.endpoint), target, dataclasses.replace(self.options, name=name), self.staging)
                    transferred += transfer.transferred
                    reused += transfer.reused
                    files.append({"path": target, "size": layer.size, "sha256": layer.sha256, "action": "downloaded"})
        os.makedirs(os.path.dirname(self.manifest_file), exist_ok=True)
        tmp = os.path.join(self.staging, f"{self.source.model}-{self.source.tag}.manifest.tmp")
        with open(tmp, "wb") as handle:
            handle.write(manifest.raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.manifest_file)  # last: Ollama sees the model only once every blob is there
        seconds = time.monotonic() - started
        return self.result(
            True,
            "resumed" if reused else "downloaded",
            manifest,
            bytes_transferred=transferred,
            seconds=round(seconds, 3),
            throughput=round(transferred / seconds, 1) if seconds > 0 else 0.0,
            files=files,
        )

    def remove(self) -> PullResult:
        local = local_manifest(self.dest, self.source)
        if local is None and not os.path.lexists(self.manifest_file):
            return self.result(False, "absent", None)
        if not self.check_mode:
            os.unlink(self.manifest_file)
            used = _used_digests(self.dest)
            for layer in local.layers if local else ():
                if layer.digest not in used:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(blob_path(self.dest, layer))
                    discard(staging_paths(blob_path(self.dest, layer), self.staging))
        return self.result(True, "would remove" if self.check_mode else "removed", local)


def _used_digests(models_dir: str) -> set:
    """Digests that some manifest still uses: those blobs stay (models share them)."""
    used: set = set()
    for root, _dirs, names in os.walk(os.path.join(models_dir, "manifests")):
        for name in names:
            try:
                with open(os.path.join(root, name), "rb") as handle:
                    used.update(layer.digest for layer in parse_manifest(handle.read(), name).layers)
            except (OSError, DownloadError):
                continue
    return used


# --- the Job's entry point ------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m <package>._pull --spec '{"source": ..., "dest": ...}'``: progress lines, then one RESULT line."""
    parser = argparse.ArgumentParser(prog="model-pull", description="Pull a model into a directory (hf://, https://, ollama://).")
    parser.add_argument("--spec", required=True, help="the PullRequest as JSON; the token comes from $HF_TOKEN")
    parser.add_argument("--progress-interval", type=float, default=10.0)
    parser.add_argument("--check", action="store_true", help="say what would be downloaded, write nothing")
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.spec)
        known = {f.name for f in dataclasses.fields(PullRequest)} - {"token"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise InputError([Problem("--spec", f"unknown keys {unknown}", f"use {', '.join(sorted(known))}")])
        req = PullRequest(**spec)
    except (ValueError, TypeError) as exc:
        print(f"ERROR: --spec: {exc}", file=sys.stderr, flush=True)
        return 2

    def show(progress: Progress) -> None:
        print(progress.line(), flush=True)

    print(f"pulling {req.source} into {req.dest}", flush=True)
    try:
        result = pull(req, check_mode=args.check, progress=show, progress_interval=args.progress_interval)
    except (InputError, DownloadError, OSError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    summary = f"{result.action} {result.path} ({result.size} bytes, sha256 {result.sha256 or '-'})"
    if result.bytes_transferred:
        summary += f": {result.bytes_transferred} bytes in {result.seconds:.1f} s, {result.throughput / 1e6:.1f} MB/s"
    print(summary, flush=True)
    print("RESULT " + json.dumps(result.to_dict(), sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
