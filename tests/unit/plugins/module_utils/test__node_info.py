# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

from pathlib import Path

from ansible_collections.homelab.ai.plugins.module_utils._node_info import gather_node_info, module_names


def write(root: Path, files: dict) -> None:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def strix(root: Path) -> None:
    write(
        root,
        {
            "proc/meminfo": "MemTotal:       130862204 kB\nMemFree:  1 kB\n",
            "proc/cmdline": "BOOT_IMAGE=/vmlinuz ro quiet\n",
            "proc/sys/kernel/osrelease": "6.12.38+deb12-amd64\n",
            "proc/modules": "dm_crypt 65536 0 - Live 0x0\n",
            "sys/module/iscsi_tcp/initstate": "live\n",
            "lib/modules/6.12.38+deb12-amd64/modules.dep": "kernel/drivers/scsi/iscsi_tcp.ko.xz: x.ko\nkernel/drivers/md/dm-crypt.ko.zst:\n",
            "lib/modules/6.12.38+deb12-amd64/modules.builtin": "kernel/drivers/block/loop.ko\n",
            "etc/default/grub": 'GRUB_CMDLINE_LINUX=""\n',
            "lib/systemd/system/iscsid.service": "[Unit]\n",
            "etc/systemd/system/k3s.service": "[Unit]\n",
        },
    )


def gather(root: Path, **kwargs):
    return gather_node_info(
        proc=str(root / "proc"),
        sysfs=str(root / "sys"),
        modules=str(root / "lib/modules"),
        run=str(root / "run"),
        root=str(root),
        **kwargs,
    )


def test_reads_a_strix_halo_node(tmp_path: Path) -> None:
    strix(tmp_path)
    info = gather(tmp_path, kernel_modules_wanted=["iscsi_tcp", "dm_crypt", "loop"], unit_names=["iscsid", "k3s", "k3s-agent", "multipathd.socket"])
    assert info["kernel_release"] == "6.12.38+deb12-amd64"
    assert info["memory_total"] == 130862204 * 1024
    assert info["cmdline"] == "BOOT_IMAGE=/vmlinuz ro quiet"
    assert info["kernel_modules"] == {
        "iscsi_tcp": {"loaded": True, "builtin": False, "installed": True},  # /sys/module
        "dm_crypt": {"loaded": True, "builtin": False, "installed": True},  # /proc/modules, dm-crypt.ko.zst
        "loop": {"loaded": True, "builtin": True, "installed": True},
        "nvidia": {"loaded": False, "builtin": False, "installed": False},
    }
    assert info["nvidia_driver"] is None
    assert info["units"] == {"iscsid": True, "k3s": True, "k3s-agent": False, "multipathd.socket": False}
    assert info["boot_loader"]["grub_defaults"] is True
    assert info["boot_loader"]["kernel_cmdline_file"] is False
    assert info["systemd_running"] is False
    assert info["reboot_required"] is False


def test_reads_the_nvidia_driver_and_the_reboot_flag(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.133.07  Release Build\n",
            "run/reboot-required": "",
            "run/reboot-required.pkgs": "linux-image-6.1.0-30-amd64\nlinux-image-6.1.0-30-amd64\nnvidia-kernel-dkms\n",
            "run/systemd/system/.keep": "",
        },
    )
    info = gather(tmp_path)
    assert info["nvidia_driver"] == "570.133.07"
    assert info["reboot_required"] is True
    assert info["reboot_required_pkgs"] == ["linux-image-6.1.0-30-amd64", "nvidia-kernel-dkms"]
    assert info["systemd_running"] is True


def test_an_empty_tree_gives_nothing_rather_than_failing(tmp_path: Path) -> None:
    info = gather(tmp_path, kernel_modules_wanted=["iscsi_tcp"])
    assert info["kernel_release"] is None and info["memory_total"] is None and info["cmdline"] is None
    assert info["kernel_modules"]["iscsi_tcp"] == {"loaded": False, "builtin": False, "installed": False}


def test_nvidia_proprietary_module_version(tmp_path: Path) -> None:
    write(tmp_path, {"proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"})
    assert gather(tmp_path)["nvidia_driver"] == "550.54.14"


def test_module_names() -> None:
    assert module_names("updates/dkms/nvidia.ko.xz:\nkernel/a/dm-crypt.ko: b.ko\n\n") == ["nvidia", "dm_crypt"]
