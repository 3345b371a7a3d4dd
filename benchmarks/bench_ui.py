"""Web UI and report responsiveness, measured in a real headless browser (chromium + Playwright).

    python benchmarks/bench_ui.py                      # 10,000 runs; compare 50 x 3 x 100k; a 1M-point run
    python benchmarks/bench_ui.py --runs 100000 --compare-runs 0 --points 0     # the table alone at 100k
    python benchmarks/bench_ui.py --runs 2000 --compare-points 20000            # a quicker look

The store is written through the public API (start_run / log_metrics) by a separate process, as a
user's trainings would write it. Measured, each as the median of --repeat loads in a fresh page:
- runs table: navigation start -> first page of the table drawn and handlers bound (data-ready);
- sort: click on a metric header -> the store's answer drawn (``min(metrics.val/loss)``);
- filter: submit ``params.lr < 0.01 and status = 'finished'`` -> table drawn;
- compare: navigation -> 50 runs x 3 metrics (100k points each, downsampled by the server with
  min/max buckets) drawn;
- run page: navigation -> every chart of a run with 1M points drawn.
Targets (issue 17): table < 1 s (10k) and < 2 s (100k); sort/filter < 300 ms; compare < 2 s; 1M-point run < 2 s.

Chart library, measured with this benchmark's predecessor before the switch (plotly.js, 3.5 MB, on 101
runs, same machine, same day): table 0.70 s, sort 409 ms, 1M-point run page 2.49 s. With uPlot 1.6
(51 KB), measured here on 2 shared cores: 10,000 runs: table 0.29 s, sort 197 ms, filter 283 ms;
compare 50 x 3 x 100k 1.60 s; 1M-point run page 0.24 s. 100,000 runs: table 0.21 s, sort 0.86 s,
filter 1.34 s (the store's query, evaluated for the page and its total; not met). See README.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = os.environ.get("AUTOTRACK_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

FILL = textwrap.dedent("""
    import json, math, sys
    import numpy as np
    import autotrack
    n_runs, compare_runs, compare_points, big_points = map(int, sys.argv[1:5])
    rng = np.random.default_rng(0)
    out = {"compare": [], "big": None}
    for i in range(n_runs):
        lr = float(10 ** rng.uniform(-4, -1))
        with autotrack.start_run(name=f"run-{i}", experiment=f"exp-{i % 7}",
                                 params={"lr": lr, "batch": int(2 ** rng.integers(4, 9)),
                                         "opt": ["sgd", "adam", "adamw"][i % 3], "layers": int(rng.integers(1, 6))}) as run:
            for s in range(5):
                run.log_metrics({"train/loss": math.exp(-s * lr * 50) + rng.random() * 0.05,
                                 "val/loss": math.exp(-s * lr * 40) + 0.1 + rng.random() * 0.05}, step=s)
    for i in range(compare_runs):
        with autotrack.start_run(name=f"long-{i}", experiment="compare", params={"lr": 10 ** (-4 + 3 * i / max(1, compare_runs - 1))}) as run:
            base = rng.random(compare_points)
            for s in range(compare_points):
                run.log_metrics({"train/loss": 1.0 / (1 + s / (100 + 10 * i)) + base[s] * 0.05,
                                 "val/loss": 1.1 / (1 + s / (120 + 10 * i)), "train/lr": 1e-3 * (1 - s / compare_points)}, step=s)
        out["compare"].append(run.id)
    if big_points:
        with autotrack.start_run(name="big", experiment="big") as big:
            noise = rng.random(big_points) * 0.1
            for s in range(big_points):
                big.log_metric("train/loss", math.exp(-s / (big_points / 5)) + noise[s], step=s)
            for s in range(0, big_points, 1000):
                big.log_metric("train/lr", 1e-3 * (1 - s / big_points), step=s)
        out["big"] = big.id
    autotrack.flush(600)
    print(json.dumps(out))
""")


def measure(page, url: str, ready: str) -> float:
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_selector(f"body[data-ready={ready}]", timeout=120_000)
    return page.evaluate("performance.now()") / 1000  # seconds since navigation start


def timed_action(page, action, expected_rows: str) -> float:
    """Seconds from an action in the runs table to the store's answer drawn."""
    page.evaluate("document.body.removeAttribute('data-ready')")
    t = time.perf_counter()
    action()
    page.wait_for_selector("body[data-ready=runs]", timeout=60_000)
    elapsed = time.perf_counter() - t
    assert page.locator(expected_rows).count() > 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--compare-runs", type=int, default=50)
    parser.add_argument("--compare-points", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import autotrack
    from autotrack._ui import make_server, start_in_thread
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "store"
        env = {**os.environ, "AUTOTRACK_DIR": str(folder), "AUTOTRACK_CAPTURE": "0", "AUTOTRACK_SYSTEM_METRICS": "0",
               "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", FILL, str(args.runs), str(args.compare_runs), str(args.compare_points),
                              str(args.points)], env=env, capture_output=True, text=True, check=True)
        made = json.loads(out.stdout.strip().splitlines()[-1])
        total = autotrack.count_runs(store=folder)
        print(f"store filled: {total:,} runs ({args.compare_runs} x 3 x {args.compare_points:,} points, "
              f"one run of {args.points:,}) in {time.perf_counter() - t0:.1f} s")
        store = autotrack.set_store(folder)
        server = make_server("127.0.0.1", 0, store=store)
        start_in_thread(server)
        base = f"http://127.0.0.1:{server.port}/"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            cold = measure(page, base, "runs")
            table = [measure(page, base, "runs") for _ in range(args.repeat)]
            rows = page.locator("#runs-table tbody tr[data-id]").count()
            sorts, filters = [], []
            for _ in range(args.repeat):
                measure(page, base, "runs")
                sorts.append(timed_action(page, lambda: page.click("th[data-col='min(metrics.val/loss)']"), "#runs-table tbody tr[data-id]"))
                page.fill("#search", "params.lr < 0.01 and status = 'finished'")
                filters.append(timed_action(page, lambda: page.press("#search", "Enter"), "#runs-table tbody tr[data-id]"))
            print(f"runs table ({total:,} runs, {rows} on the first page): {statistics.median(table):.3f} s to interactive "
                  f"(median of {args.repeat}; min {min(table):.3f}, max {max(table):.3f}; first load {cold:.3f}); "
                  f"sort by min(val/loss) {statistics.median(sorts) * 1000:.0f} ms; filter {statistics.median(filters) * 1000:.0f} ms")
            ok = statistics.median(table) < (1.0 if total <= 10_000 else 2.0) and max(statistics.median(sorts), statistics.median(filters)) < 0.3
            if made["compare"]:
                url = base + "#/compare/" + ",".join(made["compare"]) + "?keys=" + ",".join(["train/loss", "val/loss", "train/lr"])
                cmp = [measure(page, url, "compare") for _ in range(args.repeat)]
                shown = page.evaluate("document.querySelector(\".at-chart[data-key='train/loss']\")._at.points")
                print(f"compare ({len(made['compare'])} runs x 3 metrics x {args.compare_points:,} points; {shown:,} drawn in the "
                      f"train/loss chart): {statistics.median(cmp):.3f} s to rendered (median; min {min(cmp):.3f}, max {max(cmp):.3f})")
                ok = ok and statistics.median(cmp) < 2.0
            if made["big"]:
                run_page = [measure(page, base + f"#/run/{made['big']}", "run") for _ in range(args.repeat)]
                shown = page.evaluate("document.querySelector(\".at-chart[data-key='train/loss']\")._at.points")
                stored = autotrack.get_run(made["big"]).metric_stats()["train/loss"]["count"]
                print(f"run page ({stored:,} points stored, {shown:,} drawn): {statistics.median(run_page):.3f} s to rendered "
                      f"(median of {args.repeat}; min {min(run_page):.3f}, max {max(run_page):.3f})")
                ok = ok and statistics.median(run_page) < 2.0
            browser.close()
        server.shutdown()
        if errors:
            print("page errors:", errors)
        print("targets (table < 1 s at 10k / < 2 s at 100k, sort/filter < 300 ms, compare < 2 s, 1M-point run < 2 s):",
              "met" if ok and not errors else "NOT met")


if __name__ == "__main__":
    main()
