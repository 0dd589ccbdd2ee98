"""Reading and validating user uploads: CSV tables and images.

Everything a person uploads to `fewshot app` (or passes to another front end)
goes through these functions before it reaches a model. They only parse
bytes as text (CSV) or as pixels (PNG, JPEG, GIF, BMP); nothing is ever
unpickled or executed. Each problem raises `UploadError` (a `ValueError`)
with one readable sentence naming the file and what was received, and rows
with bad values are flagged in a report (``valid``, ``error`` columns), not
dropped.

Example:

>>> from fewshot.uploads import read_csv, regression_columns, numeric_rows
>>> frame = read_csv(b"x,y\\n1.0,2.0\\n2.0,oops\\n", name="support.csv")
>>> features, label = regression_columns(frame, input_dim=1)
>>> table = numeric_rows(frame, features, label, name="support.csv")
>>> table.x.shape, table.valid.tolist()
((1, 1), [True, False])
>>> table.report["error"].tolist()
['', "column 'y': 'oops' is not a number"]
"""

import dataclasses
import io
import math

import numpy as np

from fewshot.tables import parse_item_id, read_strings

#: Largest upload accepted, in bytes (CSV and images alike).
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
#: Names recognised as the label column of a regression table, in order.
LABEL_NAMES = ("y", "target", "label", "value")
#: Names recognised as the class column of a classification table, in order.
CLASS_LABEL_NAMES = ("label", "class", "y", "target")
#: Columns the app itself writes into tables; ignored as features.
REPORT_COLUMNS = ("valid", "error", "prediction", "score", "rank")
#: File name endings of the image formats `read_image` decodes (which it recognises by content).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
_IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
}


class UploadError(ValueError):
    """An upload that cannot be used, with a message meant for its author."""


@dataclasses.dataclass
class NumericRows:
    """The numeric content of a table, one entry per input row.

    Attributes:
        x: ``float32 [V, features]``, the valid rows only.
        y: ``float32 [V, 1]`` for the valid rows, or None without a label.
        valid: ``bool [N]``, one flag per input row.
        report: the input table (every row, in order) with ``valid`` and
            ``error`` columns added.
    """

    x: np.ndarray
    y: object
    valid: np.ndarray
    report: object

    @property
    def num_valid(self):
        return int(self.valid.sum())


def _size_text(size):
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def check_size(data, name, max_bytes=MAX_UPLOAD_BYTES):
    """Raises `UploadError` for an empty upload or one over `max_bytes`."""
    size = len(data)
    if size == 0:
        raise UploadError(f"The file {name!r} is empty.")
    if size > max_bytes:
        raise UploadError(
            f"The file {name!r} is too large: {_size_text(size)}; the limit is "
            f"{_size_text(max_bytes)}. A few examples are all fewshot needs."
        )


def read_csv(data, name="upload", max_bytes=MAX_UPLOAD_BYTES):
    """Parses an uploaded CSV (bytes or text) into a table of strings.

    Every cell stays a string (nothing is converted or guessed), so later
    checks can name the exact value that is wrong. Blank lines are skipped.

    Args:
        data: the file's bytes, or pasted text.
        name: the file name, used in messages.
        max_bytes: the size limit.

    Returns:
        A `pandas.DataFrame` of strings with at least one row.

    Raises:
        UploadError: the upload is empty, too large, not text, not a
            readable CSV, has no header row (its first row is all numbers),
            names a column twice, or has a header but no rows.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray)):
        raise UploadError(
            f"Expected the contents of {name!r} as bytes or text. Received: "
            f"{type(data).__name__}"
        )
    data = bytes(data)
    check_size(data, name, max_bytes)
    if not data.strip():
        raise UploadError(f"The file {name!r} is empty (only blank space).")
    if b"\x00" in data:
        raise UploadError(
            f"The file {name!r} is not a text CSV file (it holds binary data). "
            "Upload a comma-separated text file with a header row."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError(
            f"The file {name!r} is not UTF-8 text. Save it as a UTF-8 CSV file."
        ) from None
    try:
        frame = read_strings(io.StringIO(text), f"file {name!r}")
    except ValueError as error:
        raise UploadError(str(error)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    unnamed = [c for c in frame.columns if c.startswith("Unnamed:") or not c]
    if unnamed:
        raise UploadError(
            f"The file {name!r} has columns without a name in its header row. "
            f"Its columns: {list(frame.columns)}"
        )
    if _looks_like_data(frame.columns):
        raise UploadError(
            f"The file {name!r} has no header row: its first row is all numbers "
            f"({', '.join(frame.columns)}), so it would be read as the column names "
            "and lost. Add a first row that names the columns."
        )
    if len(frame) == 0:
        raise UploadError(
            f"The file {name!r} has a header ({', '.join(frame.columns)}) but no rows."
        )
    return frame.reset_index(drop=True)


def _looks_like_data(columns):
    """Whether a header is all numbers, other than pandas' own 0, 1, ..."""
    columns = list(columns)
    if columns == [str(i) for i in range(len(columns))]:
        return False  # the names pandas gives a headerless array's columns
    try:
        [float(c) for c in columns]
    except ValueError:
        return False
    return True


def regression_columns(frame, input_dim, label_column=None, require_label=True, name="upload"):
    """Chooses the feature and label columns of a regression table.

    The label is `label_column`, or else the first column named one of
    `LABEL_NAMES` (any case). The features are the remaining columns (minus
    report columns such as ``valid``), in file order, and their number must
    equal the model's `input_dim`.

    Args:
        frame: a table from `read_csv`.
        input_dim: the number of inputs the model takes.
        label_column: the label column's name, or None to find it.
        require_label: whether a label column must exist (support sets).
        name: the file name, used in messages.

    Returns:
        ``(feature_columns, label_column_or_None)``.

    Raises:
        UploadError: the label column is missing, or the number of feature
            columns does not match the model.
    """
    return _columns(frame, input_dim, LABEL_NAMES, label_column, require_label, name)


def classification_columns(frame, input_dim, label_column=None, require_label=True, name="upload"):
    """Chooses the feature and class-label columns of a classification table.

    As `regression_columns`, with the label found among `CLASS_LABEL_NAMES`
    (``label``, ``class``, ``y``, ``target``; any case).

    Returns:
        ``(feature_columns, label_column_or_None)``.

    Raises:
        UploadError: the label column is missing, or the number of feature
            columns does not match the model.
    """
    return _columns(frame, input_dim, CLASS_LABEL_NAMES, label_column, require_label, name)


def _columns(frame, input_dim, label_names, label_column, require_label, name):
    columns = list(frame.columns)
    if label_column is None:
        lowered = {c.lower(): c for c in reversed(columns)}
        label_column = next((lowered[n] for n in label_names if n in lowered), None)
    elif label_column not in columns:
        raise UploadError(
            f"The file {name!r} has no column {label_column!r}. Its columns: {columns}"
        )
    if label_column is None and require_label:
        raise UploadError(
            f"The file {name!r} has no label column: name the column to learn "
            f"{' or '.join(repr(n) for n in label_names)}. Its columns: {columns}"
        )
    features = [c for c in columns if c != label_column and c.lower() not in REPORT_COLUMNS]
    if len(features) != input_dim:
        expected = (
            "one input column (for example 'x')"
            if input_dim == 1
            else f"{input_dim} input columns"
        )
        label_text = f" besides the label {label_column!r}" if label_column else ""
        raise UploadError(
            f"The model takes {expected}{label_text}; the file {name!r} has "
            f"{len(features)}: {features}."
        )
    return features, label_column


class _TooLarge(ValueError):
    """A finite number that float32 (what the models compute in) cannot hold."""


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _number(text):
    value = float(str(text).strip())
    if not math.isfinite(value):
        raise ValueError(value)
    if abs(value) > _FLOAT32_MAX:
        raise _TooLarge(value)
    return value


def numeric_rows(frame, feature_columns, label_column=None, name="upload"):
    """Converts the chosen columns to numbers, flagging rows that fail.

    Args:
        frame: a table from `read_csv`.
        feature_columns: the input columns, in the model's order.
        label_column: the label column, or None (query sets).
        name: the file name, used in messages.

    Returns:
        A `NumericRows`: arrays of the valid rows and a report of all rows.

    Raises:
        UploadError: a named column does not exist.
    """
    columns = list(feature_columns) + ([label_column] if label_column else [])
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UploadError(
            f"The file {name!r} is missing the column(s) {missing}. Its columns: "
            f"{list(frame.columns)}"
        )
    n = len(frame)
    values = np.zeros((n, len(columns)), dtype=np.float64)
    valid = np.ones(n, dtype=bool)
    errors = [""] * n
    for j, column in enumerate(columns):
        for i, text in enumerate(frame[column].tolist()):
            if not valid[i]:
                continue
            try:
                values[i, j] = _number(text)
            except _TooLarge:
                valid[i] = False
                errors[i] = (
                    f"column {column!r}: {str(text).strip()[:40]!r} is too large "
                    f"(beyond ±{_FLOAT32_MAX:.1e}, the float32 range)"
                )
            except (TypeError, ValueError):
                valid[i] = False
                shown = str(text).strip()
                errors[i] = (
                    f"column {column!r}: empty"
                    if not shown
                    else f"column {column!r}: {shown[:40]!r} is not a number"
                )
    report = frame.copy()
    report["valid"] = valid
    report["error"] = errors
    k = len(feature_columns)
    x = values[valid, :k].astype(np.float32)
    y = values[valid, k:].astype(np.float32) if label_column else None
    return NumericRows(x=x, y=y, valid=valid, report=report)


def check_enough(num_valid, minimum, name="upload", what="valid examples"):
    """Raises `UploadError` when fewer than `minimum` usable rows remain."""
    if num_valid < minimum:
        raise UploadError(
            f"Too few {what} in {name!r} for this model: {num_valid} usable, at "
            f"least {minimum} needed."
        )


@dataclasses.dataclass
class ClassRows:
    """A labelled classification table: numbers, integer labels, class names.

    Attributes:
        x: ``float32 [V, features]``, the valid rows only.
        y: ``int32 [V]``, each valid row's class as an index into `classes`.
        classes: the class names of the valid rows, in label order (label
            ``i`` is ``classes[i]``): sorted by value when every name is a
            number, else alphabetically.
        valid: ``bool [N]``, one flag per input row.
        report: the input table (every row, in order) with ``valid`` and
            ``error`` columns added.
        labels: the label text of every input row (``[N]``, valid or not).
    """

    x: np.ndarray
    y: np.ndarray
    classes: list
    valid: np.ndarray
    report: object
    labels: list

    @property
    def num_valid(self):
        return int(self.valid.sum())


def class_rows(frame, feature_columns, label_column, name="upload"):
    """Converts a labelled table to numbers and class indices ``0..N-1``.

    Feature cells must be finite numbers (``nan``, ``inf`` and text are
    flagged) and labels non-empty; other rows are flagged (``valid``,
    ``error``), not dropped. Labels may be any text (``cat``, ``3``,
    ``yes``): they become indices ``0..N-1`` and ``classes`` maps them
    back. `check_classes` then says whether the classes suit a model.

    Args:
        frame: a table from `read_csv`.
        feature_columns: the input columns, in the model's order.
        label_column: the class column.
        name: the file name, used in messages.

    Returns:
        A `ClassRows`.

    Raises:
        UploadError: a named column does not exist.

    Example:

    >>> from fewshot.uploads import read_csv, class_rows
    >>> frame = read_csv(b"a,b,label\\n1,2,cat\\n3,4,dog\\n5,nan,dog\\n6,7,dog\\n")
    >>> rows = class_rows(frame, ["a", "b"], "label")
    >>> rows.classes, rows.y.tolist(), rows.valid.tolist()
    (['cat', 'dog'], [0, 1, 1], [True, True, False, True])
    """
    if label_column not in frame.columns:
        raise UploadError(
            f"The file {name!r} is missing the column {label_column!r}. Its columns: "
            f"{list(frame.columns)}"
        )
    numeric = numeric_rows(frame, feature_columns, None, name=name)
    valid = numeric.valid.copy()
    errors = list(numeric.report["error"])
    labels = [str(v).strip() for v in frame[label_column].tolist()]
    for i, label in enumerate(labels):
        if valid[i] and not label:
            valid[i] = False
            errors[i] = f"column {label_column!r}: the label is empty"
    report = numeric.report
    report["valid"] = valid
    report["error"] = errors
    rows = np.flatnonzero(valid)
    classes = sorted({labels[i] for i in rows}, key=_class_order)
    index = {c: k for k, c in enumerate(classes)}
    y = np.array([index[labels[i]] for i in rows], np.int32)
    x = numeric.x[valid[numeric.valid]]
    return ClassRows(x=x, y=y, classes=classes, valid=valid, report=report, labels=labels)


def check_classes(rows, name="upload", min_per_class=1, num_classes=None):
    """Raises `UploadError` unless the classes of `rows` suit the model.

    Args:
        rows: a `ClassRows`.
        name: the file name, used in messages.
        min_per_class: usable rows each class needs (a class whose rows
            are all flagged has 0).
        num_classes: the number of classes the model needs (a fixed-size
            output layer), or None for any number of at least 2.
    """
    usable = [rows.labels[i] for i in np.flatnonzero(rows.valid)]
    present = sorted({label for label in rows.labels if label}, key=_class_order)
    short = {c: usable.count(c) for c in present if usable.count(c) < min_per_class}
    if short:
        listed = ", ".join(f"{c!r}: {n}" for c, n in short.items())
        raise UploadError(
            f"Too few usable examples per class in {name!r}: every class needs at least "
            f"{min_per_class}. Received: {listed} (rows flagged in the `error` column do not count)."
        )
    if len(rows.classes) < 2:
        raise UploadError(
            f"The file {name!r} has {len(rows.classes)} class(es) with usable rows; a classifier "
            f"needs at least 2. Received: labels {rows.classes}."
        )
    if num_classes is not None and len(rows.classes) != num_classes:
        raise UploadError(
            f"This model was meta-trained {num_classes}-way: it needs exactly {num_classes} "
            f"classes. Received: {len(rows.classes)} in {name!r}: {rows.classes}."
        )


def _class_order(name):
    """Numbers by value (``2`` before ``10``), then text alphabetically."""
    try:
        return (0, _number(name), name)
    except (TypeError, ValueError):
        return (1, 0.0, name)


def read_image(data, name="upload", max_bytes=MAX_UPLOAD_BYTES, size=None, grayscale=True):
    """Decodes an uploaded PNG, JPEG, GIF or BMP image into an array.

    The format is recognised by its leading bytes, never by the file name,
    and decoded by Pillow (pixels only).

    Args:
        data: the file's bytes.
        name: the file name, used in messages.
        max_bytes: the size limit.
        size: optional ``(height, width)`` to resize to.
        grayscale: convert to one channel.

    Returns:
        ``float32 [H, W, C]`` with values in [0, 1].

    Raises:
        UploadError: not bytes, empty, too large, or not a readable image.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UploadError(
            f"Expected the contents of {name!r} as bytes. Received: {type(data).__name__}"
        )
    data = bytes(data)
    check_size(data, name, max_bytes)
    kind = next((k for sig, k in _IMAGE_SIGNATURES.items() if data.startswith(sig)), None)
    if kind is None:
        raise UploadError(
            f"The file {name!r} is not an image: expected PNG, JPEG, GIF or BMP."
        )
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = _flatten(image).convert("L" if grayscale else "RGB")
            if size is not None:
                image = image.resize((int(size[1]), int(size[0])))
            array = np.asarray(image, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise UploadError(
            f"The file {name!r} looks like a {kind} image but cannot be decoded "
            f"({type(error).__name__})."
        ) from None
    return array[..., None] if array.ndim == 2 else array


def _flatten(image):
    """An 8-bit image without transparency, as the picture looks on a white page.

    Transparent pixels are composited onto white (drawing apps store them as
    black, which `convert` would keep, hiding black strokes), and 16- or
    32-bit grayscale is scaled to 8 bits (`convert` would clip it).
    """
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        pixels = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(pixels / 257.0), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image


def class_from_name(name):
    """The class of an image from its file name: ``class/x.png`` or ``class_x.png``.

    The folder (when the name has one), else the text before the first
    ``_``; ``a_1.png`` and ``a/1.png`` are both class ``a``.

    Raises:
        UploadError: the name gives no class.
    """
    parts = [p for p in str(name).replace("\\", "/").split("/") if p]
    if len(parts) >= 2:
        return parts[-2]
    stem = parts[-1].rsplit(".", 1)[0] if parts else ""
    if "_" in stem and stem.split("_", 1)[0]:
        return stem.split("_", 1)[0]
    raise UploadError(
        f"Cannot tell the class of {name!r}: name labelled images CLASS_anything.png "
        "(for example cat_1.png) or put them in a folder named after the class."
    )


@dataclasses.dataclass
class ImageRows:
    """Decoded images, one report row per uploaded file.

    Attributes:
        x: ``float32 [V, H, W, C]``, the valid files only.
        classes: the class name of each valid file (labelled sets), or None.
        valid: ``bool [N]``, one flag per file.
        report: a table with ``file``, ``class``, ``valid``, ``error``.
    """

    x: np.ndarray
    classes: object
    valid: np.ndarray
    report: object

    @property
    def num_valid(self):
        return int(self.valid.sum())


def read_images(files, input_shape, labelled=True, max_bytes=MAX_UPLOAD_BYTES):
    """Decodes uploaded images for a model, flagging files that fail.

    Args:
        files: ``(name, bytes)`` pairs.
        input_shape: the model's ``(height, width, channels)``; images are
            resized to it and converted to 1 or 3 channels.
        labelled: read each file's class from its name (`class_from_name`).
        max_bytes: the size limit per file.

    Returns:
        An `ImageRows`; a file that is not an image, is empty or too large,
        or has no class is kept in the report with its reason.

    Raises:
        UploadError: no files, or a model input that is not an image.
    """
    import pandas as pd

    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise UploadError(
            "This model does not take images (height, width, 1 or 3 channels). "
            f"Its input shape: {tuple(input_shape)}"
        )
    if not files:
        raise UploadError("No image files were uploaded.")
    arrays, classes, valid, rows = [], [], [], []
    for name, data in files:
        label, error = "", ""
        try:
            if labelled:
                label = class_from_name(name)
            image = read_image(
                data, name, max_bytes, size=input_shape[:2], grayscale=input_shape[-1] == 1
            )
            arrays.append(image)
            classes.append(label)
            valid.append(True)
        except UploadError as problem:
            error = str(problem)
            valid.append(False)
        rows.append({"file": name, "class": label, "valid": not error, "error": error})
    x = np.stack(arrays).astype(np.float32) if arrays else np.zeros((0, *input_shape), np.float32)
    return ImageRows(
        x=x, classes=classes if labelled else None, valid=np.array(valid, bool),
        report=pd.DataFrame(rows, columns=["file", "class", "valid", "error"]),
    )


#: Names recognised as the item column of a ratings or candidates table, in order.
ITEM_NAMES = ("item", "item_id", "movie_id", "movieid", "itemid")
#: The rating scale of a ratings table (MovieLens: 1 to 5 stars).
RATING_SCALE = (1.0, 5.0)


def item_ratings(frame, name="upload", need_rating=True, scale=RATING_SCALE):
    """Checks a table of item ids (and ratings), flagging rows that fail.

    A user's ratings need an item column (one of `ITEM_NAMES`, any case)
    and a ``rating`` column; a candidates list needs the item column only.
    Item ids must be integers and ratings numbers within `scale`. Rows that
    fail are kept in the report with their reason (``valid``, ``error``);
    an item named again is such a row (its first row is the one used).

    Args:
        frame: a table from `read_csv`.
        name: the file name, used in messages.
        need_rating: require a ``rating`` column (a ratings table).
        scale: ``(low, high)`` of the rating scale.

    Returns:
        ``(report, item_column)``: the table with ``valid`` and ``error``
        columns, and the name of its item column.

    Raises:
        UploadError: a column is missing, or no row at all can be used.

    Example:

    >>> from fewshot.uploads import read_csv, item_ratings
    >>> frame = read_csv(b"item_id,rating\\n50,5\\n181,seven\\n7,9\\n", name="mine.csv")
    >>> report, column = item_ratings(frame, name="mine.csv")
    >>> column, report["valid"].tolist()
    ('item_id', [True, False, False])
    >>> report["error"].tolist()[1:]
    ["rating 'seven' is not a number", 'rating 9 is outside the scale 1 to 5']
    """
    columns = list(frame.columns)
    lowered = {c.lower(): c for c in reversed(columns)}
    item_column = next((lowered[n] for n in ITEM_NAMES if n in lowered), None)
    if item_column is None:
        raise UploadError(
            f"The file {name!r} has no item column: name the column of item ids "
            f"{' or '.join(repr(n) for n in ITEM_NAMES[:3])}. Its columns: {columns}"
        )
    rating_column = lowered.get("rating")
    if need_rating and rating_column is None:
        raise UploadError(
            f"The file {name!r} has no 'rating' column (the user's rating of each "
            f"item, {scale[0]:g} to {scale[1]:g}). Its columns: {columns}"
        )
    low, high = scale
    valid, errors = [], []
    first_row = {}  # item id -> the data row (1-based) that names it first
    for i in range(len(frame)):
        item, error = parse_item_id(frame[item_column].iloc[i])
        if not error:
            if item in first_row:
                error = f"item {item} is already in row {first_row[item]} (one row per item)"
            else:
                first_row[item] = i + 1
        if not error and need_rating:
            text = str(frame[rating_column].iloc[i]).strip()
            try:
                rating = _number(text)
                if not low <= rating <= high:
                    error = f"rating {rating:g} is outside the scale {low:g} to {high:g}"
            except (TypeError, ValueError):
                error = f"rating {text[:40]!r} is not a number" if text else "rating is empty"
        valid.append(not error)
        errors.append(error)
    report = frame.copy()
    report["valid"] = np.array(valid, bool)
    report["error"] = errors
    if not any(valid):
        what = "ratings" if need_rating else "item ids"
        raise UploadError(
            f"None of the {len(frame)} row(s) of {name!r} can be used as {what}; "
            f"the first: {errors[0]}."
        )
    return report, item_column
