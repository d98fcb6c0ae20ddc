# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Sequence

import pytest
from sysfs_fixtures import GIB, NVIDIA_SMI_OUTPUT, amd_r9700_node, intel_arc_node, no_gpu_node, nvidia_node, strix_halo_node

from ansible_collections.homelab.ai.plugins.module_utils._gpu_facts import gather_gpu_facts, run_command

PCI_IDS = """\
# a cut of pci.ids
1002  Advanced Micro Devices, Inc. [AMD/ATI]
\t1586  Strix Halo [Radeon Graphics / 8050S / 8060S]
\t7551  Navi 48 [Radeon AI PRO R9700]
8086  Intel Corporation
\t4680  AlderLake-S GT1 [UHD Graphics 770]
\t56a6  DG2 [Arc A310]
\t\t8086 1020  a subsystem line, ignored
"""


@pytest.fixture
def pci_ids(tmp_path: Path) -> List[str]:
    path = tmp_path / "pci.ids"
    path.write_text(PCI_IDS)
    return [str(path)]


def gather(root: Path, pci_ids: Sequence[str], **kwargs):
    return gather_gpu_facts(str(root / "sys"), str(root / "dev"), pci_ids_paths=pci_ids, **kwargs)


def test_nvidia_card_memory_from_nvidia_smi(tmp_path: Path, pci_ids: List[str]) -> None:
    nvidia_node(tmp_path)
    calls = []

    def runner(argv):
        calls.append(list(argv))
        return 0, NVIDIA_SMI_OUTPUT, ""

    facts = gather(tmp_path, pci_ids, nvidia_smi="/usr/bin/nvidia-smi", runner=runner)
    assert calls == [["/usr/bin/nvidia-smi", "--query-gpu=pci.bus_id,name,memory.total,driver_version,uuid", "--format=csv,noheader,nounits"]]
    assert facts["count"] == 1  # the BMC's VGA, the card's HDMI audio and the Intel NIC are no GPUs
    assert facts["gpus"] == [
        {
            "vendor": "nvidia",
            "model": "NVIDIA RTX 4000 SFF Ada Generation",
            "memory": 20475 * 2**20,
            "count": 1,
            "apu": False,
            "driver": "nvidia",
            "pci_addresses": ["0000:01:00.0"],
            "render_nodes": ["/dev/dri/renderD128"],
        }
    ]
    device = facts["devices"][0]
    assert device["driver_version"] == "570.133.07"
    assert device["uuid"].startswith("GPU-")
    assert device["source"] == "nvidia-smi"
    assert facts["render_nodes"] == ["/dev/dri/renderD128"]
    assert facts["render_gids"] == [os.stat(tmp_path / "dev" / "dri" / "renderD128").st_gid]
    assert facts["kfd"] is None
    assert facts["warnings"] == []


def test_nvidia_without_nvidia_smi_warns(tmp_path: Path, pci_ids: List[str]) -> None:
    nvidia_node(tmp_path)
    facts = gather(tmp_path, pci_ids, nvidia_smi="", runner=lambda argv: pytest.fail("must not run"))
    assert facts["gpus"][0]["memory"] is None
    assert facts["gpus"][0]["model"] == "nvidia 0x27b0"  # not in the pci.ids cut
    assert any("no nvidia-smi" in w for w in facts["warnings"])
    assert any("declare it in homelab_ai_gpus" in w for w in facts["warnings"])


def test_nvidia_smi_failing_is_a_warning(tmp_path: Path, pci_ids: List[str]) -> None:
    nvidia_node(tmp_path)
    facts = gather(tmp_path, pci_ids, nvidia_smi="nvidia-smi", runner=lambda argv: (9, "", "NVIDIA-SMI has failed because it couldn't communicate"))
    assert facts["gpus"][0]["memory"] is None
    assert any("nvidia-smi failed (rc 9)" in w for w in facts["warnings"])


def test_amd_discrete_card(tmp_path: Path, pci_ids: List[str]) -> None:
    amd_r9700_node(tmp_path)
    facts = gather(tmp_path, pci_ids)
    [gpu] = facts["gpus"]
    assert gpu["vendor"] == "amd"
    assert gpu["model"] == "AMD Radeon AI PRO R9700"  # the VBIOS product name wins over pci.ids
    assert gpu["memory"] == 32 * GIB
    assert (gpu["vram"], gpu["gtt"]) == (32 * GIB, 31 * GIB)
    assert gpu["apu"] is False
    assert gpu["driver"] == "amdgpu"
    kfd_gid = os.stat(tmp_path / "dev" / "kfd").st_gid
    assert facts["kfd"]["gid"] == kfd_gid
    assert facts["device_gids"] == sorted({kfd_gid, *facts["render_gids"]})


def test_strix_halo_apu_uses_gtt(tmp_path: Path, pci_ids: List[str]) -> None:
    strix_halo_node(tmp_path)
    [gpu] = gather(tmp_path, pci_ids)["gpus"]
    assert gpu["apu"] is True
    assert gpu["model"] == "Strix Halo [Radeon Graphics / 8050S / 8060S]"
    assert gpu["memory"] == 96 * GIB  # the GTT, not the 512 MiB carve-out
    assert gpu["vram"] == 512 * 2**20


def test_strix_halo_with_large_bios_carve_out(tmp_path: Path, pci_ids: List[str]) -> None:
    strix_halo_node(tmp_path, vram=96 * GIB, gtt=16 * GIB)
    [gpu] = gather(tmp_path, pci_ids)["gpus"]
    assert gpu["apu"] is True  # known by its device id, though the carve-out looks like a discrete card's VRAM
    assert gpu["memory"] == 96 * GIB


def test_unknown_amd_apu_by_carve_out(tmp_path: Path, pci_ids: List[str]) -> None:
    from sysfs_fixtures import pci_device

    pci_device(
        tmp_path,
        "0000:04:00.0",
        vendor="0x1002",
        device="0x9999",
        driver="amdgpu",
        files={"mem_info_vram_total": str(2**29), "mem_info_gtt_total": str(8 * GIB)},
    )
    [gpu] = gather(tmp_path, pci_ids)["gpus"]
    assert (gpu["apu"], gpu["memory"]) == (True, 8 * GIB)
    assert gpu["render_nodes"] == []


def test_intel_arc_beside_integrated_gpu(tmp_path: Path, pci_ids: List[str]) -> None:
    intel_arc_node(tmp_path)
    facts = gather(tmp_path, pci_ids)
    igpu, arc = facts["gpus"]
    assert (igpu["model"], igpu["apu"], igpu["memory"]) == ("AlderLake-S GT1 [UHD Graphics 770]", True, None)
    assert (arc["model"], arc["apu"], arc["memory"]) == ("DG2 [Arc A310]", False, 4 * GIB)
    assert facts["render_nodes"] == ["/dev/dri/renderD128", "/dev/dri/renderD129"]
    assert len(facts["warnings"]) == 1 and "0000:00:02.0" in facts["warnings"][0]


def test_intel_xe_tiles(tmp_path: Path, pci_ids: List[str]) -> None:
    from sysfs_fixtures import pci_device

    pci_device(
        tmp_path,
        "0000:03:00.0",
        vendor="0x8086",
        device="0xe20b",
        driver="xe",
        card="card0",
        render="renderD128",
        files={"tile0/vram0/physical_vram_size_bytes": str(12 * GIB)},
    )
    [gpu] = gather(tmp_path, pci_ids)["gpus"]
    assert (gpu["driver"], gpu["memory"], gpu["model"]) == ("xe", 12 * GIB, "intel 0xe20b")


def test_node_without_gpu(tmp_path: Path, pci_ids: List[str]) -> None:
    no_gpu_node(tmp_path)
    facts = gather(tmp_path, pci_ids)
    assert facts["gpus"] == [] and facts["devices"] == [] and facts["count"] == 0
    assert facts["render_nodes"] == [] and facts["device_gids"] == [] and facts["warnings"] == []


def test_no_sysfs_at_all(tmp_path: Path) -> None:
    assert gather_gpu_facts(str(tmp_path / "missing"), str(tmp_path / "dev"))["gpus"] == []


def test_two_identical_cards_are_one_entry(tmp_path: Path, pci_ids: List[str]) -> None:
    from sysfs_fixtures import pci_device

    for index, address in enumerate(("0000:03:00.0", "0000:04:00.0")):
        pci_device(
            tmp_path,
            address,
            vendor="0x1002",
            device="0x7551",
            driver="amdgpu",
            card=f"card{index}",
            render=f"renderD{128 + index}",
            files={"mem_info_vram_total": str(32 * GIB), "mem_info_gtt_total": str(31 * GIB)},
        )
    [gpu] = gather(tmp_path, pci_ids)["gpus"]
    assert gpu["count"] == 2
    assert gpu["pci_addresses"] == ["0000:03:00.0", "0000:04:00.0"]
    assert gpu["model"] == "Navi 48 [Radeon AI PRO R9700]"


def test_run_command() -> None:
    assert run_command(["/nonexistent/nvidia-smi"])[0] == 127
    assert run_command(["true"])[0] == 0


def test_runs_on_the_nodes_with_the_standard_library_only() -> None:
    """The module is shipped to the nodes: no import beyond the standard library (Python 3.9+ on Debian 11/12)."""
    import ast
    import sys

    source = Path(__file__).resolve().parents[4] / "plugins" / "module_utils" / "_gpu_facts.py"
    tree = ast.parse(source.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names)
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]  # no sibling module_utils either
