"""MoleculeNet-format assay tables: a SMILES column and one column per task.

MoleculeNet (Wu et al. 2018) and DeepChem ship their classification sets
(Tox21, SIDER, ClinTox, ToxCast, MUV, ...) as CSV or CSV.GZ files with a
header row, a SMILES column, an optional identifier column and one column per
assay holding ``1``, ``0`` or an empty cell (not measured). This module reads
any such file from a path or, when online, from the publisher's URL with a
local cache, finds the task columns from the header, and splits the tasks
into meta-train, validation and test groups.
"""

import dataclasses
import hashlib
import pathlib
import shutil
import urllib.parse
import urllib.request

import numpy as np

from fewshot.datasets.cache_files import default_cache_dir, write_atomically
from fewshot.tables import read_strings

# The publisher's copy (DeepChem's S3 bucket, the MoleculeNet download).
TOX21_URL = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/tox21.csv.gz"
TOX21_TASKS = (
    "NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD",
    "NR-PPAR-gamma", "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53",
)
# The few-shot Tox21 protocol (Altae-Tran et al. 2017; PaddleFSL): tasks 1-9
# meta-train, tasks 10-12 test.
TOX21_TEST_TASKS = ("SR-HSE", "SR-MMP", "SR-p53")

_SMILES_NAMES = ("smiles", "canonical_smiles", "smile", "mol", "molecule")
_ID_NAMES = ("mol_id", "id", "molecule_id", "compound_id", "name", "cmpd_chemblid", "chembl_id")


@dataclasses.dataclass
class MoleculeTable:
    """An assay table: molecules (rows) by tasks (columns).

    Attributes:
        smiles: list of the SMILES strings, one per row of the file.
        ids: list of row identifiers (the id column, or ``"row<N>"``).
        labels: float32 array ``[num_rows, num_tasks]``: 1, 0 or NaN (not
            measured).
        tasks: the task (column) names.
        name: a short name of the data set (the file stem).
        source: the path the table was read from.
        ignored_columns: columns that are neither SMILES, id nor tasks.
    """

    smiles: list
    ids: list
    labels: np.ndarray
    tasks: list
    name: str = "molecules"
    source: str = ""
    ignored_columns: list = dataclasses.field(default_factory=list)

    @property
    def is_tox21(self):
        """True when the task columns are exactly Tox21's twelve assays."""
        return list(self.tasks) == list(TOX21_TASKS)

    def task_counts(self):
        """``{task: (positives, negatives)}`` over measured cells."""
        return {
            t: (int(np.nansum(self.labels[:, i] == 1)), int(np.nansum(self.labels[:, i] == 0)))
            for i, t in enumerate(self.tasks)
        }


def fetch(url, cache_dir=None, local_copy=None):
    """Returns a local path for `url`, downloading it once into the cache.

    A file already in the cache is used as is (the machine may be offline).
    ``local_copy`` places an existing file in the cache under the URL's name
    instead of downloading, so an offline machine can seed the cache.

    Args:
        url: an http(s) or file URL.
        cache_dir: cache folder; default `default_cache_dir()`/downloads.
        local_copy: optional path of a copy of the file.

    Returns:
        The `pathlib.Path` of the cached file.

    Example:

    >>> import pathlib, tempfile
    >>> from fewshot.datasets.moleculenet import fetch
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "t.csv").write_text("smiles,a\\nCCO,1\\n")
    >>> fetch("https://example.org/data/t.csv", cache_dir=d / "cache",
    ...       local_copy=d / "t.csv").name
    't.csv'
    """
    cache_dir = pathlib.Path(cache_dir) if cache_dir else default_cache_dir() / "downloads"
    parsed = urllib.parse.urlparse(str(url))
    filename = pathlib.PurePosixPath(parsed.path).name
    if not filename:
        raise ValueError(
            "Invalid value received for argument `url`: it names no file. "
            f"Received: url={url!r}"
        )
    digest = hashlib.sha256(str(url).encode()).hexdigest()[:12]
    target = cache_dir / digest / filename
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if local_copy is not None:
        local_copy = pathlib.Path(local_copy)
        if not local_copy.is_file():
            raise FileNotFoundError(
                "Invalid value received for argument `local_copy`: no such file. "
                f"Received: local_copy={str(local_copy)!r}"
            )
        with write_atomically(target) as out, open(local_copy, "rb") as source:
            shutil.copyfileobj(source, out)
        return target
    with write_atomically(target) as out:
        try:
            with urllib.request.urlopen(str(url), timeout=60) as response:
                shutil.copyfileobj(response, out)
        except OSError as error:
            raise FileNotFoundError(
                f"Could not download {url!r} ({error}). Offline? Pass the path "
                "of a local copy instead (for example --data-dir)."
            ) from None
    return target


def resolve_source(source, cache_dir=None):
    """A local path for `source`: a file, a folder holding one CSV, or a URL."""
    text = str(source)
    if urllib.parse.urlparse(text).scheme in ("http", "https", "file"):
        return fetch(text, cache_dir=cache_dir)
    path = pathlib.Path(text).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*.csv")) + sorted(path.glob("*.csv.gz"))
        if len(found) != 1:
            raise FileNotFoundError(
                f"Folder {text!r} must hold exactly one .csv or .csv.gz file; "
                f"found {[p.name for p in found]}. Pass the file itself."
            )
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"No MoleculeNet CSV at {text!r}.")
    return path


def load_moleculenet(source, smiles_column=None, id_column=None, tasks=None, cache_dir=None):
    """Reads a MoleculeNet-format CSV (or CSV.GZ) of binary assays.

    The SMILES column is found by name (``smiles``, any case) unless given;
    the id column likewise (``mol_id``, ``id``, ``name``...). Every other
    column whose measured cells are all 0 or 1 is a task; the rest are listed
    in ``ignored_columns``. Empty cells and ``NA``, ``NaN``, ``N/A``,
    ``null``, ``None`` (any case) are "not measured". A column that is
    almost all 0/1 (at least 90% of its measured cells) but holds other
    values is an error naming its first stray cell, rather than an assay
    dropped without a word; pass `tasks` to leave it out on purpose.

    Args:
        source: a path, a folder holding one CSV, or an http(s) URL (fetched
            once into the cache).
        smiles_column: name of the SMILES column; default found by name.
        id_column: name of the id column; default found by name (optional).
        tasks: task column names to keep; default every binary column.
        cache_dir: download cache for URLs.

    Returns:
        A `MoleculeTable`.

    Example:

    >>> import pathlib, tempfile
    >>> from fewshot.datasets import load_moleculenet
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.csv"
    >>> _ = path.write_text("smiles,active,mol_id\\nCCO,1,m1\\nc1ccccc1,0,m2\\nCC,,m3\\n")
    >>> table = load_moleculenet(path)
    >>> table.tasks, table.labels.shape
    (['active'], (3, 1))
    """
    path = resolve_source(source, cache_dir)
    frame = read_strings(path, f"file {str(path)!r}")
    columns = list(frame.columns)
    smiles_column = smiles_column or _find_column(columns, _SMILES_NAMES)
    if smiles_column is None or smiles_column not in columns:
        raise ValueError(
            "Invalid value received for argument `smiles_column`: the file has "
            f"no SMILES column. Its columns: {columns}. Received: "
            f"smiles_column={smiles_column!r}"
        )
    if id_column is not None and id_column not in columns:
        raise ValueError(
            "Invalid value received for argument `id_column`: no such column. "
            f"Its columns: {columns}. Received: id_column={id_column!r}"
        )
    if id_column is None:
        id_column = _find_column([c for c in columns if c != smiles_column], _ID_NAMES)
    others = [c for c in columns if c not in (smiles_column, id_column)]
    binary = [c for c in others if _is_binary(frame[c])]
    for column in others if tasks is None else [t for t in tasks if t in others]:
        _check_nearly_binary(frame[column], column, path)
    if tasks is not None:
        tasks = list(tasks)
        bad = [t for t in tasks if t not in binary]
        if bad:
            raise ValueError(
                "Invalid value received for argument `tasks`: these are not "
                f"columns of 0/1/empty labels: {bad}. Binary columns: {binary}. "
                f"Received: tasks={tasks!r}"
            )
    else:
        tasks = binary
    if not tasks:
        raise ValueError(
            f"{str(path)!r} has no task columns (columns of 1, 0 or empty cells). "
            f"Its columns: {columns}"
        )
    labels = np.stack([_to_labels(frame[t]) for t in tasks], axis=1).astype(np.float32)
    smiles = [s.strip() for s in frame[smiles_column].tolist()]
    if id_column is not None:
        ids = frame[id_column].tolist()
    else:
        ids = [f"row{i}" for i in range(len(frame))]
    name = path.name.split(".")[0]
    return MoleculeTable(
        smiles=smiles,
        ids=ids,
        labels=labels,
        tasks=tasks,
        name=name,
        source=str(path),
        ignored_columns=[c for c in others if c not in tasks],
    )


def parse_task_spec(spec, tasks, argument="test_tasks"):
    """Task names from ``"A,B,C"`` or ``"last:N"`` (or a list of names)."""
    tasks = list(tasks)
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower().startswith("last:"):
            count = text.split(":", 1)[1].strip()
            if not count.isdigit() or not 0 < int(count) < len(tasks):
                raise ValueError(
                    f"Invalid value received for argument `{argument}`: `last:N` "
                    f"needs 0 < N < {len(tasks)} (the number of tasks). "
                    f"Received: {argument}={spec!r}"
                )
            return tasks[-int(count):]
        names = [n.strip() for n in text.split(",") if n.strip()]
    else:
        names = list(spec)
    unknown = [n for n in names if n not in tasks]
    if unknown or not names:
        raise ValueError(
            f"Invalid value received for argument `{argument}`: unknown tasks "
            f"{unknown}. Known tasks: {tasks}. Received: {argument}={spec!r}"
        )
    if len(set(names)) != len(names):
        raise ValueError(
            f"Invalid value received for argument `{argument}`: a task is named "
            f"twice. Received: {argument}={spec!r}"
        )
    return names


def split_tasks(table, test_tasks=None, validation_tasks=2):
    """Splits the tasks into meta-train, validation and test groups.

    Args:
        table: a `MoleculeTable`.
        test_tasks: names (``"A,B"`` or a list) or ``"last:N"``. Default: the
            Tox21 protocol (SR-HSE, SR-MMP, SR-p53) when the table is Tox21,
            otherwise required.
        validation_tasks: how many of the remaining tasks are held out for
            validation (early stopping and tuning), taken from the end of the
            training tasks; or their names.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``.
    """
    if test_tasks is None:
        if not table.is_tox21:
            raise ValueError(
                "Invalid value received for argument `test_tasks`: it is "
                "required for data other than Tox21; name the held-out tasks "
                f"(comma-separated) or use last:N. Tasks: {table.tasks}. "
                "Received: test_tasks=None"
            )
        test_tasks = TOX21_TEST_TASKS
    test = parse_task_spec(test_tasks, table.tasks)
    rest = [t for t in table.tasks if t not in test]
    if not rest:
        raise ValueError(
            "Invalid value received for argument `test_tasks`: it names every task, "
            f"so none is left to train on. Tasks: {table.tasks}. Received: test_tasks={test_tasks!r}"
        )
    if isinstance(validation_tasks, int) and not isinstance(validation_tasks, bool):
        if not 0 <= validation_tasks < len(rest):
            raise ValueError(
                "Invalid value received for argument `validation_tasks`. Expected "
                f"an integer in [0, {len(rest) - 1}] (some training tasks must "
                f"remain). Received: validation_tasks={validation_tasks!r}"
            )
        validation = rest[len(rest) - validation_tasks:] if validation_tasks else []
    else:
        validation = parse_task_spec(validation_tasks, rest, "validation_tasks")
        if len(validation) == len(rest):
            raise ValueError(
                "Invalid value received for argument `validation_tasks`: no "
                f"training task would remain. Received: validation_tasks={validation_tasks!r}"
            )
    train = [t for t in rest if t not in validation]
    return {"train": train, "validation": validation, "test": test}


def _find_column(columns, names):
    lowered = {c.lower().strip(): c for c in columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


# Cells that mean "not measured" in a label column (compared lower-case).
_MISSING = {"", "na", "nan", "n/a", "null", "none"}
_BINARY = {"0", "1", "0.0", "1.0"}


def _measured(series):
    text = series.str.strip()
    return text[~text.str.lower().isin(_MISSING)]


def _is_binary(series):
    values = set(_measured(series).unique())
    return bool(values) and values <= _BINARY


def _check_nearly_binary(series, column, path):
    """Raises if a column is 0/1 but for a few stray cells (a typo, a code)."""
    measured = _measured(series)
    stray = measured[~measured.isin(_BINARY)]
    if len(stray) and len(stray) <= 0.1 * len(measured):
        row = int(stray.index[0])
        raise ValueError(
            f"Column {column!r} of {str(path)!r} holds 0/1 labels but also "
            f"{len(stray)} other value(s), first {stray.iloc[0]!r} in data row {row + 1}. "
            "Labels must be 1, 0 or empty (NA, NaN, N/A, null and None count as empty); "
            "fix the cells, or pass `tasks` without this column."
        )


def _to_labels(series):
    out = np.full(len(series), np.nan, dtype=np.float32)
    text = series.str.strip()
    out[text.isin(["1", "1.0"]).to_numpy()] = 1.0
    out[text.isin(["0", "0.0"]).to_numpy()] = 0.0
    return out
