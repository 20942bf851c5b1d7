"""botmon's Python SDK for applications that report to the suite."""

from botmon.client.events import EventRecorder, RecorderStats

__all__ = ["EventRecorder", "RecorderStats"]
