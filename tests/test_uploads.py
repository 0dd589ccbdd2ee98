"""Upload parsing and validation (fewshot.uploads)."""

import io
import re
import pickle

import numpy as np
import pytest

from fewshot import uploads
from fewshot.uploads import UploadError


def test_read_csv_keeps_every_cell_as_text():
    frame = uploads.read_csv(b"x,y\n1,2.5\n3,abc\n", name="s.csv")
    assert list(frame.columns) == ["x", "y"]
    assert frame["y"].tolist() == ["2.5", "abc"]


def test_read_csv_accepts_pasted_text_and_bom():
    frame = uploads.read_csv("\ufeffx,y\n1,2\n\n", name="pasted")
    assert list(frame.columns) == ["x", "y"] and len(frame) == 1


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"x,y\n", r"has a header \(x, y\) but no rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not a text CSV file"),
        ("x,y\n1,2\n".encode("utf-16"), "not a text CSV file"),
        (b"x,y\n\xff\xfe1,2\n", "not UTF-8 text"),
        (b'x,y\n"1,2\n', "not a readable CSV table"),
        (b"x,,y\n1,2,3\n", "columns without a name"),
    ],
)
def test_read_csv_rejects_bad_files_with_a_message(data, message):
    with pytest.raises(UploadError, match=message):
        uploads.read_csv(data, name="bad.csv")


def test_read_csv_size_limit_names_sizes():
    data = b"x,y\n" + b"1,2\n" * 600
    with pytest.raises(UploadError) as info:
        uploads.read_csv(data, name="big.csv", max_bytes=1024)
    assert str(info.value) == (
        "The file 'big.csv' is too large: 2 KB; the limit is 1 KB. "
        "A few examples are all fewshot needs."
    )


def test_a_pickle_is_never_unpickled():
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('executed')",))

    with pytest.raises(UploadError, match="not a text CSV file"):
        uploads.read_csv(pickle.dumps(Boom()), name="model.pkl")


def test_regression_columns_finds_label_and_features():
    frame = uploads.read_csv(b"a,b,Target\n1,2,3\n")
    assert uploads.regression_columns(frame, input_dim=2) == (["a", "b"], "Target")


def test_regression_columns_ignores_report_columns():
    frame = uploads.read_csv(b"x,y,valid,error\n1,2,True,\n")
    assert uploads.regression_columns(frame, input_dim=1) == (["x"], "y")


def test_regression_columns_missing_label():
    frame = uploads.read_csv(b"x,z\n1,2\n")
    with pytest.raises(UploadError) as info:
        uploads.regression_columns(frame, input_dim=1, name="s.csv")
    assert str(info.value) == (
        "The file 's.csv' has no label column: name the column to learn 'y' or "
        "'target' or 'label' or 'value'. Its columns: ['x', 'z']"
    )


def test_regression_columns_wrong_number_of_inputs():
    frame = uploads.read_csv(b"x1,x2,y\n1,2,3\n")
    with pytest.raises(UploadError) as info:
        uploads.regression_columns(frame, input_dim=1, name="s.csv")
    assert str(info.value) == (
        "The model takes one input column (for example 'x') besides the label 'y'; "
        "the file 's.csv' has 2: ['x1', 'x2']."
    )


def test_regression_columns_query_without_label():
    frame = uploads.read_csv(b"x\n1\n")
    assert uploads.regression_columns(frame, 1, require_label=False) == (["x"], None)


def test_regression_columns_named_label_must_exist():
    frame = uploads.read_csv(b"x,y\n1,2\n")
    with pytest.raises(UploadError, match="has no column 'z'"):
        uploads.regression_columns(frame, 1, label_column="z", name="s.csv")


def test_numeric_rows_flags_bad_rows_and_keeps_them():
    frame = uploads.read_csv(b"x,y\n1,2\n2,oops\n,3\n4,inf\n5,6\n", name="s.csv")
    rows = uploads.numeric_rows(frame, ["x"], "y", name="s.csv")
    assert rows.valid.tolist() == [True, False, False, False, True]
    assert rows.num_valid == 2
    np.testing.assert_allclose(rows.x, [[1.0], [5.0]])
    np.testing.assert_allclose(rows.y, [[2.0], [6.0]])
    assert rows.x.dtype == np.float32 and rows.y.dtype == np.float32
    assert len(rows.report) == 5  # nothing dropped
    assert rows.report["error"].tolist() == [
        "",
        "column 'y': 'oops' is not a number",
        "column 'x': empty",
        "column 'y': 'inf' is not a number",
        "",
    ]


def test_numeric_rows_without_label():
    rows = uploads.numeric_rows(uploads.read_csv(b"x\n1\n2\n"), ["x"])
    assert rows.y is None and rows.x.shape == (2, 1)


def test_numeric_rows_missing_column():
    with pytest.raises(UploadError, match=r"missing the column\(s\) \['w'\]"):
        uploads.numeric_rows(uploads.read_csv(b"x,y\n1,2\n"), ["w"], "y")


def test_check_enough():
    uploads.check_enough(2, 2)
    with pytest.raises(UploadError) as info:
        uploads.check_enough(1, 2, name="s.csv")
    assert str(info.value) == (
        "Too few valid examples in 's.csv' for this model: 1 usable, at least 2 needed."
    )


def _png(size=(8, 6), color=128):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_read_image_decodes_png():
    image = uploads.read_image(_png(), name="a.png", size=(4, 4))
    assert image.shape == (4, 4, 1) and image.dtype == np.float32
    np.testing.assert_allclose(image, 128 / 255, rtol=1e-5)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty"),
        (b"x,y\n1,2\n", "is not an image: expected PNG, JPEG, GIF or BMP"),
        (b"\x89PNG\r\n\x1a\ntruncated", "looks like a PNG image but cannot be decoded"),
        ("a.png", "Expected the contents of 'x.png' as bytes. Received: str"),
        (None, "as bytes. Received: NoneType"),
        (5, "as bytes. Received: int"),
    ],
)
def test_read_image_rejects_non_images(data, message):
    with pytest.raises(UploadError, match=message):
        uploads.read_image(data, name="x.png")


def test_upload_error_is_a_value_error():
    assert issubclass(UploadError, ValueError)


@pytest.mark.parametrize(
    "name, expected",
    [("cat_1.png", "cat"), ("cat/1.png", "cat"), ("a/b/dog.jpg", "b"), ("x_y_z.png", "x")],
)
def test_class_from_name(name, expected):
    assert uploads.class_from_name(name) == expected


@pytest.mark.parametrize("name", ["cat.png", "_1.png", ""])
def test_class_from_name_without_a_class(name):
    with pytest.raises(UploadError, match="Cannot tell the class"):
        uploads.class_from_name(name)


def test_read_images_flags_bad_files_and_keeps_them():
    rows = uploads.read_images(
        [("a_1.png", _png()), ("b_1.png", b"text"), ("nolabel.png", _png()), ("c_1.png", b"")],
        input_shape=(4, 4, 1),
    )
    assert rows.valid.tolist() == [True, False, False, False]
    assert rows.x.shape == (1, 4, 4, 1) and rows.classes == ["a"]
    assert rows.report["file"].tolist() == ["a_1.png", "b_1.png", "nolabel.png", "c_1.png"]
    assert "not an image" in rows.report["error"][1]
    assert "Cannot tell the class" in rows.report["error"][2]
    assert "is empty" in rows.report["error"][3]


def test_read_images_rgb_and_unlabelled():
    rows = uploads.read_images([("q.png", _png())], input_shape=(2, 3, 3), labelled=False)
    assert rows.x.shape == (1, 2, 3, 3) and rows.classes is None


def test_read_images_needs_an_image_model():
    with pytest.raises(UploadError, match="does not take images"):
        uploads.read_images([("a_1.png", _png())], input_shape=(10,))


def test_item_ratings_flags_bad_rows_and_keeps_them():
    frame = uploads.read_csv(b"Movie_ID,Rating\n50,5\n1.5,4\n7,\n8,0.5\n9,3.5\n,2\n", name="mine.csv")
    report, column = uploads.item_ratings(frame, name="mine.csv")
    assert column == "Movie_ID"
    assert report["valid"].tolist() == [True, False, False, False, True, False]
    assert report["error"].tolist() == [
        "", "item id '1.5' is not an integer", "rating is empty",
        "rating 0.5 is outside the scale 1 to 5", "", "item id is empty",
    ]


def test_item_ratings_candidates_need_only_an_item_column():
    frame = uploads.read_csv(b"item\n4\nx\n", name="cands.csv")
    report, column = uploads.item_ratings(frame, name="cands.csv", need_rating=False)
    assert column == "item" and report["valid"].tolist() == [True, False]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"film,rating\n1,5\n", "has no item column"),
        (b"item_id,stars\n1,5\n", "has no 'rating' column"),
        (b"item_id,rating\n1,five\n2,6\n", "None of the 2 row(s) of 'mine.csv' can be used as ratings; the first: rating 'five' is not a number"),
    ],
)
def test_item_ratings_rejects_unusable_tables(data, message):
    with pytest.raises(UploadError, match=re.escape(message)):
        uploads.item_ratings(uploads.read_csv(data, name="mine.csv"), name="mine.csv")


def test_classification_columns_finds_the_label_and_counts_features():
    frame = uploads.read_csv(b"a,b,Label\n1,2,x\n")
    assert uploads.classification_columns(frame, 2) == (["a", "b"], "Label")
    frame = uploads.read_csv(b"a,b,class\n1,2,x\n")
    assert uploads.classification_columns(frame, 2) == (["a", "b"], "class")
    with pytest.raises(uploads.UploadError) as info:
        uploads.classification_columns(uploads.read_csv(b"a,b\n1,2\n"), 2, name="s.csv")
    assert str(info.value) == (
        "The file 's.csv' has no label column: name the column to learn 'label' or 'class' or 'y' "
        "or 'target'. Its columns: ['a', 'b']"
    )
    with pytest.raises(uploads.UploadError, match=r"takes 3 input columns besides the label 'label'; "
                       r"the file 's.csv' has 2: \['a', 'b'\]"):
        uploads.classification_columns(frame.rename(columns={"class": "label"}), 3, name="s.csv")
    assert uploads.classification_columns(uploads.read_csv(b"a,b\n1,2\n"), 2, require_label=False) == (["a", "b"], None)


def test_class_rows_maps_labels_and_flags_bad_rows():
    frame = uploads.read_csv(b"a,b,label\n1,2,10\n3,nan,2\n4,5,2\n6,inf,10\n7,8,\n9,x,2\n0,1,10\n")
    rows = uploads.class_rows(frame, ["a", "b"], "label", name="s.csv")
    assert rows.classes == ["2", "10"]  # numbers by value, not as text
    assert rows.y.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(rows.x, [[1, 2], [4, 5], [0, 1]])
    assert rows.valid.tolist() == [True, False, True, False, False, False, True]
    assert rows.report["error"].tolist() == [
        "", "column 'b': 'nan' is not a number", "", "column 'b': 'inf' is not a number",
        "column 'label': the label is empty", "column 'b': 'x' is not a number", "",
    ]
    uploads.check_classes(rows, "s.csv")
    uploads.check_classes(rows, "s.csv", num_classes=2)


def test_class_rows_text_labels_sort_alphabetically():
    rows = uploads.class_rows(uploads.read_csv(b"a,label\n1,dog\n2,cat\n3,10\n"), ["a"], "label")
    assert rows.classes == ["10", "cat", "dog"] and rows.y.tolist() == [2, 1, 0]


@pytest.mark.parametrize(
    "data, kwargs, message",
    [
        (b"a,label\n1,x\n2,x\n", {}, "The file 's.csv' has 1 class(es) with usable rows; a classifier needs at "
         "least 2. Received: labels ['x']."),
        (b"a,label\n1,x\nnan,y\n", {}, "Too few usable examples per class in 's.csv': every class needs at "
         "least 1. Received: 'y': 0 (rows flagged in the `error` column do not count)."),
        (b"a,label\n1,x\n2,x\n3,y\n", {"min_per_class": 2}, "Received: 'y': 1"),
        (b"a,label\n1,x\n2,y\n", {"num_classes": 3}, "This model was meta-trained 3-way: it needs exactly 3 "
         "classes. Received: 2 in 's.csv': ['x', 'y']."),
    ],
)
def test_check_classes_rejects_classes_that_do_not_suit(data, kwargs, message):
    rows = uploads.class_rows(uploads.read_csv(data), ["a"], "label", name="s.csv")
    with pytest.raises(uploads.UploadError) as info:
        uploads.check_classes(rows, "s.csv", **kwargs)
    assert message in str(info.value)


def test_class_rows_missing_label_column():
    with pytest.raises(uploads.UploadError, match="is missing the column 'label'"):
        uploads.class_rows(uploads.read_csv(b"a\n1\n"), ["a"], "label", name="s.csv")


def test_read_csv_keeps_trailing_comma_rows_in_place_and_rejects_longer_rows():
    frame = uploads.read_csv(b"x,y\n1,2,\n3,4,\n", name="s.csv")
    assert frame.to_dict("list") == {"x": ["1", "3"], "y": ["2", "4"]}
    with pytest.raises(UploadError, match=r"^The file 's.csv' has more fields in data row 1"):
        uploads.read_csv(b"x,y\n1,2,3\n4,5\n", name="s.csv")


def test_numbers_beyond_float32_and_ids_beyond_int64_are_flagged_not_inf():
    frame = uploads.read_csv(b"x,y\n1,2\n1e39,3\n4,-1e39\n3e38,1\n", name="s.csv")
    rows = uploads.numeric_rows(frame, ["x"], "y", name="s.csv")
    assert rows.valid.tolist() == [True, False, False, True]
    assert np.isfinite(rows.x).all() and np.isfinite(rows.y).all()
    assert rows.report["error"][1] == "column 'x': '1e39' is too large (beyond ±3.4e+38, the float32 range)"
    assert rows.report["error"][2].startswith("column 'y': '-1e39' is too large")
    ratings = uploads.read_csv(b"item,rating\n1e20,4\n99999999999999999999,4\n1e40,4\n7,4\n", name="r.csv")
    report, _ = uploads.item_ratings(ratings, name="r.csv")
    assert report["valid"].tolist() == [False, False, False, True]
    assert report["error"][0] == "item id '1e20' is too large (ids are 64-bit integers)"
    assert report["error"][2] == "item id '1e40' is too large (ids are 64-bit integers)"


def test_read_csv_without_a_header_row_loses_nothing():
    # pandas would take the first data row as column names and drop it.
    with pytest.raises(UploadError, match=r"no header row: its first row is all numbers \(1.5\)"):
        uploads.read_csv(b"1.5\n2.5\n3.5\n", name="q.csv")
    with pytest.raises(UploadError, match="no header row"):
        uploads.read_csv(b"0.1,0.2\n0.3,0.4\n")
    # pandas' own names for an array's columns are a header.
    assert uploads.read_csv(b"0,1\n3,4\n").columns.tolist() == ["0", "1"]


@pytest.mark.parametrize("header", [b"x,x,y", b"x, x,y"])
def test_read_csv_refuses_a_column_named_twice(header):
    with pytest.raises(UploadError, match=r"names a column more than once in its header: \['x'\]"):
        uploads.read_csv(header + b"\n1,2,3\n", name="s.csv")


def _encoded(image, fmt="PNG"):
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def test_read_image_transparent_strokes_show_on_a_white_page():
    from PIL import Image

    pixels = np.zeros((8, 8, 4), np.uint8)  # transparent black page
    pixels[2:6, 3, 3] = 255  # opaque black strokes
    x = uploads.read_image(_encoded(Image.fromarray(pixels, "RGBA")))
    assert x[0, 0, 0] == 1.0 and x[3, 3, 0] == 0.0
    palette = Image.fromarray(pixels[..., :3]).convert("P")
    palette.info["transparency"] = 0
    assert uploads.read_image(_encoded(palette)).min() == 1.0  # all page


def test_read_image_scales_16_bit_grayscale():
    from PIL import Image

    image = Image.fromarray(np.array([[0, 32768, 65535]], np.uint16))
    x = uploads.read_image(_encoded(image))
    np.testing.assert_allclose(x.ravel(), [0.0, 128 / 255, 1.0])


def test_item_ratings_flags_an_item_named_again():
    frame = uploads.read_csv(b"item,rating\n50,5\n7,3\n50,1\n", name="mine.csv")
    report, _ = uploads.item_ratings(frame, name="mine.csv")
    assert report["valid"].tolist() == [True, True, False]
    assert report["error"].tolist()[2] == "item 50 is already in row 1 (one row per item)"
