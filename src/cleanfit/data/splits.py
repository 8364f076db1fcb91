"""Split before you touch: :func:`split`, :class:`Splits` and fit-on-train preprocessing.

A :class:`Splits` is three disjoint, sorted int64 row-index arrays (``train``, ``val``, ``test``)
with a stable fingerprint and a record of how they were made. :meth:`Splits.fit_transform` fits
a transformer on the train rows only and marks it so that the audit can prove it.

>>> import numpy as np
>>> s = split(10, test=0.2, seed=0)
>>> s.train, s.test
(array([0, 1, 3, 4, 5, 6, 7, 9]), array([2, 8]))
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

from cleanfit.data import split_args as args
from cleanfit.data import splitters as _splitters
from cleanfit.errors import DataError, LeakWarning

PART_NAMES: tuple[str, str, str] = ("train", "val", "test")
Part = Literal["train", "val", "test"]


def rows_fingerprint(rows: Any) -> str:
    """sha256 hex of a sorted int64 row-index array's bytes (the fit-on-train record's row id).

    >>> rows_fingerprint([2, 0, 1]) == rows_fingerprint(np.arange(3))
    True
    """
    sorted_rows = np.sort(np.asarray(rows, dtype=np.int64))
    return hashlib.sha256(sorted_rows.astype("<i8").tobytes()).hexdigest()


class Splits:
    """Disjoint ``train`` / ``val`` / ``test`` row indices: sorted int64 arrays, read-only.

    Wrap indices you already have; overlapping parts are an error:

    >>> s = Splits([0, 1, 2, 5], val=[3], test=[4])
    >>> s
    Splits(by='manual', train=4, val=1, test=1, fingerprint='52815e4fe249')
    >>> Splits([0, 1, 2], test=[2, 3])
    Traceback (most recent call last):
    ...
    cleanfit.errors.DataError: Splits: 1 row is in two parts (row 2 in train and test): each row may belong to one part only

    Attributes: ``train``, ``val``, ``test``; ``fingerprint`` (sha256 hex of the three arrays);
    ``by``, ``seed``, ``test_fraction``, ``val_fraction``, ``gap``, ``gap_time`` (how the split was
    made: ``by`` is ``"manual"`` or ``"labels"`` for wrapped indices, and the rest None);
    ``n_rows`` (the row count it was made for, None when unknown); ``n_dropped`` (rows in no part,
    e.g. the gaps of a time split).
    """

    def __init__(self, train: Any, val: Any = (), test: Any = ()) -> None:
        parts = [_index_array(part, name) for part, name in zip((train, val, test), PART_NAMES)]
        _check_disjoint(parts)
        if parts[0].size == 0:
            raise DataError("Splits: the train part is empty; a split needs rows to train on")
        self._train, self._val, self._test = parts
        self.by: str = "manual"
        self.seed: int | None = None
        self.test_fraction: float | None = None
        self.val_fraction: float | None = None
        self.gap: int | None = None
        self.gap_time: Any = None
        self.n_rows: int | None = None

    @classmethod
    def from_labels(cls, labels: Any) -> Splits:
        """Read a column of ``"train"`` / ``"val"`` / ``"test"`` values (one per row).

        >>> Splits.from_labels(["train", "test", "train", "val"]).test
        array([1])
        """
        values = pd.Series(np.asarray(labels, dtype=object).ravel(), dtype=object)
        bad = values[~values.isin(PART_NAMES)]
        if len(bad):
            counts = bad.value_counts(dropna=False)
            shown = ", ".join(
                f"{value!r} ({count} row{'s' if count != 1 else ''})"
                for value, count in counts.head(5).items()
            )
            raise DataError(
                f"Splits.from_labels: {len(bad)} labels are not 'train', 'val' or 'test': {shown}; "
                f"relabel or drop those rows"
            )
        rows = {name: np.flatnonzero((values == name).to_numpy()) for name in PART_NAMES}
        made = cls(rows["train"], rows["val"], rows["test"])
        made.by, made.n_rows = "labels", len(values)
        return made

    @property
    def train(self) -> np.ndarray:
        return self._train

    @property
    def val(self) -> np.ndarray:
        return self._val

    @property
    def test(self) -> np.ndarray:
        return self._test

    @property
    def fingerprint(self) -> str:
        """sha256 hex of the three arrays (little-endian int64), stable across runs and machines."""
        digest = hashlib.sha256()
        for name, part in zip(PART_NAMES, (self._train, self._val, self._test)):
            digest.update(f"{name}:{part.size};".encode())
            digest.update(part.astype("<i8").tobytes())
        return digest.hexdigest()

    @property
    def n_dropped(self) -> int | None:
        if self.n_rows is None:
            return None
        return self.n_rows - self._train.size - self._val.size - self._test.size

    def to_dict(self) -> dict[str, Any]:
        """How the split was made, its sizes and fingerprint, as JSON-friendly values (no indices)."""
        gap_time = self.gap_time
        if isinstance(gap_time, np.timedelta64):
            gap_time = str(pd.Timedelta(gap_time))
        elif isinstance(gap_time, np.generic):
            gap_time = gap_time.item()
        return {
            "by": self.by,
            "seed": self.seed,
            "test": self.test_fraction,
            "val": self.val_fraction,
            "gap": self.gap,
            "gap_time": gap_time,
            "n_rows": self.n_rows,
            "n_train": int(self._train.size),
            "n_val": int(self._val.size),
            "n_test": int(self._test.size),
            "n_dropped": self.n_dropped,
            "fingerprint": self.fingerprint,
        }

    def __repr__(self) -> str:
        how = f"by={self.by!r}" + (f", seed={self.seed}" if self.seed is not None else "")
        sizes = f"train={self._train.size}, val={self._val.size}, test={self._test.size}"
        dropped = f", dropped={self.n_dropped}" if self.n_dropped else ""
        return f"Splits({how}, {sizes}{dropped}, fingerprint={self.fingerprint[:12]!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Splits):
            return NotImplemented
        return self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    @overload
    def take(self, X: Any, part: None = None) -> tuple[Any, Any, Any]: ...
    @overload
    def take(self, X: Any, part: Part) -> Any: ...

    def take(self, X: Any, part: Part | None = None) -> Any:
        """The rows of ``X`` in one part, or ``(X_train, X_val, X_test)`` when ``part`` is None.

        ``X`` may be a NumPy array, a pandas DataFrame/Series (rows by position), a torch tensor,
        a SciPy sparse matrix or a list.

        >>> s = Splits([0, 2], test=[1])
        >>> s.take(np.array([10, 11, 12]))
        (array([10, 12]), array([], dtype=int64), array([11]))
        >>> s.take(["a", "b", "c"], "test")
        ['b']
        """
        self._check_rows(X)
        if part is None:
            return tuple(_take(X, rows) for rows in (self._train, self._val, self._test))
        if part not in PART_NAMES:
            raise DataError(f"Splits.take(part={part!r}): use 'train', 'val', 'test' or None")
        return _take(X, getattr(self, part))

    def fit_transform(self, transformer: Any, X: Any, y: Any = None) -> tuple[Any, Any, Any]:
        """Fit ``transformer`` on the train rows of ``X`` only; return ``(X_train, X_val, X_test)``.

        Works with any scikit-learn style transformer or Pipeline, and ``X`` as a pandas DataFrame
        or NumPy array. ``y`` (optional) is passed to ``fit`` for transformers that use the target.
        An empty part comes back as zero rows with the output's columns. The fitted transformer
        gets ``cleanfit_fit_record_`` (train rows' fingerprint, their count, this split's
        fingerprint), which the leakage audit reads.

        >>> from sklearn.preprocessing import StandardScaler
        >>> X = np.array([[0.0], [2.0], [100.0]])
        >>> s = Splits([0, 1], test=[2])
        >>> scaler = StandardScaler()
        >>> X_train, X_val, X_test = s.fit_transform(scaler, X)
        >>> scaler.mean_, X_val.shape, X_test
        (array([1.]), (0, 1), array([[99.]]))
        >>> scaler.cleanfit_fit_record_["n_rows"]
        2
        """
        if not (callable(getattr(transformer, "fit", None)) and callable(getattr(transformer, "transform", None))):
            raise DataError(
                f"Splits.fit_transform(transformer=...) got {type(transformer).__name__}, which has no "
                f"fit() and transform(): pass a scikit-learn style transformer or Pipeline, e.g. StandardScaler()"
            )
        X_train, X_val, X_test = self.take(X)
        y_train = None if y is None else self.take(y, "train")
        try:
            if hasattr(transformer, "fit_transform"):
                out_train = transformer.fit_transform(X_train, y_train)
            else:
                out_train = transformer.fit(X_train, y_train).transform(X_train)
        except (ValueError, TypeError) as exc:  # e.g. StandardScaler on text
            raise DataError(
                f"Splits.fit_transform: {type(transformer).__name__} could not be fit on the train rows "
                f"({' '.join(str(exc).split())[:200]}); give it the columns it takes (e.g. numbers for a "
                "scaler; encode text first with OneHotEncoder, or use a ColumnTransformer)"
            ) from None
        empty = np.empty(0, dtype=np.int64)
        outs = [
            transformer.transform(part) if _n_rows(part) else _take(out_train, empty)
            for part in (X_val, X_test)
        ]
        transformer.cleanfit_fit_record_ = {
            "rows_fingerprint": rows_fingerprint(self._train),
            "n_rows": int(self._train.size),
            "splits_fingerprint": self.fingerprint,
        }
        return out_train, outs[0], outs[1]

    def _check_rows(self, X: Any) -> None:
        if isinstance(X, (str, bytes)) or not (hasattr(X, "__len__") or hasattr(X, "shape")):
            raise DataError(
                f"Splits got {type(X).__name__} {X!r:.40} where data belongs: pass the rows themselves "
                f"(an array, DataFrame, Series, tensor or list), e.g. df['label'] rather than 'label'"
            )
        n = _n_rows(X)
        if self.n_rows is not None and n != self.n_rows:
            raise DataError(
                f"the data has {n} rows but this split was made for {self.n_rows}: split the same data "
                f"you transform"
            )
        highest = max((int(p[-1]) for p in (self._train, self._val, self._test) if p.size), default=-1)
        if highest >= n:
            raise DataError(
                f"the split uses row {highest} but the data has only {n} rows: split the same data you "
                f"transform"
            )


def _index_array(part: Any, name: str) -> np.ndarray:
    values = part.to_numpy() if isinstance(part, (pd.Series, pd.Index)) else np.asarray(part)
    if values.size == 0:
        return np.empty(0, dtype=np.int64)
    if values.ndim != 1:
        raise DataError(f"Splits: {name} must be a 1-D array of row indices, got shape {values.shape}")
    if values.dtype.kind == "b":
        raise DataError(f"Splits: {name} is a boolean mask; pass row indices, e.g. np.flatnonzero(mask)")
    if values.dtype.kind not in "iu":
        raise DataError(f"Splits: {name} must hold integer row indices, got {values.dtype}")
    values = np.sort(values.astype(np.int64))
    if values[0] < 0:
        raise DataError(f"Splits: {name} holds negative row index {values[0]}; use positions 0 .. n-1")
    repeated = values[1:][values[1:] == values[:-1]]
    if repeated.size:
        raise DataError(f"Splits: {name} lists {repeated.size} row(s) twice (e.g. row {repeated[0]}); list each row once")
    values.flags.writeable = False
    return values


def _check_disjoint(parts: list[np.ndarray]) -> None:
    every = np.concatenate(parts)
    owner = np.repeat(np.arange(3), [p.size for p in parts])
    order = np.argsort(every, kind="stable")
    every, owner = every[order], owner[order]
    twice = np.flatnonzero(every[1:] == every[:-1])
    if twice.size:
        row, first, second = every[twice[0]], PART_NAMES[owner[twice[0]]], PART_NAMES[owner[twice[0] + 1]]
        count = np.unique(every[twice]).size
        raise DataError(
            f"Splits: {count} row{'s are' if count != 1 else ' is'} in two parts (row {row} in {first} "
            f"and {second}): each row may belong to one part only"
        )


def _n_rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape else len(X)


def _take(X: Any, rows: np.ndarray) -> Any:
    if isinstance(X, (pd.DataFrame, pd.Series)):
        return X.iloc[rows]
    if isinstance(X, (list, tuple)):
        return [X[i] for i in rows]
    if type(X).__module__.startswith("torch"):
        import torch  # already loaded (X is a torch object); split() and the audit never load it for other data

        return X[torch.from_numpy(rows.copy())]
    return X[rows]


def split(
    n_or_data: Any,
    *,
    test: float = 0.2,
    val: float = 0.0,
    by: str = "random",
    y: Any = None,
    groups: Any = None,
    time: Any = None,
    gap: int = 0,
    gap_time: Any = None,
    seed: int = 0,
) -> Splits:
    """Split rows into train / val / test before anything looks at them.

    ``n_or_data`` is a row count or the data (anything with ``len()``; with a pandas DataFrame,
    ``y``, ``groups`` and ``time`` may be column names). ``test`` and ``val`` are fractions in
    [0, 1) summing below 1; a part gets ``ceil(fraction * n)`` rows (of groups for ``by="group"``).

    - ``by="random"``: a seeded shuffle (scikit-learn's ``train_test_split``).
    - ``by="stratify"``: every class of ``y`` in every part, in proportion.
    - ``by="group"``: whole ``groups`` per part (``GroupShuffleSplit``); fractions count groups.
    - ``by="time"``: ordered by ``time``, train < val < test with equal times in one part;
      ``gap=k`` drops k rows before each later part, ``gap_time=d`` drops earlier rows within d
      of its first time (a timedelta for datetimes, else a number in the column's units).

    The same arguments and ``seed`` give the same split; test is chosen first, so adding ``val``
    leaves a random or group split's test part unchanged.

    >>> s = split(10, test=0.2, val=0.2, seed=0)
    >>> s.train, s.val, s.test
    (array([0, 1, 3, 4, 5, 7]), array([6, 9]), array([2, 8]))
    >>> t = np.array([5, 1, 2, 3, 4, 9, 8, 7, 6, 0])
    >>> s = split(10, by="time", time=t, test=0.2, gap=1)
    >>> np.sort(t[s.train]), np.sort(t[s.test])  # time 7 is the gap
    (array([0, 1, 2, 3, 4, 5, 6]), array([8, 9]))
    >>> s
    Splits(by='time', seed=0, train=7, val=0, test=2, dropped=1, fingerprint='f4be74efdb3b')
    """
    n = args.row_count(n_or_data)
    by = args.check_by(by)
    test, val = args.check_fractions(test, val)
    seed = args.check_seed(seed)
    gap = args.check_gap(gap, gap_time, by)
    data = n_or_data if isinstance(n_or_data, pd.DataFrame) else None
    if groups is not None and by in ("random", "stratify"):
        warnings.warn(
            f"split(by={by!r}) ignores groups=: rows of one entity can land in two parts, which leaks; "
            "use by='group' to keep each entity in one part",
            LeakWarning,
            stacklevel=2,
        )
    if by == "random":
        parts = _splitters.random_parts(n, test, val, seed)
    elif by == "stratify":
        codes, classes = args.codes(args.column(y, "y", data, n, by), "y")
        parts = _splitters.stratified_parts(codes, classes, test, val, seed)
    elif by == "group":
        codes, uniques = args.codes(args.column(groups, "groups", data, n, by), "groups")
        parts = _splitters.group_parts(codes, len(uniques), test, val, seed)
    else:
        t = args.time_values(args.column(time, "time", data, n, by))
        gap_time = args.gap_time_value(gap_time, t)
        parts = _splitters.time_parts(t, test, val, gap, gap_time)
    made = Splits(*parts)
    made.by, made.seed, made.n_rows = by, seed, n
    made.test_fraction, made.val_fraction = test, val
    made.gap, made.gap_time = gap, gap_time
    return made
