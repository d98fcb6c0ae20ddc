# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

import stat
import sys
from pathlib import Path

from tests.support.modules import run_module

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "module_utils"))
from sysfs_fixtures import NVIDIA_SMI_OUTPUT, nvidia_node, strix_halo_node


def test_module_sets_the_fact(tmp_path: Path) -> None:
    strix_halo_node(tmp_path)
    result = run_module("gpu_facts", {"sysfs_root": str(tmp_path / "sys"), "dev_root": str(tmp_path / "dev")}, check_mode=True, in_process=True)
    assert result["changed"] is False
    facts = result["ansible_facts"]["homelab_ai_gpu_facts"]
    assert facts["gpus"][0]["vendor"] == "amd" and facts["gpus"][0]["apu"] is True


def test_module_runs_nvidia_smi(tmp_path: Path) -> None:
    nvidia_node(tmp_path)
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\ncat <<'END'\n{NVIDIA_SMI_OUTPUT}END\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    result = run_module("gpu_facts", {"sysfs_root": str(tmp_path / "sys"), "dev_root": str(tmp_path / "dev"), "nvidia_smi": str(fake)}, in_process=True)
    [gpu] = result["ansible_facts"]["homelab_ai_gpu_facts"]["gpus"]
    assert gpu["memory"] == 20475 * 2**20
    assert not result.get("warnings")


def test_module_warns_without_nvidia_smi(tmp_path: Path, monkeypatch) -> None:
    nvidia_node(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run_module("gpu_facts", {"sysfs_root": str(tmp_path / "sys"), "dev_root": str(tmp_path / "dev")}, in_process=True)
    assert any("no nvidia-smi" in w for w in result["ansible_facts"]["homelab_ai_gpu_facts"]["warnings"])
