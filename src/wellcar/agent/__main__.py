"""``python -m wellcar.agent run``: the node daemon's lean entry point (no CLI libraries)."""

import sys

# httpx imports its optional command-line tool (click, rich, pygments: several MB) when
# those are installed; the daemon never uses it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

from wellcar.agent.runner import main  # noqa: E402

sys.exit(main())
