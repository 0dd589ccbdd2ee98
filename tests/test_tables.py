"""CSV reading without shifted or lost cells (fewshot.tables)."""

import gzip
import io

import pytest

from fewshot.datasets import load_moleculenet
from fewshot.recsys.recommend import read_table
from fewshot.tables import parse_item_id, read_strings


def test_cells_stay_strings_and_blank_lines_are_skipped():
    frame = read_strings(io.StringIO("x,y\n1,2.50\n\n3,\n"), "table")
    assert frame.to_dict("list") == {"x": ["1", "3"], "y": ["2.50", ""]}


@pytest.mark.parametrize(
    "text",
    ["smiles,name\nCCO,ethanol,\nCCCO,propanol,\n", "smiles,name\nCCO,ethanol, \n\nCCCO,propanol\n"],
)
def test_an_empty_trailing_field_does_not_shift_the_columns(text):
    # pandas alone would make `smiles` the index and put the names under `smiles`.
    frame = read_strings(io.StringIO(text), "query")
    assert frame.to_dict("list") == {"smiles": ["CCO", "CCCO"], "name": ["ethanol", "propanol"]}
    assert list(frame.index) == [0, 1]


@pytest.mark.parametrize(
    "text, row, received",
    [
        ("x,y\n1,2,3\n4,5\n", 1, "['1', '2', '3']"),
        ("x,y\n1,2,\n4,5,6\n", 2, "['4', '5', '6']"),
    ],
)
def test_a_row_longer_than_the_header_is_an_error_naming_it(text, row, received):
    with pytest.raises(ValueError) as info:
        read_strings(io.StringIO(text), "support file 's.csv'")
    message = str(info.value)
    assert f"The support file 's.csv' has more fields in data row {row} than in its header" in message
    assert message.endswith(f"Received row: {received}")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty: it has no header row"),
        (b"x,y\n\xff\xfe1,2\n", "is not UTF-8 text"),
        (b'x,y\n"1,2\n', "is not a readable CSV table"),
        (b"x,y\n1,2\n4,5,6,7\n", "is not a readable CSV table: Error tokenizing data"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, data, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=f"^The file 'bad.csv' {message}"):
        read_strings(path, "file 'bad.csv'")


def test_a_damaged_gzip_names_the_file(tmp_path):
    path = tmp_path / "assays.csv.gz"
    path.write_bytes(gzip.compress(b"smiles,active\nCCO,1\n")[:-12])
    with pytest.raises(ValueError, match="^The file 'assays.csv.gz' could not be read"):
        read_strings(path, "file 'assays.csv.gz'")


def test_anything_but_a_path_or_text_buffer_is_a_type_error():
    with pytest.raises(TypeError, match="Received: bytes"):
        read_strings(b"x,y\n1,2\n", "table")


def test_readers_of_user_files_keep_trailing_comma_rows_in_place(tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("item,rating\n1,5,\n2,4,\n")
    assert read_table(ratings, "ratings", need_rating=True).to_dict("list") == {
        "item": ["1", "2"],
        "rating": ["5", "4"],
    }
    assays = tmp_path / "assays.csv"
    assays.write_text("smiles,active\nCCO,1,\nc1ccccc1,0,\n")
    table = load_moleculenet(assays)
    assert table.smiles == ["CCO", "c1ccccc1"] and table.labels[:, 0].tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("42", (42, "")),
        (" 42 ", (42, "")),
        ("42.0", (42, "")),
        ("4.2e1", (42, "")),
        (42, (42, "")),
        ("-7", (-7, "")),
        # Beyond 2**53 a float would change the id; it is read exactly.
        ("9007199254740993", (9007199254740993, "")),
        ("9223372036854775807", (9223372036854775807, "")),
        ("9223372036854775808", (None, "item id '9223372036854775808' is too large (ids are 64-bit integers)")),
        ("1e40", (None, "item id '1e40' is too large (ids are 64-bit integers)")),
        ("1.5", (None, "item id '1.5' is not an integer")),
        ("nan", (None, "item id 'nan' is not an integer")),
        ("inf", (None, "item id 'inf' is not an integer")),
        ("seven", (None, "item id 'seven' is not an integer")),
        ("  ", (None, "item id is empty")),
    ],
)
def test_parse_item_id(cell, expected):
    assert parse_item_id(cell) == expected


def test_parse_item_id_is_exact_and_refuses_python_only_forms():
    assert parse_item_id("9007199254740993.0") == (9007199254740993, "")  # not through a float
    assert parse_item_id("-3") == (-3, "")
    for text in ("1_000", "0x10", "nan", "inf", "1e-400"):
        assert parse_item_id(text) == (None, f"item id {text!r} is not an integer")
    assert parse_item_id("1e400")[0] is None


def test_read_strings_refuses_a_header_that_names_a_column_twice():
    with pytest.raises(ValueError, match=r"names a column more than once in its header: \['a'\]"):
        read_strings(io.StringIO("a,b, a\n1,2,3\n"), "query file 'q.csv'")
