"""The destinations: one module per vendor, each with ``Settings`` and ``create(settings)``.

A module's ``Settings`` is a frozen :class:`~botmon.runtime.config.EnvSettings`
whose ``enabled`` property is true once the destination is configured;
``create(settings)`` returns its :class:`~services.export.sinks.base.Sink`.
A destination module that is not installed is simply not offered.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType

from botmon.runtime.config import EnvSettings
from services.export.sinks.base import Sink

__all__ = ["DESTINATIONS", "configured", "modules", "settings_classes"]

#: Destination names, in the order the status list shows them.
DESTINATIONS = ("otlp", "newrelic", "datadog", "cloudwatch", "elasticsearch")


def modules() -> dict[str, ModuleType]:
    """Name -> module of every destination present in this build."""
    found = {}
    for name in DESTINATIONS:
        module_name = f"{__name__}.{name}"
        try:
            found[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
    return found


def settings_classes() -> list[type[EnvSettings]]:
    return [module.Settings for module in modules().values()]


def configured(environ: Mapping[str, str] | None = None,
               overrides: Mapping[str, EnvSettings] | None = None
               ) -> list[tuple[EnvSettings, Sink]]:
    """(settings, sink) of every configured destination; a bad setting raises ConfigError.

    ``overrides`` gives a destination's settings directly (tests), instead of the environment.
    """
    sinks = []
    for name, module in modules().items():
        settings = (overrides or {}).get(name) or module.Settings.from_env(environ)
        if settings.enabled:
            sinks.append((settings, module.create(settings)))
    return sinks
