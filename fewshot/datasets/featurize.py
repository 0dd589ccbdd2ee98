"""RDKit featurisation of molecules: Morgan (ECFP) fingerprints and 2D descriptors.

RDKit is an optional dependency (the ``chem`` extra); it is imported where it
is used. Features are computed once per (molecule list, settings) and cached
as ``.npz`` files under ``$FEWSHOT_CACHE`` (default ``~/.cache/fewshot``).
Invalid SMILES are never dropped silently: `featurize_table` returns them in
its report, and `write_report` lists them in a CSV file.
"""

import csv
import dataclasses
import hashlib
import json
import pathlib

import numpy as np

from fewshot.datasets.cache_files import default_cache_dir, write_atomically
from fewshot.validation import check_int

KINDS = ("morgan_count", "morgan_bits")
# Part of the feature cache's key: raise it when what a SMILES parses to
# changes (2: SMILES with whitespace became invalid).
CACHE_VERSION = 2


def require_rdkit():
    """Imports RDKit, or fails with an install hint."""
    try:
        import rdkit  # noqa: F401
        from rdkit import Chem, RDLogger
    except ImportError:
        raise ImportError(
            "Molecule featurisation needs RDKit: pip install 'fewshot[chem]' "
            "(or pip install rdkit)."
        ) from None
    RDLogger.DisableLog("rdApp.*")
    return Chem


@dataclasses.dataclass(frozen=True)
class Featurizer:
    """Turns SMILES into fixed-length float32 feature vectors.

    Morgan fingerprints (ECFP-like, folded to `size` bits) of radius
    `radius`; the count variant stores ``log1p(count)`` per bit, the bit
    variant 0/1. With ``descriptors=True`` RDKit's 2D descriptors (about 200)
    are appended, squashed with ``sign(x) * log1p(|x|)`` so that no scale
    statistics have to be stored with a model.

    Args:
        kind: ``"morgan_count"`` or ``"morgan_bits"``.
        radius: Morgan radius (2 gives ECFP4).
        size: number of folded bits.
        descriptors: append RDKit 2D descriptors.

    Example:

    >>> from fewshot.datasets import Featurizer
    >>> features, valid, errors = Featurizer(size=64)(["CCO", "not a smiles"])
    >>> features.shape, valid.tolist(), len(errors)
    ((2, 64), [True, False], 1)
    """

    kind: str = "morgan_count"
    radius: int = 2
    size: int = 2048
    descriptors: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(
                f"Invalid value received for argument `kind`. Expected one of "
                f"{list(KINDS)}. Received: kind={self.kind!r}"
            )
        for name, low in (("radius", 0), ("size", 1)):
            # Stored as a Python int, so get_config() is JSON (the cache key).
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=low))

    def get_config(self):
        return dataclasses.asdict(self)

    @property
    def dim(self):
        return self.size + (len(_descriptor_names()) if self.descriptors else 0)

    def __call__(self, smiles):
        """Features of each SMILES.

        Returns:
            ``(features [N, dim] float32, valid [N] bool, errors)``, where
            rows of invalid SMILES are zeros and ``errors`` maps their index
            to the reason.
        """
        require_rdkit()
        from rdkit.Chem import rdFingerprintGenerator

        generator = rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.size)

        def row_of(mol):
            row = np.empty(self.dim, dtype=np.float32)
            if self.kind == "morgan_count":
                row[: self.size] = np.log1p(generator.GetCountFingerprintAsNumPy(mol))
            else:
                row[: self.size] = generator.GetFingerprintAsNumPy(mol)
            if self.descriptors:
                row[self.size :] = _descriptors(mol)
            return row, None

        return featurize_rows(smiles, self.dim, row_of)


def featurize_rows(smiles, dim, row_of):
    """``(features [N, dim], valid [N], errors)`` with ``row_of(mol)`` per molecule.

    The loop every featuriser shares: each SMILES is parsed with RDKit, an
    invalid one (or one that ``row_of`` rejects by returning ``(None,
    reason)``) leaves a row of zeros and its reason in ``errors``; a valid
    one gets the row ``row_of`` returned as ``(row, None)``.
    """
    Chem = require_rdkit()
    features = np.zeros((len(smiles), dim), dtype=np.float32)
    valid = np.zeros(len(smiles), dtype=bool)
    errors = {}
    for i, text in enumerate(smiles):
        mol, reason = parse_smiles(text, Chem)
        row = None
        if mol is not None:
            row, reason = row_of(mol)
        if row is None:
            errors[i] = reason
            continue
        features[i] = row
        valid[i] = True
    return features, valid, errors


def featurizer_from_config(config):
    """The featuriser a `get_config()` dict describes: a `Featurizer`, or a
    `fewshot.datasets.graph_features.GraphFeaturizer` when ``kind`` is
    ``"graph"`` (so a saved model rebuilds whichever it was trained on)."""
    config = dict(config)
    if config.get("kind") == "graph":
        from fewshot.datasets.graph_features import GraphFeaturizer

        return GraphFeaturizer(**config)
    return Featurizer(**config)


def parse_smiles(text, Chem=None):
    """``(mol, None)`` for a valid SMILES, else ``(None, reason)``."""
    Chem = Chem or require_rdkit()
    if not isinstance(text, str) or not text.strip():
        return None, "empty SMILES"
    text = text.strip()
    if any(c.isspace() for c in text):
        # RDKit reads what follows a space as the molecule's name, so
        # "c1ccccc1 O" would silently become benzene.
        return None, "the SMILES contains a space or tab (RDKit would ignore what follows it)"
    mol = Chem.MolFromSmiles(text)
    if mol is None:
        return None, "RDKit could not parse the SMILES"
    if mol.GetNumAtoms() == 0:
        return None, "no atoms"
    return mol, None


def canonical_smiles(smiles):
    """RDKit canonical SMILES of each entry (None where invalid)."""
    Chem = require_rdkit()
    out = []
    for text in smiles:
        mol, _ = parse_smiles(text, Chem)
        out.append(None if mol is None else Chem.MolToSmiles(mol))
    return out


def featurize_cached(smiles, featurizer, cache_dir=None):
    """`featurizer(smiles)`, computed once and cached on disk.

    The cache key is a hash of the SMILES list, the featuriser settings, the
    RDKit version and `CACHE_VERSION` (raised when parsing rules change), so
    an upgrade never serves stale features.
    """
    cache_dir = pathlib.Path(cache_dir) if cache_dir else default_cache_dir() / "features"
    key = hashlib.sha256()
    require_rdkit()
    import rdkit

    key.update(f"{CACHE_VERSION}|{rdkit.__version__}|".encode())
    key.update(json.dumps(featurizer.get_config(), sort_keys=True).encode())
    key.update(b"\x00".join(s.encode() if isinstance(s, str) else b"<none>" for s in smiles))
    path = cache_dir / f"{key.hexdigest()[:24]}.npz"
    if path.is_file():
        try:
            data = np.load(path, allow_pickle=False)
            errors = json.loads(str(data["errors"]))
            return data["features"], data["valid"], {int(k): v for k, v in errors.items()}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is recomputed
    features, valid, errors = featurizer(smiles)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with write_atomically(path) as f:
        np.savez_compressed(f, features=features, valid=valid, errors=json.dumps(errors))
    return features, valid, errors


@dataclasses.dataclass
class MoleculeSet:
    """Featurised, de-duplicated molecules with their merged labels.

    Attributes:
        features: float32 ``[M, dim]`` for the M unique valid molecules.
        labels: float32 ``[M, num_tasks]`` (1, 0 or NaN).
        tasks: task names.
        smiles: canonical SMILES of each molecule.
        rows: for each molecule, the file rows merged into it.
        report: ``{"rows", "invalid": [...], "duplicates": [...],
            "label_conflicts": int}``.
    """

    features: np.ndarray
    labels: np.ndarray
    tasks: list
    smiles: list
    rows: list
    report: dict

    def task_index(self, name):
        return self.tasks.index(name)


def featurize_table(table, featurizer, cache_dir=None):
    """Featurises a `MoleculeTable`, excluding and reporting invalid rows.

    Rows whose SMILES RDKit cannot parse are excluded and listed in the
    report. Rows with the same canonical SMILES are merged into one molecule:
    a task's label is the majority of the measured labels, and a tie
    (conflicting measurements) leaves it unmeasured; both are counted.

    Returns:
        A `MoleculeSet`.
    """
    features, valid, errors = featurize_cached(table.smiles, featurizer, cache_dir)
    canon = _canonical_cached(table.smiles, cache_dir)
    groups = {}
    for row in np.flatnonzero(valid):
        groups.setdefault(canon[row] or table.smiles[row], []).append(int(row))
    keys = list(groups)
    rows = [groups[k] for k in keys]
    first = np.array([r[0] for r in rows], dtype=np.int64)
    labels = table.labels[first].copy()
    duplicates = []
    conflicts = 0
    for m, members in enumerate(rows):
        if len(members) == 1:
            continue
        block = table.labels[members]
        positives = np.nansum(block == 1, axis=0)
        negatives = np.nansum(block == 0, axis=0)
        merged = np.where(positives > negatives, 1.0, np.where(negatives > positives, 0.0, np.nan))
        tied = (positives == negatives) & (positives > 0)
        conflicts += int(tied.sum())
        labels[m] = merged
        duplicates.append({"smiles": keys[m], "ids": [table.ids[r] for r in members], "rows": members})
    invalid = [
        {"row": int(r), "id": table.ids[r], "smiles": table.smiles[r], "reason": errors.get(r, "invalid")}
        for r in np.flatnonzero(~valid)
    ]
    report = {
        "rows": len(table.smiles),
        "molecules": len(keys),
        "invalid": invalid,
        "duplicates": duplicates,
        "label_conflicts": conflicts,
    }
    return MoleculeSet(
        features=features[first],
        labels=labels.astype(np.float32),
        tasks=list(table.tasks),
        smiles=keys,
        rows=rows,
        report=report,
    )


def write_report(report, out_dir):
    """Writes ``invalid_smiles.csv`` and ``duplicates.csv``; returns their paths."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    invalid_path = out_dir / "invalid_smiles.csv"
    with open(invalid_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "id", "smiles", "reason"])
        for item in report["invalid"]:
            writer.writerow([item["row"], item["id"], item["smiles"], item["reason"]])
    duplicates_path = out_dir / "duplicates.csv"
    with open(duplicates_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["canonical_smiles", "ids", "rows"])
        for item in report["duplicates"]:
            writer.writerow([item["smiles"], ";".join(map(str, item["ids"])), ";".join(map(str, item["rows"]))])
    return invalid_path, duplicates_path


def _canonical_cached(smiles, cache_dir):
    cache_dir = pathlib.Path(cache_dir) if cache_dir else default_cache_dir() / "features"
    key = hashlib.sha256(b"canonical\x00" + b"\x00".join(
        s.encode() if isinstance(s, str) else b"<none>" for s in smiles)).hexdigest()[:24]
    path = cache_dir / f"canonical_{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass
    canon = canonical_smiles(smiles)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with write_atomically(path) as f:
        f.write(json.dumps(canon).encode())
    return canon


_DESCRIPTOR_NAMES = None


def _descriptor_names():
    global _DESCRIPTOR_NAMES
    if _DESCRIPTOR_NAMES is None:
        require_rdkit()
        from rdkit.Chem import Descriptors

        _DESCRIPTOR_NAMES = [name for name, _ in Descriptors._descList]
    return _DESCRIPTOR_NAMES


def _descriptors(mol):
    from rdkit.Chem import Descriptors

    values = []
    for name, fn in Descriptors._descList:
        try:
            values.append(float(fn(mol)))
        except Exception:  # RDKit raises assorted errors on odd molecules
            values.append(0.0)
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return (np.sign(values) * np.log1p(np.abs(values))).astype(np.float32)
