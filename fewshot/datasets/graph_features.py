"""RDKit molecular graphs packed into flat float32 rows, for graph encoders.

Every molecule becomes one row of fixed length, so that the episode samplers,
the meta-learners, ``predict-molecules`` and export, which all work on rank-2
inputs, take graphs unchanged. A row holds, for ``A = max_atoms`` atom slots
and ``D = max_degree`` neighbour slots per atom:

- ``atoms [A, 7]``: per atom, 7 integer codes stored as floats, each shifted
  by one so that 0 marks an empty slot: element (C N O S F Cl Br I P Si B Se,
  or "other"), degree, formal charge (clipped to -2..2), total hydrogen count
  (clipped to 0..4), hybridisation (SP SP2 SP3 SP3D SP3D2 or other),
  aromatic, in a ring. The encoder one-hot encodes them
  (`fewshot.models.GraphIsomorphismNetwork`): storing codes instead of the
  40-wide one-hot keeps a Tox21 row at 2.5k floats instead of 5k;
- ``neighbours [A, D]``: the indices of each atom's neighbours, -1 padding;
- ``bonds [A, D]``: the type of each of those bonds (0 single, 1 double,
  2 triple, 3 aromatic), -1 padding;
- optionally ``fingerprint_size`` Morgan ``log1p(count)`` bits (radius
  `fingerprint_radius`), for hybrid graph + fingerprint encoders.

Molecules with more than `max_atoms` heavy atoms, or an atom with more than
`max_degree` neighbours, are never truncated: like unparsable SMILES they are
flagged invalid with the reason (which names the limit). The drug-property
recipe picks ``max_atoms`` from the data (`max_atoms_of`), so no molecule of
the training file is excluded.
"""

import dataclasses

import numpy as np

from fewshot.datasets.featurize import featurize_rows, parse_smiles, require_rdkit
from fewshot.validation import check_int

ELEMENTS = ("C", "N", "O", "S", "F", "Cl", "Br", "I", "P", "Si", "B", "Se")
HYBRIDIZATIONS = ("SP", "SP2", "SP3", "SP3D", "SP3D2")
BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
#: Number of values of each atom code (before the +1 shift): element (with
#: "other"), degree (0..max_degree, filled in by `atom_vocabulary`), formal
#: charge -2..2, hydrogens 0..4, hybridisation (with "other"), aromatic, ring.
ATOM_FIELDS = ("element", "degree", "charge", "hydrogens", "hybridization", "aromatic", "ring")


def atom_vocabulary(max_degree):
    """Number of values of each of the `ATOM_FIELDS` codes."""
    return (len(ELEMENTS) + 1, max_degree + 1, 5, 5, len(HYBRIDIZATIONS) + 1, 2, 2)


@dataclasses.dataclass(frozen=True)
class GraphFeaturizer:
    """Turns SMILES into molecular graphs packed as flat float32 rows.

    The sibling of `fewshot.datasets.Featurizer` for graph encoders, with the
    same contract: calling it on a list of SMILES returns ``(features [N,
    dim], valid [N], errors {index: reason})``, `get_config()` round-trips
    through ``GraphFeaturizer(**config)`` (and `featurizer_from_config`), and
    `fewshot.datasets.featurize.featurize_cached` caches it. The layout of a
    row is described in this module's docstring; `unpack` inverts it.

    Args:
        max_atoms: atom slots per row; larger molecules are flagged invalid
            (reason names the limit), never truncated.
        max_degree: neighbour slots per atom; an atom with more neighbours
            flags its molecule invalid.
        fingerprint_size: append this many Morgan ``log1p(count)`` bits
            (0: none) for hybrid graph + fingerprint encoders.
        fingerprint_radius: radius of those fingerprints.
        kind: always ``"graph"`` (stored in the config so that a saved model
            knows which featuriser to rebuild).

    Example:

    >>> from fewshot.datasets.graph_features import GraphFeaturizer
    >>> featurizer = GraphFeaturizer(max_atoms=8, max_degree=4)
    >>> features, valid, errors = featurizer(["CCO", "CCCCCCCCCC", "xyz"])
    >>> features.shape, valid.tolist()
    ((3, 120), [True, False, False])
    >>> errors[1]
    'the molecule has 10 heavy atoms, more than max_atoms=8'
    >>> atoms, neighbours, bonds, _ = featurizer.unpack(features[:1])
    >>> neighbours[0, :3, :2].tolist()
    [[1.0, -1.0], [0.0, 2.0], [1.0, -1.0]]
    """

    max_atoms: int = 132
    max_degree: int = 6
    fingerprint_size: int = 0
    fingerprint_radius: int = 2
    kind: str = "graph"

    def __post_init__(self):
        if self.kind != "graph":
            raise ValueError(
                "Invalid value received for argument `kind`. Expected 'graph'. "
                f"Received: kind={self.kind!r}"
            )
        for name, low in (("max_atoms", 1), ("max_degree", 1), ("fingerprint_size", 0),
                          ("fingerprint_radius", 0)):
            # Stored as a Python int, so get_config() is JSON (the cache key).
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=low))

    def get_config(self):
        return dataclasses.asdict(self)

    @property
    def graph_dim(self):
        """Length of the graph part of a row (before any fingerprint)."""
        return self.max_atoms * (len(ATOM_FIELDS) + 2 * self.max_degree)

    @property
    def dim(self):
        return self.graph_dim + self.fingerprint_size

    def __call__(self, smiles):
        """Packed graphs of each SMILES.

        Returns:
            ``(features [N, dim] float32, valid [N] bool, errors)``: rows of
            invalid SMILES, and of molecules over `max_atoms` or
            `max_degree`, are all zeros and ``errors`` maps their index to
            the reason.
        """
        require_rdkit()
        generator = None
        if self.fingerprint_size:
            from rdkit.Chem import rdFingerprintGenerator

            generator = rdFingerprintGenerator.GetMorganGenerator(
                radius=self.fingerprint_radius, fpSize=self.fingerprint_size)

        def row_of(mol):
            packed, reason = self.pack(mol)
            if packed is None or generator is None:
                return packed, reason
            counts = np.log1p(generator.GetCountFingerprintAsNumPy(mol)).astype(np.float32)
            return np.concatenate([packed, counts]), None

        return featurize_rows(smiles, self.dim, row_of)

    def pack(self, mol):
        """``(row [graph_dim], None)`` of an RDKit molecule, or ``(None, reason)``."""
        n = mol.GetNumAtoms()
        if n > self.max_atoms:
            return None, f"the molecule has {n} heavy atoms, more than max_atoms={self.max_atoms}"
        atoms = np.zeros((self.max_atoms, len(ATOM_FIELDS)), dtype=np.float32)
        neighbours = np.full((self.max_atoms, self.max_degree), -1.0, dtype=np.float32)
        bonds = np.full((self.max_atoms, self.max_degree), -1.0, dtype=np.float32)
        for atom in mol.GetAtoms():
            i = atom.GetIdx()
            degree = atom.GetDegree()
            if degree > self.max_degree:
                return None, (
                    f"atom {i} ({atom.GetSymbol()}) has {degree} neighbours, more than "
                    f"max_degree={self.max_degree}"
                )
            atoms[i] = 1 + np.array(atom_codes(atom), dtype=np.float32)
            for slot, bond in enumerate(atom.GetBonds()):
                neighbours[i, slot] = bond.GetOtherAtomIdx(i)
                bonds[i, slot] = _index(str(bond.GetBondType()), BOND_TYPES, default=0)
        return np.concatenate([atoms.ravel(), neighbours.ravel(), bonds.ravel()]), None

    def unpack(self, features):
        """Splits rows ``[N, dim]`` into ``(atoms [N, A, 7], neighbours [N, A, D],
        bonds [N, A, D], fingerprints [N, fingerprint_size])``."""
        features = np.asarray(features)
        a, d, f = self.max_atoms, self.max_degree, len(ATOM_FIELDS)
        n = features.shape[0]
        atoms = features[:, : a * f].reshape(n, a, f)
        neighbours = features[:, a * f : a * (f + d)].reshape(n, a, d)
        bonds = features[:, a * (f + d) : self.graph_dim].reshape(n, a, d)
        return atoms, neighbours, bonds, features[:, self.graph_dim :]


def atom_codes(atom):
    """The 7 integer codes of an RDKit atom (see `ATOM_FIELDS`), unshifted."""
    return (
        _index(atom.GetSymbol(), ELEMENTS, default=len(ELEMENTS)),
        atom.GetDegree(),
        int(np.clip(atom.GetFormalCharge(), -2, 2)) + 2,
        int(np.clip(atom.GetTotalNumHs(), 0, 4)),
        _index(str(atom.GetHybridization()), HYBRIDIZATIONS, default=len(HYBRIDIZATIONS)),
        int(atom.GetIsAromatic()),
        int(atom.IsInRing()),
    )


def max_atoms_of(smiles):
    """``(largest heavy-atom count, largest degree)`` over the valid SMILES."""
    Chem = require_rdkit()
    atoms, degree = 1, 1
    for text in smiles:
        mol, _ = parse_smiles(text, Chem)
        if mol is not None:
            atoms = max(atoms, mol.GetNumAtoms())
            degree = max([degree] + [a.GetDegree() for a in mol.GetAtoms()])
    return atoms, degree


def _index(value, choices, default):
    try:
        return choices.index(value)
    except ValueError:
        return default
