"""Milliseconds to adapt a recommender to one new user and score candidates.

Issue #4's target: adapting to one new user takes under 50 ms on CPU once
the model is loaded. Each row times the compiled `UserAdapter` (the inner
loop on the user's support ratings, then the candidates scored with the
adapted weights; what `fewshot recommend` and the app run per user) for a
MovieLens user whose support holds that many ratings, scoring either their
10 query items or every item of the catalogue. The networks are each
method of `recipes/personalization/recipe.toml`, built by the recipe's
`build_learner` (its layers, adapted layers, inner steps and step sizes);
their weights are fresh, which does not change the cost. A `--model`
trained by the recipe can be timed instead.

    python benchmarks/user_adaptation.py --data-dir ../shared/data/movielens-100k
    python benchmarks/user_adaptation.py --model runs/personalization/maml.keras

Without the MovieLens folder it runs on a small synthetic folder in the
same format, and says so.
"""

import argparse
import os
import pathlib
import tempfile

import numpy as np

TARGET_MS = 50.0
ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "personalization"
DEFAULT_DATA = os.environ.get("FEWSHOT_MOVIELENS_DIR", str(ROOT.parent / "shared" / "data" / "movielens-100k"))


def _data(folder):
    from fewshot.datasets import load_movielens
    from fewshot.datasets.movielens import write_tiny_movielens

    if pathlib.Path(folder).is_dir():
        data = load_movielens(folder)
        return data, f"{data.name} from {folder}"
    tmp = tempfile.mkdtemp(prefix="movielens-synthetic-")
    data = load_movielens(write_tiny_movielens(tmp, num_users=40, num_items=300,
                                               ratings_per_user=(20, 100)))
    return data, f"a synthetic MovieLens-format folder ({folder} not found)"


def _learners(features, rating_mean, model_path):
    """The learner saved at `model_path`, or each method of the recipe, built as the recipe builds it."""
    import keras

    from fewshot.recipes.config import load_recipe
    from fewshot.recipes.personalization import build_learner, recipe_settings

    if model_path:
        return {pathlib.Path(model_path).stem: keras.saving.load_model(model_path)}
    settings = recipe_settings(load_recipe(RECIPE))
    return {method: build_learner(method, features, settings, rating_mean) for method in settings["methods"]}


def _user(tasks, size):
    """The user whose support is nearest above `size`, cut to their last `size` ratings."""
    sizes = np.asarray(tasks.support_sizes())
    fits = np.flatnonzero(sizes >= size)
    if not len(fits):
        return None
    user = int(fits[np.argmin(sizes[fits])])
    return user, tasks.support_x[user][-size:], tasks.support_y[user][-size:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA,
                        help="a MovieLens 100K or 1M folder (default: $FEWSHOT_MOVIELENS_DIR or "
                             "../shared/data/movielens-100k)")
    parser.add_argument("--model", default=None, help="a learner saved by the recipe (.keras) to time")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 28, 90],
                        help="support ratings per user, one row each (default: 5 28 90)")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per row (default 50)")
    args = parser.parse_args(argv)

    from fewshot.datasets.user_tasks import RatingFeatures, user_tasks
    from fewshot.recipes.personalization import adaptation_times_ms
    from fewshot.recsys.adapter import UserAdapter

    data, source = _data(args.data_dir)
    features = RatingFeatures.from_movielens(data)
    tasks = user_tasks(data, features)
    learners = _learners(features, float(data.ratings["rating"].mean()), args.model)
    catalogue = features.items.index.to_numpy()
    print(f"{source}: {len(tasks)} users with 13-100 ratings, {len(catalogue)} items; "
          f"{args.repeats} timed calls per row\n")
    print(f"| learner | support ratings | candidates | median ms | p90 ms | target {TARGET_MS:.0f} ms |")
    print("|---|---|---|---|---|---|")
    for name, learner in learners.items():
        adapter = UserAdapter(learner)
        for size in args.sizes:
            picked = _user(tasks, size)
            if picked is None:
                print(f"| {name} | {size} | (no user has {size} support ratings) | | | |")
                continue
            user, sx, sy = picked
            everything = features.encode(catalogue, features.codes_of_user(tasks.users[user]))
            for label, qx in [("10 (query)", tasks.query_x[user]), (f"{len(catalogue)} (all)", everything)]:
                times = adaptation_times_ms(adapter, sx, sy, qx, args.repeats)
                median, p90 = np.median(times), np.percentile(times, 90)
                verdict = "met" if median < TARGET_MS else "NOT met"
                print(f"| {name} | {len(sy)} | {label} | {median:.1f} | {p90:.1f} | {verdict} |", flush=True)


if __name__ == "__main__":
    main()
