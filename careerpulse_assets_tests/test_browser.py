"""The Dagster UI in a real browser: `dagster dev` on loopback, a loopback Muse API, headless
Chromium driven by Playwright. Sees the asset graph, materialises everything, and finds the
classifier's confusion matrix on its page. Screenshots go to $CAREERPULSE_SCREENSHOTS (default:
the test's temporary folder)."""

import os
import shutil
from pathlib import Path

import pytest

from .muse_fixtures import synthetic_postings
from .muse_server import serve_muse
from .servers import dagster_dev, runs, run_errors, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ASSETS = ["bronze_postings", "silver_postings", "knn_classifier", "imputed_silver",
          "gold_daily_counts", "gold_category_forecast", "review_queue"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no chromium (.ci/run installs it)"),
              pytest.mark.slow]


@pytest.fixture
def dagster_ui(tmp_path):
    with serve_muse(synthetic_postings()) as (_, base_url):
        with dagster_dev(tmp_path / "home", tmp_path / "dagster-dev.log",
                         CAREERPULSE_MUSE_BASE_URL=base_url) as url:
            yield url


def clicked_runs(url: str) -> list[dict]:
    # Runs the person clicked, not a sensor's.
    return [run for run in runs(url) if "dagster/sensor_name" not in run["tags"]]


def run_statuses(url: str) -> list[str]:
    return [run["status"] for run in clicked_runs(url)]


def open_every_group(page, url: str) -> None:
    """The lineage with every group unfolded. The graph fits itself to the window only when it
    loads, and a group's unfold icon can sit under another group's box until the view is zoomed
    out: unfold what is drawn, reload, and again until nothing is folded (Dagster remembers)."""
    unfold = page.get_by_role("img", name="unfold_more")
    for _ in range(3):
        page.goto(f"{url}/asset-groups")
        page.get_by_text("Global asset lineage").wait_for()
        page.wait_for_timeout(3000)
        if not unfold.count():
            return
        for _ in range(3):
            page.get_by_role("img", name="zoom_out").first.click()
            page.wait_for_timeout(300)
        for _ in range(10):
            if not unfold.count():
                break
            unfold.first.click(force=True)
            page.wait_for_timeout(700)
    page.goto(f"{url}/asset-groups")
    page.get_by_text("Global asset lineage").wait_for()
    page.wait_for_timeout(3000)


def test_the_ui_shows_the_graph_materialises_it_and_shows_the_classifier(dagster_ui, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("CAREERPULSE_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000}, device_scale_factor=1.5)
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)

        page.goto(f"{dagster_ui}/asset-groups")
        expect(page.get_by_text("Global asset lineage")).to_be_visible()
        page.wait_for_timeout(3000)
        skip = page.get_by_role("button", name="Skip")  # a first-visit newsletter dialog
        if skip.count():
            skip.click()
        # The graph opens with its three groups folded: unfold them in the sidebar and the graph.
        for group in ("reporting", "ml", "ingestion"):
            row = page.locator("[data-index]").filter(has=page.locator(f"[title='{group}']"))
            row.locator("button").first.click()
        # A group's unfold icon can sit under another group's box: zoom out, then click it where
        # it is drawn.
        for _ in range(3):
            page.get_by_role("img", name="zoom_out").first.click()
            page.wait_for_timeout(300)
        for _ in range(10):
            if not page.get_by_role("img", name="unfold_more").count():
                break
            page.get_by_role("img", name="unfold_more").first.click(force=True)
            page.wait_for_timeout(700)
        for name in ASSETS:
            expect(page.get_by_text(name, exact=True).first).to_be_visible()
        page.screenshot(path=shots / "asset-graph.png")

        page.get_by_role("button", name="Materialize all").first.click()
        wait_for(lambda: run_statuses(dagster_ui), 60, "the run to be launched")
        statuses = wait_for(
            lambda: (s := run_statuses(dagster_ui)) and s[0] in {"SUCCESS", "FAILURE", "CANCELED"} and s,
            300, "the run to finish",
        )
        assert statuses[0] == "SUCCESS", run_errors(dagster_ui, clicked_runs(dagster_ui)[0]["runId"])
        page.goto(f"{dagster_ui}/runs")
        expect(page.get_by_text("Success").first).to_be_visible()
        page.screenshot(path=shots / "runs.png")

        # The README's picture (docs/asset-graph.png): every group open, fitted to a window wide
        # enough that Dagster draws each asset in full, its checks' row and kinds included.
        page.set_viewport_size({"width": 2000, "height": 1100})
        page.get_by_text("Hide navigation").click()  # its icons stay; the graph gets the width
        open_every_group(page, dagster_ui)
        expect(page.get_by_role("img", name="unfold_less")).to_have_count(3)
        expect(page.get_by_text("Asset checks", exact=True)).to_have_count(len(ASSETS))
        page.screenshot(path=shots / "asset-graph-materialized.png")
        page.set_viewport_size({"width": 1600, "height": 1000})

        page.goto(f"{dagster_ui}/assets/knn_classifier")
        expect(page.get_by_text("confusion_matrix").first).to_be_visible()
        expect(page.get_by_text("Could not parse record")).to_have_count(0)
        page.screenshot(path=shots / "knn_classifier.png")
        # Markdown metadata opens in a dialog: the confusion matrix is an image there.
        row = page.locator("tr").filter(has=page.get_by_text("confusion_matrix", exact=True)).first
        row.get_by_text("[Show Markdown]").click()
        plot = page.get_by_role("dialog").locator("img[src^='data:image/png']").first
        expect(plot).to_be_visible()
        assert plot.evaluate("img => img.naturalWidth") > 200
        page.wait_for_timeout(1000)  # let the dialog finish fading in
        page.screenshot(path=shots / "knn_classifier_confusion_matrix.png")
        browser.close()
    assert all((shots / name).stat().st_size > 10_000
               for name in ("asset-graph.png", "runs.png", "asset-graph-materialized.png",
                            "knn_classifier.png",
                            "knn_classifier_confusion_matrix.png"))
