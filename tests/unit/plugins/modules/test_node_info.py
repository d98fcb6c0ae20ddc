# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

from pathlib import Path

from tests.support.modules import run_module


def test_module_reads_the_fixture_tree(tmp_path: Path) -> None:
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 1024 kB\n")
    (tmp_path / "proc" / "sys" / "kernel" / "osrelease").write_text("6.1.0-test\n")
    args = {
        "proc_path": str(tmp_path / "proc"),
        "sysfs_path": str(tmp_path / "sys"),
        "modules_path": str(tmp_path / "modules"),
        "run_path": str(tmp_path / "run"),
        "kernel_modules": ["iscsi_tcp"],
        "units": ["homelab-ai-test-unit-that-does-not-exist"],
    }
    result = run_module("node_info", args, check_mode=True, in_process=True)
    assert result["changed"] is False
    assert result["info"]["memory_total"] == 1024 * 1024
    assert result["info"]["kernel_release"] == "6.1.0-test"
    assert result["info"]["kernel_modules"]["iscsi_tcp"]["loaded"] is False
    assert result["info"]["units"] == {"homelab-ai-test-unit-that-does-not-exist": False}
