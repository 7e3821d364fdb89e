"""The validated-choice few-shot regressor behind ``FewShotRegressor(algorithm="auto")``.

:class:`ValidatedRegression` is meta-fitted on grouped rows (a group is a
task). It standardises features and targets with the meta-training rows and
builds the candidate predictors of a new task from its support points:

``"global"``
    a HistGradientBoostingRegressor fitted on all meta-training rows (the
    support set is not used);
``"offset"``
    the global model plus the support's mean residual, shrunk by
    ``n / (n + 1)``;
``"basis"``
    a basis network ``phi(x)`` (MLP 64-64-32) meta-trained on K-shot tasks
    with a closed-form ridge head whose prior mean ``w0`` and strength
    ``lambda`` are meta-learned (R2-D2: Bertinetto et al., "Meta-learning
    with differentiable closed-form solvers", ICLR 2019);
``"ridge"``, ``"knn"``
    Ridge (alpha 1) or 3-nearest-neighbours fitted on the support only.

Validation holds out a quarter of the groups, builds the candidates on the
rest and keeps, per K in {2, 5, 10}, the lowest mean squared error on
K-shot episodes of the held-out groups; the chosen candidates are then
rebuilt on all groups.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor
from torch import nn

from autometa.estimators._validated_common import Standardiser, nearest_k

CANDIDATES = ("global", "offset", "basis", "ridge", "knn")
VALIDATION_SHOTS = (2, 5, 10)


class BasisNetwork:
    """phi(x) with a closed-form ridge head (prior mean ``w0``, strength ``exp(log_lam)``), meta-trained
    with Adam on batches of K-shot tasks (K uniform in 2..10, up to 10 queries)."""

    def __init__(self, hidden=(64, 64), width=32, steps=1500, meta_batch=16, seed=0):
        self.hidden, self.width, self.steps, self.meta_batch, self.seed = tuple(hidden), width, steps, meta_batch, seed

    def fit(self, X, y, groups):
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        layers, w = [], X.shape[1]
        for h in self.hidden:
            layers += [nn.Linear(w, h), nn.ReLU()]
            w = h
        self.net = nn.Sequential(*layers, nn.Linear(w, self.width))
        self.w0 = nn.Parameter(torch.zeros(self.width + 1))
        self.log_lam = nn.Parameter(torch.tensor(0.0))
        opt = torch.optim.Adam([*self.net.parameters(), self.w0, self.log_lam], lr=3e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.steps)
        x = torch.as_tensor(X, dtype=torch.float32)
        t = torch.as_tensor(y, dtype=torch.float32)
        _, codes = np.unique(groups, return_inverse=True)
        members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
        sizes = np.array([len(m) for m in members])
        for _ in range(self.steps):
            k = int(rng.integers(2, 11))
            ok = np.flatnonzero(sizes >= k + 2)
            if len(ok) == 0:
                k = max(1, sizes.max() - 2)
                ok = np.flatnonzero(sizes >= k + 1)
            nq = int(min(10, sizes[ok].min() - k))
            rows = np.stack([rng.choice(members[g], k + nq, replace=False) for g in rng.choice(ok, self.meta_batch)])
            s, q = torch.as_tensor(rows[:, :k]), torch.as_tensor(rows[:, k:])
            loss = ((self._predict(x[s], t[s], x[q]) - t[q]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        return self

    def _features(self, x):
        f = self.net(x)
        return torch.cat([f, torch.ones_like(f[..., :1])], -1)

    def _predict(self, sx, sy, qx):
        Fs, Fq = self._features(sx), self._features(qx)
        r = sy - Fs @ self.w0
        G = Fs @ Fs.transpose(1, 2) + self.log_lam.exp() * torch.eye(Fs.shape[1])  # dual form, (B, K, K)
        delta = Fs.transpose(1, 2) @ torch.linalg.solve(G, r[..., None])
        return Fq @ self.w0 + (Fq @ delta)[..., 0]

    def predict(self, sx, sy, qx):
        with torch.no_grad():
            f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)[None]
            return self._predict(f(sx), f(sy), f(qx))[0].double().numpy()


def predict_with(name, parts, sx, sy, qx):
    """Predictions of candidate ``name`` for ``qx`` from the support ``(sx, sy)`` (standardised)."""
    if name == "global":
        return parts["global"].predict(qx)
    if name == "offset":
        residual = sy - parts["global"].predict(sx)
        return parts["global"].predict(qx) + residual.sum() / (len(residual) + 1.0)
    if name == "basis":
        return parts["basis"].predict(sx, sy, qx)
    if name == "ridge":
        return Ridge(1.0).fit(sx, sy).predict(qx)
    if name == "knn":
        return KNeighborsRegressor(min(3, len(sy))).fit(sx, sy).predict(qx)
    raise ValueError(f"unknown candidate {name!r}")


class ValidatedRegression:
    """Fitted attributes: ``standardise`` (a :class:`Standardiser` of the features), ``y_mean_``, ``y_std_``, ``choices_`` ({K: candidate}),
    ``validation_scores_`` ({(K, candidate): mean squared error in standardised target units}),
    ``episode_sizes_``, ``parts_`` (the chosen candidates' models on all groups)."""

    def __init__(self, steps=1500, val_fraction=0.25, val_episodes=100, seed=0):
        self.steps, self.val_fraction, self.val_episodes, self.seed = steps, val_fraction, val_episodes, seed

    def _build(self, Z, t, groups, names):
        parts = {}
        if {"global", "offset"} & set(names):
            parts["global"] = HistGradientBoostingRegressor(random_state=self.seed).fit(Z, t)
        if "basis" in names:
            parts["basis"] = BasisNetwork(steps=self.steps, seed=self.seed).fit(Z, t, groups)
        return parts

    def fit(self, X, y, groups):
        X, y, groups = np.asarray(X, float), np.asarray(y, float), np.asarray(groups)
        self.standardise = Standardiser().fit(X)
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        Z, t = self.standardise(X), (y - self.y_mean_) / self.y_std_
        rng = np.random.default_rng(self.seed)
        labels, counts = np.unique(groups, return_counts=True)
        self.validation_scores_ = {}
        sizes = {}
        eligible = labels[counts >= 4]
        if len(labels) >= 2 and len(eligible):
            n_val = int(np.clip(round(self.val_fraction * len(labels)), 1, len(labels) - 1))
            val = rng.choice(eligible, min(n_val, len(eligible)), replace=False)
            vm = np.isin(groups, val)
            parts = self._build(Z[~vm], t[~vm], groups[~vm], CANDIDATES)
            vl, vc = np.unique(groups[vm], return_counts=True)
            for k in VALIDATION_SHOTS:
                ok = vl[vc >= k + 2]
                if len(ok) == 0:
                    continue
                err = {c: [] for c in CANDIDATES}
                for _ in range(self.val_episodes):
                    rows = rng.permutation(np.flatnonzero(groups == rng.choice(ok)))
                    s, q = rows[:k], rows[k : k + 50]
                    for c in CANDIDATES:
                        err[c].append(np.mean((predict_with(c, parts, Z[s], t[s], Z[q]) - t[q]) ** 2))
                sizes[k] = {"k_shot": k, "groups": len(ok), "episodes": self.val_episodes}
                for c in CANDIDATES:
                    self.validation_scores_[k, c] = float(np.mean(err[c]))
        self.choices_ = {}
        for k in sorted({k for k, _ in self.validation_scores_}):
            self.choices_[k] = min(CANDIDATES, key=lambda c: self.validation_scores_[k, c])
        self.validated_ = bool(self.choices_)
        if not self.choices_:
            self.choices_ = {2: "offset"}
        self.episode_sizes_ = sizes
        self.parts_ = self._build(Z, t, groups, set(self.choices_.values()))
        return self

    def choose(self, n: int) -> tuple[int, str]:
        k_used = nearest_k(self.choices_, n)
        return k_used, self.choices_[k_used]
