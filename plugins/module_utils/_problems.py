# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Input problems: each names the bad input and says how to fix it."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Problem:
    where: str  # the input, as the user wrote it: a variable and a path into it
    message: str  # what is wrong with it
    fix: str  # what to do instead

    def __str__(self) -> str:
        return f"{self.where}: {self.message}. Fix: {self.fix}"


class InputError(ValueError):
    """Raised with every problem found, so that one run reports them all."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__(format_problems(self.problems))


def format_problems(problems: Iterable[Problem], consequence: str = "nothing was written or applied") -> str:
    lines = [f"- {problem}" for problem in problems]
    return "The inventory has {} problem(s); {}:\n{}".format(len(lines), consequence, "\n".join(lines))


def failure_summary(problems: Sequence[Problem], consequence: str = "nothing was written or applied") -> str:
    """The one line a failed task ends with, once the problems themselves were shown (each once)."""
    return f"The inventory has {len(problems)} problem(s), listed above; {consequence}"


def suggest(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean X?)' for a likely misspelling or a longer form of a candidate, else ''."""
    options = sorted(set(candidates))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.7)
    if not close:
        close = [option for option in options if len(option) >= 3 and word.lower().startswith(option)][:1]
    return f" (did you mean {close[0]}?)" if close else ""
