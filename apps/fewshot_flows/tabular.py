"""Tabular classification: a few labelled rows per class, then classify new rows."""

import json
import os

import numpy as np
import pandas as pd
import streamlit as st

from fewshot import model_catalog, uploads
from fewshot_flows import common

#: Usable rows each class of the support set needs.
MIN_PER_CLASS = 1
#: Query rows drawn in the probability chart (the table holds them all).
CHART_ROWS = 40
#: Shown when no tabular classifier is found: trains and saves a tiny ProtoNet.
TRAIN_SNIPPET = '''import pathlib, keras, numpy as np, pandas as pd, fewshot

table = pd.read_csv("my_table.csv")  # numeric feature columns + a `label` column
x = table.drop(columns="label").to_numpy("float32")
names, y = np.unique(table["label"].astype(str), return_inverse=True)
protonet = fewshot.PrototypicalNetwork(
    fewshot.models.mlp(input_shape=(x.shape[1],), hidden=(64,), outputs=32))
protonet.compile(optimizer="adam",
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
episodes = fewshot.episodes.EpisodeSampler(x, y, ways=2, shots=3, queries=3)
protonet.fit(episodes.stream(meta_batch_size=4, batches_per_epoch=50), epochs=4)
out = pathlib.Path("{path}")
out.parent.mkdir(parents=True, exist_ok=True)
protonet.save(out)
'''


def no_model_help(models_dir):
    """What the page says when no tabular classifier is under `models_dir`."""
    st.write(
        "A tabular classifier is a meta-learner over rows of numbers: a ProtoNet or Siamese "
        "network (any number of classes), or a MAML-family learner compiled with "
        "`SparseCategoricalCrossentropy` (a fixed number of classes), saved as `.keras` or "
        "exported with `fewshot export`. These lines meta-train a small ProtoNet on a CSV of "
        "your own (several classes, a few rows each; seconds on 2 CPU cores) and save it in "
        "the models folder, where the app finds it (`fewshot export MODEL OUT_DIR` makes an "
        "exported one):"
    )
    path = os.path.join(str(models_dir).split(os.pathsep)[0] or "runs", "tabular", "models", "protonet.keras")
    st.code(TRAIN_SNIPPET.replace("{path}", path), language="python")


def _example(input_dim):
    """Support and query CSV text with `input_dim` feature columns."""
    columns = [f"f{i + 1}" for i in range(input_dim)]
    rows = {"a": [0.1, 0.2, 0.0], "b": [1.1, 0.9, 1.0]}
    support = [",".join(columns + ["label"])]
    for label, values in rows.items():
        for v in values:
            support.append(",".join([f"{v + 0.05 * j:.2f}" for j in range(input_dim)] + [label]))
    query = [",".join(columns)] + [",".join(f"{v:.2f}" for _ in range(input_dim)) for v in (0.15, 0.95)]
    return "\n".join(support) + "\n", "\n".join(query) + "\n"


def flow(entry):
    saved = entry.kind == "saved_model"
    loaded = common.load_classifier(entry)
    if loaded is None:
        return
    model, metric, outputs = loaded
    input_dim = int(entry.input_dim)
    st.caption(
        f"Model: `{entry.path}` ({entry.model_class}). It takes {input_dim} numeric feature "
        "column(s) and a `label` column (any text or numbers: each distinct value is a class). "
        + ("Any number of classes (it compares embeddings)." if outputs is None
           else f"It was meta-trained {outputs}-way: give exactly {outputs} classes.")
    )
    example = _example(input_dim)
    st.header("2. Labelled rows (support set)")
    read = common.support_table(
        example[0], "Upload or paste a CSV with a few labelled rows of each class, for example:", input_dim,
        uploads.classification_columns, uploads.class_rows, details=_class_counts,
    )
    if read is None:
        return
    name, features, support = read
    try:
        uploads.check_classes(support, name, MIN_PER_CLASS, outputs)
    except uploads.UploadError as error:
        common.show_error(error)
        return

    st.header("3. Adapt")
    c1, c2 = st.columns(2)
    steps = inner_lr = None
    if saved:
        c1.caption(
            f"Exported {entry.model_class}: it adapts inside its graph ("
            + (f"{entry.inner_steps} gradient step(s), baked in)." if entry.inner_steps
               else "no gradient loop: it compares embeddings).")
        )
    elif metric:
        how = ("class prototypes, the mean embedding of each class" if "Prototyp" in entry.model_class
               else "the nearest support row of each class in embedding space")
        c1.caption(f"{entry.model_class} is a metric learner: it adapts without a gradient loop ({how}), "
                   "so there are no steps or learning rate to set and no loss curve.")
    else:
        steps = int(c1.number_input("Gradient steps", 0, 500, int(entry.inner_steps or 1), key="steps"))
        if model_catalog.takes_inner_lr(model):
            inner_lr = float(c2.number_input(
                "Learning rate", 1e-5, 10.0, float(entry.inner_lr or 0.01), format="%.4f", key="inner_lr",
            ))

    st.header("4. Rows to classify (queries)")
    query = common.query_table(example[1], input_dim, uploads.classification_columns, support_features=features)
    key = common.digest(entry.path, common.mtime(entry.path), support.x.tobytes(), support.y.tobytes(),
                        support.classes, steps, inner_lr)

    def adapt(bar):
        if steps and not saved:
            bar.progress(0.3, text=f"Adapting: {steps} gradient step(s) on {support.num_valid} rows...")
        adapted = common.adapt_classifier(model, saved, support.x, support.y, steps, inner_lr)
        return {"adapted": adapted, "classes": support.classes, "x": support.x, "y": support.y,
                "losses": getattr(adapted, "adaptation_loss", None)}

    result = common.adaptation(
        "tabular_result", key, "The model, the support set or the settings",
        (0.1, f"Adapting to {len(support.classes)} classes from {support.num_valid} rows..."), adapt,
    )
    if result is None:
        return
    if query is None:
        st.info("Adapted. Upload or paste rows to classify above.")
        _adaptation(result, saved, metric)
        return
    _results(entry, model, result, query, saved, metric)


def _class_counts(support):
    """The usable rows of each class, as " (a: 3, b: 2)", for the support set's expander."""
    return " (" + ", ".join(f"{c}: {int((support.y == k).sum())}" for k, c in enumerate(support.classes)) + ")"


def _adaptation(result, saved, metric):
    if result["losses"]:
        common.loss_curve(result)
    elif metric:
        st.caption("No loss curve: a metric learner adapts without a gradient loop.")
    elif saved:
        st.caption("No loss curve: an exported model adapts inside its graph and reports no support loss.")


def _results(entry, model, result, query, saved, metric):
    names = result["classes"]
    table = query.report.copy()
    probs, predicted = common.classify_queries(result["adapted"], query, names)
    at = len(table.columns) - 2  # before `valid` and `error`
    table.insert(at, "predicted", predicted)
    table.insert(at + 1, "probability", probs.max(axis=1))  # NaN where not classified
    for j, name in enumerate(names):
        table.insert(at + 2 + j, f"p({name})", probs[:, j])
    st.subheader("Predictions")
    st.dataframe(table, width="stretch", key="predictions_table")
    common.timing_caption(
        result, "`probability` is the model's softmax probability of the predicted class; `p(class)` of each class."
    )
    if (~query.valid).any():
        st.warning(f"{int((~query.valid).sum())} query row(s) could not be classified (see `error`).")
    rows = np.flatnonzero(query.valid)[:CHART_ROWS]
    if len(rows):
        st.subheader("Class probabilities")
        chart = pd.DataFrame(probs[rows], columns=names, index=[f"row {i + 1}" for i in rows])
        chart.index.name = "query"
        st.bar_chart(chart, horizontal=True, stack=True, x_label="probability", y_label="query row")
        if query.num_valid > CHART_ROWS:
            st.caption(f"The chart shows the first {CHART_ROWS} usable rows; the table has them all.")
    _adaptation(result, saved, metric)
    if metric:
        st.subheader("Embeddings")
        common.embedding_projection(result["adapted"] if saved else model, result["x"], result["y"], names, query.x)
    common.download_csv(table)
    if saved:
        st.caption("An exported model adapts inside its own graph: the SavedModel folder you picked "
                   "is the model to deploy (its `adapt_and_predict` takes the support rows, labels "
                   f"0..{len(names) - 1} for {names}).")
        return
    classes = json.dumps({"classes": names}, indent=2) + "\n"
    if common.offer_saved_model(result["key"], lambda: model_catalog.saved_model_zip(
            result["adapted"], extra_files={"assets.extra/classes.json": classes})):
        st.caption(f"Its outputs are the logits of {names}, in that order (also in `assets.extra/classes.json`).")
