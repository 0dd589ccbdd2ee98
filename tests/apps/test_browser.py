"""End to end in a real headless browser: Debian's chromium driven by Playwright.

`fewshot app` (which execs `streamlit run apps/fewshot_app.py`) serves on
127.0.0.1 on a free port; the
browser uploads a support CSV and a query CSV, presses Adapt, waits for the
predictions and saves a screenshot (``$FEWSHOT_SCREENSHOT_DIR`` or the test's
tmp folder). Skips when chromium or Playwright is missing, except with
``CI=true``, where it fails instead.
"""

import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _require(condition, reason):
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run, not skip)")
    pytest.skip(reason)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(models_dir, tmp_path):
    try:
        import streamlit  # noqa: F401
    except ImportError:
        _require(False, "Streamlit is not installed (pip install fewshot[app])")
    port = _free_port()
    env = dict(os.environ, FEWSHOT_MODELS_DIR=str(models_dir), TF_CPP_MIN_LOG_LEVEL="2")
    log = open(tmp_path / "streamlit.log", "w")
    process = subprocess.Popen(
        # `fewshot app` execs `streamlit run apps/fewshot_app.py` on 127.0.0.1.
        [sys.executable, "-m", "fewshot.cli", "app", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.time() > deadline:
                log.flush()
                raise AssertionError("streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _support_csv(path, n=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5, 5, n)
    y = 2.0 * np.sin(x - 0.5)
    path.write_text("x,y\n" + "".join(f"{a:.4f},{b:.4f}\n" for a, b in zip(x, y)))
    return path


def test_upload_adapt_predict_in_chromium(server, tmp_path):
    _require(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "Playwright for Python is not installed (pip install playwright)")

    support = _support_csv(tmp_path / "support.csv")
    query = tmp_path / "query.csv"
    query.write_text("x\n-4.0\n-1.5\n0.0\n2.5\nnot-a-number\n")
    shots = pathlib.Path(os.environ.get("FEWSHOT_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.set_default_timeout(120_000)
            page.goto(server)
            page.get_by_text("Upload the support CSV").wait_for()
            page.locator("input[type=file]").nth(0).set_input_files(str(support))
            page.get_by_text("Support set: 20 usable of 20 rows").wait_for()
            page.get_by_text("Upload the query CSV").wait_for()
            page.locator("input[type=file]").nth(1).set_input_files(str(query))
            page.get_by_text("query.csv").first.wait_for()
            adapt = page.get_by_role("button", name="Adapt", exact=True)
            adapt.wait_for()
            seconds = []
            for press in (1, 2):  # the first press traces the adaptation graph
                started = time.perf_counter()
                adapt.click()
                page.get_by_text(f"Adapt #{press} + predict:").wait_for()
                seconds.append(time.perf_counter() - started)
                page.get_by_text("Predictions", exact=True).wait_for()
            page.get_by_text("1 query row(s) could not be predicted").wait_for()
            page.get_by_text("Download predictions (CSV)").wait_for()
            page.wait_for_timeout(1000)  # let the chart images finish loading
            page.screenshot(path=str(shots / "app_regression.png"), full_page=True)
        finally:
            browser.close()
    print(f"\nclick Adapt -> predictions on screen, 20-example regression task: "
          f"first {seconds[0]:.2f} s, again {seconds[1]:.2f} s")
    (shots / "app_timing.txt").write_text(
        f"first_press_s={seconds[0]:.3f}\nsecond_press_s={seconds[1]:.3f}\n"
    )
