"""Relay one guest connection (stdin/stdout, from QEMU's ``guestfwd=...-cmd:``) to a host port.

QEMU starts this once per guest connection. Only 127.0.0.1 is accepted as the target, so a
guest forward can never be turned into a route to another machine.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

from wellcar.vm.config import LOOPBACK

CHUNK = 65536


def _pump_stdin_to_socket(connection: socket.socket) -> None:
    stdin = sys.stdin.fileno()
    while data := os.read(stdin, CHUNK):
        connection.sendall(data)
    # Tell the host service the guest finished sending, but keep reading its answer.
    connection.shutdown(socket.SHUT_WR)


def relay(host: str, port: int) -> int:
    if host != LOOPBACK:
        print(f"wellcar.vm.relay: refusing host {host!r}; only {LOOPBACK}", file=sys.stderr)
        return 2
    try:
        connection = socket.create_connection((host, port), timeout=10)
    except OSError as exc:
        print(f"wellcar.vm.relay: cannot connect to {host}:{port}: {exc}", file=sys.stderr)
        return 1
    connection.settimeout(None)
    sender = threading.Thread(target=_pump_stdin_to_socket, args=(connection,), daemon=True)
    sender.start()
    stdout = sys.stdout.fileno()
    with connection:
        while data := connection.recv(CHUNK):
            os.write(stdout, data)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m wellcar.vm.relay 127.0.0.1 PORT", file=sys.stderr)
        return 2
    return relay(argv[0], int(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
