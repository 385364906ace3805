"""tftp://, s3:// and gs:// sources against real servers on loopback: Debian's tftpd-hpa,
moto's S3 server, and a Cloud Storage endpoint with a GCE metadata server beside it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from tests.loopback_ports import free_port
from wellcar.ignition.cloud_sources import (
    AwsCredentials,
    gce_access_token,
    parse_s3_url,
    s3_object_url,
    sigv4_headers,
)
from wellcar.ignition.errors import FetchError
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.types import Resource, Verification

# ------------------------------------------------------------------------------ tftp


@pytest.fixture(scope="module")
def tftp_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    daemon = shutil.which("in.tftpd") or "/usr/sbin/in.tftpd"
    if not os.path.exists(daemon):
        pytest.skip("needs Debian's tftpd-hpa (scripts/setup.sh installs it)")
    if os.geteuid() != 0:
        pytest.skip("in.tftpd binds and chroots as root")
    root = tmp_path_factory.mktemp("tftp")
    root.chmod(0o755)
    port = free_port()
    process = subprocess.Popen(
        [daemon, "--foreground", "--address", f"127.0.0.1:{port}", "--secure", "--user", "root",
         str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(0.3)
    if process.poll() is not None:
        pytest.fail(f"in.tftpd did not start: {process.stderr.read() if process.stderr else ''}")
    yield root, port
    process.terminate()
    process.wait(10)


@pytest.mark.parametrize("size", [0, 100, 512, 1024, 70_000])
def test_tftp_files_of_every_block_shape(tftp_root: tuple[Path, int], size: int) -> None:
    root, port = tftp_root
    data = os.urandom(size)
    (root / f"f{size}").write_bytes(data)
    (root / f"f{size}").chmod(0o644)
    got = Fetcher(attempts=1).fetch(Resource(source=f"tftp://127.0.0.1:{port}/f{size}"), "$.x")
    assert got == data


def test_tftp_names_the_servers_refusal(tftp_root: tuple[Path, int]) -> None:
    _, port = tftp_root
    with pytest.raises(FetchError, match=r"\$\.x: .*TFTP server says"):
        Fetcher(attempts=1).fetch(Resource(source=f"tftp://127.0.0.1:{port}/missing"), "$.x")


def test_a_silent_tftp_server_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens: the request is lost every time
    fetcher = Fetcher(attempts=1, header_timeout_s=0.2)
    with pytest.raises(FetchError, match=r"stopped answering|refused"):
        fetcher.fetch(Resource(source=f"tftp://127.0.0.1:{port}/x"), "$.x")


# -------------------------------------------------------------------------------- s3


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = shutil.which("moto_server") or str(Path(os.sys.executable).parent / "moto_server")
    if not os.path.exists(server):
        pytest.skip("needs moto's S3 server (pip install 'moto[server]')")
    port = free_port()
    process = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(endpoint, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield endpoint
    process.terminate()
    process.wait(10)


def put_object(endpoint: str, bucket: str, key: str, body: bytes, region: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                      aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
    config = {} if region == "us-east-1" else {"LocationConstraint": region}
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=config)  # type: ignore[arg-type]
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_s3_objects_are_fetched_from_their_buckets_region(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"#!/bin/sh\necho from s3\n"
    put_object(s3_endpoint, "configs-eu", "nodes/worker one.sh", body, "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    resource = Resource(
        source="s3://configs-eu/nodes/worker%20one.sh",
        verification=Verification("sha256-" + hashlib.sha256(body).hexdigest()),
    )
    assert Fetcher(attempts=1).fetch(resource, "$.x") == body
    with pytest.raises(FetchError, match="HTTP 404"):
        Fetcher(attempts=1).fetch(Resource(source="s3://configs-eu/nope"), "$.x")


def test_sigv4_signs_as_botocore_does() -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = s3_object_url(parse_s3_url("s3://bucket/dir/a file.ign?versionId=v1"), "eu-west-1", {})
    request = AWSRequest(method="GET", url=url)
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(b"").hexdigest()
    S3SigV4Auth(Credentials("AKID", "SECRET", "TOKEN"), "s3", "eu-west-1").add_auth(request)
    when = dt.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    ours = sigv4_headers("GET", url, AwsCredentials("AKID", "SECRET", "TOKEN"), "eu-west-1",
                         now=when.replace(tzinfo=dt.UTC))  # fmt: skip
    assert ours["authorization"] == request.headers["Authorization"]


def test_s3_arns() -> None:
    point = parse_s3_url("arn:aws:s3:us-west-2:123456789012:accesspoint/test/object/a/b.ign")
    assert s3_object_url(point, "ignored", {}) == (
        "https://test-123456789012.s3-accesspoint.us-west-2.amazonaws.com/a/b.ign"
    )
    bucket = parse_s3_url("arn:aws:s3:::bucket/key.ign")
    assert s3_object_url(bucket, "eu-central-1", {}) == (
        "https://bucket.s3.eu-central-1.amazonaws.com/key.ign"
    )


# -------------------------------------------------------------------------------- gs


class _Gcs(BaseHTTPRequestHandler):
    objects: ClassVar[dict[str, bytes]] = {}
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        if self.path.startswith("/computeMetadata/"):  # the GCE metadata server
            ok = self.headers.get("Metadata-Flavor") == "Google"
            body = json.dumps({"access_token": "ya29.token", "expires_in": 3599}).encode()
            self.send_response(200 if ok else 403)
            self.end_headers()
            self.wfile.write(body if ok else b"")
            return
        self.seen.append(dict(self.headers))
        body = self.objects.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gcs() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gcs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_gs_objects_with_the_instance_token(gcs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _Gcs.objects["/bucket/configs/node.ign"] = b'{"ignition":{"version":"3.4.0"}}'
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs)
    assert gce_access_token(f"http://{gcs}") == "ya29.token"
    got = Fetcher(attempts=1).fetch(Resource(source="gs://bucket/configs/node.ign"), "$.x")
    assert got == _Gcs.objects["/bucket/configs/node.ign"]
    assert "Authorization" not in _Gcs.seen[-1]  # off GCE: anonymous, as Ignition
