"""LLM probe: an OpenAI-compatible server's ``GET /v1/models``, plus the platform's request rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

from botmon.runtime.urls import redact_url
from services.health.probes.probe import ProbeError, elapsed_ms, url_port
from services.health.probes.result import HEALTHY, UNHEALTHY, LlmResult

__all__ = ["LlmProbe", "RequestRate"]

#: Returns the platform's requests per second and, when it could not be read, why.
RequestRate = Callable[[], Awaitable[tuple[float, str]]]


def models_url(base_url: str) -> str:
    """``<base>/v1/models``; a base that already ends in ``/v1`` (as OpenAI SDKs take it) works too."""
    base = base_url.rstrip("/")
    return f"{base}/models" if base.endswith("/v1") else f"{base}/v1/models"


class LlmProbe:
    """Lists the LLM server's models; the request rate comes from ``request_rate``."""

    result_type = LlmResult

    def __init__(self, base_url: str, *, timeout: float, request_rate: RequestRate,
                 api_key: str | None = None):
        self.url = models_url(base_url)
        #: The URL as reasons show it: no userinfo, no secret query parameter.
        self.shown_url = redact_url(self.url)
        self.timeout = timeout
        self.request_rate = request_rate
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.port = url_port(base_url, 443 if base_url.startswith("https") else 80)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), headers=self.headers)
        return self._session

    async def _models(self) -> tuple[list[str], float]:
        start = time.perf_counter()
        async with self._http().get(self.url) as response:
            if response.status != 200:
                raise ProbeError(f"GET {self.shown_url} answered HTTP {response.status}")
            try:
                body = await response.json(content_type=None)
            except ValueError:
                raise ProbeError(f"GET {self.shown_url} did not return JSON") from None
        latency = elapsed_ms(start)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ProbeError(f"GET {self.shown_url} returned no \"data\" list of models")
        return [str(m.get("id", "")) for m in data if isinstance(m, dict)], latency

    async def check(self) -> LlmResult:
        rate_task = asyncio.create_task(self.request_rate())
        try:
            models, latency = await self._models()
        except BaseException:
            rate_task.cancel()
            raise
        rate, rate_problem = await rate_task
        status, reasons = HEALTHY, []
        if not models:
            status = UNHEALTHY
            reasons.append("no model loaded")
        if rate_problem:
            reasons.append(rate_problem)
        return LlmResult(status=status, reason="; ".join(reasons), latency_ms=latency,
                         port=self.port, model_loaded=bool(models),
                         model=models[0] if models else "", requests_per_second=rate)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
