"""The validated-choice few-shot classifier behind ``FewShotClassifier(algorithm="auto")``.

:class:`ValidatedChoice` is meta-fitted on the rows of the meta-training
classes. It standardises the features with those rows' mean and standard
deviation and builds candidate representations of a row ``z``:

``"raw"``
    ``z`` itself;
``"white"``
    ``z`` whitened by the pooled within-class covariance of the
    meta-training classes, shrunk halfway to a multiple of the identity
    (nearest centroid on it is linear discriminant analysis with the
    covariance borrowed from the meta-training classes);
``"emb"``
    the penultimate layer of an MLP pre-trained by plain softmax
    classification over all meta-training classes (Tian et al., "Rethinking
    few-shot image classification: a good embedding is all you need", ECCV
    2020), standardised;
``"raw+emb"``
    both blocks side by side, each scaled by ``1 / sqrt(width)``.

Heads fitted on a task's support set: ``"centroid"`` (nearest class mean),
``"logistic"`` (multinomial logistic regression, C=1), ``"1nn"`` (nearest
neighbour; K >= 2 only) and ``"forest"`` (extra trees; raw features only).

Validation holds out meta-training classes (up to three folds of 2-5
classes each), rebuilds the representations on the others and scores every
(representation, head) pair on N-way K-shot episodes of the held-out
classes for K in {1, 5, 10} (those the class sizes allow). Per K it keeps
the best pair, but keeps the best raw-feature pair unless the winner beats
it by more than ``margin``. With fewer than 3 usable meta-training classes
there is nothing to validate on: raw features with nearest centroid at
K = 1 and logistic regression from K = 5.

Validation sees only meta-training classes; a task's new classes may differ
from them (other scales, other informative features). :func:`support_check`
tests the validated choice on the task itself: cross-validation on the
support set (K >= 2) against the rule that needs no meta-training (raw
features standardised with the support rows, logistic regression), and
:class:`~autometa.FewShotClassifier` falls back to that rule only when the
support set shows it significantly better (one-sided sign test on the rows
the two classify differently).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import binomtest
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression
from torch import nn

from autometa.estimators._validated_common import Standardiser, nearest_k

REPRESENTATIONS = ("raw", "white", "emb", "raw+emb")
HEADS = ("centroid", "logistic", "1nn", "forest")
VALIDATION_SHOTS = (1, 5, 10)
EMBEDDING_WIDTHS = (256, 128)
# without validation: raw features, the head by support size
FALLBACK = {1: ("raw", "centroid"), 5: ("raw", "logistic")}
# the support check: folds of the support set, and the sign test's level
SUPPORT_CHECK_FOLDS = 5
SUPPORT_CHECK_ALPHA = 0.05


# -- representations --------------------------------------------------------
def within_class_whitener(Z: np.ndarray, y: np.ndarray, shrink: float = 0.5) -> np.ndarray:
    """A (d, d) matrix whitening the pooled within-class covariance of ``Z``, shrunk towards
    ``trace / d * I`` by ``shrink``; the overall scale of ``Z`` is kept."""
    d = Z.shape[1]
    S = np.zeros((d, d))
    labels = np.unique(y)
    for c in labels:
        R = Z[y == c] - Z[y == c].mean(0)
        S += R.T @ R
    S /= max(len(Z) - len(labels), 1)
    scale = np.trace(S) / d
    if scale <= 0:
        return np.eye(d)
    S = (1 - shrink) * S + shrink * scale * np.eye(d)
    w, V = np.linalg.eigh(S)
    w = np.maximum(w, 1e-6 * w.max())
    return V @ np.diag(w**-0.5) @ V.T * np.sqrt(scale)


class Embedding:
    """An MLP pre-trained by softmax classification over the given classes (RFS).

    Widths ``hidden``, each layer Linear-BatchNorm-ReLU-Dropout(0.1); AdamW
    (lr 1e-3, weight decay 5e-4), label smoothing 0.1, a one-cycle schedule,
    batches of 128 rows; ``steps=None`` trains 30 epochs clipped to 300-1500
    steps. ``transform`` gives the last hidden layer, standardised with the
    training rows' statistics.
    """

    def __init__(self, hidden=EMBEDDING_WIDTHS, steps=None, seed=0):
        self.hidden = tuple(hidden)
        self.steps = steps
        self.seed = seed

    def fit(self, Z: np.ndarray, y: np.ndarray) -> Embedding:
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        classes, codes = np.unique(y, return_inverse=True)
        layers, width = [], Z.shape[1]
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(0.1)]
            width = h
        self.net = nn.Sequential(*layers)
        model = nn.Sequential(self.net, nn.Linear(width, len(classes)))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
        x = torch.as_tensor(Z, dtype=torch.float32)
        t = torch.as_tensor(codes)
        batch = min(128, len(x))
        steps = self.steps or int(np.clip(30 * len(x) / batch, 300, 1500))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps)
        model.train()
        for _ in range(steps):
            idx = torch.as_tensor(rng.choice(len(x), batch, replace=False))
            loss = nn.functional.cross_entropy(model(x[idx]), t[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        self.steps_ = steps
        E = self._hidden(Z)
        self.mean_, self.std_ = E.mean(0), E.std(0) + 1e-6
        return self

    def _hidden(self, Z):
        with torch.no_grad():
            return self.net(torch.as_tensor(Z, dtype=torch.float32)).double().numpy()

    def transform(self, Z: np.ndarray) -> np.ndarray:
        return (self._hidden(Z) - self.mean_) / self.std_


class Representations:
    """The candidate representations ``names`` built from standardised meta-training rows."""

    def __init__(self, Z, y, names, hidden=EMBEDDING_WIDTHS, steps=None, seed=0):
        self.names = tuple(sorted(set(names)))
        self.whitener = within_class_whitener(Z, y) if "white" in names else None
        needs_embedding = any("emb" in n for n in names)
        self.embedding = Embedding(hidden, steps, seed).fit(Z, y) if needs_embedding else None

    def transform(self, name: str, Z: np.ndarray) -> np.ndarray:
        if name == "raw":
            return Z
        if name == "white":
            return Z @ self.whitener
        E = self.embedding.transform(Z)
        if name == "emb":
            return E
        if name == "raw+emb":
            return np.hstack([Z / np.sqrt(Z.shape[1]), E / np.sqrt(E.shape[1])])
        raise ValueError(f"unknown representation {name!r}")


# -- heads on one support set ------------------------------------------------
def _sqdist(A, B):
    return np.maximum((A**2).sum(-1)[..., :, None] - 2 * A @ np.swapaxes(B, -1, -2) + (B**2).sum(-1)[..., None, :], 0)


class Head:
    """A head fitted on one support set: ``F`` features, ``codes`` in 0..n_classes-1.

    ``log_proba(Fq)`` gives per-class log-probabilities (up to a constant per
    row for the distance heads, whose scores are ``-squared distance / 2``).
    """

    def __init__(self, name: str, F: np.ndarray, codes: np.ndarray, n_classes: int, seed: int = 0):
        self.name, self.n_classes = name, n_classes
        if name == "centroid":
            self.centroids = np.stack([F[codes == i].mean(0) for i in range(n_classes)])
        elif name == "1nn":
            self.F, self.codes = F, codes
        elif name == "logistic":
            self.model = LogisticRegression(C=1.0, max_iter=1000).fit(F, codes)
        elif name == "forest":
            self.model = ExtraTreesClassifier(100, random_state=seed, n_jobs=1).fit(F, codes)
        else:
            raise ValueError(f"unknown head {name!r}")

    def log_proba(self, Fq: np.ndarray) -> np.ndarray:
        if self.name == "centroid":
            scores = -0.5 * _sqdist(Fq, self.centroids)
        elif self.name == "1nn":
            d = _sqdist(Fq, self.F)
            scores = np.stack([-0.5 * d[:, self.codes == i].min(1) for i in range(self.n_classes)], 1)
        else:
            with np.errstate(divide="ignore"):
                scores = np.maximum(np.log(self.model.predict_proba(Fq)), -1e3)
        return scores - scores.max(1, keepdims=True)


# -- heads batched over validation episodes ----------------------------------
def batched_predict(head, Fs, ys, Fq, n_way, seed=0):
    """Predicted codes (E, Q) of ``head`` fitted per episode: Fs (E, S, d), ys (E, S) codes, Fq (E, Q, d)."""
    if head == "centroid":
        onehot = np.eye(n_way)[ys]
        P = onehot.transpose(0, 2, 1) @ Fs / onehot.sum(1)[..., None]
        return _sqdist(Fq, P).argmin(-1)
    if head == "1nn":
        return np.take_along_axis(ys, _sqdist(Fq, Fs).argmin(-1), axis=1)
    if head == "logistic":
        return batched_logistic(Fs, ys, Fq, n_way)
    if head == "forest":
        return np.stack([ExtraTreesClassifier(30, random_state=seed, n_jobs=1).fit(Fs[e], ys[e]).predict(Fq[e])
                         for e in range(len(Fs))])
    raise ValueError(f"unknown head {head!r}")


def batched_logistic(Fs, ys, Fq, n_way, C=1.0, iters=100):
    """Multinomial logistic regression per episode, scikit-learn's objective (losses summed + ||W||^2 / 2C)."""
    x = torch.as_tensor(Fs, dtype=torch.float64)
    t = torch.as_tensor(ys, dtype=torch.long)
    E, _, d = x.shape
    W = torch.zeros(E, d, n_way, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(E, 1, n_way, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=iters, tolerance_grad=1e-6, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy((x @ W + b).reshape(-1, n_way), t.reshape(-1), reduction="sum")
        loss = loss + (W**2).sum() / (2 * C)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (torch.as_tensor(Fq, dtype=torch.float64) @ W + b).argmax(-1).numpy()


# -- the validated choice ---------------------------------------------------
class ValidatedChoice:
    """Standardisation, candidate representations and the (representation, head) validated per K.

    Fitted attributes: ``standardise`` (a :class:`Standardiser` of the meta-training rows),
    ``choices_`` ({K: (representation, head)}), ``validation_scores_``
    ({(K, representation, head): mean accuracy on validation episodes}),
    ``episode_sizes_`` (what validation used), ``representations_`` (the
    chosen representations rebuilt on all meta-training classes).
    """

    def __init__(self, max_way=5, hidden=EMBEDDING_WIDTHS, steps=None, margin=0.01, val_episodes=50, val_folds=3,
                 max_query=10, seed=0):
        self.max_way, self.hidden, self.steps, self.margin = max_way, tuple(hidden), steps, margin
        self.val_episodes, self.val_folds, self.max_query, self.seed = val_episodes, val_folds, max_query, seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> ValidatedChoice:
        self.standardise = Standardiser().fit(X)
        Z = self.standardise(X)
        rng = np.random.default_rng(self.seed)
        classes, counts = np.unique(y, return_counts=True)
        scores: dict = {}
        sizes: dict = {}
        folds = 0
        for _ in range(self.val_folds):
            val = self._held_out_classes(classes, counts, rng)
            if val is None:
                break
            folds += 1
            train = ~np.isin(y, val)
            usable = [r for r in REPRESENTATIONS if "emb" not in r or len(np.unique(y[train])) >= 2]
            reps = Representations(Z[train], y[train], usable, self.hidden, self.steps, self.seed)
            Zv, yv = Z[~train], y[~train]
            feats = {r: reps.transform(r, Zv) for r in usable}
            vlab, vcount = np.unique(yv, return_counts=True)
            for k in VALIDATION_SHOTS:
                big = np.isin(yv, vlab[vcount >= k + 1])
                if len(np.unique(yv[big])) < 2:
                    continue
                sidx, qidx, sy, qy, n_way, n_query = self._episodes(yv, k, rng, big)
                sizes[k] = {"n_way": n_way, "k_shot": k, "n_query": n_query}
                for r in usable:
                    for h in HEADS:
                        if (h == "1nn" and k == 1) or (h == "forest" and r != "raw"):
                            continue
                        F = feats[r]
                        pred = batched_predict(h, F[sidx], sy, F[qidx], n_way, seed=self.seed)
                        scores.setdefault((k, r, h), []).append((pred == qy).mean(1))
        self.validation_scores_ = {key: float(np.concatenate(v).mean()) for key, v in scores.items()}
        self.choices_ = {}
        for k in sorted({key[0] for key in self.validation_scores_}):
            cand = {(r, h): v for (kk, r, h), v in self.validation_scores_.items() if kk == k}
            best_raw = max((v, rh) for rh, v in cand.items() if rh[0] == "raw")
            best = max((v, rh) for rh, v in cand.items())
            self.choices_[k] = best[1] if best[0] > best_raw[0] + self.margin else best_raw[1]
        self.validated_ = bool(self.choices_)
        if not self.choices_:
            self.choices_ = dict(FALLBACK)
        self.episode_sizes_ = {"folds": folds, "episodes_per_fold": self.val_episodes if folds else 0,
                               "held_out_classes": int(self._n_held_out(classes, counts)) if folds else 0,
                               "per_k": sizes}
        needed = {r for r, _ in self.choices_.values()}
        self.representations_ = Representations(Z, y, needed, self.hidden, self.steps, self.seed)
        return self

    @staticmethod
    def _holdable(classes, counts):
        """The classes validation may hold out: those with >= 6 rows when there are 3 such, else >= 2."""
        return classes[counts >= 6] if (counts >= 6).sum() >= 3 else classes[counts >= 2]

    def _n_held_out(self, classes, counts):
        n_val = int(np.clip(round(0.3 * len(classes)), 2, 5))
        return min(n_val, len(classes) - 1, len(self._holdable(classes, counts)))

    def _held_out_classes(self, classes, counts, rng):
        if (counts >= 2).sum() < 3:
            return None
        return rng.choice(self._holdable(classes, counts), self._n_held_out(classes, counts), replace=False)

    def _episodes(self, yv, k, rng, mask):
        cls, cnt = np.unique(yv[mask], return_counts=True)
        n_way = min(self.max_way, len(cls))
        n_query = int(min(self.max_query, cnt.min() - k))
        S, Q = [], []
        for _ in range(self.val_episodes):
            s, q = [], []
            for c in rng.choice(cls, n_way, replace=False):
                rows = rng.permutation(np.flatnonzero(yv == c))
                s.append(rows[:k])
                q.append(rows[k : k + n_query])
            S.append(np.concatenate(s))
            Q.append(np.concatenate(q))
        ways = np.arange(n_way)
        return (np.array(S), np.array(Q), np.tile(np.repeat(ways, k), (len(S), 1)),
                np.tile(np.repeat(ways, n_query), (len(S), 1)), n_way, n_query)

    def choose(self, k: int) -> tuple[int, str, str]:
        """(validated K nearest to ``k`` on a log scale, representation, head) for a support of ``k`` per class."""
        k_used = nearest_k(self.choices_, k)
        rep, head = self.choices_[k_used]
        if head == "1nn" and k == 1:
            head = "centroid"
        return k_used, rep, head

    def features(self, rep: str, X: np.ndarray) -> np.ndarray:
        return self.representations_.transform(rep, self.standardise(X))


# -- the support check -------------------------------------------------------
def support_folds(codes: np.ndarray, n_folds: int = SUPPORT_CHECK_FOLDS, seed: int = 0) -> np.ndarray:
    """Fold of each support row: every class's rows, shuffled, dealt in turn into ``min(K, n_folds)``
    folds (K: the smallest class), so that every fold leaves each class at least one training row."""
    k = int(np.bincount(codes).min())
    n = min(k, n_folds)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(codes), dtype=int)
    for c in np.unique(codes):
        rows = rng.permutation(np.flatnonzero(codes == c))
        folds[rows] = np.arange(len(rows)) % n
    return folds


def cross_validated_correct(make_features, head: str, X: np.ndarray, codes: np.ndarray, n_classes: int,
                            folds: np.ndarray, seed: int = 0) -> np.ndarray:
    """Whether each support row is classified right by ``head`` fitted on the other folds;
    ``make_features(X_train)`` returns the feature map used for that fold."""
    correct = np.zeros(len(codes), dtype=bool)
    for f in np.unique(folds):
        train = folds != f
        features = make_features(X[train])
        fitted = Head(head, features(X[train]), codes[train], n_classes, seed=seed)
        correct[~train] = fitted.log_proba(features(X[~train])).argmax(1) == codes[~train]
    return correct


def support_check(features, head: str, X: np.ndarray, codes: np.ndarray, n_classes: int, seed: int = 0,
                  alpha: float = SUPPORT_CHECK_ALPHA) -> dict:
    """Cross-validate, on a task's support set, the validated choice (fixed ``features``, ``head``)
    against the rule that needs no meta-training (:data:`FALLBACK` at K = 5: logistic regression on the
    raw features standardised with the support rows).

    Returns ``{"folds", "validated", "support_rule", "p_value", "switched"}``: the number of folds, the
    two cross-validated accuracies, the one-sided sign-test p-value of "the support rule is better"
    over the rows exactly one of them gets right, and whether it is below ``alpha``.
    """
    folds = support_folds(codes, seed=seed)
    chosen = cross_validated_correct(lambda _: features, head, X, codes, n_classes, folds, seed)
    rule = cross_validated_correct(lambda Xt: Standardiser().fit(Xt), FALLBACK[5][1], X, codes, n_classes,
                                   folds, seed)
    wins, losses = int((rule & ~chosen).sum()), int((chosen & ~rule).sum())
    p = binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue if wins + losses else 1.0
    return {"folds": int(folds.max() + 1), "validated": float(chosen.mean()), "support_rule": float(rule.mean()),
            "p_value": float(p), "switched": bool(p < alpha)}
