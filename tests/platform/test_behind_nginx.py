"""Behind nginx, with the shipped deploy/nginx/teaser.conf: a poll, the session socket and
the dashboard's socket pass through, and Teaser sees the visitor's address when, and only
when, it trusts nginx. Debian's nginx and `teaser serve` run as real processes; the
visitor connects from 127.0.0.2, nginx from 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from websockets.asyncio.client import ClientConnection, connect

from realtime.platform.config import Settings
from tests.platform.test_json_logs import JsonLogged, sqlite_env
from tests.support import (
    DEMO_HEADERS,
    DEMO_SITE,
    ROOT,
    OnLoopback,
    free_port,
    new_session_id,
    run_teaser_cli,
    unavailable,
)

SHIPPED = ROOT / "deploy" / "nginx" / "teaser.conf"
VISITOR = "127.0.0.2"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# The outer configuration of a test's own nginx: everything it writes stays in its folder,
# it stays in the foreground as one process (a root master would hand the requests to
# workers running as nobody, who may not enter the test's folder).
MAIN = """\
daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/teaser.conf;
}}
"""


def rendered(shipped: str, upstream: int, port: int) -> str:
    """The shipped file with only its two marked lines changed."""
    changes = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream};",
        "listen 80;": f"listen 127.0.0.1:{port};",
    }
    for line, replacement in changes.items():
        assert shipped.count(line) == 1, f"{line!r} is not once in {SHIPPED}"
        shipped = shipped.replace(line, replacement)
    return shipped


class Nginx(OnLoopback):
    def __init__(self, folder: Path, upstream: int) -> None:
        self.folder = folder
        self.port = free_port()
        (folder / "teaser.conf").write_text(rendered(SHIPPED.read_text(), upstream, self.port))
        (folder / "nginx.conf").write_text(MAIN.format(folder=folder))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [NGINX, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf")]
        command += ["-e", str(self.folder / "error.log")]
        with (self.folder / "nginx.out").open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nginx did not listen:\n{self.log()}")

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)

    def log(self) -> str:
        return "".join(
            path.read_text(errors="replace")
            for path in (self.folder / "nginx.out", self.folder / "error.log")
            if path.exists()
        )


class Proxied:
    """`teaser serve` (JSON logs) with nginx in front of it."""

    def __init__(self, folder: Path, *options: str) -> None:
        if not Path(NGINX).exists():
            unavailable("nginx", f"{NGINX} is not installed")
        self.database = folder / "t.db"
        self.teaser = JsonLogged(sqlite_env(folder), folder, *options)
        self.nginx = Nginx(folder, self.teaser.port)

    def __enter__(self) -> Proxied:
        self.teaser.start()
        self.nginx.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.nginx.stop()
        self.teaser.stop()

    def record(self, request_id: str, logger: str = "uvicorn.access") -> dict[str, Any]:
        """Teaser's one line of `logger` for the request (or socket) with this id."""
        self.teaser.records_once(request_id)
        lines = [
            r
            for r in self.teaser.records()
            if r["request_id"] == request_id and r["logger"] == logger and "client" in r
        ]
        assert len(lines) == 1, self.teaser.log()
        return lines[0]


def visitor(base_url: str) -> httpx.Client:
    """An HTTP client whose connections come from the visitor's address."""
    transport = httpx.HTTPTransport(local_address=VISITOR)
    return httpx.Client(base_url=base_url, transport=transport, timeout=10)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    with Proxied(tmp_path_factory.mktemp("nginx")) as proxied:
        yield proxied


def poll(client: httpx.Client, request_id: str, **headers: str) -> httpx.Response:
    body = {"sessionId": new_session_id(), "siteId": DEMO_SITE}
    headers = {"X-Request-ID": request_id, **headers}
    return client.post("/api/teaser-messages", json=body, headers=headers)


# Through a trusted nginx


def test_a_poll_passes_through_with_the_visitors_address(proxied: Proxied) -> None:
    with visitor(proxied.nginx.base_url) as client:
        answer = poll(client, "poll-through-nginx")

    line = proxied.record("poll-through-nginx")
    assert answer.status_code == 200 and answer.json()["messages"] == []
    assert answer.headers["X-Request-ID"] == "poll-through-nginx"
    assert (line["client"], line["method"], line["status"]) == (VISITOR, "POST", 200)


def test_an_address_the_visitor_claims_is_not_believed(proxied: Proxied) -> None:
    claimed = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"}
    with visitor(proxied.nginx.base_url) as client:
        poll(client, "poll-claiming", **claimed)

    assert proxied.record("poll-claiming")["client"] == VISITOR


def test_a_request_without_an_id_gets_nginxs(proxied: Proxied) -> None:
    with visitor(proxied.nginx.base_url) as client:
        answer = client.get("/healthz", params={"mark": "nginx-id"})

    given = answer.headers["X-Request-ID"]
    assert re.fullmatch("[0-9a-f]{32}", given), given
    assert proxied.record(given)["path"] == "/healthz?mark=nginx-id"


async def socket_and_send(proxied: Proxied) -> dict[str, Any]:
    """Open the widget's socket through nginx from the visitor's address, send to it
    through nginx, and read the teaser."""
    session = new_session_id()
    url = f"{proxied.nginx.ws_url}/api/teaser-ws?sessionId={session}&siteId={DEMO_SITE}&path=/"
    async with connect(
        url, local_addr=(VISITOR, 0), additional_headers={"X-Request-ID": f"ws-{session}"}
    ) as socket:
        async with httpx.AsyncClient(base_url=proxied.nginx.base_url) as sender:
            sent = await sender.put(
                "/api/teaser-messages",
                headers=DEMO_HEADERS,
                json={"sessionId": session, "message": "through nginx"},
            )
        assert sent.status_code == 201, sent.text
        return await next_teaser(socket)


async def next_teaser(socket: ClientConnection) -> dict[str, Any]:
    while (frame := json.loads(await asyncio.wait_for(socket.recv(), 5)))["type"] != "teaser":
        pass
    return frame


def test_a_session_socket_passes_through_and_a_send_reaches_it(proxied: Proxied) -> None:
    teaser = asyncio.run(socket_and_send(proxied))

    assert teaser["message"] == "through nginx"
    handshakes = [
        r for r in proxied.teaser.records() if r.get("websocket") and "teaser-ws" in r["path"]
    ]
    assert handshakes[-1]["client"] == VISITOR and handshakes[-1]["status"] == 101
    assert handshakes[-1]["request_id"].startswith("ws-sess_")


async def held_poll_and_send(proxied: Proxied) -> tuple[httpx.Response, float]:
    """Long-poll through nginx from the visitor's address, send through nginx while the
    poll is held, and time the held poll's answer from the send."""
    session = new_session_id()
    transport = httpx.AsyncHTTPTransport(local_address=VISITOR)
    base = proxied.nginx.base_url
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=40) as client:
        body = {"sessionId": session, "siteId": DEMO_SITE, "wait": 20_000}
        holding = asyncio.create_task(client.post("/api/teaser-messages", json=body))
        await asyncio.sleep(1.0)  # through nginx, and held
        async with httpx.AsyncClient(base_url=base) as sender:
            sent = await sender.put(
                "/api/teaser-messages",
                headers=DEMO_HEADERS,
                json={"sessionId": session, "message": "held through nginx"},
            )
        sent_at = time.monotonic()
        answer = await holding
        assert sent.status_code == 201, sent.text
        return answer, time.monotonic() - sent_at


def test_a_held_poll_passes_through_and_is_answered_by_the_send(proxied: Proxied) -> None:
    answer, after_send = asyncio.run(held_poll_and_send(proxied))

    assert answer.status_code == 200
    assert [m["message"] for m in answer.json()["messages"]] == ["held through nginx"]
    assert answer.json()["wait"] == 20_000
    assert after_send < 5  # answered by the send, not by the end of the wait


def test_the_dashboard_socket_passes_through_on_its_own_origin(proxied: Proxied) -> None:
    added = run_teaser_cli(proxied.database, "operator", "add", DEMO_SITE, "ann@shop.example")
    password = added.stdout.rsplit(": ", 1)[1].strip()
    with visitor(proxied.nginx.base_url) as client:
        signed_in = client.post(
            "/api/operator/login",
            json={"siteId": DEMO_SITE, "email": "ann@shop.example", "password": password},
        )
        cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    assert signed_in.status_code == 200, signed_in.text

    async def hello() -> dict[str, Any]:
        headers = {"Cookie": cookies, "Origin": proxied.nginx.base_url}
        url = f"{proxied.nginx.ws_url}/api/dashboard/ws"
        async with connect(url, local_addr=(VISITOR, 0), additional_headers=headers) as socket:
            frame: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 5))
            return frame

    assert asyncio.run(hello())["type"] == "hello"


def test_a_body_over_teasers_largest_limit_is_refused_by_teaser_itself(proxied: Proxied) -> None:
    body = b'{"messages": [' + b" " * (1536 * 1024) + b"]}"
    with visitor(proxied.nginx.base_url) as client:
        answer = client.put("/api/teaser-messages", content=body, headers=DEMO_HEADERS)

    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


def test_every_line_teaser_wrote_behind_nginx_is_json(proxied: Proxied) -> None:
    assert proxied.teaser.records()
    assert "[emerg]" not in proxied.nginx.log() and "[alert]" not in proxied.nginx.log()


# Other trust settings, each with its own pair of servers


def test_behind_an_untrusted_nginx_teaser_sees_nginxs_address(tmp_path: Path) -> None:
    with (
        Proxied(tmp_path, "--forwarded-allow-ips", "10.9.9.9") as proxied,
        visitor(proxied.nginx.base_url) as client,
    ):
        answer = poll(client, "poll-untrusted")
        line = proxied.record("poll-untrusted")

    assert answer.status_code == 200
    assert line["client"] == "127.0.0.1"


def test_trusting_everyone_a_claimed_address_is_still_not_believed(tmp_path: Path) -> None:
    """'*' makes uvicorn take the first address of X-Forwarded-For: nginx writes only the
    one it saw, so a visitor's own header can't pick another (and another rate limit)."""
    with (
        Proxied(tmp_path, "--forwarded-allow-ips", "*") as proxied,
        visitor(proxied.nginx.base_url) as client,
    ):
        poll(client, "poll-star", **{"X-Forwarded-For": "203.0.113.9"})
        line = proxied.record("poll-star")

    assert line["client"] == VISITOR


# The configuration itself


def test_the_sockets_outlast_the_heartbeat_in_nginx() -> None:
    shipped = SHIPPED.read_text()
    settings = Settings()

    for path in ("/api/teaser-ws", "/api/dashboard/ws"):
        block = shipped.split(f"location = {path} {{", 1)[1].split("}", 1)[0]
        for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
            seconds = int(re.search(rf"{timeout} (\d+)s;", block)[1])  # type: ignore[index]
            assert seconds > settings.heartbeat_timeout > settings.heartbeat_interval


# What FORWARDED_ALLOW_IPS accepts: uvicorn's reading of it (docs/proxies.md says so)


def client_seen(trusted: str, proxy: str, forwarded_for: str) -> str:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])

    headers = [(b"x-forwarded-for", forwarded_for.encode())]
    scope = {"type": "http", "client": (proxy, 5000), "headers": headers}
    asyncio.run(ProxyHeadersMiddleware(app, trusted)(scope, None, None))  # type: ignore[arg-type]
    return seen[0]


@pytest.mark.parametrize(
    ("trusted", "proxy", "forwarded_for", "seen"),
    [
        ("10.9.0.0/16", "10.9.3.4", "198.51.100.7", "198.51.100.7"),
        ("127.0.0.1, 10.9.0.0/16", "10.9.3.4", "198.51.100.7", "198.51.100.7"),
        ("fd00::/8", "fd00::5", "198.51.100.7", "198.51.100.7"),
        ("10.9.0.0/16", "10.9.3.4", "203.0.113.9, 198.51.100.7", "198.51.100.7"),
        ("*", "10.9.3.4", "203.0.113.9, 198.51.100.7", "203.0.113.9"),
        ("10.9.0.1/16", "10.9.3.4", "198.51.100.7", "10.9.3.4"),
        ("10.1.1.1, *", "10.9.3.4", "198.51.100.7", "10.9.3.4"),
        ("nginx", "10.9.3.4", "198.51.100.7", "10.9.3.4"),
        ("127.0.0.1", "::1", "198.51.100.7", "::1"),
    ],
    ids=[
        "a network",
        "a list",
        "an IPv6 network",
        "the last hop not trusted",
        "'*' believes the first hop",
        "a network with host bits is no network",
        "'*' in a list is nothing",
        "a host name is nothing",
        "the default is IPv4 loopback only",
    ],
)
def test_what_forwarded_allow_ips_accepts(
    trusted: str, proxy: str, forwarded_for: str, seen: str
) -> None:
    assert client_seen(trusted, proxy, forwarded_for) == seen
