"""Web UI and report responsiveness, measured in a real headless browser (chromium + Playwright).

    python benchmarks/bench_ui.py                 # 100 runs, a run with 1M points
    python benchmarks/bench_ui.py --report-runs 100 --report-points 100000   # also the HTML report

Measures, each as the median of --repeat page loads in a fresh page:
- runs table: navigation start -> table drawn and handlers bound (the page sets data-ready), with
  100 runs in the store; then the latency of a sort click and of a search keystroke;
- run page: navigation start -> every curve of a run with 1M points drawn;
- optionally the self-contained report of N runs x M points: generation time, file size, load time.
Targets (issue 8): runs table < 1 s, 1M-point run page < 2 s.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import autotrack  # noqa: E402
from autotrack._ui import make_server, start_in_thread  # noqa: E402

CHROMIUM = os.environ.get("AUTOTRACK_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def fill_store(n_runs: int, big_points: int) -> str:
    rng = np.random.default_rng(0)
    for i in range(n_runs):
        with autotrack.start_run(name=f"run-{i}", experiment=f"exp-{i % 5}",
                                 params={"lr": float(10 ** rng.uniform(-4, -1)), "batch": int(2 ** rng.integers(4, 9)),
                                         "opt": ["sgd", "adam", "adamw"][i % 3], "layers": int(rng.integers(1, 6))}) as run:
            for s in range(200):
                run.log_metrics({"train/loss": math.exp(-s / 50) + rng.random() * 0.05, "val/acc": 1 - math.exp(-s / 60)}, step=s)
    with autotrack.start_run(name="big", experiment="exp-big") as big:
        steps = np.arange(big_points)
        loss = np.exp(-steps / (big_points / 5)) + rng.random(big_points) * 0.1
        for s, v in zip(steps.tolist(), loss.tolist()):
            big.log_metric("train/loss", v, step=s)
        for s in range(0, big_points, 1000):
            big.log_metric("train/lr", 1e-3 * (1 - s / big_points), step=s)
    autotrack.flush(300)
    return big.id


def fill_report_store(n_runs: int, points: int) -> list[str]:
    rng = np.random.default_rng(1)
    ids = []
    for i in range(n_runs):
        with autotrack.start_run(name=f"r{i}", experiment="report", params={"lr": float(rng.uniform(1e-4, 1e-1))}) as run:
            values = (np.exp(-np.arange(points) / (points / 4)) + rng.random(points) * 0.05).tolist()
            for s, v in enumerate(values):
                run.log_metric("train/loss", v, step=s)
        ids.append(run.id)
    autotrack.flush(600)
    return ids


def measure(page, url: str, ready: str) -> float:
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_selector(f"body[data-ready={ready}]", timeout=60_000)
    return page.evaluate("performance.now()") / 1000  # seconds since navigation start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--report-runs", type=int, default=0)
    parser.add_argument("--report-points", type=int, default=100_000)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        store = autotrack.set_store(Path(tmp) / "store")
        t0 = time.perf_counter()
        big_id = fill_store(args.runs, args.points)
        print(f"store filled: {args.runs} runs + one run of {args.points:,} points in {time.perf_counter() - t0:.1f} s")
        server = make_server("127.0.0.1", 0, store=store)
        start_in_thread(server)
        base = f"http://127.0.0.1:{server.port}/"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            cold = measure(page, base, "runs")  # first load: plotly.min.js (3.5 MB) not cached yet
            table = [measure(page, base, "runs") for _ in range(args.repeat)]
            rows = page.locator("#runs-table tbody tr").count()
            t = time.perf_counter()
            page.click("th[data-col='m:train/loss']")
            page.wait_for_selector("th[data-col='m:train/loss']:has-text('▲')")
            sort_s = time.perf_counter() - t
            t = time.perf_counter()
            page.fill("#search", "run-42")
            page.wait_for_selector("#count:has-text('1 of')")
            search_s = time.perf_counter() - t
            run_page = [measure(page, base + f"#/run/{big_id}", "run") for _ in range(args.repeat)]
            shown = page.evaluate("document.querySelector('#run-metrics .js-plotly-plot').data[0].x.length")
            stored = autotrack.get_run(big_id, store=store).metric_stats()["train/loss"]["count"]
            print(f"runs table ({rows} runs): {statistics.median(table):.3f} s to interactive (median of {args.repeat}; "
                  f"min {min(table):.3f}, max {max(table):.3f}; first load {cold:.3f}); sort click {sort_s * 1000:.0f} ms; search {search_s * 1000:.0f} ms")
            print(f"run page ({stored:,} points stored, {shown} drawn): {statistics.median(run_page):.3f} s to rendered "
                  f"(median of {args.repeat}; min {min(run_page):.3f}, max {max(run_page):.3f}; first {run_page[0]:.3f})")
            if args.report_runs:
                from autotrack._report import write_report

                autotrack.set_store(Path(tmp) / "report-store")
                t = time.perf_counter()
                ids = fill_report_store(args.report_runs, args.report_points)
                print(f"report store: {args.report_runs} runs x {args.report_points:,} points in {time.perf_counter() - t:.1f} s")
                t = time.perf_counter()
                path = write_report(ids, Path(tmp) / "report.html")
                gen = time.perf_counter() - t
                page.goto("about:blank")
                t = time.perf_counter()
                page.goto(path.as_uri())
                page.wait_for_selector("body[data-ready=report]", timeout=120_000)
                load = page.evaluate("performance.now()") / 1000
                t = time.perf_counter()
                page.check("#metrics .at-log")
                page.evaluate("1")  # returns once the synchronous redraw is done
                toggle = time.perf_counter() - t
                print(f"report ({args.report_runs} runs x {args.report_points:,} points): generated in {gen:.1f} s, "
                      f"{path.stat().st_size / 1e6:.1f} MB, loaded in {load:.2f} s, log-scale toggle {toggle * 1000:.0f} ms")
            browser.close()
        server.shutdown()
        if errors:
            print("page errors:", errors)
        ok = statistics.median(table) < 1.0 and statistics.median(run_page) < 2.0
        print("targets (table < 1 s, 1M-point run page < 2 s):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
