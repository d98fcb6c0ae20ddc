# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

from ansible_collections.homelab.ai.plugins.module_utils._names import slug


def test_slug():
    assert slug("qwen2.5-coder:14b") == "qwen2-5-coder-14b"
    assert slug("Org/Model_Name") == "org-model-name"
    assert len(slug("x" * 200)) == 52
