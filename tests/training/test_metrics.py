"""cleanfit.training.metrics: values against scikit-learn on the full evaluation set, and EarlyStopping's rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

import cleanfit as cf
from cleanfit.training import metrics


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 60), classes=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_classification_metrics_match_scikit_learn(n, classes, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)).astype("float32")
    targets = rng.integers(0, classes, size=n)
    assert metrics.accuracy(torch.from_numpy(logits), torch.from_numpy(targets)) == pytest.approx(
        skm.accuracy_score(targets, logits.argmax(1)))
    if len(np.unique(targets)) == classes:
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        expected = (skm.roc_auc_score(targets, probs[:, 1]) if classes == 2
                    else skm.roc_auc_score(targets, probs, multi_class="ovr"))
        assert metrics.auc(torch.from_numpy(logits), torch.from_numpy(targets)) == pytest.approx(expected)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 3000), levels=st.sampled_from([2, 5, 1000, 0]), labels=st.sampled_from([(0, 1), (3, 7), (-1, 1)]),
       columns=st.sampled_from([1, 2, 3]), seed=st.integers(0, 10_000))
def test_auc_equals_roc_auc_score_with_ties_any_labels_and_shapes(n, levels, labels, columns, seed):
    """The rank AUC against scikit-learn's trapezoids: heavy ties (2 or 5 score levels), few, none; binary labels
    that are not 0/1 (the larger one is positive, as roc_auc_score takes it); one, two or three output columns."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, columns))
    if levels:
        logits = rng.integers(0, levels, size=(n, columns)).astype(np.float64)
    classes = rng.integers(0, max(columns, 2), size=n)
    given_logits = logits.copy()
    if columns == 3:
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        present = [c for c in range(3) if 0 < np.sum(classes == c) < n]
        expected = np.mean([skm.roc_auc_score(classes == c, probs[:, c]) for c in present]) if present else np.nan
        got = metrics.auc(torch.from_numpy(logits), torch.from_numpy(classes))
    else:
        truth = np.where(classes == 1, labels[1], labels[0])
        score = logits[:, 1] - logits[:, 0] if columns == 2 else logits[:, 0]
        expected = skm.roc_auc_score(truth, score) if len(np.unique(truth)) == 2 else np.nan
        got = metrics.auc(torch.from_numpy(logits), torch.from_numpy(truth))
    assert got == pytest.approx(expected, abs=1e-12, nan_ok=True)
    assert np.array_equal(logits, given_logits)  # the softmax works in its own copy, never in the caller's outputs


def test_auc_refuses_a_single_column_for_three_classes():
    with pytest.raises(cf.DataError, match="needs two classes.*3 values"):
        metrics.auc(torch.zeros(6, 1), torch.tensor([0, 1, 2, 0, 1, 2]))
    with pytest.raises(cf.DataError, match="one output row per target"):
        metrics.auc(torch.zeros(6, 1), torch.tensor([0, 1]))


def test_single_logit_binary_and_float_targets():
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-0.2]])
    targets = torch.tensor([1.0, 0.0, 0.0, 0.0])  # BCE-style float targets
    assert metrics.accuracy(logits, targets) == 0.75
    assert metrics.auc(logits, targets) == 1.0
    assert np.isnan(metrics.auc(logits, torch.zeros(4)))  # undefined with one class


def test_regression_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=50)
    pred = truth + rng.normal(scale=0.3, size=50)
    out, tgt = torch.tensor(pred, dtype=torch.float32)[:, None], torch.tensor(truth, dtype=torch.float32)
    assert metrics.rmse(out, tgt) == pytest.approx(np.sqrt(skm.mean_squared_error(truth, pred)), rel=1e-5)
    assert metrics.mae(out, tgt) == pytest.approx(skm.mean_absolute_error(truth, pred), rel=1e-5)
    assert metrics.r2(out, tgt) == pytest.approx(skm.r2_score(truth, pred), rel=1e-5)
    with pytest.raises(cf.DataError, match="one prediction per target"):
        metrics.rmse(torch.zeros(3, 2), torch.zeros(3))


def test_resolve_metrics_names_and_errors():
    def f1(outputs, targets):
        return 0.5

    assert list(metrics.resolve_metrics(["accuracy", f1])) == ["accuracy", "f1"]
    assert list(metrics.resolve_metrics({"acc": "accuracy"})) == ["acc"]
    with pytest.raises(cf.ConfigError, match="not a function"):
        metrics.resolve_metrics([3])


def test_early_stopping_modes_and_min_delta():
    es = cf.EarlyStopping(patience=2, monitor="val_accuracy")
    assert es.mode == "max"
    assert [es.update({"epoch": e, "val_accuracy": v}) for e, v in enumerate([0.5, 0.7, 0.69, 0.7], 1)] == [
        False, False, False, True]
    strict = cf.EarlyStopping(patience=1, min_delta=0.1)
    assert [strict.update({"epoch": e, "val_loss": v}) for e, v in enumerate([1.0, 0.95], 1)] == [False, True]
    assert cf.EarlyStopping(patience=1, monitor="val_rmse").mode == "min"
    with pytest.raises(cf.ConfigError, match="patience"):
        cf.EarlyStopping(patience=0)
    with pytest.raises(cf.ConfigError, match="no such value"):
        cf.EarlyStopping(patience=1, monitor="val_f1").update({"epoch": 1, "val_loss": 1.0})


def test_auc_with_a_class_missing_from_val_onehot_targets_and_a_diverged_model():
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(30, 3)).astype("float32"))
    targets = torch.from_numpy(rng.integers(0, 2, size=30))  # class 2 never appears in this small val set
    probs = torch.softmax(logits, 1).numpy()
    expected = np.mean([skm.roc_auc_score(targets.numpy() == c, probs[:, c]) for c in (0, 1)])
    assert metrics.auc(logits, targets) == pytest.approx(expected)
    onehot = torch.eye(3)[targets]  # soft-label / one-hot targets read by their argmax
    assert metrics.auc(logits, onehot) == pytest.approx(expected)
    assert metrics.accuracy(logits, onehot) == metrics.accuracy(logits, targets)
    assert np.isnan(metrics.auc(torch.full((4, 2), float("nan")), torch.tensor([0, 1, 0, 1])))


def test_early_stopping_auto_mode_minimises_perplexity_and_nll():
    assert cf.EarlyStopping(1, monitor="val_perplexity").mode == "min"
    assert cf.EarlyStopping(1, monitor="val_nll").mode == "min"
    assert cf.EarlyStopping(1, monitor="val_f1").mode == "max"
