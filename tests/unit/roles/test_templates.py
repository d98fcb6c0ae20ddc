"""Every value a manifest template inserts is emitted as a JSON scalar or structure, never as YAML text.

A value written as text (``name: {{ x }}``) can carry a newline and add keys (``10.10.2.25\\n  externalIPs: [...]``);
written as JSON (``name: {{ x | to_json }}``) it is one string, whatever it holds. The generated injection test in
tests/integration/test_bad_inputs.py checks the rendered objects; this one checks every template keeps the rule.
"""

from __future__ import annotations

import re

import pytest

from tests.support.example import ROOT

# manifest templates: node_bootstrap's are config files on the nodes, deliver's summary is text for a person
TEMPLATES = sorted(p for p in (ROOT / "roles").glob("*/templates/*.j2") if p.parts[-3] not in ("node_bootstrap", "deliver"))


def expressions(text: str):
    """The ``{{ ... }}`` of a template, with braces inside them balanced as Jinja's lexer balances them."""
    start = 0
    while (begin := text.find("{{", start)) >= 0:
        depth, i = 0, begin + 2
        while not (depth == 0 and text.startswith("}}", i)):
            depth += {"{": 1, "}": -1, "[": 1, "]": -1, "(": 1, ")": -1}.get(text[i], 0)
            i += 1
        yield text[begin + 2 : i]
        start = i + 2


def test_there_are_manifest_templates():
    assert len(TEMPLATES) >= 10


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT / "roles")))
def test_every_expression_ends_in_to_json(template):
    text = template.read_text()
    raw = [expr for expr in expressions(text) if not re.search(r"\|\s*to_json$", expr.strip())]
    assert raw == [], f"{template.name}: these insert text, not data; end them with | to_json"
