"""The server log check itself: which lines fail a test, and how a test declares them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.server_logs import Expectations, LogScanner, ServerLog, begin_test, current
from tests.servers import Emulator, ServerProcess

STAMP = "2026-01-02 03:04:05,678"
ASGI_500 = [
    "ERROR:    Exception in ASGI application",
    "Traceback (most recent call last):",
    '  File "/app/gateway/http/webhooks.py", line 40, in receive',
    "    await scripts.run(...)",
    "TypeError: 'int' object is not iterable",
]
TASK_ERROR = [
    f"{STAMP} ERROR asyncio: Task exception was never retrieved",
    "future: <Task finished name='Task-9' coro=<Worker.run() done>>",
    "Traceback (most recent call last):",
    '  File "/app/gateway/relay/worker.py", line 80, in run',
    "ConnectionError: gone",
]


def incidents(*lines: str) -> list[list[str]]:
    return LogScanner().feed(lines)


def test_info_and_warning_records_pass() -> None:
    assert (
        incidents(
            "INFO:     Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
            f"{STAMP} WARNING gateway.relay.worker: delivery d-1: receiver answered 500",
            f"{STAMP} INFO gateway.dev: started",
            "  an indented banner line",
        )
        == []
    )


def test_error_records_and_tracebacks_are_incidents_with_their_lines() -> None:
    found = incidents(
        "INFO:     Started server process [1]",
        *ASGI_500,
        f"{STAMP} INFO gateway: fine again",
        *TASK_ERROR,
        f"{STAMP} CRITICAL gateway: down",
    )
    assert found == [ASGI_500, TASK_ERROR, [f"{STAMP} CRITICAL gateway: down"]]


def test_a_traceback_outside_an_error_record_is_an_incident() -> None:
    bare = ["Traceback (most recent call last):", '  File "x.py", line 1', "ValueError: v"]
    assert incidents(f"{STAMP} WARNING gateway: odd", *bare) == [bare]
    ignored = ["Exception ignored in: <function C.__del__>", *bare]
    assert incidents(*ignored) == [ignored]


def test_a_record_split_across_checks_is_reported_once() -> None:
    scanner = LogScanner()
    assert scanner.feed(ASGI_500[:3]) == [ASGI_500[:3]]
    assert scanner.feed(ASGI_500[3:]) == []
    assert scanner.feed([f"{STAMP} ERROR gateway: again"]) == [[f"{STAMP} ERROR gateway: again"]]


def test_a_declared_text_allows_its_record_and_must_appear() -> None:
    expected = Expectations(["'int' object is not iterable", "never logged"])
    assert expected.allows(ASGI_500)
    assert not expected.allows(TASK_ERROR)
    assert expected.never_seen() == ["never logged"]
    with pytest.raises(TypeError):
        expected.expect("")


def test_a_server_log_is_checked_bit_by_bit(tmp_path: Path, server_log: Expectations) -> None:
    path = tmp_path / "server.log"
    log = ServerLog("python -m gateway serve", path)
    with path.open("w") as out:
        out.write("\n".join(ASGI_500) + "\n" + TASK_ERROR[0][:20])  # half a line
    outer = current()
    try:
        begin_test(Expectations(["Exception in ASGI application"]))
        assert log.check() == []
        with path.open("a") as out:
            out.write(TASK_ERROR[0][20:] + "\n")
        assert log.check() == [[TASK_ERROR[0]]]
        assert log.check(final=True) == []
    finally:
        assert outer is server_log
        begin_test(server_log)


def _second_emulator_on(emulator: Emulator) -> ServerProcess:
    """An emulator on the shared one's port: it logs uvicorn's bind ERROR and exits (its
    readiness check is answered by the shared one)."""
    ready = f"{emulator.url}/.well-known/jwks.json"
    return ServerProcess(["emulator", "--port", str(emulator.port)], {}, ready)


def _exit_code(server: ServerProcess) -> int:
    assert server.process is not None
    return server.process.wait(timeout=20)


@pytest.mark.server_log("address already in use")
def test_a_declared_server_error_is_allowed(emulator: Emulator) -> None:
    with _second_emulator_on(emulator) as second:
        assert _exit_code(second) != 0


def test_a_declaration_can_be_made_while_the_test_runs(
    emulator: Emulator, server_log: Expectations
) -> None:
    server_log.expect("error while attempting to bind")
    with _second_emulator_on(emulator) as second:
        _exit_code(second)


def test_an_undeclared_server_error_fails_the_test(emulator: Emulator) -> None:
    undeclared = r"(?s)emulator --port \d+` logged 1 undeclared error.*address already in use"
    with (
        pytest.raises(pytest.fail.Exception, match=undeclared),
        _second_emulator_on(emulator) as second,
    ):
        _exit_code(second)


def _json_line(level: str, message: str, **fields: object) -> str:
    record = {"level": level, "logger": "gateway.x", "message": message, **fields}
    return json.dumps(record)


def test_json_records_are_judged_by_their_level_and_traceback() -> None:
    traceback = "\n".join(ASGI_500[1:])
    error = _json_line("ERROR", "Exception in ASGI application", exc_info=traceback)
    warned = _json_line("WARNING", "retrying", exc_info=traceback)
    found = incidents(
        _json_line("INFO", "GET /healthz 200 0.1 ms", route="/healthz"),
        error,
        _json_line("INFO", "fine again"),
        warned,
        _json_line("CRITICAL", "down"),
    )
    assert found == [
        ["ERROR: gateway.x: Exception in ASGI application", *ASGI_500[1:]],
        ASGI_500[1:],
        ["CRITICAL: gateway.x: down"],
    ]
    assert Expectations(["'int' object is not iterable"]).allows(found[0])


def test_a_json_gateway_error_fails_the_test_as_a_text_one_does(
    emulator: Emulator, redis_url: str
) -> None:
    env = {
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_ADMIN_TOKEN": "admin-test-token",
    }
    ready = f"{emulator.url}/.well-known/jwks.json"
    undeclared = r"(?s)serve --port \d+` logged 1 undeclared error.*ERROR: uvicorn.error: .*use"
    second = ServerProcess(["serve", "--port", str(emulator.port)], env, ready)
    with pytest.raises(pytest.fail.Exception, match=undeclared), second:
        output = _output_once_exited(second)
    assert all(line.startswith("{") for line in output.splitlines()), output


def _output_once_exited(server: ServerProcess) -> str:
    assert _exit_code(server) != 0
    return server.output()
