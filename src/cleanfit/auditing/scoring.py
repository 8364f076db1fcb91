"""How well one column alone predicts the target: a shallow tree, cross-validated on a row sample.

The score is ROC AUC (one-vs-rest for several classes) for classification and R² for regression, so
0.5 / 0.0 is chance and 1.0 is a perfect proxy. Missing values stay NaN: scikit-learn's trees route
them, so a column whose missingness encodes the target scores high too.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

SAMPLE = 4000
_FOLDS = 3

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def sample_rows(rows: np.ndarray, seed: int, size: int = SAMPLE) -> np.ndarray:
    """At most ``size`` of ``rows``, chosen at random, in sorted order."""
    if len(rows) <= size:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size, replace=False))


class Scorer:
    """Scores single columns against one target sample (folds fixed once, reused for every column)."""

    def __init__(self, y: np.ndarray, task: str, seed: int) -> None:
        self.task = task
        self.seed = seed
        if task == "classification":
            classes, codes = np.unique(y, return_inverse=True)
            counts = np.bincount(codes)
            keep = counts[codes] >= _FOLDS  # a class needs a row in every fold
            self.keep = keep
            codes = codes[keep]
            _, self.y = np.unique(codes, return_inverse=True)
            self.n_classes = int(self.y.max()) + 1 if len(self.y) else 0
            splitter = StratifiedKFold(_FOLDS, shuffle=True, random_state=seed)
        else:
            self.keep = np.ones(len(y), dtype=bool)
            self.y = np.asarray(y, dtype=np.float64)
            self.n_classes = 0
            splitter = KFold(_FOLDS, shuffle=True, random_state=seed)
        # too few rows to cross-validate: the check reports nothing rather than guess
        self.folds = list(splitter.split(self.y, self.y)) if self.usable else []

    @property
    def usable(self) -> bool:
        if self.task == "classification":
            return self.n_classes >= 2 and len(self.y) >= 3 * _FOLDS
        return len(self.y) >= 3 * _FOLDS and float(np.std(self.y)) > 0

    def score(self, x: np.ndarray, screen: float | None = None) -> float:
        """Cross-validated score of ``x`` (one value per sampled row) predicting the target.

        With ``screen``, one tree is first fit on every sampled row; its in-sample score bounds the
        cross-validated one from above, so a column scoring below ``screen`` in-sample is returned
        at that (optimistic) score without cross-validating.
        """
        # Trees work in float32: infinite values and values past its range (1e39) become its extremes;
        # a tree only sees the order of the values, and that is kept (NaN stays missing).
        x = np.clip(np.asarray(x, dtype=np.float64)[self.keep], -_FLOAT32_MAX, _FLOAT32_MAX)
        if np.all(np.isnan(x)) or np.nanmin(x) == np.nanmax(x) and not np.any(np.isnan(x)):
            return 0.5 if self.task == "classification" else 0.0
        X = x.reshape(-1, 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if screen is not None:
                everything = np.arange(len(x))
                bound = self._fold(X, everything, everything)
                if self.task == "regression":
                    bound = max(bound, _rank_r2(x, self.y))
                if bound < screen:
                    return bound
            scores = [self._fold(X, train, test) for train, test in self.folds]
        score = float(np.mean(scores))
        if self.task == "regression":
            score = max(score, _rank_r2(x, self.y))
        return score

    def _fold(self, X: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
        if self.task == "classification":
            tree = DecisionTreeClassifier(max_leaf_nodes=max(16, 3 * self.n_classes), min_samples_leaf=5, random_state=self.seed)
            tree.fit(X[train], self.y[train])
            proba = tree.predict_proba(X[test])
            y = self.y[test]
            aucs = [_auc(y == c, proba[:, i]) for i, c in enumerate(tree.classes_)]
            if self.n_classes == 2:
                return aucs[-1] if len(aucs) == 2 else 0.5
            present = [a for a in aucs if a == a]
            missing = self.n_classes - len(present)  # classes the fold could not predict score 0.5
            return float((np.sum(present) + 0.5 * missing) / self.n_classes)
        tree = DecisionTreeRegressor(max_leaf_nodes=64, min_samples_leaf=5, random_state=self.seed)
        tree.fit(X[train], self.y[train])
        return float(r2_score(self.y[test], tree.predict(X[test])))

    def separation(self, flag: np.ndarray) -> float:
        """How cleanly a yes/no flag (e.g. "value is missing") separates the target: 0.5 chance, 1 perfect.

        For classes, the best one-vs-rest AUC of the flag over classes (a flag that marks exactly one
        class scores 1); for regression, the AUC of the flag against the target's ranks.
        """
        flag = np.asarray(flag, dtype=bool)[self.keep]
        if flag.all() or not flag.any():
            return 0.5
        if self.task == "classification":
            best = 0.5
            for c in range(self.n_classes):
                hit = self.y == c
                if hit.all() or not hit.any():
                    continue
                auc = roc_auc_score(hit, flag)
                best = max(best, auc, 1 - auc)
            return float(best)
        auc = roc_auc_score(flag, self.y)
        return float(max(auc, 1 - auc))


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC from ranks (ties count half); NaN when one side is empty."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _rank_r2(x: np.ndarray, y: np.ndarray) -> float:
    """Squared Spearman and Pearson correlation (a monotone proxy that a 64-leaf tree underrates)."""
    ok = ~np.isnan(x)
    if ok.sum() < 10 or np.std(x[ok]) == 0:
        return 0.0
    pearson = np.corrcoef(x[ok], y[ok])[0, 1]
    spearman = stats.spearmanr(x[ok], y[ok]).statistic
    # only a proxy for the rows it covers: scale by coverage
    best = float(np.nanmax([pearson**2, spearman**2]))
    return best * float(ok.mean())
