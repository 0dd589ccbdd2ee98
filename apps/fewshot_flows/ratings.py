"""User ratings: adapt a personalisation model to a new user, recommend items.

Everything here is UI: the data folder is read by
`fewshot.datasets.load_movielens`, the model by
`fewshot.recsys.recommend.load_recommender` (a seed ensemble's folder by
`load_adapter`), and adapting and ranking is
`fewshot.recsys.recommend.recommend`.
"""

import os

import numpy as np
import pandas as pd
import streamlit as st

from fewshot import model_catalog, uploads
from fewshot_flows import common

DATA_ENV = "FEWSHOT_MOVIELENS_DIR"
EXAMPLE = ("item_id,rating\n50,5\n181,5\n1,4\n121,2\n294,1\n", "item_id\n100\n258\n286\n")
ALL_ITEMS = "All items the user has not rated"
LISTED = "Only the items I list (CSV)"
NOT_GIVEN = "(not given)"


@st.cache_resource(show_spinner=False, max_entries=2)
def load_features(folder, mtime):
    """The `RatingFeatures` of a MovieLens folder (items, genres, occupations)."""
    del mtime
    from fewshot.datasets.movielens import load_movielens
    from fewshot.datasets.user_tasks import RatingFeatures

    return RatingFeatures.from_movielens(load_movielens(folder))


@st.cache_resource(show_spinner=False, max_entries=4)
def load_model(path, mtime):
    """``(learner, {"steps", "inner_lr"}, ensemble)`` of a personalisation model.

    For a seed ensemble's folder, `learner` and the settings are its first
    member's and `ensemble` is the `EnsembleAdapter` that adapts every
    member with its own settings; for one model `ensemble` is None.
    """
    del mtime
    from fewshot.recsys.recommend import load_adapter, load_recommender

    if os.path.isdir(path):
        learners, ensemble = load_adapter(path)
        return learners[0], {"steps": None, "inner_lr": None}, ensemble
    return (*load_recommender(path), None)


def _folder_mtime(folder):
    times = [common.mtime(folder)]
    for sub in ("", "ml-100k", "ml-1m"):
        for name in ("u.item", "u.data", "movies.dat", "ratings.dat"):
            times.append(common.mtime(os.path.join(folder, sub, name)))
    return max(times)


def flow(entry):
    from fewshot.recsys.recommend import check_compatible, recommend

    with st.spinner("Loading the model..."):
        try:
            learner, chosen, ensemble = load_model(entry.path, common.mtime(entry.path))
        except (ValueError, OSError) as error:
            common.show_error(error)
            return
    st.caption(
        f"Model: `{entry.path}` ({entry.model_class}), a personalisation model from "
        "`recipes/personalization`. It predicts a user's rating (1 to 5) of each item from "
        "a few of their ratings, their profile and the items' features."
        + (f" A seed ensemble: {len(ensemble.adapters)} copies of the method trained with different "
           "seeds; each adapts to the user with its own steps and step size (chosen on the "
           "validation users) and their predicted ratings are averaged." if ensemble else "")
    )
    folder = st.text_input(
        "MovieLens folder (the one the model was trained on; item ids, titles and genres come from it)",
        value=os.environ.get(DATA_ENV, ""), key="movielens_dir",
    ).strip()
    if not folder:
        st.info(
            "Give the MovieLens-100K (or -1M) folder the model was trained on, for example "
            f"`/data/ml-100k`, or set `{DATA_ENV}` before `fewshot app`. The items, their "
            "titles and genres are read from it."
        )
        return
    with st.spinner("Reading the MovieLens folder..."):
        try:
            features = load_features(folder, _folder_mtime(folder))
            check_compatible(learner, features)
        except (OSError, ValueError) as error:
            common.show_error(error)
            return
    st.caption(f"{len(features.items)} items in `{folder}`.")

    st.header("2. The user (optional)")
    c1, c2, c3 = st.columns(3)
    age = c1.number_input("Age", min_value=1, max_value=120, value=None, step=1, key="age",
                          placeholder="not given")
    gender = c2.selectbox("Gender", [NOT_GIVEN, "M", "F"], key="gender")
    occupation = c3.selectbox("Occupation", [NOT_GIVEN] + list(features.occupations), key="occupation")
    gender = None if gender == NOT_GIVEN else gender
    occupation = None if occupation == NOT_GIVEN else occupation

    st.header("3. The user's ratings (support set)")
    read = _item_table(
        "support", EXAMPLE[0], "Upload or paste a few of the user's ratings (item id, rating 1 to 5), for example:"
    )
    if read is None:
        return
    frame, name, report, item_column = read
    known = np.zeros(len(report), bool)
    valid = report["valid"].to_numpy()
    known[valid] = features.known_items(report.loc[valid, item_column].astype(float).astype(np.int64))
    report.loc[valid & ~known, "error"] = "unknown item id (not in the items table)"
    report["valid"] = valid & known
    common.usable_report(f"Ratings: {int(report['valid'].sum())} usable of {len(report)} rows", report,
                         int((~report["valid"]).sum()), f"rating(s) of {name!r}")
    if not report["valid"].any():
        common.show_error(
            f"None of the ratings in {name!r} can be used: their item ids are not in the items "
            f"table of {folder!r}."
        )
        return
    rating_column = next(c for c in frame.columns if c.lower() == "rating")
    ratings = frame.rename(columns={item_column: "item", rating_column: "rating"})[["item", "rating"]]

    st.header("4. Items to rank (candidates)")
    mode = st.radio("Candidates", [ALL_ITEMS, LISTED], key="candidates_mode", horizontal=True)
    candidates = None
    if mode == LISTED:
        read = _item_table(
            "query", EXAMPLE[1], "Upload or paste the item ids to rank (a column `item_id`), for example:",
            need_rating=False,
        )
        if read is None:
            return
        c_frame, _, _, c_column = read
        candidates = c_frame.rename(columns={c_column: "item"})[["item"]]

    st.header("5. Adapt")
    c1, c2, c3 = st.columns(3)
    if ensemble is None:
        default_steps = chosen.get("steps")
        default_steps = int(learner.inner_steps if default_steps is None else default_steps)
        steps = int(c1.number_input("Gradient steps", 0, 100, default_steps, key="rec_steps"))
        own = chosen.get("inner_lr") is None
        lr_value = c2.number_input(
            "Learning rate (empty: the model's own)", min_value=1e-5, max_value=10.0,
            value=None if own else float(chosen["inner_lr"]), format="%.4f", key="rec_lr",
            placeholder=f"model's own ({float(learner.inner_lr):g})" if own else None,
        )
        inner_lr = None if lr_value is None else float(lr_value)
    else:
        steps, inner_lr = None, None
        c1.caption("Steps and step size: each member's own.")
    top_k = int(c3.number_input("How many recommendations", 1, 200, 10, key="top_k"))

    key = common.digest(
        entry.path, common.mtime(entry.path), folder, ratings.to_csv(),
        None if candidates is None else candidates.to_csv(), age, gender, occupation, steps, inner_lr, top_k,
    )

    def adapt(bar):
        table = recommend(
            learner, features, ratings, candidates, top_k=top_k, age=age, gender=gender,
            occupation=occupation, steps=steps, inner_lr=inner_lr, adapter=ensemble,
        )
        losses = None  # an ensemble's members each have their own curve
        if ensemble is None:
            bar.progress(0.8, text="Recording the adaptation loss...")
            losses = _loss_curve(learner, features, report, item_column, age, gender, occupation, steps, inner_lr)
        return {"table": table, "losses": losses}

    what = f"{steps} step(s)" if ensemble is None else f"{len(ensemble.adapters)} members"
    result = common.adaptation(
        "ratings_result", key, "The model, the ratings, the user or the settings",
        (0.1, f"Adapting to {int(report['valid'].sum())} rating(s): {what}..."), adapt,
        errors=(ValueError, RuntimeError, OSError),
    )
    if result is None:
        return
    _results(result)


def _item_table(kind, example, prompt, need_rating=True):
    """The `kind` table of item ids (and ratings), read as `common.table_or_prompt` does.

    Returns:
        ``(frame, name, report, item_column)`` (`uploads.item_ratings`'s
        report and item column), or None after showing the prompt or the
        upload's error.
    """
    read = common.table_or_prompt(kind, example, prompt)
    if read is None:
        return None
    frame, name = read
    try:
        report, item_column = uploads.item_ratings(frame, name=name, need_rating=need_rating)
    except uploads.UploadError as error:
        common.show_error(error)
        return None
    return frame, name, report, item_column


def _loss_curve(learner, features, report, item_column, age, gender, occupation, steps, inner_lr):
    """The support loss before each step and after the last (``learner.adapt``)."""
    rows = report[report["valid"]]
    items = rows[item_column].astype(float).astype(np.int64).to_numpy()
    rating_column = next(c for c in rows.columns if c.lower() == "rating")
    y = rows[rating_column].astype(float).to_numpy(np.float32)[:, None]
    x = features.encode(items, features.user_codes(age, gender, occupation))
    adapted = model_catalog.adapt(learner, x, y, steps, inner_lr)
    return getattr(adapted, "adaptation_loss", None)


def _results(result):
    table = result["table"]
    ranked = table[table["error"].isna()]
    errors = table[table["error"].notna()]
    st.subheader("Recommendations")
    st.dataframe(table, width="stretch", key="recommendations_table")
    common.timing_caption(
        result, "`predicted_rating` is the adapted model's predicted rating (1 to 5) for this user; "
        "rows with an `error` were not used or not ranked (never dropped).", what="recommend",
    )
    if len(errors):
        st.warning(f"{len(errors)} row(s) were not used or not ranked (see `error`).")
    if len(ranked):
        chart = pd.DataFrame({
            "item": [f"{int(r):02d}. {t}" for r, t in zip(ranked["rank"], ranked["title"])],
            "predicted rating": ranked["predicted_rating"].astype(float).to_numpy(),
        })
        st.bar_chart(chart, x="item", y="predicted rating", horizontal=True)
    common.loss_curve(result)
    common.download_csv(table, "Download recommendations (CSV)", "recommendations.csv")
