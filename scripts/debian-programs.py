#!/usr/bin/env python3
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Debian's programs for the tests, the newest version the signed archive offers within a declared range.

    scripts/debian-programs.py SPEC DEST [SPEC DEST ...]

Each line of a SPEC (``requirements/*.debian``): ``MODE PACKAGE RANGE [FILE...]``.

- MODE ``unpack``: the package is downloaded (``apt-get download``) and each FILE (a path inside it) copied into DEST;
  nothing is installed and no service starts. MODE ``install``: installed with apt-get (root), for a program that
  needs Debian's libraries (Chromium); DEST gets a link to the first FILE.
- RANGE: comma-separated ``>=V``, ``<V``, ``<=V``, ``>V`` in Debian's version order, e.g. ``>=1.22.1,<1.23~``.

apt verifies the archive's signature and every package's hash, so no hash is pinned here: a pinned hash (or an exact
version) stops installing as soon as Debian's security archive moves on, which it does within weeks. The package
lists are refreshed first (as root), and the version to use is always the archive's newest within the range: its
download address is asked for on every run (``apt-get download --print-uris``), even when that version is installed or
unpacked already, so a machine that has the program cannot hide an install step that no longer works. DEST/versions
records what was used (the tests print it); DEST appears whole or not at all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

MODES = ("install", "unpack")
_CONSTRAINT = re.compile(r"^(>=|<=|>|<)([0-9][A-Za-z0-9.+~:-]*)$")
_OPERATORS = {">=": "ge", "<=": "le", ">": "gt", "<": "lt"}


class Refused(Exception):
    """A problem with its fix: printed as one line, exit 1."""


@dataclass(frozen=True)
class Want:
    mode: str
    package: str
    constraints: Tuple[Tuple[str, str], ...]
    files: Tuple[str, ...]

    @property
    def range(self) -> str:
        return ",".join(op + version for op, version in self.constraints)


def parse_spec(text: str, where: str) -> List[Want]:
    wants = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) < 3 or fields[0] not in MODES:
            raise Refused(f"{where}:{number}: {line!r} is not 'MODE PACKAGE RANGE [FILE...]' (MODE: {', '.join(MODES)})")
        constraints = []
        for part in fields[2].split(","):
            match = _CONSTRAINT.match(part)
            if not match:
                raise Refused(f"{where}:{number}: {part!r} is not a version constraint; write e.g. >=156 or >=1.22.1,<1.23~")
            constraints.append((match.group(1), match.group(2)))
        if fields[0] == "install" and len(fields) < 4:
            raise Refused(f"{where}:{number}: an installed package names the program DEST links to (e.g. usr/lib/chromium/chromium)")
        wants.append(Want(fields[0], fields[1], tuple(constraints), tuple(fields[3:])))
    if not wants:
        raise Refused(f"{where} names no package")
    return wants


def compare(a: str, op: str, b: str) -> bool:
    """Debian's version order, as dpkg itself decides it."""
    return subprocess.run(["dpkg", "--compare-versions", a, _OPERATORS.get(op, op), b], check=False).returncode == 0


def within(version: str, want: Want) -> bool:
    return all(compare(version, op, bound) for op, bound in want.constraints)


def newest(versions: Sequence[str], want: Want) -> Optional[str]:
    best: Optional[str] = None
    for version in versions:
        if within(version, want) and (best is None or compare(version, ">", best)):
            best = version
    return best


def offered(package: str) -> List[str]:
    """Every version of the package the package lists hold (``apt-cache madison``)."""
    out = subprocess.run(["apt-cache", "madison", package], capture_output=True, text=True, check=False).stdout
    return [line.split("|")[1].strip() for line in out.splitlines() if line.count("|") >= 2 and line.split("|")[0].strip() == package]


def download_address(package: str, version: str) -> Tuple[str, int]:
    """(file name, size) the archive serves this version as: ``apt-get download --print-uris`` fails where it does not."""
    run = subprocess.run(["apt-get", "download", "--print-uris", f"{package}={version}"], capture_output=True, text=True, check=False)
    for line in run.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0].startswith("'") and fields[2].isdigit():
            return fields[1], int(fields[2])
    raise Refused(f"apt has no download address for {package}={version}: {(run.stderr or run.stdout).strip()[-300:]}")


def installed_version(package: str) -> str:
    run = subprocess.run(["dpkg-query", "-W", "-f", "${Status} ${Version}", package], capture_output=True, text=True, check=False)
    status = run.stdout.rsplit(" ", 1)
    return status[1] if run.returncode == 0 and status[0] == "install ok installed" else ""


def choose(want: Want, where: str, refreshed: bool) -> Tuple[str, str, int]:
    """(version, file name, size) of the newest version within the range that the archive serves."""
    versions = offered(want.package)
    version = newest(versions, want)
    if version is None:
        seen = ", ".join(versions) or "none"
        fix = "" if refreshed else " (as root this script refreshes the package lists first: run it as root, or apt-get update)"
        raise Refused(
            f"Debian offers no {want.package} within {want.range} (the lists hold {seen}){fix}; "
            f"if Debian moved to a new major version, widen the range in {where}"
        )
    filename, size = download_address(want.package, version)
    return version, filename, size


def refresh_lists() -> bool:
    if os.geteuid() != 0:
        print("debian-programs: not root: using the package lists as they are", file=sys.stderr)
        return False
    run = subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise Refused(f"apt-get update failed: {(run.stderr or run.stdout).strip()[-500:]}")
    return True


def read_versions(dest: Path) -> Dict[str, str]:
    try:
        lines = (dest / "versions").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(" ", 1) for line in lines if " " in line)


def provide(spec: Path, dest: Path, refreshed: bool) -> str:
    wants = parse_spec(spec.read_text(), str(spec))
    chosen = {want.package: choose(want, str(spec), refreshed) for want in wants}
    versions = {package: version for package, (version, _, _) in chosen.items()}
    for want in wants:
        version, filename, size = chosen[want.package]
        print(f"debian-programs: {want.package} {version} (newest within {want.range}; the archive serves {filename}, {size} bytes)")
    current = read_versions(dest) == versions and all((dest / Path(f).name).exists() for w in wants for f in w.files)
    installed = all(installed_version(w.package) == versions[w.package] for w in wants if w.mode == "install")
    if current and installed:
        return " ".join(f"{p} {v}" for p, v in versions.items())
    with tempfile.TemporaryDirectory(prefix=f"{spec.stem}-debian.") as work:
        os.chmod(work, 0o755)  # apt's download user writes here
        _fetch(wants, versions, Path(work), dest)
    return " ".join(f"{p} {v}" for p, v in versions.items())


def _fetch(wants: Sequence[Want], versions: Dict[str, str], work: Path, dest: Path) -> None:
    out = work / "out"
    out.mkdir()
    unpack = [w for w in wants if w.mode == "unpack"]
    install = [w for w in wants if w.mode == "install"]
    if unpack:
        run = subprocess.run(
            ["apt-get", "download", "-q", *(f"{w.package}={versions[w.package]}" for w in unpack)], cwd=work, capture_output=True, text=True, check=False
        )
        if run.returncode != 0:
            raise Refused(f"apt-get download failed: {(run.stderr or run.stdout).strip()[-500:]}")
        for want in unpack:
            (deb,) = work.glob(f"{want.package}_*.deb")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True)
            for file in want.files:
                shutil.copy2(work / "root" / file, out / Path(file).name)
    if install:
        missing = [w for w in install if installed_version(w.package) != versions[w.package]]
        if missing and os.geteuid() != 0:
            raise Refused(f"{', '.join(w.package + ' ' + versions[w.package] for w in missing)} is not installed, and installing it needs root")
        if missing:
            run = subprocess.run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *(f"{w.package}={versions[w.package]}" for w in missing)],
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                capture_output=True,
                text=True,
                check=False,
            )
            if run.returncode != 0:
                raise Refused(f"apt-get install failed: {(run.stderr or run.stdout).strip()[-800:]}")
        for want in install:
            if installed_version(want.package) != versions[want.package]:
                raise Refused(f"apt-get installed {want.package} {installed_version(want.package) or '(nothing)'}, not {versions[want.package]}")
            os.symlink("/" + want.files[0], out / Path(want.files[0]).name)
    (out / "versions").write_text("".join(f"{p} {v}\n" for p, v in versions.items()))
    out.chmod(0o755)
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists() or dest.is_symlink():
        dest.rename(old)
    shutil.move(str(out), str(dest))
    shutil.rmtree(old, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2 or len(argv) % 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    for tool in ("apt-get", "apt-cache", "dpkg", "dpkg-deb", "dpkg-query"):
        if shutil.which(tool) is None:
            print(f"debian-programs: {tool} is missing: this needs a Debian machine", file=sys.stderr)
            return 1
    try:
        refreshed = refresh_lists()
        for spec, dest in zip(argv[::2], argv[1::2], strict=True):
            provide(Path(spec), Path(dest).resolve(), refreshed)
    except Refused as exc:
        print(f"debian-programs: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
