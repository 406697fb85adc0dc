"""The Anthropic and OpenAI chat models through their real SDKs, against scripted servers on
loopback: what goes over the wire, what comes back, retries, timeouts and errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from duet_agents.llm.base import (
    ChatModel,
    LLMBadOutput,
    LLMRateLimited,
    LLMRejected,
    LLMTimeout,
    LLMUnavailable,
    Message,
    Usage,
    tool_schema,
)
from duet_agents.llm.factory import chat_model
from tests.support.llm_servers import (
    RETRY_NOW,
    Received,
    Scripted,
    ScriptedLLMServer,
    anthropic_error,
    anthropic_text,
    anthropic_tool_use,
    openai_content,
    openai_error,
    openai_tool_call,
)

pytestmark = pytest.mark.anyio

KEY = "sk-test-0123456789abcdef"
TOOL = "size_it"


class Sizing(BaseModel):
    """How many shards, and why."""

    model_config = ConfigDict(extra="forbid")

    shards: int = Field(ge=1, le=8)
    note: str


GOOD = {"shards": 3, "note": "6Ti at 2Ti per shard"}


def _bearer(received: Received) -> str | None:
    value = received.headers.get("authorization", "")
    return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None


@dataclass(frozen=True)
class Wire:
    """One provider's wire format, so each behaviour is tested on both."""

    provider: str
    model: str
    path: str
    base_url: Callable[[ScriptedLLMServer], str]
    tool_call: Callable[..., dict[str, Any]]
    text: Callable[..., dict[str, Any]]
    error: Callable[[str], dict[str, Any]]
    key_sent: Callable[[Received], str | None]
    env: tuple[str, str]  # the base URL and key variables its SDK reads


ANTHROPIC = Wire(
    provider="anthropic",
    model="claude-sonnet-5-5",
    path="/v1/messages",
    base_url=lambda server: server.url,
    tool_call=lambda args, i=0, o=0: anthropic_tool_use(
        TOOL, args, input_tokens=i, output_tokens=o
    ),
    text=lambda text, i=0, o=0: anthropic_text(text, input_tokens=i, output_tokens=o),
    error=lambda message: anthropic_error("api_error", message),
    # Older SDKs send x-api-key; 2.x sends the key as a bearer token.
    key_sent=lambda received: received.headers.get("x-api-key") or _bearer(received),
    env=("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
)
OPENAI = Wire(
    provider="openai",
    model="gpt-4.1-mini",
    path="/v1/chat/completions",
    base_url=lambda server: server.openai_url,
    tool_call=lambda args, i=0, o=0: openai_tool_call(
        TOOL, args, prompt_tokens=i, completion_tokens=o
    ),
    text=lambda text, i=0, o=0: openai_content(text, prompt_tokens=i, completion_tokens=o),
    error=openai_error,
    key_sent=_bearer,
    env=("OPENAI_BASE_URL", "OPENAI_API_KEY"),
)
WIRES = pytest.mark.parametrize("wire", [ANTHROPIC, OPENAI], ids=lambda w: w.provider)


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test sets: no keys, base URLs or profiles from the machine."""
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_CONFIG_DIR",
        "ANTHROPIC_IDENTITY_TOKEN",
        "ANTHROPIC_IDENTITY_TOKEN_FILE",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ADMIN_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no credential profiles on disk either
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))


async def ask(model: ChatModel, content: str = "6Ti of clickstream") -> Any:
    async with contextlib.aclosing(model):
        return await model.structured(
            system="You size clusters.",
            messages=[Message(role="user", content=content)],
            schema=Sizing,
            tool_name=TOOL,
        )


def connect(wire: Wire, server: ScriptedLLMServer, **options: Any) -> ChatModel:
    options.setdefault("api_key", KEY)
    return chat_model(wire.provider, wire.model, base_url=wire.base_url(server), **options)


@WIRES
async def test_a_forced_tool_call_is_parsed_with_its_usage(wire: Wire) -> None:
    async with ScriptedLLMServer([Scripted(wire.tool_call(GOOD, 1200, 80))]) as server:
        answer = await ask(connect(wire, server))

    assert answer.value == Sizing(**GOOD)
    assert answer.usage == Usage(input_tokens=1200, output_tokens=80)
    assert (answer.provider, answer.model) == (wire.provider, wire.model)
    [sent] = server.received
    assert sent.path == wire.path
    assert sent.body["model"] == wire.model
    assert wire.key_sent(sent) == KEY


async def test_anthropic_sends_one_tool_with_the_schema_and_forces_it() -> None:
    async with ScriptedLLMServer([Scripted(ANTHROPIC.tool_call(GOOD))]) as server:
        await ask(connect(ANTHROPIC, server), "the description")

    body = server.received[0].body
    [tool] = body["tools"]
    assert tool["name"] == TOOL
    assert tool["input_schema"] == tool_schema(Sizing)
    assert tool["description"] == "How many shards, and why."
    assert body["tool_choice"] == {"type": "tool", "name": TOOL}
    assert body["system"] == "You size clusters."
    assert body["messages"] == [{"role": "user", "content": "the description"}]
    assert body["max_tokens"] > 0


async def test_openai_sends_one_function_tool_and_forces_it() -> None:
    async with ScriptedLLMServer([Scripted(OPENAI.tool_call(GOOD))]) as server:
        await ask(connect(OPENAI, server), "the description")

    body = server.received[0].body
    [tool] = body["tools"]
    assert tool["type"] == "function"
    assert tool["function"]["name"] == TOOL
    assert tool["function"]["parameters"] == tool_schema(Sizing)
    assert body["tool_choice"] == {"type": "function", "function": {"name": TOOL}}
    assert body["messages"] == [
        {"role": "system", "content": "You size clusters."},
        {"role": "user", "content": "the description"},
    ]


async def test_openai_takes_the_json_from_the_content_when_the_server_ignores_tools() -> None:
    fenced = "Here you go:\n```json\n" + '{"shards": 2, "note": "fits"}' + "\n```"
    async with ScriptedLLMServer([Scripted(openai_content(fenced, prompt_tokens=5))]) as server:
        answer = await ask(connect(OPENAI, server))

    assert answer.value == Sizing(shards=2, note="fits")
    assert answer.usage.input_tokens == 5


@WIRES
async def test_a_429_is_retried_by_the_sdk(wire: Wire) -> None:
    script = [
        Scripted(wire.error("slow down"), status=429, headers=RETRY_NOW),
        Scripted(wire.tool_call(GOOD)),
    ]
    async with ScriptedLLMServer(script) as server:
        answer = await ask(connect(wire, server, max_retries=2))

    assert answer.value.shards == 3
    assert len(server.received) == 2


@WIRES
async def test_429_after_every_retry_is_rate_limited(wire: Wire) -> None:
    script = [Scripted(wire.error("slow down"), status=429, headers=RETRY_NOW)] * 2
    async with ScriptedLLMServer(script) as server:
        with pytest.raises(LLMRateLimited, match="HTTP 429"):
            await ask(connect(wire, server, max_retries=1))
    assert len(server.received) == 2


@WIRES
async def test_500s_after_every_retry_are_unavailable(wire: Wire) -> None:
    script = [Scripted(wire.error("overloaded"), status=500, headers=RETRY_NOW)] * 3
    async with ScriptedLLMServer(script) as server:
        with pytest.raises(LLMUnavailable, match="HTTP 500: overloaded"):
            await ask(connect(wire, server, max_retries=2))
    assert len(server.received) == 3


@WIRES
async def test_a_slow_answer_times_out_after_the_retries(wire: Wire) -> None:
    script = [Scripted(wire.tool_call(GOOD), delay=5.0)] * 2
    async with ScriptedLLMServer(script) as server:
        with pytest.raises(LLMTimeout) as caught:
            await ask(connect(wire, server, timeout=0.2, max_retries=1))
    assert len(server.received) == 2  # the SDK retried the timed-out request once
    assert caught.value.provider == wire.provider


async def test_a_refused_connection_is_unavailable() -> None:
    async with ScriptedLLMServer([]) as server:
        url = server.openai_url
    model = chat_model("openai", "m", api_key=KEY, base_url=url, max_retries=0)
    with pytest.raises(LLMUnavailable, match="cannot connect"):
        await ask(model)


@WIRES
async def test_text_instead_of_the_tool_is_bad_output_with_its_tokens(wire: Wire) -> None:
    script = [Scripted(wire.text("I think three shards.", 100, 7))]
    async with ScriptedLLMServer(script) as server:
        with pytest.raises(LLMBadOutput) as caught:
            await ask(connect(wire, server))

    assert caught.value.raw == "I think three shards."
    assert caught.value.usage == Usage(input_tokens=100, output_tokens=7)
    assert TOOL in caught.value.problems[0]


@WIRES
async def test_arguments_outside_the_schema_are_bad_output(wire: Wire) -> None:
    answer = {"shards": 500, "note": "more", "command": "rm -rf /"}
    async with ScriptedLLMServer([Scripted(wire.tool_call(answer, 10, 20))]) as server:
        with pytest.raises(LLMBadOutput) as caught:
            await ask(connect(wire, server))

    problems = caught.value.problems
    assert any(p.startswith("shards: ") for p in problems), problems
    assert any(p.startswith("command: ") for p in problems), problems
    assert '"command"' in caught.value.raw
    assert caught.value.usage.total_tokens == 30


async def test_arguments_that_are_not_json_are_bad_output_with_the_raw_text() -> None:
    broken = '{"shards": 3, "note": "unterminated'
    async with ScriptedLLMServer([Scripted(openai_tool_call(TOOL, broken))]) as server:
        with pytest.raises(LLMBadOutput) as caught:
            await ask(connect(OPENAI, server))
    assert caught.value.raw == broken


@WIRES
async def test_base_url_and_key_come_from_the_environment_as_the_sdks_read_them(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ScriptedLLMServer([Scripted(wire.tool_call(GOOD))]) as server:
        url_var, key_var = wire.env
        monkeypatch.setenv(url_var, wire.base_url(server))
        monkeypatch.setenv(key_var, "sk-from-env")
        answer = await ask(chat_model(wire.provider, wire.model))

    assert answer.value.shards == 3
    assert wire.key_sent(server.received[0]) == "sk-from-env"


@WIRES
async def test_no_key_anywhere_is_rejected_before_any_request(wire: Wire) -> None:
    async with ScriptedLLMServer([Scripted(wire.tool_call(GOOD))]) as server:
        model = chat_model(wire.provider, wire.model, base_url=wire.base_url(server))
        with pytest.raises(LLMRejected, match=wire.env[1]):
            await ask(model)
    assert server.received == []


@WIRES
async def test_the_key_is_in_no_error_and_no_repr(wire: Wire) -> None:
    echo = wire.error(f"invalid x-api-key {KEY}")
    async with ScriptedLLMServer([Scripted(echo, status=401)]) as server:
        model = connect(wire, server)
        with pytest.raises(LLMRejected) as caught:
            await ask(model)

    assert "HTTP 401" in str(caught.value)
    for text in (str(caught.value), repr(caught.value), caught.value.detail, repr(model)):
        assert KEY not in text
    assert wire.model in repr(model)


def test_builtin_is_not_a_chat_model() -> None:
    with pytest.raises(ValueError, match="builtin"):
        chat_model("builtin", "none")
