"""A tiny MoleculeNet-style CSV of common molecules, written by the tests.

Real SMILES; the task labels come from RDKit descriptor thresholds, so they
are reproducible and need no external data. Helpers for the drug-property
tests (imported as `molecule_fixtures`; tests/ is on sys.path via conftest).
"""

import csv

COMMON_MOLECULES = [
    ("ethanol", "CCO"), ("methanol", "CO"), ("propanol", "CCCO"), ("butanol", "CCCCO"),
    ("acetone", "CC(C)=O"), ("acetic_acid", "CC(=O)O"), ("benzene", "c1ccccc1"),
    ("toluene", "Cc1ccccc1"), ("phenol", "Oc1ccccc1"), ("aniline", "Nc1ccccc1"),
    ("benzoic_acid", "OC(=O)c1ccccc1"), ("aspirin", "CC(=O)Oc1ccccc1C(=O)O"),
    ("caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"), ("ibuprofen", "CC(C)Cc1ccc(cc1)C(C)C(=O)O"),
    ("paracetamol", "CC(=O)Nc1ccc(O)cc1"), ("naproxen", "COc1ccc2cc(ccc2c1)C(C)C(=O)O"),
    ("nicotine", "CN1CCCC1c1cccnc1"), ("urea", "NC(N)=O"), ("glycine", "NCC(=O)O"),
    ("alanine", "CC(N)C(=O)O"), ("serine", "NC(CO)C(=O)O"), ("chloroform", "ClC(Cl)Cl"),
    ("dichloromethane", "ClCCl"), ("chlorobenzene", "Clc1ccccc1"), ("bromobenzene", "Brc1ccccc1"),
    ("naphthalene", "c1ccc2ccccc2c1"), ("anthracene", "c1ccc2cc3ccccc3cc2c1"),
    ("pyridine", "c1ccncc1"), ("pyrrole", "c1cc[nH]c1"), ("furan", "c1ccoc1"),
    ("thiophene", "c1ccsc1"), ("indole", "c1ccc2[nH]ccc2c1"), ("quinoline", "c1ccc2ncccc2c1"),
    ("styrene", "C=Cc1ccccc1"), ("cyclohexane", "C1CCCCC1"), ("cyclohexanol", "OC1CCCCC1"),
    ("hexane", "CCCCCC"), ("octane", "CCCCCCCC"), ("decane", "CCCCCCCCCC"),
    ("diethyl_ether", "CCOCC"), ("ethyl_acetate", "CCOC(C)=O"), ("acetonitrile", "CC#N"),
    ("dmso", "CS(C)=O"), ("nitrobenzene", "O=[N+]([O-])c1ccccc1"), ("benzaldehyde", "O=Cc1ccccc1"),
    ("acetophenone", "CC(=O)c1ccccc1"), ("salicylic_acid", "OC(=O)c1ccccc1O"),
    ("dopamine", "NCCc1ccc(O)c(O)c1"), ("serotonin", "NCCc1c[nH]c2ccc(O)cc12"),
    ("metformin", "CN(C)C(=N)N=C(N)N"), ("lidocaine", "CCN(CC)CC(=O)Nc1c(C)cccc1C"),
    ("sulfanilamide", "Nc1ccc(cc1)S(N)(=O)=O"), ("benzocaine", "CCOC(=O)c1ccc(N)cc1"),
    ("amphetamine", "CC(N)Cc1ccccc1"), ("histamine", "NCCc1c[nH]cn1"),
    ("phenylalanine", "NC(Cc1ccccc1)C(=O)O"), ("tyrosine", "NC(Cc1ccc(O)cc1)C(=O)O"),
    ("vanillin", "COc1cc(C=O)ccc1O"), ("menthol", "CC(C)C1CCC(C)CC1O"),
    ("thymol", "Cc1ccc(C(C)C)c(O)c1"), ("eugenol", "COc1cc(CC=C)ccc1O"),
    ("coumarin", "O=c1ccc2ccccc2o1"), ("hydroquinone", "Oc1ccc(O)cc1"),
    ("resorcinol", "Oc1cccc(O)c1"), ("catechol", "Oc1ccccc1O"), ("biphenyl", "c1ccc(cc1)-c1ccccc1"),
    ("diphenyl_ether", "c1ccc(cc1)Oc1ccccc1"), ("limonene", "CC1=CCC(CC1)C(C)=C"),
    ("glycerol", "OCC(O)CO"), ("diazepam", "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21"),
    ("warfarin", "CC(=O)CC(c1ccccc1)c1c(O)c2ccccc2oc1=O"),
]

# Two rows that must be flagged (RDKit cannot parse them), and one duplicate
# of ethanol written differently (same canonical SMILES).
INVALID = [("broken_ring", "C1CC"), ("not_smiles", "hello world")]
DUPLICATE = ("ethanol_again", "OCC")


def task_labels(smiles):
    """Binary labels from RDKit descriptors: a few related 'assays'."""
    from rdkit import Chem
    from rdkit.Chem import Crippen, Descriptors, Lipinski, rdMolDescriptors

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    return {
        "lipophilic": int(Crippen.MolLogP(mol) > 1.5),
        "aromatic": int(rdMolDescriptors.CalcNumAromaticRings(mol) > 0),
        "heavy": int(Descriptors.MolWt(mol) > 120),
        "donor": int(Lipinski.NumHDonors(mol) > 0),
        "nitrogen": int(any(a.GetSymbol() == "N" for a in mol.GetAtoms())),
        "ring": int(rdMolDescriptors.CalcNumRings(mol) > 0),
    }


TASKS = ["lipophilic", "aromatic", "heavy", "donor", "nitrogen", "ring"]


def write_molecule_csv(path, gzip=False):
    """Writes the tiny CSV (with an id column, a numeric non-task column,
    missing cells, two invalid SMILES and a duplicate) and returns its path."""
    rows = []
    entries = COMMON_MOLECULES + [DUPLICATE]
    for i, (name, smiles) in enumerate(entries):
        labels = task_labels(smiles)
        row = {"mol_id": name, "smiles": smiles, "weight_class": str(i % 5)}
        for j, task in enumerate(TASKS):
            # Leave some cells unmeasured, as in real assay tables.
            row[task] = "" if (i + j) % 11 == 0 else str(labels[task])
        rows.append(row)
    for name, smiles in INVALID:
        row = {"mol_id": name, "smiles": smiles, "weight_class": "7"}
        row.update({task: "1" for task in TASKS})
        rows.append(row)
    columns = TASKS + ["mol_id", "smiles", "weight_class"]
    if gzip:
        import gzip as gz
        import io

        buffer = io.StringIO()
        _write(buffer, columns, rows)
        with gz.open(path, "wt") as handle:
            handle.write(buffer.getvalue())
    else:
        with open(path, "w", newline="") as handle:
            _write(handle, columns, rows)
    return path


def _write(handle, columns, rows):
    writer = csv.DictWriter(handle, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
