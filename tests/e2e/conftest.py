"""Fixtures of the end-to-end suites: whole clusters of real ``botmon serve`` processes.

A failing test gets the tail of every process's output appended to its report.
"""

from __future__ import annotations

import httpx
import pytest
import redis

from tests.conftest import scratch_database
from tests.e2e.cluster import Cluster
from tests.e2e.environment import BUDGET_SUBJECTS, cluster_env
from tests.e2e.receiver import Receiver


@pytest.fixture(scope="module")
def e2e_database(postgres_server_url):
    """A fresh PostgreSQL database for one module's cluster, dropped after it."""
    with scratch_database(postgres_server_url, "botmon_e2e") as url:
        yield url


@pytest.fixture(scope="module")
def e2e_redis(redis_server_url):
    """A Redis database emptied for one module's cluster."""
    url = f"{redis_server_url}/11"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, e2e_database, e2e_redis):
    """Two replicas of every gRPC service and two gateways on one PostgreSQL and one Redis."""
    running = Cluster(tmp_path_factory.mktemp("cluster"), store_url=e2e_database,
                      redis_url=e2e_redis, env=cluster_env(), extra_tokens=BUDGET_SUBJECTS)
    running.start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _process_logs_on_failure(request):
    """Let the report hook find the cluster this test used."""
    for name in ("cluster", "fault_cluster"):
        if name in request.fixturenames:
            request.node.botmon_cluster = request.getfixturevalue(name)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    running = getattr(item, "botmon_cluster", None)
    if running is not None and report.failed and report.when == "call":
        report.sections.append(("botmon processes (last lines)", running.tails()))


@pytest.fixture
async def http():
    """An HTTP client with a bounded wait on every request."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def receiver():
    """A started notification receiver; add paths to ``receiver.hang`` to make them hang."""
    async with Receiver() as running:
        yield running
