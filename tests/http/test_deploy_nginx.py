"""``deploy/nginx.conf`` proxies to the gateway and cuts off clients that send their request
head too slowly (uvicorn alone would hold such a connection open for ever)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import Gateway, free_port

SITE = Path(__file__).parents[2] / "deploy" / "nginx.conf"
MAIN = """worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
"""


def _nginx() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        pytest.fail("nginx is not installed (apt-get install nginx; `make test` does it)")
    return found


def _site(port: int, gateway_port: int) -> str:
    """The shipped site file, listening and proxying on this test's ports; nothing else changed."""
    text = SITE.read_text()
    for shipped, here in [
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{gateway_port};"),
    ]:
        assert text.count(shipped) == 1, shipped
        text = text.replace(shipped, here)
    return text


@pytest.fixture(scope="module")
def proxy(gateway: Gateway) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nginx-") as prefix:
        (Path(prefix) / "site.conf").write_text(_site(port, int(gateway.url.rsplit(":", 1)[1])))
        (Path(prefix) / "nginx.conf").write_text(MAIN.format(prefix=prefix))
        command = [_nginx(), "-p", prefix, "-e", f"{prefix}/error.log", "-c", "nginx.conf"]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_requests_reach_the_gateway_through_it(proxy: str, gateway: Gateway) -> None:
    token, created = gateway.new_key()
    me = httpx.get(f"{proxy}/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["key"]["id"] == created["id"]


def test_a_client_trickling_its_request_head_is_cut_off(proxy: str) -> None:
    port = int(proxy.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        deadline = time.monotonic() + 30  # nginx by default waits 60 s
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"X-Slow: 1\r\n")  # a header line now and then, never the end
                if sock.recv(1024) == b"":
                    return  # closed by the proxy
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return
        raise AssertionError("the proxy kept a connection whose request head never ended")
