"""Putting an agent together from its configuration: the real parts for a node.

Tests and the file-backed end-to-end run build :class:`AgentParts` the same way, with a
different backend and health runner; nothing here decides anything.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from wellcar.agent.config import AgentConfig, RebootStrategy
from wellcar.agent.daemon import AgentParts
from wellcar.agent.errors import ConfigError
from wellcar.agent.fleetlock_client import FleetLockClient, app_specific_machine_id
from wellcar.agent.health import BootAssessor, CommandCheck, HealthCheck, HealthRunner
from wellcar.agent.node_identity import NodeIdentity
from wellcar.agent.reboot import SessionLister, logged_in_sessions, make_reboot_strategy
from wellcar.agent.slot_backend import SlotBackend
from wellcar.agent.state_dir import StateDir
from wellcar.agent.trusted_payload import TrustGate
from wellcar.payload.errors import PayloadKeyError
from wellcar.payload.signing import TrustedKeys, load_trusted_keys

AGENT_UNIT = "wellcar-agent.service"


def health_check_from(config: AgentConfig) -> HealthCheck:
    command = CommandCheck(config.health_command) if config.health_command else None
    return HealthCheck(
        required_units=config.health_units,
        command=command,
        grace_period=config.boot_assessment_grace.total_seconds(),
        agent_unit=AGENT_UNIT,
    )


def trusted_keys_from(config: AgentConfig, allow_unsigned: bool = False) -> TrustedKeys | None:
    """The payload keys shipped in /usr; refusing to run without them unless told to."""
    try:
        return load_trusted_keys([config.payload_key_dir])
    except PayloadKeyError as exc:
        if allow_unsigned:
            return None
        raise ConfigError(
            f"no payload signing keys in {config.payload_key_dir} ({exc}); the agent installs "
            "only signed payloads"
        ) from None


def required_keys(config: AgentConfig, allow_unsigned: bool = False) -> TrustedKeys | None:
    """The payload keys, required only when updates are enabled: with ``SERVER=disabled``
    the agent installs nothing and still assesses boots, so missing keys do not block it."""
    if not config.updates_enabled:
        return None
    return trusted_keys_from(config, allow_unsigned)


def build_parts(
    config: AgentConfig,
    identity: NodeIdentity,
    backend: SlotBackend,
    *,
    http: httpx.Client | None = None,
    runner: HealthRunner | None = None,
    sessions: SessionLister | None = None,
    trusted_keys: TrustedKeys | None = None,
    allow_unsigned: bool = False,
    assessment_state: Path | None = None,
) -> AgentParts:
    client = http or httpx.Client(timeout=config.http_timeout.total_seconds())
    fleetlock = None
    if config.reboot_strategy is RebootStrategy.FLEET_LOCK:
        if not config.fleetlock_url:
            raise ConfigError("REBOOT_STRATEGY=fleet-lock needs FLEETLOCK_URL (or SERVER)")
        node_id = app_specific_machine_id(identity.machine_id)
        fleetlock = FleetLockClient(config.fleetlock_url, node_id, config.fleetlock_group)
    reboot = make_reboot_strategy(
        config.reboot_strategy.value,
        window=config.reboot_window,
        fleetlock=fleetlock,
        sessions=sessions or logged_in_sessions,
    )
    assessor = BootAssessor(
        backend,
        health_check_from(config),
        assessment_state or StateDir(config.state_dir).boot_assessment,
        runner=runner,
    )
    keys = trusted_keys if trusted_keys is not None else required_keys(config, allow_unsigned)
    trust = TrustGate.from_config(config)  # logs whether TUF is on: once, at start
    return AgentParts(config, identity, backend, client, keys, reboot, assessor, trust=trust)
