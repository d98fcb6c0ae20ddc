# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Kubernetes object names: what a DNS label and a DNS subdomain are, and the slug that makes a label from free text.

One place for the rules every object name follows; ``_formats`` words the problems. Small on purpose: the roles'
filter plugin imports it (through ``_components`` and ``_pull_job``), and Ansible compiles it in every task's worker.
"""

from __future__ import annotations

import re

__all__ = ["DNS_LABEL", "is_dns_label", "is_dns_subdomain", "slug"]

# RFC 1123 label, as Kubernetes checks namespace and Service names: at most 63 characters
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def is_dns_label(text: object) -> bool:
    return isinstance(text, str) and DNS_LABEL.match(text) is not None


def is_dns_subdomain(text: object) -> bool:
    """DNS labels joined by '.', at most 253 characters: most object names (a node, a volume claim, a Secret)."""
    return isinstance(text, str) and len(text) <= 253 and all(DNS_LABEL.match(part) for part in text.split("."))


def slug(name: str, max_len: int = 52) -> str:
    """A DNS label made from free text, such as a model name (``qwen2.5-coder:14b`` -> ``qwen2-5-coder-14b``)."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return text[:max_len].rstrip("-") or "model"
