"""What every flow of the app shares: cached loading, uploads, errors, charts."""

import hashlib
import os

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
