# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""What llama-server is started with beyond the catalog's own numbers: the settings of an embedding model.

llama-server embeds an input in one micro-batch: a pooled embedding (mean, cls, last) needs every token of the input
at once, and an input longer than ``--ubatch-size`` (512 by default) is refused ("input is too large to process.
increase the physical batch size"). An embedding model therefore gets micro-batches as large as a slot's context,
and the pooling its model card asks for (``pooling`` in the catalog; else what its GGUF declares, which the VRAM plan
checks). The VRAM estimate reads the same micro-batch (``micro_batch``).
"""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence

__all__ = ["DEFAULT_UBATCH", "embedding_args", "micro_batch"]

DEFAULT_UBATCH = 512  # llama-server's --ubatch-size
_BATCH_FLAGS = ("-b", "--batch-size", "-ub", "--ubatch-size")


def _given(args: Sequence[str], flags: Sequence[str]) -> bool:
    return any(str(arg).split("=", 1)[0] in flags for arg in args)


def micro_batch(model: Mapping[str, Any]) -> int:
    """The micro-batch llama-server runs with, unless the catalog's ``args`` set one: a slot's context for an
    embedding model, llama-server's default otherwise."""
    return int(model.get("context") or 4096) if model.get("mode") == "embedding" else DEFAULT_UBATCH


def embedding_args(model: Mapping[str, Any]) -> List[str]:
    """llama-server's arguments for an embedding model (none for another model)."""
    if model.get("mode") != "embedding":
        return []
    args = ["--embeddings"]
    if model.get("pooling"):
        args += ["--pooling", str(model["pooling"])]
    if not _given(model.get("args") or [], _BATCH_FLAGS):
        size = str(micro_batch(model))
        args += ["--batch-size", size, "--ubatch-size", size]
    return args
