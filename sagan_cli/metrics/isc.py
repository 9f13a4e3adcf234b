"""Inception Score (Salimans et al. 2016) from the classifier logits *without* bias.

IS = exp E_x KL(p(y|x) ‖ p(y)), computed on each of ``splits`` consecutive parts of the samples
(after one fixed shuffle, ``np.random.RandomState(seed).permutation``, as torch-fidelity does, so an
ordered image folder does not put one class per split); the result is the mean over splits and the
population standard deviation (ddof=0). float64 throughout.
"""

from __future__ import annotations

import numpy as np

SPLITS = 10
SEED = 2020


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def inception_score(logits: np.ndarray, splits: int = SPLITS, shuffle: bool = True,
                    seed: int = SEED) -> tuple[float, float]:
    n = len(logits)
    if n < splits:
        raise ValueError(f"the Inception Score needs at least {splits} images ({splits} splits)")
    logits = np.asarray(logits, np.float64)
    if shuffle:
        logits = logits[np.random.RandomState(seed).permutation(n)]
    log_p = _log_softmax(logits)
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        p_i, log_p_i = p[part], log_p[part]
        with np.errstate(divide="ignore", invalid="ignore"):  # 0·log 0 = 0 for classes nobody predicts
            terms = p_i * (log_p_i - np.log(p_i.mean(axis=0)))
        kl = np.where(p_i > 0, terms, 0.0).sum(axis=1).mean()
        scores.append(np.exp(kl))
    scores = np.asarray(scores)
    return float(scores.mean()), float(scores.std())
