# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.ai.plugins.modules import kernel_cmdline

GRUB = 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="pcie_aspm=off"\n'
GTT = {"amdgpu.gttsize": 98304, "ttm.pages_limit": 25165824}


def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        kernel_cmdline.main()
    return json.loads(capsys.readouterr().out)


def test_sets_the_arguments_once(tmp_path: Path, capsys) -> None:
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    grub.chmod(0o640)
    result = run_module({"path": str(grub), "args": GTT, "_ansible_diff": True}, capsys)
    assert result["changed"] is True
    assert result["previous"] == "pcie_aspm=off"
    assert result["cmdline"] == "pcie_aspm=off amdgpu.gttsize=98304 ttm.pages_limit=25165824"
    assert result["args"] == "amdgpu.gttsize=98304 ttm.pages_limit=25165824"
    assert result["diff"]["before"] == GRUB
    assert 'GRUB_CMDLINE_LINUX="pcie_aspm=off amdgpu.gttsize=98304 ttm.pages_limit=25165824"' in grub.read_text()
    assert grub.stat().st_mode & 0o777 == 0o640
    assert run_module({"path": str(grub), "args": GTT}, capsys)["changed"] is False


def test_check_mode_writes_nothing(tmp_path: Path, capsys) -> None:
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    result = run_module({"path": str(grub), "args": GTT, "_ansible_check_mode": True}, capsys)
    assert result["changed"] is True
    assert grub.read_text() == GRUB
    assert list(tmp_path.iterdir()) == [grub]


def test_a_missing_grub_file_fails_but_a_plain_one_is_created(tmp_path: Path, capsys) -> None:
    result = run_module({"path": str(tmp_path / "grub"), "args": GTT}, capsys)
    assert result["failed"] is True and "is GRUB the boot loader" in result["msg"]
    cmdline = tmp_path / "kernel" / "cmdline"
    result = run_module({"path": str(cmdline), "args": {"quiet": None}, "format": "plain"}, capsys)
    assert result["changed"] is True and cmdline.read_text() == "quiet\n"


def test_bad_arguments_fail_with_the_file_named(tmp_path: Path, capsys) -> None:
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    result = run_module({"path": str(grub), "args": {"bad name": 1}}, capsys)
    assert result["failed"] is True and result["msg"].startswith(f"{grub}: 'bad name' is not a kernel parameter name")
