"""Benchmark of the dashboard on a 50,000-episode store: `python bench/bench_dashboard.py` (a few minutes).

Seeds a SQLite store through the collector's own write path (`Store.open_run/claim/commit`,
with turns), starts the hub (`trajgym hub`, dashboard included) as a process, then times
every page and JSON endpoint over HTTP (sequential; the first request of each is cold),
and, when Chromium and Playwright are there, the full page load in a headless browser
(navigation until the page's script has drawn its charts). Prints a markdown table.

Options: --episodes N (default 50000), --store PATH (reuse/keep a seeded file), --runs N (timed requests per URL).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import free_port, rss_mb, start, stop, wait_ready
from store.repo import Store
from tests.support.dashboard_seed import big_store_specs, seed_run

TOKEN = "bench-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def seed(path: Path, episodes: int) -> dict[str, float]:
    t0 = time.perf_counter()
    store = Store(str(path))
    if store.list_runs():
        print(f"reusing {path}")
        store.close()
        return {"seed_s": 0.0}
    for spec in big_store_specs(episodes):
        seed_run(store, spec)
    # a live run on top: claims held by this (still running) process
    store.close()
    return {"seed_s": time.perf_counter() - t0}


def urls(path: Path) -> dict[str, str]:
    store = Store(str(path), migrate=False)
    runs = store.list_runs()
    big = max(runs, key=lambda r: r["total_episodes"])
    with store.engine.begin() as conn:
        from sqlalchemy import func, select

        from store.models import Episode

        ep = conn.execute(select(func.max(Episode.id)).where(Episode.run_id == big["id"], Episode.turns >= 5)).scalar()
    store.close()
    rid = big["id"]
    deep = "outcome=truncated&sort=mean_reward&order=desc&page=60"
    return {
        "runs overview": "/dashboard",
        "model comparison": "/dashboard/compare",
        "model comparison (split=test)": "/dashboard/compare?split=test",
        f"run detail ({big['total_episodes']:,} episodes)": f"/dashboard/runs/{rid}",
        "run detail, filtered + sorted, page 60": f"/dashboard/runs/{rid}?{deep}",
        "run detail, task search": f"/dashboard/runs/{rid}?q=0123",
        "live view": f"/dashboard/runs/{rid}/live",
        "trajectory viewer": f"/dashboard/episodes/{ep}",
        "API runs": "/dashboard/api/runs",
        "API compare": "/dashboard/api/compare",
        "API run detail": f"/dashboard/api/runs/{rid}",
        "API tasks (filtered, page 60)": f"/dashboard/api/runs/{rid}/tasks?{deep}",
        "API live": f"/dashboard/api/runs/{rid}/live",
        "API episode": f"/dashboard/api/episodes/{ep}",
    }


def time_http(base: str, targets: dict[str, str], runs: int) -> list[tuple[str, float, float, float]]:
    out = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for name, path in targets.items():
            times = []
            for _ in range(runs + 1):
                t0 = time.perf_counter()
                r = http.get(path)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
            cold, warm = times[0], times[1:]
            out.append((name, cold * 1000, statistics.median(warm) * 1000, max(warm) * 1000))
    return out


def time_concurrent(base: str, path: str, clients: int = 8, rounds: int = 3) -> dict[str, float]:
    """`clients` concurrent loads of a heavy page, while /healthz is polled: the event loop stays free."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    stop = threading.Event()
    probes: list[float] = []

    def probe() -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while not stop.is_set():
                t0 = time.perf_counter()
                http.get("/healthz")
                probes.append(time.perf_counter() - t0)
                time.sleep(0.02)

    def load(_: int) -> float:
        with httpx.Client(base_url=base, timeout=60) as http:
            t0 = time.perf_counter()
            for _ in range(rounds):
                assert http.get(path).status_code == 200
            return (time.perf_counter() - t0) / rounds

    watcher = threading.Thread(target=probe)
    watcher.start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        per = list(pool.map(load, range(clients)))
    wall = time.perf_counter() - t0
    stop.set()
    watcher.join()
    return {"pages_per_s": clients * rounds / wall, "mean_ms": statistics.mean(per) * 1000,
            "healthz_p50_ms": statistics.median(probes) * 1000, "healthz_max_ms": max(probes) * 1000}


def time_browser(base: str, targets: dict[str, str]) -> list[tuple[str, float]]:
    if not (Path(CHROMIUM).exists() and importlib.util.find_spec("playwright")):
        print("no chromium/playwright: browser timings skipped")
        return []
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(base + "/dashboard")  # warm the browser cache with plotly.min.js (4.8 MB)
        page.wait_for_selector("body[data-ready='1']")
        for name, path in targets.items():
            if "API" in name:
                continue
            t0 = time.perf_counter()
            page.goto(base + path)
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            out.append((name, (time.perf_counter() - t0) * 1000))
        browser.close()
        assert not errors, errors
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50_000)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench-dashboard-")
    path = args.store or Path(tmp.name) / "store.db"
    figures = seed(path, args.episodes)
    size_mb = path.stat().st_size / 2**20
    port = free_port()
    with open(Path(tmp.name) / "hub.log", "wb") as log:
        hub = start(["-m", "cli.main", "hub", "--store", str(path), "--port", str(port), "--token", TOKEN],
                    stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(base + "/healthz", hub, timeout=60, interval=0.2)
        except RuntimeError:
            raise SystemExit("hub did not start: see " + str(Path(tmp.name) / "hub.log")) from None
        targets = urls(path)
        http_rows = time_http(base, targets, args.runs)
        heavy = next(p for n, p in targets.items() if n.startswith("run detail ("))
        conc = time_concurrent(base, heavy)
        rss = rss_mb(hub.pid)
        browser_rows = dict(time_browser(base, targets))
    finally:
        stop(hub, timeout=20)
    print(f"\nstore: {args.episodes:,} episodes, {size_mb:.0f} MB SQLite; seeded in {figures['seed_s']:.1f} s;"
          f" load average {os.getloadavg()[0]:.1f}; hub RSS after the run {rss:.0f} MiB\n")
    print("| page / endpoint | HTTP cold (ms) | HTTP warm p50 (ms) | HTTP warm max (ms) | browser load (ms) |")
    print("|---|---|---|---|---|")
    for name, cold, p50, mx in http_rows:
        b = browser_rows.get(name)
        print(f"| {name} | {cold:.0f} | {p50:.0f} | {mx:.0f} | {'' if b is None else f'{b:.0f}'} |")
    print(f"\n8 concurrent clients loading the run-detail page: {conc['pages_per_s']:.1f} pages/s, mean"
          f" {conc['mean_ms']:.0f} ms per page; meanwhile GET /healthz p50 {conc['healthz_p50_ms']:.1f} ms,"
          f" max {conc['healthz_max_ms']:.0f} ms")
    tmp.cleanup() if args.store is None else None


if __name__ == "__main__":
    main()
