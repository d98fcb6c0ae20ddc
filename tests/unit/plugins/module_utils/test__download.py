from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils import _download
from ansible_collections.homelab.ai.plugins.module_utils._download import RemoteError, TransientError, with_retries


def test_with_retries_backs_off_then_names_what_did_not_answer(monkeypatch):
    slept = []
    monkeypatch.setattr(_download.time, "sleep", slept.append)
    calls = []

    def failing():
        calls.append(1)
        raise TransientError("HTTP 503")

    with pytest.raises(RemoteError, match=r"^hf://o/r/f: the Hub at http://h did not answer \(HTTP 503\); run again later$"):
        with_retries(failing, 5, "hf://o/r/f: the Hub at http://h")
    assert len(calls) == 6 and slept == [1.0, 2.0, 4.0, 8.0, 10.0]


def test_with_retries_returns_the_first_answer_and_lets_other_errors_through(monkeypatch):
    monkeypatch.setattr(_download.time, "sleep", lambda s: None)
    answers = iter([TransientError("timeout"), "manifest"])

    def flaky():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert with_retries(flaky, 3, "x") == "manifest"
    with pytest.raises(RemoteError, match="HTTP 404"):
        with_retries(lambda: (_ for _ in ()).throw(RemoteError("HTTP 404", 404)), 3, "x")
