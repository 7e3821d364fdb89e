"""What the validated classifier and regressor share: standardisation and the nearest validated K."""

from __future__ import annotations

import numpy as np


class Standardiser:
    """``(X - mean_) / std_`` with the mean and standard deviation of the rows it was fitted on
    (a constant column's standard deviation counts as 1); a picklable callable."""

    def fit(self, X) -> Standardiser:
        X = np.asarray(X, dtype=np.float64)
        self.mean_, self.std_ = X.mean(0), X.std(0)
        self.std_[self.std_ == 0] = 1.0
        return self

    def __call__(self, X) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean_) / self.std_


def nearest_k(validated_ks, k: int) -> int:
    """The validated K nearest to ``k`` on a log scale."""
    ks = np.array(sorted(validated_ks))
    return int(ks[np.abs(np.log(ks) - np.log(max(k, 1))).argmin()])
