"""The release tree's web page and stream feeds, written by `release create`; the page is
also opened in a real browser (Debian's chromium through Playwright)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.release.builds import make_build
from tests.release.conftest import Workspace
from wellcar.release.create import create_release
from wellcar.release.site import PAGE, human_size
from wellcar.release.streams import stream_path
from wellcar.release.tree import ReleaseTree

CHROMIUM = Path("/usr/bin/chromium")
IMAGES = ("disk.img", "vmlinuz", "live.iso", "live.vmlinuz", "platform-qemu.qcow2")


@pytest.fixture
def released(ws: Workspace) -> Workspace:
    """alpha 4799.0.0; stable 4799.2.0 then 4800.2.0, whose notes carry a fragment with
    raw HTML in it."""
    changelog = ws.base / "changelog"
    (changelog / "security").mkdir(parents=True)
    (changelog / "security/2026-08-01-curl.md").write_text(
        "- curl: [CVE-2026-1](https://nvd.example/CVE-2026-1) <script>alert(1)</script>"
    )
    create_release(ws.tree, make_build(ws.base / "a", "4799.0.0", extra=IMAGES), "alpha",
                   ws.inputs())  # fmt: skip
    create_release(ws.tree, make_build(ws.base / "s1", "4799.2.0", extra=IMAGES), "stable",
                   ws.inputs())  # fmt: skip
    create_release(ws.tree, make_build(ws.base / "s2", "4800.2.0", extra=IMAGES), "stable",
                   ws.inputs(changelog))  # fmt: skip
    return ws


def test_each_channel_has_a_stream_of_its_current_images(released: Workspace) -> None:
    tree = ReleaseTree(released.tree)
    stream = json.loads(stream_path(tree, "stable").read_text())
    assert stream["stream"] == "stable"
    assert stream["metadata"]["last-modified"].endswith("Z")
    artifacts = stream["architectures"]["x86_64"]["artifacts"]
    assert sorted(artifacts) == ["metal", "qemu"]
    metal = artifacts["metal"]
    assert metal["release"] == "4800.2.0"
    assert sorted(metal["formats"]) == ["iso", "pxe", "raw.zst"]
    assert sorted(metal["formats"]["pxe"]) == ["kernel"]
    for formats in (metal["formats"], artifacts["qemu"]["formats"]):
        for roles in formats.values():
            for entry in roles.values():
                path = released.tree / entry["location"]  # relative to the tree root
                assert entry["location"].startswith("stable/amd64-usr/4800.2.0/")
                assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
                assert path.stat().st_size == entry["size"]
    assert artifacts["qemu"]["formats"]["qcow2"]["disk"]["location"].endswith(".qcow2")
    # The kernel alone and the update payload are not images to boot.
    text = json.dumps(stream)
    assert '/vmlinuz"' not in text and "update.payload" not in text
    release = stream["releases"]["amd64-usr"]
    assert release["version"] == "4800.2.0"
    assert (released.tree / release["signature"]).name == "DIGESTS.sig"
    assert (released.tree / release["digests"]).is_file()
    alpha = json.loads(stream_path(tree, "alpha").read_text())
    assert alpha["architectures"]["x86_64"]["artifacts"]["metal"]["release"] == "4799.0.0"


def test_the_page_lists_every_release_with_its_artifacts(released: Workspace) -> None:
    html = (released.tree / PAGE).read_text()
    assert html.index('id="alpha"') < html.index('id="stable"')  # channel order
    assert html.index("stable-4800.2.0-amd64-usr") < html.index("stable-4799.2.0-amd64-usr")
    digest = hashlib.sha256(
        (released.tree / "stable/amd64-usr/4799.2.0/live.iso").read_bytes()
    ).hexdigest()
    assert digest in html
    assert "stable/amd64-usr/4800.2.0/DIGESTS.sig" in html
    assert 'href="streams/stable.json"' in html
    # Markdown is rendered; the fragment's raw HTML is shown as text, never run.
    assert '<a href="https://nvd.example/CVE-2026-1">CVE-2026-1</a>' in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_sizes_read_as_people_write_them() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 5 << 20, 3 << 30)] == [
        "0 bytes", "1023 bytes", "1.0 KiB", "5.0 MiB", "3.0 GiB"
    ]  # fmt: skip


# --- in a browser ---------------------------------------------------------------------------


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: run scripts/setup.sh"
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()


@pytest.mark.slow
def test_the_page_in_a_browser(released: Workspace, page: Page, tmp_path: Path) -> None:
    page.goto((released.tree / PAGE).as_uri())
    expect(page).to_have_title("Wellcar releases")
    stable = page.locator("section#stable")
    expect(stable.locator(".current-version")).to_have_text("4800.2.0")
    expect(page.locator("section#alpha .current-version")).to_have_text("4799.0.0")
    # The channel links jump to their section.
    page.get_by_role("navigation", name="Channels").get_by_role("link", name="stable").click()
    assert page.url.endswith("#stable")
    newest = page.locator("article#stable-4800\\.2\\.0-amd64-usr")
    expect(newest.get_by_role("heading", level=3)).to_contain_text("current")
    expect(newest.locator("table.major-software")).to_contain_text("kernel")
    # Every artifact link leads to a file that is there.
    links = newest.locator("table.artifacts a")
    # Five images (disk.img as .zst), update.payload, packages.txt and version.txt.
    assert links.count() == 8
    for href in links.evaluate_all("els => els.map(e => e.href)"):
        assert Path(href.removeprefix("file://")).is_file(), href
    # The fragment's script is text on the page, not a script that ran.
    expect(newest.locator(".notes")).to_contain_text("<script>alert(1)</script>")
    assert page.evaluate("() => document.querySelectorAll('.notes script').length") == 0
    page.screenshot(path=str(tmp_path / "release-page.png"), full_page=True)
