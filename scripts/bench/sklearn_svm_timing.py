#!/usr/bin/env python3
"""scikit-learn's side of crates/jizen-ml/examples/svm_timing.rs: the same cases, the same data.

    /root/venvs/ref/bin/python scripts/bench/sklearn_svm_timing.py
    JIZEN_DATA=../shared/data /root/venvs/ref/bin/python scripts/bench/sklearn_svm_timing.py

- digits: load_digits() (1,797 x 64), StandardScaler; fit on all, predict all; LinearSVC(dual=True)
  and SVC() with the defaults.
- Fashion-MNIST (when JIZEN_DATA is set): first 5,000 training and 2,000 test images of
  $JIZEN_DATA/fashion-mnist, pixels / 255; SVC() with the defaults.

Each case runs 3 times; the median fit and predict times are printed.
"""

import gzip
import os
import time

import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

REPEATS = 3


def idx(path, n):
    with gzip.open(path, "rb") as f:
        b = f.read()
    dims = b[3]
    shape = [int.from_bytes(b[4 + 4 * k : 8 + 4 * k], "big") for k in range(dims)]
    per = int(np.prod(shape[1:])) if dims > 1 else 1
    start = 4 + 4 * dims
    return np.frombuffer(b, dtype=np.uint8, count=n * per, offset=start).reshape(n, per) if dims > 1 else np.frombuffer(
        b, dtype=np.uint8, count=n, offset=start
    )


def timed(label, make, x, y, x_test, y_test):
    fits, preds, acc = [], [], 0.0
    for _ in range(REPEATS):
        t = time.perf_counter()
        m = make().fit(x, y)
        fits.append(time.perf_counter() - t)
        t = time.perf_counter()
        p = m.predict(x_test)
        preds.append(time.perf_counter() - t)
        acc = np.mean(p == y_test)
    f, p = float(np.median(fits)), float(np.median(preds))
    print(f"{label:<32} fit {f:8.4f} s  predict {p:8.4f} s  total {f + p:8.4f} s  accuracy {acc:.4f}")


def main():
    print(f"scikit-learn {sklearn.__version__}, median of {REPEATS} runs")
    x, y = load_digits(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    timed("digits LinearSVC (sq. hinge)", lambda: LinearSVC(dual=True), x, y, x, y)
    timed("digits SVC rbf", lambda: SVC(), x, y, x, y)
    root = os.environ.get("JIZEN_DATA")
    if root:
        d = os.path.join(root, "fashion-mnist")
        xt = idx(os.path.join(d, "train-images-idx3-ubyte.gz"), 5000).astype(np.float64) / 255.0
        yt = idx(os.path.join(d, "train-labels-idx1-ubyte.gz"), 5000).astype(np.int64)
        xe = idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"), 2000).astype(np.float64) / 255.0
        ye = idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"), 2000).astype(np.int64)
        timed("fashion 5000/2000 SVC rbf", lambda: SVC(), xt, yt, xe, ye)
    else:
        print("Fashion-MNIST skipped: set JIZEN_DATA to the shared data folder")


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    main()
