# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Run site.yml with the collection as built and installed from this checkout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

from .example import ROOT

BIN = Path(sys.executable).parent


def install_collection(dest: Path) -> Path:
    """Build the collection artifact from the checkout and install it under ``dest`` (what users get)."""
    dist = dest / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    subprocess.run([BIN / "ansible-galaxy", "collection", "build", "--force", "--output-path", dist, ROOT], check=True, capture_output=True)
    (tarball,) = dist.glob("homelab-ai-*.tar.gz")
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "install", "--force", "--no-deps", "-p", dest / "collections", tarball], check=True, capture_output=True
    )
    return dest / "collections"


@dataclass
class Run:
    rc: int
    output: str

    @property
    def recap(self) -> Dict[str, int]:
        match = re.search(r"localhost\s*:\s*(.*)", self.output.rsplit("PLAY RECAP", 1)[-1])
        assert match, self.output[-2000:]
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def run_site(
    collections: Path,
    inventory: Path,
    *,
    age_key: Path,
    extra_vars: Optional[Mapping[str, Any]] = None,
    args: Sequence[str] = (),
    cwd: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
    playbook: str = "site.yml",
    background: bool = False,
) -> Any:
    """Run the playbook and return its ``Run``; with ``background``, the ``Popen`` of a process group of its own."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "SOPS_AGE_KEY_FILE": str(age_key),
        # nothing a test runs may leave this machine: whatever tries goes to a closed port on loopback
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **dict(env or {}),
    }
    command = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(ROOT / playbook), *args]
    # the VRAM plan plans from the catalog: no GGUF headers are fetched from hubs in tests
    command += ["-e", json.dumps({"deliver_vram_fetch": False, **dict(extra_vars or {})})]
    if background:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd or ROOT, start_new_session=True)
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd or ROOT, check=False)
    return Run(proc.returncode, proc.stdout + proc.stderr)
