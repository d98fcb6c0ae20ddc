# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Fixture sysfs and /dev trees of the nodes of DESIGN.md, as the kernel lays them out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

GIB = 2**30

# nvidia-smi --query-gpu=pci.bus_id,name,memory.total,driver_version,uuid --format=csv,noheader,nounits
NVIDIA_SMI_OUTPUT = "00000000:01:00.0, NVIDIA RTX 4000 SFF Ada Generation, 20475, 570.133.07, GPU-5f2b7c1e-0000-1111-2222-333344445555\n"


def pci_device(
    root: Path,
    address: str,
    *,
    vendor: str,
    device: str,
    pci_class: str = "0x030000",
    driver: Optional[str] = None,
    card: Optional[str] = None,
    render: Optional[str] = None,
    files: Optional[Dict[str, str]] = None,
) -> Path:
    """/sys/bus/pci/devices/<address> with the files the kernel writes, and its /dev/dri nodes under root/dev."""
    path = root / "sys" / "bus" / "pci" / "devices" / address
    path.mkdir(parents=True)
    (path / "vendor").write_text(vendor + "\n")
    (path / "device").write_text(device + "\n")
    (path / "class").write_text(pci_class + "\n")
    (path / "numa_node").write_text("-1\n")
    if driver:
        drivers = root / "sys" / "bus" / "pci" / "drivers" / driver
        drivers.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(drivers, path), path / "driver")
    dri = root / "dev" / "dri"
    for node in (card, render):
        if node:
            (path / "drm" / node).mkdir(parents=True)
            dri.mkdir(parents=True, exist_ok=True)
            (dri / node).write_text("")
            if node.startswith("card"):
                # /sys/class/drm/cardN -> the device's drm directory
                drm_class = root / "sys" / "class" / "drm"
                drm_class.mkdir(parents=True, exist_ok=True)
                os.symlink(path / "drm" / node, drm_class / node)
    for name, text in (files or {}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n")
    return path


def nvidia_node(root: Path) -> None:
    """RTX 4000 SFF with the proprietary driver, plus the host's ASPEED BMC (not a GPU vendor) and a NIC."""
    pci_device(root, "0000:01:00.0", vendor="0x10de", device="0x27b0", driver="nvidia", card="card1", render="renderD128")
    pci_device(root, "0000:01:00.1", vendor="0x10de", device="0x22bc", pci_class="0x040300", driver="snd_hda_intel")  # its HDMI audio
    pci_device(root, "0000:05:00.0", vendor="0x1a03", device="0x2000", driver="ast", card="card0")  # BMC VGA
    pci_device(root, "0000:06:00.0", vendor="0x8086", device="0x1533", pci_class="0x020000", driver="igb")  # Intel NIC


def amd_r9700_node(root: Path) -> None:
    pci_device(
        root,
        "0000:03:00.0",
        vendor="0x1002",
        device="0x7551",
        driver="amdgpu",
        card="card0",
        render="renderD128",
        files={"mem_info_vram_total": str(32 * GIB), "mem_info_gtt_total": str(31 * GIB), "product_name": "AMD Radeon AI PRO R9700"},
    )
    (root / "dev" / "kfd").write_text("")


def strix_halo_node(root: Path, vram: int = 512 * 2**20, gtt: int = 96 * GIB) -> None:
    pci_device(
        root,
        "0000:c5:00.0",
        vendor="0x1002",
        device="0x1586",
        driver="amdgpu",
        card="card0",
        render="renderD128",
        files={"mem_info_vram_total": str(vram), "mem_info_gtt_total": str(gtt)},
    )
    (root / "dev" / "kfd").write_text("")


def intel_arc_node(root: Path) -> None:
    """Arc A310 on i915 with the lmem file of Intel's backport, beside the CPU's own integrated GPU."""
    pci_device(root, "0000:00:02.0", vendor="0x8086", device="0x4680", driver="i915", card="card0", render="renderD128")  # Alder Lake UHD 770
    pci_device(root, "0000:03:00.0", vendor="0x8086", device="0x56a6", driver="i915", card="card1", render="renderD129")
    (root / "sys" / "class" / "drm" / "card1" / "lmem_total_bytes").write_text(str(4 * GIB) + "\n")


def no_gpu_node(root: Path) -> None:
    pci_device(root, "0000:00:1f.6", vendor="0x8086", device="0x15bc", pci_class="0x020000", driver="e1000e")
