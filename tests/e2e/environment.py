"""The environment every e2e cluster shares: short intervals, rate limits, tokens, receivers."""

from __future__ import annotations

__all__ = ["BUDGET_SUBJECTS", "cluster_env"]

#: Limits high enough for polling tests; ``default`` stays small for the budget tests,
#: which use subjects of their own (the class is keyed by user).
RATE_LIMITS = ("metrics=100000/minute,logs=100000/minute,alerts=100000/minute,"
               "ingest=100000/minute,default=20/minute")
#: Viewer tokens with their own subjects, one per budget test.
BUDGET_SUBJECTS = {"budget-shared": "viewer", "budget-concurrent": "viewer",
                   "budget-outage": "viewer"}
ALERTS_ENV = {
    "BOTMON_ALERT_DEFAULT_RULES": "false",
    "BOTMON_ALERT_NOTIFY_TIMEOUT": "2",
    "BOTMON_ALERT_RETRY_INITIAL": "0.2",
    "BOTMON_ALERT_RETRY_MAX": "1",
    "BOTMON_ALERT_DISPATCH_POLL": "0.2",
    # The test receivers listen on loopback, which rules may not notify by default.
    "BOTMON_WEBHOOK_ALLOW": "127.0.0.1",
}


def cluster_env(**extra: str) -> dict[str, str]:
    """Environment of an e2e cluster, plus ``extra``."""
    return {"BOTMON_RATE_LIMITS": RATE_LIMITS, **ALERTS_ENV, **extra}
