"""Real-data statistics files: ``mu``, ``sigma`` (float64) and protocol metadata in one ``.npz``.

The cache lives in ``~/.cache/sagan/stats/`` and is keyed by what determines the numbers: the
dataset's content fingerprint (so a moved or copied dataset still hits), the feature protocol, the
sha256 of the Inception weights file, and which real images were used (``--num-real``). Files are
written atomically. When KID or precision/recall were asked for, the real pool3 features (float32)
are stored too, so later runs need not re-extract them.

``--real-stats FILE`` also accepts a pytorch-fid ``.npz`` (``mu`` and ``sigma`` only), with a warning:
pytorch-fid resizes with ``F.interpolate``, not TF1 bilinear, so its statistics differ slightly.
Every file is opened with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sagan_cli.util import sniff
from sagan_cli.util.errors import SaganError
from sagan_cli.util.fsutil import atomic_open

# Bump when anything that changes the features changes (resize, normalisation, network, subset rule).
PROTOCOL = "sagan-inception-2015-12-05/tf1-bilinear-299/(x-128)/128/pool3-2048/v1"
DIM = 2048


@dataclass
class RealStats:
    mu: np.ndarray
    sigma: np.ndarray
    meta: dict = field(default_factory=dict)
    features: np.ndarray | None = None
    foreign: bool = False  # no sagan metadata (e.g. a pytorch-fid file)


def stats_dir() -> Path:
    from sagan_cli.metrics.weights import sagan_cache_dir

    return sagan_cache_dir() / "stats"


def cache_meta(fingerprint: str, weights_sha256: str, num_real: int, count: int) -> dict:
    return {"protocol": PROTOCOL, "fingerprint": fingerprint, "weights_sha256": weights_sha256,
            "num_real": int(num_real), "dataset_count": int(count)}


def cache_path(meta: dict) -> Path:
    key = hashlib.sha256(json.dumps({k: meta[k] for k in sorted(meta)}, sort_keys=True).encode()).hexdigest()[:16]
    fp = meta["fingerprint"].split(":")[-1][:12]
    return stats_dir() / f"{fp}-n{meta['num_real']}-{key}.npz"


def save_stats(path: Path, stats: RealStats) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"mu": np.asarray(stats.mu, np.float64), "sigma": np.asarray(stats.sigma, np.float64),
              "meta": np.array(json.dumps({**stats.meta, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))}
    if stats.features is not None:
        arrays["features"] = np.asarray(stats.features, np.float32)
    with atomic_open(path) as fh:
        np.savez(fh, **arrays)
    return path


def load_stats(path: Path, flag: str = "--real-stats") -> RealStats:
    """Read a statistics file; a damaged, pickled or foreign-shaped file is a one-line SaganError."""
    path = Path(path)
    if not path.is_file():
        raise SaganError(f"{flag} {path}: no such file")
    head = sniff.read_head(path, f"{flag} {path}: cannot read it")
    # a pickle goes on to np.load, which refuses it (allow_pickle=False) with its own message
    if not head.startswith((sniff.ZIP, sniff.NPY, sniff.PICKLE)):
        raise SaganError(f"{flag} {path} is not an .npz statistics file (it is {sniff.describe(head)})")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise SaganError(f"{flag} {path}: a single .npy array, expected an .npz with mu and sigma")
        with z:
            names = set(z.files)
            if not {"mu", "sigma"} <= names:
                raise SaganError(f"{flag} {path}: no 'mu'/'sigma' arrays in it (has {', '.join(sorted(names)) or 'nothing'})")
            mu, sigma = np.asarray(z["mu"], np.float64), np.asarray(z["sigma"], np.float64)
            meta = json.loads(str(z["meta"])) if "meta" in names else None
            features = np.asarray(z["features"]) if "features" in names else None
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise SaganError(f"{flag} {path}: refused to load, it holds pickled objects (allow_pickle=False)") from None
        raise SaganError(f"{flag} {path} is not a readable .npz statistics file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise SaganError(f"{flag} {path} is not a readable .npz statistics file ({type(exc).__name__})") from None
    if mu.shape != (DIM,) or sigma.shape != (DIM, DIM):
        raise SaganError(f"{flag} {path}: mu {mu.shape} / sigma {sigma.shape}, expected ({DIM},) / ({DIM}, {DIM}) "
                         "pool3 statistics")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise SaganError(f"{flag} {path}: mu/sigma hold NaN or infinite values")
    if features is not None and (features.ndim != 2 or features.shape[1] != DIM):
        raise SaganError(f"{flag} {path}: 'features' has shape {features.shape}, expected N×{DIM}")
    return RealStats(mu, sigma, meta if isinstance(meta, dict) else {}, features, foreign=meta is None)


def check_compatible(stats: RealStats, path: Path, weights_sha256: str) -> str | None:
    """None when ``stats`` were made by this protocol with these weights; a warning for foreign files.

    A sagan file from another protocol version or other weights is refused: its numbers would not
    be comparable.
    """
    if stats.foreign:
        return (f"{path} has no sagan protocol metadata (a pytorch-fid file?); using its mu/sigma as given. "
                "pytorch-fid resizes with F.interpolate, not TF1 bilinear, so FID against it differs slightly from ours")
    if stats.meta.get("protocol") != PROTOCOL:
        raise SaganError(f"--real-stats {path} was computed with protocol {stats.meta.get('protocol')!r}, "
                         f"this sagan uses {PROTOCOL!r}; recompute it with --data")
    if stats.meta.get("weights_sha256") != weights_sha256:
        raise SaganError(f"--real-stats {path} was computed with other Inception weights "
                         f"(sha256 {str(stats.meta.get('weights_sha256'))[:12]}…, these are {weights_sha256[:12]}…); "
                         "recompute it with --data")
    return None
