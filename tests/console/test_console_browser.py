"""An operator in a real browser: sign in, create a group, change its policy (a bad value
first), resume a paused group, watch the rollout move on the version chart, find an
instance and open its history. A screenshot of each page is kept under pytest's tmp dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from .conftest import ADMIN_TOKEN, NEW, NODES, OLD, READ_TOKEN, ServedFleet

CHART_LAST_POINTS = """() => {
  const chart = window.Chart.getChart(document.getElementById("version-chart"));
  return Object.fromEntries(chart.data.datasets.map(d => [d.label, d.data[d.data.length - 1]]));
}"""


def shot(page: Page, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/")
    expect(page).to_have_url(f"{url}/sign-in?next=/")
    page.get_by_label("Server token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()


def version_points(page: Page) -> dict[str, Any]:
    page.wait_for_selector("#version-chart[data-drawn]")
    points: dict[str, Any] = page.evaluate(CHART_LAST_POINTS)
    return points


def test_operator_creates_a_group_and_sets_its_policy(
    page: Page, served_fleet: ServedFleet, screenshots: Path
) -> None:
    url = served_fleet.url
    page.goto(f"{url}/")
    shot(page, screenshots, "01-sign-in")
    sign_in(page, url, ADMIN_TOKEN)
    shot(page, screenshots, "02-applications")
    page.get_by_role("link", name="Flatcar").click()
    expect(page.get_by_role("heading", name="Flatcar", exact=True)).to_be_visible()
    shot(page, screenshots, "03-application")

    page.get_by_label("Name", exact=True).fill("Canary")
    page.get_by_label("Channel", exact=True).select_option(label="stable (amd64)")
    page.get_by_label("Track", exact=True).fill("canary")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("heading", name="Canary")).to_be_visible()
    expect(page.get_by_test_id("saved")).to_have_text("Saved.")

    # A bad value: the API's message next to the field, nothing saved.
    page.get_by_label("Updates per period").fill("lots")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Save policy").click()
    error = page.locator("#policy_max_updates_per_period-error")
    expect(error).to_contain_text("policy_max_updates_per_period: Input should be a valid integer")
    expect(page.get_by_label("Updates per period")).to_have_attribute("aria-invalid", "true")
    shot(page, screenshots, "04-policy-error")
    groups = served_fleet.api.get(f"/api/apps/{served_fleet.app}/groups").json()["groups"]
    canary = next(g for g in groups if g["name"] == "Canary")
    assert canary["policy_max_updates_per_period"] == 2  # the default, untouched
    assert canary["policy_timezone"] is None

    page.get_by_label("Updates per period").fill("5")
    page.get_by_label("Period", exact=True).fill("30 minutes")
    page.get_by_label("Only update in office hours").check()
    page.get_by_label("Office hours", exact=True).fill("mon-fri 08:00-16:00")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    shot(page, screenshots, "05-policy-saved")
    saved = served_fleet.api.get(f"/api/apps/{served_fleet.app}/groups/{canary['id']}").json()
    assert saved["policy_max_updates_per_period"] == 5
    assert saved["policy_period_interval"] == "30 minutes"
    assert saved["policy_office_hours"] is True
    assert saved["policy_office_hours_spec"] == "mon-fri 08:00-16:00"
    assert saved["policy_timezone"] == "Europe/Berlin"
    assert saved["track"] == "canary"


def test_operator_resumes_updates_and_watches_the_rollout(
    page: Page, served_fleet: ServedFleet, screenshots: Path
) -> None:
    url, fleet = served_fleet.url, served_fleet
    sign_in(page, url, ADMIN_TOKEN)
    page.goto(f"{url}/apps/{fleet.app}/groups/{fleet.group}?period=1h")
    expect(page.get_by_test_id("updates-state")).to_contain_text("paused")
    assert version_points(page) == {OLD: NODES}
    shot(page, screenshots, "06-group-before-rollout")

    page.get_by_role("button", name="Resume updates").click()
    expect(page.get_by_test_id("updates-state")).to_contain_text("enabled")
    updated = fleet.nodes[:8]
    for node in updated:
        fleet.update_node(node)
    page.goto(f"{url}/apps/{fleet.app}/groups/{fleet.group}?period=1h")
    assert version_points(page) == {NEW: len(updated), OLD: NODES - len(updated)}
    breakdown = page.get_by_test_id("breakdown")
    expect(breakdown).to_contain_text(f"{NEW}{len(updated)}")
    shot(page, screenshots, "07-group-during-rollout")

    # More nodes update while the page stays open: its counts and chart follow, no reload.
    page.evaluate("window.stillThisPage = true")
    updated = fleet.nodes[:12]
    for node in updated[8:]:
        fleet.update_node(node)
    assert page.evaluate("window.wellcarConsole.refresh()") is True
    assert page.evaluate("window.stillThisPage") is True
    assert page.evaluate(CHART_LAST_POINTS) == {NEW: len(updated), OLD: NODES - len(updated)}
    expect(page.get_by_test_id("counts")).to_contain_text(f"Complete{len(updated)}")
    expect(breakdown).to_contain_text(f"{NEW}{len(updated)}")

    page.get_by_role("link", name="Instances of this group").click()
    expect(page.get_by_test_id("instance-total")).to_contain_text(f"{NODES} instances")
    page.get_by_label("Search id, alias or IP").fill("web-03")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("instance-total")).to_contain_text("1 instance,")
    shot(page, screenshots, "08-instances-search")
    page.get_by_role("link", name="web-03").click()
    details = page.get_by_test_id("instance-details")
    expect(details).to_contain_text("node-03")
    history = page.get_by_test_id("history")
    for status in ("Complete", "Downloaded", "Downloading", "Update granted"):
        expect(history).to_contain_text(status)
    expect(history.locator("tbody tr").first).to_contain_text(f"Complete{NEW}")
    shot(page, screenshots, "09-instance-history")

    page.go_back()
    page.get_by_label("Search id, alias or IP").fill("")
    page.get_by_label("Status").select_option(label="Complete")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("instance-total")).to_contain_text(f"{len(updated)} instances")


def test_viewer_sees_the_group_but_its_forms_are_disabled(
    page: Page, served_fleet: ServedFleet, screenshots: Path
) -> None:
    fleet = served_fleet
    sign_in(page, fleet.url, READ_TOKEN)
    page.goto(f"{fleet.url}/apps/{fleet.app}/groups/{fleet.group}")
    expect(page.get_by_test_id("who")).to_contain_text("viewer")
    expect(page.get_by_role("button", name="Save policy")).to_be_disabled()
    expect(page.get_by_label("Updates per period")).to_be_disabled()
    shot(page, screenshots, "10-viewer")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Server token")).to_be_visible()
