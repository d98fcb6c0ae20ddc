"""docs/images.md has a row for every pinned image and chart, with the pin the collection deploys, and nothing else.

A pin is what the preflight checks as an image reference (``_formats.FORMATS``: ``*_image``, ``*_image_rocm``,
``llamacpp_images.*``) or a chart version (``*_chart_version``, with the repository of its ``*_chart_repo``) in a
role's defaults, and the pull Job's ``DEFAULT_IMAGE``. Moving one without its evidence fails here.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping

import pytest
import yaml

from ansible_collections.homelab.ai.plugins.module_utils import _formats
from ansible_collections.homelab.ai.plugins.module_utils._pull_job import DEFAULT_IMAGE
from tests.support.example import ROOT

DOC = ROOT / "docs" / "images.md"


def pins() -> Dict[str, List[str]]:
    """Variable -> the code spans its row must hold: the image reference, or the chart's repository and version."""
    found: Dict[str, List[str]] = {"_pull_job.DEFAULT_IMAGE": [DEFAULT_IMAGE]}
    for path in sorted(ROOT.glob("roles/*/defaults/main.yml")):
        defaults = yaml.safe_load(path.read_text()) or {}
        for name, value in defaults.items():
            items = {f"{name}.{key}": item for key, item in value.items()} if isinstance(value, Mapping) else {name: value}
            for where, item in items.items():
                check = _formats._find(_formats.FORMATS, f"{name}.*" if isinstance(value, Mapping) else name)
                if check and check[0] is _formats.image_reference:
                    found[where] = [str(item)]
            if name.endswith("_chart_version"):
                found[name] = [str(defaults[name.removesuffix("_version") + "_repo"]), str(value)]
    return found


def rows() -> Dict[str, str]:
    """Variable -> its table row (rows start with the variable as a code span)."""
    table: Dict[str, str] = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| `([^`]+)` \|", line)
        if match:
            assert match.group(1) not in table, f"docs/images.md has two rows for {match.group(1)}"
            table[match.group(1)] = line
    return table


def test_the_pins_are_found():
    found = pins()
    # one of each kind, so a change in how they are found cannot pass by finding none
    assert {"litellm_image", "ollama_image_rocm", "llamacpp_images.intel", "longhorn_chart_version", "_pull_job.DEFAULT_IMAGE"} <= set(found)
    assert len(found) >= 19


@pytest.mark.parametrize("variable", sorted(pins()))
def test_every_pin_has_its_row(variable):
    row = rows().get(variable)
    assert row is not None, f"docs/images.md has no row for {variable}: add it with the evidence that the pin exists"
    pin_column = row.split(" | ")[1]
    assert re.findall(r"`([^`]+)`", pin_column) == pins()[variable], f"docs/images.md pins {variable} otherwise than the collection"


def test_every_row_names_a_pin():
    assert sorted(set(rows()) - set(pins())) == []
