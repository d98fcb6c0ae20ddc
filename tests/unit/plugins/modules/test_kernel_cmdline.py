# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

from pathlib import Path

from tests.support.modules import run_module

GRUB = 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="pcie_aspm=off"\n'
GTT = {"amdgpu.gttsize": 98304, "ttm.pages_limit": 25165824}


def test_sets_the_arguments_once(tmp_path: Path) -> None:
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    grub.chmod(0o640)
    result = run_module("kernel_cmdline", {"path": str(grub), "args": GTT}, diff=True, in_process=True)
    assert result["changed"] is True
    assert result["previous"] == "pcie_aspm=off"
    assert result["cmdline"] == "pcie_aspm=off amdgpu.gttsize=98304 ttm.pages_limit=25165824"
    assert result["args"] == "amdgpu.gttsize=98304 ttm.pages_limit=25165824"
    assert result["diff"]["before"] == GRUB
    assert 'GRUB_CMDLINE_LINUX="pcie_aspm=off amdgpu.gttsize=98304 ttm.pages_limit=25165824"' in grub.read_text()
    assert grub.stat().st_mode & 0o777 == 0o640
    assert run_module("kernel_cmdline", {"path": str(grub), "args": GTT}, in_process=True)["changed"] is False


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    result = run_module("kernel_cmdline", {"path": str(grub), "args": GTT}, check_mode=True, in_process=True)
    assert result["changed"] is True
    assert grub.read_text() == GRUB
    assert list(tmp_path.iterdir()) == [grub]


def test_a_missing_grub_file_fails_but_a_plain_one_is_created(tmp_path: Path) -> None:
    result = run_module("kernel_cmdline", {"path": str(tmp_path / "grub"), "args": GTT}, in_process=True)
    assert result["failed"] is True and "is GRUB the boot loader" in result["msg"]
    cmdline = tmp_path / "kernel" / "cmdline"
    result = run_module("kernel_cmdline", {"path": str(cmdline), "args": {"quiet": None}, "format": "plain"}, in_process=True)
    assert result["changed"] is True and cmdline.read_text() == "quiet\n"


def test_bad_arguments_fail_with_the_file_named(tmp_path: Path) -> None:
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    result = run_module("kernel_cmdline", {"path": str(grub), "args": {"bad name": 1}}, in_process=True)
    assert result["failed"] is True and result["msg"].startswith(f"{grub}: 'bad name' is not a kernel parameter name")
