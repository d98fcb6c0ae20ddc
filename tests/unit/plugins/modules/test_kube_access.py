# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.ai.plugins.modules import kube_access
from tests.support.fake_kube import FakeKube


def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        kube_access.main()
    return json.loads(capsys.readouterr().out)


def test_check_mode_reaches_the_server_and_changes_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("K8S_AUTH_HOST", raising=False)
    with FakeKube() as kube:
        path = tmp_path / "config"
        path.write_text(kube.kubeconfig())
        result = run_module({"kubeconfig": str(path), "_ansible_check_mode": True}, capsys)
    assert result["changed"] is False and not result.get("failed")
    assert (result["kubeconfig"], result["context"], result["server"], result["version"]) == ([str(path)], "fake", kube.url, "v1.33.0")
    assert result["msg"] == f"the API server {kube.url} (v1.33.0) answers user fake of context fake in {path}"


def test_a_problem_fails_with_its_fix(tmp_path: Path, capsys) -> None:
    result = run_module({"kubeconfig": str(tmp_path / "nope"), "distribution": "generic"}, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        "Apply mode cannot reach the cluster, so the run stops before it renders, applies or contacts a node. "
        f"homelab_ai_kubeconfig: {tmp_path / 'nope'} does not exist. "
        "Fix: set homelab_ai_kubeconfig to your cluster's kubeconfig (kubectl config view --minify --flatten writes one)"
    )
