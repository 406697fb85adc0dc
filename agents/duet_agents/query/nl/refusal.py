"""Why a question cannot be answered: raised while reading it or building its SQL, turned into
a `Refused` translation by `answer()`."""

from __future__ import annotations

from collections.abc import Sequence


class CannotAnswerError(Exception):
    """The question cannot be answered, and why: the words that link to nothing, or those
    that could mean several things (with what they could mean)."""

    def __init__(
        self,
        reason: str,
        *,
        unlinked: Sequence[str] = (),
        ambiguous: Sequence[tuple[str, list[str]]] = (),
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unlinked = list(unlinked)
        self.ambiguous = list(ambiguous)
