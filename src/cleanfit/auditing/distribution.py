"""Checks ``label-order`` and ``split-shift``: how labels are laid out in rows and across parts.

``label-order``: rows stored sorted or blocked by label, so a loader that does not shuffle (or a split
by position) sees one class at a time; and rows with a time column that are not in time order, so a
positional split or an unshuffled loader would mix past and future. ``split-shift``: labels (or
category values) in val/test that train never shows, and a label mix far from train's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from cleanfit.auditing.inputs import PART_NAMES, TRAIN, AuditData, plural
from cleanfit.findings import Finding

_BATCH = 32
# label runs at most this share of what a shuffled order gives: the rows are blocked by label
_RUNS_RATIO = 0.5
_SORTED_RHO = 0.8
# split-shift: a label mix this far from train's (total variation) and this unlikely by chance
_SHIFT_TV = 0.1
_SHIFT_P = 1e-6
_UNSEEN_CRITICAL = 0.05


def check_label_order(data: AuditData) -> list[Finding]:
    findings = []
    if data.y is not None:
        findings += label_blocks(data)
    if data.time is not None:
        findings += _time_order(data)
    return findings


def label_blocks(data: AuditData) -> list[Finding]:
    """The target half of ``label-order``: rows sorted or blocked by label (the out-of-core audit runs it on its
    row sample for a regression target)."""
    assert data.y is not None
    y = data.y
    n = len(y)
    if data.task == "classification":
        codes, _ = pd.factorize(y)
        changes = int(np.count_nonzero(codes[1:] != codes[:-1]))
        full = n // _BATCH
        blocks = codes[: full * _BATCH].reshape(full, _BATCH) if full else codes[None, :]
        pure = float(np.mean(np.all(blocks == blocks[:, :1], axis=1)))
        in_time_order = data.time is not None and _monotone(data.time)
        return blocked_finding(np.bincount(codes).astype(np.float64), changes, pure, _BATCH, in_time_order)
    if data.time is not None and _monotone(data.time):
        return []  # a time series: its target follows time, not the other way round
    rho = float(stats.spearmanr(np.arange(n), y).statistic)
    if abs(rho) < _SORTED_RHO:
        return []
    return [Finding("label-order", "warning", (
        f"Rows are ordered by the target (rank correlation of row position with y: {rho:+.2f}). A "
        "positional split or an unshuffled loader sees only low or only high targets; keep "
        "shuffle=True and split at random."), {"spearman_position_target": round(rho, 4)})]


def blocked_finding(counts: np.ndarray, changes: int, pure: float, batch: int, in_time_order: bool) -> list[Finding]:
    """The ``label-order`` finding (if any) for rows of classes with ``counts`` whose label changes
    ``changes`` times between neighbours, ``pure`` the share of stored-order batches of ``batch`` rows
    with one class; the in-memory and out-of-core audits both state it so.

    >>> blocked_finding(np.array([50.0, 50.0]), 49, 0.0, 32, False)
    []
    >>> blocked_finding(np.array([50.0, 50.0]), 1, 0.67, 32, False)[0].message[:38]
    'Rows are sorted by label: the label ch'
    """
    n = float(counts.sum())
    expected = (n - 1) * (1 - float(np.sum(counts * (counts - 1))) / (n * (n - 1)))
    ratio = changes / expected if expected else 1.0
    if ratio > _RUNS_RATIO:
        return []
    pure_chance = float(np.sum((counts / n) ** batch))
    how = "sorted by label" if changes == len(counts) - 1 else "blocked by label"
    details = {"label_changes": changes, "expected_if_shuffled": round(expected, 1),
               "single_class_batches": round(pure, 4), "batch_size": batch}
    advice = ("The rows are in time order, so the labels follow time: keep the split by time, and "
              "shuffle=True in Batches for training." if in_time_order else
              "Keep shuffle=True in Batches and never split by position (use split(by='stratify')).")
    times = "time" if changes == 1 else "times"
    return [Finding("label-order", "info" if in_time_order else "warning", (
        f"Rows are {how}: the label changes {changes:,} {times} between neighbouring rows where a "
        f"shuffled order gives about {expected:,.0f}; {pure:.0%} of batches of {batch} rows in stored "
        f"order hold a single class (shuffled: {pure_chance:.0%}). {advice}"), details)]


def _monotone(t: np.ndarray) -> bool:
    return bool(np.all(t[1:] >= t[:-1]))


def _time_order(data: AuditData) -> list[Finding]:
    assert data.time is not None
    t = data.time
    if _monotone(t) or np.all(t[1:] <= t[:-1]):
        return []
    backwards = int(np.count_nonzero(t[1:] < t[:-1]))
    return [time_order_finding(data.time_name, backwards, split=data.part is not None)]


def time_order_finding(time_name: str | None, backwards: int, *, split: bool) -> Finding:
    """The ``label-order`` finding for rows not in ``time_name`` order (``backwards`` steps back in time);
    without a ``split`` it says to split by time first.

    >>> time_order_finding("day", 2, split=True).message[:48]
    "Rows are not in 'day' order (2 steps go back in "
    """
    advice = "" if split else " Split with split(by='time') before anything else."
    return Finding("label-order", "info", (
        f"Rows are not in {time_name!r} order ({plural(backwards, 'step')} go back in time). A split "
        "by position or a loader with shuffle=False would mix past and future; for a time series, sort "
        f"by time and keep train before val before test.{advice}"),
        {"time_column": time_name, "backward_steps": backwards})


def check_split_shift(data: AuditData) -> list[Finding]:
    assert data.part is not None
    findings = []
    if data.y is not None:
        findings += label_shift(data)
    findings += unseen_categories(data)
    return findings


def _split_in_time_order(data: AuditData) -> bool:
    """Whether the split is a time split: made by time, or every held-out row at or after train's last time."""
    if getattr(data.splits, "by", None) == "time":
        return True
    if data.time is None or data.part is None:
        return False
    train, later = data.part == TRAIN, data.part > TRAIN
    return bool(later.any()) and float(data.time[later].min()) >= float(data.time[train].max())


_DRIFT = ("The split is in time order, so this is drift over time that the model will meet after "
          "training; keep the time split (a random split would hide it by mixing in the future).")


def label_shift(data: AuditData) -> list[Finding]:
    """The label half of ``split-shift``: labels train never shows, a different label mix (classes) or a shifted
    target (regression); the out-of-core audit runs it on its row sample for a regression target."""
    assert data.y is not None and data.part is not None
    train = data.part == TRAIN
    findings = []
    drift = _split_in_time_order(data)
    if data.task == "classification":
        codes, classes = pd.factorize(data.y)
        k = len(classes)
        train_counts = np.bincount(codes[train], minlength=k)
        for p in (1, 2):
            rows = data.part == p
            if not rows.any():
                continue
            counts = np.bincount(codes[rows], minlength=k)
            findings += class_shift_findings(PART_NAMES[p], np.asarray(classes), train_counts, counts, drift)
        return findings
    y = data.y.astype(np.float64)
    for p in (1, 2):
        rows = data.part == p
        if rows.sum() < 20:
            continue
        ks = stats.ks_2samp(y[train], y[rows])
        if ks.statistic >= 2 * _SHIFT_TV and ks.pvalue < _SHIFT_P:
            fix = _DRIFT if drift else "Split at random unless the shift is intended."
            findings.append(Finding("split-shift", "info" if drift else "warning", (
                f"The target distribution of {PART_NAMES[p]} differs from train's (KS statistic "
                f"{ks.statistic:.2f}, p = {ks.pvalue:.1g}; train median {np.median(y[train]):.3g}, "
                f"{PART_NAMES[p]} median {np.median(y[rows]):.3g}). {fix}"),
                {"part": PART_NAMES[p], "ks": round(float(ks.statistic), 4), "p_value": float(ks.pvalue)}))
    return findings


def class_shift_findings(part: str, classes: np.ndarray, train_counts: np.ndarray, counts: np.ndarray,
                         drift: bool) -> list[Finding]:
    """The label part of ``split-shift`` for one held-out ``part``: rows of ``classes`` train never shows,
    and a label mix (``counts`` against ``train_counts``) far from train's; ``drift``: the split is in time
    order. The in-memory and out-of-core audits both state it so.

    >>> class_shift_findings("test", np.array(["a", "b"]), np.array([50, 0]), np.array([9, 1]), False)[0].message[:46]
    '1 test row (10.0%) have labels train never sho'
    """
    findings = []
    unseen = (train_counts == 0) & (counts > 0)
    if unseen.any():
        n_unseen = int(counts[unseen].sum())
        share = n_unseen / int(counts.sum())
        labels = [str(v) for v in classes[unseen][:10]]
        fix = ("New labels appear over time: gather train examples of them, or move the time "
               "boundary so train covers them." if drift else
               "Split with split(by='stratify', y=...) or gather train examples of these labels.")
        findings.append(Finding("split-shift", "critical" if share >= _UNSEEN_CRITICAL else "warning", (
            f"{plural(n_unseen, part + ' row')} ({share:.1%}) have labels train never "
            f"shows ({', '.join(labels)}): the model cannot predict them. {fix}"),
            {"part": part, "unseen_labels": labels, "rows": n_unseen}))
    tv = 0.5 * float(np.abs(counts / counts.sum() - train_counts / train_counts.sum()).sum())
    seen = (train_counts + counts) > 0
    pval = float(stats.chi2_contingency(np.vstack([train_counts[seen], counts[seen]]))[1]) if seen.sum() > 1 else 1.0
    if tv >= _SHIFT_TV and pval < _SHIFT_P:
        fix = _DRIFT if drift else "Split with split(by='stratify', y=...) unless the shift is intended."
        findings.append(Finding("split-shift", "info" if drift else "warning", (
            f"The label mix of {part} differs from train's (total variation {tv:.2f}, "
            f"chi-square p = {pval:.1g}): scores there will not reflect the train distribution. "
            f"{fix}"),
            {"part": part, "total_variation": round(tv, 4), "p_value": pval}))
    return findings


def unseen_categories(data: AuditData) -> list[Finding]:
    """Category values of held-out rows that train never shows (an encoder fit on train cannot map them)."""
    assert data.part is not None
    ids = set(data.cache.get("ids", ()))
    train = data.part == TRAIN
    late = data.part > 0
    n_late = int(late.sum())
    findings = []
    for c in data.features:
        s = data.X[c]
        if c in ids or not (s.dtype.kind in "OUSb" or isinstance(s.dtype, pd.CategoricalDtype) or str(s.dtype) == "string"):
            continue
        codes, uniques = pd.factorize(s)
        if len(uniques) > 0.5 * data.n:
            continue
        in_train = np.zeros(len(uniques) + 1, dtype=bool)
        in_train[codes[train]] = True
        unseen_rows = late & ~in_train[codes] & (codes >= 0)
        count = int(unseen_rows.sum())
        if count and count >= 0.01 * n_late:
            values = [str(v) for v in pd.unique(s[unseen_rows])[:5]]
            findings.append(Finding("split-shift", "warning", (
                f"Column {c!r}: {plural(count, 'held-out row')} ({count / n_late:.1%}) hold values train never "
                f"shows (e.g. {', '.join(values)}); an encoder fit on train maps them to 'unknown'. Expected "
                "for rare values; otherwise split by that column or gather train examples."),
                {"column": str(c), "rows": count, "values": values}))
    return findings
