"""Scripted model servers on loopback that speak the real wire formats, so tests drive the real
Anthropic and OpenAI SDKs (their HTTP, retries, timeouts and parsing) with no network.

One server answers both `POST /v1/messages` (Anthropic Messages) and
`POST /v1/chat/completions` (OpenAI chat completions) from a queue of `Scripted` replies, and
records every request it received. Builders below write the bodies each API returns.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Scripted:
    """One reply: status, JSON body, headers, and how long to wait before sending it."""

    body: Mapping[str, Any]
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request the server got: its path, headers (lower-cased names) and JSON body."""

    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]


class ScriptedLLMServer:
    """`async with ScriptedLLMServer([...]) as server:` then point an SDK at `server.url`
    (Anthropic) or `server.openai_url` (OpenAI, whose base URL carries the `/v1`)."""

    def __init__(self, script: Iterable[Scripted]) -> None:
        self._script = deque(script)
        self.received: list[Received] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    async def __aenter__(self) -> ScriptedLLMServer:
        app = web.Application()
        app.router.add_post("/v1/messages", self._answer)
        app.router.add_post("/v1/chat/completions", self._answer)
        # A client that timed out hangs up; cancelling its handler lets the server stop at once.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def extend(self, replies: Iterable[Scripted]) -> None:
        self._script.extend(replies)

    async def _answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.received.append(Received(request.path, headers, body))
        if not self._script:
            return web.json_response(
                openai_error("the script has no more replies"),
                status=500,
                headers={"x-should-retry": "false"},
            )
        reply = self._script.popleft()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.json_response(dict(reply.body), status=reply.status, headers=reply.headers)


# Retry quickly: the SDKs honour retry-after-ms, so retry tests need not wait out the backoff.
RETRY_NOW = {"retry-after-ms": "10"}


# -- Anthropic Messages ----------------------------------------------------------------------------


def anthropic_tool_use(
    tool_name: str, arguments: Mapping[str, Any], *, input_tokens: int = 0, output_tokens: int = 0
) -> dict[str, Any]:
    return _anthropic_message(
        [{"type": "tool_use", "id": "toolu_01", "name": tool_name, "input": dict(arguments)}],
        stop_reason="tool_use",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


def anthropic_text(text: str, *, input_tokens: int = 0, output_tokens: int = 0) -> dict[str, Any]:
    return _anthropic_message(
        [{"type": "text", "text": text}],
        stop_reason="end_turn",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


def anthropic_error(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _anthropic_message(
    content: list[dict[str, Any]], *, stop_reason: str, input_tokens: int, output_tokens: int
) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "scripted",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


# -- OpenAI chat completions -----------------------------------------------------------------------


def openai_tool_call(
    tool_name: str,
    arguments: Mapping[str, Any] | str,
    *,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    call = {"id": "call_01", "type": "function", "function": {"name": tool_name, "arguments": text}}
    return _openai_completion(
        {"role": "assistant", "content": None, "tool_calls": [call]},
        finish_reason="tool_calls",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def openai_content(
    text: str, *, prompt_tokens: int = 0, completion_tokens: int = 0
) -> dict[str, Any]:
    return _openai_completion(
        {"role": "assistant", "content": text},
        finish_reason="stop",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def openai_error(message: str, error_type: str = "server_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


def _openai_completion(
    message: dict[str, Any], *, finish_reason: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-01",
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": message}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class BackgroundLLMServer:
    """A `ScriptedLLMServer` on a thread of its own, for synchronous tests whose client is
    another process (the operator under test): `with BackgroundLLMServer([...]) as server:`."""

    def __init__(self, script: Iterable[Scripted]) -> None:
        self.server = ScriptedLLMServer(script)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def openai_url(self) -> str:
        return self.server.openai_url

    @property
    def received(self) -> list[Received]:
        return list(self.server.received)

    def add(self, *replies: Scripted) -> None:
        """More replies, after those not sent yet: for a test whose first calls should fail
        (an empty script answers each with a 500) and a later one succeed."""
        self._loop.call_soon_threadsafe(self.server.extend, replies)

    def __enter__(self) -> BackgroundLLMServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        stopping = self.server.__aexit__(None, None, None)
        asyncio.run_coroutine_threadsafe(stopping, self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
