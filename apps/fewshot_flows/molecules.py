"""Molecules from SMILES: rank query molecules by the adapted model's score."""

import numpy as np
import streamlit as st

from fewshot import model_catalog, uploads
from fewshot_flows import common

EXAMPLE = (
    "smiles,label\nCCO,0\nCC(=O)O,0\nc1ccccc1O,1\nc1ccc2ccccc2c1,1\n",
    "smiles\nCCN\nc1ccccc1N\nnot-a-smiles\n",
)


def flow(entry):
    from fewshot.predict_molecules import predict_molecules

    with st.spinner("Loading the model..."):
        try:  # loaded once per folder (cached), before Adapt is pressed
            common.load_molecule_model(entry.path, common.mtime(entry.path))
        except (ValueError, OSError, ImportError) as error:
            common.show_error(error)
            return

    st.caption(
        f"Model: `{entry.path}` ({entry.model_class}). Support CSV: a `smiles` column and a "
        "0/1 `label` column (at least one of each); query CSV: a `smiles` column."
    )
    st.header("2. Labelled molecules (support set)")
    read = common.table_or_prompt("support", EXAMPLE[0], "Upload or paste labelled molecules, for example:")
    if read is None:
        return
    support, _ = read
    st.header("3. Molecules to rank (queries)")
    try:  # no query table yet is not the end of the page: the settings come first
        query, _ = common.read_table("query", EXAMPLE[1])
    except uploads.UploadError as error:
        common.show_error(error)
        return
    steps = None
    if entry.inner_steps is not None:
        steps = int(st.number_input("Gradient steps", 0, 500, int(entry.inner_steps or 1), key="mol_steps"))
    else:
        st.caption(f"{entry.model_class} adapts without gradient steps (class prototypes).")
    if query is None:
        st.info("Add the molecules to rank, then press Adapt.")
        return
    key = common.digest(entry.path, support.to_csv(), query.to_csv(), steps)

    def adapt(bar):
        learner, featurizer, _ = common.load_molecule_model(entry.path, common.mtime(entry.path))
        bar.progress(0.3, text="Featurising, adapting and scoring...")
        predictions, report = predict_molecules((learner, featurizer), support, query, steps=steps)
        return {"predictions": predictions, "report": report}

    result = common.adaptation(
        "molecule_result", key, "The model, the molecules or the settings", (0.0, "Loading the model..."), adapt,
        errors=(ValueError, RuntimeError, OSError, ImportError), failure="{}",
    )
    if result is None:
        return
    report, predictions = result["report"], result["predictions"]
    bad = int((~report["valid"]).sum())
    if bad:
        st.warning(f"{bad} support row(s) were not used (see `error`).")
    with st.expander(f"Support set: {int(report['valid'].sum())} usable of {len(report)} rows", expanded=bad > 0):
        st.dataframe(report, width="stretch")
    st.subheader("Predictions")
    st.dataframe(predictions.sort_values("rank", na_position="last"), width="stretch", key="predictions_table")
    common.timing_caption(result, "`score` is the probability of being active.")
    q_bad = int((~predictions["valid"]).sum())
    if q_bad:
        st.warning(f"{q_bad} query row(s) have invalid SMILES (flagged, not dropped).")
    _draw_molecules(predictions)
    _embedding_projection(entry, support, report, predictions)
    common.download_csv(predictions)
    if common.offer_saved_model(result["key"], lambda: _molecule_model_zip(entry, report, steps),
                                "Adapting again and exporting..."):
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
    learner, featurizer, _ = common.load_molecule_model(entry.path, common.mtime(entry.path))
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
    learner, featurizer, _ = common.load_molecule_model(entry.path, common.mtime(entry.path))
    if not callable(getattr(learner, "embed", None)):
        return
    s_rows = report[report["valid"]]
    q_rows = predictions[predictions["valid"]]
    if len(s_rows) + len(q_rows) < 3:
        return
    s_col, q_col = _smiles_column(s_rows), _smiles_column(q_rows)
    smiles = list(s_rows[s_col]) + list(q_rows[q_col])
    features, _, _ = featurizer(smiles)
    xy = common.principal_components(learner.embed(features))
    n = len(s_rows)
    try:
        labels = _support_labels(report)[1].astype(bool)
    except ValueError:
        return
    plt = common.figure()
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
