#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vram_plan
short_description: Check that the workloads placed on every GPU fit its memory, before anything is deployed
version_added: 0.1.0
description:
  - For every GPU of the inventory, adds up what the workloads placed on it (the C(gpu_workloads) the component roles
    registered) may use at once, and fails naming the GPU, the workloads and the numbers when that is more than the GPU
    holds, unless O(overcommit) (the inventory's C(homelab_ai_vram_overcommit)) allows it. Time-slicing shares a GPU's
    compute, never its memory.
  - "llama.cpp models are estimated from their GGUF header: weights of the offloaded layers, the KV cache (context, block
    count, KV heads, key and value length, cache type) and the compute buffer, plus the GPU runtime. The header is read
    with HTTP range requests before any download (Hugging Face, https, and the Ollama registry's model blob) and cached
    in O(cache_dir), so reruns are offline and fast."
  - Where a header cannot be fetched (no network), the catalog's C(vram), else C(size) plus an allowance, else (Ollama)
    the parameter count of the tag is used, with a note; a model of which nothing at all is known is a problem.
  - Ollama and Stable Diffusion use their declared budgets (C(ollama_vram), C(stable_diffusion_vram)) where set.
  - Returns the plan, a plain-text table for the end of the run and a Markdown page for the GitOps tree.
author: homelab.ai developers
options:
  inventory:
    description: The normalised inventory, the fact C(homelab_ai_inventory) that M(homelab.ai.preflight) sets.
    type: dict
    required: true
  components:
    description: The registered components (lookup C(homelab.ai.components)); only their C(name) and C(gpu_workloads) are read.
    type: list
    elements: dict
    required: true
  overcommit:
    description: Allow GPUs to be over-committed (warn instead of failing). Default the inventory's C(vram_overcommit).
    type: bool
  fetch:
    description: Fetch GGUF headers that are not in the cache. Off, the plan uses the cache and the catalog only.
    type: bool
    default: true
  cache_dir:
    description: Where fetched headers are kept, by default C($XDG_CACHE_HOME/homelab.ai/gguf) (C(~/.cache/homelab.ai/gguf)).
    type: path
  timeout:
    description: Seconds to wait for one HTTP answer.
    type: int
    default: 10
  hf_token:
    description: A Hugging Face token for the headers of gated repositories.
    type: str
extends_documentation_fragment:
  - homelab.ai.attributes
  - homelab.ai.attributes.action
attributes:
  check_mode:
    support: full
    details: Headers are fetched (reading only) but not written to the cache.
notes:
  - The estimate is checked against llama.cpp's own buffer sizes by C(benchmarks/vram_accuracy.py).
  - For gated Hugging Face repositories give O(hf_token) (else C(HF_TOKEN) of the environment is used); it is sent to the
    Hub only, never to the CDN it redirects to, and never shows in the output.
seealso:
  - module: homelab.ai.gpu_facts
  - module: homelab.ai.component
"""

EXAMPLES = r"""
- name: Refuse a plan that cannot fit
  homelab.ai.vram_plan:
    inventory: "{{ ansible_facts.homelab_ai_inventory }}"
    components: "{{ lookup('homelab.ai.components') }}"
  register: vram

- name: Show it
  ansible.builtin.debug:
    msg: "{{ vram.table }}"
"""

RETURN = r"""
ok:
  description: Whether every GPU fits (or over-commitment is allowed).
  returned: always
  type: bool
plan:
  description: Per GPU its memory, workloads (bytes, how each was sized, weights/KV cache/compute where estimated), used and free.
  returned: always
  type: dict
table:
  description: The plan as plain text, one block per GPU.
  returned: always
  type: str
markdown:
  description: The plan as Markdown, for C(vram-plan.md) in the GitOps tree.
  returned: always
  type: str
problems:
  description: Over-commitments and workloads that could not be sized; the module fails when there are any.
  returned: always
  type: list
  elements: str
notes:
  description: Where the plan fell back from a GGUF header to the catalog.
  returned: always
  type: list
  elements: str
headers:
  description: Per model source, where its header came from (C(cache) or C(fetched)).
  returned: always
  type: dict
"""

from typing import Any, Dict, List, Tuple

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.ai.plugins.module_utils._gguf import HeaderCache, HeaderLookup, default_cache_dir
from ansible_collections.homelab.ai.plugins.module_utils._problems import format_problems
from ansible_collections.homelab.ai.plugins.module_utils._vram_plan import make_vram_plan

ARGUMENT_SPEC = {
    "inventory": {"type": "dict", "required": True},
    "components": {"type": "list", "elements": "dict", "required": True},
    "overcommit": {"type": "bool"},
    "fetch": {"type": "bool", "default": True},
    "cache_dir": {"type": "path"},
    "timeout": {"type": "int", "default": 10},
    "hf_token": {"type": "str", "no_log": True},
}


def run_plan(params: Dict[str, Any], check_mode: bool) -> Tuple[Dict[str, Any], List[str]]:
    """(the module's result, warnings); the result has ``failed`` and ``msg`` when the plan does not fit. The action
    plugin of the same name runs this on the controller (no module to start), the module for a direct call."""
    lookup = HeaderLookup(
        HeaderCache(params["cache_dir"] or default_cache_dir()),
        fetch=params["fetch"],
        write_cache=not check_mode,
        timeout=params["timeout"],
        token=params["hf_token"],
    )
    try:
        plan = make_vram_plan(params["inventory"], params["components"], header=lookup, overcommit=params["overcommit"])
    except (KeyError, TypeError, ValueError) as exc:
        return {"failed": True, "msg": f"inventory: not the homelab_ai_inventory fact that homelab.ai.preflight sets ({exc})"}, []
    result: Dict[str, Any] = {
        "changed": False,
        "ok": plan.ok,
        "plan": plan.to_dict(),
        "table": plan.table(),
        "markdown": plan.markdown(str(params["inventory"].get("cluster_name") or "")),
        "problems": [str(p) for p in plan.problems],
        "notes": plan.notes,
        "headers": lookup.origins,
    }
    if not plan.ok:
        # the message holds the problems and the table; the Markdown page would only repeat them
        failure = {
            "failed": True,
            "msg": f"VRAM plan: {format_problems(plan.problems)}\n\n{result['table']}",
            "problems": result["problems"],
            "notes": plan.notes,
        }
        return failure, list(plan.warnings)
    return result, list(plan.warnings)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result, warnings = run_plan(module.params, module.check_mode)
    for warning in warnings:
        module.warn(warning)
    if result.get("failed"):
        module.fail_json(**{k: v for k, v in result.items() if k != "failed"})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
