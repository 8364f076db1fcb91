"""Checks ``duplicates`` and ``near-duplicates``: the same example on both sides of the split.

Exact duplicates are found by hashing rows; near-duplicates by locality-sensitive hashing (rows
projected on a few random directions and snapped to a grid; a bucket's candidates are then verified
by their actual normalised distance). Both are compared with the overlap a random split of the same
data would produce by chance, so natural collisions (low-cardinality data, repeated measurements) are
reported as information, not as leakage.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cleanfit.auditing.inputs import PART_NAMES, TRAIN, AuditData, numeric_columns, plural
from cleanfit.auditing.overlap import (
    Overlap,
    chance_overlap,
    combine,
    hash_column,
    hash_rows,
    observed_overlap,
    p_value,
    part_pairs,
)
from cleanfit.auditing.rawcopies import check_raw_copies
from cleanfit.auditing.twins import check_rare_twins
from cleanfit.findings import SEVERITIES, Finding

# near-duplicates: rows whose root-mean-square difference, in standard deviations per column, is at most this
NEAR = 0.02
_CELL = 4 * NEAR
_TABLES = 4
_PROJECTIONS = 8
_PERMUTATIONS = 3
_CHUNK = 100_000
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def exact_keys(data: AuditData) -> tuple[np.ndarray, int]:
    """``(inverse, n_keys)``: each row's exact-duplicate key id over the feature columns (cached)."""
    if "exact" not in data.cache:
        h = hash_rows(data.X, data.features)
        _, inv = np.unique(h, return_inverse=True)
        data.cache["exact"] = (inv.astype(np.int64), int(inv.max()) + 1)
        data.cache["exact_hash"] = h
    return data.cache["exact"]


def check_duplicates(data: AuditData) -> list[Finding]:
    assert data.part is not None
    if not data.features:
        return []
    inv, n_keys = exact_keys(data)
    overlaps = []
    conflicts = 0
    for early, late in part_pairs(data.part):
        mask = observed_overlap(inv, data.part, early, late, n_keys)
        mean, var = chance_overlap(inv, data.part, early, late, n_keys)
        obs = int(mask.sum())
        overlaps.append(Overlap(PART_NAMES[early], PART_NAMES[late], obs, mean, p_value(obs, mean, var), int(np.sum(data.part == late))))
        if data.y is not None and early == TRAIN and obs:
            conflicts += _conflicting_labels(data, mask)
    return exact_finding(overlaps, conflicts, lambda: _natural(data), lambda: check_rare_twins(data, _with_label(data)))


def exact_finding(overlaps: list[Overlap], conflicts: int, natural: Callable[[], bool],
                  rare: Callable[[], dict[str, Any] | None] | None = None) -> list[Finding]:
    """The ``duplicates`` finding (if any) for the exact-duplicate ``overlaps`` of each pair of parts, the
    held-out rows whose features repeat a train row's with another label (``conflicts``), and, asked only
    when the overlap is about chance: ``rare``, the rarity of the shared values (``twins.check_rare_twins``:
    pairs equal on every column against those chance gives), and ``natural``, whether rows of this data
    collide naturally. Both the in-memory and the out-of-core audit state their finding with it.

    >>> exact_finding([Overlap("train", "test", 0, 0.4, 1.0, 50)], 0, lambda: True)
    []
    >>> f, = exact_finding([Overlap("train", "test", 3, 2.5, 0.4, 50)], 0, lambda: True)
    >>> f.severity, f.message[:62]
    ('info', 'Exact duplicate rows across the split: 3 test rows also in tra')
    """
    shared = [o for o in overlaps if o.observed]
    if not shared:
        return []
    worst = max(shared, key=lambda o: (o.critical, o.significant, o.excess))
    details: dict[str, Any] = {"overlaps": [o.as_dict() for o in overlaps], "conflicting_labels": conflicts}
    pairs = "; ".join(f"{plural(o.observed, o.late + ' row')} also in {o.early} (chance: {o.expected:.1f})" for o in shared)
    where = f"exact duplicate rows across the split: {pairs}"
    if any(o.critical for o in shared) or (conflicts and worst.significant):
        extra = f" {plural(conflicts, 'held-out row')} repeat a train row's features with a different label." if conflicts else ""
        return [Finding("duplicates", "critical", (
            f"{where.capitalize()}, far above what a random split gives.{extra} The model is scored on rows it "
            "trained on; drop duplicates before splitting (e.g. X.drop_duplicates()) or split by a key "
            "that keeps copies together (split(by='group'))."), details)]
    if any(o.significant for o in shared):
        return [Finding("duplicates", "warning", (
            f"{where.capitalize()}: above chance but a small share of the held-out rows. Drop duplicates "
            "before splitting so held-out scores are not inflated."), details)]
    found = _rare_finding(where, rare() if rare else None, details)
    if found:
        return found
    details["natural_collisions"] = is_natural = natural()
    if not is_natural:
        observed, expected = sum(o.observed for o in shared), sum(o.expected for o in shared)
        how_many = "About as many as" if observed <= 1.5 * expected + 1 else "More than"
        return [Finding("duplicates", "warning", (
            f"{where.capitalize()}. {how_many} a random split of this data gives, and these rows are copies "
            "(the columns are too fine-grained to collide by chance), so the model is scored on examples it "
            "trained on. Drop duplicates before splitting (X.drop_duplicates())."), details)]
    if conflicts:
        return [Finding("duplicates", "warning", (
            f"{where.capitalize()}, about what chance gives for data with this few distinct rows, but "
            f"{plural(conflicts, 'held-out row')} repeat a train row's features with a different label: "
            "the features cannot separate them; check for label noise or a missing feature."), details)]
    return [Finding("duplicates", "info", (
        f"{where.capitalize()}: as many as a random split of this data gives by chance (its values are "
        "coarse, so rows repeat naturally); not leakage by itself."), details)]


def _rare_finding(where: str, rare: dict[str, Any] | None, details: dict[str, Any]) -> list[Finding]:
    """The finding the rarity of the shared values calls for (its statistic goes in ``details["rare_values"]``)."""
    if not rare:
        return []
    twins = rare.pop("twins")
    details["rare_values"] = {**rare, "rare_rate": float(f"{rare['rare_rate']:.3g}"),
                              "coarse_rate": float(f"{rare['coarse_rate']:.3g}"), "twins": [t.as_dict() for t in twins],
                              "statistic": "expected = rows of one part x rows of the other x rare_rate x coarse_rate: "
                                           "pairs equal on every column (and the label) by chance, the rare and the coarse "
                                           "columns independent; a Poisson tail on the rows seen"}
    hit = [t for t in twins if t.significant]
    if not hit:
        return []
    cols = ", ".join(repr(c) for c in rare["rare_columns"][:5]) + (" ..." if len(rare["rare_columns"]) > 5 else "")
    chance = "; ".join(f"{plural(t.observed, t.late + ' row')} equal to a {t.early} row in every column"
                       f"{' and the label' if rare['label'] else ''} (chance: {t.expected:.2g}, p = {t.p_value:.2g})" for t in hit)
    severity = "critical" if any(t.critical for t in twins) else "warning"
    return [Finding("duplicates", severity, (
        f"{where.capitalize()}. The values these rows share in {cols} seldom repeat (two rows of one part share "
        f"them {rare['rare_rate']:.2g} of the time), so a random split of natural data gives far fewer rows equal "
        f"in every column: {chance}. These are records entered twice; the model is scored on examples it trained "
        "on. Drop duplicates before splitting (X.drop_duplicates())."), details)]


def _with_label(data: AuditData) -> np.ndarray:
    """Each row's key over the features and, where there is one, the label."""
    h = data.cache["exact_hash"]
    return h if data.y is None else combine(h, hash_column(pd.Series(data.y)))


def _natural(data: AuditData) -> bool:
    """:func:`natural_collisions` of the table in memory."""
    inv, n_keys = exact_keys(data)
    mult = np.bincount(inv, minlength=n_keys).astype(np.float64)
    return natural_collisions(data, data.n, float(np.sum(mult * (mult - 1) / 2)))


def natural_collisions(sample: AuditData, n: int, pairs: float) -> bool:
    """Whether the rows of a table of ``n`` rows with ``pairs`` pairs of exact duplicates collide naturally:
    independent columns would repeat rows at least a tenth as often as the data does, and, where they would
    repeat fewer than one pair, the pairs seen are not too many for chance (Poisson, 1%); otherwise repeated
    rows are copies. ``sample`` holds the rows (the whole table in memory, the row sample out of core)
    that give each column's collision rate: the one rule for both audits.

    A column's chance that two rows share a value is estimated from a row sample without bias
    (pairs within the sample), so a fine-grained column counts as fine-grained however large the
    data, and one with a frequent value (a missing value, a zero) counts as coarse as it is. Pairs of
    copies (rows equal in every column) are left out of that estimate: a copy whose value occurs
    nowhere else shows the value is rare, not that rows repeat it naturally.
    """
    inv, _ = exact_keys(sample)
    m = min(sample.n, 20_000)
    if m < 2:
        return True
    rows = np.sort(np.random.default_rng(sample.seed).choice(sample.n, m, replace=False))
    frame = sample.X.iloc[rows]
    copies = np.bincount(inv[rows]).astype(np.float64)
    copy_pairs = float(np.sum(copies * (copies - 1)))  # ordered pairs of copies in the sample: equal in every column
    q = 1.0
    for c in sample.features:
        counts = frame[c].value_counts(dropna=False).to_numpy().astype(np.float64)
        q *= max(float(np.sum(counts * (counts - 1))) - copy_pairs, 0.0) / (m * (m - 1))
        if q == 0.0:
            return False
    chance_pairs = n * (n - 1) / 2 * q
    if chance_pairs < 1 and stats.poisson.sf(pairs - 1, chance_pairs) < 0.01:
        return False  # fewer than one natural twin expected, and far more pairs seen: copies
    return chance_pairs >= 0.1 * pairs


def _conflicting_labels(data: AuditData, mask: np.ndarray) -> int:
    """Held-out rows (in ``mask``) whose features match a train row but whose (features, label) do not."""
    assert data.y is not None and data.part is not None
    with_label = _with_label(data)
    train_pairs = np.unique(with_label[data.part == TRAIN])
    return int(np.sum(~np.isin(with_label[mask], train_pairs, assume_unique=False)))


def check_near_duplicates(data: AuditData) -> list[Finding]:
    assert data.part is not None
    raw = check_raw_copies(data)  # copies up to rounding or a grey level: close on the raw scale only
    space = _near_space(data)
    if space is None:
        return raw
    overlaps, wider = _near_overlaps(space)
    if data.cache.get("impact"):  # held-out rows with a near copy in train, for audit(impact=True)
        copied = np.zeros(data.n, dtype=bool)
        for late in data.later_parts():
            copied[space.rows[space.flagged(data.part, TRAIN, late)]] = True
        data.cache.setdefault("copied_rows", {})["near-duplicates"] = copied
    found = _near_finding(overlaps, wider, space.cols)
    if raw and (not found or _RANK[raw[0].severity] < _RANK[found[0].severity]):
        return raw  # the stronger evidence
    return found


@dataclass(frozen=True)
class _NearSpace:
    """The standardised numeric columns of the rows that share an LSH bucket with another row:
    only those can be near-duplicates, so every count works on them alone."""

    data: AuditData
    cols: list  # the numeric, non-constant columns compared by distance
    positions: np.ndarray  # their positions in ``data.X``
    mean: np.ndarray
    scale: np.ndarray
    rows: np.ndarray  # the rows in some shared bucket (sorted)
    tables: list[tuple[np.ndarray, np.ndarray]]  # per table: positions in ``rows``, bucket ids
    exact_sub: np.ndarray  # exact-duplicate key of each of ``rows``

    def count(self, part: np.ndarray, early: int, late: int, radius: float = NEAR) -> int:
        """Rows of ``late`` within ``radius`` of a row of ``early`` (under the parts ``part``), exact copies excluded."""
        return int(self.flagged(part, early, late, radius).sum())

    def flagged(self, part: np.ndarray, early: int, late: int, radius: float = NEAR) -> np.ndarray:
        """Over ``rows``: those :meth:`count` counts."""
        sub = part[self.rows]
        flagged = np.zeros(len(self.rows), dtype=bool)
        for where, inv in self.tables:
            flagged[where] |= _verified(self.data, self.rows[where], inv, sub[where], early, late,
                                        self.positions, self.mean, self.scale, radius)
        flagged &= ~observed_overlap(self.exact_sub, sub, early, late, len(self.rows))
        return flagged


def _near_space(data: AuditData) -> _NearSpace | None:
    """The space near-duplicates are searched in; None when no numeric column varies."""
    cols = [c for c in numeric_columns(data) if data.X[c].dtype.kind != "b"]
    if not cols:
        return None
    mean, scale = _moments(data, cols)
    keep = scale > 0
    cols = [c for c, k in zip(cols, keep) if k]
    mean, scale = mean[keep], scale[keep]
    if not cols:
        return None
    positions = np.array([data.X.columns.get_loc(c) for c in cols])
    other = [c for c in data.features if c not in set(cols) and data.X[c].dtype.kind not in "f"]
    tables = _lsh_tables(data, positions, mean, scale, other)
    # only rows that share a bucket with another row can be near-duplicates: work on those alone
    rows = np.unique(np.concatenate([r for r, _ in tables]))
    tables = [(np.searchsorted(rows, r), inv) for r, inv in tables]
    # an exact copy of a row shares every bucket with it, so exact keys are needed for these rows only
    if "exact" in data.cache:
        exact_sub = np.unique(data.cache["exact"][0][rows], return_inverse=True)[1]
    else:
        exact_sub = np.unique(hash_rows(data.X.iloc[rows], data.features), return_inverse=True)[1]
    return _NearSpace(data, cols, positions, mean, scale, rows, tables, exact_sub)


def _near_overlaps(space: _NearSpace) -> tuple[list[Overlap], dict[tuple[int, int], int]]:
    """Per pair of parts: the observed near-duplicates against a few random re-splits, and (where
    there are any) how many lie within twice the distance."""
    data = space.data
    assert data.part is not None
    rng = np.random.default_rng(data.seed + 17)
    assigned = np.flatnonzero(data.part >= 0)
    overlaps = []
    wider: dict[tuple[int, int], int] = {}
    for early, late in part_pairs(data.part):
        obs = space.count(data.part, early, late)
        if obs:
            # natural neighbours multiply when the radius doubles (2**dims); copies with small noise do not
            wider[(early, late)] = space.count(data.part, early, late, 2 * NEAR)
        chance = []
        for _ in range(_PERMUTATIONS):
            shuffled = data.part.copy()
            shuffled[assigned] = data.part[rng.permutation(assigned)]
            chance.append(space.count(shuffled, early, late))
        expected = float(np.mean(chance))
        var = max(float(np.var(chance, ddof=1)), expected)
        overlaps.append(Overlap(PART_NAMES[early], PART_NAMES[late], obs, expected, p_value(obs, expected, var), int(np.sum(data.part == late))))
    return overlaps, wider


def _near_finding(overlaps: list[Overlap], wider: dict[tuple[int, int], int], cols: list) -> list[Finding]:
    """The ``near-duplicates`` finding (if any) the overlaps call for."""
    shared = [o for o in overlaps if o.observed]
    if not shared:
        return []
    details = {"overlaps": [o.as_dict() for o in overlaps], "columns": [str(c) for c in cols], "max_rms_distance": NEAR}
    pairs = "; ".join(f"{plural(o.observed, o.late + ' row')} within {NEAR} std of a {o.early} row (chance: {o.expected:.1f})" for o in shared)
    if any(o.critical for o in shared):
        return [Finding("near-duplicates", "critical", (
            f"Near-duplicate rows across the split (not exact copies): {pairs}, far above chance. These are "
            "likely the same example with tiny noise or rounding (augmented copies, resampled records); "
            "remove them or split by the key that ties them together (split(by='group'))."), details)]
    if any(o.significant for o in shared):
        return [Finding("near-duplicates", "warning", (
            f"Near-duplicate rows across the split: {pairs}, above chance but a small share of the "
            "held-out rows. Check whether they are copies of one example."), details)]
    copies = sum(wider.values()) <= 1.25 * sum(o.observed for o in shared)
    details["within_twice_the_distance"] = int(sum(wider.values()))
    if copies and any(o.observed >= max(3, 0.01 * o.late_rows) for o in shared):
        return [Finding("near-duplicates", "warning", (
            f"Near-duplicate rows across the split: {pairs}. A random split of this data gives as many, but "
            "they sit much closer than the data's natural neighbours (few more appear at twice the distance), "
            "so they look like copies with small noise (augmented or resampled rows); check them and split by "
            "the key that ties them together."), details)]
    return [Finding("near-duplicates", "info", (
        f"Near-duplicate rows across the split: {pairs}, about what a random split of this data gives; "
        "not leakage by itself."), details)]


def _moments(data: AuditData, cols: list) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations from a row sample (NaN ignored)."""
    rng = np.random.default_rng(data.seed)
    rows = np.sort(rng.choice(data.n, min(data.n, 20_000), replace=False))
    sample = data.X.iloc[rows][cols].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():  # an all-missing column has no moments
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(sample, axis=0))
        scale = np.nan_to_num(np.nanstd(sample, axis=0))
    return mean, scale


def _standardised(data: AuditData, rows: np.ndarray | slice, positions: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    block = data.X.iloc[rows, positions].to_numpy(dtype=np.float64, na_value=np.nan)
    z = (block - mean) / scale
    return np.nan_to_num(z, nan=0.0)


def _lsh_tables(data: AuditData, positions: np.ndarray, mean: np.ndarray, scale: np.ndarray, other: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per hash table (random projections snapped to a grid): the rows that share a bucket with
    another row, and their bucket ids ``0 .. k - 1``."""
    d = len(positions)
    rng = np.random.default_rng(data.seed + 1)
    k = min(d, _PROJECTIONS)
    if d <= _PROJECTIONS:
        proj = np.concatenate([np.eye(d)] * _TABLES, axis=1)
    else:
        proj = rng.standard_normal((d, k * _TABLES))
        proj /= np.linalg.norm(proj, axis=0)
    offsets = rng.uniform(0, _CELL, size=k * _TABLES)
    hashes = np.empty((_TABLES, data.n), dtype=np.uint64)
    base = hash_rows(data.X, other) if other else None
    for start in range(0, data.n, _CHUNK):
        stop = min(start + _CHUNK, data.n)
        z = _standardised(data, slice(start, stop), positions, mean, scale)
        cells = np.floor((z @ proj + offsets) / _CELL).astype(np.int64).view(np.uint64)
        for t in range(_TABLES):
            h = None if base is None else base[start:stop]
            for j in range(t * k, (t + 1) * k):
                h = combine(h, cells[:, j])
            hashes[t, start:stop] = h
    tables = []
    for t in range(_TABLES):
        _, inv, counts = np.unique(hashes[t], return_inverse=True, return_counts=True)
        shared = np.flatnonzero(counts[inv] > 1)
        tables.append((shared, np.unique(inv[shared], return_inverse=True)[1].astype(np.int64)))
    return tables


def _verified(data: AuditData, rows: np.ndarray, inv: np.ndarray, part: np.ndarray, early: int, late: int,
              positions: np.ndarray, mean: np.ndarray, scale: np.ndarray, radius: float = NEAR) -> np.ndarray:
    """Over ``rows`` (bucket ids ``inv``, parts ``part``): those of ``late`` within :data:`NEAR` of
    a row of ``early`` in the same bucket."""
    n_keys = int(inv.max()) + 1 if len(inv) else 0
    rep = np.full(n_keys, -1, dtype=np.int64)
    early_at = np.flatnonzero(part == early)
    rep[inv[early_at]] = early_at
    late_at = np.flatnonzero(part == late)
    partner = rep[inv[late_at]]
    cand = partner >= 0
    late_at, partner = late_at[cand], partner[cand]
    flagged = np.zeros(len(rows), dtype=bool)
    for start in range(0, len(late_at), _CHUNK):
        a = _standardised(data, rows[late_at[start:start + _CHUNK]], positions, mean, scale)
        b = _standardised(data, rows[partner[start:start + _CHUNK]], positions, mean, scale)
        rms = np.sqrt(np.mean((a - b) ** 2, axis=1))
        flagged[late_at[start:start + _CHUNK][rms <= radius]] = True
    return flagged
