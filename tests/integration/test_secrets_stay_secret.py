"""Secrets never leave their Secret: not into a process's command line, not into -vvv output, the tree or a log.

The inventory gives every secret the collection takes (from a vars file, as a SOPS-encrypted vars file would). While
site.yml runs with -vvv, the test reads /proc/*/cmdline of every process on the machine, as often as it can; the
Hugging Face token has to reach the VRAM plan (a gated repository on the Hub stand-in answers only with it).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Dict, Set

import yaml

from tests.support.example import ROOT, copy_example
from tests.support.gguf_models import Shape, write_model
from tests.support.model_server import ModelServer
from tests.support.playbook import BIN
from tests.support.tree_checks import decrypt_secrets, load_objects, plaintext_leaks

SECRETS = {
    "homelab_ai_hf_token": "hf_" + "Gated0Token1Of2The3Test4Run5",
    "litellm_master_key": "sk-" + "Master0Key1Of2The3Test4Run5",
    "qdrant_api_key": "Qdrant0Key1Of2The3Test4Run5",
    "open_webui_secret_key": "WebUI0Secret1Of2The3Test4Run5",
    "stable_diffusion_password": "Draw0Password1Of2The3Test4Run5",
}


def _cmdlines() -> Dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return found


def test_no_secret_shows_in_a_command_line_the_output_the_tree_or_a_log(collections, age_key, tmp_path):
    shape = Shape("gated", n_layer=2, n_embd=64, n_head=4, n_head_kv=2, n_ff=128, n_vocab=512)
    model = write_model(tmp_path / "gated.gguf", shape)
    with ModelServer(token=SECRETS["homelab_ai_hf_token"]) as hub:
        hub.add_hf("org/gated-GGUF", "gated.gguf", model.read_bytes())
        hub.gated.add("org/gated-GGUF")
        inventory = copy_example(tmp_path / "inventory")
        models = yaml.safe_load((inventory / "group_vars" / "all" / "models.yml").read_text())
        models["homelab_ai_models"].append({"name": "gated", "backend": "llamacpp", "source": "hf://org/gated-GGUF/gated.gguf", "node": "strix-01"})
        (inventory / "group_vars" / "all" / "models.yml").write_text(yaml.safe_dump(models))
        (inventory / "group_vars" / "all" / "secrets.yml").write_text(yaml.safe_dump(SECRETS))
        out = tmp_path / "out"
        log = tmp_path / "ansible.log"
        env = {
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(collections),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOG_PATH": str(log),  # Ansible's own log, kept too
            "SOPS_AGE_KEY_FILE": str(age_key),
            "HF_ENDPOINT": hub.url,
            "PATH": f"{BIN}:/usr/bin:/bin",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        extra = {"homelab_ai_render_dir": str(out), "deliver_vram_fetch": True, "deliver_vram_cache_dir": str(tmp_path / "gguf")}
        command = [str(BIN / "ansible-playbook"), "-vvv", "-i", str(inventory), str(ROOT / "site.yml"), "-e", json.dumps(extra)]
        seen: Dict[int, str] = {}
        with open(tmp_path / "output.txt", "w") as output:
            proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            polls = 0
            while proc.poll() is None:
                seen.update(_cmdlines())
                polls += 1
                time.sleep(0.002)
        text = (tmp_path / "output.txt").read_text()
        assert proc.returncode == 0, text[-3000:]
        # the token reached the plan: the Hub, which refuses the gated file without it, was asked with it, and its CDN never
        asked = [r for r in hub.requests("origin") if r["path"].endswith("/gated.gguf")]
        assert asked and all(r["authorization"] == f"Bearer {SECRETS['homelab_ai_hf_token']}" for r in asked), "the plan did not send the token"
        assert hub.requests("cdn") and not any(r["authorization"] for r in hub.requests("cdn")), "the CDN saw a token"
        assert "gated" in text and "no GGUF header (hf://org/gated-GGUF" not in text
    assert polls > 100 and len(seen) > 20, (polls, len(seen))
    leaked: Set[str] = {name for name, value in SECRETS.items() for cmdline in seen.values() if value in cmdline}
    assert leaked == set(), f"in a command line: {leaked}"
    assert [name for name, value in SECRETS.items() if value in text] == [], "in the -vvv output"
    assert [name for name, value in SECRETS.items() if value in log.read_text()] == [], "in Ansible's log"
    tree = out / "homelab"
    secrets = decrypt_secrets(tree, str(age_key))
    given = set(SECRETS.values())
    assert given <= {value for _, s in secrets for value in s["stringData"].values()}  # they are all in Secrets
    assert plaintext_leaks(tree, secrets) == []
    # and no pod takes one on its command line: a Secret's variable is never expanded into args or another value
    for path, obj in load_objects(tree):
        pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            secret_vars = {e["name"] for e in container.get("env") or [] if "secretKeyRef" in (e.get("valueFrom") or {})}
            texts = [
                *map(str, container.get("args") or []),
                *map(str, container.get("command") or []),
                *(str(e.get("value", "")) for e in container.get("env") or []),
            ]
            assert [v for v in secret_vars if any(f"$({v})" in t for t in texts)] == [], f"{path}: {container['name']} expands a Secret into its arguments"
