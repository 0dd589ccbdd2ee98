"""Finding, describing, loading and training models (fewshot.model_catalog)."""

import numpy as np
import pytest

import fewshot
from fewshot import model_catalog


def test_find_models_describes_what_the_recipes_write(models_dir, tmp_path):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(models_dir, root)
    (root / "sin" / "models" / "broken.keras").write_bytes(b"not a zip")
    (root / "sin" / "backup").mkdir()
    (root / "sin" / "backup" / "old.keras").write_bytes(b"")
    learner = model_catalog.load_learner(root / "sin" / "models" / "maml.keras")
    fewshot.export_saved_model(learner, root / "exported" / "maml_sm", steps=2)
    entries = {e.path.split("runs/")[-1]: e for e in model_catalog.find_models(str(root))}
    assert sorted(entries) == ["exported/maml_sm", "sin/models/maml.keras", "sin/models/pretrained.keras"]
    maml = entries["sin/models/maml.keras"]
    assert (maml.kind, maml.domain, maml.model_class, maml.input_dim) == ("keras", "regression", "MAML", 1)
    assert maml.inner_lr == 0.01 and maml.inner_steps == 1
    assert entries["sin/models/pretrained.keras"].model_class == "Sequential"
    saved = entries["exported/maml_sm"]
    assert (saved.kind, saved.domain, saved.inner_steps, saved.input_dim) == ("saved_model", "regression", 2, 1)


def test_find_models_molecules_and_images(molecule_models_dir, image_models_dir):
    import os

    entries = model_catalog.find_models(os.pathsep.join([str(molecule_models_dir), str(image_models_dir)]))
    domains = {e.path.rsplit("/", 1)[-1]: (e.kind, e.domain) for e in entries}
    assert domains == {
        "protonet": ("molecule", "molecules"),
        "protonet.keras": ("keras", "images"),
        "maml2way.keras": ("keras", "images"),
    }
    image = next(e for e in entries if e.path.endswith("protonet.keras"))
    assert image.input_shape == (8, 8, 1)


def test_models_dirs_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(model_catalog.MODELS_DIR_ENV, raising=False)
    assert [str(p) for p in model_catalog.models_dirs()] == ["runs"]
    monkeypatch.setenv(model_catalog.MODELS_DIR_ENV, str(tmp_path))
    assert model_catalog.models_dirs() == [tmp_path]
    assert model_catalog.find_models() == []
    assert model_catalog.find_models([tmp_path / "missing"]) == []


def test_load_learner_wraps_a_plain_model_for_fine_tuning(models_dir):
    learner = model_catalog.load_learner(models_dir / "sin" / "models" / "pretrained.keras")
    assert isinstance(learner, fewshot.MAML)
    x = np.linspace(-1, 1, 8, dtype=np.float32)[:, None]
    adapted = model_catalog.adapt(learner, x, 2 * x, steps=3, inner_lr=0.05)
    assert len(adapted.adaptation_loss) == 4
    assert adapted.adaptation_loss[-1] < adapted.adaptation_loss[0]


def test_adapt_leaves_out_what_a_learner_does_not_take(image_models_dir):
    learner = model_catalog.load_learner(image_models_dir / "img" / "models" / "protonet.keras")
    assert not model_catalog.takes_inner_lr(learner)
    x = np.random.default_rng(0).uniform(size=(4, 8, 8, 1)).astype(np.float32)
    adapted = model_catalog.adapt(learner, x, np.array([0, 0, 1, 1], np.int32), steps=5, inner_lr=0.1)
    assert adapted(x).shape == (4, 2)


def test_load_learner_reports_a_corrupt_file(tmp_path):
    path = tmp_path / "bad.keras"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        model_catalog.load_learner(path)


def test_train_default_writes_a_model_and_reports_progress(tmp_path):
    seen = []
    path = model_catalog.train_default(tmp_path / "run", meta_steps=4, progress=lambda f, t: seen.append((f, t)))
    assert path == tmp_path / "run" / "models" / "maml.keras"
    assert seen[-1][0] == 1.0 and "meta-step 4 of 4" in seen[-1][1]
    entry = model_catalog.describe(path)
    assert (entry.domain, entry.model_class, entry.input_dim) == ("regression", "MAML", 1)


def test_train_default_runs_the_meta_steps_asked(tmp_path):
    """250 steps are 250 meta-updates (rounding to epochs of 100 ran 200), progress says so."""
    import keras

    seen = []
    path = model_catalog.train_default(tmp_path / "run", meta_steps=250, progress=lambda f, t: seen.append((f, t)))
    learner = keras.saving.load_model(path)
    assert int(learner.optimizer.iterations.numpy()) == 250
    assert [round(f, 2) for f, _ in seen] == [0.4, 0.8, 1.0]
    assert "meta-step 250 of 250" in seen[-1][1]


def test_train_default_validates_meta_steps(tmp_path):
    with pytest.raises(ValueError) as info:
        model_catalog.train_default(tmp_path, meta_steps=0)
    assert str(info.value) == (
        "Invalid value received for argument `meta_steps`. Expected a positive integer. "
        "Received: meta_steps=0"
    )


def test_cli_app_checks_its_port(capsys):
    from fewshot.cli import main

    assert main(["app", "--port", "70000"]) == 2
    assert "Expected 1-65535. Received: --port=70000" in capsys.readouterr().err


def test_personalisation_models_are_the_ratings_domain(ratings_setup):
    root, _ = ratings_setup
    (entry,) = model_catalog.find_models(str(root))
    assert (entry.kind, entry.domain, entry.model_class) == ("keras", model_catalog.RATINGS, "MAML")
    assert entry.inner_steps == 2 and "ratings" in entry.label


def test_exported_classifiers_are_images(image_models_dir, tmp_path):
    for name in ("protonet", "maml2way"):
        learner = model_catalog.load_learner(image_models_dir / "img" / "models" / f"{name}.keras")
        fewshot.export_saved_model(learner, tmp_path / f"{name}_sm")
    entries = {e.path.rsplit("/", 1)[-1]: e for e in model_catalog.find_models(str(tmp_path))}
    proto, maml = entries["protonet_sm"], entries["maml2way_sm"]
    assert (proto.kind, proto.domain, proto.input_shape, proto.num_classes) == ("saved_model", "images", (8, 8, 1), None)
    assert "embed" in proto.endpoints
    assert (maml.domain, maml.num_classes, maml.inner_steps) == ("images", 2, 2)


def test_tabular_classifiers_are_the_tabular_domain(tabular_models_dir):
    entries = {e.path.rsplit("/", 1)[-1]: e for e in model_catalog.find_models(str(tabular_models_dir))}
    assert {k: (e.kind, e.domain) for k, e in entries.items()} == {
        "protonet.keras": ("keras", model_catalog.TABULAR),
        "maml3way.keras": ("keras", model_catalog.TABULAR),
        "protonet_sm": ("saved_model", model_catalog.TABULAR),
        "maml3way_sm": ("saved_model", model_catalog.TABULAR),
    }
    assert all(e.input_dim == 4 for e in entries.values())
    maml, proto_sm, maml_sm = entries["maml3way.keras"], entries["protonet_sm"], entries["maml3way_sm"]
    assert (maml.model_class, maml.inner_lr, maml.inner_steps) == ("MAML", 0.1, 2)
    assert "4 feature(s), classifier" in maml.label
    assert (proto_sm.num_classes, maml_sm.num_classes, maml_sm.inner_steps) == (None, 3, 2)
    assert "embed" in proto_sm.endpoints and "embed" not in maml_sm.endpoints


def test_what_is_not_a_tabular_classifier_keeps_its_domain(tmp_path):
    """A regression MLP, a classifier of images, an MLP with a one-hot loss: not tabular."""
    import keras

    from fewshot.models.mlp import mlp

    regression = fewshot.MAML(mlp(input_shape=(4,), hidden=(8,), outputs=1), inner_lr=0.1)
    regression.compile(loss="mse")
    regression.save(tmp_path / "regression.keras")
    one_hot = fewshot.MAML(mlp(input_shape=(4,), hidden=(8,), outputs=3), inner_lr=0.1)
    one_hot.compile(loss="categorical_crossentropy")  # one-hot labels: not what the flow gives
    one_hot.save(tmp_path / "one_hot.keras")
    plain = mlp(input_shape=(4,), hidden=(8,), outputs=3, name="plain")
    plain.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    plain.save(tmp_path / "plain_classifier.keras")  # fine-tuned with gradient steps: tabular too
    domains = {e.path.rsplit("/", 1)[-1]: e.domain for e in model_catalog.find_models(str(tmp_path))}
    assert domains == {
        "regression.keras": model_catalog.REGRESSION,
        "one_hot.keras": model_catalog.OTHER,
        "plain_classifier.keras": model_catalog.TABULAR,
    }


def test_saved_model_zip_writes_extra_files_inside_the_folder(tabular_models_dir):
    import io
    import json
    import zipfile

    learner = model_catalog.load_learner(tabular_models_dir / "tab" / "models" / "protonet.keras")
    x = np.eye(4, dtype=np.float32)
    adapted = learner.adapt(x, np.array([0, 0, 1, 1], np.int32))
    data = model_catalog.saved_model_zip(adapted, extra_files={"assets.extra/classes.json": '{"classes": ["a", "b"]}'})
    archive = zipfile.ZipFile(io.BytesIO(data))
    (name,) = [n for n in archive.namelist() if n.endswith("classes.json")]
    assert name.split("/")[1:] == ["assets.extra", "classes.json"]
    assert json.loads(archive.read(name)) == {"classes": ["a", "b"]}
    with pytest.raises(ValueError, match="paths must stay inside the SavedModel folder. Received: '../x'"):
        model_catalog.saved_model_zip(adapted, extra_files={"../x": "no"})


def _ensemble_folder(ratings_setup, root, steps=(3, 1)):
    """``root/rec/models/meta_sgd``: a two-member seed ensemble as the personalization recipe
    writes it (the fixture's model twice, adapting with different steps)."""
    import json
    import shutil

    source = ratings_setup[0] / "rec" / "models" / "maml.keras"
    folder = root / "rec" / "models" / "meta_sgd"
    folder.mkdir(parents=True)
    for i, n in enumerate(steps):
        shutil.copy(source, folder / f"member_{i}.keras")
        (folder / f"member_{i}.json").write_text(json.dumps({"steps": n, "inner_lr": None}))
    members = [f"member_{i}.keras" for i in range(len(steps))]
    (folder / "ensemble.json").write_text(json.dumps({"combine": "mean", "members": members}))
    return folder


def test_a_seed_ensemble_is_listed_once_as_its_folder(ratings_setup, tmp_path):
    folder = _ensemble_folder(ratings_setup, tmp_path)
    (entry,) = model_catalog.find_models([tmp_path])
    assert entry.path == str(folder) and entry.kind == "ensemble"
    assert entry.domain == "ratings" and entry.model_class == "MAML"
    assert "2-member MAML ensemble" in entry.label
    (folder / "ensemble.json").write_text("{not json")
    assert model_catalog.find_models([tmp_path]) == []  # unreadable: left out, members not listed one by one
