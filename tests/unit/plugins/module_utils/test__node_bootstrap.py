# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

from typing import Any, Dict

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._node_bootstrap import check_node, gtt_kernel_args, gtt_size, joining_k3s, node_plan, normalise_gpus

GIB = 2**30
PACKAGES = {
    "longhorn": ["open-iscsi", "nfs-common", "cryptsetup-bin", "kmod"],
    "nvidia_toolkit": ["nvidia-container-toolkit"],
    "nvidia_driver": ["nvidia-driver", "firmware-misc-nonfree"],
    "amd_firmware": ["firmware-amd-graphics"],
    "intel_firmware": ["firmware-misc-nonfree"],
}
K3S = {"join": False, "token_set": False, "version": "v1.33.5+k3s1", "server_group": "server", "agent_group": "agent", "api_endpoint": ""}


def problems_of(result) -> str:
    return "\n".join(str(p) for p in result[1])


# --- inventory ----------------------------------------------------------------------------------


def check(host="gpu-01", *, connection="ssh", user="admin", groups=None, gpus=None, **k3s):
    return check_node(
        host,
        connection=connection,
        remote_user=user,
        local_user="root",
        groups=groups or {},
        gpus=gpus or [],
        k3s={**K3S, **k3s},
        addresses={"cp-01": "10.10.1.10"},
    )


def test_a_good_entry_has_no_problems() -> None:
    place, problems = check(groups={"server": ["cp-01"], "agent": ["gpu-01"]}, join=True, token_set=True)
    assert problems == []
    assert place == {"role": "agent", "first_server": "cp-01", "server_url": "https://10.10.1.10:6443"}


def test_missing_ssh_user_names_the_host_and_the_fix() -> None:
    text = problems_of(check(user=None))
    assert "gpu-01: ansible_user: is not set, so SSH would log in as the controller's user 'root'" in text
    assert "Fix: set ansible_user" in text and "host_vars/gpu-01.yml" in text


@pytest.mark.parametrize("connection", ["local", "ansible.builtin.local", "community.general.chroot"])
def test_connections_without_a_login_need_no_user(connection) -> None:
    assert check(connection=connection, user=None)[1] == []


def test_a_host_in_both_k3s_groups_is_refused_even_without_join() -> None:
    place, problems = check(groups={"server": ["gpu-01"], "agent": ["gpu-01"]})
    text = "\n".join(map(str, problems))
    assert "gpu-01: groups server and agent: the host is in both" in text
    assert "remove gpu-01 from one of the two groups" in text
    assert place["role"] is None


def test_joining_needs_a_group_a_token_a_release_and_a_server() -> None:
    text = problems_of(check(join=True, version="1.33", groups={"agent": ["gpu-01"]}))
    assert "node_bootstrap_k3s_token: is empty" in text
    assert "node_bootstrap_k3s_version: '1.33' is not a k3s release" in text
    assert "node_bootstrap_k3s_api_endpoint: is empty and the server group has no host" in text
    text = problems_of(check(join=True, token_set=True))
    assert "node_bootstrap_k3s_join: is true, but the host is in neither the server nor the agent group" in text


def test_custom_groups_and_endpoint() -> None:
    place, problems = check(
        groups={"masters": ["cp-01", "cp-02"], "workers": ["gpu-01"]},
        join=True,
        token_set=True,
        server_group="masters",
        agent_group="workers",
        api_endpoint="k3s.lan",
    )
    assert problems == []
    assert place == {"role": "agent", "first_server": "cp-01", "server_url": "https://k3s.lan:6443"}


def test_a_run_installs_k3s_where_a_node_is_bootstrapped_and_joins() -> None:
    hosts = {
        "server-01": {"node_bootstrap_enabled": True, "node_bootstrap_k3s_join": True},
        "agent-01": {"node_bootstrap_enabled": "true", "node_bootstrap_k3s_join": "yes"},  # as -e hands them over
        "not-bootstrapped": {"node_bootstrap_k3s_join": True},
        "no-join": {"node_bootstrap_enabled": True, "node_bootstrap_k3s_join": "false"},
        "defaults": {},
    }
    assert joining_k3s(hosts) == ["server-01", "agent-01"]


def test_bad_gpus_are_reported() -> None:
    text = problems_of(check(gpus=[{"vendor": "nvidai"}, "x", {"vendor": "amd", "memory": "lots", "count": 0, "apu": "yes"}]))
    assert "node_bootstrap_gpus[0].vendor: 'nvidai' is not a known GPU vendor (did you mean nvidia?)" in text
    assert "node_bootstrap_gpus[1]: 'x' is not a mapping" in text
    assert "node_bootstrap_gpus[2].memory" in text and "node_bootstrap_gpus[2].count" in text and "node_bootstrap_gpus[2].apu" in text


def test_detected_gpus_with_extra_keys_and_no_memory_are_accepted() -> None:
    gpus, problems = normalise_gpus("h", [{"vendor": "intel", "model": "Arc", "memory": None, "driver": "i915", "pci_addresses": ["0000:03:00.0"]}])
    assert problems == []
    assert gpus == [{"vendor": "intel", "model": "Arc", "memory": None, "count": 1, "apu": False, "detected": True}]
    assert normalise_gpus("h", None) == ([], [])
    assert "must be a list" in str(normalise_gpus("h", {"vendor": "amd"})[1][0])


# --- GTT --------------------------------------------------------------------------------------------


def test_gtt_from_the_declared_memory() -> None:
    size, source = gtt_size(130862204 * 1024, declared=96 * GIB, override=None, reserve=8 * GIB)
    assert size == 96 * GIB and source == "the APU's declared memory"
    assert gtt_kernel_args(size) == {"amdgpu.gttsize": "98304", "ttm.pages_limit": "25165824"}


def test_gtt_from_the_memory_less_the_reserve_rounded_to_mib() -> None:
    memory = 130862204 * 1024  # 124.8 GiB
    size, source = gtt_size(memory, declared=None, override=None, reserve=8 * GIB)
    assert size == ((memory - 8 * GIB) // 2**20) * 2**20
    assert "reserve" in source
    assert int(gtt_kernel_args(size)["ttm.pages_limit"]) * 4096 == size


def test_gtt_override_wins_and_too_much_is_refused() -> None:
    assert gtt_size(128 * GIB, declared=96 * GIB, override=64 * GIB, reserve=8 * GIB)[0] == 64 * GIB
    with pytest.raises(ValueError, match="leaves less than node_bootstrap_amd_gtt_reserve"):
        gtt_size(64 * GIB, declared=96 * GIB, override=None, reserve=8 * GIB)
    with pytest.raises(ValueError):
        gtt_size(4 * GIB, declared=None, override=None, reserve=8 * GIB)


# --- the plan ---------------------------------------------------------------------------------------


def info(**overrides: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {
        "kernel_release": "6.12.38+deb12-amd64",
        "memory_total": 130862204 * 1024,
        "cmdline": "BOOT_IMAGE=/vmlinuz ro quiet",
        "kernel_modules": {"iscsi_tcp": {"loaded": False}, "dm_crypt": {"loaded": True}, "nvidia": {"loaded": False, "installed": False}},
        "nvidia_driver": None,
        "reboot_required": False,
        "reboot_required_pkgs": [],
        "systemd_running": True,
        "units": {},
        "boot_loader": {"grub_defaults": True, "update_grub": "/usr/sbin/update-grub", "grubby": None},
    }
    base.update(overrides)
    return base


def plan(gpus, node=None, **settings):
    return node_plan(
        gpus,
        node or info(),
        {"host": "n1", "packages": PACKAGES, "kernel_modules": ["iscsi_tcp", "dm_crypt"], "grub_tool": "update_grub", **settings},
    )


def found(*vendors: str) -> Dict[str, Any]:
    """What homelab.ai.gpu_facts returns, as far as the plan reads it."""
    return {"vendors": list(vendors), "gpus": []}


def test_a_node_without_gpus_gets_longhorns_prerequisites_only() -> None:
    result = plan([])
    assert result["packages"] == PACKAGES["longhorn"]
    assert result["nvidia_packages"] == [] and result["kernel_args"] == {} and result["gpu_groups"] == []
    assert result["kernel_modules"] == ["iscsi_tcp", "dm_crypt"]
    assert result["kernel_modules_to_load"] == ["iscsi_tcp"]
    assert result["problems"] == [] and result["reboot_reasons"] == []
    assert plan([], longhorn=False)["packages"] == []


def test_strix_halo_gets_firmware_groups_and_gtt_arguments() -> None:
    result = plan([{"vendor": "amd", "memory": "96Gi", "apu": True}], detected=found("amd"), kernel_args={"amd_iommu": "off"})
    assert result["problems"] == [] and result["warnings"] == []
    assert result["gpus"][0]["detected"] is False
    assert result["packages"] == [*PACKAGES["longhorn"], "firmware-amd-graphics"]
    assert result["gpu_groups"] == ["render", "video"]
    assert result["kernel_args"] == {"amdgpu.gttsize": "98304", "ttm.pages_limit": "25165824", "amd_iommu": "off"}
    assert result["bootloader"] == "grub"
    assert result["kernel_args_missing"] == ["amdgpu.gttsize=98304", "ttm.pages_limit=25165824", "amd_iommu=off"]
    assert result["reboot_reasons"] == ["the running kernel lacks amdgpu.gttsize=98304 ttm.pages_limit=25165824 amd_iommu=off"]
    assert result["gtt"]["size"] == "96.0 GiB"
    assert result["node_labels"] == ["homelab.ai/gpu.amd=true"]


def test_no_reboot_once_the_kernel_runs_with_the_arguments() -> None:
    running = "ro quiet amdgpu.gttsize=98304 ttm.pages_limit=25165824"
    assert plan([{"vendor": "amd", "memory": "96Gi", "apu": True}], info(cmdline=running))["reboot_reasons"] == []


def test_a_gtt_larger_than_the_memory_stops_the_run() -> None:
    [problem] = plan([{"vendor": "amd", "memory": "120Gi", "apu": True}])["problems"]
    assert problem.startswith("n1: AMD APU GTT size: a GTT of 120.0 GiB")
    assert "Fix: lower the APU's memory" in problem


def test_an_apu_without_grub() -> None:
    node = info(boot_loader={"grub_defaults": False})
    [problem] = plan([{"vendor": "amd", "memory": "96Gi", "apu": True}], node)["problems"]
    assert "node_bootstrap_bootloader: is auto, but the node has no /etc/default/grub" in problem
    result = plan([{"vendor": "amd", "memory": "96Gi", "apu": True}], node, bootloader="none")
    assert result["problems"] == []
    assert "add amdgpu.gttsize=98304 ttm.pages_limit=25165824 to the kernel command line yourself" in result["warnings"][-1]


def test_grub_without_its_tool_stops_unless_the_node_is_a_container() -> None:
    node = info(boot_loader={"grub_defaults": True, "update_grub": None})
    [problem] = plan([{"vendor": "amd", "memory": "96Gi", "apu": True}], node)["problems"]
    assert "update-grub is not installed" in problem
    assert plan([{"vendor": "amd", "memory": "96Gi", "apu": True}], node, container=True)["problems"] == []


def test_a_discrete_amd_card_needs_no_kernel_arguments() -> None:
    result = plan([{"vendor": "amd", "memory": "32Gi"}, {"vendor": "intel", "memory": "4Gi"}])
    assert result["kernel_args"] == {} and result["bootloader"] == "grub"
    assert result["packages"] == [*PACKAGES["longhorn"], "firmware-amd-graphics", "firmware-misc-nonfree"]
    assert result["gpu_groups"] == ["render", "video"]
    assert result["node_labels"] == ["homelab.ai/gpu.amd=true", "homelab.ai/gpu.intel=true"]


def test_nvidia_without_a_driver_stops_unless_installing_is_asked_for() -> None:
    nvidia = [{"vendor": "nvidia", "memory": "24Gi"}]
    [problem] = plan(nvidia)["problems"]
    assert problem.startswith("n1: NVIDIA driver: is neither loaded (/proc/driver/nvidia/version) nor installed for the running kernel 6.12.38+deb12-amd64")
    assert "node_bootstrap_nvidia_driver_install: true" in problem
    result = plan(nvidia, nvidia_driver_install=True)
    assert result["problems"] == []
    assert result["packages"] == [*PACKAGES["longhorn"], "nvidia-driver", "firmware-misc-nonfree"]
    assert result["nvidia_packages"] == ["nvidia-container-toolkit"]
    assert result["nvidia"]["install"] is True
    assert result["reboot_reasons"] == ["the NVIDIA driver is installed by this run and loads at the next boot"]
    assert plan(nvidia, nvidia_driver_install=True, nvidia_driver_packages=["nvidia-open"])["packages"][-1] == "nvidia-open"
    assert "is empty and this distribution has no default" in plan(nvidia, nvidia_driver_install=True, packages={})["problems"][0]


def test_nvidia_with_a_driver() -> None:
    nvidia = [{"vendor": "nvidia", "memory": "24Gi"}]
    loaded = plan(nvidia, info(nvidia_driver="570.133.07"), detected=found("nvidia"))
    assert loaded["problems"] == [] and loaded["reboot_reasons"] == [] and loaded["warnings"] == []
    assert loaded["nvidia"] == {"driver": "570.133.07", "installed": False, "install": False}
    installed = plan(nvidia, info(kernel_modules={"nvidia": {"loaded": False, "installed": True}}))
    assert installed["problems"] == []
    assert installed["reboot_reasons"] == ["the NVIDIA driver is installed for 6.12.38+deb12-amd64 but not loaded (modprobe nvidia, or reboot)"]


def test_declared_gpus_missing_from_the_bus_are_warned_about() -> None:
    [warning] = plan([{"vendor": "intel"}], detected=found("amd"))["warnings"]
    assert "node_bootstrap_gpus has an intel GPU, but gpu_facts found no intel display device under /sys/bus/pci/devices (found: amd)" in warning
    assert plan([{"vendor": "intel"}])["warnings"] == []  # nothing detected: nothing to compare


def test_a_detected_apu_gets_its_gtt_from_the_memory_not_from_the_running_gtt() -> None:
    detected = [{"vendor": "amd", "model": "amd 0x1586", "memory": 64 * GIB, "count": 1, "apu": True, "driver": "amdgpu", "pci_addresses": ["0000:c5:00.0"]}]
    result = plan(detected)
    memory = 130862204 * 1024
    assert result["gtt"]["bytes"] == ((memory - 8 * GIB) // 2**20) * 2**20
    assert "reserve" in result["gtt"]["source"]


def test_the_package_managers_flag_and_node_labels() -> None:
    result = plan([], info(reboot_required=True, reboot_required_pkgs=["linux-image-amd64"]), node_labels={"zone": "rack-1"})
    assert result["reboot_reasons"] == ["the package manager flagged a reboot (linux-image-amd64)"]
    assert result["node_labels"] == ["zone=rack-1"]


def test_bad_settings_are_problems_not_crashes() -> None:
    result = plan([{"vendor": "amd", "apu": True}], amd_gtt_reserve="lots", kernel_args={"bad name": 1})
    text = "\n".join(result["problems"])
    assert "node_bootstrap_amd_gtt_reserve" in text and "node_bootstrap_kernel_args" in text
    assert "has no MemTotal line" in "\n".join(plan([{"vendor": "amd", "apu": True}], info(memory_total=None))["problems"])
