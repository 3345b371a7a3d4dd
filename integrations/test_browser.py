"""The web UI and the HTML report in a real headless browser (Debian's chromium driven by Playwright),
plus the UI server's security rules over plain HTTP.

Browser tests skip when chromium or playwright is missing. Screenshots go to the test's tmp folder,
or to $AUTOTRACK_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import autotrack
from autotrack._ui import make_server, start_in_thread

CHROMIUM = os.environ.get("AUTOTRACK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _make_runs(n: int = 4, steps: int = 300) -> list[str]:
    ids = []
    for i in range(n):
        with autotrack.start_run(name=f"run-{i}", experiment="exp-a" if i % 2 == 0 else "exp-b",
                                 params={"lr": 0.1 / (i + 1), "opt": ["sgd", "adam"][i % 2], "depth": 3}) as run:
            for s in range(steps):
                run.log_metrics({"train/loss": math.exp(-s * (i + 1) / 100) + 0.01,
                                 "val/acc": 1 - math.exp(-s / 80) / (i + 1), "system/cpu_percent": 40 + 10 * math.sin(s / 9)},
                                step=s)
            run.set_info("hardware", {"cpu": {"model": "test-cpu", "cores": 4 + i}})
            run.set_info("environment", {"python": "3.11.7", "packages": {"numpy": f"1.2{i}.0"}, "env": {}})
            run.log_text(f"checkpoint {i}", "ckpt/last.ckpt", kind="checkpoint")
        ids.append(run.id)
    return ids


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from autotrack import _run

    previous = _run._store_override
    store = autotrack.set_store(tmp_path_factory.mktemp("ui") / "store")
    ids = _make_runs()
    autotrack.flush()
    server = make_server("127.0.0.1", 0, store=store)
    start_in_thread(server)
    yield {"server": server, "ids": ids, "url": f"http://127.0.0.1:{server.port}/", "store": store}
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


def _page(browser: Any) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    return page, errors


def _wait_for(page: Any, expression: str, timeout: float = 8.0) -> None:
    """Poll ``expression`` in the page (wait_for_function would need 'unsafe-eval', which the UI's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(100)


def _screenshot(page: Any, tmp_path: Path, name: str, full_page: bool = False) -> Path:
    folder = Path(os.environ.get("AUTOTRACK_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000
    return path


def _plots_rendered(page: Any, container: str) -> int:
    """Number of plotly figures in ``container`` whose SVG holds at least one drawn trace."""
    return page.evaluate(
        """(sel) => Array.from(document.querySelectorAll(sel + ' .js-plotly-plot')).filter(
             d => d.querySelector('svg.main-svg') && d.querySelectorAll('.scatterlayer .trace path.js-line, .parcoords-line-layers, .parcoords').length > 0
           ).length""",
        container,
    )


def test_runs_table_run_page_and_compare(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    page, errors = _page(browser)
    page.goto(ui["url"])
    page.wait_for_selector("body[data-ready=runs]", timeout=10_000)
    rows = page.locator("#runs-table tbody tr")
    assert rows.count() == len(ui["ids"])
    listed = set(page.locator("#runs-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)"))
    assert listed == set(ui["ids"])
    # search and experiment filter
    page.fill("#search", "run-1")
    assert rows.count() == 1
    page.fill("#search", "")
    page.select_option("#exp", "exp-a")
    assert rows.count() == 2
    page.select_option("#exp", "")
    # sort by the train/loss column: ascending then descending
    page.click("th[data-col='m:train/loss']")
    names = page.locator("#runs-table tbody tr td:nth-child(2) a").all_inner_texts()
    truth = sorted(range(4), key=lambda i: autotrack.get_run(ui["ids"][i]).summary["train/loss"])
    assert names == [f"run-{i}" for i in truth]
    _screenshot(page, tmp_path, "ui-runs.png")

    # a run page: curves, sections, artifact download by id
    page.click("text=run-2")
    page.wait_for_selector("body[data-ready=run]", timeout=10_000)
    assert _plots_rendered(page, "#run-metrics") == 2  # train/loss and val/acc
    assert _plots_rendered(page, "#run-system") == 1
    assert "test-cpu" in page.text_content("main")  # in the collapsed hardware section
    link = page.locator("a[href^='/api/artifacts/']").first
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_text() == "checkpoint 2"
    page.check("#run-metrics .at-log")  # log scale toggle redraws without errors
    assert page.evaluate("document.querySelector('#run-metrics .js-plotly-plot')._fullLayout.yaxis.type") == "log"
    _screenshot(page, tmp_path, "ui-run.png")

    # compare two selected runs
    page.goto(ui["url"])
    page.wait_for_selector("body[data-ready=runs]")
    page.check(f"input.sel[data-id='{ui['ids'][0]}']")
    page.check(f"input.sel[data-id='{ui['ids'][3]}']")
    page.click("#compare")
    page.wait_for_selector("body[data-ready=compare]", timeout=10_000)
    assert page.locator("#compare-table tbody tr").count() == 2
    assert _plots_rendered(page, "#cmp-metrics") == 2
    assert page.locator("#cmp-parcoords.js-plotly-plot svg").count() > 0
    assert page.locator("#cmp-parcoords .scatterlayer .trace").count() == 2 + 1  # one line per run + colour bar
    text = page.inner_text("main")
    assert "Why A and B differ" in text and "numpy" in text and "upgraded" in text
    traces = page.evaluate("document.querySelector('#cmp-metrics .js-plotly-plot').data.length")
    assert traces == 2
    _screenshot(page, tmp_path, "ui-compare.png", full_page=True)
    assert errors == []
    page.close()


def test_live_refresh(ui: dict[str, Any], browser: Any) -> None:
    page, errors = _page(browser)
    run = autotrack.start_run(name="live-run", experiment="exp-live")
    try:
        run.log_metric("train/loss", 1.0, step=0)
        run.flush()
        page.goto(ui["url"] + f"#/run/{run.id}")
        page.wait_for_selector("body[data-ready=run]", timeout=10_000)
        assert "refreshing" in page.inner_text("#live")
        for s in range(1, 50):
            run.log_metric("train/loss", 1.0 / (s + 1), step=s)
        run.flush()
        _wait_for(page, "document.querySelector('#run-metrics .js-plotly-plot').data[0].x.length === 50")
    finally:
        run.end()
    _wait_for(page, "document.querySelector('#run-status').innerText === 'finished'")
    assert errors == []
    page.close()


def test_report_offline(ui: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    from autotrack._report import write_report

    path = write_report(ui["ids"], tmp_path / "report.html")
    page, errors = _page(browser)
    requests: list[str] = []
    page.route("**/*", lambda route: (requests.append(route.request.url),
                                      route.continue_() if route.request.url.startswith("file:") else route.abort()))
    page.goto(path.as_uri())
    _wait_for(page, "document.querySelectorAll('#metrics .js-plotly-plot').length === 2", 15)
    assert _plots_rendered(page, "#metrics") == 2
    assert _plots_rendered(page, "#system") == 1
    assert page.locator("#parcoords .scatterlayer .trace").count() == 4 + 1
    assert page.locator("table.runs tbody tr").count() == 4
    assert all(u.startswith("file:") for u in requests), requests  # self-contained: no network
    page.select_option("#pc-metric", "val/acc")
    page.fill("#metrics .at-smooth", "0.9") if False else page.eval_on_selector(
        "#metrics .at-smooth", "e => { e.value = '0.9'; e.dispatchEvent(new Event('input')); }")
    assert page.evaluate("document.querySelector('#metrics .js-plotly-plot').data.length") == 8  # raw + smoothed
    _screenshot(page, tmp_path, "report.png", full_page=True)
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
    base, run_id = ui["url"], ui["ids"][0]
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
