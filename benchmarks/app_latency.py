"""Time from pressing Adapt to predictions on screen, in a real browser.

Starts `streamlit run apps/fewshot_app.py` on 127.0.0.1, opens it in headless
chromium (Playwright), uploads a support and a query CSV, and presses Adapt
several times (the first press includes tracing the adaptation graph; the
model itself is loaded when it is selected, before any press).

    python benchmarks/app_latency.py --models-dir runs --domain regression
    python benchmarks/app_latency.py --models-dir runs --domain molecules \
        --tox21 /work/shared/data/tox21/tox21.csv.gz --assay SR-p53
    python benchmarks/app_latency.py --models-dir runs/personalization --domain ratings \
        --movielens /work/shared/data/movielens-100k --model maml.keras

Regression uses 20 points of a sinusoid (predictions with 90 % jackknife+
intervals); molecules use 10 actives + 10 inactives of one Tox21 assay as the
support and 100 other molecules as queries; ratings use 10 ratings of one
MovieLens user as the support and rank every item they have not rated.
"""

import argparse
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
APP = ROOT / "apps" / "fewshot_app.py"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _files(args, folder):
    support, query = folder / "support.csv", folder / "query.csv"
    rng = np.random.default_rng(args.seed)
    if args.domain == "regression":
        x = rng.uniform(-5, 5, 20)
        amplitude, phase = rng.uniform(0.1, 5), rng.uniform(0, np.pi)
        support.write_text("x,y\n" + "".join(f"{a:.4f},{amplitude * np.sin(a - phase):.4f}\n" for a in x))
        query.write_text("x\n" + "".join(f"{a:.3f}\n" for a in np.linspace(-5, 5, 100)))
    elif args.domain == "ratings":
        import pandas as pd

        from fewshot.datasets.movielens import load_movielens

        ratings = load_movielens(args.movielens).ratings
        user = rng.choice(ratings["user"].unique())
        mine = ratings[ratings["user"] == user].sample(10, random_state=args.seed)
        pd.DataFrame({"item_id": mine["item"], "rating": mine["rating"].astype(int)}).to_csv(support, index=False)
        query = None
    else:
        import pandas as pd

        table = pd.read_csv(args.tox21)
        rows = table[["smiles", args.assay]].dropna()
        active = rows[rows[args.assay] == 1].sample(10, random_state=args.seed)
        inactive = rows[rows[args.assay] == 0].sample(10, random_state=args.seed)
        chosen = pd.concat([active, inactive])
        pd.DataFrame({"smiles": chosen["smiles"], "label": chosen[args.assay].astype(int)}).to_csv(
            support, index=False
        )
        rest = rows.drop(chosen.index).sample(100, random_state=args.seed)
        rest[["smiles"]].to_csv(query, index=False)
    return support, query


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", required=True,
                        help="folder the app lists trained models from (its --models-dir), e.g. runs")
    parser.add_argument("--domain", choices=["regression", "molecules", "ratings"], default="regression",
                        help="which of the app's tabs to time (default regression)")
    parser.add_argument("--model", default="", help="a substring of the model's label to pick")
    parser.add_argument("--tox21", default="/work/shared/data/tox21/tox21.csv.gz",
                        help="Tox21 CSV the molecules' support and queries come from (default %(default)s)")
    parser.add_argument("--assay", default="SR-p53", help="the Tox21 assay column to label them by (default SR-p53)")
    parser.add_argument("--movielens", default=os.environ.get("FEWSHOT_MOVIELENS_DIR", "/work/shared/data/movielens-100k"),
                        help="MovieLens-100K folder the user's ratings come from (default $FEWSHOT_MOVIELENS_DIR, "
                             "else %(default)s)")
    parser.add_argument("--presses", type=int, default=4,
                        help="times to press Adapt; the first includes tracing the graph (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the support and query draw (default 0)")
    parser.add_argument("--screenshot", default=None, help="also save a PNG of the page after the last press here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = pathlib.Path(tempfile.mkdtemp(prefix="app-latency-"))
    support, query = _files(args, folder)
    port = _free_port()
    env = dict(os.environ, FEWSHOT_MODELS_DIR=args.models_dir, TF_CPP_MIN_LOG_LEVEL="2",
               FEWSHOT_MOVIELENS_DIR=args.movielens)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.set_default_timeout(180_000)
            page.goto(url)
            if args.domain == "molecules":
                page.get_by_text("Molecules (SMILES)").click()
            elif args.domain == "ratings":
                page.get_by_text("User ratings (recommendations)").click()
            if args.model:
                page.locator("[data-testid=stSelectbox]").click()
                page.get_by_role("option").filter(has_text=args.model).first.click()
            page.get_by_text("Upload the support CSV").wait_for()
            page.locator("input[type=file]").nth(0).set_input_files(str(support))
            if query is not None:
                page.get_by_text("Upload the query CSV").wait_for()
                page.locator("input[type=file]").nth(1).set_input_files(str(query))
                page.get_by_text("query.csv").first.wait_for()
            else:
                page.get_by_text("support.csv").first.wait_for()
            adapt = page.get_by_role("button", name="Adapt", exact=True)
            seconds, server_side = [], []
            idle = (
                "() => !Array.from(document.querySelectorAll('[data-testid=stStatusWidget]'))"
                ".some(e => e.innerText.includes('Running'))"
            )
            for press in range(1, args.presses + 1):
                page.wait_for_timeout(500)
                page.wait_for_function(idle)  # the previous run has finished drawing
                started = time.perf_counter()
                adapt.click()
                word = "recommend" if args.domain == "ratings" else "predict"
                caption = page.get_by_text(f"Adapt #{press} + {word}:").first
                caption.wait_for()
                seconds.append(time.perf_counter() - started)
                server_side.append(caption.inner_text().split(f"{word}:")[1].split(" s.")[0].strip())
            if args.screenshot:
                page.screenshot(path=args.screenshot, full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    sizes = "support=10 candidates=all unrated" if args.domain == "ratings" else "support=20 queries=100"
    print(f"domain={args.domain} {sizes} models_dir={args.models_dir}")
    print("press | click Adapt -> predictions on screen (s) | of which in the app script (s)")
    for i, (s, inside) in enumerate(zip(seconds, server_side), 1):
        print(f"{i:5d} | {s:.2f} | {inside}")
    later = seconds[1:] or seconds
    print(f"first press {seconds[0]:.2f} s; later presses median {float(np.median(later)):.2f} s")


if __name__ == "__main__":
    main()
