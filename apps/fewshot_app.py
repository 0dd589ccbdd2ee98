"""fewshot app: upload a few examples, watch a meta-learned model adapt, predict.

Start it with ``fewshot app`` (or ``streamlit run apps/fewshot_app.py``).
The folder scanned for trained models is ``$FEWSHOT_MODELS_DIR`` (default
``runs``, where ``make demo`` writes). This file is UI only: parsing and
validating uploads is `fewshot.uploads`, finding, loading and training models
is `fewshot.model_catalog`, adapting is the learner's own `adapt`, molecules
go through `fewshot.predict_molecules`.
"""

import hashlib
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from fewshot import model_catalog, uploads  # noqa: E402

DOMAINS = {
    "Regression / tabular CSV": model_catalog.REGRESSION,
    "Molecules (SMILES)": model_catalog.MOLECULES,
    "Images (classes by file name)": model_catalog.IMAGES,
}
MIN_SUPPORT = {model_catalog.REGRESSION: 2, model_catalog.MOLECULES: 2}
IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "bmp"]
DEFAULT_RUN = "app-default"
DEFAULT_META_STEPS = int(os.environ.get("FEWSHOT_APP_DEFAULT_STEPS", "3000"))
EXAMPLES = {
    model_catalog.REGRESSION: (
        "x,y\n-4.0,1.2\n-3.0,2.9\n-2.0,2.6\n-1.0,0.5\n0.0,-1.7\n1.0,-2.9\n2.0,-2.3\n3.0,-0.2\n4.0,2.0\n4.5,2.8\n",
        "x\n-4.5\n-2.5\n-0.5\n1.5\n3.5\n",
    ),
    model_catalog.IMAGES: ("", ""),
    model_catalog.MOLECULES: (
        "smiles,label\nCCO,0\nCC(=O)O,0\nc1ccccc1O,1\nc1ccc2ccccc2c1,1\n",
        "smiles\nCCN\nc1ccccc1N\nnot-a-smiles\n",
    ),
}


# ----------------------------------------------------------------- helpers
@st.cache_resource(show_spinner=False, max_entries=4)
def _load_learner(path, mtime):
    del mtime  # part of the cache key: a retrained file is reloaded
    return model_catalog.load_learner(path)


@st.cache_resource(show_spinner=False, max_entries=16)
def _warm_adaptation(path, mtime, steps, inner_lr, num_support, input_dim):
    """Traces the adaptation graph for this support size and these settings,
    before Adapt is pressed (the trace, not the adaptation, is what is slow)."""
    learner = _load_learner(path, mtime)
    zeros = np.zeros((num_support, input_dim), np.float32)
    model_catalog.adapt(learner, zeros, np.zeros((num_support, 1), np.float32), steps, inner_lr)
    import altair  # noqa: F401  (first imports of the charting libraries are slow)

    _figure()

    return True


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_molecule_model(path, mtime):
    del mtime
    from fewshot.predict_molecules import load_molecule_model

    loaded = load_molecule_model(path)
    _figure()  # first imports of the charting library are slow
    return loaded


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_saved_model(path, mtime):
    del mtime
    from fewshot.export import load_saved_model

    return load_saved_model(path)


def _mtime(path):
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def _read_table(kind, domain):
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
            placeholder=EXAMPLES[domain][0 if kind == "support" else 1],
        )
    if uploaded is not None:
        return uploads.read_csv(uploaded.getvalue(), name=uploaded.name), uploaded.name
    if pasted.strip():
        return uploads.read_csv(pasted, name=f"pasted {kind}"), f"pasted {kind}"
    return None, None


def _digest(*parts):
    h = hashlib.sha1()
    for part in parts:
        h.update(repr(part).encode())
    return h.hexdigest()


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _show_error(error):
    st.error(str(error))


# -------------------------------------------------------------- the sidebar
def sidebar():
    st.sidebar.header("1. Domain and model")
    domain_name = st.sidebar.radio("Domain", list(DOMAINS), key="domain")
    domain = DOMAINS[domain_name]
    models_dir = st.sidebar.text_input(
        "Models folder", value=os.environ.get(model_catalog.MODELS_DIR_ENV, model_catalog.DEFAULT_MODELS_DIR),
        key="models_dir", help="Scanned for runs/*/models/*.keras, molecule model folders and exported SavedModels.",
    )
    entries = [e for e in model_catalog.find_models(models_dir) if e.domain == domain]
    if not entries:
        st.sidebar.warning(f"No trained {domain} model under {models_dir!r}.")
        return domain, None, models_dir
    labels = [e.label for e in entries]
    chosen = st.sidebar.selectbox("Trained model", labels, key="model")
    return domain, entries[labels.index(chosen)], models_dir


def no_model(domain, models_dir):
    st.info(
        f"There is no trained {domain} model in `{models_dir}` yet.\n\n"
        "Get one with `make demo` (meta-trains the sinusoid models into "
        "`runs/sinusoid/models/`), or `fewshot run recipes/sinusoid --out runs/sinusoid`"
        + (
            "; molecule models come from `fewshot run recipes/drug_property --out runs/drug_property`."
            if domain == model_catalog.MOLECULES
            else "; image models from `fewshot run recipes/omniglot --out runs/omniglot`."
            if domain == model_catalog.IMAGES
            else "."
        )
    )
    if domain != model_catalog.REGRESSION:
        return
    target = os.path.join(models_dir.split(os.pathsep)[0], DEFAULT_RUN)
    st.write(
        f"Or train the small default here: MAML on sinusoid regression, "
        f"{DEFAULT_META_STEPS} meta-steps (under a minute on 2 CPU cores), saved to `{target}`."
    )
    if st.button("Train the small default model", key="train_default"):
        bar = st.progress(0.0, text="Starting meta-training...")
        try:
            path = model_catalog.train_default(
                target, meta_steps=DEFAULT_META_STEPS,
                progress=lambda fraction, text: bar.progress(min(1.0, fraction), text=text),
            )
        except (ValueError, OSError, RuntimeError) as error:
            _show_error(f"Training failed: {error}")
            return
        bar.progress(1.0, text="Done")
        st.success(f"Saved {path}. Pick it in the sidebar.")
        st.rerun()


# -------------------------------------------------------- regression flow
def regression_flow(entry):
    saved = entry.kind == "saved_model"
    with st.spinner("Loading the model..."):
        try:  # loaded once per file (cached), before Adapt is pressed
            if saved:
                _load_saved_model(entry.path, _mtime(entry.path))
            else:
                _load_learner(entry.path, _mtime(entry.path))
        except (ValueError, OSError) as error:
            _show_error(error)
            return
    input_dim = entry.input_dim
    st.caption(
        f"Model: `{entry.path}` ({entry.model_class}). It takes {input_dim} input column(s) "
        "and a label column named `y` (or target/label/value)."
    )
    st.header("2. Labelled examples (support set)")
    try:
        frame, name = _read_table("support", model_catalog.REGRESSION)
    except uploads.UploadError as error:
        _show_error(error)
        return
    if frame is None:
        st.info("Upload or paste a CSV of a few labelled examples, for example:")
        st.code(EXAMPLES[model_catalog.REGRESSION][0], language="text")
        return
    try:
        features, label = uploads.regression_columns(frame, input_dim, name=name)
        support = uploads.numeric_rows(frame, features, label, name=name)
    except uploads.UploadError as error:
        _show_error(error)
        return
    bad = int((~support.valid).sum())
    if bad:
        st.warning(f"{bad} row(s) of {name!r} cannot be used (see the `error` column); the others can.")
    with st.expander(f"Support set: {support.num_valid} usable of {len(frame)} rows", expanded=bad > 0):
        st.dataframe(support.report, width="stretch")
    try:
        uploads.check_enough(support.num_valid, MIN_SUPPORT[model_catalog.REGRESSION], name)
    except uploads.UploadError as error:
        _show_error(error)
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
    try:
        query_frame, query_name = _read_table("query", model_catalog.REGRESSION)
        query = None
        if query_frame is not None:
            q_features, _ = uploads.regression_columns(
                query_frame, input_dim, require_label=False, name=query_name
            )
            query = uploads.numeric_rows(query_frame, q_features, None, name=query_name)
    except uploads.UploadError as error:
        _show_error(error)
        query = None
    key = _digest(entry.path, _mtime(entry.path), support.x.tobytes(), support.y.tobytes(), steps, inner_lr)
    if not saved:
        with st.spinner("Preparing the adaptation graph..."):
            try:
                _warm_adaptation(entry.path, _mtime(entry.path), steps, inner_lr, support.num_valid, input_dim)
            except (ValueError, RuntimeError) as error:
                _show_error(f"This model cannot adapt to this support set: {error}")
                return

    if st.button("Adapt", type="primary", key="adapt"):
        started = time.perf_counter()
        bar = st.progress(0.0, text="Loading the model...")
        try:
            if saved:
                served = _load_saved_model(entry.path, _mtime(entry.path))
                result = {"key": key, "saved": served, "losses": None}
            else:
                learner = _load_learner(entry.path, _mtime(entry.path))
                bar.progress(0.3, text=f"Adapting: {steps} gradient step(s) on {support.num_valid} examples...")
                adapted = model_catalog.adapt(learner, support.x, support.y, steps, inner_lr)
                result = {"key": key, "adapted": adapted, "losses": getattr(adapted, "adaptation_loss", None)}
        except (ValueError, RuntimeError, OSError) as error:
            bar.empty()
            _show_error(f"Adaptation failed: {error}")
            return
        bar.progress(0.8, text="Predicting...")
        result["support"] = support
        st.session_state["regression_result"] = result
        st.session_state["adapt_started"] = started
        st.session_state["adapt_count"] = st.session_state.get("adapt_count", 0) + 1
        bar.progress(1.0, text="Adapted.")

    result = st.session_state.get("regression_result")
    if not result:
        return
    if result["key"] != key:
        st.warning("The model, the support set or the settings changed: press Adapt again.")
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


def _loss_curve(result):
    if result["losses"]:
        st.subheader("Adaptation loss on the support set")
        curve = pd.DataFrame({"support loss": result["losses"]})
        curve.index.name = "step"
        st.line_chart(curve, x_label="gradient step", y_label="support loss")
        st.caption(
            f"Support loss {result['losses'][0]:.4f} before adapting, "
            f"{result['losses'][-1]:.4f} after {len(result['losses']) - 1} step(s)."
        )


def regression_results(entry, result, query):
    support = result["support"]
    if query is None:
        st.info("Adapted. Upload or paste unlabelled examples above to see predictions.")
        _loss_curve(result)
        return
    table = query.report.copy()
    predictions = np.full(len(table), np.nan)
    if query.num_valid:
        predictions[query.valid] = _regression_predict(result, support, query.x)[:, 0]
    table.insert(len(table.columns) - 2, "prediction", predictions)
    started = st.session_state.pop("adapt_started", None)
    st.subheader("Predictions")
    st.dataframe(table, width="stretch", key="predictions_table")
    if started is not None:
        st.session_state["last_seconds"] = time.perf_counter() - started
    if "last_seconds" in st.session_state:
        st.caption(
            f"Adapt #{st.session_state.get('adapt_count', 1)} + predict: "
            f"{st.session_state['last_seconds']:.2f} s. Point predictions "
            "(this model gives no intervals)."
        )
    if (~query.valid).any():
        st.warning(f"{int((~query.valid).sum())} query row(s) could not be predicted (see `error`).")
    _loss_curve(result)
    if entry.input_dim == 1:
        plt = _figure()
        fig, ax = plt.subplots(figsize=(7, 3.6))
        xs = np.concatenate([support.x[:, 0], query.x[:, 0]]) if query.num_valid else support.x[:, 0]
        low, high = float(xs.min()), float(xs.max())
        pad = 0.1 * (high - low or 1.0)
        grid = np.linspace(low - pad, high + pad, 200, dtype=np.float32)[:, None]
        ax.plot(grid[:, 0], _regression_predict(result, support, grid)[:, 0], "C0-", label="adapted model")
        ax.plot(support.x[:, 0], support.y[:, 0], "k^", ms=8, label="support (labelled)")
        if query.num_valid:
            ax.plot(query.x[:, 0], predictions[query.valid], "o", color="C1", ms=7, label="queries (predicted)")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(fontsize=8)
        fig.tight_layout()
        st.pyplot(fig)
        plt.close(fig)
    st.download_button(
        "Download predictions (CSV)", table.to_csv(index=False).encode(), "predictions.csv",
        "text/csv", key="download_predictions",
    )
    if "adapted" in result:
        if st.button("Prepare the adapted model as a SavedModel (zip)", key="prepare_export"):
            with st.spinner("Exporting..."):
                try:
                    st.session_state["export_zip"] = (result["key"], model_catalog.saved_model_zip(result["adapted"]))
                except (ValueError, OSError) as error:
                    _show_error(f"Export failed: {error}")
        exported = st.session_state.get("export_zip")
        if exported and exported[0] == result["key"]:
            st.download_button(
                "Download the adapted model (SavedModel zip)", exported[1], "adapted_model.zip",
                "application/zip", key="download_model",
            )


# --------------------------------------------------------- molecule flow
def molecule_flow(entry):
    from fewshot.predict_molecules import predict_molecules

    with st.spinner("Loading the model..."):
        try:  # loaded once per folder (cached), before Adapt is pressed
            _load_molecule_model(entry.path, _mtime(entry.path))
        except (ValueError, OSError, ImportError) as error:
            _show_error(error)
            return

    st.caption(
        f"Model: `{entry.path}` ({entry.model_class}). Support CSV: a `smiles` column and a "
        "0/1 `label` column (at least one of each); query CSV: a `smiles` column."
    )
    st.header("2. Labelled molecules (support set)")
    try:
        support, s_name = _read_table("support", model_catalog.MOLECULES)
    except uploads.UploadError as error:
        _show_error(error)
        return
    if support is None:
        st.info("Upload or paste labelled molecules, for example:")
        st.code(EXAMPLES[model_catalog.MOLECULES][0], language="text")
        return
    st.header("3. Molecules to rank (queries)")
    try:
        query, q_name = _read_table("query", model_catalog.MOLECULES)
    except uploads.UploadError as error:
        _show_error(error)
        return
    steps = None
    if entry.inner_steps is not None:
        steps = int(st.number_input("Gradient steps", 0, 500, int(entry.inner_steps or 1), key="mol_steps"))
    else:
        st.caption(f"{entry.model_class} adapts without gradient steps (class prototypes).")
    if query is None:
        st.info("Add the molecules to rank, then press Adapt.")
        return
    if st.button("Adapt", type="primary", key="adapt"):
        started = time.perf_counter()
        bar = st.progress(0.0, text="Loading the model...")
        try:
            learner, featurizer, _ = _load_molecule_model(entry.path, _mtime(entry.path))
            bar.progress(0.3, text="Featurising, adapting and scoring...")
            predictions, report = predict_molecules((learner, featurizer), support, query, steps=steps)
        except (ValueError, RuntimeError, OSError, ImportError) as error:
            bar.empty()
            _show_error(error)
            return
        bar.progress(1.0, text="Adapted.")
        st.session_state["adapt_count"] = st.session_state.get("adapt_count", 0) + 1
        st.session_state["molecule_result"] = {
            "key": _digest(entry.path, support.to_csv(), query.to_csv(), steps),
            "predictions": predictions, "report": report,
            "seconds": time.perf_counter() - started,
        }
    result = st.session_state.get("molecule_result")
    if not result:
        return
    if result["key"] != _digest(entry.path, support.to_csv(), query.to_csv(), steps):
        st.warning("The model, the molecules or the settings changed: press Adapt again.")
        return
    report, predictions = result["report"], result["predictions"]
    bad = int((~report["valid"]).sum())
    if bad:
        st.warning(f"{bad} support row(s) were not used (see `error`).")
    with st.expander(f"Support set: {int(report['valid'].sum())} usable of {len(report)} rows", expanded=bad > 0):
        st.dataframe(report, width="stretch")
    st.subheader("Predictions")
    st.dataframe(predictions.sort_values("rank", na_position="last"), width="stretch", key="predictions_table")
    st.caption(
        f"Adapt #{st.session_state.get('adapt_count', 1)} + predict: {result['seconds']:.2f} s. "
        "`score` is the probability of being active."
    )
    q_bad = int((~predictions["valid"]).sum())
    if q_bad:
        st.warning(f"{q_bad} query row(s) have invalid SMILES (flagged, not dropped).")
    _draw_molecules(predictions)
    _embedding_projection(entry, support, report, predictions)
    st.download_button(
        "Download predictions (CSV)", predictions.to_csv(index=False).encode(), "predictions.csv",
        "text/csv", key="download_predictions",
    )
    if st.button("Prepare the adapted model as a SavedModel (zip)", key="prepare_export"):
        with st.spinner("Adapting again and exporting..."):
            try:
                st.session_state["export_zip"] = (result["key"], _molecule_model_zip(entry, report, steps))
            except (ValueError, OSError, RuntimeError) as error:
                _show_error(f"Export failed: {error}")
    exported = st.session_state.get("export_zip")
    if exported and exported[0] == result["key"]:
        st.download_button(
            "Download the adapted model (SavedModel zip)", exported[1], "adapted_model.zip",
            "application/zip", key="download_model",
        )
        st.caption("The exported model takes the featuriser's vectors (see featurizer.json of the "
                   "model folder), not SMILES strings.")


def _support_labels(report):
    """``(smiles, labels)`` of the valid support rows, as `predict_molecules` used them."""
    s_col = _smiles_column(report)
    others = [c for c in report.columns if c not in (s_col, "valid", "error")]
    named = [c for c in others if c.lower() in ("label", "active", "activity", "y", "target", "class")]
    rows = report[report["valid"]]
    for column in named + others:
        values = rows[column].astype(str).str.strip()
        if values.isin(["0", "1", "0.0", "1.0"]).all():
            return list(rows[s_col]), values.isin(["1", "1.0"]).to_numpy().astype(np.int32)
    raise ValueError("cannot tell which support column holds the 0/1 labels")


def _molecule_model_zip(entry, report, steps):
    learner, featurizer, _ = _load_molecule_model(entry.path, _mtime(entry.path))
    smiles, labels = _support_labels(report)
    features, _, _ = featurizer(smiles)
    adapted = model_catalog.adapt(learner, features, labels, steps)
    return model_catalog.saved_model_zip(adapted)


def _smiles_column(frame):
    return next((c for c in frame.columns if c.lower() == "smiles"), frame.columns[0])


def _draw_molecules(predictions, limit=12):
    try:
        from rdkit import Chem
        from rdkit.Chem import Draw
    except ImportError:
        st.caption("Install RDKit (`pip install fewshot[chem]`) to draw the molecules.")
        return
    column = _smiles_column(predictions)
    top = predictions[predictions["valid"]].sort_values("rank").head(limit)
    mols = [Chem.MolFromSmiles(s) for s in top[column]]
    if not mols:
        return
    legends = [f"#{int(r)}  p={s:.2f}" for r, s in zip(top["rank"], top["score"])]
    image = Draw.MolsToGridImage(mols, molsPerRow=4, subImgSize=(220, 180), legends=legends)
    st.image(image, caption="Top-ranked query molecules")


def _embedding_projection(entry, support, report, predictions):
    learner, featurizer, _ = _load_molecule_model(entry.path, _mtime(entry.path))
    if not callable(getattr(learner, "embed", None)):
        return
    s_rows = report[report["valid"]]
    q_rows = predictions[predictions["valid"]]
    if len(s_rows) + len(q_rows) < 3:
        return
    s_col, q_col = _smiles_column(s_rows), _smiles_column(q_rows)
    smiles = list(s_rows[s_col]) + list(q_rows[q_col])
    features, _, _ = featurizer(smiles)
    z = np.asarray(learner.embed(features))
    z = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    xy = z @ vt[:2].T
    if xy.shape[1] == 1:
        xy = np.concatenate([xy, np.zeros_like(xy)], axis=1)
    n = len(s_rows)
    try:
        labels = _support_labels(report)[1].astype(bool)
    except ValueError:
        return
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    sc = ax.scatter(xy[n:, 0], xy[n:, 1], c=q_rows["score"], cmap="coolwarm", vmin=0, vmax=1, s=30,
                    label="queries (colour = score)")
    ax.scatter(xy[:n][labels, 0], xy[:n][labels, 1], marker="*", s=220, c="red", edgecolors="k",
               label="support: active")
    ax.scatter(xy[:n][~labels, 0], xy[:n][~labels, 1], marker="s", s=90, c="blue", edgecolors="k",
               label="support: inactive")
    fig.colorbar(sc, ax=ax, label="score")
    ax.set_title("Embeddings, first two principal components")
    ax.legend(fontsize=7)
    fig.tight_layout()
    st.pyplot(fig)
    plt.close(fig)


# ------------------------------------------------------------ image flow
def images_flow(entry):
    shape = tuple(entry.input_shape)
    with st.spinner("Loading the model..."):
        try:
            learner = _load_learner(entry.path, _mtime(entry.path))
        except (ValueError, OSError) as error:
            _show_error(error)
            return
    metric = callable(getattr(learner, "embed", None))
    outputs = None if metric else int(learner.backbone.output_shape[-1])
    st.caption(
        f"Model: `{entry.path}` ({entry.model_class}), {shape[0]}x{shape[1]} images with "
        f"{shape[2]} channel(s); images are resized and converted to fit. "
        + ("Any number of classes." if metric else f"It was meta-trained {outputs}-way: give exactly {outputs} classes.")
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
    bad = int((~support.valid).sum())
    if bad:
        st.warning(f"{bad} file(s) cannot be used (see the `error` column); the others can.")
    with st.expander(f"Support set: {support.num_valid} usable of {len(files)} files", expanded=bad > 0):
        st.dataframe(support.report, width="stretch")
    names = sorted(set(support.classes))
    if len(names) < 2:
        _show_error(f"Too few classes among the usable images: {len(names)} ({names}); at least 2 needed.")
        return
    if outputs is not None and len(names) != outputs:
        _show_error(
            f"This model was meta-trained {outputs}-way: it needs exactly {outputs} classes; "
            f"the usable images have {len(names)}: {names}."
        )
        return
    y = np.array([names.index(c) for c in support.classes], np.int32)

    st.header("3. Adapt")
    c1, c2 = st.columns(2)
    steps = inner_lr = None
    if model_catalog.takes_inner_lr(learner):
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
    key = _digest(entry.path, _mtime(entry.path), support.x.tobytes(), y.tobytes(), steps, inner_lr)
    if st.button("Adapt", type="primary", key="adapt"):
        started = time.perf_counter()
        bar = st.progress(0.3, text=f"Adapting to {len(names)} classes from {support.num_valid} images...")
        try:
            adapted = model_catalog.adapt(learner, support.x, y, steps, inner_lr)
        except (ValueError, RuntimeError) as error:
            bar.empty()
            _show_error(f"Adaptation failed: {error}")
            return
        bar.progress(1.0, text="Adapted.")
        st.session_state["adapt_count"] = st.session_state.get("adapt_count", 0) + 1
        st.session_state["image_result"] = {
            "key": key, "adapted": adapted, "names": names, "support": support, "y": y,
            "losses": getattr(adapted, "adaptation_loss", None), "started": started,
        }
    result = st.session_state.get("image_result")
    if not result:
        return
    if result["key"] != key:
        st.warning("The model, the images or the settings changed: press Adapt again.")
        return
    if query is None:
        st.info("Adapted. Upload images to classify above.")
        _loss_curve(result)
        return
    table = query.report.drop(columns=["class"])
    probs = np.full((len(table), len(names)), np.nan)
    if query.num_valid:
        import tensorflow as tf

        logits = result["adapted"](query.x, training=False)
        probs[query.valid] = tf.nn.softmax(tf.reshape(logits, [query.num_valid, -1]), axis=-1).numpy()
    predicted = [names[int(np.argmax(p))] if np.isfinite(p).all() else "" for p in probs]
    table.insert(1, "predicted", predicted)
    table.insert(2, "probability", [p.max() if np.isfinite(p).all() else np.nan for p in probs])
    for j, name in enumerate(names):
        table[f"p({name})"] = probs[:, j]
    st.subheader("Predictions")
    st.dataframe(table, width="stretch")
    started = result.pop("started", None)
    if started is not None:
        result["seconds"] = time.perf_counter() - started
    st.caption(
        f"Adapt #{st.session_state.get('adapt_count', 1)} + predict: {result.get('seconds', float('nan')):.2f} s. "
        "`probability` is the model's softmax probability of the predicted class."
    )
    if (~query.valid).any():
        st.warning(f"{int((~query.valid).sum())} file(s) could not be classified (see `error`).")
    rows = np.flatnonzero(query.valid)[:24]  # query.x holds the valid files, in order
    if len(rows):
        st.image([np.clip(query.x[k].squeeze(), 0, 1) for k in range(len(rows))], width=84,
                 caption=[f"{predicted[i]} ({probs[i].max():.2f})" for i in rows])
    _loss_curve(result)
    if metric:
        _image_projection(learner, result, query)
    st.download_button(
        "Download predictions (CSV)", table.to_csv(index=False).encode(), "predictions.csv",
        "text/csv", key="download_predictions",
    )
    if st.button("Prepare the adapted model as a SavedModel (zip)", key="prepare_export"):
        with st.spinner("Exporting..."):
            try:
                st.session_state["export_zip"] = (result["key"], model_catalog.saved_model_zip(result["adapted"]))
            except (ValueError, OSError) as error:
                _show_error(f"Export failed: {error}")
    exported = st.session_state.get("export_zip")
    if exported and exported[0] == result["key"]:
        st.download_button("Download the adapted model (SavedModel zip)", exported[1], "adapted_model.zip",
                           "application/zip", key="download_model")


def _image_projection(learner, result, query):
    support = result["support"]
    z = np.asarray(learner.embed(np.concatenate([support.x, query.x])))
    if len(z) < 3:
        return
    z = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    xy = z @ vt[:2].T
    if xy.shape[1] == 1:
        xy = np.concatenate([xy, np.zeros_like(xy)], axis=1)
    n = len(support.x)
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, name in enumerate(result["names"]):
        mask = result["y"] == j
        ax.scatter(xy[:n][mask, 0], xy[:n][mask, 1], marker="*", s=200, color=f"C{j % 10}",
                   edgecolors="k", label=f"support: {name}")
    ax.scatter(xy[n:, 0], xy[n:, 1], marker="o", s=40, facecolors="none", edgecolors="k", label="queries")
    ax.set_title("Embeddings, first two principal components")
    ax.legend(fontsize=7)
    fig.tight_layout()
    st.pyplot(fig)
    plt.close(fig)


# ------------------------------------------------------------------ page
def main():
    st.set_page_config(page_title="fewshot", layout="wide")
    st.title("fewshot: learn a new task from a few examples")
    try:
        domain, entry, models_dir = sidebar()
        if entry is None:
            no_model(domain, models_dir)
        elif domain == model_catalog.MOLECULES:
            molecule_flow(entry)
        elif domain == model_catalog.IMAGES:
            images_flow(entry)
        else:
            regression_flow(entry)
    except uploads.UploadError as error:
        _show_error(error)
    except Exception as error:  # the last resort: one line in the page, not a traceback
        if os.environ.get("FEWSHOT_DEBUG"):
            raise
        first = (str(error).strip().splitlines() or [""])[0][:300]
        _show_error(
            f"Something went wrong: {type(error).__name__}: {first}. "
            "Set FEWSHOT_DEBUG=1 before `fewshot app` to see the traceback."
        )


main()
