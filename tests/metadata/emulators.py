"""Metadata services for the tests: real HTTP servers on 127.0.0.1 (never mocks).

One server class answers as EC2's IMDSv2, GCE's metadata server, OpenStack's metadata
service or Azure's IMDS and wireserver, from a table of paths; ``behaviour`` makes it
misbehave as clouds do (hang, 500, garbage). A VM reaches it at 169.254.169.254:80
through a guestfwd.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from wellcar.metadata.providers.azure import GOAL_STATE, HEALTH, INSTANCE
from wellcar.metadata.providers.azure import USER_DATA as USER_DATA_AZURE
from wellcar.metadata.providers.ec2 import TOKEN_HEADER, TOKEN_PATH, TOKEN_TTL_HEADER, VERSION
from wellcar.metadata.providers.gce import FLAVOR, ROOT
from wellcar.metadata.providers.openstack import META_DATA, USER_DATA


class Behaviour(StrEnum):
    OK = "ok"
    HANG = "hang"  # accept, never answer
    ERROR = "error"  # 500 to everything
    GARBAGE = "garbage"  # 200 with bytes that are no metadata


@dataclass
class Service:
    routes: dict[str, bytes]  # path (no leading /) -> body
    imds_token: bool = False  # EC2 IMDSv2: GETs need the session token
    flavor: bool = False  # GCE: Metadata-Flavor: Google both ways
    behaviour: Behaviour = Behaviour.OK
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    # POST: paths that take a body (Azure's health report), and what was posted to them
    # with the request's headers.
    post_paths: frozenset[str] = frozenset()
    posted: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    required_headers: dict[str, str] = field(default_factory=dict)  # Azure: x-ms-version
    tokens: set[str] = field(default_factory=set)


def _handler(service: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, method: str) -> None:
            path = self.path.lstrip("/")
            service.requests.append((method, path))
            if service.behaviour is Behaviour.HANG:
                time.sleep(3600)
                return
            if service.behaviour is Behaviour.ERROR:
                self._send(500, b"internal error")
                return
            if service.behaviour is Behaviour.GARBAGE:
                self._send(200, b"\x00\xffnot metadata{{{")
                return
            extra = dict([FLAVOR]) if service.flavor else {}
            if service.flavor and self.headers.get(FLAVOR[0]) != FLAVOR[1]:
                self._send(403, b"missing Metadata-Flavor", extra)
                return
            missing = [k for k, v in service.required_headers.items() if self.headers.get(k) != v]
            if missing:
                self._send(400, f"missing {', '.join(missing)}".encode())
                return
            if method == "POST" and path in service.post_paths:
                self._send(200, b"")
                return
            if service.imds_token:
                if method == "PUT" and path == TOKEN_PATH:
                    if not self.headers.get(TOKEN_TTL_HEADER):
                        self._send(400, b"missing ttl")
                        return
                    token = secrets.token_urlsafe(16)
                    service.tokens.add(token)
                    self._send(200, token.encode())
                    return
                if self.headers.get(TOKEN_HEADER) not in service.tokens:
                    self._send(401, b"IMDSv2: token required")
                    return
            body = service.routes.get(path)
            if method != "GET" or body is None:
                self._send(404, b"not found", extra)
                return
            self._send(200, body, extra)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self._answer("PUT")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            path = self.path.lstrip("/")
            if path in service.post_paths and service.behaviour is Behaviour.OK:
                service.posted.append((path, body, {k.lower(): v for k, v in self.headers.items()}))
            self._answer("POST")

    return Handler


@contextmanager
def serve(service: Service, port: int = 0) -> Iterator[str]:
    """The service on 127.0.0.1 (``port`` 0: any free one); yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(service))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- what each platform's service holds -----------------------------------------------


def ec2_service(hostname: str, ssh_key: str, user_data: bytes | None) -> Service:
    meta = f"{VERSION}/meta-data"
    routes = {
        f"{meta}/hostname": hostname.encode(),
        f"{meta}/local-ipv4": b"172.31.5.6",
        f"{meta}/public-ipv4": b"203.0.113.7",
        f"{meta}/instance-id": b"i-0123456789abcdef0",
        f"{meta}/instance-type": b"t3.small",
        f"{meta}/placement/availability-zone": b"eu-west-1b",
        f"{meta}/placement/region": b"eu-west-1",
        f"{meta}/public-keys": b"0=test-key",
        f"{meta}/public-keys/0/openssh-key": ssh_key.encode(),
    }
    if user_data is not None:
        routes[f"{VERSION}/user-data"] = user_data
    return Service(routes, imds_token=True)


def gce_service(hostname: str, ssh_key: str, user_data: bytes | None) -> Service:
    routes = {
        f"{ROOT}/instance/hostname": hostname.encode(),
        f"{ROOT}/instance/network-interfaces/0/ip": b"10.128.0.5",
        f"{ROOT}/instance/machine-type": b"projects/1/machineTypes/e2-small",
        f"{ROOT}/instance/attributes/ssh-keys": f"core:{ssh_key}\n".encode(),
        f"{ROOT}/project/attributes/ssh-keys": b"alice:ssh-ed25519 AAAAproject alice\n",
    }
    if user_data is not None:
        routes[f"{ROOT}/instance/attributes/user-data"] = user_data
    return Service(routes, flavor=True)


def openstack_meta_data(hostname: str, ssh_key: str) -> bytes:
    doc = {"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "hostname": hostname,
           "public_keys": {"test-key": ssh_key}, "availability_zone": "nova"}  # fmt: skip
    return json.dumps(doc).encode()


def openstack_service(hostname: str, ssh_key: str, user_data: bytes | None) -> Service:
    routes = {META_DATA: openstack_meta_data(hostname, ssh_key),
              "latest/meta-data/local-ipv4": b"192.168.0.9"}  # fmt: skip
    if user_data is not None:
        routes[USER_DATA] = user_data
    return Service(routes)


AZURE_INCARNATION = "42"
AZURE_CONTAINER = "a511aa6d-29e7-4f53-8788-55655dfe848f"
AZURE_INSTANCE = "f6cd1d7ef1644557b9059345e5ba890c.wellcar-test-1"


def azure_goal_state() -> bytes:
    """A goal state as the wireserver serves it (the parts a health report names)."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<GoalState xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:noNamespaceSchemaLocation="goalstate10.xsd">
  <Version>2012-11-30</Version>
  <Incarnation>{AZURE_INCARNATION}</Incarnation>
  <Machine><ExpectedState>Started</ExpectedState></Machine>
  <Container>
    <ContainerId>{AZURE_CONTAINER}</ContainerId>
    <RoleInstanceList>
      <RoleInstance>
        <InstanceId>{AZURE_INSTANCE}</InstanceId>
        <State>Started</State>
        <Configuration><SharedConfig>http://x/sharedconfig</SharedConfig></Configuration>
      </RoleInstance>
    </RoleInstanceList>
  </Container>
</GoalState>
""".encode()


def azure_wireserver(goal_state: bytes | None = None) -> Service:
    return Service({GOAL_STATE: goal_state or azure_goal_state()},
                   post_paths=frozenset({HEALTH}),
                   required_headers={"x-ms-version": "2012-11-30"})  # fmt: skip


def azure_imds(hostname: str, ssh_key: str, user_data: bytes | None) -> Service:
    doc = {"compute": {"name": hostname, "vmSize": "Standard_B2s",
                       "publicKeys": [{"keyData": ssh_key, "path": "/home/core/.ssh/x"}]},
           "network": {"interface": [{"ipv4": {"ipAddress": [
               {"privateIpAddress": "10.0.0.4"}]}}]}}  # fmt: skip
    routes = {INSTANCE: json.dumps(doc).encode()}
    if user_data is not None:
        routes[USER_DATA_AZURE] = base64.b64encode(user_data)
    return Service(routes, required_headers={"Metadata": "true"})
