"""Server logs are part of every test.

A server process the tests start logs to a file; each test reads what its servers logged since
the last check. A Python traceback, or a record at level ERROR or CRITICAL, fails the test unless
the test declared it: ``@pytest.mark.server_log("exact text")`` (or ``server_log.expect(...)``)
allows a record that contains the text, a traceback included (its frames and final exception
line). A declared text that never shows up in such a record fails the test too.

Servers with ``GATEWAY_LOG_FORMAT=json`` write one JSON object per record: its ``level`` decides
as above, and a traceback in its ``exc_info`` counts as one written out. Such a record is read as
its text lines (``LEVEL: logger: message``, then the traceback's lines), so declared texts and
failure messages work alike for both formats.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

TRACEBACK = "Traceback (most recent call last)"
FAILING_LEVELS = frozenset({"ERROR", "CRITICAL"})

# ``fal-gateway``'s own records: "%(asctime)s %(levelname)s %(name)s: %(message)s".
_STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ([A-Z]+) ")
# uvicorn's: "ERROR:    Exception in ASGI application".
_UVICORN = re.compile(r"^(TRACE|DEBUG|INFO|WARNING|ERROR|CRITICAL):\s")
# Lines after which a traceback being written is not finished yet.
_UNFINISHED = re.compile(r"^(\s|Traceback \(most recent call last\)|During handling|The above)")

Incident = list[str]
"""The lines of one offending record: an ERROR line and what follows it, or a traceback."""


def record_level(line: str) -> str | None:
    """The level of the log record ``line`` starts, or None for a continuation line."""
    found = _STAMPED.match(line) or _UVICORN.match(line)
    return found.group(1) if found else None


class LogScanner:
    """Splits a log, chunk by chunk, into records and picks out the offending ones.

    A record runs from a line with a level to the next such line. An ERROR or CRITICAL record
    is an incident as a whole; in any other record (or in lines before the first record), a
    traceback starts an incident that runs to the record's end.
    """

    def __init__(self) -> None:
        self._incident: Incident | None = None
        self._judged = False  # the record under way was an incident, reported with its chunk
        self._previous = ""

    def feed(self, lines: Iterable[str]) -> list[Incident]:
        """The incidents in ``lines`` (whole lines); an incident still open at the end of the
        chunk is reported with it, and the rest of its record is passed over later."""
        incidents: list[Incident] = []
        for line in _as_text(lines):
            level = record_level(line)
            if level is not None:
                if self._incident is not None:
                    incidents.append(self._incident)
                self._incident = [line] if level in FAILING_LEVELS else None
                self._judged = False
            elif self._incident is not None:
                self._incident.append(line)
            elif not self._judged and TRACEBACK in line:
                context = self._previous.startswith("Exception ignored")
                self._incident = [self._previous, line] if context else [line]
            self._previous = line
        if self._incident is not None:
            incidents.append(self._incident)
            self._incident = None
            self._judged = True
        return incidents


def _as_text(lines: Iterable[str]) -> Iterator[str]:
    """``lines``, each JSON log record among them as its text lines."""
    for line in lines:
        record = _json_record(line)
        if record is None:
            yield line
            continue
        yield f"{record['level']}: {record.get('logger', '')}: {record.get('message', '')}"
        exc_info = record.get("exc_info")
        if isinstance(exc_info, str):
            yield from exc_info.splitlines()


def _json_record(line: str) -> dict[str, object] | None:
    """The JSON log record ``line`` holds, or None for a line of text."""
    if not line.startswith("{"):
        return None
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("level"), str):
        return None
    return record


class Expectations:
    """The server log lines one test provokes on purpose."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._texts: list[str] = []
        self._seen: set[str] = set()
        for text in texts:
            self.expect(text)

    def expect(self, text: str) -> None:
        """Allow an offending record that contains ``text``; it must then really appear."""
        if not isinstance(text, str) or not text.strip():
            raise TypeError(f"server_log expects non-empty strings, not {text!r}")
        if text not in self._texts:
            self._texts.append(text)

    def allows(self, incident: Incident) -> bool:
        matched = [text for text in self._texts if any(text in line for line in incident)]
        self._seen.update(matched)
        return bool(matched)

    def never_seen(self) -> list[str]:
        return [text for text in self._texts if text not in self._seen]


_current: Expectations | None = None


def current() -> Expectations | None:
    """The running test's expectations (or the last test's, while fixtures tear down after
    it); None outside pytest."""
    return _current


def begin_test(expectations: Expectations) -> None:
    global _current
    _current = expectations


class ServerLog:
    """A server's log file and how far the tests have checked it."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._offset = 0
        self._scanner = LogScanner()

    def check(self, *, final: bool = False, settle: float = 1.0) -> list[Incident]:
        """What the server logged since the last check that the current test did not declare.

        Only whole lines are read unless ``final`` (the process has exited); a traceback caught
        half-written gets up to ``settle`` seconds to finish.
        """
        expectations = current()
        if expectations is None:
            return []
        text = self._read_new(final=final, settle=settle)
        incidents = self._scanner.feed(text.splitlines())
        return [incident for incident in incidents if not expectations.allows(incident)]

    def _read_new(self, *, final: bool, settle: float) -> str:
        deadline = time.monotonic() + settle
        while True:
            try:
                with self.path.open("rb") as log:
                    log.seek(self._offset)
                    data = log.read()
            except FileNotFoundError:
                return ""
            if not final:
                data = data[: data.rfind(b"\n") + 1]
            text = data.decode(errors="replace")
            lines = text.splitlines()
            unfinished = TRACEBACK in text and bool(_UNFINISHED.match(lines[-1]))
            if final or not unfinished or time.monotonic() > deadline:
                self._offset += len(data)
                return text
            time.sleep(0.05)


def _summary(incident: Incident) -> str:
    """An incident in a line: its first line (without a timestamp) and its last."""
    head = _STAMPED.sub(r"\1 ", incident[0]).strip()
    return head if len(incident) == 1 else f"{head} ... {incident[-1].strip()}"


def describe(
    name: str, incidents: list[Incident], *, when: str = "since the previous test ended"
) -> str:
    """A failure message quoting undeclared incidents: each kind once (the first few in full,
    long tracebacks shortened), with how often it occurred."""
    kinds: dict[tuple[str, ...], list[Incident]] = {}
    for incident in incidents:
        frames = (line for line in incident if line.lstrip().startswith('File "'))
        kinds.setdefault((_summary(incident), *frames), []).append(incident)
    noun = "error" if len(incidents) == 1 else "errors"
    parts = [f"server `{name}` logged {len(incidents)} undeclared {noun} {when}:"]
    for shown, (key, same) in enumerate(kinds.items()):
        if shown >= 3:
            parts.append(f"  {len(same)} x {key[0]}")
            continue
        lines = same[0]
        if len(lines) > 40:
            lines = [*lines[:6], f"... ({len(lines) - 36} lines) ...", *lines[-30:]]
        parts.append(f"  {len(same)} x " + "-" * 40)
        parts += [f"  | {line}" for line in lines]
    parts.append(
        "If the test provokes it on purpose, declare it: "
        '@pytest.mark.server_log("exact text") or server_log.expect("exact text").'
    )
    return "\n".join(parts)
