"""The web UI and the HTML report in a real headless browser (Debian's chromium driven by Playwright),
on a mixed store written through the real integrations (integrations/scripts/mixed_store.py: a
Lightning sweep, a scikit-learn GridSearchCV, XGBoost with early stopping, plain PyTorch under
autolog, failed, killed and crashed runs) plus a live run; then the UI server's security rules over
plain HTTP. Every result is checked against the store through the public API.

Browser tests skip when chromium or playwright is missing. Screenshots go to the test's tmp folder,
or to $AUTOTRACK_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

import autotrack
from autotrack._ui import make_server, start_in_thread

CHROMIUM = os.environ.get("AUTOTRACK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The mixed store, written by a separate process through the real integrations, plus a live run."""
    pytest.importorskip("lightning")
    pytest.importorskip("sklearn")
    pytest.importorskip("xgboost")
    from autotrack import _run

    previous = _run._store_override
    folder = tmp_path_factory.mktemp("ui") / "store"
    env = {**os.environ, "AUTOTRACK_DIR": str(folder), "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, str(ROOT / "integrations" / "scripts" / "mixed_store.py")], env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    store = autotrack.set_store(folder)
    live = autotrack.start_run(name="live", experiment="torch", params={"lr": 0.001})
    for s in range(20):
        live.log_metric("train/loss", 1.0 / (s + 1), step=s)
    live.flush()
    ids["live"] = live.id
    server = make_server("127.0.0.1", 0, store=store)
    start_in_thread(server)
    yield {"server": server, "ids": ids, "url": f"http://127.0.0.1:{server.port}/", "store": store, "live": live}
    live.end()
    server.shutdown()
    server.server_close()
    _run._store_override = previous


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM}")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _screenshot(page: Any, tmp_path: Path, name: str, full_page: bool = False) -> Path:
    folder = Path(os.environ.get("AUTOTRACK_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000
    return path



@pytest.fixture
def own_ui(tmp_path: Path) -> Iterator[str]:
    """A UI server of its own over a fresh store (the test writes its runs into it): its URL."""
    from autotrack import _run

    previous = _run._store_override
    store = autotrack.set_store(tmp_path / "store")
    server = make_server("127.0.0.1", 0, store=store)
    start_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        server.shutdown()
        server.server_close()
        _run._store_override = previous


def _page(browser: Any, scheme: str = "light") -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, color_scheme=scheme)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    return page, errors


def _wait_for(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Poll ``expression`` in the page (wait_for_function would need 'unsafe-eval', which the UI's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(100)


def _open(page: Any, url: str, ready: str) -> None:
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_selector(f"body[data-ready={ready}]", timeout=20_000)


def _table_ids(page: Any, selector: str = "#runs-table tbody tr[data-id]") -> list[str]:
    return page.locator(selector).evaluate_all("rs => rs.filter(r => r.offsetParent !== null).map(r => r.dataset.id)")


def _no_panel_errors(page: Any) -> None:
    assert page.locator(".panel-error").all_inner_texts() == []


def test_every_page_of_a_mixed_store_with_an_empty_console(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    ids = ui["ids"]
    for scheme in ("light", "dark"):
        page, errors = _page(browser, scheme)
        _open(page, ui["url"], "runs")
        top = autotrack.runs(where="parent_id is null")
        assert set(_table_ids(page)) == set(top["id"])  # children are nested under their parents
        _no_panel_errors(page)
        _screenshot(page, tmp_path, f"runs-{scheme}.png")
        if scheme == "light":
            for name, run_id in ids.items():
                _open(page, ui["url"] + f"#/run/{run_id}", "run")
                _no_panel_errors(page)
                rec = autotrack.get_run(run_id)
                # charts only for series: a single value is a table row, never a one-point curve
                charts = page.locator("#run-metrics .at-chart").evaluate_all("ds => ds.map(d => d.dataset.key)")
                series = {k for k, s in rec.metric_stats().items() if s["count"] > 1 and not k.startswith(("system/", "grad_norm/"))}
                assert set(charts) == series, name
                if rec.error:
                    assert rec.error["message"] in page.inner_text("#run-error")
            _open(page, ui["url"] + f"#/run/{ids['sklearn grid']}", "run")
            _screenshot(page, tmp_path, "run-sklearn.png", full_page=True)
        # three frameworks side by side, and every run at once
        three = [ids["lightning lr=0.03"], ids["xgboost"], ids["sklearn grid"], ids["torch"]]
        _open(page, ui["url"] + "#/compare/" + ",".join(three), "compare")
        _no_panel_errors(page)
        assert _table_ids(page, "#compare-table tbody tr") == three
        _screenshot(page, tmp_path, f"compare-frameworks-{scheme}.png", full_page=True)
        everything = [r for r in autotrack.runs()["id"]]
        _open(page, ui["url"] + "#/compare/" + ",".join(everything), "compare")
        _no_panel_errors(page)
        diff_rows = page.locator("#param-diff tbody tr").count()
        assert diff_rows > 0
        assert errors == [], errors
        page.close()


def test_find_the_best_sweep_run_by_minimum_val_loss(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    page, errors = _page(browser)
    _open(page, ui["url"], "runs")
    page.fill("#search", "experiment = 'lightning-sweep'")
    page.press("#search", "Enter")
    _wait_for(page, "document.querySelectorAll('#runs-table tbody tr[data-id]').length === 4")
    page.click("th[data-col='min(metrics.val/loss)']")
    _wait_for(page, "document.querySelector(\"th[data-col='min(metrics.val/loss)']\").textContent.includes('▲')")
    sweep = [r for r in autotrack.runs(where="experiment = 'lightning-sweep'")["id"] if "val/loss" in autotrack.get_run(r).summary]
    best = min(sweep, key=lambda r: float(autotrack.get_run(r).metric("val/loss")["value"].min()))
    assert _table_ids(page)[0] == best
    assert "order=min" in page.url  # the view is in the URL: reload it and get the same table
    page.reload()
    page.wait_for_selector("body[data-ready=runs]")
    assert _table_ids(page)[0] == best
    _screenshot(page, tmp_path, "best-sweep-run.png")
    assert errors == []
    page.close()


def test_filter_with_the_query_language(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    page, errors = _page(browser)
    _open(page, ui["url"], "runs")
    where = "params.lr < 0.01 and status = 'finished'"
    page.fill("#search", where)
    page.press("#search", "Enter")
    expected = set(autotrack.runs(where=where)["id"])
    assert expected  # the sweep's lr=0.003 run at least
    _wait_for(page, f"document.querySelectorAll('#runs-table tbody tr[data-id]').length === {len(expected)}")
    assert set(_table_ids(page)) == expected
    _screenshot(page, tmp_path, "filter.png")
    page.fill("#search", "params.lr <")
    page.press("#search", "Enter")
    page.wait_for_selector("#where-error:not([hidden])")
    assert "ends too early" in page.inner_text("#where-error")
    assert set(_table_ids(page)) == expected  # the last good table stays
    assert errors == []
    page.close()


def test_columns_nesting_and_selection_live_in_the_url(ui: dict[str, Any], browser: Any) -> None:
    page, errors = _page(browser)
    grid = ui["ids"]["sklearn grid"]
    _open(page, ui["url"], "runs")
    # the default columns: params whose values differ among the page's runs that have them (one
    # run's setting, or one every run that has it shares, is no column), the training loss first
    shown = page.evaluate("Array.from(document.querySelectorAll('#runs-table thead th[data-col]')).map(t => t.dataset.col)")
    top = autotrack.runs(where="parent_id is null")
    differing = {c for c in top.columns if c.startswith("params.") and top[c].dropna().astype(str).nunique() > 1}
    assert [c for c in shown if c.startswith("params.")] and {c for c in shown if c.startswith("params.")} <= differing
    assert [c for c in shown if c.startswith("metrics.")][0] == "metrics.train/loss", shown
    page.click(f"tr[data-id='{grid}'] .twisty")
    children = set(autotrack.runs(where=f"parent_id = '{grid}'")["id"])
    _wait_for(page, f"document.querySelectorAll('#runs-table tbody tr.child').length === {len(children)}")
    assert set(_table_ids(page, "#runs-table tbody tr.child")) == children
    page.click("#col-picker summary")
    column = page.evaluate("Array.from(document.querySelectorAll('#col-picker input[data-col^=\"max(\"]')).filter(b => !b.checked)[0].dataset.col")
    page.check(f"#col-picker input[data-col='{column}']")
    _wait_for(page, f"!!document.querySelector(\"th[data-col='{column}']\")")
    page.check(f"input.sel[data-id='{grid}']")
    url = page.url
    assert column in page.evaluate("decodeURIComponent(decodeURIComponent(location.hash))") and grid in url
    _open(page, url, "runs")
    assert page.locator(f"th[data-col='{column}']").count() == 1
    assert page.is_checked(f"input.sel[data-id='{grid}']")
    assert "1 selected" in page.inner_text("#actions")
    assert errors == []
    page.close()


def test_overlay_train_loss_of_five_runs_on_wall_time(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    ids = ui["ids"]
    five = [ids["lightning lr=0.3"], ids["lightning lr=0.03"], ids["lightning lr=0.003"], ids["torch"], ids["killed"]]
    page, errors = _page(browser)
    _open(page, ui["url"] + "#/compare/" + ",".join(five) + "?keys=train/loss", "compare")
    chart = "document.querySelector(\".at-chart[data-key='train/loss']\")._at"
    assert page.evaluate(chart + ".series") == five
    page.select_option("#cmp-metrics .at-x", "wall")
    _wait_for(page, chart + ".plot.scales.x.time === true")
    first_x = page.evaluate(chart + ".plot.data[0][0]")
    truth = min(float(autotrack.get_run(r).metric("train/loss")["time"].min()) for r in five)
    assert first_x == pytest.approx(truth, abs=1e-3)
    assert page.evaluate(chart + ".points") == sum(autotrack.get_run(r).metric_stats()["train/loss"]["count"] for r in five)
    page.click(f"#cmp-metrics .legend-item[data-id='{five[0]}']")  # legend toggles a run off in every chart
    assert page.evaluate(chart + ".plot.series[1].show") is False
    page.check("#cmp-metrics .at-log")
    _wait_for(page, chart + ".plot.scales.y.distr === 3")
    _screenshot(page, tmp_path, "overlay-wall-time.png", full_page=True)
    assert errors == []
    page.close()


def test_brushing_parallel_coordinates_narrows_the_table(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    ids = ui["ids"]
    sweep = [ids["lightning lr=0.3"], ids["lightning lr=0.03"], ids["lightning lr=0.003"], ids["live"]]
    page, errors = _page(browser)
    _open(page, ui["url"] + "#/compare/" + ",".join(sweep), "compare")
    page.select_option("#pc-metric", "train/loss")
    hit = page.locator("#cmp-parcoords g.pc-axis[data-dim='lr'] rect.pc-hit")
    hit.scroll_into_view_if_needed()
    box = hit.bounding_box()
    top, height = box["y"] + 4, box["height"] - 8  # the hit area reaches 4 px beyond the axis
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, top + height * 0.3)  # from 70 % of the lr axis (log scale: 0.001 .. 0.3) ...
    page.mouse.down()
    page.mouse.move(x, top + height * 0.8, steps=5)
    page.mouse.move(x, top + height + 3, steps=2)  # ... down to the bottom
    page.mouse.up()
    lrs = {r: autotrack.get_run(r).params["lr"] for r in sweep}
    lo, hi = math.log10(min(lrs.values())), math.log10(max(lrs.values()))
    expected = [r for r in sweep if (math.log10(lrs[r]) - lo) / (hi - lo) <= 0.7]
    assert 0 < len(expected) < len(sweep)
    _wait_for(page, f"document.querySelectorAll('#compare-table tbody tr').length === {len(expected)}")
    assert _table_ids(page, "#compare-table tbody tr") == expected
    assert "brushed" in page.inner_text("#cmp-count")
    _screenshot(page, tmp_path, "brushed.png", full_page=True)
    # importance names its method and ranks lr
    assert "Spearman" in page.inner_text("#cmp-importance")
    assert page.evaluate("document.querySelector('#cmp-importance')._at.rows[0].param") == "lr"
    page.click("#cmp-parcoords g.pc-axis[data-dim='lr'] rect.pc-hit")  # a click clears the brush
    _wait_for(page, f"document.querySelectorAll('#compare-table tbody tr').length === {len(sweep)}")
    assert errors == []
    page.close()


def test_tag_note_and_name_are_written_through_the_public_api(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    run_id = ui["ids"]["torch"]
    page, errors = _page(browser)
    _open(page, ui["url"] + f"#/run/{run_id}", "run")
    page.fill("#tag-input", "reviewed=yes")
    page.press("#tag-input", "Enter")
    page.wait_for_selector(".chip[data-key='reviewed']")
    assert autotrack.get_run(run_id).tags["reviewed"] == "yes"
    page.click("#note-edit")
    note = "**Good** baseline; see `lr`.\n\n- stable\n- <script>alert(1)</script> [x](javascript:alert(1))"
    page.fill("#note-text", note)
    page.click("#note-save")
    page.wait_for_selector("#note-view strong")
    assert autotrack.get_run(run_id).note == note
    assert page.locator("#note-view script").count() == 0 and page.locator("#note-view a").count() == 0
    assert "<script>alert(1)</script>" in page.inner_text("#note-view")  # shown as text
    page.click(".chip-x[data-key='reviewed']")
    _wait_for(page, "!document.querySelector(\".chip[data-key='reviewed']\")")
    assert "reviewed" not in autotrack.get_run(run_id).tags
    page.fill("#tag-input", "api_key=sk-1234567890abcdef1234567890abcdef")  # the secret filter applies
    page.press("#tag-input", "Enter")
    page.wait_for_timeout(300)
    assert "sk-1234567890abcdef" not in json.dumps(autotrack.get_run(run_id).tags)
    page.click("#rename")
    page.fill("#name-input", "torch-baseline")
    page.press("#name-input", "Enter")
    page.wait_for_selector("#run-name .name-text:has-text('torch-baseline')")
    assert autotrack.get_run(run_id).name == "torch-baseline"
    _screenshot(page, tmp_path, "annotated.png", full_page=True)
    assert errors == []
    page.close()


def test_artifact_previews(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    rec = autotrack.get_run(ui["ids"]["eval"])
    arts = {a.name.rsplit("/", 1)[-1]: a for a in rec.artifacts}
    page, errors = _page(browser)
    _open(page, ui["url"] + f"#/run/{rec.id}", "run")
    page.click(f"button.preview[data-id='{arts['confusion.png'].id}']")
    page.wait_for_selector("#preview-img")
    _wait_for(page, "document.querySelector('#preview-img').naturalWidth > 0")
    assert page.evaluate("[document.querySelector('#preview-img').naturalWidth, document.querySelector('#preview-img').naturalHeight]") == [64, 40]
    _screenshot(page, tmp_path, "png-preview.png", full_page=True)
    page.click(f"button.preview[data-id='{arts['predictions.csv'].id}']")
    page.wait_for_selector("#preview-table")
    assert page.locator("#preview-table thead th").all_inner_texts() == ["id", "label", "score"]
    assert page.locator("#preview-table tbody tr").count() == 3
    page.click(f"button.preview[data-id='{arts['metrics.json'].id}']")
    page.wait_for_selector("#preview-table")
    assert "accuracy" in page.inner_text("#preview-table")
    with page.expect_download() as download:
        page.click(f"tr[data-artifact='{arts['predictions.csv'].id}'] a.download")
    assert Path(download.value.path()).read_bytes() == rec.read_artifact(arts["predictions.csv"].name)
    assert errors == []
    page.close()


def test_model_signature_in_the_artifact_row(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    from autotrack.integrations.sklearn import Tracked

    X = pd.DataFrame({"age": [31, 45, 52, 23, 60, 38], "income": [1.5, 2.0, 3.5, 0.5, 4.0, 2.5]})
    fitted = Tracked(LinearRegression(), experiment="signatures").fit(X, X["income"] * 2)
    art = next(a for a in autotrack.get_run(fitted.run_id_).artifacts if a.kind == "model")
    page, errors = _page(browser)
    _open(page, ui["url"] + f"#/run/{fitted.run_id_}", "run")
    row = page.locator(f"tr[data-artifact='{art.id}'] td.meta")
    row.wait_for()
    assert row.locator(".signature").inner_text() == "signature: age int64, income float64 → [-1] float64"
    assert "input example: 5 rows" in row.inner_text()
    assert '"data"' not in row.inner_text()  # the example's rows are not dumped into the table
    assert errors == []
    page.close()


def test_delete_a_finished_run_but_never_a_live_one(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    with autotrack.start_run(name="scratch", experiment="scratch") as run:
        run.log_metric("train/loss", 1.0)
    live = ui["live"]
    page, errors = _page(browser)
    _open(page, ui["url"] + f"#/?sel={run.id},{live.id}", "runs")
    assert "2 selected" in page.inner_text("#actions")
    page.click("#delete")
    text = page.inner_text("#actions")
    assert "Delete 1 run permanently" in text and "1 live run is skipped" in text
    _screenshot(page, tmp_path, "delete-confirm.png")
    page.click("#delete-yes")
    _wait_for(page, f"!document.querySelector(\"tr[data-id='{run.id}']\")")
    with pytest.raises(autotrack.RunNotFoundError):
        autotrack.get_run(run.id)
    assert autotrack.get_run(live.id).status == "running"
    # the server refuses a live run even when asked directly
    origin = ui["url"].rstrip("/")
    status, body = _request(ui["url"] + "api/runs/bulk", method="POST", body=json.dumps({"action": "delete", "ids": [live.id]}).encode(),
                            headers={"Content-Type": "application/json", "Origin": origin})
    assert status == 200 and live.id in json.loads(body)["errors"]
    assert autotrack.get_run(live.id).status == "running"
    assert errors == []
    page.close()


def test_live_refresh(ui: dict[str, Any], browser: Any) -> None:
    page, errors = _page(browser)
    run = autotrack.start_run(name="live-run", experiment="exp-live")
    try:
        run.log_metric("train/loss", 1.0, step=0)
        run.log_metric("train/loss", 0.9, step=1)
        run.flush()
        _open(page, ui["url"] + f"#/run/{run.id}", "run")
        assert "refreshing" in page.inner_text("#live")
        for s in range(2, 50):
            run.log_metric("train/loss", 1.0 / (s + 1), step=s)
        run.flush()
        _wait_for(page, "document.querySelector(\".at-chart[data-key='train/loss']\")._at.points === 50")
    finally:
        run.end()
    _wait_for(page, "document.querySelector('#run-status').innerText === 'finished'")
    assert errors == []
    page.close()


def test_report_of_a_mixed_store(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    from autotrack._report import write_report

    ids = [i for i in autotrack.runs()["id"] if i != ui["live"].id]
    path = write_report(ids, tmp_path / "report.html")
    page, errors = _page(browser)
    requests: list[str] = []
    page.route("**/*", lambda route: (requests.append(route.request.url),
                                      route.continue_() if route.request.url.startswith("file:") else route.abort()))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready=report]", timeout=20_000)
    assert all(u.startswith("file:") for u in requests), requests  # self-contained: no network
    _no_panel_errors(page)
    assert page.locator("table.runs tbody tr").count() == len(ids)
    # the columns the CLI's table picks: the sweep's lr (only some runs have it, and there it
    # differs) and the losses; not a setting the Lightning runs all share, nor timings first
    headers = page.locator("table.runs thead th").all_inner_texts()
    frame = autotrack.runs().set_index("id").loc[ids]
    shared = [c[len("params."):] for c in frame.columns if c.startswith("params.")
              and frame[c].dropna().astype(str).nunique() == 1]
    assert {"lr", "train/loss", "val/loss"} <= set(headers) and not set(shared) & set(headers), headers
    lr_column = headers.index("lr")
    cells = {row.locator("td").nth(1).inner_text(): row.locator("td").nth(lr_column).inner_text()
             for row in page.locator("table.runs tbody tr").all()}
    for run_id, lr in frame["params.lr"].items():
        assert cells[run_id[:8]] == ("" if lr is None or lr != lr else f"{lr:.6g}"), run_id
    assert page.locator("#metrics .at-chart canvas").count() > 0
    assert page.evaluate("document.querySelector('#parcoords')._at.lines") == len(ids)
    assert page.locator("table.diff td.missing").count() > 0  # params a run lacks are empty cells
    for section in ("runs", "metrics", "system", "params", "diff", "machine", "checkpoints"):
        page.locator(f"#sec-{section}").screenshot(path=str(Path(os.environ.get("AUTOTRACK_SCREENSHOT_DIR") or tmp_path) / f"report-{section}.png"))
    page.select_option("#pc-metric", "val/loss")
    assert errors == []
    page.close()


def test_report_of_a_30_run_sweep_is_readable(browser: Any, tmp_path: Path) -> None:
    from autotrack import _run
    from autotrack._report import write_report

    previous = _run._store_override
    autotrack.set_store(tmp_path / "sweep")
    try:
        ids = []
        for i in range(30):
            lr = 10 ** (-4 + 3 * i / 29)
            with autotrack.start_run(name=f"trial-{i}", experiment="sweep", params={"lr": lr, "layers": 1 + i % 4, "opt": ["sgd", "adam"][i % 2]}) as run:
                for s in range(60):
                    run.log_metrics({"train/loss": math.exp(-s * lr * 20) + 0.05 * (i % 4), "val/loss": 1 / (1 + s * lr * 50) + 0.02 * (i % 3)}, step=s)
            ids.append(run.id)
        path = write_report(ids, tmp_path / "sweep.html")
    finally:
        _run._store_override = previous
    page, errors = _page(browser)
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready=report]", timeout=20_000)
    colours = page.evaluate("Array.from(document.querySelectorAll('#metrics .legend-item .sw')).map(s => s.style.background + (s.classList.contains('dashed') ? ' dashed' : ''))")
    assert len(colours) == 30 and len(set(colours)) == 30  # 24 colours, then dashed variants: no two runs look alike
    assert page.evaluate("document.querySelector('#parcoords')._at.dims") == ["layers", "lr", "opt", "val/loss"]
    for section in ("metrics", "params"):
        page.locator(f"#sec-{section}").screenshot(path=str(Path(os.environ.get("AUTOTRACK_SCREENSHOT_DIR") or tmp_path) / f"sweep-report-{section}.png"))
    assert errors == []
    page.close()


# -- server security (plain HTTP, no browser) --------------------------------------------------


def _request(url: str, *, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_host_header_and_paths(ui: dict[str, Any]) -> None:
    base, port = ui["url"], ui["server"].port
    assert _request(base + "api/runs")[0] == 200
    assert _request(base + "api/runs", headers={"Host": f"localhost:{port}"})[0] == 200
    assert _request(base + "api/runs", headers={"Host": f"attacker.example:{port}"})[0] == 403  # DNS rebinding
    assert _request(base + "api/runs", headers={"Host": "127.0.0.1:1"})[0] == 403
    for path in ("static/../_server.py", "static/..%2f_server.py", "static/%2e%2e/_server.py", "api/artifacts/..%2f..%2fautotrack.db",
                 "api/artifacts/1;ls", "api/runs/..%2f..", "etc/passwd", "api/file?path=/etc/passwd"):
        status, body = _request(base + path)
        assert 400 <= status < 500, (path, status)
        assert b"CREATE TABLE" not in body and b"root:" not in body
    status, body = _request(base + "api/artifacts/999999")
    assert status == 404


def test_post_needs_same_origin_and_json(ui: dict[str, Any]) -> None:
    base, run_id = ui["url"], ui["ids"]["xgboost"]
    url = base + f"api/runs/{run_id}/tags"
    good = json.dumps({"tags": {"reviewed": "yes"}}).encode()
    origin = base.rstrip("/")
    assert _request(url, method="POST", body=good, headers={"Content-Type": "application/json"})[0] == 403
    assert _request(url, method="POST", body=good, headers={"Content-Type": "application/json", "Origin": "http://evil.example"})[0] == 403
    assert _request(url, method="POST", body=good, headers={"Content-Type": "text/plain", "Origin": origin})[0] == 415
    assert _request(url, method="POST", body=b"not json", headers={"Content-Type": "application/json", "Origin": origin})[0] == 400
    assert autotrack.get_run(run_id).tags.get("reviewed") is None
    status, body = _request(url, method="POST", body=good, headers={"Content-Type": "application/json", "Origin": origin})
    assert status == 200
    assert autotrack.get_run(run_id).tags["reviewed"] == "yes"
    assert _request(base + "api/runs", method="PUT", body=b"{}")[0] == 405
    bad_length = {"Content-Type": "application/json", "Origin": origin, "Content-Length": "-1"}
    assert _request(url, method="POST", body=b"", headers=bad_length)[0] == 400


def test_other_addresses_need_a_flag(ui: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(autotrack.InvalidArgumentError, match="allow_remote"):
        make_server("0.0.0.0", 0, store=ui["store"])
    server = make_server("0.0.0.0", 0, store=ui["store"], allow_remote=True)
    server.server_close()
    assert "WARNING" in capsys.readouterr().err


# -- display downsampling ----------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 1999, 2000, 2001, 10_007, 1_000_000])
def test_downsample_keeps_extremes_and_order(n: int) -> None:
    import numpy as np

    from autotrack._report import downsample

    rng = np.random.default_rng(n)
    steps = np.arange(n) * 3
    values = rng.normal(size=n)
    if n > 10:
        values[n // 3] = 1e6  # a spike must survive
        values[n // 2] = np.nan
    s, v = downsample(steps, values, 2000)
    assert len(s) == len(v) <= 2000
    assert s[0] == steps[0] and s[-1] == steps[-1]
    assert np.all(np.diff(s) > 0)
    assert np.nanmax(v) == np.nanmax(values) and np.nanmin(v) == np.nanmin(values)
    assert np.array_equal(v, values[s // 3], equal_nan=True)  # real points, not averages


def test_models_pages_show_versions_aliases_and_the_whole_history(browser: Any, own_ui: str, tmp_path: Path) -> None:
    """Three versions registered by Tracked(register_as=) from real fits, alias moves and a rollback:
    the models page and the model page show what the registry API says, and link each version to
    its run."""
    sklearn_lm = pytest.importorskip("sklearn.linear_model")
    from sklearn.datasets import load_iris

    from autotrack.integrations.sklearn import Tracked

    X, y = load_iris(return_X_y=True)
    for C in (0.1, 1.0, 3.0):
        Tracked(sklearn_lm.LogisticRegression(C=C, max_iter=300), register_as="iris-clf").fit(X, y)
    autotrack.set_alias("iris-clf", "champion", 1, reason="first")
    autotrack.set_alias("iris-clf", "champion", 3, reason="better")
    autotrack.set_alias("iris-clf", "staging", 2)
    autotrack.rollback("iris-clf", "champion", reason="v3 regressed")
    model = autotrack.get_model("iris-clf")

    page, errors = _page(browser)
    _open(page, own_ui + "#/models", "models")
    _no_panel_errors(page)
    row = page.locator('#models-table tr[data-name="iris-clf"]').inner_text()
    assert "@champion → v1" in row and "@staging → v2" in row and "v3" in row
    page.click('#models-table a[href="#/models/iris-clf"]')
    page.wait_for_selector("body[data-ready=model]", timeout=20_000)
    _no_panel_errors(page)
    versions = page.locator("#versions-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.version)")
    assert versions == [str(v.version) for v in reversed(model.versions)]
    for v in model.versions:
        cells = page.locator(f'#versions-table tr[data-version="{v.version}"]')
        assert cells.locator(f'a[href="#/run/{v.run_id}"]').count() == 1
        assert v.sha256[:12] in cells.inner_text()
    history = page.locator("#history-table tbody tr").all_inner_texts()
    expected = list(reversed(model.history))
    assert len(history) == len(expected) == 4
    for text, move in zip(history, expected):
        assert f"@{move.alias}" in text and f"v{move.to_version}" in text and move.action in text
        assert (move.reason or "") in text
    _screenshot(page, tmp_path, "model-page.png", full_page=True)
    _open(page, own_ui + "#/models/no-such-model", "error")
    assert "no-such-model" in page.inner_text("main")
    errors = [e for e in errors if "404" not in e]  # the missing model's API answer
    assert errors == [], errors
    page.close()


def test_compare_groups_runs_by_a_param_with_mean_and_band(browser: Any, own_ui: str, tmp_path: Path) -> None:
    """Group by a param on the compare page: one mean line per value with its min-max band, equal
    to the mean/min/max computed here from what the runs logged; hiding a run recomputes its group;
    one chart's own log scale leaves the others linear."""

    logged: dict[float, list[list[float]]] = {0.1: [], 0.01: []}
    ids: list[str] = []
    for lr in (0.1, 0.01):
        for seed in range(3):
            curve = [(1.0 + seed * 0.25) / (1 + lr * 10 * step) for step in range(12)]
            with autotrack.start_run(params={"lr": lr, "seed": seed}) as run:
                for step, value in enumerate(curve):
                    run.log_metric("train/loss", value, step=step)
                    run.log_metric("val/acc", 1 - value / 2, step=step)
            logged[lr].append(curve)
            ids.append(run.id)
    page, errors = _page(browser)
    _open(page, own_ui + "#/compare/" + ",".join(ids), "compare")
    page.select_option("#cmp-metrics .at-group", "lr")
    _wait_for(page, "document.querySelector('#cmp-metrics .at-chart[data-key=\"train/loss\"]')._at.groups === 2")
    data = page.evaluate("document.querySelector('#cmp-metrics .at-chart[data-key=\"train/loss\"]')._at.plot.data")
    assert data[0] == list(range(12))
    for g, lr in enumerate((0.1, 0.01)):  # the groups in first-seen order: mean, max, min each
        columns = list(zip(*logged[lr]))
        mean, top, low = data[1 + 3 * g], data[2 + 3 * g], data[3 + 3 * g]
        assert mean == pytest.approx([sum(c) / len(c) for c in columns])
        assert top == pytest.approx([max(c) for c in columns]) and low == pytest.approx([min(c) for c in columns])
    assert "lr=0.1" in page.inner_text("#cmp-metrics .legend")
    _screenshot(page, tmp_path, "compare-grouped.png", full_page=True)
    # hide the first run of lr=0.1: its group is the mean of the other two
    page.click(f'#cmp-metrics .legend-item[data-id="{ids[0]}"]')
    _wait_for(page, "document.querySelector('#cmp-metrics .at-chart[data-key=\"train/loss\"]')._at.groups === 2")
    data = page.evaluate("document.querySelector('#cmp-metrics .at-chart[data-key=\"train/loss\"]')._at.plot.data")
    columns = list(zip(*logged[0.1][1:]))
    assert data[1] == pytest.approx([sum(c) / len(c) for c in columns])
    # one chart's own log scale
    page.check('#cmp-metrics .at-chart[data-key="train/loss"] .at-chart-log')
    distr = page.evaluate("""[...document.querySelectorAll('#cmp-metrics .at-chart')].map(d =>
        [d.dataset.key, d._at.plot ? d._at.plot.scales.y.distr : null])""")
    assert dict(distr)["train/loss"] == 3 and dict(distr)["val/acc"] == 1, distr
    assert errors == [], errors
    page.close()


def test_a_studys_run_page_has_its_trial_table_and_best_so_far(browser: Any, own_ui: str, tmp_path: Path) -> None:
    """A real Optuna study (a pruned and a failed trial among them): the study's page lists every
    trial in order with the state, value, pruned step and params the study holds."""
    optuna = pytest.importorskip("optuna")
    from autotrack.integrations.optuna import AutotrackCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial):
        x = trial.suggest_float("x", -5, 5)
        if trial.number == 2:
            raise ValueError("broken")
        for step in range(4):
            trial.report((x - 1) ** 2 + 3 - step, step)
            if trial.number == 4 and step == 1:
                raise optuna.TrialPruned()
        return (x - 1) ** 2

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3), study_name="quad")
    callback = AutotrackCallback()
    study.optimize(objective, n_trials=6, catch=(ValueError,), callbacks=[callback])
    callback.end()
    parent_id = study.user_attrs["autotrack.run_id"]

    page, errors = _page(browser)
    _open(page, own_ui + f"#/run/{parent_id}", "run")
    _no_panel_errors(page)
    rows = page.locator("#trial-table tbody tr")
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.trial)") == [str(t.number) for t in study.trials]
    states = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail"}
    for t in study.trials:
        cells = page.locator(f'#trial-table tr[data-trial="{t.number}"] td').all_inner_texts()
        assert cells[1] == states[t.state.name]
        if t.state.name == "PRUNED":
            assert cells[3] == "1"
    assert page.locator("#run-metrics").inner_text().count("optuna/best_value") >= 1
    _screenshot(page, tmp_path, "study-page.png", full_page=True)
    assert errors == [], errors
    page.close()


def _epsilon_squared(xs: list[Any], ys: list[float], bins: int | None) -> float:
    """The compare page's `explained`, computed here: the metric's ranks grouped by the param
    (numeric params with many values in `bins` equal-count bins of their ranks), epsilon squared."""
    from scipy.stats import rankdata

    ry = rankdata(ys)
    keys = [str(x) for x in xs] if bins is None else [min(bins - 1, int((r - 1) * bins // len(xs))) for r in rankdata(xs)]
    groups: dict[Any, list[float]] = {}
    for k, r in zip(keys, ry):
        groups.setdefault(k, []).append(r)
    mean, n, g = ry.mean(), len(ry), len(groups)
    total = float(((ry - mean) ** 2).sum())
    between = sum(len(v) * (sum(v) / len(v) - mean) ** 2 for v in groups.values())
    within = (total - between) / (n - g)
    return max(0.0, min(1.0, (between - (g - 1) * within) / total))


def test_a_large_studys_trials_compare_with_importance_that_sees_any_shape(browser: Any, own_ui: str,
                                                                            tmp_path: Path) -> None:
    """`compare the trials` on a 120-trial study: every trial (past the 100-run limit of picked
    runs), tables a row per trial, the trial value as the default metric, and parameter importance
    that ranks a U-shaped and a categorical param above one with no effect -- values equal to the
    epsilon squared computed here from the study's own trials."""
    optuna = pytest.importorskip("optuna")
    from autotrack.integrations.optuna import AutotrackCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial):
        x = trial.suggest_float("x", -3, 3)
        trial.suggest_float("noise", 0, 1)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        return (x - 1) ** 2 + (4.0 if kind == "b" else 0.0)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7), study_name="wide")
    callback = AutotrackCallback()
    study.optimize(objective, n_trials=120, callbacks=[callback])
    callback.end()
    parent_id = study.user_attrs["autotrack.run_id"]
    page, errors = _page(browser)
    _open(page, own_ui + f"#/run/{parent_id}", "run")
    page.click("#compare-trials")
    _wait_for(page, "document.body.dataset.ready === 'compare'", timeout=60)
    assert "Comparing 120 trials" in page.inner_text("h1")
    assert page.locator("#compare-table tbody tr").count() == 120
    assert page.input_value("#pc-metric") == "optuna/value"
    assert page.locator("#param-diff tbody tr").count() == 120  # a row per trial
    assert page.locator("#machine-table thead th").count() == 2  # one column of values, not 120
    rows = page.evaluate("document.querySelector('#cmp-importance')._at.rows")
    by_param = {r["param"]: r for r in rows}
    trials = study.trials
    values = [t.value for t in trials]
    bins = min(10, int(len(trials) ** 0.5))
    assert by_param["x"]["explained"] == pytest.approx(_epsilon_squared([t.params["x"] for t in trials], values, bins))
    assert by_param["kind"]["explained"] == pytest.approx(_epsilon_squared([t.params["kind"] for t in trials], values, None))
    assert [r["param"] for r in rows][-1] == "noise" and by_param["noise"]["explained"] < 0.1
    assert by_param["x"]["explained"] > 0.3 and by_param["kind"]["explained"] > 0.2
    _screenshot(page, tmp_path, "study-trials.png")
    assert errors == [], errors
    page.close()


def test_a_classifier_runs_page_draws_its_confusion_matrix_and_curves(browser: Any, own_ui: str, tmp_path: Path) -> None:
    """A RandomForest fit with an eval set through Tracked: the run page draws the stored confusion
    matrices (cell for cell sklearn.metrics.confusion_matrix of the model's predictions) and ROC /
    precision-recall curves with their AUC, and previews the PNG twin through the artifact table."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import confusion_matrix, roc_auc_score

    from autotrack.integrations.sklearn import Tracked

    X, y = load_iris(return_X_y=True)
    X_val, y_val = X[1::2], y[1::2]
    model = Tracked(RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0),
                    eval_set=(X_val, y_val)).fit(X[::2], y[::2])
    autotrack.flush()
    rec = autotrack.get_run(model.run_id_)
    est = model.estimator_
    page, errors = _page(browser)
    _open(page, own_ui + f"#/run/{rec.id}", "run")
    _no_panel_errors(page)
    for data, (Xd, yd) in (("train", (X[::2], y[::2])), ("val", (X_val, y_val))):
        svg = page.locator(f'#run-evalplots svg.confusion-matrix[data-data="{data}"]')
        assert svg.count() == 1
        cells = svg.locator("g.cm-cell").evaluate_all(
            "gs => gs.map(g => [Number(g.dataset.row), Number(g.dataset.col), Number(g.dataset.value), g.textContent])")
        truth = confusion_matrix(yd, est.predict(Xd), labels=est.classes_)
        assert len(cells) == truth.size
        for i, j, value, text in cells:
            assert value == truth[i, j] and text.startswith(str(truth[i, j]))
        legends = page.locator(f'#run-evalplots svg[data-plot="roc_curve"][data-data="{data}"] text.curve-legend').evaluate_all(
            "ts => ts.map(t => t.textContent)")
        proba = est.predict_proba(Xd)
        assert legends == [f"{c}: AUC {roc_auc_score(yd == c, proba[:, i]):.3f}" for i, c in enumerate(est.classes_)]
        assert page.locator(f'#run-evalplots svg[data-plot="precision_recall_curve"][data-data="{data}"] polyline.curve-line').count() == 3
    _screenshot(page, tmp_path, "eval-plots.png", full_page=True)
    if find_spec("matplotlib") is not None:  # the PNG twin, previewed through the artifact table
        from PIL import Image

        png = next(a for a in rec.artifacts if a.name == "val/confusion_matrix.png")
        page.click(f"button.preview[data-id='{png.id}']")
        page.wait_for_selector("#preview-img")
        _wait_for(page, "document.querySelector('#preview-img').naturalWidth > 0")
        width, height = Image.open(io.BytesIO(rec.read_artifact(png.name))).size
        assert page.evaluate("[document.querySelector('#preview-img').naturalWidth, "
                             "document.querySelector('#preview-img').naturalHeight]") == [width, height]
    assert errors == [], errors
    page.close()
