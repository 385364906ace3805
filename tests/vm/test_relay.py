"""The guestfwd relay process carries bytes both ways to a service on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading


def test_relay_round_trip_to_a_loopback_service() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer_once() -> None:
            connection, _ = server.accept()
            with connection:
                request = b""
                while chunk := connection.recv(1024):  # until the relay's half-close
                    request += chunk
                connection.sendall(b"got " + request)

        service = threading.Thread(target=answer_once)
        service.start()
        result = subprocess.run(
            [sys.executable, "-m", "wellcar.vm.relay", "127.0.0.1", str(port)],
            input=b"hello",
            capture_output=True,
            timeout=20,
            check=False,
        )
        service.join(5)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"got hello"


def test_relay_refuses_any_host_but_loopback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wellcar.vm.relay", "10.0.0.1", "80"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2
    assert "only 127.0.0.1" in result.stderr
