# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The node_bootstrap role's own tables (tests/unit/roles/test_argument_specs.py checks its defaults and specs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "node_bootstrap"


def load(path: str):
    return yaml.safe_load((ROLE / path).read_text(encoding="utf-8"))


def test_internal_variables_carry_the_role_prefix() -> None:
    assert all(name.startswith("_node_bootstrap_") for name in load("vars/main.yml"))


@pytest.mark.parametrize("os_vars", ["Debian.yml", "Ubuntu.yml", "RedHat.yml"])
def test_every_os_names_every_package_group(os_vars: str) -> None:
    data = load(f"vars/{os_vars}")
    assert set(data["_node_bootstrap_packages"]) == {"longhorn", "nvidia_toolkit", "nvidia_driver", "amd_firmware", "intel_firmware"}
    assert data["_node_bootstrap_grub_tool"] in ("update_grub", "grubby")
    assert data["_node_bootstrap_nvidia_repo_default"].startswith("https://nvidia.github.io/libnvidia-container/stable/")
