"""Ignition's other source schemes: ``tftp://``, ``s3://`` (and ``arn:`` S3 access points)
and ``gs://``, with the credential rules Ignition documents. Stdlib only: it runs on the node.

- tftp: RFC 1350 read request in octet mode over UDP, each block acknowledged, lost
  packets sent again a bounded number of times.
- s3: a GET of ``https://BUCKET.s3.REGION.amazonaws.com/KEY`` (``?versionId=`` kept),
  signed with AWS Signature Version 4 when credentials exist: the environment's
  (``AWS_ACCESS_KEY_ID`` …) first, then the instance role's from the EC2 metadata
  service; anonymous otherwise. The region is the bucket's (``x-amz-bucket-region`` of a
  HEAD on the bucket), as Ignition asks it. ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``
  (the AWS SDKs' standard variables) point requests at another S3 endpoint, path-style.
- gs: ``https://storage.googleapis.com/BUCKET/OBJECT``, with the instance's service
  account token from the GCE metadata server when there is one, anonymous otherwise.
  ``STORAGE_EMULATOR_HOST`` (the Cloud Storage libraries' variable) points it elsewhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import socket
import struct
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wellcar.ignition.errors import FetchError

Address = tuple[Any, ...]  # a socket address (host, port[, flow, scope])
HttpGet = Callable[[str, dict[str, str]], bytes]
HttpHead = Callable[[str], Mapping[str, str]]
CLOUD_SCHEMES = ("tftp", "s3", "arn", "gs")

# ------------------------------------------------------------------------------ tftp

TFTP_PORT = 69
TFTP_BLOCK = 512
_RRQ, _DATA, _ACK, _ERROR = 1, 3, 4, 5
TFTP_TRIES = 5  # sends of one request or acknowledgement before giving up


def fetch_tftp(url: str, *, timeout_s: float, deadline: float, limit: int) -> bytes:
    """The file a ``tftp://host[:port]/path`` URL names."""
    parts = urllib.parse.urlsplit(url)
    host, port, name = parts.hostname, parts.port or TFTP_PORT, parts.path.lstrip("/")
    if not host or not name:
        raise FetchError(f"{url}: a tftp URL needs a host and a file name")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except OSError as exc:
        raise FetchError(f"{url}: cannot resolve {host} ({exc})") from None
    request = struct.pack("!H", _RRQ) + name.encode() + b"\0octet\0"
    with socket.socket(family, kind, proto) as sock:
        sock.settimeout(timeout_s)
        out = bytearray()
        expected, pending = 1, request
        server: Address | None = None
        peer: Address = tuple(address)
        while True:
            packet = _exchange(sock, pending, peer, server, url, deadline)
            sender, data = packet
            server = server or sender  # the server answers from a port of its own (its TID)
            opcode, number = struct.unpack("!HH", data[:4])
            if opcode == _ERROR:
                message = data[4:].split(b"\0", 1)[0].decode("utf-8", "replace")
                raise FetchError(f"{url}: the TFTP server says: {message or f'error {number}'}")
            if opcode != _DATA:
                raise FetchError(f"{url}: unexpected TFTP packet (opcode {opcode})")
            block = data[4:]
            peer, pending = server, struct.pack("!HH", _ACK, number)
            if number != expected:
                continue  # a duplicate: acknowledge it again, wait for the next
            out += block
            if len(out) > limit:
                raise FetchError(f"{url}: larger than {limit} bytes")
            expected = (expected + 1) & 0xFFFF
            if len(block) < TFTP_BLOCK:
                sock.sendto(pending, peer)  # the last acknowledgement ends the transfer
                return bytes(out)


def _exchange(
    sock: socket.socket,
    message: bytes,
    peer: Address,
    server: Address | None,
    url: str,
    deadline: float,
) -> tuple[Address, bytes]:
    """Send ``message`` and wait for a packet from the server; resend on silence."""
    for _ in range(TFTP_TRIES):
        if time.monotonic() > deadline:
            raise FetchError(f"{url}: not complete in time")
        sock.sendto(message, peer)
        try:
            while True:
                data, sender = sock.recvfrom(4 + TFTP_BLOCK + 64)
                sender = tuple(sender)
                if (server is None or sender == server) and len(data) >= 4:
                    return sender, data
        except TimeoutError:
            continue
    raise FetchError(f"{url}: the TFTP server stopped answering")


# -------------------------------------------------------------------------------- s3


@dataclass(frozen=True)
class AwsCredentials:
    access_key: str
    secret_key: str
    token: str | None = None


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    version_id: str | None = None
    access_point_host: str | None = None  # an access point's own endpoint
    region: str | None = None  # known from an access point ARN


def parse_s3_url(url: str) -> S3Object:
    """``s3://bucket/key[?versionId=V]``, ``arn:aws:s3:::bucket/key`` or an access point
    ``arn:aws:s3:REGION:ACCOUNT:accesspoint/NAME/object/KEY``."""
    parts = urllib.parse.urlsplit(url)
    version = urllib.parse.parse_qs(parts.query).get("versionId", [None])[0]
    if parts.scheme == "s3":
        key = parts.path.lstrip("/")
        if not parts.netloc or not key:
            raise FetchError(f"{url}: an s3 URL is s3://BUCKET/KEY")
        return S3Object(parts.netloc, urllib.parse.unquote(key), version)
    fields = url.split("?", 1)[0].split(":", 5)
    if len(fields) != 6 or fields[:3] != ["arn", "aws", "s3"]:
        raise FetchError(f"{url}: not an S3 ARN (arn:aws:s3:…)")
    _, _, _, region, account, resource = fields
    if resource.startswith("accesspoint/"):
        name, sep, key = resource[len("accesspoint/") :].partition("/object/")
        if not (name and sep and key and region and account):
            raise FetchError(f"{url}: an access point ARN ends accesspoint/NAME/object/KEY")
        host = f"{name}-{account}.s3-accesspoint.{region}.amazonaws.com"
        return S3Object(name, key, version, access_point_host=host, region=region)
    bucket, _, key = resource.partition("/")
    if not bucket or not key:
        raise FetchError(f"{url}: a bucket ARN is arn:aws:s3:::BUCKET/KEY")
    return S3Object(bucket, key, version)


def aws_credentials(
    env: Mapping[str, str], instance_role: Callable[[], AwsCredentials | None]
) -> AwsCredentials | None:
    """The environment's keys, else the instance role's, else None (anonymous)."""
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return AwsCredentials(key, secret, env.get("AWS_SESSION_TOKEN") or None)
    return instance_role()


def _endpoint(env: Mapping[str, str]) -> str | None:
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    return endpoint.rstrip("/") if endpoint else None


def s3_object_url(obj: S3Object, region: str, env: Mapping[str, str]) -> str:
    key = urllib.parse.quote(obj.key, safe="/-_.~")
    query = f"?versionId={urllib.parse.quote(obj.version_id, safe='')}" if obj.version_id else ""
    endpoint = _endpoint(env)
    if endpoint:
        return f"{endpoint}/{obj.bucket}/{key}{query}"
    host = obj.access_point_host or f"{obj.bucket}.s3.{region}.amazonaws.com"
    return f"https://{host}/{key}{query}"


def s3_bucket_region(obj: S3Object, env: Mapping[str, str], head: HttpHead) -> str:
    """The bucket's region from S3 itself; the configured region when it will not say."""
    if obj.region:
        return obj.region
    fallback = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = _endpoint(env)
    url = f"{endpoint}/{obj.bucket}" if endpoint else f"https://{obj.bucket}.s3.amazonaws.com/"
    try:
        headers = head(url)
    except FetchError:
        return fallback
    return headers.get("x-amz-bucket-region") or fallback


def sigv4_headers(
    method: str,
    url: str,
    credentials: AwsCredentials,
    region: str,
    *,
    service: str = "s3",
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """The headers that sign a body-less request with AWS Signature Version 4."""
    now = now or dt.datetime.now(dt.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    parts = urllib.parse.urlsplit(url)
    payload_hash = hashlib.sha256(b"").hexdigest()
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    query = sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in query
    )
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        (
            method,
            parts.path or "/",  # already encoded once, as S3 wants it
            canonical_query,
            "".join(f"{name}:{headers[name].strip()}\n" for name in sorted(headers)),
            signed,
            payload_hash,
        )
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest())
    )
    key = ("AWS4" + credentials.secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    del headers["host"]  # the HTTP client sends it
    return headers


def fetch_s3(
    url: str,
    get: HttpGet,
    head: HttpHead,
    *,
    env: Mapping[str, str] | None = None,
    instance_role: Callable[[], AwsCredentials | None] = lambda: None,
) -> bytes:
    env = os.environ if env is None else env
    obj = parse_s3_url(url)
    region = s3_bucket_region(obj, env, head)
    target = s3_object_url(obj, region, env)
    credentials = aws_credentials(env, instance_role)
    headers = sigv4_headers("GET", target, credentials, region) if credentials else {}
    return get(target, headers)


def role_credentials_from_document(document: bytes) -> AwsCredentials | None:
    """The instance role's keys from the metadata service's JSON document."""
    try:
        data = json.loads(document)
        return AwsCredentials(data["AccessKeyId"], data["SecretAccessKey"], data.get("Token"))
    except (ValueError, KeyError, TypeError):
        return None


# -------------------------------------------------------------------------------- gs


def gs_object_url(url: str, env: Mapping[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    if not parts.netloc or not name:
        raise FetchError(f"{url}: a gs URL is gs://BUCKET/OBJECT")
    emulator = env.get("STORAGE_EMULATOR_HOST")
    base = emulator.rstrip("/") if emulator else "https://storage.googleapis.com"
    if "://" not in base:
        base = f"http://{base}"
    return f"{base}/{parts.netloc}/{urllib.parse.quote(urllib.parse.unquote(name), safe='/')}"


def fetch_gs(
    url: str,
    get: HttpGet,
    *,
    env: Mapping[str, str] | None = None,
    access_token: Callable[[], str | None] = lambda: None,
) -> bytes:
    env = os.environ if env is None else env
    token = access_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return get(gs_object_url(url, env), headers)


# ------------------------------------------------------ the instance's own credentials

EC2_METADATA = "http://169.254.169.254"
GCE_METADATA = "http://metadata.google.internal"
METADATA_TIMEOUT_S = 2.0  # off the cloud nothing answers: give up quickly


def _metadata_request(url: str, method: str = "GET", headers: Mapping[str, str] = {}) -> bytes:
    # Never through a proxy: the metadata service is link-local.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, method=method, headers=dict(headers))
    with opener.open(request, timeout=METADATA_TIMEOUT_S) as response:
        return bytes(response.read(1 << 20))


def ec2_role_credentials(base: str = EC2_METADATA) -> AwsCredentials | None:
    """The instance role's temporary keys (IMDSv2), or None off EC2 or without a role."""
    try:
        token = _metadata_request(
            f"{base}/latest/api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "300"}
        ).decode()
        headers = {"X-aws-ec2-metadata-token": token}
        roles_url = f"{base}/latest/meta-data/iam/security-credentials/"
        role = _metadata_request(roles_url, headers=headers).decode().split()[0]
        return role_credentials_from_document(_metadata_request(roles_url + role, headers=headers))
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def gce_access_token(base: str = GCE_METADATA) -> str | None:
    """The default service account's OAuth token, or None off GCE."""
    url = f"{base}/computeMetadata/v1/instance/service-accounts/default/token"
    try:
        document = json.loads(_metadata_request(url, headers={"Metadata-Flavor": "Google"}))
        token = document.get("access_token")
        return token if isinstance(token, str) and token else None
    except (OSError, ValueError, AttributeError):
        return None
