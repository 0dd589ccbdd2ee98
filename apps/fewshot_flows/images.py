"""Images, classes from file names: classify query images, project embeddings."""

import numpy as np
import streamlit as st

from fewshot import model_catalog, uploads
from fewshot_flows import common

IMAGE_TYPES = [extension.lstrip(".") for extension in uploads.IMAGE_EXTENSIONS]


def flow(entry):
    shape = tuple(entry.input_shape)
    saved = entry.kind == "saved_model"
    loaded = common.load_classifier(entry)
    if loaded is None:
        return
    learner, metric, outputs = loaded
    st.caption(
        f"Model: `{entry.path}` ({entry.model_class}), {shape[0]}x{shape[1]} images with "
        f"{shape[2]} channel(s); images are resized and converted to fit. "
        + ("Any number of classes." if outputs is None else f"It was meta-trained {outputs}-way: give exactly {outputs} classes.")
    )
    st.header("2. Labelled images (support set)")
    files = st.file_uploader(
        "Upload labelled images, named CLASS_anything.png (for example cat_1.png)",
        type=IMAGE_TYPES, accept_multiple_files=True, key="support_images",
    )
    if not files:
        st.info("Upload a few images of each class; the class is the file name up to the first `_`.")
        return
    invert = st.checkbox(
        "Invert the images (dark strokes on light paper become bright strokes)",
        value="omniglot" in entry.path.lower(), key="invert",
        help="Omniglot models (recipes/omniglot) were trained on bright strokes on a black background.",
    )
    support = uploads.read_images([(f.name, f.getvalue()) for f in files], shape)
    if invert:
        support.x = 1.0 - support.x
    common.usable_report(f"Support set: {support.num_valid} usable of {len(files)} files", support.report,
                         int((~support.valid).sum()), "file(s)")
    names = sorted(set(support.classes))
    if len(names) < 2:
        common.show_error(f"Too few classes among the usable images: {len(names)} ({names}); at least 2 needed.")
        return
    if outputs is not None and len(names) != outputs:
        common.show_error(
            f"This model was meta-trained {outputs}-way: it needs exactly {outputs} classes; "
            f"the usable images have {len(names)}: {names}."
        )
        return
    y = np.array([names.index(c) for c in support.classes], np.int32)

    st.header("3. Adapt")
    c1, c2 = st.columns(2)
    steps = inner_lr = None
    if saved:
        c1.caption(
            f"Exported {entry.model_class}: it adapts inside its graph ("
            + (f"{entry.inner_steps} gradient step(s), baked in)." if entry.inner_steps else "class prototypes).")
        )
    elif model_catalog.takes_inner_lr(learner):
        steps = int(c1.number_input("Gradient steps", 0, 500, int(entry.inner_steps or 1), key="steps"))
        inner_lr = float(c2.number_input(
            "Learning rate", 1e-5, 10.0, float(entry.inner_lr or 0.01), format="%.4f", key="inner_lr",
        ))
    else:
        c1.caption(f"{entry.model_class} adapts without gradient steps (class prototypes).")
    st.header("4. Images to classify (queries)")
    q_files = st.file_uploader("Upload unlabelled images", type=IMAGE_TYPES, accept_multiple_files=True,
                               key="query_images")
    query = uploads.read_images([(f.name, f.getvalue()) for f in q_files], shape, labelled=False) if q_files else None
    if query is not None and invert:
        query.x = 1.0 - query.x
    key = common.digest(entry.path, common.mtime(entry.path), support.x.tobytes(), y.tobytes(), steps, inner_lr)

    def adapt(bar):
        adapted = common.adapt_classifier(learner, saved, support.x, y, steps, inner_lr)
        return {"adapted": adapted, "names": names, "support": support, "y": y,
                "losses": getattr(adapted, "adaptation_loss", None)}

    result = common.adaptation(
        "image_result", key, "The model, the images or the settings",
        (0.3, f"Adapting to {len(names)} classes from {support.num_valid} images..."), adapt,
    )
    if result is None:
        return
    if query is None:
        st.info("Adapted. Upload images to classify above.")
        common.loss_curve(result)
        return
    table = query.report.drop(columns=["class"])
    probs, predicted = common.classify_queries(result["adapted"], query, names)
    table.insert(1, "predicted", predicted)
    table.insert(2, "probability", [p.max() if np.isfinite(p).all() else np.nan for p in probs])
    for j, name in enumerate(names):
        table[f"p({name})"] = probs[:, j]
    st.subheader("Predictions")
    st.dataframe(table, width="stretch")
    common.timing_caption(result, "`probability` is the model's softmax probability of the predicted class.")
    if (~query.valid).any():
        st.warning(f"{int((~query.valid).sum())} file(s) could not be classified (see `error`).")
    rows = np.flatnonzero(query.valid)[:24]  # query.x holds the valid files, in order
    if len(rows):
        st.image([np.clip(query.x[k].squeeze(), 0, 1) for k in range(len(rows))], width=84,
                 caption=[f"{predicted[i]} ({probs[i].max():.2f})" for i in rows])
    common.loss_curve(result)
    if metric:
        common.embedding_projection(result["adapted"] if saved else learner, result["support"].x, result["y"],
                                    result["names"], query.x)
    common.download_csv(table)
    if saved:
        st.caption("An exported model adapts inside its own graph: the SavedModel folder you picked "
                   "is the model to deploy (its `adapt_and_predict` takes the support images).")
        return
    common.offer_saved_model(result["key"], lambda: model_catalog.saved_model_zip(result["adapted"]))
