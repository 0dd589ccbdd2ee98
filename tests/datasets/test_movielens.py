import numpy as np
import pytest

from fewshot.datasets import load_movielens, load_movielens_tfds
from fewshot.datasets.movielens import ML1M_OCCUPATIONS, write_tiny_movielens


def test_reads_100k_folder_and_its_parent(tmp_path):
    folder = write_tiny_movielens(tmp_path, num_users=6, num_items=10, ratings_per_user=(5, 8))
    for path in (folder, tmp_path):
        data = load_movielens(path)
        assert data.name == "ml-100k"
        assert list(data.ratings.columns) == ["user", "item", "rating", "timestamp"]
        assert len(data.users) == 6 and len(data.items) == 10
        assert data.genres == ["unknown", "Action", "Comedy", "Drama"]
        assert data.items["title"][0].startswith("Film 1 é")  # Latin-1 decoded
        assert data.items["year"].between(1950, 1999).all()
        assert set(data.users["gender"]) <= {"M", "F"}


def test_reads_1m_format(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978300761\n2::10::4::978300000\n")
    (folder / "movies.dat").write_bytes(
        "10::GoldenEye (1995)::Action|Adventure|Thriller\n20::Amélie (2001)::Comedy|Romance\n".encode("latin-1")
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    data = load_movielens(tmp_path)
    assert data.name == "ml-1m"
    assert data.items.set_index("item").loc[20, "title"] == "Amélie (2001)"
    assert data.items.set_index("item").loc[20, "year"] == 2001
    assert data.items.set_index("item").loc[10, ["Action", "Comedy"]].tolist() == [1, 0]
    assert data.users["occupation"].tolist() == [ML1M_OCCUPATIONS[10], ML1M_OCCUPATIONS[16]]
    assert data.ratings["rating"].tolist() == [5.0, 3.0, 4.0]


def test_missing_folder_and_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="MovieLens folder not found"):
        load_movielens(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="No MovieLens files in"):
        load_movielens(tmp_path)
    folder = write_tiny_movielens(tmp_path, num_users=3, num_items=5, ratings_per_user=(2, 3))
    (tmp_path / "ml-100k" / "u.user").unlink()
    with pytest.raises(FileNotFoundError, match=r"ml-100k' lacks u.user"):
        load_movielens(folder)


def test_bad_columns_and_values_name_file_and_line(tmp_path):
    folder = write_tiny_movielens(tmp_path, num_users=3, num_items=5, ratings_per_user=(2, 3))
    data_file = tmp_path / "ml-100k" / "u.data"
    lines = data_file.read_text().splitlines()
    data_file.write_text("\n".join(lines[:1] + ["1\tX\t4\t880000000"] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"u.data', line 2: column `item` holds 'X'"):
        load_movielens(folder)
    data_file.write_text("1\t2\n")
    with pytest.raises(ValueError, match=r"has 2 columns, expected 4"):
        load_movielens(folder)


def test_tfds_reader_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        data = load_movielens_tfds(download=False)
    assert data.name == "tfds:movielens/100k-ratings"
    assert len(data.ratings) == 40
    assert data.ratings["user"].dtype == np.int64
    assert set(data.ratings["item"]) == set(data.items["item"])
    assert set(data.users["occupation"]) <= set(data.occupations)
    assert list(data.items.columns[3:]) == data.genres


def test_a_row_with_too_many_fields_names_the_file(tmp_path):
    folder = write_tiny_movielens(tmp_path)
    with open(f"{folder}/u.data", "a") as f:
        f.write("1\t2\t3\t4\t5\n")
    with pytest.raises(ValueError, match=r"u.data' is not a 4-column .* Expected 4 fields"):
        load_movielens(folder)


def test_a_repeated_user_item_rating_is_an_error(tmp_path):
    folder = write_tiny_movielens(tmp_path)
    with open(f"{folder}/u.data") as f:
        first = f.readline()
    with open(f"{folder}/u.data", "a") as f:
        f.write(first)
    user, item = first.split("\t")[:2]
    with pytest.raises(ValueError, match=rf"user {user} rates item {item} again \(1 repeated"):
        load_movielens(folder)
