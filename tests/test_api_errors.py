"""Bad arguments to the Python API raise cleanfit's own errors, naming the argument: never a bare
TypeError/ValueError from deep inside, and never a silent acceptance of a value that means nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import StandardScaler

import cleanfit as cf

X = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
Y = (X[:, 0] > 0).astype("int64")


def _trainer(**kw: Any) -> Callable[[], Any]:
    def run() -> Any:
        model = torch.nn.Linear(3, 2)
        trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss=torch.nn.functional.cross_entropy,
                             device="cpu", progress=False, report=False, **kw)
        return trainer.fit(cf.Batches((X, Y), 8), epochs=1)
    return run


CASES: dict[str, tuple[Callable[[], Any], type[cf.CleanfitError], str]] = {
    "audit checks=5": (lambda: cf.audit(pd.DataFrame(X, columns=list("abc")), Y, cf.split(40), checks=5),
                       cf.DataError, "audit(checks=5)"),
    "Batches.load_state_dict(None)": (lambda: cf.Batches(X, 4).load_state_dict(None), cf.DataError, "load_state_dict(None)"),
    "Trainer clip_grad='1'": (_trainer(clip_grad="1"), cf.ConfigError, "clip_grad='1'"),
    "Trainer clip_grad=inf": (_trainer(clip_grad=float("inf")), cf.ConfigError, "clip_grad=inf"),
    "Trainer seed='a'": (_trainer(seed="a"), cf.ConfigError, "seed='a'"),
    "Trainer checkpoint_dir=5": (_trainer(checkpoint_dir=5), cf.ConfigError, "checkpoint_dir=5"),
    "fit_transform on text": (lambda: cf.split(3).fit_transform(StandardScaler(), np.array([["a"], ["b"], ["c"]])),
                              cf.DataError, "StandardScaler could not be fit"),
    "compare callable without a seed": (lambda: cf.compare(lambda: 1.0, lambda: 2.0, seeds=2), cf.ConfigError,
                                        "cannot be called with a seed"),
    "split('abc')": (lambda: cf.split("abc"), cf.DataError, "split(n_or_data='abc')"),
    "split(10.0)": (lambda: cf.split(10.0), cf.DataError, "split(n_or_data=...)"),
    "float split indices": (lambda: cf.Splits(np.array([0.0, 1.5]), test=np.array([2.0])), cf.DataError, "integer"),
    "Batches seed=2**70": (lambda: cf.Batches(X, 4, seed=2**70), cf.DataError, "seed="),
    "negative compare seeds": (lambda: cf.compare(lambda s: 1.0, lambda s: 2.0, seeds=[-1, 2]), cf.ConfigError, "-1"),
    "higher_is_better='yes'": (lambda: cf.compare(lambda s: 1.0, lambda s: 2.0, seeds=2, higher_is_better="yes"),
                               cf.ConfigError, "higher_is_better='yes'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_api_arguments_raise_a_cleanfit_error_naming_them(case: str) -> None:
    call, error, named = CASES[case]
    with pytest.raises(error) as raised:
        call()
    assert named in str(raised.value)
