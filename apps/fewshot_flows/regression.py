"""Regression from a tabular CSV: adapt on a few (x, y) rows, predict with intervals."""

import importlib

import numpy as np
import streamlit as st

from fewshot import intervals, model_catalog, uploads
from fewshot_flows import common

MIN_SUPPORT = 2
LEVELS = {"80%": 0.2, "90%": 0.1, "95%": 0.05}
EXAMPLE = (
    "x,y\n-4.0,1.2\n-3.0,2.9\n-2.0,2.6\n-1.0,0.5\n0.0,-1.7\n1.0,-2.9\n2.0,-2.3\n3.0,-0.2\n4.0,2.0\n4.5,2.8\n",
    "x\n-4.5\n-2.5\n-0.5\n1.5\n3.5\n",
)


@st.cache_resource(show_spinner=False, max_entries=16)
def warm_adaptation(path, mtime, steps, inner_lr, num_support, input_dim):
    """Traces the adaptation graph for this support size and these settings,
    before Adapt is pressed (the trace, not the adaptation, is what is slow)."""
    learner = common.load_learner(path, mtime)
    zeros = np.zeros((num_support, input_dim), np.float32)
    model_catalog.adapt(learner, zeros, np.zeros((num_support, 1), np.float32), steps, inner_lr)
    if num_support >= 2:  # and the leave-one-out adaptations of the intervals
        loo_x, loo_y = intervals.leave_one_out(zeros, np.zeros((num_support, 1), np.float32))
        intervals.learner_predictor(learner, steps, inner_lr)(loo_x, loo_y, zeros[:, None].repeat(3, 1))
    importlib.import_module("altair")  # first imports of the charting libraries are slow

    common.figure()

    return True


def flow(entry):
    saved = entry.kind == "saved_model"
    with st.spinner("Loading the model..."):
        try:  # loaded once per file (cached), before Adapt is pressed
            if saved:
                common.load_saved_model(entry.path, common.mtime(entry.path))
            else:
                common.load_learner(entry.path, common.mtime(entry.path))
        except (ValueError, OSError) as error:
            common.show_error(error)
            return
    input_dim = entry.input_dim
    st.caption(
        f"Model: `{entry.path}` ({entry.model_class}). It takes {input_dim} input column(s) "
        "and a label column named `y` (or target/label/value)."
    )
    st.header("2. Labelled examples (support set)")
    read = common.support_table(
        EXAMPLE[0], "Upload or paste a CSV of a few labelled examples, for example:", input_dim,
        uploads.regression_columns, uploads.numeric_rows,
    )
    if read is None:
        return
    name, _, support = read
    try:
        uploads.check_enough(support.num_valid, MIN_SUPPORT, name)
    except uploads.UploadError as error:
        common.show_error(error)
        return

    st.header("3. Adapt")
    c1, c2 = st.columns(2)
    default_steps = int(entry.inner_steps or 1)
    if saved:
        c1.write(f"Steps: {entry.inner_steps} (baked into the exported graph)")
        steps, inner_lr = entry.inner_steps, None
    else:
        steps = int(c1.number_input("Gradient steps", 0, 500, max(default_steps, 5), key="steps"))
        inner_lr = float(c2.number_input(
            "Learning rate", 1e-5, 10.0, float(entry.inner_lr or 0.01), format="%.4f", key="inner_lr",
        ))

    st.header("4. Unlabelled examples (queries)")
    query = common.query_table(EXAMPLE[1], input_dim, uploads.regression_columns)
    key = common.digest(entry.path, common.mtime(entry.path), support.x.tobytes(), support.y.tobytes(), steps, inner_lr)
    if not saved:
        with st.spinner("Preparing the adaptation graph..."):
            try:
                warm_adaptation(entry.path, common.mtime(entry.path), steps, inner_lr, support.num_valid, input_dim)
            except (ValueError, RuntimeError) as error:
                common.show_error(f"This model cannot adapt to this support set: {error}")
                return

    def adapt(bar):
        if saved:
            result = {"saved": common.load_saved_model(entry.path, common.mtime(entry.path)), "losses": None}
        else:
            learner = common.load_learner(entry.path, common.mtime(entry.path))
            bar.progress(0.3, text=f"Adapting: {steps} gradient step(s) on {support.num_valid} examples...")
            adapted = model_catalog.adapt(learner, support.x, support.y, steps, inner_lr)
            result = {"adapted": adapted, "losses": getattr(adapted, "adaptation_loss", None),
                      "steps": steps, "inner_lr": inner_lr}
        bar.progress(0.8, text="Predicting...")
        return {**result, "support": support}

    result = common.adaptation(
        "regression_result", key, "The model, the support set or the settings",
        (0.0, "Loading the model..."), adapt, errors=(ValueError, RuntimeError, OSError),
    )
    if result is None:
        return
    regression_results(entry, result, query)


def _regression_predict(result, support, x):
    if "adapted" in result:
        model = result["adapted"]
        if len(x) <= 4096:  # one eager call is faster than building `predict`
            return np.asarray(model(x, training=False)).reshape(len(x), -1)
        return np.asarray(model.predict(x, verbose=0, batch_size=4096)).reshape(len(x), -1)
    import tensorflow as tf

    outputs = result["saved"].signatures["adapt_and_predict"](
        support_x=tf.constant(support.x), support_y=tf.constant(support.y), query_x=tf.constant(x)
    )
    return outputs["predictions"].numpy().reshape(len(x), -1)


def _intervals(entry, result, support, x, alpha, prediction):
    """Jackknife+ intervals of `x` (fewshot.intervals), or None with the reason."""
    if "adapted" in result:
        learner = common.load_learner(entry.path, common.mtime(entry.path))
        predictor = intervals.learner_predictor(learner, result["steps"], result["inner_lr"])
    else:
        import tensorflow as tf

        signature = result["saved"].signatures["adapt_and_predict"]
        predictor = intervals.per_task(lambda sx, sy, qx: signature(
            support_x=tf.constant(sx), support_y=tf.constant(sy), query_x=tf.constant(qx)
        )["predictions"].numpy())
    try:
        return intervals.jackknife_plus(predictor, support.x, support.y, x, alpha, prediction=prediction), None
    except (ValueError, RuntimeError) as error:
        return None, str(error)


def regression_results(entry, result, query):
    support = result["support"]
    if query is None:
        st.info("Adapted. Upload or paste unlabelled examples above to see predictions.")
        common.loss_curve(result)
        return
    level = st.radio(
        "Prediction interval", list(LEVELS), index=1, key="level", horizontal=True,
        help="Jackknife+ intervals from leave-one-out adaptations on the support set "
        "(fewshot.intervals): each support example is left out once, the model adapted on "
        "the others predicts it, and the residuals set the width.",
    )
    alpha = LEVELS[level]
    table = query.report.copy()
    predictions = np.full(len(table), np.nan)
    lower, upper = np.full(len(table), np.nan), np.full(len(table), np.nan)
    grid = None
    if entry.input_dim == 1:
        xs = np.concatenate([support.x[:, 0], query.x[:, 0]]) if query.num_valid else support.x[:, 0]
        low, high = float(xs.min()), float(xs.max())
        pad = 0.1 * (high - low or 1.0)
        grid = np.linspace(low - pad, high + pad, 200, dtype=np.float32)[:, None]
    points = query.x if grid is None else np.concatenate([query.x, grid])
    point_predictions = _regression_predict(result, support, points)[:, 0] if len(points) else np.zeros(0)
    band, why_not = _intervals(entry, result, support, points, alpha, point_predictions)
    n = query.num_valid
    if n:
        predictions[query.valid] = point_predictions[:n]
        if band is not None:
            lower[query.valid], upper[query.valid] = band.lower[:n], band.upper[:n]
    at = len(table.columns) - 2
    table.insert(at, "prediction", predictions)
    if band is not None:
        table.insert(at + 1, f"lower ({level})", lower)
        table.insert(at + 2, f"upper ({level})", upper)
    st.subheader("Predictions")
    st.dataframe(table, width="stretch", key="predictions_table")
    if band is None:
        interval_text = f"Point predictions only (no interval: {why_not})"
    elif band.bounded:
        interval_text = (
            f"`lower`/`upper`: a {level} jackknife+ prediction interval from {support.num_valid} "
            "leave-one-out adaptations (it covers the true value about "
            f"{level} of the time when the queries come from the same task as the support set)"
        )
    else:
        interval_text = (
            f"The {level} interval is unbounded: {support.num_valid} support examples are too few; "
            f"it needs at least {intervals.min_support(alpha)} (add examples or choose a lower level)"
        )
    common.timing_caption(result, interval_text + ".")
    if (~query.valid).any():
        st.warning(f"{int((~query.valid).sum())} query row(s) could not be predicted (see `error`).")
    common.loss_curve(result)
    if grid is not None:
        plt = common.figure()
        fig, ax = plt.subplots(figsize=(7, 3.6))
        if band is not None and band.bounded:
            ax.fill_between(grid[:, 0], band.lower[n:], band.upper[n:], color="C0", alpha=0.18,
                            label=f"{level} jackknife+ interval")
        ax.plot(grid[:, 0], point_predictions[n:], "C0-", label="adapted model")
        ax.plot(support.x[:, 0], support.y[:, 0], "k^", ms=8, label="support (labelled)")
        if n:
            if band is not None and band.bounded and n <= 20:  # more: the band says it
                ax.errorbar(query.x[:, 0], predictions[query.valid],
                            yerr=np.maximum(0, [predictions[query.valid] - lower[query.valid],
                                                upper[query.valid] - predictions[query.valid]]),
                            fmt="o", color="C1", ms=7, capsize=3, label="queries (predicted)")
            else:
                ax.plot(query.x[:, 0], predictions[query.valid], "o", color="C1", ms=7, label="queries (predicted)")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(fontsize=8)
        fig.tight_layout()
        st.pyplot(fig)
        plt.close(fig)
    common.download_csv(table)
    if "adapted" in result:
        common.offer_saved_model(result["key"], lambda: model_catalog.saved_model_zip(result["adapted"]))
