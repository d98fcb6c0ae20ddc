# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""A bad inventory stops playbooks/nodes.yml before anything changes, naming the input and the fix.

Each test runs the real ansible-playbook on a small inventory. The nodes are TEST-NET addresses (192.0.2.0/24)
that nothing answers on, so a run that tried to connect would show them UNREACHABLE; runs are in check mode
as a second guard. The unknown-OS test runs against this machine through a local connection, with a private
mount namespace in which /etc/os-release says Arch Linux.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest
import yaml

from tests.support.example import ROOT

BIN = Path(sys.executable).parent


def run_nodes(tmp_path: Path, collections: Path, inventory: Dict, *, prefix: Optional[list] = None) -> subprocess.CompletedProcess:
    """playbooks/nodes.yml of the installed collection, in check mode, on ``inventory``."""
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_HOST_KEY_CHECKING="false",
        ANSIBLE_TIMEOUT="3",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "remote-tmp"),
    )
    argv = [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), "--check", "homelab.ai.nodes"]
    return subprocess.run([*(prefix or []), *argv], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path, check=False)


def assert_stopped_before_any_change(result: subprocess.CompletedProcess, failing_task: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"TASK [homelab.ai.node_bootstrap : {failing_task}]" in output, output
    assert "UNREACHABLE" not in output, output
    assert "Install the packages" not in output, output
    recap = output[output.index("PLAY RECAP") :]
    assert re.findall(r"changed=(\d+)", recap) and set(re.findall(r"changed=(\d+)", recap)) == {"0"}, recap
    return output


def node(address: str, **variables) -> Dict:
    return {"ansible_host": address, "node_bootstrap_enabled": True, **variables}


def test_missing_ssh_user(tmp_path: Path, collections: Path) -> None:
    inventory = {
        "all": {
            "children": {
                "homelab_ai_nodes": {
                    "hosts": {
                        "gpu-nouser": node("192.0.2.10"),
                        "gpu-ok": node("192.0.2.11", ansible_user="admin"),
                    }
                }
            }
        }
    }
    output = assert_stopped_before_any_change(run_nodes(tmp_path, collections, inventory), "Check the node's inventory entry (without connecting)")
    assert "gpu-nouser: ansible_user: is not set, so SSH would log in as the controller's user" in output
    assert "Fix: set ansible_user to the node's admin user (host_vars/gpu-nouser.yml" in output
    assert "nothing was changed on any node" in output
    # the good node was not touched either: the play stopped for every node
    assert "Gather the facts the bootstrap needs" not in output


def test_host_in_both_k3s_groups(tmp_path: Path, collections: Path) -> None:
    nodes = {"gpu-both": node("192.0.2.12", ansible_user="admin"), "gpu-agent": node("192.0.2.13", ansible_user="admin")}
    inventory = {
        "all": {
            "vars": {"node_bootstrap_k3s_join": True, "node_bootstrap_k3s_token": "not-a-real-token"},
            "children": {
                "homelab_ai_nodes": {"hosts": nodes},
                # k3s-ansible's layout
                "k3s_cluster": {
                    "children": {
                        "server": {"hosts": {"gpu-both": {}}},
                        "agent": {"hosts": {"gpu-both": {}, "gpu-agent": {}}},
                    }
                },
            },
        }
    }
    output = assert_stopped_before_any_change(run_nodes(tmp_path, collections, inventory), "Check the node's inventory entry (without connecting)")
    assert "gpu-both: groups server and agent: the host is in both, but a k3s node is either a server or an agent" in output
    assert "Fix: remove gpu-both from one of the two groups" in output
    assert "gpu-agent: groups" not in output  # the agent's own entry is fine; it stops with the others all the same
    assert "Gather the facts the bootstrap needs" not in output


def test_k3s_join_without_a_token(tmp_path: Path, collections: Path) -> None:
    inventory = {
        "all": {
            "children": {
                "homelab_ai_nodes": {"hosts": {"gpu-agent": node("192.0.2.14", ansible_user="admin", node_bootstrap_k3s_join=True)}},
                "server": {"hosts": {"cp-01": {"ansible_host": "192.0.2.15"}}},
                "agent": {"hosts": {"gpu-agent": {}}},
            }
        }
    }
    output = assert_stopped_before_any_change(run_nodes(tmp_path, collections, inventory), "Check the node's inventory entry (without connecting)")
    assert "gpu-agent: node_bootstrap_k3s_token: is empty" in output
    assert "SOPS-encrypted" in output


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for a private mount namespace (unshare --mount)")
def test_unknown_os_family(tmp_path: Path, collections: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text('NAME="Arch Linux"\nPRETTY_NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n', encoding="utf-8")
    inventory = {
        "all": {
            "children": {
                "homelab_ai_nodes": {
                    "hosts": {
                        "arch-01": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "node_bootstrap_enabled": True,
                        }
                    }
                }
            }
        }
    }
    # this machine, seen through a mount namespace where /etc/os-release says Arch Linux; the real file is untouched
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'mount --bind "{os_release}" /etc/os-release && exec "$@"', "sh"]
    output = assert_stopped_before_any_change(run_nodes(tmp_path, collections, inventory, prefix=prefix), "Check that the node runs a supported OS")
    assert "arch-01: the OS family Archlinux (Archlinux" in output
    assert "is not supported, so nothing was changed on any node" in output
    assert "Fix: run Debian, Ubuntu or a RedHat-family distribution on the node, or set node_bootstrap_enabled: false for arch-01" in output


def test_disabled_nodes_are_skipped_without_connecting(tmp_path: Path, collections: Path) -> None:
    inventory = {"all": {"children": {"homelab_ai_nodes": {"hosts": {"gpu-off": {"ansible_host": "192.0.2.16", "node_bootstrap_enabled": False}}}}}}
    result = run_nodes(tmp_path, collections, inventory)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Skipping gpu-off: node_bootstrap_enabled is false, so nothing connects to it." in output
    assert "UNREACHABLE" not in output


def fixture_node(root: Path, files: Dict[str, str]) -> Dict[str, str]:
    """A node's /proc, /sys and /lib/modules as files under ``root``; the role's path variables pointing at them."""
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return {
        "node_bootstrap_proc_path": str(root / "proc"),
        "node_bootstrap_sysfs_path": str(root / "sys"),
        "node_bootstrap_modules_path": str(root / "lib/modules"),
        "node_bootstrap_dev_path": str(root / "dev"),
    }


NVIDIA_WITHOUT_DRIVER = {
    "proc/meminfo": "MemTotal: 65773036 kB\n",
    "proc/cmdline": "ro quiet\n",
    "proc/sys/kernel/osrelease": "6.1.0-test-amd64\n",
    "sys/bus/pci/devices/0000:01:00.0/vendor": "0x10de\n",
    "sys/bus/pci/devices/0000:01:00.0/device": "0x27b0\n",
    "sys/bus/pci/devices/0000:01:00.0/class": "0x030000\n",
    "lib/modules/6.1.0-test-amd64/modules.dep": "kernel/drivers/scsi/iscsi_tcp.ko.xz:\n",
}
SMALL_STRIX = {
    "proc/meminfo": "MemTotal: 65773036 kB\n",  # a 64 GB Strix Halo
    "proc/cmdline": "ro quiet\n",
    "proc/sys/kernel/osrelease": "6.12.38+deb12-amd64\n",
    "sys/bus/pci/devices/0000:c5:00.0/vendor": "0x1002\n",
    "sys/bus/pci/devices/0000:c5:00.0/device": "0x1586\n",
    "sys/bus/pci/devices/0000:c5:00.0/class": "0x030000\n",
}


@pytest.mark.parametrize(
    ("files", "gpus", "expected"),
    [
        (
            NVIDIA_WITHOUT_DRIVER,
            [{"vendor": "nvidia", "model": "RTX 4000 SFF", "memory": "20Gi"}],
            "node-01: NVIDIA driver: is neither loaded ({root}/proc/driver/nvidia/version) nor installed for the running kernel 6.1.0-test-amd64."
            " Fix: install the driver",
        ),
        (
            SMALL_STRIX,
            [{"vendor": "amd", "model": "Radeon 8060S", "memory": "96Gi", "apu": True}],
            "node-01: AMD APU GTT size: a GTT of 96.0 GiB (the APU's declared memory) leaves less than node_bootstrap_amd_gtt_reserve (8.0 GiB)",
        ),
    ],
    ids=["nvidia-without-driver", "gtt-larger-than-memory"],
)
def test_an_unfit_node_stops_before_any_change(tmp_path: Path, collections: Path, files, gpus, expected) -> None:
    """The node is read (this machine through a local connection, its kernel and devices from fixture files)."""
    paths = fixture_node(tmp_path / "node", files)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "node_bootstrap_enabled": True, "homelab_ai_gpus": gpus, **paths}
    inventory = {"all": {"children": {"homelab_ai_nodes": {"hosts": {"node-01": host}}}}}
    output = assert_stopped_before_any_change(run_nodes(tmp_path, collections, inventory), "Stop before any change when the node cannot be prepared")
    assert "node-01 cannot be prepared, so nothing was changed on any node:" in output
    assert expected.format(root=tmp_path / "node") in output
