import keras
import numpy as np
import pandas as pd
import pytest

import fewshot
from fewshot.cli import main
from fewshot.datasets import Featurizer
from fewshot.predict_molecules import load_molecule_model, predict_molecules, save_molecule_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    keras.utils.set_random_seed(0)
    featurizer = Featurizer(size=64)
    encoder = fewshot.models.fingerprint_encoder(64, hidden=(16,), embedding=8)
    learner = fewshot.PrototypicalNetwork(encoder)
    learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return save_molecule_model(learner, featurizer, tmp_path_factory.mktemp("m") / "protonet", "protonet")


SUPPORT = pd.DataFrame({
    "smiles": ["c1ccccc1", "Cc1ccccc1", "CCO", "CO", "not a smiles"],
    "active": [1, 1, 0, 0, 1],
})
QUERY = pd.DataFrame({
    "name": ["naphthalene", "bad", "propanol", "empty", "phenol"],
    "SMILES": ["c1ccc2ccccc2c1", "C1CC", "CCCO", "", "Oc1ccccc1"],
})


def test_every_query_row_is_kept_and_invalid_ones_flagged(model_dir):
    predictions, support = predict_molecules(model_dir, SUPPORT, QUERY)
    assert list(predictions["name"]) == list(QUERY["name"])  # order and columns kept
    assert predictions["valid"].tolist() == [True, False, True, False, True]
    assert predictions.loc[1, "error"] == "RDKit could not parse the SMILES"
    assert predictions.loc[3, "error"] == "empty SMILES"
    scores = predictions["score"].to_numpy()
    assert np.isnan(scores[[1, 3]]).all()
    assert ((scores[[0, 2, 4]] >= 0) & (scores[[0, 2, 4]] <= 1)).all()
    ranks = predictions["rank"]
    assert sorted(ranks.dropna().tolist()) == [1, 2, 3]
    assert scores[int(np.flatnonzero(ranks == 1)[0])] == np.nanmax(scores)
    assert support["valid"].tolist() == [True, True, True, True, False]


def test_a_query_with_no_valid_molecule_keeps_its_rows_unscored(model_dir):
    query = QUERY.iloc[[1, 3]]
    predictions, _ = predict_molecules(model_dir, SUPPORT, query)
    assert predictions["valid"].tolist() == [False, False]
    assert predictions["score"].isna().all() and predictions["rank"].isna().all()


def test_support_needs_both_classes(model_dir):
    with pytest.raises(ValueError, match="at least one valid active"):
        predict_molecules(model_dir, SUPPORT[SUPPORT.active == 1], QUERY)


def test_columns_the_output_would_overwrite_are_an_error(model_dir):
    with pytest.raises(ValueError, match=r"argument `query`.*would overwrite its own \['score'\]"):
        predict_molecules(model_dir, SUPPORT, QUERY.assign(score=[1, 2, 3, 4, 5]))
    with pytest.raises(ValueError, match=r"argument `support`.*would overwrite its own \['valid'\]"):
        predict_molecules(model_dir, SUPPORT.assign(valid=1), QUERY)


def test_steps_for_a_prototypical_network_is_an_error_not_ignored(model_dir):
    with pytest.raises(ValueError, match=r"argument `steps`: PrototypicalNetwork adapts without "
                                         r"gradient steps.*Received: steps=5"):
        predict_molecules(model_dir, SUPPORT, QUERY, steps=5)


def test_bad_labels_are_flagged_in_the_support(model_dir):
    support = SUPPORT.assign(active=["1", "1", "0", "0", "maybe"])
    _, report = predict_molecules(model_dir, support, QUERY)
    assert report.loc[4, "error"] == "label 'maybe' is not 0 or 1"


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No molecule model"):
        load_molecule_model(tmp_path)


def test_command_writes_predictions(model_dir, tmp_path, capsys):
    SUPPORT.to_csv(tmp_path / "support.csv", index=False)
    QUERY.to_csv(tmp_path / "query.csv", index=False)
    out = tmp_path / "predictions.csv"
    code = main(["predict-molecules", "--model", str(model_dir), "--support", str(tmp_path / "support.csv"),
                 "--query", str(tmp_path / "query.csv"), "--out", str(out)])
    assert code == 0
    written = pd.read_csv(out)
    assert len(written) == len(QUERY) and {"score", "rank", "valid", "error"} <= set(written.columns)
    assert "2 invalid, flagged" in capsys.readouterr().out
    code = main(["predict-molecules", "--model", str(tmp_path), "--support", str(tmp_path / "support.csv"),
                 "--query", str(tmp_path / "query.csv"), "--out", str(out)])
    assert code == 2
    assert "No molecule model" in capsys.readouterr().err


def test_a_saved_fine_tuner_loads_in_a_fresh_process(tmp_path):
    # The recipe's pretrained_finetune model: loading it must not depend on
    # the recipe module having registered FineTuner first.
    import subprocess
    import sys

    from fewshot.algorithms import FineTuner

    encoder = fewshot.models.fingerprint_encoder(64, hidden=(16,), embedding=8)
    tuner = FineTuner(encoder, finetune_steps=2, head_init="prior")
    tuner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    path = save_molecule_model(tuner, Featurizer(size=64), tmp_path / "finetune", "pretrained_finetune")
    code = (
        "from fewshot.predict_molecules import load_molecule_model; "
        f"learner = load_molecule_model({str(path)!r})[0]; print(type(learner).__name__, learner.finetune_steps)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["FineTuner", "2"]
