"""The node's update agent: update_engine's logic (and locksmith's reboot
policy inputs) as a library. The daemon loop, CLI, boot assessment and reboot
strategies build on these modules:

* :mod:`.settings` -- every update.conf key, declared once (``SETTINGS``);
* :mod:`.config` -- update.conf / release file → ``AgentConfig`` (``load_config``);
* :mod:`.node_identity` -- machine id, boot id, OEM (``load_identity``);
* :mod:`.semver`, :mod:`.durations`, :mod:`.reboot_window`, :mod:`.conf_file` -- the value
  syntaxes; :mod:`.state_dir` -- the names of the files under ``STATE_DIR``;
* :mod:`.schedule` -- when to check (``CheckSchedule``);
* :mod:`.state` -- the ``UPDATE_STATUS_*`` state machine;
* :mod:`.status_store` -- the persisted ``AgentStatus`` and crash ``recover``;
* :mod:`.omaha_client` -- Omaha requests and typed answers (``OmahaClient``);
* :mod:`.download` -- resumable, verified payload download;
* :mod:`.errors` -- ``AgentError`` and friends, each with an ``error_code``.

See docs/agent.md.
"""

from __future__ import annotations

from .config import AgentConfig, RebootStrategy, load_config
from .download import download_payload
from .errors import (
    AgentError,
    ConfigError,
    DownloadError,
    InstallError,
    InvalidTransition,
    OmahaExchangeError,
    OmahaHTTPError,
    PayloadHashMismatch,
    PayloadSizeMismatch,
    ServerUnreachable,
    StateError,
    UpdatesDisabledError,
    VerificationError,
)
from .node_identity import NodeIdentity, load_identity
from .omaha_client import CheckResult, InstallSource, NoUpdate, OmahaClient, UpdateOffer
from .reboot_window import RebootWindow
from .schedule import CheckSchedule
from .state import Trigger, UpdateState
from .status_store import AgentStatus, StatusStore, recover

__all__ = [
    "AgentConfig",
    "AgentError",
    "AgentStatus",
    "CheckResult",
    "CheckSchedule",
    "ConfigError",
    "DownloadError",
    "InstallError",
    "InstallSource",
    "InvalidTransition",
    "NoUpdate",
    "NodeIdentity",
    "OmahaClient",
    "OmahaExchangeError",
    "OmahaHTTPError",
    "PayloadHashMismatch",
    "PayloadSizeMismatch",
    "RebootStrategy",
    "RebootWindow",
    "ServerUnreachable",
    "StateError",
    "StatusStore",
    "Trigger",
    "UpdateOffer",
    "UpdateState",
    "UpdatesDisabledError",
    "VerificationError",
    "download_payload",
    "load_config",
    "load_identity",
    "recover",
]
