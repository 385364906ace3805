"""The update.conf keys are declared once (wellcar.agent.settings.SETTINGS); the loader,
AgentConfig and docs/agent.md follow that table."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from wellcar.agent.config import AgentConfig, default_state_dir, load_config, settings_markdown
from wellcar.agent.settings import SETTINGS

DOCS = Path(__file__).resolve().parents[2] / "docs/agent.md"


def test_docs_table_is_generated_from_the_settings() -> None:
    text = DOCS.read_text()
    match = re.search(
        r"<!-- settings-table:begin -->\n(.*?)<!-- settings-table:end -->", text, re.S
    )
    assert match is not None, "docs/agent.md lost its settings-table markers"
    assert match.group(1) == settings_markdown(), (
        "docs/agent.md is stale: regenerate with "
        "python -c 'from wellcar.agent.config import settings_markdown as m; print(m())'"
    )


def test_every_setting_names_a_field_and_every_key_once() -> None:
    names = {f.name for f in fields(AgentConfig)}
    assert {s.field for s in SETTINGS} <= names
    keys = [k for s in SETTINGS for k in s.keys("WELLCAR")]
    assert len(keys) == len(set(keys))


def test_every_key_is_known_to_the_loader(tmp_path: Path) -> None:
    conf = tmp_path / "etc/wellcar/update.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("".join(f"{k}=\n" for s in SETTINGS for k in s.keys("WELLCAR")))
    assert not any("unknown key" in w for w in load_config(tmp_path).warnings)


def test_the_default_state_dir_is_the_same_everywhere() -> None:
    assert AgentConfig().state_dir == default_state_dir(Path("/"), "wellcar")
    assert load_config(Path("/nonexistent-root")).state_dir == default_state_dir(
        Path("/nonexistent-root"), "wellcar"
    )
