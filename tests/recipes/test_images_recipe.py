"""The images recipe on small folders the tests write, and on TFDS mock data."""

import csv
import json
import pathlib

import keras
import numpy as np
import pytest
from PIL import Image

from fewshot import cli
from fewshot.algorithms import PrototypicalNetwork
from fewshot.recipes.images import pixel_prototype_accuracy
from fewshot.recipes.episodic import evaluate_accuracy

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "images" / "recipe.toml"


def write_glyphs(root, classes=24, per_class=7, size=16, seed=0):
    """`classes` folders of noisy copies of one random binary pattern each."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        pattern = np.kron(rng.random((size // 2, size // 2)) > 0.5, np.ones((2, 2)))
        folder = root / f"glyph_{c:02d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            noisy = np.clip(pattern + 0.35 * rng.standard_normal(pattern.shape), 0, 1)
            Image.fromarray((255 * noisy).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def tiny_recipe(tmp_path, **changes):
    """recipe.toml with short epochs (and `changes` as `key = value` replacements)."""
    text = RECIPE.read_text()
    for old, new in {"epochs = 60": "epochs = 2", "batches_per_epoch = 50": "batches_per_epoch = 8",
                     "validation_episodes = 100": "validation_episodes = 20", **changes}.items():
        assert old in text, old
        text = text.replace(old, new)
    folder = tmp_path / "recipe"
    folder.mkdir(exist_ok=True)
    (folder / "recipe.toml").write_text(text)
    return folder


def _run(recipe, out, *extra):
    return cli.main(["run", str(recipe), "--out", str(out), "--quiet", "--image-size", "16", "16", *extra])


def test_a_folder_trains_tests_on_unseen_classes_and_resumes(tmp_path, capsys):
    data = write_glyphs(tmp_path / "glyphs")
    recipe, out = tiny_recipe(tmp_path), tmp_path / "out"
    assert _run(recipe, out, "--data-dir", str(data), "--test-episodes", "60") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["recipe"] == "images" and results["dataset"] == "glyphs"
    assert results["config"]["classes"] == {"meta-train": 17, "validation": 2, "test": 5}
    assert results["config"]["train_ways"] == 17 and results["config"]["val_ways"] == 2
    metrics = results["metrics"]
    assert set(metrics) == {"protonet", "pixels"}
    for method in metrics:
        assert set(metrics[method]) == {"acc_5w1s", "acc_5w1s_ci95"}
    # Noisy copies of one pattern per class: both classify unseen classes far above chance (20%).
    assert metrics["pixels"]["acc_5w1s"] > 50 and metrics["protonet"]["acc_5w1s"] > 50
    gain = results["config"]["paired_gain_over_pixels"][0]
    assert gain == pytest.approx(metrics["protonet"]["acc_5w1s"] - metrics["pixels"]["acc_5w1s"], abs=1e-3)
    model = keras.models.load_model(out / "models" / "protonet.keras")
    assert isinstance(model, PrototypicalNetwork) and model.encoder.input_shape == (None, 16, 16, 1)
    assert (out / "learning_curve.png").stat().st_size > 0
    assert "protonet minus pixels" in (out / "results.md").read_text()
    with (out / "curve.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]

    # The same command again: training is done, so it tests the same model on the same episodes.
    assert _run(recipe, out, "--data-dir", str(data), "--test-episodes", "60") == 0
    assert json.loads((out / "results.json").read_text())["metrics"] == metrics
    with (out / "curve.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2
    # Resuming with settings that change the model is refused before any training.
    assert _run(recipe, out, "--data-dir", str(data), "--shots", "2") == 2
    assert "holds a run made with other settings (shots: 1 -> 2)" in capsys.readouterr().err


def test_a_maml_family_method_trains_its_n_way_head(tmp_path):
    data = write_glyphs(tmp_path / "glyphs", classes=12)
    recipe = tiny_recipe(tmp_path, **{"epochs = 2": "epochs = 1", "meta_batch_size = 8": "meta_batch_size = 2",
                                      "eval_steps = 3": "eval_steps = 1", "batches_per_epoch = 8": "batches_per_epoch = 3"})
    out = tmp_path / "out"
    assert _run(recipe, out, "--data-dir", str(data), "--algorithm", "fomaml", "--ways", "2",
                "--test-episodes", "20") == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == {"fomaml", "pixels"}
    model = keras.models.load_model(out / "models" / "fomaml.keras")
    assert model.backbone.output_shape == (None, 2) and model.first_order


def test_a_tfds_dataset_in_rgb_becomes_grayscale_episodes(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    recipe = tiny_recipe(tmp_path, **{"train_queries = 5": "train_queries = 1",
                                      "eval_queries = 5": "eval_queries = 1", "train_ways = 20": "train_ways = 10"})
    out = tmp_path / "out"
    with tfds.testing.mock_data(num_examples=800):  # random cifar100-shaped data, offline
        assert _run(recipe, out, "--tfds", "cifar100", "--max-per-class", "4", "--test-episodes", "20") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "tfds:cifar100[train]"
    assert results["config"]["max_per_class"] == 4
    model = keras.models.load_model(out / "models" / "protonet.keras")
    assert model.encoder.input_shape == (None, 16, 16, 1)


@pytest.mark.parametrize(
    "setup, extra, message",
    [
        (None, [], "needs --data-dir (a folder with one subfolder per class), $FEWSHOT_IMAGES_DIR or --tfds"),
        ({"classes": 20}, [], "The test classes number 4 (20 classes split 0.7/0.1/0.2), fewer than the 5"),
        ({"classes": 8}, [], "The validation classes number 1 (8 classes split 0.7/0.1/0.2), fewer than "
                             "the 2 its episodes need: add classes"),
        ({"per_class": 5}, [], "have fewer than 6 images (--shots 1 + 5 queries)"),
        ({}, ["--shots", "0"], "Invalid value received for argument `--shots`. Expected a positive integer"),
        ({}, ["--image-size", "0", "16"], "`--image-size`. Expected (height, width), two positive integers"),
        ({}, ["--image-size", "8", "16"], "Conv4 halves an image four times, so it needs at least 16 x 16"),
    ],
)
def test_bad_data_or_options_are_one_clear_line(tmp_path, capsys, monkeypatch, setup, extra, message):
    monkeypatch.delenv("FEWSHOT_IMAGES_DIR", raising=False)
    args = []
    if setup is not None:
        args = ["--data-dir", str(write_glyphs(tmp_path / "glyphs", **setup))]
    assert _run(tiny_recipe(tmp_path), tmp_path / "out", *args, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_pixel_prototypes_equal_a_protonet_on_raw_pixels_over_the_same_episodes():
    # A ProtoNet whose encoder only flattens is the nearest class mean of the pixels; tested by
    # the learners' own evaluation with the same seed, it must give the same accuracy per episode.
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 6)
    centers = rng.random((10, 3, 3, 1))
    x = (centers[y] + 0.3 * rng.standard_normal((60, 3, 3, 1))).astype(np.float32)
    encoder = keras.Sequential([keras.Input((3, 3, 1)), keras.layers.Flatten()])
    learner = PrototypicalNetwork(encoder)
    learner.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    s = {"eval_queries": 2, "eval_batch": 8}
    expected = evaluate_accuracy(learner, x, y, 4, 2, 30, s, seed=5)
    got = pixel_prototype_accuracy(x, y, ways=4, shots=2, queries=2, episodes=30, batch=8, seed=5)
    assert got.shape == (30,) and 0.3 < got.mean() < 0.95  # noisy classes: neither chance nor perfect
    np.testing.assert_array_equal(got, expected)


def _saved_protonet(path, size=16):
    from fewshot.models.conv4 import conv4

    learner = PrototypicalNetwork(conv4(input_shape=(size, size, 1)))
    learner.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    learner.save(path)
    return path


def test_evaluate_scores_a_saved_learner_on_every_class_of_a_folder(tmp_path, capsys):
    data = write_glyphs(tmp_path / "glyphs", classes=6, per_class=4)
    model = _saved_protonet(tmp_path / "protonet.keras")
    report = tmp_path / "scores.json"
    assert cli.main(["evaluate", str(model), "--data-dir", str(data), "--ways", "3", "--shots", "1",
                     "--queries", "3", "--episodes", "40", "--output", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "| PrototypicalNetwork |" in printed and "minus pixels on the same 40 episodes of 6 classes" in printed
    scores = json.loads(report.read_text())
    assert scores["classes"] == 6 and scores["ways"] == 3 and scores["episodes"] == 40
    assert scores["gain"][0] == pytest.approx(scores["learner"][0] - scores["pixels"][0], abs=1e-3)
    assert scores["pixels"][0] > 60  # noisy copies of one pattern per class (chance: 33%)


def test_evaluate_inverts_the_images_when_asked(tmp_path):
    from fewshot.recipes.images import evaluate_model

    # Dark patterns (values 0 or 0.4): an encoder that zeroes everything under 0.5 sees nothing
    # in them, and everything once they are inverted (0.6 or 1).
    rng = np.random.default_rng(1)
    patterns = 0.4 * (rng.random((5, 16, 16, 1)) > 0.5)
    encoder = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.ReLU(threshold=0.5), keras.layers.Flatten()])
    learner = PrototypicalNetwork(encoder)
    learner.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    root = tmp_path / "dark"
    for c, pattern in enumerate(patterns):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.round(255 * pattern[..., 0]).astype(np.uint8)).save(root / f"c{c}" / f"{i}.png")
    plain = evaluate_model(learner, data_dir=root, ways=5, shots=1, queries=2, episodes=10)
    inverted = evaluate_model(learner, data_dir=root, ways=5, shots=1, queries=2, episodes=10, invert=True)
    assert plain["pixels"][0] == inverted["pixels"][0] == 100.0
    assert plain["learner"][0] <= 25.0 and inverted["learner"][0] == 100.0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--ways", "9"], "has 6 classes. Received: ways=9"),
        (["--shots", "4"], "6 class(es) of"),  # 4 + 5 queries > 7 images
        (["--ways", "1"], "Invalid value received for argument `ways`. Expected an integer >= 2"),
    ],
)
def test_evaluate_errors_are_one_clear_line(tmp_path, capsys, extra, message):
    data = write_glyphs(tmp_path / "glyphs", classes=6, per_class=7)
    model = _saved_protonet(tmp_path / "protonet.keras")
    assert cli.main(["evaluate", str(model), "--data-dir", str(data), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_evaluate_refuses_a_model_that_is_not_an_image_learner(tmp_path, capsys):
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    plain.save(tmp_path / "plain.keras")
    assert cli.main(["evaluate", str(tmp_path / "plain.keras"), "--data-dir", str(tmp_path)]) == 2
    assert "expected a fewshot learner" in capsys.readouterr().err
