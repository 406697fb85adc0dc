"""What every agent's prompts do to untrusted text: the same two guards, kept in one place.

Data a model reads (a description, an error message that quotes SQL, a schema comment) goes
between tags of the agent's own; escaping `<` and `>` keeps it from closing them. A model's
previous answer goes back to it in a repair round, bounded.
"""

from __future__ import annotations


def escape_tags(text: str) -> str:
    """`text` with `<` and `>` as `\\u003c` and `\\u003e`: inside JSON strings they mean the
    same characters, so a JSON document stays the same JSON and can contain no tag."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def echoed_answer(raw: str, limit: int) -> str:
    """The model's previous answer, as the assistant turn of a repair round: at most `limit`
    characters, and never empty."""
    text = raw.strip() or "(no tool call)"
    if len(text) > limit:
        text = text[:limit] + " ...(cut)"
    return text
