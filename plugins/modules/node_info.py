#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_info
short_description: Read what the node bootstrap needs to know about a node
version_added: 0.1.0
description:
  - Reads, without changing anything, the node's memory size, the running kernel's release and command line, which
    kernel modules are loaded, built in or installed, the loaded NVIDIA driver, whether systemd runs (is PID 1) and
    whether the package manager flagged a reboot, the boot loader's files and tools, and which systemd units exist.
  - The GPUs themselves are found by M(homelab.ai.gpu_facts).
  - Every place it reads is an option, so tests point it at fixture trees.
  - Standard library Python 3.9 or later on the node.
author: homelab.ai developers
options:
  proc_path:
    description: Where procfs is (C(meminfo), C(cmdline), C(modules), C(sys/kernel/osrelease), C(driver/nvidia/version)).
    type: path
    default: /proc
  sysfs_path:
    description: Where sysfs is (C(module/NAME)).
    type: path
    default: /sys
  modules_path:
    description: The kernel module tree (C(RELEASE/modules.dep), C(RELEASE/modules.builtin)).
    type: path
    default: /lib/modules
  run_path:
    description: The runtime directory (C(systemd/system), C(reboot-required)).
    type: path
    default: /run
  kernel_modules:
    description: Kernel modules to report on (C(nvidia) is always reported).
    type: list
    elements: str
    default: []
  units:
    description: systemd units to look for (C(.service) is added to names without a suffix).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - homelab.ai.attributes
seealso:
  - module: homelab.ai.kernel_cmdline
  - module: homelab.ai.gpu_facts
"""

EXAMPLES = r"""
- name: Read the node
  homelab.ai.node_info:
    kernel_modules: [iscsi_tcp, dm_crypt]
    units: [iscsid, multipathd, k3s, k3s-agent, containerd]
  register: node

- name: Show the memory
  ansible.builtin.debug:
    msg: "{{ node.info.memory_total | homelab.ai.to_quantity }}"
"""

RETURN = r"""
info:
  description: What was read.
  returned: always
  type: dict
  contains:
    kernel_release:
      description: The running kernel's release, or null.
      type: str
    memory_total:
      description: MemTotal in bytes, or null.
      type: int
    cmdline:
      description: The running kernel's command line, or null.
      type: str
    kernel_modules:
      description: For each module asked for, C(loaded), C(builtin) and C(installed) (for the running kernel).
      type: dict
    nvidia_driver:
      description: Version of the loaded NVIDIA kernel module, or null.
      type: str
    reboot_required:
      description: Whether C(/run/reboot-required) exists.
      type: bool
    reboot_required_pkgs:
      description: The packages listed in C(/run/reboot-required.pkgs).
      type: list
      elements: str
    systemd_running:
      description: Whether systemd is the init system (C(/run/systemd/system) exists).
      type: bool
    units:
      description: Whether a unit file exists, by unit name.
      type: dict
    boot_loader:
      description: C(grub_defaults) and C(kernel_cmdline_file) (whether C(/etc/default/grub) and C(/etc/kernel/cmdline) exist),
        and the paths of C(update_grub), C(grub2_mkconfig) and C(grubby) or null.
      type: dict
  sample:
    kernel_release: 6.12.38+deb12-amd64
    memory_total: 133143986176
    cmdline: BOOT_IMAGE=/vmlinuz root=/dev/nvme0n1p2 ro quiet
    kernel_modules: {iscsi_tcp: {loaded: true, builtin: false, installed: true}}
    nvidia_driver: null
    reboot_required: false
    reboot_required_pkgs: []
    systemd_running: true
    units: {iscsid: true, k3s: false}
    boot_loader: {grub_defaults: true, kernel_cmdline_file: false, update_grub: /usr/sbin/update-grub, grub2_mkconfig: null, grubby: null}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.ai.plugins.module_utils._node_info import gather_node_info


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "proc_path": {"type": "path", "default": "/proc"},
            "sysfs_path": {"type": "path", "default": "/sys"},
            "modules_path": {"type": "path", "default": "/lib/modules"},
            "run_path": {"type": "path", "default": "/run"},
            "kernel_modules": {"type": "list", "elements": "str", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    params = module.params
    info = gather_node_info(
        proc=params["proc_path"],
        sysfs=params["sysfs_path"],
        modules=params["modules_path"],
        run=params["run_path"],
        kernel_modules_wanted=params["kernel_modules"],
        unit_names=params["units"],
        which=lambda name: module.get_bin_path(name, opt_dirs=["/usr/sbin", "/sbin"]),
    )
    module.exit_json(changed=False, info=info)


if __name__ == "__main__":
    main()
