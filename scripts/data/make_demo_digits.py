#!/usr/bin/env python3
"""Build the two embedded 8x8-digit data sets of `jizen demo`.

Outputs (in ``crates/jizen-data/assets/`` by default):

* ``mnist8x8-20k.bin``   -- the first 20,000 MNIST *training* images, converted
  to the UCI "optdigits" 8x8 format (integer pixels 0..16).
* ``uci-digits-8x8.bin`` -- the 1,797 UCI/scikit-learn 8x8 digits, in file order.

Binary format ("JZDIGIT1", all integers little-endian)::

    offset  size        field
    0       8           magic  b"JZDIGIT1"
    8       4           u32 count  (N)
    12      4           u32 rows   (8)
    16      4           u32 cols   (8)
    20      N           labels, u8, 0..9
    20+N    N*rows*cols pixels, u8, 0..16, sample-major, each image row-major

Conversion of MNIST to the UCI format.  optdigits was made with the NIST
preprocessing of Garris et al., NISTIR 5469 (1994): ``norm_2nd_gen`` scales each
character's bounding box to a 20-wide x 32-high box (aspect ratio NOT kept),
centres it in a 32x32 bitmap, normalises the stroke width with erosions /
dilations chosen by the on-pixel count, then ``shear_char`` removes the slant.
UCI's data carry the fingerprint of exactly that (every digit spans all 8 block
rows, almost all span block columns 1..6).  ``--fit nist`` (default) does:

1. crop the 28x28 grey image (0..255) to the bounding box of its ink (pixels > 0);
2. scale to [0, 1] (/255) and resize it with bilinear interpolation (separable,
   half-pixel centres, edges clamped -- ``align_corners=False``) to 32 rows x 20
   columns, placed at rows 0..31, columns 6..25 of a 32x32 frame;
3. binarise: a pixel is on iff its value >= 0.5;
4. stroke-width normalisation as NIST: n = on pixels; n > 560: erode twice,
   412 < n <= 560: erode once, 108 <= n < 256: dilate once, n < 108: dilate twice
   (4-neighbour erosion/dilation, outside of the frame = off);
5. deslant as NIST ``shear_char``: take the leftmost ink pixel in the row 2 below
   the top and 2 above the bottom of the ink, f = (x_top - x_bot) / (y_bot - y_top),
   shift row r by round_half_away((r - 16) * f) pixels (zero fill); skipped if the
   ink is <= 5 rows high, a row is empty, or x_top == x_bot;
6. count on pixels in each non-overlapping 4x4 block -> 8x8 values 0..16.

Alternatives kept for comparison (they match UCI worse): ``--fit aspect`` scales
the longer side to 32 keeping the aspect ratio and centres the other (no
morphology, no deslant); ``--fit stretch`` resizes both sides to 32.

Only numpy and the standard library are needed.  Deterministic.  Usage::

    python scripts/data/make_demo_digits.py            # defaults relative to the repo
    python scripts/data/make_demo_digits.py --mnist ../shared/data/mnist \
        --uci ../shared/data/digits-8x8 --out crates/jizen-data/assets
"""

import argparse
import gzip
import hashlib
import os
import struct
import sys

import numpy as np

MAGIC = b"JZDIGIT1"
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_DATA = os.path.join(REPO, "..", "shared", "data")


def read_idx(path):
    """Read a (gzip-compressed) IDX file into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: size mismatch")
    return data.reshape(dims)


_RESIZE_CACHE = {}


def resize_matrix(n_in, n_out):
    """(n_out, n_in) matrix of 1-D linear interpolation, half-pixel centres, edge clamped."""
    key = (n_in, n_out)
    m = _RESIZE_CACHE.get(key)
    if m is None:
        m = np.zeros((n_out, n_in), dtype=np.float64)
        scale = n_in / n_out
        for o in range(n_out):
            src = (o + 0.5) * scale - 0.5
            src = min(max(src, 0.0), n_in - 1.0)
            i0 = int(np.floor(src))
            i1 = min(i0 + 1, n_in - 1)
            t = src - i0
            m[o, i0] += 1.0 - t
            m[o, i1] += t
        _RESIZE_CACHE[key] = m
    return m


def erode(b):
    """4-neighbour erosion, outside of the image counts as off (NIST morphchr.c)."""
    p = np.pad(b, 1)
    return b & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def dilate(b):
    """4-neighbour dilation (NIST morphchr.c)."""
    p = np.pad(b, 1)
    return b | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]


def normalise_stroke(b):
    """NIST norm_2nd_gen stroke-width normalisation, driven by the on-pixel count."""
    n = int(b.sum())
    if n > 560:
        return erode(erode(b))
    if n > 412:
        return erode(b)
    if n < 108:
        return dilate(dilate(b))
    if n < 256:
        return dilate(b)
    return b


def sround(x):
    """C-style round half away from zero."""
    return int(np.sign(x) * np.floor(abs(x) + 0.5))


def deslant(b):
    """NIST shear_char: shear rows horizontally so that the leftmost ink pixel two rows
    below the top and two rows above the bottom line up (rows shift about row h/2)."""
    h, w = b.shape
    rows = np.nonzero(b.any(axis=1))[0]
    if rows.size == 0 or rows[-1] - rows[0] + 1 <= 5:
        return b
    top, bot = min(rows[0] + 2, h - 1), max(rows[-1] - 2, 0)
    tl, bl = np.nonzero(b[top])[0], np.nonzero(b[bot])[0]
    if tl.size == 0 or bl.size == 0 or tl[0] == bl[0]:
        return b
    f = (tl[0] - bl[0]) / float(bot - top)
    out = np.zeros_like(b)
    for r in range(h):
        s = sround((r - h // 2) * f)
        if s >= 0:
            out[r, s:] = b[r, : w - s] if s < w else False
        else:
            out[r, : w + s] = b[r, -s:] if -s < w else False
    return out


def to_bitmap32(img, fit="nist", size=32, thresh=0.5, morph=None, shear=None):
    """One 28x28 uint8 MNIST image -> 32x32 bool bitmap (see the module docstring)."""
    morph = (fit == "nist") if morph is None else morph
    shear = (fit == "nist") if shear is None else shear
    ys, xs = np.nonzero(img > 0)
    if ys.size == 0:
        return np.zeros((size, size), dtype=bool)
    crop = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float64) / 255.0
    h, w = crop.shape
    if fit == "nist":  # NIST norm_2nd_gen: 20 wide x 32 high box, aspect ratio not kept
        nh, nw = size, 20
    elif fit == "aspect":
        s = size / max(h, w)
        nh = max(1, min(size, int(np.floor(h * s + 0.5))))
        nw = max(1, min(size, int(np.floor(w * s + 0.5))))
    elif fit == "stretch":
        nh = nw = size
    else:
        raise ValueError(fit)
    resized = resize_matrix(h, nh) @ crop @ resize_matrix(w, nw).T
    canvas = np.zeros((size, size), dtype=np.float64)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top : top + nh, left : left + nw] = resized
    # Round before thresholding so that last-ulp differences between BLAS kernels
    # cannot flip a pixel: the output is then the same on every machine.
    bits = np.round(canvas, 9) >= thresh
    if morph:
        bits = normalise_stroke(bits)
    if shear:
        bits = deslant(bits)
    return bits


def block_counts(bits):
    """32x32 bool -> 8x8 uint8: number of on pixels in each 4x4 block (0..16)."""
    n = bits.shape[0] // 4
    return bits.reshape(n, 4, n, 4).sum(axis=(1, 3)).astype(np.uint8)


def to_8x8(img, fit="nist", **kw):
    return block_counts(to_bitmap32(img, fit=fit, **kw))


def convert_mnist(mnist_dir, count, fit):
    images = read_idx(os.path.join(mnist_dir, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(mnist_dir, "train-labels-idx1-ubyte.gz"))
    if images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
        raise ValueError("unexpected MNIST shapes")
    if count > images.shape[0]:
        raise ValueError("count larger than the MNIST training set")
    out = np.empty((count, 8, 8), dtype=np.uint8)
    for i in range(count):
        out[i] = to_8x8(images[i], fit=fit)
    return labels[:count].astype(np.uint8), out.reshape(count, 64)


def load_uci(uci_dir):
    path = os.path.join(uci_dir, "digits.csv.gz")
    with gzip.open(path, "rt") as f:
        rows = [line.strip() for line in f if line.strip()]
    arr = np.array([[int(float(v)) for v in r.split(",")] for r in rows], dtype=np.int64)
    if arr.shape[1] != 65:
        raise ValueError(f"{path}: expected 65 columns, got {arr.shape[1]}")
    pixels, labels = arr[:, :64], arr[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: values out of range")
    return labels.astype(np.uint8), pixels.astype(np.uint8)


def encode(labels, pixels, rows=8, cols=8):
    n = labels.shape[0]
    assert pixels.shape == (n, rows * cols) and pixels.dtype == np.uint8
    assert int(pixels.max(initial=0)) <= 16 and int(labels.max(initial=0)) <= 9
    return MAGIC + struct.pack("<III", n, rows, cols) + labels.tobytes() + pixels.tobytes()


def decode(blob):
    """Inverse of encode(), used as a self-check (and as a reference for readers)."""
    if blob[:8] != MAGIC:
        raise ValueError("bad magic")
    n, rows, cols = struct.unpack("<III", blob[8:20])
    if len(blob) != 20 + n + n * rows * cols:
        raise ValueError("bad length")
    labels = np.frombuffer(blob, np.uint8, n, 20)
    pixels = np.frombuffer(blob, np.uint8, n * rows * cols, 20 + n).reshape(n, rows * cols)
    return labels, pixels


def stats(name, labels, pixels):
    p = pixels.astype(np.float64)
    hist = np.bincount(pixels.ravel(), minlength=17) / pixels.size
    print(f"{name}: n={labels.shape[0]}  mean pixel={p.mean():.3f}  std={p.std():.3f}  "
          f"zeros={hist[0]:.3f}  16s={hist[16]:.3f}  "
          f"mean on-pixels/image (0<v)={np.count_nonzero(pixels, axis=1).mean():.1f}")
    print("  value histogram 0..16 (%): " + " ".join(f"{100 * h:.1f}" for h in hist))
    print("  class counts 0..9: " + ", ".join(str(c) for c in np.bincount(labels, minlength=10)))
    return hist


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist", default=os.path.join(DEFAULT_DATA, "mnist"),
                    help="folder with train-images-idx3-ubyte.gz / train-labels-idx1-ubyte.gz")
    ap.add_argument("--uci", default=os.path.join(DEFAULT_DATA, "digits-8x8"),
                    help="folder with digits.csv.gz")
    ap.add_argument("--out", default=os.path.join(REPO, "crates", "jizen-data", "assets"))
    ap.add_argument("--count", type=int, default=20000, help="number of MNIST images (first N)")
    ap.add_argument("--fit", choices=["nist", "aspect", "stretch"], default="nist",
                    help="size normalisation: NIST 20x32 box + stroke/slant normalisation "
                         "(default), or aspect-kept / stretched 32x32 (for comparison only)")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    mnist_name = "mnist8x8-20k" if args.count == 20000 else f"mnist8x8-{args.count}"
    mnist_name += ".bin" if args.fit == "nist" else f"-{args.fit}.bin"
    ml, mp = convert_mnist(args.mnist, args.count, args.fit)
    ul, up = load_uci(args.uci)

    for name, labels, pixels in ((mnist_name, ml, mp), ("uci-digits-8x8.bin", ul, up)):
        blob = encode(labels, pixels)
        dl, dp = decode(blob)
        assert np.array_equal(dl, labels) and np.array_equal(dp, pixels)
        path = os.path.join(args.out, name)
        with open(path, "wb") as f:
            f.write(blob)
        print(f"{name}: {len(blob)} bytes  sha256 {hashlib.sha256(blob).hexdigest()}")

    print()
    hm = stats(f"MNIST->8x8 ({args.fit})", ml, mp)
    hu = stats("UCI digits", ul, up)
    print(f"total-variation distance between value histograms: {0.5 * np.abs(hm - hu).sum():.3f}")
    mm, mu = mp.reshape(-1, 64).mean(0), up.reshape(-1, 64).mean(0)
    print(f"mean-image L1 difference per pixel: {np.abs(mm - mu).mean():.3f} "
          f"(UCI mean image |.| = {mu.mean():.3f})")
    pc = np.mean([np.abs(mp[ml == c].mean(0) - up[ul == c].mean(0)).mean() for c in range(10)])
    print(f"per-class mean-image L1 difference per pixel (mean over classes): {pc:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
