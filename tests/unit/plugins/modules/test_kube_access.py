# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

from pathlib import Path

from tests.support.fake_kube import FakeKube
from tests.support.modules import run_module


def test_check_mode_reaches_the_server_and_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("K8S_AUTH_HOST", raising=False)
    with FakeKube() as kube:
        path = tmp_path / "config"
        path.write_text(kube.kubeconfig())
        result = run_module("kube_access", {"kubeconfig": str(path)}, check_mode=True, in_process=True)
    assert result["changed"] is False and not result.get("failed")
    assert (result["kubeconfig"], result["context"], result["server"], result["version"]) == ([str(path)], "fake", kube.url, "v1.33.0")
    assert result["msg"] == f"the API server {kube.url} (v1.33.0) answers user fake of context fake in {path}"


def test_a_problem_fails_with_its_fix(tmp_path: Path) -> None:
    result = run_module("kube_access", {"kubeconfig": str(tmp_path / "nope"), "distribution": "generic"}, in_process=True)
    assert result["failed"] is True
    assert result["msg"] == (
        "Apply mode cannot reach the cluster, so the run stops before it renders, applies or contacts a node. "
        f"homelab_ai_kubeconfig: {tmp_path / 'nope'} does not exist. "
        "Fix: set homelab_ai_kubeconfig to your cluster's kubeconfig (kubectl config view --minify --flatten writes one)"
    )
