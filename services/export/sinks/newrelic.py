"""New Relic: OTLP over HTTP (protobuf, gzip) to the region's endpoint, with the licence key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from botmon.runtime.config import EnvSettings, one_of, setting, url
from services.export.sinks.otlp import OtlpSink
from services.export.sinks.otlp_encoder import Encoder
from services.export.sinks.otlp_transport import HttpTransport

__all__ = ["ENDPOINTS", "NewRelicSink", "Settings", "create"]

#: Region -> New Relic's OTLP endpoint.
ENDPOINTS = {"us": "https://otlp.nr-data.net", "eu": "https://otlp.eu01.nr-data.net"}
#: New Relic refuses OTLP payloads above 1 MB (before compression).
MAX_PAYLOAD = 1_000_000


@dataclass(frozen=True)
class Settings(EnvSettings):
    """Where and with which licence key New Relic receives botmon's data."""

    license_key: str | None = setting("BOTMON_NEWRELIC_LICENSE_KEY", None, secret=True,
                                      doc="New Relic licence (ingest) key; turns New Relic on")
    region: str = setting("BOTMON_NEWRELIC_REGION", "us", one_of(*ENDPOINTS),
                          doc="us or eu: picks New Relic's OTLP endpoint")
    endpoint: str | None = setting("BOTMON_NEWRELIC_ENDPOINT", None, url("http", "https"),
                                   doc="OTLP base URL overriding the region's")
    timeout: float = 10.0

    @property
    def enabled(self) -> bool:
        return bool(self.license_key)


class NewRelicSink(OtlpSink):
    name: ClassVar[str] = "newrelic"
    max_records: ClassVar[int] = 2000
    max_bytes: ClassVar[int] = MAX_PAYLOAD // 2


def create(settings: Settings) -> NewRelicSink:
    transport = HttpTransport.from_base(
        settings.endpoint or ENDPOINTS[settings.region], ("logs", "metrics"),
        (("api-key", settings.license_key or ""),), settings.timeout, compress=True)
    return NewRelicSink(Encoder("botmon", {}), {"logs": transport, "metrics": transport})
