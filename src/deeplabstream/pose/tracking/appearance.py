"""A per-session linear classifier of identities from appearance, learned while animals are apart.

Fitted beside the live loop, never on it; used at every frame (one matrix product).
Design: docs/pose-internals.md, "pose.tracking.appearance".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

COMPONENTS = 48
"""Most principal components the discriminant analysis works in."""
SHRINKAGE = 0.2
"""Weight of the mean variance in the shrunk pooled covariance (0: none, 1: isotropic)."""
HELD_OUT_SHARE = 0.25
"""The newest share of the samples' time span is held out for calibration."""
MIN_HELD_OUT = 10
"""Held-out samples each identity needs before a model is fitted."""
MIN_ACCURACY = 0.9
"""Below this held-out accuracy a model says nothing (its probabilities are made equal)."""
MIN_SAMPLES_PER_IDENTITY = 45
"""A model is fitted once two identities have this many samples (1.5 s apart at 30 fps)."""
_TEMPERATURES = np.geomspace(0.05, 200.0, 61)
_ABSENT_SCORE = -50.0  # the score of an identity without samples: a probability of ~1e-22


@dataclass(frozen=True)
class AppearanceModel:
    """A fitted identity classifier: ``softmax(weights @ features + bias)``.

    ``accuracy`` is the share of held-out (newest) samples classified right; ``version`` counts up
    from 1 over a session.
    """

    weights: np.ndarray
    bias: np.ndarray
    accuracy: float
    samples: int
    version: int = 1

    @property
    def identities(self) -> int:
        """A, the identities it tells apart."""
        return int(self.weights.shape[0])

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Return the (A,) probabilities of each identity for one feature vector (F,)."""
        scores = self.weights @ features + self.bias
        scores -= scores.max()
        odds = np.exp(scores)
        return odds / odds.sum()


def held_out(times: np.ndarray) -> np.ndarray:
    """Return (N,) bool: the samples held out for calibration (the newest of the time span)."""
    times = np.asarray(times, np.float64)
    if times.size == 0:
        return np.zeros(0, bool)
    start, end = float(times.min()), float(times.max())
    return times > end - HELD_OUT_SHARE * (end - start)


def fit_appearance(
    features: np.ndarray,
    labels: np.ndarray,
    times: np.ndarray,
    identities: int,
    version: int = 1,
) -> AppearanceModel | None:
    """Fit an :class:`AppearanceModel` on (N, F) ``features``; None with too few samples.

    ``labels`` are 0 to ``identities - 1``; ``times`` (seconds) choose the held-out newest samples.
    """
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels, np.int64)
    counts = np.bincount(labels, minlength=identities)[:identities]
    # Identities never seen apart long enough (a model for more animals than the arena holds)
    # are left out: their probability is nil until they are.
    present = np.flatnonzero(counts >= MIN_SAMPLES_PER_IDENTITY)
    if present.size < 2:
        return None
    keep = np.isin(labels, present)
    features, times = features[keep], np.asarray(times)[keep]
    labels = np.searchsorted(present, labels[keep])
    classes = int(present.size)
    test = held_out(times)
    train = ~test
    if (
        np.bincount(labels[test], minlength=classes).min() < MIN_HELD_OUT
        or np.bincount(labels[train], minlength=classes).min() < MIN_HELD_OUT
    ):
        return None  # too little on either side of the split to know what it is worth
    weights, bias = _discriminant(features[train], labels[train], classes)
    scores = features[test] @ weights.T + bias
    temperature = _temperature(scores, labels[test])
    accuracy = float(np.mean(scores.argmax(axis=1) == labels[test]))
    all_weights = np.zeros((identities, features.shape[1]))
    all_bias = np.full(identities, _ABSENT_SCORE)
    if accuracy >= MIN_ACCURACY:
        all_weights[present], all_bias[present] = weights / temperature, bias / temperature
    else:  # no better than a guess that happened to come off: say nothing
        all_bias[present] = 0.0
    return AppearanceModel(all_weights, all_bias, accuracy, len(labels), version)


def _discriminant(
    features: np.ndarray, labels: np.ndarray, identities: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the (A, F) weights and (A,) bias of shrunk LDA in principal components."""
    mean = features.mean(axis=0)
    spread = features.std(axis=0) + 1e-6
    standard = (features - mean) / spread
    components = min(COMPONENTS, standard.shape[0] - identities, standard.shape[1])
    _, _, rows = np.linalg.svd(standard, full_matrices=False)
    basis = rows[:components]  # (C, F)
    projected = standard @ basis.T
    centres = np.stack([projected[labels == i].mean(axis=0) for i in range(identities)])
    residual = projected - centres[labels]
    covariance = residual.T @ residual / max(len(labels) - identities, 1)
    level = float(np.trace(covariance)) / components
    covariance = (1.0 - SHRINKAGE) * covariance + SHRINKAGE * level * np.eye(components)
    solved = np.linalg.solve(covariance, centres.T).T  # (A, C): centres @ inverse
    offsets = -0.5 * np.einsum("ac,ac->a", solved, centres)
    # Back to the raw features: x -> ((x - mean) / spread) @ basis.T
    weights = (solved @ basis) / spread
    bias = offsets - weights @ mean
    return weights, bias


def _temperature(scores: np.ndarray, labels: np.ndarray) -> float:
    """Return the divisor of the scores that best fits ``labels`` (likelihood, grid search)."""
    best, best_loss = 1.0, math.inf
    rows = np.arange(len(labels))
    for temperature in _TEMPERATURES:
        scaled = scores / temperature
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        loss = float(np.mean(log_norm - scaled[rows, labels]))
        if loss < best_loss:
            best, best_loss = float(temperature), loss
    return best


class AppearanceLearner(Protocol):
    """Where samples go and models come from (in the background, or inline)."""

    def add(self, features: np.ndarray, identity: int, time_s: float) -> None:
        """Hand over one labelled sample; must return at once."""
        ...

    def restart(self) -> None:
        """Forget every sample handed over so far, and the model (their labels are not trusted)."""
        ...

    def latest(self) -> AppearanceModel | None:
        """Return the newest model (cheap: called at every frame); None before the first."""
        ...


@dataclass
class SampleBank:
    """At most ``per_identity`` samples of each identity (older ones replaced at random)."""

    identities: int
    features: int
    per_identity: int = 1500
    seed: int = 0
    _rows: list[list[tuple[np.ndarray, float]]] = field(init=False, repr=False)
    _seen: np.ndarray = field(init=False, repr=False)
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Start empty."""
        self.clear()
        self._rng = np.random.default_rng(self.seed)

    def clear(self) -> None:
        """Drop every sample."""
        self._rows = [[] for _ in range(self.identities)]
        self._seen = np.zeros(self.identities, np.int64)

    def add(self, features: np.ndarray, identity: int, time_s: float) -> None:
        """Keep a sample (reservoir sampling per identity)."""
        if not 0 <= identity < self.identities:
            return
        rows, seen = self._rows[identity], int(self._seen[identity])
        self._seen[identity] += 1
        if len(rows) < self.per_identity:
            rows.append((np.asarray(features, np.float32), float(time_s)))
            return
        slot = int(self._rng.integers(seen + 1))
        if slot < self.per_identity:
            rows[slot] = (np.asarray(features, np.float32), float(time_s))

    @property
    def counts(self) -> np.ndarray:
        """(A,) samples held per identity."""
        return np.array([len(rows) for rows in self._rows], np.int64)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the samples as (N, F) features, (N,) labels and (N,) times."""
        features = [row[0] for rows in self._rows for row in rows]
        times = [row[1] for rows in self._rows for row in rows]
        labels = [identity for identity, rows in enumerate(self._rows) for _ in rows]
        if not features:
            return np.empty((0, self.features), np.float32), np.empty(0, np.int64), np.empty(0)
        return np.stack(features), np.asarray(labels, np.int64), np.asarray(times)


class InlineLearner:
    """Fits in the caller's thread every ``refit_every`` new samples (tests, offline tools)."""

    def __init__(self, identities: int, features: int, refit_every: int = 100) -> None:
        self.bank = SampleBank(identities, features)
        self.refit_every = refit_every
        self._model: AppearanceModel | None = None
        self._new = 0
        self.fits = 0

    def add(self, features: np.ndarray, identity: int, time_s: float) -> None:
        """Keep the sample; fit when enough new ones have come."""
        self.bank.add(features, identity, time_s)
        self._new += 1
        if self._new >= self.refit_every:
            self.fit()

    def fit(self) -> AppearanceModel | None:
        """Fit a model on the samples now (None with too few); keep it if there is one."""
        self._new = 0
        model = fit_appearance(*self.bank.arrays(), self.bank.identities, self.fits + 1)
        if model is not None:
            self._model = model
            self.fits += 1
        return model

    def restart(self) -> None:
        """Forget the samples and the model."""
        self.bank.clear()
        self._new = 0
        self._model = None

    def latest(self) -> AppearanceModel | None:
        """Return the newest model."""
        return self._model
