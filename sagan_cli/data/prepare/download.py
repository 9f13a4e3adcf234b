"""HTTP download with a progress bar that resumes a partial file (HTTP Range).

Bytes go to ``<file>.part``; only a transfer that reached the announced size is
renamed to the final name. A broken connection is retried from where it stopped;
a server that cannot be reached is a one-line error that says how to pass a file.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from sagan_cli.util.errors import SaganError
from sagan_cli.util.fsutil import disk_full

RETRIES = 3
TIMEOUT_S = 60.0
_CHUNK = 1 << 20
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Broken(Exception):
    """The connection ended early; the .part file keeps what arrived."""


def _unreachable(url: str, dest: Path, reason, manual: str | None) -> SaganError:
    manual = manual or f"pass --zip {dest.name} (or unpack it and pass --lmdb DIR)"
    return SaganError(f"cannot download {url} ({reason}); fetch it another way, then {manual}")


def _open(url: str, have: int):
    headers = {"User-Agent": "sagan-cli", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def _transfer(resp, part: Path, have: int, reporter) -> tuple[int, int | None]:
    """Append (206) or rewrite (200) ``part`` from ``resp``; returns (bytes on disk, total)."""
    if resp.status == 206:
        m = _RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if not m or int(m.group(1)) != have:
            raise _Broken("the server answered the range request with a different range")
        total = int(m.group(3)) if m.group(3) != "*" else None
        mode = "ab"
    else:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        have, mode = 0, "wb"  # the server ignored Range: start over
    reporter.total = total
    reporter.update(have)
    with open(part, mode) as fh:
        try:
            while chunk := resp.read(_CHUNK):
                fh.write(chunk)
                have += len(chunk)
                reporter.update(have)
        except (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as exc:
            fh.flush()
            raise _Broken(str(exc) or type(exc).__name__) from None
        finally:
            fh.flush()
            os.fsync(fh.fileno())
    return have, total


def download_file(url: str, dest: Path, say: Callable[[str], None], manual: str | None = None) -> Path:
    """Fetch ``url`` to ``dest`` unless it is already there; resume ``dest.part``. ``manual``: how to pass
    the file by hand, for the message when the server cannot be reached (default: LSUN's --zip/--lmdb)."""
    from sagan_cli.util.progress import Reporter

    dest = Path(dest)
    if dest.is_file():
        say(f"using {dest} (downloaded earlier)")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    say(f"downloading {url} → {dest}" + (f" (resuming at {have / 1e6:.1f} MB)" if have else ""))
    reporter = Reporter("download", None, done=have, unit="bytes")
    problem = ""
    try:
        for _attempt in range(RETRIES + 1):
            have = part.stat().st_size if part.exists() else 0
            try:
                resp = _open(url, have)
            except urllib.error.HTTPError as exc:
                if exc.code == 416 and have:  # nothing left to send from `have` on
                    m = re.fullmatch(r"bytes \*/(\d+)", (exc.headers.get("Content-Range") or "").strip())
                    if m and int(m.group(1)) == have:
                        break  # the .part is whole
                    part.unlink()  # longer than the file now on the server: start again
                    problem = "the partial file did not match the server's"
                    continue
                raise SaganError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise _unreachable(url, dest, reason, manual) from None
            try:
                with resp:
                    have, total = _transfer(resp, part, have, reporter)
            except _Broken as exc:
                problem = str(exc)
                continue
            except OSError as exc:
                if disk_full(exc):
                    raise SaganError(f"disk full while downloading to {part}; free space and re-run to resume") from None
                raise
            if total is None or have == total:
                break
            problem = f"connection closed at {have / 1e6:.1f} of {total / 1e6:.1f} MB"
        else:
            raise SaganError(f"download of {url} kept breaking off ({problem}); "
                             f"{part} is kept: re-run the same command to resume")
    finally:
        reporter.close()
    os.replace(part, dest)
    say(f"downloaded {dest} ({dest.stat().st_size / 1e6:.1f} MB)")
    return dest
