# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The Hugging Face Hub's resolve protocol, as huggingface_hub speaks it. Standard library only (runs in the pull Job).

``HEAD {endpoint}/{repo}/resolve/{revision}/{file}`` without following a redirect to another host answers with
``X-Repo-Commit`` (the commit the revision points at), and for LFS files ``X-Linked-Etag`` (the file's sha256) and
``X-Linked-Size``, plus a ``Location`` on a CDN that serves Range requests. A relative redirect (a renamed repo)
is followed. The token goes to the endpoint only; the CDN link is signed and never sees it. When the link
expires during a long download, the file is resolved again at the same commit.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Optional
from urllib.parse import urljoin, urlsplit

from ._download import HttpClient, Remote, RemoteError, TransientError, origin_of, with_retries
from ._sources import HF_DEFAULT_ENDPOINT, Source

__all__ = ["hf_endpoint", "hf_token", "resolve_hf"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def hf_endpoint(option: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    return (option or env.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")


def hf_token(option: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    env = os.environ if env is None else env
    return option or env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or None


def is_commit(revision: str) -> bool:
    return bool(_COMMIT.match(revision))


def _etag(value: Optional[str]) -> str:
    value = (value or "").strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def resolve_hf(
    source: Source, endpoint: str = HF_DEFAULT_ENDPOINT, token: Optional[str] = None, *, timeout: float = 30.0, retries: int = 3, revision: str = ""
) -> Remote:
    """Where an hf:// file's bytes are and what they must hash to."""
    auth = (("Authorization", f"Bearer {token}"),) if token else ()
    url = source.resolve_url(endpoint, revision)
    origin = origin_of(url)
    client = HttpClient(timeout)

    def attempt() -> Remote:
        nonlocal url
        for _ in range(5):  # relative redirects: a renamed repo
            resp, _ = client.request("HEAD", url, auth=auth, origin=origin, follow=False)
            resp.read()
            location = resp.getheader("Location")
            if resp.status in (301, 302, 307, 308) and location and not urlsplit(location).netloc:
                url = urljoin(url, location)
                continue
            break
        if resp.status >= 500 or resp.status == 429:
            raise TransientError(f"HTTP {resp.status}")
        return _remote(source, endpoint, token, resp, url, auth, origin, timeout)

    try:
        return with_retries(attempt, retries, f"{source.uri}: the Hub at {endpoint}")
    finally:
        client.close()


def _remote(source: Source, endpoint: str, token: Optional[str], resp: object, url: str, auth: tuple, origin: str, timeout: float) -> Remote:
    import http.client

    assert isinstance(resp, http.client.HTTPResponse)
    status = resp.status
    code = resp.getheader("X-Error-Code") or ""
    if status in (401, 403) or code == "GatedRepo":
        if code == "GatedRepo":
            fix = "accept the model's conditions on its Hub page with your account, then give a token of that account (token option or HF_TOKEN)"
        else:
            fix = "the repository is private or gated: give a token that may read it (token option or HF_TOKEN)"
        if token:
            fix = "the token given was refused or has no access; check it on the Hub (Settings, Access Tokens) and that the account accepted the conditions"
        raise RemoteError(f"{source.uri}: HTTP {status} {code or 'access refused'}: {fix}", status)
    if status == 404:
        what = {
            "RepoNotFound": f"no repository {source.repo} at {endpoint}",
            "RevisionNotFound": f"{source.repo} has no revision {source.revision!r}",
            "EntryNotFound": f"{source.repo} has no file {source.path!r} at revision {source.revision!r}",
        }.get(code, f"not found at {endpoint}")
        raise RemoteError(f"{source.uri}: {what}; check the name in the model catalog (the file list is on the model's Hub page)", 404)
    if status not in (200, 301, 302, 303, 307, 308):
        raise RemoteError(f"{source.uri}: the Hub answered HTTP {status} {resp.reason}", status)
    commit = resp.getheader("X-Repo-Commit") or ""
    linked_etag = _etag(resp.getheader("X-Linked-Etag"))
    etag = linked_etag or _etag(resp.getheader("ETag"))
    size_header = resp.getheader("X-Linked-Size") or resp.getheader("Content-Length")
    size = int(size_header) if size_header and size_header.isdigit() else None
    sha256 = linked_etag if _SHA256.match(linked_etag) else None
    download_url = urljoin(url, resp.getheader("Location") or "") if status != 200 else url
    pinned = commit if is_commit(commit) else ""

    def refresh() -> Remote:
        return resolve_hf(source, endpoint, token, timeout=timeout, revision=pinned or source.revision)

    return Remote(
        url=download_url,
        size=size,
        sha256=sha256,
        etag=etag if sha256 else f"{commit}:{etag}",  # a git blob id alone may repeat across commits of a changed LFS pointer
        revision=commit,
        headers=auth,
        origin=origin,
        ranges=True,
        refresh=refresh,
    )
