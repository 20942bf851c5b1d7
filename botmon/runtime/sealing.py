"""Secrets at rest: sealed with the Fernet keys of ``BOTMON_SECRET_KEY``, newest first.

A sealed value is ``sealed:<Fernet token>``; anything else is a plaintext
written before sealing existed, which the store re-seals on start. Several
keys rotate: values are sealed with the first and opened with any, and
:meth:`Sealer.current` says whether a value is already sealed with the first.
Without ``BOTMON_SECRET_KEY`` the key is read from (or created in) the data dir
with mode 0600, as the admin token is, and where it is gets printed once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from botmon.runtime.config import ConfigError, Settings, parse_fernet_keys
from botmon.runtime.datadir import private_dir

__all__ = ["KEY_FILE", "PREFIX", "SealError", "Sealer", "secret_keys"]

PREFIX = "sealed:"
KEY_FILE = "secret-key"
VARIABLE = "BOTMON_SECRET_KEY"


class SealError(ConfigError):
    """A sealed value that none of the configured keys opens."""


class Sealer:
    """Seals and opens secret strings; the empty string stays empty (no secret)."""

    def __init__(self, keys: Sequence[str]):
        if not keys:
            raise ValueError("at least one key is needed")
        self._newest = Fernet(keys[0])
        self._any = MultiFernet([Fernet(k) for k in keys])
        # Alert rows repeat their rule's secret, and a cycle may write thousands: each value
        # is encrypted once per process (the same token then reveals only that two rows
        # share a secret, which the rule name says anyway) and decrypted once.
        self._sealed: dict[str, str] = {}
        self._opened: dict[str, str] = {}

    @staticmethod
    def sealed(value: str) -> bool:
        return value.startswith(PREFIX)

    def seal(self, value: str) -> str:
        if not value or self.sealed(value):
            return value
        sealed = self._sealed.get(value)
        if sealed is None:
            sealed = PREFIX + self._newest.encrypt(value.encode()).decode()
            _remember(self._sealed, value, sealed)
        return sealed

    def open(self, value: str) -> str:
        """The plaintext of ``value``; a plaintext (not yet sealed) is returned as it is."""
        if not self.sealed(value):
            return value
        opened = self._opened.get(value)
        if opened is not None:
            return opened
        try:
            opened = self._any.decrypt(value[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise SealError(f"{VARIABLE}: a stored secret cannot be opened with the configured "
                            "key(s); give the key it was sealed with (keys are comma "
                            "separated, newest first)") from None
        _remember(self._opened, value, opened)
        return opened

    def current(self, value: str) -> bool:
        """True when ``value`` needs no re-sealing: empty, or sealed with the newest key."""
        if not value:
            return True
        if not self.sealed(value):
            return False
        try:
            self._newest.decrypt(value[len(PREFIX):].encode())
        except InvalidToken:
            return False
        return True


def _remember(memo: dict[str, str], key: str, value: str, limit: int = 4096) -> None:
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value


def secret_keys(settings: Settings) -> tuple[str, ...]:
    """``BOTMON_SECRET_KEY``, or the data dir's key, created (0600) and announced when new."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / KEY_FILE
    if path.exists():
        try:
            return parse_fernet_keys(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{VARIABLE}: unset, and {path} holds no usable key ({exc})") \
                from None
    private_dir(path.parent)
    key = Fernet.generate_key().decode()
    # O_EXCL: two services starting at once must not overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return secret_keys(settings)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    print(f"botmon: created a key that encrypts alert secrets at rest, stored in {path} "
          f"(mode 0600); set {VARIABLE} to share it between replicas", file=sys.stdout,
          flush=True)
    return (key,)
