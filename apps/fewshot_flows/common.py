"""What every flow of the app shares: cached loading, uploads, errors, charts."""

import hashlib
import os
import time

import pandas as pd
import streamlit as st

from fewshot import model_catalog, uploads


@st.cache_resource(show_spinner=False, max_entries=4)
def load_learner(path, mtime):
    del mtime  # part of the cache key: a retrained file is reloaded
    return model_catalog.load_learner(path)


@st.cache_resource(show_spinner=False, max_entries=4)
def load_molecule_model(path, mtime):
    del mtime
    from fewshot.predict_molecules import load_molecule_model

    loaded = load_molecule_model(path)
    figure()  # first imports of the charting library are slow
    return loaded


@st.cache_resource(show_spinner=False, max_entries=4)
def load_saved_model(path, mtime):
    del mtime
    from fewshot.export import load_saved_model

    return load_saved_model(path)


def load_classifier(entry):
    """Loads a classification model of the catalog (a `.keras` learner or an export).

    Returns:
        ``(model, metric, outputs)``: whether it is a metric learner (any
        number of classes) and its fixed class count (None for metric
        learners); None after showing the error when it cannot be loaded.
    """
    saved = entry.kind == "saved_model"
    with st.spinner("Loading the model..."):
        try:
            if saved:  # an exported classifier adapts inside its graph (adapt_and_predict)
                model = load_saved_model(entry.path, mtime(entry.path))
            else:
                model = load_learner(entry.path, mtime(entry.path))
        except (ValueError, OSError) as error:
            show_error(error)
            return None
    if saved:
        return model, "embed" in entry.endpoints, entry.num_classes
    metric = callable(getattr(model, "embed", None))
    return model, metric, None if metric else int(model.backbone.output_shape[-1])


def mtime(path):
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def read_table(kind, placeholder=""):
    """The uploaded or pasted table for `kind` ("support"/"query"), or None."""
    col_file, col_text = st.columns([1, 1])
    with col_file:
        uploaded = st.file_uploader(
            f"Upload the {kind} CSV", type=["csv", "txt"], key=f"{kind}_file",
            help=f"At most {uploads.MAX_UPLOAD_BYTES // (1024 * 1024)} MB; a header row is required.",
        )
    with col_text:
        pasted = st.text_area(
            f"...or paste {kind} CSV text", key=f"{kind}_text", height=140,
            placeholder=placeholder,
        )
    if uploaded is not None:
        return uploads.read_csv(uploaded.getvalue(), name=uploaded.name), uploaded.name
    if pasted.strip():
        return uploads.read_csv(pasted, name=f"pasted {kind}"), f"pasted {kind}"
    return None, None


def table_or_prompt(kind, example, prompt):
    """Reads the uploaded or pasted `kind` table ("support"/"query").

    While there is none, shows `prompt` and the `example` CSV text (also the
    text area's placeholder). Returns ``(frame, name)``, or None after
    showing the prompt or the upload's error.
    """
    try:
        frame, name = read_table(kind, example)
    except uploads.UploadError as error:
        show_error(error)
        return None
    if frame is None:
        st.info(prompt)
        st.code(example, language="text")
        return None
    return frame, name


def usable_report(label, report, bad, what):
    """Warns that `bad` of the `what` (for example ``"file(s)"``) cannot be
    used, when any, and shows `report` in an expander titled `label`, open
    when any is bad."""
    if bad:
        st.warning(f"{bad} {what} cannot be used (see the `error` column); the others can.")
    with st.expander(label, expanded=bad > 0):
        st.dataframe(report, width="stretch")


def support_table(example, prompt, input_dim, columns, rows, details=None):
    """The support-set step shared by the CSV flows.

    Reads the uploaded or pasted CSV (`example` is the placeholder and the
    sample shown with `prompt` while there is none), chooses its columns
    with ``columns(frame, input_dim, name=...) -> (features, label)`` (for
    example `uploads.regression_columns`) and converts them with
    ``rows(frame, features, label, name=...)`` (for example
    `uploads.numeric_rows`); every problem is shown in the page, and the
    rows in an expander titled "Support set: N usable of M rows" followed
    by ``details(rows)`` when given.

    Returns:
        ``(name, features, rows)``, or None when there is nothing usable yet.
    """
    read = table_or_prompt("support", example, prompt)
    if read is None:
        return None
    frame, name = read
    try:
        features, label = columns(frame, input_dim, name=name)
        support = rows(frame, features, label, name=name)
    except uploads.UploadError as error:
        show_error(error)
        return None
    usable_report(
        f"Support set: {support.num_valid} usable of {len(frame)} rows" + (details(support) if details else ""),
        support.report, int((~support.valid).sum()), f"row(s) of {name!r}",
    )
    return name, features, support


def query_table(example, input_dim, columns, support_features=None):
    """The unlabelled rows of the query step shared by the CSV flows.

    Reads the uploaded or pasted query CSV, chooses its feature columns
    with ``columns(frame, input_dim, require_label=False, name=...)`` and
    converts them to numbers (`uploads.numeric_rows`). When their names are
    those of `support_features`, they are taken in the support's order.

    Returns:
        The query rows, or None when there are none yet or after showing
        the upload's error.
    """
    try:
        frame, name = read_table("query", example)
        if frame is None:
            return None
        features, _ = columns(frame, input_dim, require_label=False, name=name)
        if support_features is not None and set(features) == set(support_features):
            features = support_features
        return uploads.numeric_rows(frame, features, None, name=name)
    except uploads.UploadError as error:
        show_error(error)
        return None


def adaptation(name, key, inputs, progress, adapt, errors=(ValueError, RuntimeError),
               failure="Adaptation failed: {}"):
    """The Adapt button, and the adaptation it stores (`current_result`).

    When the button is pressed: shows a progress bar at ``progress``
    (``(value, text)``) and calls ``adapt(bar) -> dict``; if it raises one
    of `errors`, empties the bar, shows ``failure.format(error)`` and
    returns None. Otherwise sets the bar to "Adapted.", counts the press
    (``st.session_state["adapt_count"]``) and stores the dict with ``"key"``
    and ``"started"`` (for `timing_caption`) under
    ``st.session_state[name]``.

    Returns:
        ``current_result(name, key, inputs)``: the stored adaptation if it
        is for `key`, else None.
    """
    if st.button("Adapt", type="primary", key="adapt"):
        started = time.perf_counter()
        bar = st.progress(progress[0], text=progress[1])
        try:
            result = adapt(bar)
        except errors as error:
            bar.empty()
            show_error(failure.format(error))
            return None
        bar.progress(1.0, text="Adapted.")
        st.session_state["adapt_count"] = st.session_state.get("adapt_count", 0) + 1
        st.session_state[name] = {"key": key, **result, "started": started}
    return current_result(name, key, inputs)


def adapt_classifier(model, saved, x, y, steps=None, inner_lr=None):
    """A classifier adapted to the support set ``(x, y)`` (class indices).

    An export (`saved`) is bound to it as a `SavedClassifier`, called once
    so that a bad support set fails here, not later; a learner is adapted
    by `model_catalog.adapt` with `steps` and `inner_lr`.
    """
    if saved:
        adapted = SavedClassifier(model, x, y)
        adapted(x[:1])
        return adapted
    return model_catalog.adapt(model, x, y, steps, inner_lr)


def timing_caption(result, text, what="predict"):
    """The caption "Adapt #N + `what`: S s. `text`" of an adaptation's result.

    The seconds run from the press of Adapt (`adaptation`) to the first
    call of this function for that result, which keeps them for later runs.
    """
    started = result.pop("started", None)
    if started is not None:
        result["seconds"] = time.perf_counter() - started
    st.caption(
        f"Adapt #{st.session_state.get('adapt_count', 1)} + {what}: {result.get('seconds', float('nan')):.2f} s. "
        + text
    )


def current_result(name, key, inputs):
    """The adaptation stored under ``st.session_state[name]`` if it is for `key`.

    Returns None when nothing was adapted yet, and also (after saying that
    `inputs` changed and Adapt must be pressed again) when the stored result
    belongs to other inputs.
    """
    result = st.session_state.get(name)
    if not result:
        return None
    if result["key"] != key:
        st.warning(f"{inputs} changed: press Adapt again.")
        return None
    return result


def digest(*parts):
    h = hashlib.sha1()
    for part in parts:
        h.update(repr(part).encode())
    return h.hexdigest()


def figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def show_error(error):
    st.error(str(error))


def loss_curve(result):
    if result["losses"]:
        st.subheader("Adaptation loss on the support set")
        curve = pd.DataFrame({"support loss": result["losses"]})
        curve.index.name = "step"
        st.line_chart(curve, x_label="gradient step", y_label="support loss")
        st.caption(
            f"Support loss {result['losses'][0]:.4f} before adapting, "
            f"{result['losses'][-1]:.4f} after {len(result['losses']) - 1} step(s)."
        )


def download_csv(table, label="Download predictions (CSV)", file_name="predictions.csv"):
    """The download button of a result table as CSV."""
    st.download_button(label, table.to_csv(index=False).encode(), file_name, "text/csv", key="download_predictions")


def offer_saved_model(key, make_zip, spinner="Exporting..."):
    """Buttons to export an adapted model as a SavedModel zip, then download it.

    Args:
        key: the adaptation's key: a zip made for another key is not offered.
        make_zip: ``fn() -> bytes``, for example
            ``lambda: model_catalog.saved_model_zip(adapted)``.
        spinner: the text shown while exporting.

    Returns:
        Whether the download button is on the page.
    """
    if st.button("Prepare the adapted model as a SavedModel (zip)", key="prepare_export"):
        with st.spinner(spinner):
            try:
                st.session_state["export_zip"] = (key, make_zip())
            except (ValueError, OSError, RuntimeError) as error:
                show_error(f"Export failed: {error}")
    exported = st.session_state.get("export_zip")
    if exported and exported[0] == key:
        st.download_button("Download the adapted model (SavedModel zip)", exported[1], "adapted_model.zip",
                           "application/zip", key="download_model")
        return True
    return False


class SavedClassifier:
    """An exported classifier bound to one support set: called like a Keras model.

    Calls run the SavedModel's ``adapt_and_predict`` signature (the learner's
    own adaptation, inside the graph) and return the query logits; ``embed``
    runs its ``embed`` signature (metric learners).
    """

    def __init__(self, served, support_x, support_y):
        self.served, self.support_x, self.support_y = served, support_x, support_y
        self.adaptation_loss = None

    def __call__(self, x, training=False):
        import tensorflow as tf

        out = self.served.signatures["adapt_and_predict"](
            support_x=tf.constant(self.support_x, tf.float32), support_y=tf.constant(self.support_y, tf.int32),
            query_x=tf.constant(x, tf.float32),
        )
        return out["predictions"]

    def embed(self, x):
        import tensorflow as tf

        return self.served.signatures["embed"](inputs=tf.constant(x, tf.float32))["embeddings"].numpy()


def class_probabilities(model, x):
    """Softmax probabilities ``[len(x), N]`` of a classifier's logits."""
    import numpy as np
    import tensorflow as tf

    logits = model(x, training=False)
    return tf.nn.softmax(tf.reshape(logits, [len(x), -1]), axis=-1).numpy().astype(np.float64)


def classify_queries(model, query, names):
    """Classifies the usable rows of `query` (`uploads` rows) among `names`.

    Returns:
        ``(probs, predicted)``: the softmax probabilities ``[len(query.report),
        len(names)]`` (NaN rows where a row could not be used) and the name
        of each row's most probable class ("" where it could not).
    """
    import numpy as np

    probs = np.full((len(query.report), len(names)), np.nan)
    if query.num_valid:
        probs[query.valid] = class_probabilities(model, query.x)
    predicted = [names[int(np.argmax(p))] if np.isfinite(p).all() else "" for p in probs]
    return probs, predicted


def principal_components(z):
    """``[n, 2]``: the rows of `z` on their first two principal components."""
    import numpy as np

    z = np.asarray(z, np.float64)
    z = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    xy = z @ vt[:2].T
    if xy.shape[1] == 1:
        xy = np.concatenate([xy, np.zeros_like(xy)], axis=1)
    return xy


def embedding_projection(embedder, support_x, support_y, names, query_x):
    """Plots the embeddings of support and queries on their first two principal components.

    Args:
        embedder: anything with ``embed(x) -> [n, D]`` (a metric learner, or
            `SavedClassifier` of an exported one).
        support_x, support_y: the support inputs and their class indices.
        names: the class names, by index.
        query_x: the query inputs (may be empty).
    """
    import numpy as np

    z = np.asarray(embedder.embed(np.concatenate([support_x, query_x])))
    if len(z) < 3:
        return
    xy = principal_components(z)
    n = len(support_x)
    plt = figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, name in enumerate(names):
        mask = np.asarray(support_y) == j
        ax.scatter(xy[:n][mask, 0], xy[:n][mask, 1], marker="*", s=200, color=f"C{j % 10}",
                   edgecolors="k", label=f"support: {name}")
    ax.scatter(xy[n:, 0], xy[n:, 1], marker="o", s=40, facecolors="none", edgecolors="k", label="queries")
    ax.set_title("Embeddings, first two principal components")
    ax.legend(fontsize=7)
    fig.tight_layout()
    st.pyplot(fig)
    plt.close(fig)
