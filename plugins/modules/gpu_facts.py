#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Find the NVIDIA, AMD and Intel GPUs of a node, their memory and render nodes
version_added: 0.1.0
description:
  - Lists the display devices (PCI class 03) of vendors NVIDIA (C(10de)), AMD (C(1002)) and Intel (C(8086)) from sysfs,
    with driver, PCI address and C(/dev/dri) card and render nodes.
  - "Memory: NVIDIA through C(nvidia-smi --query-gpu=... --format=csv) when it is installed; AMD from
    C(mem_info_vram_total), and for APUs (such as Strix Halo) the larger of that and C(mem_info_gtt_total), the system
    memory the GPU maps, which is what llama.cpp can allocate; Intel from C(lmem_total_bytes) (i915) or the tiles'
    C(physical_vram_size_bytes) (xe) where the driver has them."
  - Reports the GIDs owning the render nodes and C(/dev/kfd), which non-root pods need as C(supplementalGroups).
  - Sets the fact C(homelab_ai_gpu_facts). Its C(gpus) list has the shape of the declared C(homelab_ai_gpus) entries
    (vendor, model, memory in bytes, count, apu) plus detected extras; the preflight compares the two.
  - Reads only; needs no root for sysfs, and standard library Python 3.9 or later on the node.
author: homelab.ai developers
options:
  sysfs_root:
    description: Where sysfs is mounted (a fixture tree in tests).
    type: path
    default: /sys
  dev_root:
    description: Where C(/dev) is (a fixture tree in tests).
    type: path
    default: /dev
  nvidia_smi:
    description: The C(nvidia-smi) binary; by default C(nvidia-smi) on E(PATH) where present.
    type: path
extends_documentation_fragment:
  - homelab.ai.attributes
  - homelab.ai.attributes.facts
notes:
  - A GPU whose driver reports no memory (mainline i915, or NVIDIA without C(nvidia-smi)) is listed with C(memory) null
    and a warning; declare its memory in C(homelab_ai_gpus).
  - AMD APUs are recognised by device id (Strix Halo, Strix Point, Phoenix, Rembrandt, ...) or by a VRAM carve-out of at
    most 2 GiB with a larger GTT; Intel integrated GPUs by their PCI address C(0000:00:02.0).
seealso:
  - module: homelab.ai.preflight
"""

EXAMPLES = r"""
- name: Find the GPUs of every node
  homelab.ai.gpu_facts:

- name: Use the render group a pod needs
  ansible.builtin.debug:
    msg: "supplementalGroups: {{ ansible_facts.homelab_ai_gpu_facts.device_gids }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts set.
  returned: always
  type: dict
  contains:
    homelab_ai_gpu_facts:
      description: The GPUs of the node.
      returned: always
      type: dict
      contains:
        gpus:
          description:
            - One entry per kind of GPU, shaped like C(homelab_ai_gpus) (C(vendor), C(model), C(memory) in bytes or null,
              C(count), C(apu)) with C(driver), C(pci_addresses), C(render_nodes), and for AMD C(vram) and C(gtt).
          type: list
          elements: dict
          sample:
            - {vendor: amd, model: Radeon 8060S, memory: 103079215104, count: 1, apu: true, driver: amdgpu,
               vram: 536870912, gtt: 103079215104, pci_addresses: ["0000:c5:00.0"], render_nodes: [/dev/dri/renderD128]}
        devices:
          description: Every GPU device with its PCI ids, driver, card and render node, NUMA node and memory.
          type: list
          elements: dict
        count:
          description: Number of GPU devices.
          type: int
        vendors:
          description: Vendors found.
          type: list
          elements: str
        render_nodes:
          description: The C(/dev/dri/renderD*) nodes of the GPUs.
          type: list
          elements: str
        render_gids:
          description: GIDs owning the render nodes.
          type: list
          elements: int
        render_groups:
          description: Names of those groups, where the node knows them.
          type: list
          elements: str
        kfd:
          description: C(/dev/kfd) (AMD ROCm compute) and its GID, or null.
          type: dict
        device_gids:
          description: Every GID a non-root GPU pod needs as C(supplementalGroups) (render nodes and C(/dev/kfd)).
          type: list
          elements: int
        warnings:
          description: What could not be found out (memory unknown, nvidia-smi failing).
          type: list
          elements: str
"""

from typing import Sequence, Tuple

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.ai.plugins.module_utils._gpu_facts import gather_gpu_facts


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "sysfs_root": {"type": "path", "default": "/sys"},
            "dev_root": {"type": "path", "default": "/dev"},
            "nvidia_smi": {"type": "path"},
        },
        supports_check_mode=True,
    )
    params = module.params
    nvidia_smi = params["nvidia_smi"] or module.get_bin_path("nvidia-smi") or ""

    def runner(argv: Sequence[str]) -> Tuple[int, str, str]:
        return module.run_command(list(argv))

    facts = gather_gpu_facts(params["sysfs_root"], params["dev_root"], nvidia_smi=nvidia_smi, runner=runner)
    for warning in facts["warnings"]:
        module.warn(warning)
    module.exit_json(changed=False, ansible_facts={"homelab_ai_gpu_facts": facts})


if __name__ == "__main__":
    main()
