"""`GET /v1/memory/patterns`: what the memory has learnt, for the query server to mount.

    app.include_router(memory_router(lambda: store))

The store is looked up per request, so the server may open it lazily (or reopen it); the
endpoints are plain `def`s, which FastAPI runs in its thread pool, as the store is blocking.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from duet_agents.memory.patterns import PatternDetail, PatternList
from duet_agents.memory.store import MemoryStore


def memory_router(store: Callable[[], MemoryStore]) -> APIRouter:
    router = APIRouter(prefix="/v1/memory", tags=["memory"])

    @router.get("/patterns", response_model=PatternList)
    def list_patterns() -> PatternList:
        """Every pattern (a symptom, a component, a remedy) with how often it verified."""
        return PatternList(patterns=store().patterns())

    @router.get(
        "/patterns/{symptom}/{component}/{action}",
        response_model=PatternDetail,
        responses={404: {"description": "No such pattern is recorded."}},
    )
    def show_pattern(symptom: str, component: str, action: str) -> PatternDetail | JSONResponse:
        """One pattern with the remediations behind it: sizes, results, platforms' figures."""
        pattern = f"{symptom}/{component}/{action}"
        try:
            detail = store().pattern(pattern)
        except ValueError as e:
            return _error(404, "not_found", str(e))
        if detail is None:
            return _error(404, "not_found", f"no pattern {pattern} is recorded")
        return detail

    return router


def _error(status: int, code: str, message: str) -> JSONResponse:
    # The query server's error shape.
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
