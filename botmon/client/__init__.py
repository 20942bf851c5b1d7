"""botmon's Python SDK for applications that report to the suite."""

from botmon.client.events import EventRecorder, RecorderStats
from botmon.client.heartbeat import Heartbeat
from botmon.client.logging_handler import BotmonLogHandler

__all__ = ["BotmonLogHandler", "EventRecorder", "Heartbeat", "RecorderStats"]
