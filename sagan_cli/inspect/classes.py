"""Class labels at inference: a checkpoint's class names, ``--class`` parsed, the uniform default per seed,
and the class weights of an interpolation between two classes.

``--class`` takes ids (``2``, ``0-9``), names (``church_outdoor``) or a comma list of both. A part made of
digits (or two numbers joined by ``-``) is an id or a range of ids; anything else is a name, so a class
whose name is a number is reached by its id. Without ``--class`` a conditional checkpoint draws image
SEED's class uniformly from its own stream, ``torch.Generator().manual_seed(SEED + LABEL_STREAM)``: the
same seed names the same (z, class) in ``sample``, ``attn-map`` and ``evaluate``, alone or among others.
"""

from __future__ import annotations

import re

from sagan_cli.util.errors import SaganError

LABEL_STREAM = 1 << 40  # image SEED's uniform class comes from seed SEED + 2^40 (its z from seed SEED)
_IDS = re.compile(r"^(\d+)(?:-(\d+))?$")


def class_names(state: dict, num_classes: int) -> list[str]:
    """The checkpoint's class names (its dataset's ``classes``); "0".."K-1" for a checkpoint written before
    they were recorded; [] for an unconditional model."""
    data = state.get("data") if isinstance(state.get("data"), dict) else {}
    names = data.get("classes")
    if isinstance(names, list) and len(names) == num_classes and all(isinstance(n, str) for n in names):
        return list(names)
    return [str(i) for i in range(num_classes)]


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:8])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 8 else "")


def parse_classes(spec: str, names: list[str], flag: str = "--class") -> list[int]:
    """'2', '0-9', 'cat,dog', '0,dog' → class ids, checked against the checkpoint's classes."""
    if not names:
        raise SaganError(f"{flag} {spec}: this checkpoint's generator is unconditional (trained without labels); drop {flag}")
    index = {n: i for i, n in enumerate(names)}
    k = len(names)
    ids: list[int] = []
    for part in spec.split(","):
        p = part.strip()
        m = _IDS.match(p)
        if m is None:
            if p not in index:
                raise SaganError(f"{flag} {p!r}: no class of that name in this checkpoint (its classes: {_listing(names)})")
            ids.append(index[p])
            continue
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise SaganError(f"{flag} {p}: range {lo}-{hi} runs backwards")
        if hi >= k:
            raise SaganError(f"{flag} {p}: class ids run 0-{k - 1} for this checkpoint's {k} classes")
        ids.extend(range(lo, hi + 1))
    return ids


def describe(ids: list[int], names: list[str]) -> str:
    """'class 2 (circle)' / '3 classes (0 a, 1 b, 2 c)', for the commands' one-line summaries."""
    if len(ids) == 1:
        return f"class {ids[0]} ({names[ids[0]]})"
    shown = ", ".join(f"{i} {names[i]}" for i in ids[:6]) + (", ..." if len(ids) > 6 else "")
    return f"{len(ids)} classes ({shown})"


def uniform_label(seed: int, num_classes: int) -> int:
    """Image SEED's class when none is asked for: uniform, from its own seeded stream."""
    import torch

    gen = torch.Generator().manual_seed(seed + LABEL_STREAM)
    return int(torch.randint(num_classes, (1,), generator=gen))


def uniform_labels(seeds, num_classes: int) -> list[int]:
    return [uniform_label(s, num_classes) for s in seeds]


UNIFORM_NOTE = "classes drawn uniformly, one per seed from its own seeded stream (pass --class K|NAME to choose)"


def class_weights(a: int, b: int, steps: int, num_classes: int):
    """``steps`` rows of class weights from one-hot ``a`` to one-hot ``b`` (endpoints included): G's
    conditional BatchNorm takes them as a mixture of the two classes' gains and biases."""
    import torch

    t = torch.linspace(0, 1, steps)[:, None]
    eye = torch.eye(num_classes)
    return (1 - t) * eye[a] + t * eye[b]
