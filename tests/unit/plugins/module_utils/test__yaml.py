from __future__ import annotations

import random

import pytest
import yaml

from ansible_collections.homelab.ai.plugins.module_utils import _yaml

# Values where emitters are known to differ in style choice: quoting of look-alike scalars, literal blocks,
# trailing spaces, unicode, control characters, long lines, empty containers.
AWKWARD = [
    "",
    " ",
    "true",
    "False",
    "no",
    "null",
    "~",
    "1.0",
    "0o17",
    "0x1F",
    "1e3",
    "12:30",
    ".inf",
    "- item",
    "key: value",
    "a #comment",
    "#start",
    "'quoted'",
    '"double"',
    "@at",
    "`tick`",
    "%percent",
    "*star",
    "&anchor",
    "!tag",
    "|pipe",
    ">fold",
    "{brace}",
    "[bracket]",
    "comma, here",
    " leading",
    "trailing ",
    "tab\there",
    "line\nbreak",
    "config:\n  key: value\n  list:\n    - a\n",
    "trailing space \nnext",
    "\nstarts with a break",
    "ends with breaks\n\n",
    "unicode ✓ ü 漢字",
    "nbsp\u00a0here",
    "bell\x07",
    "del\x7f",
    "line\u2028separator",
    "x" * 5000,
    "word " * 1200 + "end",
    "'word' " * 1000 + "end",
    "http://llamacpp-model.ai.svc.cluster.local:8080/v1",
    'container="prometheus",namespace="monitoring"',
    "sum(rate(llamacpp:requests_processing[5m])) or vector(0)",
    "$(SD_PASSWORD)",
    "C:\\path\\file",
    "a\r\nb",
]

SHORT = [value for value in AWKWARD if len(value) < 100]

# Where the emitters differ: libyaml escapes characters beyond the Basic Multilingual Plane and NEL, writes an
# empty key plainly, a key over 128 characters in the "? " form, and folds a double-quoted string longer than the
# width elsewhere. The text still loads to the same value; only a controller that switches emitters sees a change.
DIVERGENT = ["unicode 🚀", "next\x85line", "", "word " * 1200]


def both(data):
    return (
        yaml.dump_all(data, Dumper=_yaml._Dumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True, explicit_start=True),
        yaml.dump_all(data, Dumper=_PyDumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True, explicit_start=True),
    )


class _PyDumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


_PyDumper.add_representer(str, _yaml._str)


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.choice(AWKWARD)
    if kind == 1:
        return "".join(rng.choice("ab :#-\n'\"{}[],&*!|>%@`\t✓ü ") for _ in range(rng.randrange(12)))
    if kind == 2:
        return rng.choice([0, -1, 7, 2**40, 1.5, -0.0, True, False, None])
    if kind == 3:
        return rng.choice(SHORT) + rng.choice(SHORT)  # a long one could need quoting, which folds differently
    if kind == 4:
        return str(rng.random())
    if kind == 5:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    # keys as the tree has them: short (libyaml writes a key of over 128 characters in the "? " form sooner)
    return {str(random_value(rng, depth + 1))[:60] or "k": random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML here has no libyaml: the tree is written by PyYAML's own emitter")
def test_libyaml_writes_the_bytes_pyyaml_writes():
    """The tree must not change when a controller's PyYAML lacks libyaml (or gains it)."""
    assert _yaml._Dumper.__mro__[1] is yaml.CSafeDumper
    # Every document of the tree is a mapping (a Kubernetes object or a values file), keyed by non-empty strings.
    documents = [{"value": value, value[:60] or "k": [value, {"nested": value}]} for value in AWKWARD]
    documents.append({"empty": {}, "list": [], "deep": [[[]], {"a": {}}]})
    rng = random.Random(20261203)
    documents.extend({f"k{index}": random_value(rng)} for index in range(3000))
    fast, slow = both(documents)
    assert fast == slow
    assert list(yaml.safe_load_all(fast)) == documents


@pytest.mark.parametrize("value", DIVERGENT)
def test_where_the_emitters_differ_the_value_survives(value):
    document = {"k": value, "list": [value]}
    assert list(yaml.safe_load_all(_yaml.dump_all([document]))) == [document]


def test_multi_line_strings_are_literal_blocks_unless_a_line_ends_in_space():
    assert _yaml.dump({"config": "a: 1\nb: 2\n"}) == "config: |\n  a: 1\n  b: 2\n"
    assert _yaml.dump({"config": "a \nb"}) == 'config: "a \\nb"\n'


def test_an_object_used_twice_is_written_twice():
    shared = {"a": 1}
    assert "&" not in _yaml.dump({"x": shared, "y": shared})
