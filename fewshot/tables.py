"""Reading CSV files into tables of strings without shifting or losing cells.

Every CSV that fewshot reads from a user (uploads, SMILES files, ratings and
candidate lists, MoleculeNet-style assay files) goes through `read_strings`.
Each cell stays a string, so later checks can name the exact value that is
wrong.

It also guards against a pandas habit. When the first data row has one field
more than the header, as in files whose rows end in a comma, pandas makes the
first column the index without a word, and every value moves one column to
the left. Here, trailing cells that are all empty are dropped. If any of them
holds a value, the error names its row.

`parse_item_id` reads one item-id cell, for every table that holds item ids
(uploaded ratings and candidates, `fewshot.recsys.recommend`).
"""

import decimal
import io
import pathlib
import warnings

# Item ids are 64-bit integers.
_INT64_LIMIT = 2**63


def parse_item_id(value):
    """Reads one item id: ``(id, "")``, or ``(None, reason)`` when it is not one.

    Integers in any notation that names one exactly (``"42"``, ``" 42 "``,
    ``"42.0"``, ``"4.2e1"``) are ids; long digit strings are read exactly,
    not through a float.

    Example:

    >>> parse_item_id(" 42 "), parse_item_id("4.2e1"), parse_item_id("1.5")
    ((42, ''), (42, ''), (None, "item id '1.5' is not an integer"))
    """
    text = str(value).strip()
    if not text:
        return None, "item id is empty"
    try:
        # Decimal reads "42.0" and "4.2e1" exactly (a float would round long
        # ids), and refuses Python-only forms such as "1_000".
        number = decimal.Decimal(text) if "_" not in text else None
    except decimal.InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number != number.to_integral_value():
        return None, f"item id {text[:40]!r} is not an integer"
    if abs(number) >= _INT64_LIMIT:
        return None, f"item id {text[:40]!r} is too large (ids are 64-bit integers)"
    return int(number), ""


def read_strings(source, name):
    """Reads a CSV file or text into a `pandas.DataFrame` of strings.

    Blank lines are skipped and empty cells stay empty strings. Rows that end
    in one extra, empty field (a trailing comma) are read as if it were not
    there.

    Args:
        source: a path (`str` or `pathlib.Path`; `.gz` and other compressions
            pandas knows are read too) or a `io.StringIO` of CSV text.
        name: what the file is, used in messages (for example
            ``"query file 'q.csv'"``).

    Returns:
        A `pandas.DataFrame` with a `RangeIndex` and string cells.

    Raises:
        ValueError: the file is empty, is not UTF-8 text, cannot be read, is
            not a readable CSV table, names a column twice, or a row has more
            fields than the header.

    Example:

    >>> import io
    >>> from fewshot.tables import read_strings
    >>> read_strings(io.StringIO("smiles,name\\nCCO,ethanol,\\n"), "query").to_dict("list")
    {'smiles': ['CCO'], 'name': ['ethanol']}
    """
    _check_header(source, name)
    frame = _read(source, name)
    if _default_index(frame):
        return frame
    # The first data row had more fields than the header.
    width = len(frame.columns) + frame.index.nlevels
    raw = _read(source, name, header=None, names=list(range(width)), skip_first=True)
    extra = raw.iloc[:, len(frame.columns) :].fillna("")
    filled = extra.apply(lambda column: column.str.strip() != "").any(axis=1)
    if filled.any():
        row = int(filled.to_numpy().argmax())
        values = [value for value in raw.iloc[row].tolist() if isinstance(value, str)]
        raise ValueError(
            f"The {name} has more fields in data row {row + 1} than in its header "
            f"({len(values)} against {len(frame.columns)}: {', '.join(frame.columns)}), "
            f"so its values cannot be matched to columns. Received row: {values}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns that index_col=False drops cells: they are empty
        return _read(source, name, index_col=False)


def _check_header(source, name):
    """Refuses a header that names a column twice (pandas would rename the
    second ``x.1`` and read it as another column)."""
    header = _read(source, name, header=None, nrows=1)
    names = [str(cell).strip() for cell in header.iloc[0].tolist()] if len(header) else []
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"The {name} names a column more than once in its header: {repeated}. "
            f"Give every column its own name. Received header: {names}"
        )


def _default_index(frame):
    import pandas as pd

    return isinstance(frame.index, pd.RangeIndex)


def _read(source, name, skip_first=False, **options):
    import pandas as pd

    if isinstance(source, io.StringIO):
        source = io.StringIO(source.getvalue())
    elif not isinstance(source, (str, pathlib.Path)):
        raise TypeError(
            f"Expected the {name} as a path or io.StringIO. Received: "
            f"{type(source).__name__}"
        )
    try:
        return pd.read_csv(
            source,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
            skiprows=[0] if skip_first else None,
            **options,
        )
    except pd.errors.EmptyDataError:
        raise ValueError(f"The {name} is empty: it has no header row and no data.") from None
    except UnicodeDecodeError:
        raise ValueError(f"The {name} is not UTF-8 text. Save it as a UTF-8 CSV file.") from None
    except (EOFError, OSError) as error:  # a damaged .gz, an unreadable file
        raise ValueError(f"The {name} could not be read: {error}") from None
    except (pd.errors.ParserError, ValueError) as error:
        text = str(error).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        raise ValueError(f"The {name} is not a readable CSV table: {first}") from None
