"""Every role's meta/argument_specs.yml matches its defaults/main.yml, and the preflight's matches _inventory.DEFAULTS."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.homelab.ai.plugins.module_utils._inventory import DEFAULTS
from tests.support.example import ROOT

ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())


def options(role):
    data = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return data["argument_specs"]["main"]["options"]


@pytest.mark.parametrize("role", [r for r in ROLES if r != "preflight"])
def test_defaults_match_the_argument_spec(role):
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    spec = options(role)
    assert set(defaults) == set(spec), f"{role}: defaults and argument_specs name different variables"
    for name, option in spec.items():
        assert option.get("default") == defaults[name], f"{role}: {name} default differs"
        assert name.startswith(role + "_"), f"{role}: {name} lacks the role prefix"
        assert option.get("description"), f"{role}: {name} has no description"


def test_preflight_documents_the_python_defaults():
    spec = options("preflight")
    for name, value in DEFAULTS.items():
        assert spec[name].get("default") == value, name


def test_every_name_the_typo_message_points_to_is_where_it_says():
    """The misspelling's fix sends people to the argument specs and the README: each name is found there."""
    from ansible_collections.homelab.ai.plugins.module_utils._inventory import MODEL_KEYS, NODE_VARIABLES

    spec = yaml.safe_load((ROOT / "roles" / "preflight" / "meta" / "argument_specs.yml").read_text())
    catalog = " ".join(spec["argument_specs"]["main"]["options"]["homelab_ai_models"]["description"])
    assert [key for key in MODEL_KEYS if f"C({key})" not in catalog] == []
    nodes = (ROOT / "README.md").read_text().split("- **Nodes**", 1)[1].split("- **The model catalog**", 1)[0]
    assert [name for name in NODE_VARIABLES - {"homelab_ai_gpu_facts"} if f"`{name}`" not in nodes] == []
