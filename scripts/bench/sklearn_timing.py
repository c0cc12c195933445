#!/usr/bin/env python3
"""scikit-learn's side of crates/jizen-ml/examples/ml_timing.rs: the same cases, data, settings and JSON.

    PY=$(bash scripts/fixtures/setup-env.sh | tail -n 1)
    $PY scripts/bench/sklearn_timing.py                                  # digits only
    JIZEN_DATA=/work/shared/data $PY scripts/bench/sklearn_timing.py     # + Fashion-MNIST
    $PY scripts/bench/sklearn_timing.py --only svc --only digits/knn --repeats 5
    $PY scripts/bench/sklearn_timing.py --quick                          # tiny sizes: pipeline check

Prints one JSON line per case on stdout, with the fields of ml_timing.rs ("case", "data",
"n_train", "n_test", "fit_ms" (median), "fit_ms_min", "fit_ms_max", "predict_ms" (median of
"predict_op" on the test part), "predict_op", "quality", "quality_kind", "n_iter", "repeats",
"threads") plus "version". Notes go to stderr. Usually run by scripts/bench/compare_ml.py.

Data, as in ml_timing.rs (features standardised by a StandardScaler fit on the training part,
outside the timings):
  digits   tests/fixtures/sklearn_ml.safetensors (digits.x, digits.y: load_digits()); sample i is
           a test sample when i % 4 == 3 (1,348 train, 449 test)
  fashion  (when JIZEN_DATA is set) $JIZEN_DATA/fashion-mnist, pixels / 255; the first 10,000
           training and 2,000 test images (the first 5,000 training images for svc-rbf);
           gmm-diag-pca50 fits on the 50-component projection of the standardised data
           (PCA(50, svd_solver="full") fit on the training part, outside the timings)

Settings, chosen to do the same work as jizen-ml (scikit-learn's defaults unless said):
  logreg      LogisticRegression(lbfgs, multinomial, C=1, max_iter=100, tol=1e-4)
  linear-svm  LinearSVC(dual=True, squared hinge, C=1, tol=1e-4, max_iter=1000), one-vs-rest;
              dual=True explicitly: the default dual="auto" picks the primal solver when
              n_samples > n_features, and jizen has only the dual coordinate descent
  svc-rbf     SVC(C=1, rbf, gamma="scale", tol=1e-3, shrinking, cache_size=200)
  knn-*       KNeighborsClassifier(5, algorithm="brute" or "kd_tree"); leaf_size 30 (jizen's k-d
              tree leaves hold at most 16 rows, a constant)
  pca-full*   PCA(svd_solver="full"); pca-rand*: PCA(svd_solver="randomized", n_oversamples=10,
              iterated_power="auto", power_iteration_normalizer="QR", random_state=0); "QR"
              because jizen re-orthonormalises by QR after every product (scikit-learn's "auto"
              would use LU, which is cheaper)
  gmm-*       GaussianMixture(10, init_params="kmeans", n_init=1, tol=1e-3, reg_covar=1e-6,
              max_iter=100, random_state=0)
  kmeans      KMeans(10, init="k-means++", n_init=1, max_iter=300, tol=1e-4, algorithm="lloyd",
              random_state=0)
Seeded initialisations (k-means++, the GMM's k-means start, the randomized SVD's test vectors)
draw different random numbers from jizen's, so iteration counts and local optima can differ.

Threads: --threads (default 2) caps OpenMP and BLAS through threadpoolctl, and sets
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS before NumPy loads unless already set.
"""

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DIGITS_CASES = ["logreg", "linear-svm", "svc-rbf", "knn-brute", "knn-kdtree", "pca-full", "pca-rand20",
                "gmm-full", "gmm-diag", "kmeans"]
FASHION_CASES = ["logreg", "linear-svm", "svc-rbf", "knn-brute", "pca-full50", "pca-rand50",
                 "gmm-diag-pca50", "kmeans"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", default=[],
                   help="keep the cases whose data/case contains this substring (repeatable)")
    p.add_argument("--repeats", type=int, default=None, help="fits per case (default 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the pipeline")
    p.add_argument("--list", action="store_true", help="print the selected data/case names and stop")
    p.add_argument("--threads", type=int, default=2, help="OpenMP / BLAS threads (default 2)")
    a = p.parse_args()
    if a.repeats is None:
        a.repeats = 1 if a.quick else 3
    if a.repeats < 1 or a.threads < 1:
        p.error("--repeats and --threads must be positive")
    return a


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, str(ARGS.threads))

import numpy as np  # noqa: E402  (after the thread variables)
import sklearn  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC, LinearSVC  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def wanted(data, case):
    name = f"{data}/{case}"
    return not ARGS.only or any(s in name for s in ARGS.only)


class Data:
    def __init__(self, name, x_train, y_train, x_test, y_test):
        self.name = name
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test


def standardised(name, x_train, y_train, x_test, y_test):
    """Data with both parts scaled by a StandardScaler fit on the training part."""
    scaler = StandardScaler().fit(x_train)
    return Data(name, scaler.transform(x_train), y_train, scaler.transform(x_test), y_test)


def digits(n=None):
    d = load_file(str(REPO / "tests" / "fixtures" / "sklearn_ml.safetensors"))
    x, y = d["digits.x"].astype(np.float64), d["digits.y"].astype(np.int64)
    if n is not None:
        x, y = x[:n], y[:n]
    test = np.arange(len(y)) % 4 == 3
    return standardised("digits", x[~test], y[~test], x[test], y[test])


def idx(path, n):
    """The first n items of a gzip'd unsigned-byte IDX file, one row per item."""
    with gzip.open(path, "rb") as f:
        b = f.read()
    dims = b[3]
    shape = [int.from_bytes(b[4 + 4 * k: 8 + 4 * k], "big") for k in range(dims)]
    per = int(np.prod(shape[1:])) if dims > 1 else 1
    return np.frombuffer(b, dtype=np.uint8, count=n * per, offset=4 + 4 * dims).reshape(n, per)


def fashion(root, n_train, n_test):
    d = Path(root) / "fashion-mnist"

    def load(split, n):
        x = idx(d / f"{split}-images-idx3-ubyte.gz", n).astype(np.float64) / 255.0
        y = idx(d / f"{split}-labels-idx1-ubyte.gz", n).ravel().astype(np.int64)
        return x, y

    return standardised("fashion", *load("train", n_train), *load("t10k", n_test))


def run_case(data, case, n_train, predict_op, quality_kind, make, x_train, y_train, predict, quality):
    """Times make().fit then predict ARGS.repeats times; prints the case's JSON line."""
    if not wanted(data.name, case):
        return
    fits, preds, last = [], [], (float("nan"), None)
    for _ in range(ARGS.repeats):
        model = make()
        t = time.perf_counter()
        if y_train is None:
            model.fit(x_train)
        else:
            model.fit(x_train, y_train)
        fits.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        p = predict(model)
        preds.append((time.perf_counter() - t) * 1e3)
        last = quality(model, p)
    print(json.dumps({
        "case": case, "data": data.name, "n_train": int(n_train), "n_test": int(len(data.x_test)),
        "fit_ms": float(np.median(fits)), "fit_ms_min": min(fits), "fit_ms_max": max(fits),
        "predict_ms": float(np.median(preds)), "predict_op": predict_op,
        "quality": float(last[0]), "quality_kind": quality_kind,
        "n_iter": None if last[1] is None else int(last[1]),
        "repeats": ARGS.repeats, "threads": ARGS.threads, "version": f"scikit-learn {sklearn.__version__}",
    }), flush=True)


def classify(d, case, make, n_train=None, n_iter=lambda m: None):
    n = len(d.y_train) if n_train is None else n_train
    run_case(d, case, n, "predict", "accuracy", make, d.x_train[:n], d.y_train[:n],
             lambda m: m.predict(d.x_test), lambda m, p: (np.mean(p == d.y_test), n_iter(m)))


def pca(d, case, n_components, **kw):
    run_case(d, case, len(d.y_train), "transform", "explained variance ratio sum",
             lambda: PCA(n_components, **kw), d.x_train, None,
             lambda m: m.transform(d.x_test), lambda m, _: (m.explained_variance_ratio_.sum(), None))


def gmm(d, case, covariance_type):
    make = lambda: GaussianMixture(10, covariance_type=covariance_type, tol=1e-3, reg_covar=1e-6,  # noqa: E731
                                   max_iter=100, n_init=1, init_params="kmeans", random_state=0)
    # Quality: the training data's mean log-likelihood (see ml_timing.rs); the timed op scores the test part.
    run_case(d, case, len(d.y_train), "score", "mean log-likelihood (train)", make, d.x_train, None,
             lambda m: m.score(d.x_test), lambda m, _: (m.score(d.x_train), m.n_iter_))


def kmeans(d):
    make = lambda: KMeans(10, init="k-means++", n_init=1, max_iter=300, tol=1e-4,  # noqa: E731
                          algorithm="lloyd", random_state=0)
    run_case(d, "kmeans", len(d.y_train), "predict", "-inertia per test sample", make, d.x_train, None,
             lambda m: m.predict(d.x_test), lambda m, _: (m.score(d.x_test) / len(d.x_test), m.n_iter_))


def logreg(d):
    classify(d, "logreg", lambda: LogisticRegression(C=1.0, solver="lbfgs", max_iter=100, tol=1e-4),
             n_iter=lambda m: int(np.max(m.n_iter_)))


def linear_svm(d):
    classify(d, "linear-svm", lambda: LinearSVC(dual=True, loss="squared_hinge", C=1.0, tol=1e-4,
                                                max_iter=1000, random_state=0),
             n_iter=lambda m: int(np.max(m.n_iter_)))


def svc(d, n_train=None):
    classify(d, "svc-rbf", lambda: SVC(C=1.0, kernel="rbf", gamma="scale", tol=1e-3, shrinking=True,
                                       cache_size=200),
             n_train=n_train, n_iter=lambda m: int(np.sum(m.n_iter_)))


def knn(d, algorithm, case):
    classify(d, case, lambda: KNeighborsClassifier(5, algorithm=algorithm))


def main():
    root = os.environ.get("JIZEN_DATA")
    want_fashion = any(wanted("fashion", c) for c in FASHION_CASES)
    if want_fashion and not root:
        print("note: Fashion-MNIST cases skipped: set JIZEN_DATA to the shared data folder", file=sys.stderr)
    if ARGS.list:
        names = [("digits", c) for c in DIGITS_CASES] + ([("fashion", c) for c in FASHION_CASES] if root else [])
        for data, case in names:
            if wanted(data, case):
                print(f"{data}/{case}")
        return

    if any(wanted("digits", c) for c in DIGITS_CASES):
        d = digits(400 if ARGS.quick else None)
        logreg(d)
        linear_svm(d)
        svc(d)
        knn(d, "brute", "knn-brute")
        knn(d, "kd_tree", "knn-kdtree")
        pca(d, "pca-full", None, svd_solver="full")
        pca(d, "pca-rand20", 20, svd_solver="randomized", n_oversamples=10, iterated_power="auto",
            power_iteration_normalizer="QR", random_state=0)
        gmm(d, "gmm-full", "full")
        gmm(d, "gmm-diag", "diag")
        kmeans(d)

    if not (root and want_fashion):
        return
    n_train, n_test, n_svc = (1000, 200, 500) if ARGS.quick else (10_000, 2000, 5000)
    d = fashion(root, n_train, n_test)
    logreg(d)
    linear_svm(d)
    svc(d, n_svc)
    knn(d, "brute", "knn-brute")
    pca(d, "pca-full50", 50, svd_solver="full")
    pca(d, "pca-rand50", 50, svd_solver="randomized", n_oversamples=10, iterated_power="auto",
        power_iteration_normalizer="QR", random_state=0)
    if wanted(d.name, "gmm-diag-pca50"):
        # The projection is data preparation, outside the timings (the same on both sides).
        proj = PCA(50, svd_solver="full").fit(d.x_train)
        gmm(Data(d.name, proj.transform(d.x_train), d.y_train, proj.transform(d.x_test), d.y_test),
            "gmm-diag-pca50", "diag")
    kmeans(d)


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")  # ConvergenceWarning: both sides stop at max_iter alike
    with threadpool_limits(limits=ARGS.threads):
        main()
