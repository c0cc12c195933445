#!/usr/bin/env python3
"""PyTorch reference for the experiment of `jizen demo` (transfer learning on 8x8 digits).

Data: the two embedded sets of ``crates/jizen-data/assets/`` (format: see
``scripts/data/make_demo_digits.py`` / the assets README):

* pre-training: ``mnist8x8-20k.bin`` (20,000 MNIST training digits converted to 8x8, 0..16);
* fine-tuning / test: ``uci-digits-8x8.bin`` (1,797 UCI digits).  Fixed split, no RNG:
  samples with an even index (0, 2, 4, ...; 899) form the labelled *pool*, samples with an
  odd index (898) the *test* set.  Each seed draws k examples per class from the pool
  (stratified, without replacement).

Model: MLP 64-128-64-10, ReLU, inputs scaled by 1/16, cross-entropy, Adam (lr 1e-3,
PyTorch defaults otherwise), PyTorch default (Kaiming-uniform) initialisation.

Pre-training: ``--epochs`` passes over the 20k set in shuffled mini-batches of 128,
once (seed ``--pretrain-seed``); the same pre-trained weights start every fine-tuning
run.  Both arms -- *scratch* (fresh init, seed-dependent) and *pre-trained* -- then do
``--steps`` full-batch Adam steps on the same 10*k examples; test accuracy is measured
after the last step (no early stopping).

A *recipe* fixes: pre-training epochs, fine-tuning lr of the head (last layer) and of
the body (the two hidden layers), and whether the pre-trained head is kept or
re-initialised.  Several recipes can be run in one call (``--recipes``).

Usage::

    python scripts/data/demo_reference.py                  # recommended recipe (e10-all)
    python scripts/data/demo_reference.py --recipes all    # all recipes in RECIPES
"""

import argparse
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ASSETS = os.path.join(REPO, "crates", "jizen-data", "assets")

# name: (pretrain epochs, head lr, body lr, reinit head)
RECIPES = {
    "e5-all": (5, 1e-3, 1e-3, False),       # 5 epochs, fine-tune everything at 1e-3
    "e2-all": (2, 1e-3, 1e-3, False),
    "e1-all": (1, 1e-3, 1e-3, False),
    "e5-body0.1": (5, 1e-3, 1e-4, False),   # body at 1/10 of the lr
    "e2-body0.1": (2, 1e-3, 1e-4, False),
    "e5-newhead": (5, 1e-3, 1e-3, True),    # fresh head, body fine-tuned at 1e-3
    "e5-frozen": (5, 1e-3, 0.0, False),     # body frozen, only the head trains
    "e10-all": (10, 1e-3, 1e-3, False),
    "e10-body0.1": (10, 1e-3, 1e-4, False),
    "e20-all": (20, 1e-3, 1e-3, False),
}


def load_bin(path):
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:8] != b"JZDIGIT1":
        raise ValueError(f"{path}: bad magic")
    n, rows, cols = struct.unpack("<III", blob[8:20])
    if len(blob) != 20 + n + n * rows * cols:
        raise ValueError(f"{path}: bad length")
    labels = np.frombuffer(blob, np.uint8, n, 20).astype(np.int64)
    pixels = np.frombuffer(blob, np.uint8, n * rows * cols, 20 + n).reshape(n, rows * cols)
    return torch.from_numpy(pixels.astype(np.float32) / 16.0), torch.from_numpy(labels)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(64, 128), nn.Linear(128, 64), nn.Linear(64, 10)

    def forward(self, x):
        return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def pretrain(x, y, epochs, seed, batch=128, lr=1e-3):
    torch.manual_seed(seed)
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], batch):
            idx = perm[i : i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def draw_k_per_class(pool_idx, pool_labels, k, seed):
    rng = np.random.RandomState(seed)
    chosen = []
    for c in range(10):
        cand = pool_idx[pool_labels == c]
        chosen.extend(rng.choice(cand, size=k, replace=False).tolist())
    return np.array(sorted(chosen))


def finetune(model, x, y, steps, head_lr, body_lr):
    groups = [{"params": list(model.l3.parameters()), "lr": head_lr}]
    body = list(model.l1.parameters()) + list(model.l2.parameters())
    if body_lr > 0:
        groups.append({"params": body, "lr": body_lr})
    else:
        for p in body:
            p.requires_grad_(False)
    opt = torch.optim.Adam(groups)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def mean_std(v):
    v = np.asarray(v) * 100
    return f"{v.mean():5.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:3.1f}%"


def run_recipe(name, recipe, data, args, pretrained_cache):
    epochs, head_lr, body_lr, reinit_head = recipe
    xm, ym, xu, yu, pool_idx, test_idx = data
    t0 = time.perf_counter()
    if epochs not in pretrained_cache:
        tp = time.perf_counter()
        m = pretrain(xm, ym, epochs, args.pretrain_seed)
        pretrained_cache[epochs] = (m.state_dict(), time.perf_counter() - tp)
    state, pt_time = pretrained_cache[epochs]
    probe = MLP()
    probe.load_state_dict(state)
    zero_shot = accuracy(probe, xu[test_idx], yu[test_idx])
    print(f"\n== recipe {name}: pre-train {epochs} epoch(s) x 20k, batch 128 "
          f"({pt_time:.2f} s); fine-tune {args.steps} full-batch steps, head lr {head_lr:g}, "
          f"body lr {body_lr:g}{', head re-initialised' if reinit_head else ''}")
    print(f"   pre-trained net on UCI test without fine-tuning: {100 * zero_shot:.1f}%")
    rows = []
    tf = time.perf_counter()
    for k in args.ks:
        sc, pt = [], []
        for seed in args.seeds:
            idx = draw_k_per_class(pool_idx, yu[pool_idx].numpy(), k, seed)
            xtr, ytr = xu[idx], yu[idx]
            torch.manual_seed(1000 + seed)
            scratch = finetune(MLP(), xtr, ytr, args.steps, 1e-3, 1e-3)
            m = MLP()
            m.load_state_dict(state)
            if reinit_head:
                torch.manual_seed(2000 + seed)
                m.l3.reset_parameters()
            m = finetune(m, xtr, ytr, args.steps, head_lr, body_lr)
            sc.append(accuracy(scratch, xu[test_idx], yu[test_idx]))
            pt.append(accuracy(m, xu[test_idx], yu[test_idx]))
        wins = sum(p > s for p, s in zip(pt, sc))
        print(f"   k={k:2d}/class  scratch {mean_std(sc)}  pre-trained {mean_std(pt)}  "
              f"gain {100 * (np.mean(pt) - np.mean(sc)):+5.1f} pt  wins {wins}/{len(sc)}")
        print("      per seed (scratch -> pre-trained): "
              + ", ".join(f"{100 * s:.1f}->{100 * p:.1f}" for s, p in zip(sc, pt)))
        rows.append((k, sc, pt, wins))
    ft_time = time.perf_counter() - tf
    total = time.perf_counter() - t0
    print(f"   time: pre-train {pt_time:.2f} s, fine-tune (both arms, all k and seeds) "
          f"{ft_time:.2f} s, recipe total {pt_time + ft_time:.2f} s")
    return rows, pt_time + ft_time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assets", default=ASSETS)
    ap.add_argument("--recipes", default="e10-all",
                    help="comma-separated names from RECIPES, or 'all'")
    ap.add_argument("--steps", type=int, default=300, help="full-batch fine-tuning steps")
    ap.add_argument("--ks", default="1,5,10", help="labels per class")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--pretrain-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    args.ks = [int(v) for v in args.ks.split(",")]
    args.seeds = [int(v) for v in args.seeds.split(",")]
    names = list(RECIPES) if args.recipes == "all" else args.recipes.split(",")
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    xm, ym = load_bin(os.path.join(args.assets, "mnist8x8-20k.bin"))
    xu, yu = load_bin(os.path.join(args.assets, "uci-digits-8x8.bin"))
    ids = np.arange(xu.shape[0])
    pool_idx, test_idx = ids[ids % 2 == 0], ids[ids % 2 == 1]
    print(f"torch {torch.__version__}, {args.threads} thread(s); MNIST-8x8 {tuple(xm.shape)}, "
          f"UCI {tuple(xu.shape)}: pool {len(pool_idx)} (even indices), "
          f"test {len(test_idx)} (odd indices)")
    data = (xm, ym, xu, yu, pool_idx, torch.from_numpy(test_idx))
    # Warm-up (lazy initialisation inside torch) so that the first recipe's timing is fair.
    pretrain(xm[:1280], ym[:1280], 1, 0)
    finetune(MLP(), xu[:10], yu[:10], 10, 1e-3, 1e-3)
    cache, summary = {}, []
    for name in names:
        rows, secs = run_recipe(name, RECIPES[name], data, args, cache)
        summary.append((name, rows, secs))

    print("\n== summary (mean ± std over seeds, test accuracy on the 898 odd-index UCI digits)")
    print("recipe        " + "".join(f"| k={k:<2d} scratch -> pre-trained (wins) " for k in args.ks)
          + "| time")
    for name, rows, secs in summary:
        print(f"{name:13s} " + "".join(f"| {mean_std(sc)} -> {mean_std(pt)} ({w}/{len(sc)}) "
                                       for _, sc, pt, w in rows) + f"| {secs:.1f} s")
    print(f"total wall time {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
