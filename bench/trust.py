"""TUF verification cost per update check and per payload, beside the whole check+install.

In one run, against a release tree served over HTTP on 127.0.0.1:

- metadata refresh for an update check: cold (new node: root, timestamp, snapshot,
  targets) and warm (cache present, repository re-signed its timestamp since);
- payload verification (length + SHA-256 of the downloaded payload against its target);
- the rest of a check + install done the same run: payload download (httpx) and
  ``wellcar.payload.apply`` of the payload into a file standing in for the slot;
- the same refresh with securesystemslib's pure-Python Ed25519 (what a node with Debian
  bookworm's cryptography 38 uses), since that is the node's real cost.

It prints each figure and the ratio of TUF work to the whole check + install.

    .venv/bin/python bench/trust.py [--usr-mib 64] [--history 100] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from wellcar.payload.apply import ApplyTargets, apply_payload
from wellcar.payload.generate import GenerateOptions, PayloadInputs, generate_payload
from wellcar.payload.reader import file_opener
from wellcar.payload.signing import (
    KeyAlgorithm,
    SigningKey,
    TrustedKey,
    TrustedKeys,
    generate_key,
)
from wellcar.payload.targets import TargetRegion
from wellcar.trust.client import TrustedUpdateVerifier
from wellcar.trust.keys import Keyring
from wellcar.trust.repository import TargetEntry, TrustRepository

BOARD = "amd64-usr"
VERSION = "4799.2.0"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def _serve(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _usr_image(path: Path, mib: int) -> None:
    """Half random, half zero 4 KiB blocks: compresses about 2:1, like a /usr image."""
    with path.open("wb") as out:
        for _ in range(mib * 256):
            out.write(os.urandom(2048) + bytes(2048))


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def run(usr_mib: int, history: int, repeat: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="wellcar-bench-trust-"))
    try:
        tree = work / "tree"
        repo, _ = TrustRepository.initialize(tree, work / "keys")
        keys = Keyring.load([work / "keys"])
        # A repository with history: earlier releases' targets make metadata realistic.
        entries = []
        for i in range(history):
            version = f"{4000 + i}.2.0"  # all older than VERSION
            d = tree / "stable" / BOARD / version
            d.mkdir(parents=True)
            for name in ("update.payload", "disk.img", "version.txt", "DIGESTS"):
                (d / name).write_bytes(f"{version} {name}".encode())
                custom = {"version": version, "channel": "stable", "board": BOARD}
                entries.append(TargetEntry(f"stable/{BOARD}/{version}/{name}", d / name, custom))
        usr = work / "usr.img"
        _usr_image(usr, usr_mib)
        payload_key = SigningKey(generate_key(KeyAlgorithm.ED25519), "bench")
        release_dir = tree / "stable" / BOARD / VERSION
        release_dir.mkdir(parents=True)
        payload = release_dir / "update.payload"
        generate_payload(
            PayloadInputs(new_usr=usr), payload, [payload_key], GenerateOptions(try_bsdiff=False)
        )
        name = f"stable/{BOARD}/{VERSION}/update.payload"
        custom = {"version": VERSION, "channel": "stable", "board": BOARD}
        entries.append(TargetEntry(name, payload, custom))
        repo.stage_targets(entries)
        repo.publish(keys)
        targets_bytes = tree / "metadata" / f"{repo.targets().signed.version}.targets.json"
        server, url = _serve(tree)
        root = tree / "metadata" / "1.root.json"
        counter = iter(range(10_000))

        def cold() -> TrustedUpdateVerifier:
            verifier = TrustedUpdateVerifier(work / f"node-{next(counter)}", root, url, board=BOARD)
            verifier.refresh()
            return verifier

        warm_dir = work / "node-warm"
        TrustedUpdateVerifier(warm_dir, root, url, board=BOARD).refresh()

        def warm() -> TrustedUpdateVerifier:
            repo.refresh_online(keys, now=datetime.now(UTC))  # a new timestamp each check
            verifier = TrustedUpdateVerifier(warm_dir, root, url, board=BOARD)
            verifier.refresh()
            return verifier

        cold_s, verifier = _timed(cold, repeat)
        warm_s, _ = _timed(warm, repeat)
        # Time only the client in `warm`: subtract the repository's own re-signing.
        resign_s, _ = _timed(lambda: repo.refresh_online(keys), repeat)
        warm_client_s = max(warm_s - resign_s, 0.0)
        lookup_s, target = _timed(lambda: verifier.find_payload(VERSION), repeat)

        downloaded = work / "downloaded.payload"

        def download() -> None:
            with httpx.stream("GET", f"{url}/{name}") as resp, downloaded.open("wb") as out:
                for chunk in resp.iter_bytes(1 << 20):
                    out.write(chunk)

        download_s, _ = _timed(download, repeat)
        verify_s, _ = _timed(lambda: verifier.verify_payload(name, downloaded, "4790.2.0"), repeat)
        slot = work / "slot.img"
        trusted = TrustedKeys((TrustedKey(payload_key.public_key, "bench"),))

        def apply() -> None:
            slot.unlink(missing_ok=True)
            apply_payload(file_opener(downloaded), ApplyTargets(usr=TargetRegion(slot)), trusted)

        apply_s, _ = _timed(apply, repeat)

        # The node's Ed25519: securesystemslib's pure-Python fallback (cryptography 38).
        from securesystemslib.signer import _key as sslib_key

        saved = sslib_key.CRYPTO_IMPORT_ERROR
        sslib_key.CRYPTO_IMPORT_ERROR = "bench: as on Debian bookworm (cryptography 38)"
        try:
            cold_pure_s, _ = _timed(cold, max(1, repeat // 2))
        finally:
            sslib_key.CRYPTO_IMPORT_ERROR = saved
        server.shutdown()
        server.server_close()

        tuf_check = warm_client_s + lookup_s
        whole = tuf_check + download_s + verify_s + apply_s
        return {
            "payload_mib": payload.stat().st_size / (1 << 20),
            "targets": float(len(entries)),
            "targets_metadata_kib": targets_bytes.stat().st_size / 1024,
            "refresh_cold_ms": cold_s * 1000,
            "refresh_warm_ms": warm_client_s * 1000,
            "refresh_cold_pure_python_ed25519_ms": cold_pure_s * 1000,
            "find_payload_ms": lookup_s * 1000,
            "verify_payload_ms": verify_s * 1000,
            "download_ms": download_s * 1000,
            "apply_ms": apply_s * 1000,
            "target_length": float(target.length),
            "whole_check_install_ms": whole * 1000,
            "tuf_share_of_whole": (tuf_check + verify_s) / whole,
            "tuf_share_cold_pure_python": (cold_pure_s + lookup_s + verify_s)
            / (cold_pure_s + lookup_s + download_s + verify_s + apply_s),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usr-mib", type=int, default=64, help="size of the /usr image")
    parser.add_argument("--history", type=int, default=100, help="earlier releases in targets")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.usr_mib, args.history, args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    kib, count = result["targets_metadata_kib"], result["targets"]
    print(f"payload {result['payload_mib']:.1f} MiB; targets metadata {kib:.0f} KiB ({count:.0f})")
    print("per update check:")
    print(f"  metadata refresh, warm cache (new timestamp) {result['refresh_warm_ms']:8.1f} ms")
    print(f"  metadata refresh, cold (new node)            {result['refresh_cold_ms']:8.1f} ms")
    print(f"  same, pure-Python Ed25519 (node, crypto 38)  "
          f"{result['refresh_cold_pure_python_ed25519_ms']:8.1f} ms")  # fmt: skip
    print(f"  find the signed payload                      {result['find_payload_ms']:8.2f} ms")
    print("per payload:")
    print(f"  verify length + sha256 of the payload        {result['verify_payload_ms']:8.1f} ms")
    print(f"  download (HTTP, 127.0.0.1)                   {result['download_ms']:8.1f} ms")
    print(f"  apply (wellcar.payload.apply)                {result['apply_ms']:8.1f} ms")
    print(
        f"whole check + install                          {result['whole_check_install_ms']:8.1f} ms"
    )
    print(f"TUF share of the whole (warm refresh + verify): {result['tuf_share_of_whole']:.1%}")
    print(f"TUF share, cold refresh with pure-Python Ed25519: "
          f"{result['tuf_share_cold_pure_python']:.1%}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
