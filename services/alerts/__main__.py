"""The alerts service: wiring only."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from botmon.alerts.v1 import alerts_service_pb2, alerts_service_pb2_grpc
from botmon.runtime.backoff import Backoff
from botmon.runtime.config import Settings
from botmon.runtime.main import run_service
from botmon.runtime.sealing import Sealer, secret_keys
from botmon.runtime.server import Binding, GrpcServer
from botmon.runtime.store import StoreLocation
from services.alerts.audit import AuditRelay
from services.alerts.config import AlertsSettings
from services.alerts.dispatcher import Dispatcher
from services.alerts.engine import Engine
from services.alerts.leader import LocalLeadership, PostgresLeadership, RedisLeadership
from services.alerts.lifecycle import Evaluator
from services.alerts.metrics_source import MetricsSource
from services.alerts.notifiers import Notifiers
from services.alerts.notifiers.email import Smtp
from services.alerts.notifiers.text import Context
from services.alerts.retention import Pruner
from services.alerts.servicer import AlertsServicer
from services.alerts.store import AlertsStore

SERVICE_NAME = alerts_service_pb2.DESCRIPTOR.services_by_name["AlertsService"].full_name


@dataclass
class AlertsServer(GrpcServer):
    """The gRPC server plus the evaluation engine and the audit relay, which start once it serves."""

    engine: Engine | None = None
    audit: AuditRelay | None = None
    _audit_task: asyncio.Task | None = field(default=None, init=False)

    async def start(self) -> int:
        port = await super().start()
        if self.engine is not None:
            await self.engine.start()
        if self.audit is not None:
            self._audit_task = asyncio.create_task(self.audit.run(), name="alerts-audit-relay")
        return port

    async def stop_audit(self) -> None:
        if self._audit_task is not None:
            self._audit_task.cancel()
            await asyncio.gather(self._audit_task, return_exceptions=True)
            self._audit_task = None


def _leadership(settings: Settings, extra: AlertsSettings):
    if StoreLocation.parse(settings.store_url).kind == "postgresql":
        return PostgresLeadership(settings.store_url, settings.grpc_deadline)
    if settings.redis_url:
        # 1.5 intervals: a busy leader gets several renewals per lease, and a dead one's lease
        # still lapses (plus one renewal period) within the promised two intervals.
        return RedisLeadership(settings.redis_url, settings.store_url,
                               ttl=1.5 * settings.alert_eval_interval,
                               timeout=settings.grpc_deadline)
    return LocalLeadership()


async def create_server(settings: Settings, *, address: str | None = None,
                        alerts_settings: AlertsSettings | None = None) -> GrpcServer:
    """Build the alerts service's server (not started); the engine starts with it."""
    extra = alerts_settings or AlertsSettings.from_env()
    store = await AlertsStore.open(settings.store_url, settings.grpc_deadline,
                                   Sealer(secret_keys(settings)))
    smtp = Smtp(settings.smtp_host, settings.smtp_port, user=settings.smtp_user,
                password=settings.smtp_password, starttls=settings.smtp_starttls,
                sender=settings.smtp_from,
                allow_plaintext_auth=settings.smtp_allow_plaintext_auth,
                ca_file=str(extra.smtp_ca_file) if extra.smtp_ca_file else None,
                ) if settings.smtp_host else None
    notifiers = Notifiers(
        context=Context((extra.external_url or f"http://{settings.http_addr}").rstrip("/")),
        timeout=extra.notify_timeout, smtp=smtp, pagerduty_url=settings.pagerduty_url,
        sms_gateway_url=settings.sms_gateway_url, destinations=extra.webhook_allow)
    server = AlertsServer("alerts", settings, [], address=address, extra_settings=(extra,))
    source = MetricsSource(server.backends)
    evaluator = Evaluator(group_wait=extra.group_wait, unreachable_grace=extra.unreachable_grace)
    dispatcher = Dispatcher(store, notifiers, attempts=extra.notify_attempts,
                            backoff=Backoff(extra.retry_initial, extra.retry_max),
                            poll=extra.dispatch_poll, on_unnotified=evaluator.unnotified)
    pruner = Pruner(store, retention_days=extra.history_retention,
                    period=settings.alert_eval_interval)
    engine = Engine(store, source, dispatcher, _leadership(settings, extra), evaluator,
                    interval=settings.alert_eval_interval, pruner=pruner,
                    metrics_timeout=min(settings.grpc_deadline,
                                        max(settings.alert_eval_interval, 1.0)),
                    install_defaults=extra.default_rules)
    audit = AuditRelay(store, server.backends.stub("logs").WriteLogs,
                       deadline=settings.grpc_deadline, clock=time.time)
    servicer = AlertsServicer(store, source, notifiers, smtp_configured=smtp is not None,
                              sms_configured=bool(settings.sms_gateway_url),
                              wake=dispatcher.wake, audited=audit.wake)
    server.bindings = [Binding(SERVICE_NAME, servicer,
                               alerts_service_pb2_grpc.add_AlertsServiceServicer_to_server)]
    server.engine = engine
    server.audit = audit
    server.details = engine.status

    async def close() -> None:
        await server.stop_audit()
        await engine.stop()
        await notifiers.close()
        await store.close()

    server.on_stop.append(close)
    return server


if __name__ == "__main__":
    run_service("alerts", create_server)
