"""The Makefile's help names every target it declares phony, and nothing else."""

from __future__ import annotations

import re
import subprocess

from tests.support.example import ROOT


def test_make_help_lists_every_target():
    makefile = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split())
    helped = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "help"], capture_output=True, text=True, check=True).stdout
    listed = set(re.findall(r"^make (\S+)", helped, re.M))
    assert listed == phony - {"help"}
    defined = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    assert phony <= defined
