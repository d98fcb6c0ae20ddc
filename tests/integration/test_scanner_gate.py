"""The scanner gate: checkov over the rendered tree fails only where tests/fixtures/checkov-skips.yaml says why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.checkov_gate import CHECKOV, SKIPS, gate

pytestmark = pytest.mark.skipif(not Path(CHECKOV).exists(), reason=f"no checkov at {CHECKOV}: `make integration` installs it (.cache/venv-checkov)")


def test_every_failure_of_the_example_tree_is_listed_with_its_reason(rendered):
    tree, _ = rendered
    report = gate(tree)
    assert report.unlisted == [] and report.stale == []
    # the README gives the figures: 121 failed and 1224 passed before the hardening, at 3eaaf18
    assert len(report.failed) <= 73 and report.passed >= 1363, (len(report.failed), report.passed)
    for entry in yaml.safe_load(SKIPS.read_text())["skips"]:
        assert entry["reason"].strip() and "\n" not in entry["reason"], entry


def test_a_new_failure_and_an_entry_that_excuses_nothing_fail_the_gate(rendered, tmp_path):
    tree, _ = rendered
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy)
    path = copy / "apps" / "litellm" / "deployment-litellm.yaml"
    deployment = yaml.safe_load(path.read_text())
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        container["securityContext"].pop("readOnlyRootFilesystem")
    path.write_text(yaml.safe_dump(deployment))
    skips = tmp_path / "skips.yaml"
    entries = yaml.safe_load(SKIPS.read_text())
    entries["skips"].append({"check": "CKV_K8S_21", "resources": ["*"], "reason": "nothing is in the default namespace"})
    skips.write_text(yaml.safe_dump(entries))
    report = gate(copy, skips)
    assert [line for line in report.unlisted if line.startswith("CKV_K8S_22 ")] == [
        "CKV_K8S_22 (Use read-only filesystem for containers where possible) on Deployment.ai.litellm"
    ]
    assert report.stale == ["CKV_K8S_21 on *: no failure left for it (nothing is in the default namespace)"]
