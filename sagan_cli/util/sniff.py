"""What a file is, by its first bytes: checked before anything is handed to a loader.

``torch.load`` and ``np.load`` would call any file without their magic bytes "pickled data" (and
would unpickle it where allowed); the commands refuse such files by what they are instead.
"""

from __future__ import annotations

from pathlib import Path

from sagan_cli.util.errors import SaganError

ZIP = b"PK\x03\x04"  # torch.save archives (PyTorch >= 1.6), .npz
NPY = b"\x93NUMPY"
PICKLE = b"\x80"  # pickle protocol 2 and later
HEAD_BYTES = 16


def read_head(path: Path, cannot_read: str) -> bytes:
    """The first bytes of ``path``; an unreadable file is the SaganError ``cannot_read: reason``."""
    try:
        with open(path, "rb") as fh:
            return fh.read(HEAD_BYTES)
    except OSError as exc:
        raise SaganError(f"{cannot_read}: {exc.strerror or exc}") from None


def describe(head: bytes) -> str:
    """What a file with these first bytes looks like, for an error message ("a PNG image")."""
    if not head:
        return "an empty file"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith(NPY):
        return "a NumPy array file"
    if head.startswith(ZIP):
        return "a zip archive"
    if head.startswith(PICKLE):
        return "a raw Python pickle (never unpickled: it could run code)"
    if head[:1] in (b"{", b"["):
        return "a JSON file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "an unknown binary file"
    return "a text file" if text.isprintable() or "\n" in text else "an unknown binary file"


def unpickler_reason(exc: Exception) -> str:
    """The informative line of torch's weights_only refusal (it is many lines long)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error" in ln:
            reason = ln.split("error:", 1)[-1].strip()
            if not reason and i + 1 < len(lines):  # the reason sits on the next line
                reason = lines[i + 1]
            return reason.split(". ")[0][:200] or type(exc).__name__
    return (lines[0] if lines else type(exc).__name__)[:200]
