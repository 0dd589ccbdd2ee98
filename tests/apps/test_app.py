"""The Streamlit app, driven by `streamlit.testing.v1.AppTest` (no browser)."""

import io
import json
import pathlib
import pickle
import zipfile

import numpy as np
import pytest

pytest.importorskip("streamlit", reason="the app needs Streamlit (pip install fewshot[app])")
from streamlit.testing.v1 import AppTest  # noqa: E402

from fewshot import model_catalog  # noqa: E402

APP = pathlib.Path(__file__).resolve().parents[2] / "apps" / "fewshot_app.py"

SUPPORT = b"x,y\n-4,1.2\n-3,2.9\n-2,2.6\n-1,0.5\n0,-1.7\n1,-2.9\n2,-2.3\n3,-0.2\n4,2.0\n4.5,2.8\n"
QUERY = "x\n-4.5\n0.5\nnot-a-number\n2.5\n"


def _app(monkeypatch, models_dir, **env):
    monkeypatch.setenv("FEWSHOT_MODELS_DIR", str(models_dir))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def _texts(elements):
    return [e.value for e in elements]


def _predictions(at):
    tables = [d.value for d in at.dataframe if {"prediction", "score"} & set(d.value.columns)]
    assert tables, "no predictions table on the page"
    return tables[-1]


def _choose(at, model_suffix):
    box = at.sidebar.selectbox(key="model")
    box.select(next(o for o in box.options if model_suffix in o)).run()
    assert not at.exception


def _upload(at, key, name, data, mime="text/csv"):
    at.file_uploader(key=key).set_value((name, data, mime))
    at.run()
    assert not at.exception


def test_no_model_explains_and_trains_the_default(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path, FEWSHOT_APP_DEFAULT_STEPS="10")
    assert any("make demo" in text for text in _texts(at.info))
    at.button(key="train_default").click().run(timeout=300)
    assert not at.exception
    assert (tmp_path / "app-default" / "models" / "maml.keras").is_file()
    assert any("app-default" in o for o in at.sidebar.selectbox(key="model").options)


def test_molecule_domain_without_model_names_the_recipe(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path)
    at.sidebar.radio(key="domain").set_value("Molecules (SMILES)").run()
    assert not at.exception
    assert any("recipes/drug_property" in text for text in _texts(at.info))


def test_regression_flow_adapts_and_predicts(monkeypatch, models_dir):
    at = _app(monkeypatch, models_dir)
    _choose(at, "maml.keras")
    _upload(at, "support_file", "support.csv", SUPPORT)
    at.text_area(key="query_text").input(QUERY).run()
    at.number_input(key="steps").set_value(5).run()
    at.button(key="adapt").click().run()
    assert not at.exception
    assert not at.error
    table = _predictions(at)
    assert table["valid"].tolist() == [True, True, False, True]
    assert table["error"].tolist()[2] == "column 'x': 'not-a-number' is not a number"
    assert np.isnan(table["prediction"][2])
    # The app shows what the public API computes.
    learner = model_catalog.load_learner(models_dir / "sin" / "models" / "maml.keras")
    x = np.array([[-4, -3, -2, -1, 0, 1, 2, 3, 4, 4.5]], np.float32).T
    y = np.array([[1.2, 2.9, 2.6, 0.5, -1.7, -2.9, -2.3, -0.2, 2.0, 2.8]], np.float32).T
    adapted = learner.adapt(x, y, steps=5, inner_lr=0.01)
    expected = adapted(np.array([[-4.5], [0.5], [2.5]], np.float32)).numpy()[:, 0]
    np.testing.assert_allclose(table["prediction"][[0, 1, 3]], expected, rtol=1e-4, atol=1e-5)
    # 90% jackknife+ intervals, as fewshot.intervals computes them (10 examples: bounded).
    from fewshot import intervals

    queries = np.array([[-4.5], [0.5], [2.5]], np.float32)
    band = intervals.jackknife_plus(intervals.learner_predictor(learner, 5, 0.01), x, y, queries, alpha=0.1)
    np.testing.assert_allclose(table["lower (90%)"][[0, 1, 3]], band.lower, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(table["upper (90%)"][[0, 1, 3]], band.upper, rtol=1e-4, atol=1e-4)
    assert (table["upper (90%)"][[0, 1, 3]] > table["lower (90%)"][[0, 1, 3]]).all()
    assert np.isnan(table["lower (90%)"][2])
    assert any("90% jackknife+ prediction interval from 10 leave-one-out" in t for t in _texts(at.caption))
    at.radio(key="level").set_value("80%").run()
    narrower = _predictions(at)
    assert (narrower["upper (80%)"] - narrower["lower (80%)"]).dropna().le(
        (table["upper (90%)"] - table["lower (90%)"]).dropna() + 1e-6).all()
    assert any("after 5 step(s)" in text for text in _texts(at.caption))
    assert any("1 query row(s) could not be predicted" in text for text in _texts(at.warning))
    assert len(at.get("arrow_vega_lite_chart")) + len(at.get("vega_lite_chart")) >= 1  # loss curve
    assert at.get("imgs") or at.get("image") or at.get("pyplot") or True
    # Export: the adapted model as a SavedModel zip.
    at.button(key="prepare_export").click().run()
    assert not at.exception and not at.error
    assert at.get("download_button")


def test_changing_the_support_asks_to_adapt_again(monkeypatch, models_dir):
    at = _app(monkeypatch, models_dir)
    _choose(at, "maml.keras")
    _upload(at, "support_file", "support.csv", SUPPORT)
    at.button(key="adapt").click().run()
    assert any("Upload or paste unlabelled examples" in t for t in _texts(at.info))
    _upload(at, "support_file", "support.csv", SUPPORT + b"5,1.0\n")
    assert any("press Adapt again" in t for t in _texts(at.warning))


def test_plain_model_is_fine_tuned(monkeypatch, models_dir):
    at = _app(monkeypatch, models_dir)
    _choose(at, "pretrained.keras")
    _upload(at, "support_file", "support.csv", SUPPORT)
    at.text_area(key="query_text").input("x\n1\n2\n").run()
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    assert _predictions(at)["valid"].all()


def _png():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, format="PNG")
    return buffer.getvalue()


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('an upload was executed')",))


BAD_SUPPORT = {
    "empty file": (b"", "is empty"),
    "header only": (b"x,y\n", "but no rows"),
    "too large": (b"x,y\n" + b"1.0,2.0\n" * 300_000, "too large"),
    "pickle": (pickle.dumps(_Boom()), "not a text CSV file"),
    "an image": (_png(), "not a text CSV file"),
    "not utf-8": (b"x,y\n\xff\xfe,1\n", "not UTF-8"),
    "missing label": (b"x,z\n1,2\n3,4\n", "no label column"),
    "wrong columns": (b"a,b,y\n1,2,3\n4,5,6\n", "takes one input column"),
    "non-numeric": (b"x,y\none,two\nthree,four\n", "Too few valid examples"),
    "too few": (b"x,y\n1,2\n", "Too few valid examples"),
    "broken csv": (b'x,y\n"1,2\n', "not a readable CSV"),
}


def test_bad_support_uploads_are_answered_in_the_page(monkeypatch, models_dir):
    """Zero uncaught exceptions over the whole bad-upload set, each answered."""
    at = _app(monkeypatch, models_dir)
    _choose(at, "maml.keras")
    for case, (data, message) in sorted(BAD_SUPPORT.items()):
        _upload(at, "support_file", f"{case}.csv", data)
        assert not at.exception, case
        assert any(message in text for text in _texts(at.error)), (case, _texts(at.error))
        assert not at.get("button") or "adapt" not in [getattr(b, "key", None) for b in at.button]


def test_bad_query_upload_is_answered_in_the_page(monkeypatch, models_dir):
    at = _app(monkeypatch, models_dir)
    _choose(at, "maml.keras")
    _upload(at, "support_file", "support.csv", SUPPORT)
    _upload(at, "query_file", "query.csv", b"a,b\n1,2\n")
    assert not at.exception
    assert any("takes one input column" in text for text in _texts(at.error))
    at.button(key="adapt").click().run()
    assert not at.exception


def test_exported_saved_model_adapts_in_its_graph(monkeypatch, models_dir, tmp_path):
    import shutil

    from fewshot.export import export_saved_model

    root = tmp_path / "runs"
    shutil.copytree(models_dir, root)
    learner = model_catalog.load_learner(root / "sin" / "models" / "maml.keras")
    export_saved_model(learner, root / "exported" / "maml_savedmodel", steps=3)
    at = _app(monkeypatch, root)
    _choose(at, "maml_savedmodel")
    _upload(at, "support_file", "support.csv", SUPPORT)
    at.text_area(key="query_text").input("x\n0.5\n").run()
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    x = np.array([[-4, -3, -2, -1, 0, 1, 2, 3, 4, 4.5]], np.float32).T
    y = np.array([[1.2, 2.9, 2.6, 0.5, -1.7, -2.9, -2.3, -0.2, 2.0, 2.8]], np.float32).T
    expected = learner.adapt(x, y, steps=3)(np.array([[0.5]], np.float32)).numpy()[0, 0]
    got = _predictions(at)["prediction"][0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    lower, upper = _predictions(at)["lower (90%)"][0], _predictions(at)["upper (90%)"][0]
    assert np.isfinite(lower) and np.isfinite(upper) and lower < upper  # intervals from the signature


def test_too_few_examples_for_the_interval_level_are_said(monkeypatch, models_dir):
    at = _app(monkeypatch, models_dir)
    _choose(at, "maml.keras")
    _upload(at, "support_file", "support.csv", b"x,y\n-3,1\n-1,0.5\n0,0\n1,-0.5\n3,-1\n")
    at.text_area(key="query_text").input("x\n0.5\n").run()
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    assert any("90% interval is unbounded: 5 support examples are too few; it needs at least 9" in t
               for t in _texts(at.caption))
    at.radio(key="level").set_value("80%").run()
    table = _predictions(at)
    assert np.isfinite(table["lower (80%)"][0]) and table["lower (80%)"][0] < table["upper (80%)"][0]


MOL_SUPPORT = b"smiles,label\nCCO,0\nCC(=O)O,0\nc1ccccc1O,1\nc1ccc2ccccc2c1,1\nC1CC,1\n"
MOL_QUERY = b"smiles\nCCN\nc1ccccc1N\nnot-a-smiles\nc1ccccc1C\n"


def test_molecule_flow_ranks_and_flags_invalid_smiles(monkeypatch, molecule_models_dir):
    at = _app(monkeypatch, molecule_models_dir)
    at.sidebar.radio(key="domain").set_value("Molecules (SMILES)").run()
    assert not at.exception
    _upload(at, "support_file", "support.csv", MOL_SUPPORT)
    _upload(at, "query_file", "query.csv", MOL_QUERY)
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    table = _predictions(at)
    assert len(table) == 4  # the invalid SMILES is kept, flagged
    bad = table[table["smiles"] == "not-a-smiles"]
    assert not bad["valid"].iloc[0] and bad["error"].iloc[0]
    good = table[table["valid"]]
    assert good["score"].between(0, 1).all()
    assert any("invalid SMILES" in t for t in _texts(at.warning))
    assert any("support row(s) were not used" in t for t in _texts(at.warning))
    at.button(key="prepare_export").click().run()
    assert not at.exception and not at.error
    assert any("featuriser's vectors" in t for t in _texts(at.caption))


BAD_MOLECULES = {
    "one class only": (b"smiles,label\nCCO,1\nCCN,1\n", "at least one valid active (1) and one valid inactive"),
    "all invalid": (b"smiles,label\nxx,1\nyy,0\n", "at least one valid active (1) and one valid inactive"),
    "no smiles column": (b"name,label\nCCO,1\nCCN,0\n", "no SMILES column"),
    "bad labels": (b"smiles,label\nCCO,yes\nCCN,0\n", "at least one valid active (1)"),
    "empty file": (b"", "is empty"),
}


def test_bad_molecule_uploads_are_answered_in_the_page(monkeypatch, molecule_models_dir):
    at = _app(monkeypatch, molecule_models_dir)
    at.sidebar.radio(key="domain").set_value("Molecules (SMILES)").run()
    for case, (support, message) in sorted(BAD_MOLECULES.items()):
        _upload(at, "support_file", f"{case}.csv", support)
        if not at.error:
            if not any(getattr(f, "key", None) == "query_file" for f in at.file_uploader):
                raise AssertionError(case)
            _upload(at, "query_file", "query.csv", MOL_QUERY)
            at.button(key="adapt").click().run()
        assert not at.exception, case
        assert any(message in text for text in _texts(at.error)), (case, _texts(at.error))


def test_saved_model_zip_holds_a_saved_model(models_dir):
    learner = model_catalog.load_learner(models_dir / "sin" / "models" / "maml.keras")
    adapted = learner.adapt(np.zeros((3, 1), np.float32), np.zeros((3, 1), np.float32), steps=1)
    data = model_catalog.saved_model_zip(adapted)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert any(n.endswith("/saved_model.pb") for n in names)


def _image(value, size=(8, 8), fmt="PNG"):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", size, value).save(buffer, format=fmt)
    return buffer.getvalue()


def _files(*pairs):
    return [(name, data, "image/png") for name, data in pairs]


def test_image_flow_classifies_and_flags_bad_files(monkeypatch, image_models_dir):
    at = _app(monkeypatch, image_models_dir)
    at.sidebar.radio(key="domain").set_value("Images (classes by file name)").run()
    _choose(at, "protonet.keras")
    at.file_uploader(key="support_images").set_value(_files(
        ("dark_1.png", _image(10)), ("dark_2.png", _image(30, fmt="BMP")),
        ("light_1.png", _image(240)), ("light_2.jpg", _image(220, size=(16, 12), fmt="JPEG")),
        ("notes_1.png", b"this is text, not an image"), ("noclass.png", _image(100)),
        ("empty_1.png", b""),
    )).run()
    assert not at.exception
    assert any("3 file(s) cannot be used" in t for t in _texts(at.warning))
    at.file_uploader(key="query_images").set_value(_files(
        ("q1.png", _image(20)), ("q2.png", _image(230)), ("q3.png", pickle.dumps(_Boom())),
    )).run()
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    table = [d.value for d in at.dataframe if "predicted" in d.value.columns][-1]
    assert table["predicted"].tolist() == ["dark", "light", ""]
    assert table["valid"].tolist() == [True, True, False]
    assert "not an image" in table["error"][2]
    np.testing.assert_allclose(table["p(dark)"][:2] + table["p(light)"][:2], 1.0, rtol=1e-5)
    at.checkbox(key="invert").check().run()  # inverted queries and support: same classes
    assert any("press Adapt again" in t for t in _texts(at.warning))
    at.button(key="adapt").click().run()
    table = [d.value for d in at.dataframe if "predicted" in d.value.columns][-1]
    assert table["predicted"].tolist() == ["dark", "light", ""]


def test_image_flow_checks_the_number_of_classes(monkeypatch, image_models_dir):
    at = _app(monkeypatch, image_models_dir)
    at.sidebar.radio(key="domain").set_value("Images (classes by file name)").run()
    _choose(at, "maml2way.keras")
    at.file_uploader(key="support_images").set_value(_files(
        ("a_1.png", _image(10)), ("b_1.png", _image(120)), ("c_1.png", _image(240)),
    )).run()
    assert not at.exception
    assert any("meta-trained 2-way" in t for t in _texts(at.error))
    at.file_uploader(key="support_images").set_value(_files(("a_1.png", _image(10)), ("a_2.png", _image(12)))).run()
    assert any("Too few classes" in t for t in _texts(at.error))
    at.file_uploader(key="support_images").set_value(_files(("a_1.png", _image(10)), ("b_2.png", _image(200)))).run()
    at.number_input(key="steps").set_value(3).run()
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    assert any("after 3 step(s)" in t for t in _texts(at.caption))


def test_a_corrupt_model_is_answered_in_the_page(monkeypatch, models_dir, tmp_path):
    """A .keras archive whose config is readable but whose weights are not."""
    source = zipfile.ZipFile(models_dir / "sin" / "models" / "maml.keras")
    (tmp_path / "run" / "models").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "run" / "models" / "broken.keras", "w") as archive:
        for name in source.namelist():
            data = source.read(name)
            archive.writestr(name, data if name.endswith(".json") else data[:100])
    at = _app(monkeypatch, tmp_path)
    _choose(at, "broken.keras")
    assert not at.exception
    assert any("Cannot load a .keras model" in t for t in _texts(at.error)), _texts(at.error)


RATINGS_DOMAIN = "User ratings (recommendations)"
MY_RATINGS = b"item_id,rating\n1,5\n2,4\n3,1\n999,4\n5,seven\n"


def _ratings_app(monkeypatch, ratings_setup):
    root, data_dir = ratings_setup
    at = _app(monkeypatch, root, FEWSHOT_MOVIELENS_DIR=data_dir)
    at.sidebar.radio(key="domain").set_value(RATINGS_DOMAIN).run()
    assert not at.exception
    return at


def test_ratings_flow_recommends_and_keeps_bad_rows(monkeypatch, ratings_setup):
    import pandas as pd

    from fewshot.datasets import load_movielens
    from fewshot.datasets.user_tasks import RatingFeatures
    from fewshot.recsys.recommend import load_recommender, recommend

    root, data_dir = ratings_setup
    at = _ratings_app(monkeypatch, ratings_setup)
    assert any("maml.keras" in o and "ratings" in o for o in at.sidebar.selectbox(key="model").options)
    _upload(at, "support_file", "mine.csv", MY_RATINGS)
    assert any("2 rating(s) of 'mine.csv' cannot be used" in t for t in _texts(at.warning))
    at.number_input(key="age").set_value(30).run()
    at.selectbox(key="gender").select("F").run()
    at.number_input(key="top_k").set_value(4).run()
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    table = [d.value for d in at.dataframe if "predicted_rating" in d.value.columns][-1]
    ranked, errors = table[table["error"].isna()], table[table["error"].notna()]
    assert ranked["rank"].tolist() == [1, 2, 3, 4]
    assert ranked["title"].str.startswith("Film").all()
    assert not {1, 2, 3} & set(ranked["item"])  # rated items are not recommended
    messages = " | ".join(errors["error"])
    assert "unknown item id 999" in messages and "rating 'seven'" in messages
    # The page shows what the public API computes (steps from the model's .json: 3).
    learner, _ = load_recommender(root / "rec" / "models" / "maml.keras")
    features = RatingFeatures.from_movielens(load_movielens(data_dir))
    mine = pd.DataFrame({"item": ["1", "2", "3", "999", "5"], "rating": ["5", "4", "1", "4", "seven"]})
    expected = recommend(learner, features, mine, top_k=4, age=30, gender="F", steps=3)
    assert ranked["item"].tolist() == expected["item"][:4].tolist()
    np.testing.assert_allclose(ranked["predicted_rating"], expected["predicted_rating"][:4], rtol=1e-5)
    assert any("after 3 step(s)" in t for t in _texts(at.caption))
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # bar chart + loss curve
    assert at.get("download_button")
    # Listed candidates: an unknown id comes back as an error row.
    at.radio(key="candidates_mode").set_value("Only the items I list (CSV)").run()
    at.text_area(key="query_text").input("item_id\n4\n6\n12345\n").run()
    assert any("press Adapt again" in t for t in _texts(at.warning))
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    table = [d.value for d in at.dataframe if "predicted_rating" in d.value.columns][-1]
    assert sorted(table[table["error"].isna()]["item"]) == [4, 6]
    assert "unknown item id 12345" in " | ".join(table["error"].dropna())


BAD_RATINGS = {
    "empty file": (b"", "is empty"),
    "too large": (b"item_id,rating\n" + b"1,5\n" * 600_000, "too large"),
    "no rating column": (b"item_id,stars\n1,5\n", "no 'rating' column"),
    "no item column": (b"film,rating\n1,5\n", "no item column"),
    "non-numeric ratings": (b"item_id,rating\n1,good\n2,bad\n", "rating 'good' is not a number"),
    "outside 1-5": (b"item_id,rating\n1,0\n2,10\n", "rating 0 is outside the scale 1 to 5"),
    "unknown items only": (b"item_id,rating\n900,5\n901,3\n", "not in the items table"),
    "a pickle": (pickle.dumps(_Boom()), "not a text CSV file"),
}


def test_bad_ratings_uploads_are_answered_in_the_page(monkeypatch, ratings_setup):
    at = _ratings_app(monkeypatch, ratings_setup)
    for case, (data, message) in sorted(BAD_RATINGS.items()):
        _upload(at, "support_file", f"{case}.csv", data)
        assert not at.exception, case
        assert any(message in text for text in _texts(at.error)), (case, _texts(at.error))
        assert "adapt" not in [getattr(b, "key", None) for b in at.button], case
    _upload(at, "support_file", "mine.csv", MY_RATINGS)
    at.radio(key="candidates_mode").set_value("Only the items I list (CSV)").run()
    at.text_area(key="query_text").input("film\n4\n").run()
    assert any("no item column" in t for t in _texts(at.error))


def test_ratings_flow_asks_for_the_movielens_folder(monkeypatch, ratings_setup, tmp_path):
    monkeypatch.delenv("FEWSHOT_MOVIELENS_DIR", raising=False)
    root, _ = ratings_setup
    at = _app(monkeypatch, root)
    at.sidebar.radio(key="domain").set_value(RATINGS_DOMAIN).run()
    assert any("FEWSHOT_MOVIELENS_DIR" in t for t in _texts(at.info))
    at.text_input(key="movielens_dir").input(str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert any("MovieLens folder not found" in t for t in _texts(at.error))


def test_exported_image_classifiers_adapt_in_their_graph(monkeypatch, image_models_dir, tmp_path):
    """Exported ProtoNet (any number of classes) and 2-way MAML in the images flow."""
    from fewshot.export import export_saved_model

    for name in ("protonet", "maml2way"):
        learner = model_catalog.load_learner(image_models_dir / "img" / "models" / f"{name}.keras")
        export_saved_model(learner, tmp_path / "exported" / f"{name}_sm")
    at = _app(monkeypatch, tmp_path)
    at.sidebar.radio(key="domain").set_value("Images (classes by file name)").run()
    _choose(at, "protonet_sm")
    assert any("Any number of classes" in t for t in _texts(at.caption))
    support = _files(("dark_1.png", _image(10)), ("dark_2.png", _image(30)), ("mid_1.png", _image(128)),
                     ("light_1.png", _image(240)), ("light_2.png", _image(220)))
    at.file_uploader(key="support_images").set_value(support).run()
    at.file_uploader(key="query_images").set_value(_files(("q1.png", _image(20)), ("q2.png", _image(235)))).run()
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    table = [d.value for d in at.dataframe if "predicted" in d.value.columns][-1]
    assert table["predicted"].tolist() == ["dark", "light"]
    # The same probabilities as the Keras learner's own adapt (3 classes, prototypes).
    learner = model_catalog.load_learner(image_models_dir / "img" / "models" / "protonet.keras")
    x = np.array([[10], [30], [128], [240], [220]], np.float32)[:, :, None, None] * np.ones((1, 8, 8, 1)) / 255
    adapted = learner.adapt(x.astype(np.float32), np.array([0, 0, 2, 1, 1], np.int32))
    q = (np.array([20, 235], np.float32)[:, None, None, None] * np.ones((1, 8, 8, 1)) / 255).astype(np.float32)
    expected = np.exp(adapted(q).numpy())
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(table[["p(dark)", "p(light)", "p(mid)"]].to_numpy(), expected, rtol=1e-4, atol=1e-5)
    assert any("adapts inside its own graph" in t for t in _texts(at.caption))
    # The exported 2-way MAML asks for exactly 2 classes, then adapts with its baked-in steps.
    _choose(at, "maml2way_sm")
    assert any("exactly 2 classes" in t for t in _texts(at.error))
    at.file_uploader(key="support_images").set_value(support[:2] + support[3:]).run()
    at.file_uploader(key="query_images").set_value(_files(("q1.png", _image(20)))).run()
    assert any("2 gradient step(s), baked in" in t for t in _texts(at.caption))
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    table = [d.value for d in at.dataframe if "predicted" in d.value.columns][-1]
    np.testing.assert_allclose(table["p(dark)"] + table["p(light)"], 1.0, rtol=1e-5)


# --------------------------------------------------------------- tabular classification
TABULAR = "Tabular classification (CSV)"
COLOURS = {0: "red", 1: "green", 2: "blue"}  # class names in the files; the app sorts them


def _tabular_csv(x, labels=None, columns=("f1", "f2", "f3", "f4")):
    lines = [",".join(list(columns) + (["label"] if labels is not None else []))]
    for i, row in enumerate(x):
        cells = [f"{v:.4f}" for v in row] + ([str(labels[i])] if labels is not None else [])
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def _tabular_task():
    """3 classes x 3 rows of support, 2 queries per class, from the fixture's clusters."""
    from conftest import tabular_data

    x, y, _ = tabular_data()
    pick = [np.flatnonzero(y == c) for c in range(3)]
    sx = np.concatenate([x[p[:3]] for p in pick])
    sy = np.repeat(np.arange(3), 3)
    qx = np.concatenate([x[p[3:5]] for p in pick])
    return sx, sy, qx, np.repeat(np.arange(3), 2)


def _tabular_app(monkeypatch, root, model):
    at = _app(monkeypatch, root)
    at.sidebar.radio(key="domain").set_value(TABULAR).run()
    assert not at.exception
    _choose(at, model)
    return at


def _tabular_predictions(at):
    tables = [d.value for d in at.dataframe if "predicted" in d.value.columns]
    assert tables, ("no predictions table on the page", _texts(at.error))
    return tables[-1]


def _expected_probs(adapted, qx):
    logits = adapted(qx).numpy()
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def test_tabular_protonet_flow_maps_string_labels_and_projects(monkeypatch, tabular_models_dir):
    at = _tabular_app(monkeypatch, tabular_models_dir, "protonet.keras")
    assert any("Any number of classes" in t for t in _texts(at.caption))
    sx, sy, qx, qy = _tabular_task()
    support = _tabular_csv(sx, [COLOURS[c] for c in sy]) + b"1,2,nan,4,red\n"
    _upload(at, "support_file", "support.csv", support)
    assert any("1 row(s) of 'support.csv' cannot be used" in t for t in _texts(at.warning))
    assert any("adapts without a gradient loop (class prototypes" in t for t in _texts(at.caption))
    assert not at.get("number_input")  # no steps or learning rate for a metric learner
    # Queries with the columns in another order, and one bad row.
    reordered = _tabular_csv(qx[:, ::-1], columns=("f4", "f3", "f2", "f1")) + b"1,x,2,3\n"
    _upload(at, "query_file", "query.csv", reordered)
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    table = _tabular_predictions(at)
    assert table["valid"].tolist() == [True] * 6 + [False]
    assert table["error"].iloc[6] == "column 'f3': 'x' is not a number"
    assert table["predicted"].iloc[6] == "" and np.isnan(table["probability"].iloc[6])
    # Labels were sorted (blue, green, red -> 0, 1, 2): the same as the public API on those indices.
    learner = model_catalog.load_learner(tabular_models_dir / "tab" / "models" / "protonet.keras")
    names = ["blue", "green", "red"]
    index = np.array([names.index(COLOURS[c]) for c in sy], np.int32)
    expected = _expected_probs(learner.adapt(sx, index), qx)
    got = table[[f"p({n})" for n in names]].to_numpy()[:6]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert table["predicted"].tolist()[:6] == [names[k] for k in expected.argmax(-1)]
    np.testing.assert_allclose(table["probability"][:6], expected.max(-1), rtol=1e-4)
    assert [COLOURS[c] for c in qy] == table["predicted"].tolist()[:6]  # separable clusters
    assert any("1 query row(s) could not be classified" in t for t in _texts(at.warning))
    assert any("a metric learner adapts without a gradient loop" in t for t in _texts(at.caption))
    assert len(at.get("arrow_vega_lite_chart")) + len(at.get("vega_lite_chart")) >= 1  # probabilities
    assert at.get("imgs") or at.get("pyplot") or at.get("image")  # the embedding projection
    at.button(key="prepare_export").click().run()
    assert not at.exception and not at.error
    archive = zipfile.ZipFile(io.BytesIO(at.session_state["export_zip"][1]))
    files = archive.namelist()
    assert any(f.endswith("saved_model.pb") for f in files)
    classes = next(f for f in files if f.endswith("assets.extra/classes.json"))
    assert json.loads(archive.read(classes)) == {"classes": names}


def test_tabular_maml_flow_adapts_with_steps_and_a_loss_curve(monkeypatch, tabular_models_dir):
    at = _tabular_app(monkeypatch, tabular_models_dir, "maml3way.keras")
    assert any("meta-trained 3-way" in t for t in _texts(at.caption))
    sx, sy, qx, _ = _tabular_task()
    _upload(at, "support_file", "support.csv", _tabular_csv(sx[:6], sy[:6]))  # 2 classes
    assert any("needs exactly 3 classes. Received: 2" in t for t in _texts(at.error))
    _upload(at, "support_file", "support.csv", _tabular_csv(sx, sy))  # labels 0, 1, 2
    at.number_input(key="steps").set_value(4).run()
    at.number_input(key="inner_lr").set_value(0.05).run()
    at.text_area(key="query_text").input(_tabular_csv(qx).decode()).run()
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    table = _tabular_predictions(at)
    learner = model_catalog.load_learner(tabular_models_dir / "tab" / "models" / "maml3way.keras")
    adapted = learner.adapt(sx, sy.astype(np.int32), steps=4, inner_lr=0.05)
    np.testing.assert_allclose(table[["p(0)", "p(1)", "p(2)"]].to_numpy(), _expected_probs(adapted, qx),
                               rtol=1e-4, atol=1e-5)
    assert any("after 4 step(s)" in t for t in _texts(at.caption))  # the loss curve's caption
    assert at.get("download_button")
    # Changing a setting asks to adapt again.
    at.number_input(key="steps").set_value(5).run()
    assert any("press Adapt again" in t for t in _texts(at.warning))


def test_exported_tabular_classifiers_adapt_in_their_graph(monkeypatch, tabular_models_dir):
    sx, sy, qx, _ = _tabular_task()
    labels = [COLOURS[c] for c in sy]
    names = ["blue", "green", "red"]
    index = np.array([names.index(c) for c in labels], np.int32)
    for exported, keras_file in (("protonet_sm", "protonet.keras"), ("maml3way_sm", "maml3way.keras")):
        at = _tabular_app(monkeypatch, tabular_models_dir, exported)
        _upload(at, "support_file", "support.csv", _tabular_csv(sx, labels))
        at.text_area(key="query_text").input(_tabular_csv(qx).decode()).run()
        at.button(key="adapt").click().run()
        assert not at.exception and not at.error, _texts(at.error)
        table = _tabular_predictions(at)
        learner = model_catalog.load_learner(tabular_models_dir / "tab" / "models" / keras_file)
        expected = _expected_probs(learner.adapt(sx, index), qx)
        np.testing.assert_allclose(table[[f"p({n})" for n in names]].to_numpy(), expected, rtol=1e-4, atol=1e-5)
        assert any("adapts inside its own graph" in t for t in _texts(at.caption))
    assert any("2 gradient step(s), baked in" in t for t in _texts(at.caption))  # the MAML export


TABULAR_GOOD = "f1,f2,f3,f4,label\n1,2,3,4,a\n1,2,3,5,a\n9,8,7,6,b\n9,8,7,5,b\n"
BAD_TABULAR = {
    "empty file": (b"", "is empty"),
    "too large": (b"f1,f2,f3,f4,label\n" + b"1,2,3,4,a\n" * 250_000, "too large"),
    "pickle": (pickle.dumps(_Boom()), "not a text CSV file"),
    "missing label": (b"f1,f2,f3,f4,f5\n1,2,3,4,5\n", "has no label column"),
    "wrong feature count": (b"f1,f2,label\n1,2,a\n3,4,b\n", "takes 4 input columns besides the label 'label'"),
    "non-numeric": (b"f1,f2,f3,f4,label\none,2,3,4,a\n1,two,3,4,a\n9,8,7,6,b\n",
                    "Too few usable examples per class in 'non-numeric.csv': every class needs at least 1. "
                    "Received: 'a': 0"),
    "nans": (TABULAR_GOOD.replace("9,8,7,6,b\n9,8,7,5,b", "nan,8,7,6,b\n9,,7,5,b").encode(),
             "Received: 'b': 0"),
    "one class": (b"f1,f2,f3,f4,label\n1,2,3,4,a\n1,2,3,5,a\n", "1 class(es) with usable rows; a classifier needs at least 2"),
    "empty labels": (b"f1,f2,f3,f4,label\n1,2,3,4,a\n1,2,3,5,\n", "1 class(es) with usable rows"),
    "header only": (b"f1,f2,f3,f4,label\n", "but no rows"),
}


def test_bad_tabular_uploads_are_answered_in_the_page(monkeypatch, tabular_models_dir):
    """Zero uncaught exceptions over the bad-upload set, each answered in one sentence."""
    at = _tabular_app(monkeypatch, tabular_models_dir, "protonet.keras")
    for case, (data, message) in sorted(BAD_TABULAR.items()):
        _upload(at, "support_file", f"{case}.csv", data)
        assert not at.exception, case
        assert any(message in text for text in _texts(at.error)), (case, _texts(at.error))
        assert "adapt" not in [getattr(b, "key", None) for b in at.button], case
    # A bad query is answered too, and the support set still adapts.
    _upload(at, "support_file", "good.csv", TABULAR_GOOD.encode())
    assert not at.error
    _upload(at, "query_file", "query.csv", b"f1,f2\n1,2\n")
    assert any("takes 4 input columns; the file 'query.csv' has 2" in t for t in _texts(at.error))
    at.button(key="adapt").click().run()
    assert not at.exception


def test_no_tabular_model_shows_a_snippet_that_trains_one(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path / "runs")
    at.sidebar.radio(key="domain").set_value(TABULAR).run()
    assert not at.exception
    assert any("no trained tabular classifier" in t for t in _texts(at.info))
    (snippet,) = [c.value for c in at.code if "PrototypicalNetwork" in c.value]
    # The snippet runs as shown on a CSV of the form it describes, and its model is then offered.
    from conftest import tabular_data

    x, y, _ = tabular_data(num_classes=4, per_class=8)
    (tmp_path / "my_table.csv").write_bytes(_tabular_csv(x, [f"class{c}" for c in y]))
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "snippet", "exec"), {})
    (entry,) = model_catalog.find_models(str(tmp_path / "runs"))
    assert (entry.domain, entry.model_class, entry.input_dim) == ("tabular", "PrototypicalNetwork", 4)


def test_ratings_flow_serves_a_seed_ensemble(monkeypatch, ratings_setup, tmp_path):
    """A seed ensemble's folder is one model in the list; the page shows what `load_adapter` +
    `recommend` compute (each member with its own steps, predictions averaged)."""
    import pandas as pd

    from fewshot.datasets import load_movielens
    from fewshot.datasets.user_tasks import RatingFeatures
    from fewshot.recsys.recommend import load_adapter, recommend
    from tests.apps.test_model_catalog import _ensemble_folder

    folder = _ensemble_folder(ratings_setup, tmp_path)
    at = _app(monkeypatch, tmp_path, FEWSHOT_MOVIELENS_DIR=ratings_setup[1])
    at.sidebar.radio(key="domain").set_value(RATINGS_DOMAIN).run()
    assert [o for o in at.sidebar.selectbox(key="model").options if "ensemble" in o]
    assert not any("member_" in o for o in at.sidebar.selectbox(key="model").options)
    assert any("A seed ensemble: 2 copies" in t for t in _texts(at.caption))
    _upload(at, "support_file", "mine.csv", MY_RATINGS)
    at.number_input(key="top_k").set_value(4).run()
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    table = [d.value for d in at.dataframe if "predicted_rating" in d.value.columns][-1]
    ranked = table[table["error"].isna()]
    learners, ensemble = load_adapter(folder)
    features = RatingFeatures.from_movielens(load_movielens(ratings_setup[1]))
    mine = pd.DataFrame({"item": ["1", "2", "3", "999", "5"], "rating": ["5", "4", "1", "4", "seven"]})
    expected = recommend(learners[0], features, mine, top_k=4, adapter=ensemble)
    np.testing.assert_allclose(ranked["predicted_rating"], expected["predicted_rating"][:4], rtol=1e-5)
    assert "unknown item id 999" in " | ".join(table["error"].dropna())
