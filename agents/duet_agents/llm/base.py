"""One small interface over chat models: a conversation in, a validated pydantic object out.

Every provider answers through a tool call whose arguments are the schema's JSON, so the
answer is data to validate, never text to interpret. A provider returns a `Completion` or
raises one of the `LLMError` family; nothing else escapes it. Errors name the provider, the
model and what went wrong, never a credential.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

T = TypeVar("T", bound=BaseModel)

# Enough of a server's error text to say what went wrong, not enough to flood a condition.
MAX_ERROR_DETAIL = 300
# At most this many validation problems go back to the model in a repair round.
MAX_PROBLEMS = 12


class Message(BaseModel):
    """One turn of the conversation (the system prompt is passed on its own)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["user", "assistant"]
    content: str


class Usage(BaseModel):
    """Tokens one call (or a sum of calls) consumed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


@dataclass(frozen=True)
class Completion(Generic[T]):
    """A structured answer: the validated object, the JSON it came from, and what it cost."""

    value: T
    raw: str
    usage: Usage
    provider: str
    model: str


class ChatModel(Protocol):
    """A chat model that answers in the shape of a pydantic schema."""

    @property
    def provider(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def structured(
        self, *, system: str, messages: list[Message], schema: type[T], tool_name: str
    ) -> Completion[T]:
        """Ask for one answer shaped as `schema`, through a forced call of tool `tool_name`.

        Raises an `LLMError`: `LLMBadOutput` (with the raw text and the tokens spent) when the
        answer does not validate, `LLMTimeout`, `LLMRateLimited`, `LLMUnavailable` or
        `LLMRejected` after the provider's own retries.
        """
        ...

    async def aclose(self) -> None:
        """Release the HTTP connections (`contextlib.aclosing` calls it)."""
        ...


# -- errors ----------------------------------------------------------------------------------------


class LLMError(Exception):
    """A chat model gave no usable answer. `usage` is what the failed call still consumed."""

    kind = "error"

    def __init__(
        self, message: str, *, provider: str, model: str, usage: Usage | None = None
    ) -> None:
        super().__init__(f"{provider} model {model}: {message}")
        self.detail = message
        self.provider = provider
        self.model = model
        self.usage = usage or Usage()


# The subclasses are named for what happened (LLMTimeout, not LLMTimeoutError): they are read
# as `except LLMTimeout`, and the family name already says error.
class LLMTimeout(LLMError):  # noqa: N818
    """No answer within the timeout, after the retries."""

    kind = "timeout"


class LLMRateLimited(LLMError):  # noqa: N818
    """HTTP 429 after the retries."""

    kind = "rate limited"


class LLMUnavailable(LLMError):  # noqa: N818
    """The endpoint could not be reached or failed (5xx, connection refused, ...)."""

    kind = "unavailable"


class LLMRejected(LLMError):  # noqa: N818
    """The request was refused (401, 403, 404, 400...) or is not configured (no API key):
    retrying will not help until the configuration changes."""

    kind = "rejected"


class LLMBadOutput(LLMError):  # noqa: N818
    """The model answered, but not in the schema. `raw` is its answer, `problems` what is
    wrong with it: both go back to the model in a repair round."""

    kind = "bad output"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        raw: str,
        problems: list[str],
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message, provider=provider, model=model, usage=usage)
        self.raw = raw
        self.problems = problems


# -- helpers the providers share -------------------------------------------------------------------


def tool_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of the tool's arguments: the model's fields under their wire names,
    without the Kubernetes extensions our CRD schemas carry (`x-kubernetes-*`), which mean
    nothing to a model and which a strict server may refuse."""
    cleaned: dict[str, Any] = _without_extensions(
        schema.model_json_schema(by_alias=True, mode="validation")
    )
    return cleaned


def _without_extensions(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _without_extensions(value)
            for key, value in node.items()
            if not (isinstance(key, str) and key.startswith("x-kubernetes-"))
        }
    if isinstance(node, list):
        return [_without_extensions(item) for item in node]
    return node


def tool_description(schema: type[BaseModel]) -> str:
    doc = (schema.__doc__ or "").strip()
    first = doc.split("\n\n", 1)[0].replace("\n", " ")
    return first or f"Return the answer as the arguments of this tool ({schema.__name__})."


def parse_arguments(
    arguments: str | Mapping[str, Any],
    schema: type[T],
    *,
    provider: str,
    model: str,
    usage: Usage,
) -> Completion[T]:
    """Validate a tool call's arguments (JSON text or an already decoded object) as `schema`."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments, sort_keys=True)
    try:
        if isinstance(arguments, str):
            value = schema.model_validate_json(arguments)
        else:
            value = schema.model_validate(dict(arguments))
    except ValidationError as e:
        problems = validation_problems(e)
        raise LLMBadOutput(
            f"the answer does not match the schema: {problems[0]}",
            provider=provider,
            model=model,
            raw=raw,
            problems=problems,
            usage=usage,
        ) from None
    return Completion(value=value, raw=raw, usage=usage, provider=provider, model=model)


def json_in_text(text: str) -> str | None:
    """The JSON object in a text answer: the whole text, or its outermost `{...}` (servers that
    ignore tools tend to wrap it in prose or a Markdown fence)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return stripped
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else None


def validation_problems(error: ValidationError) -> list[str]:
    """Pydantic's errors as `path: message` lines, without the offending input (it can be huge,
    and it is the model's own text anyway)."""
    lines = []
    for item in error.errors(include_url=False, include_input=False)[:MAX_PROBLEMS]:
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{path}: {item['msg']}")
    return lines


def redact(text: str, secrets: list[str]) -> str:
    """`text` without any of `secrets` in it, shortened to MAX_ERROR_DETAIL characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > MAX_ERROR_DETAIL:
        text = text[: MAX_ERROR_DETAIL - 3] + "..."
    return text
