"""fewshot app: upload a few examples, watch a meta-learned model adapt, predict.

Start it with ``fewshot app`` (or ``streamlit run apps/fewshot_app.py``).
The folder scanned for trained models is ``$FEWSHOT_MODELS_DIR`` (default
``runs``, where ``make demo`` writes). This file is the page (the sidebar
and the choice of flow); each domain's flow is a module of
``apps/fewshot_flows/``. It is UI only: parsing and validating uploads is
`fewshot.uploads`, finding, loading and training models is
`fewshot.model_catalog`, adapting is the learner's own `adapt`, molecules go
through `fewshot.predict_molecules`, user ratings through
`fewshot.recsys.recommend`, intervals through `fewshot.intervals`; tabular
classifiers adapt through their `adapt` or an export's ``adapt_and_predict``.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # apps/fewshot_flows

import streamlit as st  # noqa: E402

from fewshot import model_catalog, uploads  # noqa: E402
from fewshot_flows import common, images, molecules, ratings, regression, tabular  # noqa: E402

DOMAINS = {
    "Regression (tabular CSV)": model_catalog.REGRESSION,
    "Tabular classification (CSV)": model_catalog.TABULAR,
    "Molecules (SMILES)": model_catalog.MOLECULES,
    "Images (classes by file name)": model_catalog.IMAGES,
    "User ratings (recommendations)": model_catalog.RATINGS,
}
DEFAULT_RUN = "app-default"
DEFAULT_META_STEPS = int(os.environ.get("FEWSHOT_APP_DEFAULT_STEPS", "3000"))


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
    if domain == model_catalog.TABULAR:
        st.info(
            f"There is no trained tabular classifier in `{models_dir}` yet (`make demo` and the "
            "recipes train regression, molecule, image and ratings models). Train a small one "
            "with the few lines of Python below, or export one with `fewshot export`."
        )
        tabular.no_model_help(models_dir)
        return
    st.info(
        f"There is no trained {domain} model in `{models_dir}` yet.\n\n"
        "Get one with `make demo` (meta-trains the sinusoid models into "
        "`runs/sinusoid/models/`), or `fewshot run recipes/sinusoid --out runs/sinusoid`"
        + (
            "; molecule models come from `fewshot run recipes/drug_property --out runs/drug_property`."
            if domain == model_catalog.MOLECULES
            else "; image models from `fewshot run recipes/images --data-dir FOLDER --out runs/images` "
            "(your own images, one subfolder per class), `fewshot run recipes/omniglot --out runs/omniglot` "
            "(or an exported image classifier: `fewshot export`)."
            if domain == model_catalog.IMAGES
            else "; user-ratings models from `fewshot run recipes/personalization --out "
            "runs/personalization` (it needs the MovieLens-100K folder: set FEWSHOT_MOVIELENS_DIR)."
            if domain == model_catalog.RATINGS
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
            common.show_error(f"Training failed: {error}")
            return
        bar.progress(1.0, text="Done")
        st.success(f"Saved {path}. Pick it in the sidebar.")
        st.rerun()


def main():
    st.set_page_config(page_title="fewshot", layout="wide")
    st.title("fewshot: learn a new task from a few examples")
    try:
        domain, entry, models_dir = sidebar()
        if entry is None:
            no_model(domain, models_dir)
        elif domain == model_catalog.MOLECULES:
            molecules.flow(entry)
        elif domain == model_catalog.IMAGES:
            images.flow(entry)
        elif domain == model_catalog.RATINGS:
            ratings.flow(entry)
        elif domain == model_catalog.TABULAR:
            tabular.flow(entry)
        else:
            regression.flow(entry)
    except uploads.UploadError as error:
        common.show_error(error)
    except Exception as error:  # the last resort: one line in the page, not a traceback
        if os.environ.get("FEWSHOT_DEBUG"):
            raise
        first = (str(error).strip().splitlines() or [""])[0][:300]
        common.show_error(
            f"Something went wrong: {type(error).__name__}: {first}. "
            "Set FEWSHOT_DEBUG=1 before `fewshot app` to see the traceback."
        )


main()
