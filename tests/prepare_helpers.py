"""Tiny LSUN-format sources for the prepare tests: an lmdb, its zip, image folders, a local HTTP server."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

CATEGORY, SPLIT = "church_outdoor", "train"
STEM = f"{CATEGORY}_{SPLIT}_lmdb"
# (width, height): mostly non-square, the short side at least 45 px, so the default --min-size (half
# --imsize) keeps them all at 32 and 64 px
SIZES = [(72, 54), (54, 78), (60, 60), (92, 50), (45, 68)]


def picture(i: int, width: int, height: int) -> "Image.Image":
    """A smooth picture with a block in it (compresses like a photo, decodes fast)."""
    from PIL import Image

    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.uniform(0, 255, size=3)
    img = (base[None, None] + 90 * np.sin(xx[..., None] / (3 + i % 5) + yy[..., None] / 7.0 + np.arange(3))).clip(0, 255)
    r, c = rng.integers(0, height // 2), rng.integers(0, width // 2)
    img[r : r + height // 3, c : c + width // 3] = rng.uniform(0, 255, size=3)
    return Image.fromarray(img.astype(np.uint8), "RGB")


def encode(img, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=90)
    return buf.getvalue()


def lsun_key(i: int) -> bytes:
    return hashlib.sha1(f"image-{i}".encode()).hexdigest().encode()


def make_lsun_lmdb(root: Path, n: int = 12, corrupt: tuple[int, ...] = (5,)) -> tuple[Path, dict[bytes, bytes]]:
    """``root/<stem>/data.mdb``: n entries under 40-hex keys, JPEG and WebP alternately,
    non-square; the entries in ``corrupt`` are truncated JPEGs. Returns (dir, key→value)."""
    import lmdb

    values = {}
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        data = encode(picture(i, w, h), "JPEG" if i % 2 == 0 else "WEBP")
        if i in corrupt:
            data = encode(picture(i, w, h), "JPEG")[: 200]
        values[lsun_key(i)] = data
    directory = root / STEM
    directory.mkdir(parents=True)
    env = lmdb.open(str(directory), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for k, v in values.items():
            txn.put(k, v)
    env.close()
    return directory, values


def make_zip(lmdb_dir: Path, zip_path: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(lmdb_dir.iterdir()):
            zf.write(f, f"{lmdb_dir.name}/{f.name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return zip_path


def reference(values: dict[bytes, bytes], imsize: int, crop: str = "center", resample: str = "lanczos") -> tuple[np.ndarray, list[bytes]]:
    """Independent Pillow decode + centre crop + resize of the decodable values, in key order."""
    from PIL import Image

    filt = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "box": Image.BOX}[resample]
    out, bad = [], []
    for key in sorted(values):
        try:
            img = Image.open(io.BytesIO(values[key])).convert("RGB")
        except OSError:
            bad.append(key)
            continue
        w, h = img.size
        if crop == "center":
            s = min(w, h)
            img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        out.append(np.asarray(img.resize((imsize, imsize), filt)).transpose(2, 0, 1))
    return np.stack(out), bad


class FileServer:
    """Serves one file on 127.0.0.1 with HTTP Range support; can cut the next transfer in half."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name = data, name
        self.ranges: list[str | None] = []
        self.cut_next = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.ranges.append(self.headers.get("Range"))
                if self.path.rsplit("/", 1)[-1] != outer.name:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.data) - 1}/{len(outer.data)}")
                else:
                    self.send_response(200)
                body = outer.data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_next:
                    outer.cut_next = False
                    body = body[: len(body) // 2]
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/lsun/scenes"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def die_in_worker(*args):
    """Stands in for the worker's chunk function: the process vanishes (as if OOM-killed)."""
    import os

    os._exit(9)
