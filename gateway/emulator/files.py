"""The emulator's file storage: uploaded inputs and generated outputs, kept in memory.

Files expire after their retention and the oldest are evicted when the store passes its byte
budget, so a long benchmark cannot grow the emulator without bound.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredFile:
    content: bytes
    content_type: str
    expires_at: float


class FileStore:
    """Files by path (``<folder>/<id>/<name>``), served under ``/files/``."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._files: OrderedDict[str, StoredFile] = OrderedDict()
        self._pinned: dict[str, StoredFile] = {}
        self._bytes = 0

    def pin(self, path: str, content: bytes, content_type: str) -> None:
        """Keep a file for the life of the process, outside the byte budget."""
        self._pinned[path] = StoredFile(content, content_type, float("inf"))

    def put(self, path: str, content: bytes, content_type: str, retention: float) -> None:
        self._discard(path)
        self._files[path] = StoredFile(content, content_type, time.monotonic() + retention)
        self._bytes += len(content)
        self._evict()

    def get(self, path: str) -> StoredFile | None:
        if path in self._pinned:
            return self._pinned[path]
        stored = self._files.get(path)
        if stored is not None and stored.expires_at <= time.monotonic():
            self._discard(path)
            return None
        return stored

    def _discard(self, path: str) -> None:
        old = self._files.pop(path, None)
        if old is not None:
            self._bytes -= len(old.content)

    def _evict(self) -> None:
        # Files share one retention, so insertion order is expiry order: trim from the front.
        now = time.monotonic()
        while self._files:
            oldest, stored = next(iter(self._files.items()))
            if stored.expires_at > now and self._bytes <= self._max_bytes:
                break
            self._discard(oldest)


@dataclass(frozen=True)
class PendingUpload:
    file_name: str
    content_type: str
    expires_at: float


class Uploads:
    """Two-step uploads: ``initiate`` hands out a token, a PUT of the bytes to it completes."""

    TOKEN_LIFETIME = 3600.0

    def __init__(self, files: FileStore, retention: float) -> None:
        self._files = files
        self._retention = retention
        self._pending: dict[str, PendingUpload] = {}

    def initiate(self, token: str, file_name: str, content_type: str) -> str:
        """Reserve an upload; returns the path the file will be served at."""
        now = time.monotonic()
        for stale in [t for t, p in self._pending.items() if p.expires_at <= now]:
            del self._pending[stale]
        self._pending[token] = PendingUpload(file_name, content_type, now + self.TOKEN_LIFETIME)
        return self.file_path(token, file_name)

    def complete(self, token: str, content: bytes, content_type: str | None) -> str | None:
        """Store the bytes of an initiated upload; None when the token is unknown or expired."""
        pending = self._pending.pop(token, None)
        if pending is None or pending.expires_at <= time.monotonic():
            return None
        path = self.file_path(token, pending.file_name)
        self._files.put(path, content, content_type or pending.content_type, self._retention)
        return path

    @staticmethod
    def file_path(token: str, file_name: str) -> str:
        return f"uploads/{token}/{file_name}"
