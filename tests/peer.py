"""A plain HTTP peer on loopback: serves files and records what is POSTed to it (webhooks)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Peer:
    """Files under ``/files/<name>``; every POST recorded, the first ``fail_next`` answered 500."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.in_turn: dict[str, list[tuple[bytes, str]]] = {}
        """Files served once each, in order, before ``files`` (content that changes)."""
        self.gets: dict[str, int] = {}
        self.redirects: dict[str, str] = {}
        """GETs of these names are answered 302 to the given location."""
        self.received: list[Received] = []
        self.fail_next = 0
        self.fail_paths: set[str] = set()
        """POSTs to these paths always fail (a receiver that is down)."""
        self.hold_next = 0.0
        """Seconds the next POST is held before it is answered (then reset)."""
        self.gates: dict[str, threading.Event] = {}
        """POSTs to these paths are held until their event is set (a receiver that hangs)."""
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.removeprefix("/files/")
                with peer.lock:
                    peer.gets[name] = peer.gets.get(name, 0) + 1
                    turns = peer.in_turn.get(name)
                    found = turns.pop(0) if turns else peer.files.get(name)
                    location = peer.redirects.get(name)
                if location is not None:
                    self.send_response(302)
                    self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if found is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                content, content_type = found
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with peer.lock:
                    peer.received.append(
                        Received(self.path, dict(self.headers.items()), body, time.time())
                    )
                    failing = peer.fail_next > 0 or self.path in peer.fail_paths
                    peer.fail_next -= 1 if peer.fail_next > 0 else 0
                    hold, peer.hold_next = peer.hold_next, 0.0
                    gate = peer.gates.get(self.path)
                time.sleep(hold)
                if gate is not None:
                    gate.wait()
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def serve(self, name: str, content: bytes, content_type: str = "image/png") -> str:
        """Publish ``content`` and return its URL."""
        self.files[name] = (content, content_type)
        return f"{self.url}/files/{name}"

    def serve_in_turn(self, name: str, *contents: bytes, content_type: str = "image/png") -> str:
        """Publish content that changes: each GET gets the next of ``contents``, the last one
        for good."""
        with self.lock:
            self.in_turn[name] = [(c, content_type) for c in contents[:-1]]
        return self.serve(name, contents[-1], content_type)

    def posts(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for_posts(self, path: str, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.posts(path)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} POSTs to {path}, got {len(self.posts(path))}")

    def __enter__(self) -> Peer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


class SilentServer:
    """Accepts TCP connections and never answers: an upstream that hangs."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(connection)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def connections(self) -> list[socket.socket]:
        """The connections accepted so far."""
        return list(self._held)

    def __exit__(self, *exc: object) -> None:
        self._socket.close()
        for connection in self._held:
            connection.close()
