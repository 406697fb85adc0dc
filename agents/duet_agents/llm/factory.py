"""The chat model a planner or query agent names: `provider` and `model` from the spec."""

from __future__ import annotations

from typing import Literal, get_args

from duet_agents.llm.anthropic import AnthropicChatModel
from duet_agents.llm.base import ChatModel
from duet_agents.llm.openai import OpenAIChatModel

Provider = Literal["anthropic", "openai"]
PROVIDERS: tuple[str, ...] = get_args(Provider)


def chat_model(
    provider: str,
    model: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
    max_retries: int = 2,
) -> ChatModel:
    """A client for `model` at `provider`; close it with `aclose()` (or `contextlib.aclosing`).

    `api_key` and `base_url` left unset come from the environment as the SDKs read it
    (`ANTHROPIC_API_KEY`/`ANTHROPIC_BASE_URL`, `OPENAI_API_KEY`/`OPENAI_BASE_URL`). `timeout`
    is per HTTP request in seconds; `max_retries` is how often the SDK retries a 408, 409,
    429, 5xx, timeout or lost connection, with exponential backoff. A missing key is reported
    by the first call, as an `LLMRejected`, so callers handle it with every other model failure.
    Raises ValueError for a provider that is not a chat model (`builtin` included).
    """
    if provider == "anthropic":
        return AnthropicChatModel(
            model, api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
    if provider == "openai":
        return OpenAIChatModel(
            model, api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
    raise ValueError(f"no chat model provider {provider!r}: expected one of {', '.join(PROVIDERS)}")
