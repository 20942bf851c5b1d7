"""BotmonLogHandler against the real service, a dead address, and grpc_testing's channel."""

from __future__ import annotations

import asyncio
import logging
import sys
import textwrap
import threading

import grpc
import grpc_testing
import pytest

from botmon.client import BotmonLogHandler
from botmon.logs.v1 import log_entry_pb2, logs_service_pb2
from tests.conftest import api_token, free_port


@pytest.fixture
def store_url(tmp_path) -> str:
    """The handler does not depend on the store: SQLite only."""
    return f"sqlite:///{tmp_path / 'botmon.db'}"


def _logger(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


async def test_records_arrive_structured(logs):
    handler = BotmonLogHandler(f"127.0.0.1:{logs.server.port}", "shop", flush_interval=0.05,
                               token=api_token(logs.server.settings))
    log = _logger(handler, "shop.orders")
    try:
        log.info("order %s placed", 42, extra={"order_id": 42, "user": {"id": "u1"},
                                               "tags": ("a", "b"), "obj": object()})
        log.warning("stock low")
        log.debug("details")
        try:
            raise ValueError("card declined")
        except ValueError:
            log.exception("payment failed")
        log.critical("down", extra={"error_type": "outage"})
        assert await asyncio.to_thread(handler.flush)
    finally:
        await asyncio.to_thread(handler.close)
    assert (handler.sent, handler.dropped, handler.rejected) == (5, 0, 0)
    page = await logs.list(order="asc")
    assert [(e.level, e.message) for e in page.logs] == [
        ("info", "order 42 placed"), ("warn", "stock low"), ("debug", "details"),
        ("error", "payment failed"), ("error", "down")]
    placed, _, _, failed, down = page.logs
    assert placed.service == "shop"
    assert placed.metadata["logger"] == "shop.orders"
    assert placed.metadata["order_id"] == 42
    assert placed.metadata["user"]["id"] == "u1"
    assert list(placed.metadata["tags"]) == ["a", "b"]
    assert placed.metadata["obj"].startswith("<object object")
    assert placed.metadata["function"] == "test_records_arrive_structured"
    exception = failed.metadata["exception"]
    assert exception["type"] == "ValueError" and exception["message"] == "card declined"
    assert "raise ValueError" in exception["traceback"]
    assert failed.metadata["error_type"] == "ValueError"
    assert down.metadata["error_type"] == "outage"


async def test_without_a_token_batches_are_refused_and_counted(logs):
    handler = BotmonLogHandler(f"127.0.0.1:{logs.server.port}", "shop", flush_interval=0.05)
    log = _logger(handler, "shop.anonymous")
    try:
        log.info("who am I")
        await asyncio.to_thread(handler.flush, 5)
    finally:
        await asyncio.to_thread(handler.close)
    assert (handler.sent, handler.dropped, handler.failed_batches) == (0, 1, 1)
    assert handler.last_error == "UNAUTHENTICATED"
    assert (await logs.list(service="shop")).total == 0


async def test_a_dead_service_never_blocks_or_raises_and_drops_are_counted():
    handler = BotmonLogHandler(f"127.0.0.1:{free_port()}", "app", flush_interval=0.05,
                               timeout=1.0, close_timeout=2.0)
    log = _logger(handler, "app.dead")
    try:
        for i in range(100):
            log.error("cannot ship %d", i)  # the application simply carries on
        assert await asyncio.to_thread(handler.flush)
        assert (handler.sent, handler.dropped) == (0, 100)
        assert handler.failed_batches >= 1 and handler.last_error == "UNAVAILABLE"
    finally:
        await asyncio.to_thread(handler.close)
    log.error("after close")  # still harmless


async def test_a_full_buffer_drops_the_oldest_and_counts_them():
    handler = BotmonLogHandler(f"127.0.0.1:{free_port()}", "app", buffer_size=10,
                               flush_interval=60, timeout=0.5, close_timeout=1.0)
    log = _logger(handler, "app.full")
    for i in range(50):
        log.info("m%d", i)
    assert handler.dropped == 40
    await asyncio.to_thread(handler.close)
    assert handler.dropped == 50 and handler.sent == 0


async def test_buffered_records_are_sent_when_the_program_exits(logs):
    script = textwrap.dedent(f"""
        import logging
        from botmon.client import BotmonLogHandler
        handler = BotmonLogHandler("127.0.0.1:{logs.server.port}", "batchjob",
                                   flush_interval=60,
                                   token="{api_token(logs.server.settings)}")
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        for i in range(250):
            logging.info("line %d", i)
        # no close(): logging.shutdown() at exit must flush
    """)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    assert await asyncio.wait_for(process.wait(), 60) == 0
    page = await logs.list(service="batchjob", limit=1)
    assert page.total == 250


SERVICE = logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"]


def test_requests_and_replies_through_grpc_testing():
    channel = grpc_testing.channel([SERVICE], grpc_testing.strict_real_time())
    handler = BotmonLogHandler("unused", "svc", channel=channel, batch_size=3,
                               flush_interval=60, close_timeout=5)
    log = _logger(handler, "svc.testing")
    for message in ("one", "two", "three"):
        log.info(message)
    _, request, rpc = channel.take_unary_unary(SERVICE.methods_by_name["WriteLogs"])
    assert [(e.level, e.service, e.message) for e in request.logs] == [
        ("info", "svc", "one"), ("info", "svc", "two"), ("info", "svc", "three")]
    assert request.logs[0].timestamp.seconds > 0
    rpc.terminate(logs_service_pb2.WriteLogsResponse(
        accepted=2, errors=[log_entry_pb2.EntryError(index=1, message="no")]),
        (), grpc.StatusCode.OK, "")
    for message in ("four", "five", "six"):
        log.warning(message)
    _, request, rpc = channel.take_unary_unary(SERVICE.methods_by_name["WriteLogs"])
    assert [e.level for e in request.logs] == ["warn"] * 3
    rpc.terminate(logs_service_pb2.WriteLogsResponse(), (), grpc.StatusCode.UNAVAILABLE, "down")
    done = threading.Thread(target=handler.close)
    done.start()
    done.join(10)
    assert (handler.sent, handler.rejected, handler.dropped) == (2, 1, 3)
    assert handler.last_error == "UNAVAILABLE"
