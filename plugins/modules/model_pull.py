#!/usr/bin/python
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_pull
short_description: Download a model file (Hugging Face Hub, https, Ollama registry) fast, resumably and verified
version_added: 0.1.0
description:
  - Fetches one model of the catalog into the directory where it must land, a host path or (through the same code
    run as a Kubernetes Job, see the C(homelab.ai.pull_job) filter) a PVC.
  - Parallel ranged download over O(connections) keep-alive connections in parts of O(part_size); the sha256 is
    computed while the parts arrive, so verification needs no second read of the file.
  - The file appears at its path only when complete and verified, by an atomic rename from C(.homelab-pull/) beside it.
    An interrupted download (an error, C(kill -9)) is resumed by the next run, which fetches only what is missing.
  - Transient failures (connection errors, timeouts, truncated bodies, 5xx, 416, stalled connections) are retried
    with backoff; a server that ignores Range gets one plain stream; a full disk fails clearly and leaves nothing at
    the path; concurrent runs on the same file take a lock, and the second finds the work done.
  - Idempotent. A file recorded as verified is kept without network transfer or hashing (O(verify) re-hashes).
  - C(hf://org/repo/path[@revision]) follows the Hub's resolve protocol (C(X-Repo-Commit), C(X-Linked-Etag) as
    the sha256, C(X-Linked-Size), and a redirect to a CDN that never sees the token).
    C(https://...) takes an optional O(sha256). C(ollama://[registry/][namespace/]model[:tag]) is written into
    Ollama's own layout (C(manifests/...), C(blobs/sha256-...)) under O(dest), so that Ollama serves it without a pull.
author: homelab.ai developers
options:
  source:
    description: The model source, as in the catalog (C(homelab_ai_models[].source)).
    type: str
    required: true
  dest:
    description:
      - For C(hf://) and C(https://) the directory the file goes into (created when missing).
      - For C(ollama://) Ollama's models directory (its C(OLLAMA_MODELS)), holding C(manifests/) and C(blobs/).
    type: path
    required: true
  filename:
    description: The file's name in O(dest); by default the source's file name. Not for C(ollama://).
    type: str
  sha256:
    description:
      - The expected sha256. Hub LFS files and Ollama blobs carry their own; a given value that disagrees with the
        Hub's fails before anything is downloaded.
    type: str
  token:
    description: Hugging Face token for gated or private repositories; by default E(HF_TOKEN). Never logged.
    type: str
  endpoint:
    description:
      - For C(hf://) the Hub's URL (default E(HF_ENDPOINT), else U(https://huggingface.co)), for mirrors.
      - For C(ollama://) the registry's base URL (default C(https://<registry>)).
    type: str
  state:
    description:
      - C(present) downloads what is missing and otherwise trusts the record of the verified file.
      - C(latest) also asks the source whether it now holds something else (a moved branch) and fetches it.
      - C(absent) removes the file, its record and any partial download (C(ollama://) the manifest and unshared blobs).
    type: str
    choices: [present, latest, absent]
    default: present
  verify:
    description: Re-hash the file that is there instead of trusting the record.
    type: bool
    default: false
  connections:
    description: Parallel connections (1 to 64).
    type: int
    default: 8
  part_size:
    description: Size of each ranged request, as bytes or a quantity such as C(16Mi).
    type: str
    default: 16Mi
  retries:
    description: Retries of each part after a transient failure, with exponential backoff.
    type: int
    default: 5
  timeout:
    description: Seconds a connection may stay silent (or below 1 KiB/s) before it counts as stalled and is retried.
    type: float
    default: 30
  lock_timeout:
    description: Seconds to wait for another run that downloads the same file.
    type: float
    default: 3600
extends_documentation_fragment:
  - homelab.ai.attributes
attributes:
  check_mode:
    support: full
    details: Asks the source for the size (a HEAD request, a manifest) and reports what would be downloaded.
notes:
  - Uses only the Python standard library, so it runs on any node and inside a stock Python image.
seealso:
  - module: homelab.ai.ollama_model
"""

EXAMPLES = r"""
- name: Fetch the embedding model into the llama.cpp cache
  homelab.ai.model_pull:
    source: hf://Qwen/Qwen3-Embedding-0.6B-GGUF/Qwen3-Embedding-0.6B-Q8_0.gguf
    dest: /var/lib/models

- name: A Stable Diffusion checkpoint from a plain URL, checked against its sha256
  homelab.ai.model_pull:
    source: https://models.example.org/sd_xl_base_1.0.safetensors
    sha256: 31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b
    dest: /srv/sd/models/Stable-diffusion

- name: Fill Ollama's models directory before Ollama starts
  homelab.ai.model_pull:
    source: ollama://llama3.2:3b
    dest: /var/lib/ollama/models

- name: A gated model, with a token that is never logged
  homelab.ai.model_pull:
    source: hf://meta-llama/Llama-3.2-3B-Instruct/model.safetensors@main
    dest: /var/lib/models
    token: "{{ hf_token }}"
"""

RETURN = r"""
path:
  description: The file (for C(ollama://) the manifest).
  returned: always
  type: str
action:
  description: downloaded, resumed, verified, unchanged, removed, absent; in check mode C(would download) or C(would remove).
  returned: always
  type: str
size:
  description: Size of the model in bytes (for C(ollama://) all blobs).
  returned: always
  type: int
sha256:
  description: sha256 of the file (for C(ollama://) of the manifest, the digest Ollama reports).
  returned: always
  type: str
revision:
  description: The Hub commit the file came from, or the Ollama manifest digest.
  returned: always
  type: str
bytes_transferred:
  description: Bytes fetched in this run (0 when unchanged).
  returned: always
  type: int
bytes_to_transfer:
  description: In check mode, the bytes a run would fetch (less what an interrupted run left).
  returned: always
  type: int
seconds:
  description: Duration of the transfer.
  returned: always
  type: float
throughput:
  description: Bytes per second of the transfer.
  returned: always
  type: float
files:
  description: The files written (or that would be), with path, size, sha256 and action.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.homelab.ai.plugins.module_utils._download import DownloadError
from ansible_collections.homelab.ai.plugins.module_utils._problems import InputError
from ansible_collections.homelab.ai.plugins.module_utils._pull import PullRequest, pull
from ansible_collections.homelab.ai.plugins.module_utils._quantity import QuantityError, to_bytes


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "source": {"type": "str", "required": True},
            "dest": {"type": "path", "required": True},
            "filename": {"type": "str"},
            "sha256": {"type": "str"},
            "token": {"type": "str", "no_log": True},
            "endpoint": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "latest", "absent"], "default": "present"},
            "verify": {"type": "bool", "default": False},
            "connections": {"type": "int", "default": 8},
            "part_size": {"type": "str", "default": "16Mi"},
            "retries": {"type": "int", "default": 5},
            "timeout": {"type": "float", "default": 30.0},
            "lock_timeout": {"type": "float", "default": 3600.0},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        part_size = to_bytes(p["part_size"])
    except QuantityError as exc:
        module.fail_json(msg=f"part_size: {exc}; give bytes or a quantity such as 16Mi")
    request = PullRequest(
        source=p["source"],
        dest=p["dest"],
        filename=p["filename"] or "",
        sha256=(p["sha256"] or "").lower(),
        token=p["token"],
        endpoint=p["endpoint"] or "",
        state=p["state"],
        verify=p["verify"],
        connections=p["connections"],
        part_size=part_size,
        retries=p["retries"],
        timeout=p["timeout"],
        lock_timeout=p["lock_timeout"],
    )
    try:
        result = pull(request, check_mode=module.check_mode)
    except (InputError, DownloadError, OSError) as exc:
        module.fail_json(msg=str(exc), source=p["source"], dest=p["dest"])
    module.exit_json(**result.to_dict())


if __name__ == "__main__":
    main()
