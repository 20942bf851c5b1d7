"""The export's reads of the logs service: every destination gets every entry, oldest
first, while the service serves each page about once for all of them."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from botmon.runtime.channels import Backends
from services.export.source import Source
from tests.harness import Suite

pytestmark = pytest.mark.timeout(60)


class CountingBackends(Backends):
    """The suite's stubs, counting the ReadLogsAfter calls made through them."""

    def __init__(self, settings):
        super().__init__(settings)
        self.reads = 0

    def stub(self, service: str):
        stub = super().stub(service)
        if service != "logs":
            return stub
        backends = self

        class Counted:
            async def ReadLogsAfter(self, request, **kwargs):
                backends.reads += 1
                return await stub.ReadLogsAfter(request, **kwargs)
        return Counted()


async def _store(suite, count: int, start: int = 0) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for first in range(start, start + count, 200):
            lines = [{"level": "info", "service": "svc", "message": f"m{i}",
                      "metadata": {"n": i, "big": 2**70}}
                     for i in range(first, min(first + 200, start + count))]
            reply = await http.post(f"{suite.base}/logs", json={"logs": lines},
                                    headers=suite.headers("operator"))
            assert reply.status_code in (200, 201, 202), reply.text


async def _read_all(source: Source, page: int, pause: float = 0.0) -> list[int]:
    """Every message number after position 0, read page by page like a destination."""
    position, seen = 0, []
    while True:
        records, high = await source.logs_after(position, page)
        if not records and position >= high:
            return seen
        seen += [r.metadata["n"] for r in records]
        position = records[-1].position if records else position
        await asyncio.sleep(pause)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'botmon.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def suite(make_settings, store_url):
    async with Suite(make_settings(store_url=store_url), components=("logs",)) as suite:
        yield suite


async def test_destinations_share_pages_and_each_gets_every_entry(suite):
    await _store(suite, 600)
    backends = CountingBackends(suite.settings)
    source = Source(backends, 5, fresh=1.0)
    try:
        results = await asyncio.gather(*(_read_all(source, 50, pause) for pause in
                                         (0, 0.001, 0.002)))
    finally:
        await backends.close()
    for seen in results:
        assert seen == list(range(600))
    # Twelve pages and the read that found no more, not once per destination.
    assert backends.reads <= 14
    # PostgreSQL gives the number back as an integer of more than 64 bits: read all the same.
    assert source.window.records[0].metadata["big"] == pytest.approx(2**70)


async def test_a_destination_behind_the_window_reads_its_own_pages(suite):
    await _store(suite, 400)
    backends = CountingBackends(suite.settings)
    source = Source(backends, 5, fresh=1.0, window=100)
    try:
        assert await _read_all(source, 50) == list(range(400))
        assert source.window.start >= 300  # only the newest entries are kept
        reads = backends.reads
        assert await _read_all(source, 50) == list(range(400))
        assert backends.reads > reads
    finally:
        await backends.close()


async def test_a_window_smaller_than_a_page_loses_no_entry(suite):
    """One destination keeps only its page: the window never trims the page just read."""
    await _store(suite, 120)
    backends = CountingBackends(suite.settings)
    source = Source(backends, 5, fresh=1.0, window=30)
    try:
        assert await _read_all(source, 50) == list(range(120))
    finally:
        await backends.close()


async def test_extending_the_window_keeps_what_its_reader_has_not_had(suite):
    """A destination inside the window, with less than a page after it, extends the window;
    the entries between it and the window's end must survive the trim to the window's size."""
    await _store(suite, 80)
    backends = CountingBackends(suite.settings)
    source = Source(backends, 5, fresh=0.0, window=50)
    try:
        first, _ = await source.logs_after(0, 50)
        assert [r.metadata["n"] for r in first] == list(range(50))
        middle = first[24].position
        rest, _ = await source.logs_after(middle, 50)
        assert [r.metadata["n"] for r in rest] == list(range(25, 75))
    finally:
        await backends.close()


async def test_entries_stored_later_are_read_once_the_window_is_no_longer_fresh(suite):
    await _store(suite, 10)
    backends = CountingBackends(suite.settings)
    source = Source(backends, 5, fresh=30.0)
    try:
        records, high = await source.logs_after(0, 100)
        assert [r.metadata["n"] for r in records] == list(range(10))
        await _store(suite, 5, start=10)
        reads = backends.reads
        again, _ = await source.logs_after(high, 100)
        assert again == [] and backends.reads == reads  # fresh: answered from the window
        source.fresh = 0.0
        later, newest = await source.logs_after(high, 100)
        assert [r.metadata["n"] for r in later] == list(range(10, 15))
        assert newest == later[-1].position
    finally:
        await backends.close()
