# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The scanner gate: checkov over a rendered tree, every failure either fixed or listed with its reason.

    python tests/support/checkov_gate.py TREE      (exit 1: a failure no entry of the skip file covers, or a stale entry)

The skip file (tests/fixtures/checkov-skips.yaml) holds one entry per check and the resources it covers (``*`` for
all), each with a one-line reason. A new failure fails the build until it is fixed or listed; an entry that covers
nothing any more fails it too, so the list never outlives what it excuses.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = os.environ.get("CHECKOV_BIN") or str(ROOT / ".cache" / "venv-checkov" / "bin" / "checkov")
SKIPS = ROOT / "tests" / "fixtures" / "checkov-skips.yaml"


@dataclass
class Report:
    passed: int
    failed: List[Tuple[str, str, str]]  # (check id, check name, resource), all of them
    unlisted: List[str] = field(default_factory=list)
    stale: List[str] = field(default_factory=list)


def scan(tree: Path) -> Dict[str, Any]:
    out = subprocess.run(
        [CHECKOV, "-d", str(tree), "--framework", "kubernetes", "--quiet", "--compact", "--output", "json", "--skip-download"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_API_KEY": "", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    if out.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({out.returncode}): {out.stderr[-2000:]}")
    data = json.loads(out.stdout)
    return data[0] if isinstance(data, list) else data


def gate(tree: Path, skips_file: Path = SKIPS) -> Report:
    result = scan(tree)
    failed = sorted((c["check_id"], c["check_name"], c["resource"]) for c in (result.get("results") or {}).get("failed_checks") or [])
    entries = yaml.safe_load(skips_file.read_text())["skips"]
    used = [False] * len(entries)
    report = Report(passed=int(result["summary"]["passed"]), failed=failed)
    for check, name, resource in failed:
        matches = [i for i, e in enumerate(entries) if e["check"] == check and any(fnmatch.fnmatchcase(resource, r) for r in e["resources"])]
        for i in matches:
            used[i] = True
        if not matches:
            report.unlisted.append(f"{check} ({name}) on {resource}")
    report.stale = [f"{e['check']} on {', '.join(e['resources'])}: no failure left for it ({e['reason']})" for e, u in zip(entries, used, strict=True) if not u]
    return report


def main() -> int:
    report = gate(Path(sys.argv[1]))
    print(f"checkov: {report.passed} passed, {len(report.failed)} failed, of which {len(report.unlisted)} not in {SKIPS.relative_to(ROOT)}")
    for line in report.unlisted:
        print(f"new failure: {line}")
    for line in report.stale:
        print(f"stale skip: {line}")
    return 1 if report.unlisted or report.stale else 0


if __name__ == "__main__":
    sys.exit(main())
