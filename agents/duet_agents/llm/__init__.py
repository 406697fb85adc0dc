"""Chat models behind one interface: Anthropic, any OpenAI-compatible endpoint, a scripted fake.

    from duet_agents.llm.factory import chat_model

    async with contextlib.aclosing(chat_model("anthropic", "claude-sonnet-5-5")) as model:
        answer = await model.structured(system=..., messages=[...], schema=X, tool_name="x")

Every call returns a validated pydantic object with its token usage, or raises an `LLMError`;
`pricing` turns usage into dollars. See docs/llm-planner.md. The factory is imported on its own
because it loads both provider SDKs (about two seconds), which the fake and the planner's
types do not need.
"""

from duet_agents.llm.base import (
    ChatModel,
    Completion,
    LLMBadOutput,
    LLMError,
    LLMRateLimited,
    LLMRejected,
    LLMTimeout,
    LLMUnavailable,
    Message,
    Usage,
)
from duet_agents.llm.pricing import DEFAULT_LLM_PRICES, Charge, Ledger, LLMPrices, TokenPrice

__all__ = [
    "DEFAULT_LLM_PRICES",
    "Charge",
    "ChatModel",
    "Completion",
    "LLMBadOutput",
    "LLMError",
    "LLMPrices",
    "LLMRateLimited",
    "LLMRejected",
    "LLMTimeout",
    "LLMUnavailable",
    "Ledger",
    "Message",
    "TokenPrice",
    "Usage",
]
