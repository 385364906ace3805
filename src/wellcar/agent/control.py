"""The control socket: how ``wellcar agent status|check|update|reset|rollback`` talk to a
running ``wellcar agent run`` (update_engine_client and update_engine's D-Bus interface).

The protocol is one JSON object per line over a Unix stream socket,
``<state_dir>/agent.sock`` (mode 0600): the client sends one request line
(``{"command": "status"}``) and reads one response line, ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``, then the connection closes. Requests are at most
:data:`MAX_REQUEST_BYTES` and must arrive within :data:`REQUEST_READ_TIMEOUT` seconds.

Commands:

* ``status``: the saved :class:`AgentStatus`, both slots, the boot report, the daemon.
* ``check`` (``-check_for_update``): ask the update loop to check now
  (:meth:`UpdateAgent.request_check`) and wait up to ``wait`` seconds for what the check
  found (``no-update``, ``update-available``: the install goes on in the background,
  ``check-failed``). ``requested`` when no result came within ``wait``.
* ``update`` (``-update``): check and install now, answering when done
  (:meth:`UpdateAgent.check`): ``no-update``, ``updated-need-reboot``, ``rebooting``,
  ``failed``, ``check-failed``.
* ``reset`` (``-reset_status``): forget an installed update waiting for a reboot.
* ``rollback``: boot the other slot next (it must be able to boot).

:class:`AgentService` runs :meth:`UpdateAgent.run` in a thread with the control server
beside it; that is all ``wellcar agent run`` does besides signals and logging.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import socket
import socketserver
import stat
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from wellcar.agent.config import AgentConfig
from wellcar.agent.daemon import UpdateAgent
from wellcar.agent.errors import AgentError
from wellcar.agent.health import BootReport
from wellcar.agent.omaha_client import InstallSource
from wellcar.agent.semver import is_newer_version
from wellcar.agent.slot_backend import SlotBackendError
from wellcar.agent.state import BUSY_STATES, UpdateState
from wellcar.agent.state_dir import StateDir
from wellcar.agent.status_store import AgentStatus, StatusStore, encode_status
from wellcar.disk import DiskError, SlotInfo
from wellcar.logline import log_fields

__all__ = [
    "COMMANDS",
    "MAX_REQUEST_BYTES",
    "AgentAlreadyRunningError",
    "AgentNotRunningError",
    "AgentService",
    "ControlCommandError",
    "ControlError",
    "ControlProtocolError",
    "ControlServer",
    "ControlTimeoutError",
    "StatusFeed",
    "agent_pid",
    "read_slots",
    "request",
    "slot_json",
    "socket_path",
    "status_document",
    "take_agent_lock",
]

log = logging.getLogger(__name__)

COMMANDS = ("status", "check", "update", "reset", "rollback", "install", "need-reboot")
MAX_REQUEST_BYTES = 4096
MAX_RESPONSE_BYTES = 1024 * 1024
REQUEST_READ_TIMEOUT = 5.0
MAX_CHECK_WAIT = 600.0
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107


# ------------------------------------------------------------------------------ errors


class ControlError(Exception):
    """The control channel could not be used."""


class AgentNotRunningError(ControlError):
    """Nothing listens on the control socket."""


class AgentAlreadyRunningError(ControlError):
    """Another agent holds this state directory."""


class ControlTimeoutError(ControlError):
    """The agent did not answer in time."""


class ControlProtocolError(ControlError):
    """The other side did not speak the protocol (garbage, oversized, cut off)."""


class ControlCommandError(ControlError):
    """The agent answered, and refused or failed the command (``"ok": false``)."""


class _Refused(Exception):
    """Raised inside a command: answered as ``{"ok": false, "error": message}``."""


def socket_path(config: AgentConfig) -> Path:
    return StateDir(config.state_dir).socket


def _checked_socket_path(path: Path) -> str:
    text = os.fsencode(path)
    if len(text) > MAX_SOCKET_PATH_BYTES:
        raise ControlError(
            f"control socket path {path} is {len(text)} bytes; Unix sockets allow "
            f"{MAX_SOCKET_PATH_BYTES} (use a shorter STATE_DIR)"
        )
    return str(path)


# ----------------------------------------------------------------------- status document


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _status_json(status: AgentStatus) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(encode_status(status))
    document.pop("schema", None)
    return document


def slot_json(info: SlotInfo) -> dict[str, Any]:
    record = info.record
    return {
        "slot": info.slot.value,
        "label": info.partition.label,
        "partition": info.partition.number,
        "state": info.state.value,
        "active": info.active,
        "priority": info.prio.priority,
        "tries": info.prio.tries,
        "successful": info.prio.successful,
        "version": record.version,
        "sha256": record.sha256,
        "made_bootable_at": _stamp(record.made_bootable_at),
        "marked_good_at": _stamp(record.marked_good_at),
        "marked_bad_at": _stamp(record.marked_bad_at),
    }


def read_slots(
    slots: Callable[[], Sequence[SlotInfo]],
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Both slots as JSON, or None and why they could not be read (status must still work
    when the disk cannot be read, e.g. without root)."""
    try:
        return [slot_json(info) for info in slots()], None
    except (DiskError, SlotBackendError, OSError) as exc:
        return None, str(exc) or type(exc).__name__


def status_document(
    status: AgentStatus,
    config: AgentConfig,
    *,
    daemon: dict[str, Any],
    slots: list[dict[str, Any]] | None,
    slots_error: str | None = None,
    boot: BootReport | None = None,
) -> dict[str, Any]:
    """What ``wellcar agent status --json`` prints, with or without a running daemon."""
    return {
        "status": _status_json(status),
        "daemon": daemon,
        "config": {
            "server": config.server,
            "group": config.group,
            "channel": config.channel,
            "version": config.version,
            "reboot_strategy": config.reboot_strategy.value,
            "state_dir": str(config.state_dir),
        },
        "slots": slots,
        "slots_error": slots_error,
        "boot": boot.to_json() if boot is not None else None,
    }


# ---------------------------------------------------------------------------- the feed


class StatusFeed(StatusStore):
    """A :class:`StatusStore` that also tells waiting threads about every save.

    The daemon saves its status before each step, so the saves are the loop's progress;
    the control server waits on them to answer ``check`` with what the check found.
    """

    KEPT = 64

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._changed = threading.Condition()
        self._seq = 0
        self._recent: deque[tuple[int, AgentStatus]] = deque(maxlen=self.KEPT)

    @property
    def seq(self) -> int:
        """The number of saves so far; pass it to :meth:`wait_for` as ``after``."""
        with self._changed:
            return self._seq

    def save(self, status: AgentStatus) -> None:
        super().save(status)
        with self._changed:
            self._seq += 1
            self._recent.append((self._seq, status))
            self._changed.notify_all()

    def wait_for(
        self, predicate: Callable[[AgentStatus], bool], *, after: int, deadline: float
    ) -> tuple[int, AgentStatus] | None:
        """The first status saved after save number ``after`` that matches, waiting until
        ``deadline`` (``time.monotonic()``); None when none did by then."""
        with self._changed:
            while True:
                for seq, status in self._recent:
                    if seq > after and predicate(status):
                        return seq, status
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)


# -------------------------------------------------------------------------- the lock


def take_agent_lock(state_dir: Path) -> TextIO:
    """``STATE_DIR/agent.lock``, flock'ed and holding our pid: one agent per state
    directory, running or blocked. Closing the handle releases it. The file is readable
    by everyone, so :func:`agent_pid` works without root."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_path = StateDir(state_dir).lock
    handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held by the caller
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read(32).strip() or "?"
        handle.close()
        raise AgentAlreadyRunningError(
            f"another agent (pid {holder}) is running on {state_dir} (it holds {lock_path})"
        ) from None
    os.chmod(lock_path, 0o644)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def agent_pid(state_dir: Path) -> int | None:
    """The pid of the agent (running or blocked) that holds ``STATE_DIR/agent.lock``, or
    None when no agent holds it; 0 when one does but its pid is unreadable."""
    try:
        handle = open(StateDir(state_dir).lock, encoding="utf-8")  # noqa: SIM115
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read(32).strip()
            return int(text) if text.isdigit() else 0
        except OSError:
            return None
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


# ------------------------------------------------------------------------ the server


def _peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process on the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


class _Handler(socketserver.StreamRequestHandler):
    server: _UnixServer
    timeout = REQUEST_READ_TIMEOUT  # for reading the request; answers are small

    def handle(self) -> None:
        pid, uid, _ = _peer_credentials(self.connection)
        if uid not in (0, os.geteuid()):
            # The socket is 0600 already; this only matters if its mode was changed.
            log.warning("control: refused a request", extra=log_fields(uid=uid, peer_pid=pid))
            self._reply({"ok": False, "error": "permission denied"})
            return
        try:
            line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
        except TimeoutError:
            self._reply({"ok": False, "error": f"no request within {REQUEST_READ_TIMEOUT:g} s"})
            return
        except OSError:
            return
        if len(line) > MAX_REQUEST_BYTES:
            self._reply({"ok": False, "error": f"request larger than {MAX_REQUEST_BYTES} bytes"})
            return
        self._reply(self.server.control.handle_line(line, peer_pid=pid))

    def _reply(self, response: dict[str, Any]) -> None:
        data = json.dumps(response, separators=(",", ":")).encode() + b"\n"
        with contextlib.suppress(OSError):  # the client gave up waiting: nothing to do
            self.wfile.write(data)


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    control: ControlServer


class ControlServer:
    """Serves the control socket for ``agent`` in a thread of its own.

    One server per state directory: :meth:`start` takes ``<state_dir>/agent.lock`` (an
    ``flock`` held until :meth:`close`), so a leftover socket file is known to be stale and
    is replaced. The socket is created with mode 0600.
    """

    def __init__(self, agent: UpdateAgent, path: Path | None = None) -> None:
        self.agent = agent
        self.path = path or socket_path(agent.config)
        if isinstance(agent.store, StatusFeed):
            self.feed = agent.store
        else:
            self.feed = StatusFeed(agent.store.path)
            agent.store = self.feed
        self.started_at = datetime.now(UTC)
        self._server: _UnixServer | None = None
        self._thread: threading.Thread | None = None
        self._lock_file: TextIO | None = None

    # -- life cycle

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        address = _checked_socket_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            self._remove_stale_socket()
            server = _UnixServer(address, _Handler, bind_and_activate=False)
            server.control = self
            old_umask = os.umask(0o177)  # the socket file is born 0600: no window to connect
            try:
                server.server_bind()
            finally:
                os.umask(old_umask)
            os.chmod(self.path, 0o600)
            server.server_activate()
        except BaseException:
            self._release_lock()
            raise
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.2,), name="agent-control", daemon=True
        )
        self._thread.start()
        log.info("control socket listening", extra=log_fields(path=self.path))

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._release_lock()

    def _take_lock(self) -> None:
        self._lock_file = take_agent_lock(self.path.parent)

    def _release_lock(self) -> None:
        handle, self._lock_file = self._lock_file, None
        if handle is not None:
            handle.close()  # closing drops the flock

    def _remove_stale_socket(self) -> None:
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise ControlError(f"{self.path} exists and is not a socket: not replacing it")
        log.info("removing the stale control socket", extra=log_fields(path=self.path))
        self.path.unlink()

    # -- requests

    def handle_line(self, line: bytes, *, peer_pid: int | None = None) -> dict[str, Any]:
        """One request line in, one response object out (never raises)."""
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):
            return {"ok": False, "error": "the request is not one JSON object on one line"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "the request is not a JSON object"}
        command = request.get("command")
        if command not in COMMANDS:
            shown = command[:40] if isinstance(command, str) else command
            return {
                "ok": False,
                "error": f"unknown command {shown!r} (known: {', '.join(COMMANDS)})",
            }
        started = time.monotonic()
        try:
            response = self.handle(command, request)
        except _Refused as exc:
            log.info(
                "control command refused",
                extra=log_fields(command=command, peer_pid=peer_pid, error=exc),
            )
            return {"ok": False, "command": command, "error": str(exc)}
        except (AgentError, DiskError, SlotBackendError) as exc:
            log.warning(
                "control command failed",
                extra=log_fields(command=command, peer_pid=peer_pid, error=exc),
            )
            return {"ok": False, "command": command, "error": str(exc)}
        except Exception as exc:  # a bug must not take the control server down
            log.exception(
                "control command: internal error",
                extra=log_fields(command=command, peer_pid=peer_pid),
            )
            return {"ok": False, "command": command, "error": f"internal error: {exc!r}"}
        log.info(
            "control command",
            extra=log_fields(
                command=command,
                peer_pid=peer_pid,
                result=response.get("result", "ok"),
                seconds=round(time.monotonic() - started, 3),
            ),
        )
        return {"ok": True, "command": command, **response}

    def handle(self, command: str, request: dict[str, Any]) -> dict[str, Any]:
        if command == "status":
            return self.status()
        if command == "check":
            wait = request.get("wait", 30.0)
            valid = isinstance(wait, int | float) and not isinstance(wait, bool)
            if not valid or not math.isfinite(wait) or wait < 0:
                raise _Refused("'wait' must be a number of seconds >= 0")
            return self.check(min(float(wait), MAX_CHECK_WAIT))
        if command == "update":
            return self.update()
        if command == "reset":
            return self.reset()
        if command == "install":
            payload, version = request.get("payload"), request.get("version")
            if not isinstance(payload, str) or not payload.startswith("/"):
                raise _Refused("'payload' must be the absolute path of a payload file")
            if not isinstance(version, str) or not version:
                raise _Refused("'version' must be the payload's version")
            return self.install(Path(payload), version)
        if command == "need-reboot":
            return self.need_reboot()
        return self.rollback()

    def status(self) -> dict[str, Any]:
        agent = self.agent
        status = agent.status()
        slots, slots_error = read_slots(lambda: agent.backend.slot_table().slots())
        daemon = {
            "running": True,
            "pid": os.getpid(),
            "started_at": self.started_at.isoformat(),
            "busy": status.state in BUSY_STATES,
            "rebooting": agent.rebooting,
        }
        return status_document(
            status, agent.config, daemon=daemon, slots=slots, slots_error=slots_error,
            boot=agent.report,
        )  # fmt: skip

    @staticmethod
    def _answer(result: str, message: str, status: AgentStatus) -> dict[str, Any]:
        return {"result": result, "message": message, "status": _status_json(status)}

    def _refuse_if_disabled(self) -> None:
        if not self.agent.config.updates_enabled:
            raise _Refused("updates are disabled: update.conf sets no usable SERVER")

    def check(self, wait: float) -> dict[str, Any]:
        agent, answer = self.agent, self._answer
        self._refuse_if_disabled()
        status = agent.status()
        if agent.rebooting:
            return answer("rebooting", "the node is rebooting", status)
        if status.state is UpdateState.UPDATED_NEED_REBOOT:
            message = f"update {status.new_version} is installed and waits for a reboot"
            return answer("updated-need-reboot", message, status)
        if status.state in BUSY_STATES:
            message = f"an update check is already in progress ({status.state})"
            return answer("in-progress", message, status)
        seq = self.feed.seq
        agent.request_check(InstallSource.ON_DEMAND)
        deadline = time.monotonic() + wait
        started = self.feed.wait_for(
            lambda s: s.state is UpdateState.CHECKING_FOR_UPDATE, after=seq, deadline=deadline
        )
        if started is None:
            return answer("requested", "update check requested", agent.status())
        start_seq, at_start = started
        ended = self.feed.wait_for(
            lambda s: s.state is not UpdateState.CHECKING_FOR_UPDATE,
            after=start_seq,
            deadline=deadline,
        )
        if ended is None:
            return answer("requested", "update check started; no answer yet", agent.status())
        _, found = ended
        # The save after CHECKING_FOR_UPDATE is what the check found: an offer
        # (UPDATE_AVAILABLE), no update (IDLE, checked in: a new last_check_time), no
        # answer from the server (IDLE with the error, last_check_time untouched) or an
        # unusable answer, which is reported to the server (REPORTING_ERROR_EVENT).
        if found.state is UpdateState.UPDATE_AVAILABLE:
            message = f"update {found.new_version} found: installing in the background"
            return answer("update-available", message, found)
        if found.state is UpdateState.IDLE and found.last_check_time != at_start.last_check_time:
            return answer("no-update", "no update available", found)
        return answer("check-failed", _failure("update check failed", found), found)

    def update(self) -> dict[str, Any]:
        self._refuse_if_disabled()
        result = self.agent.check(InstallSource.ON_DEMAND).value
        status = self.agent.status()
        messages = {
            "no-update": "no update available",
            "updated-need-reboot": f"update {status.new_version} installed: reboot needed",
            "rebooting": "update installed: rebooting",
            "failed": _failure("update failed", status),
            "check-failed": _failure("update check failed", status),
        }
        return self._answer(result, messages.get(result, result), status)

    def install(self, payload: Path, version: str) -> dict[str, Any]:
        """An offline update from a payload file (``wellcar agent update --payload``)."""
        self._refuse_if_busy("install a payload file")
        if not payload.is_file():
            raise _Refused(f"{payload}: no such file")
        current = self.agent.running_version()
        if is_newer_version(current, version):
            raise _Refused(f"{version} is older than the running version {current}")
        result = self.agent.install_local(payload, version).value
        status = self.agent.status()
        messages = {
            "updated-need-reboot": f"update {version} installed: reboot needed",
            "rebooting": "update installed: rebooting",
            "failed": _failure("update failed", status),
        }
        return self._answer(result, messages.get(result, result), status)

    def need_reboot(self) -> dict[str, Any]:
        """locksmithctl send-need-reboot: reboot when the reboot strategy allows."""
        self.agent.request_reboot()
        strategy = self.agent.parts.reboot.name
        return {"message": f"reboot requested (strategy {strategy})"}

    def _refuse_if_busy(self, what: str) -> None:
        state = self.agent.status().state
        if state in BUSY_STATES or state is UpdateState.REPORTING_ERROR_EVENT:
            raise _Refused(f"an update is in progress ({state}): {what} when it is done")

    def reset(self) -> dict[str, Any]:
        self._refuse_if_busy("reset")
        status = self.agent.reset()
        return {"status": _status_json(status)}

    def rollback(self) -> dict[str, Any]:
        self._refuse_if_busy("roll back")
        slot = self.agent.rollback()
        info = self.agent.backend.slot_table().slot(slot)
        return {"slot": slot_json(info)}


def _failure(what: str, status: AgentStatus) -> str:
    return f"{what} (code {status.last_error_code}): {status.last_error_message}"


# ----------------------------------------------------------------------- the service


class AgentService:
    """:meth:`UpdateAgent.run` in a thread, with the control server beside it."""

    def __init__(self, agent: UpdateAgent, path: Path | None = None) -> None:
        self.agent = agent
        self.control = ControlServer(agent, path)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.control.start()
        self._thread = threading.Thread(target=self._run, name="agent-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.agent.run(self.stop_event)
        except BaseException as exc:
            self.error = exc
            log.exception("the update loop stopped")

    def request_stop(self) -> None:
        """Stop after the current step (a check in progress finishes first)."""
        self.stop_event.set()
        # UpdateAgent has no public wake-up yet: the loop sleeps on this event.
        self.agent.wake()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the loop to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        self.request_stop()
        self.control.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[AgentService]:
        self.start()
        try:
            yield self
        finally:
            self.close()
            self.join(timeout=30)


# ------------------------------------------------------------------------ the client


def request(path: Path, command: str, *, timeout: float = 10.0, **arguments: Any) -> dict[str, Any]:
    """Send one command to the agent listening on ``path`` and return its answer.

    Raises :class:`AgentNotRunningError` when nothing listens, :class:`ControlTimeoutError`
    after ``timeout`` seconds in all, :class:`ControlCommandError` when the agent refused
    or failed the command, :class:`ControlProtocolError` for anything unreadable.
    """
    address = _checked_socket_path(path)
    deadline = time.monotonic() + timeout
    line = json.dumps({"command": command, **arguments}, separators=(",", ":")).encode() + b"\n"
    if len(line) > MAX_REQUEST_BYTES:
        raise ControlError(f"request larger than {MAX_REQUEST_BYTES} bytes")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError):
            raise AgentNotRunningError(
                f"no agent is running (nothing listens on {path}; start `wellcar agent run`)"
            ) from None
        except PermissionError:
            raise ControlError(
                f"{path}: permission denied (the agent's socket is root's)"
            ) from None
        except TimeoutError:
            raise ControlTimeoutError(f"the agent did not accept within {timeout:g} s") from None
        except OSError as exc:
            raise ControlError(f"{path}: {exc.strerror or exc}") from None
        try:
            sock.sendall(line)
            data = _read_line(sock, deadline)
        except TimeoutError:
            raise ControlTimeoutError(
                f"the agent did not answer {command!r} within {timeout:g} s"
            ) from None
        except OSError as exc:
            raise ControlProtocolError(f"the connection to the agent broke: {exc}") from None
    try:
        response = json.loads(data)
    except (ValueError, RecursionError):
        raise ControlProtocolError("the agent's answer is not JSON") from None
    if not isinstance(response, dict) or not isinstance(response.get("ok"), bool):
        raise ControlProtocolError("the agent's answer is not a response object")
    if not response["ok"]:
        raise ControlCommandError(str(response.get("error") or "the agent refused"))
    return response


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            raise ControlProtocolError("the agent closed the connection without an answer")
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk:
            return b"".join(chunks).split(b"\n", 1)[0]
        if size > MAX_RESPONSE_BYTES:
            raise ControlProtocolError(f"the agent's answer is larger than {MAX_RESPONSE_BYTES}")
