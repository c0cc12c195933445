//! Datasets and the loader: seeded shuffling (the order of epoch `e` depends only on the seed and
//! `e`, so a resumed run sees the same batches), batching, `drop_last`, and background prefetch
//! so that the next batches are assembled while the model trains on the current one.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use jizen_tensor::{DType, Result, Rng, Tensor};

use crate::{Digits, ImageSet};

/// Examples addressable by index, assembled into batches.
pub trait Dataset: Send + Sync + 'static {
    /// Number of examples.
    fn len(&self) -> usize;

    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inputs and targets of the examples at `indices`, stacked along a new first dimension.
    fn batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)>;

    /// Told the epoch before its batches are drawn, so random augmentation can depend on it
    /// (and a resumed run sees the same augmented examples). Default: nothing.
    fn set_epoch(&self, _epoch: u64) {}
}

impl Dataset for ImageSet {
    fn len(&self) -> usize {
        ImageSet::len(self)
    }
    fn batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        self.tensors(indices, DType::F32)
    }
}

impl Dataset for Digits {
    fn len(&self) -> usize {
        Digits::len(self)
    }
    fn batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        self.tensors(indices, DType::F32)
    }
}

/// How a [`DataLoader`] walks its dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub shuffle: bool,
    /// Leave out the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
    pub seed: u64,
    /// Batches assembled ahead on a background thread (0: assemble on the caller's thread).
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig { batch_size: 64, shuffle: true, drop_last: false, seed: 0, prefetch: 2 }
    }
}

/// Yields batches of a dataset, epoch by epoch.
pub struct DataLoader<D: Dataset> {
    dataset: Arc<D>,
    config: LoaderConfig,
}

impl<D: Dataset> DataLoader<D> {
    /// A loader; `batch_size` must be positive.
    pub fn new(dataset: Arc<D>, config: LoaderConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(jizen_tensor::Error::invalid("DataLoader", "batch_size must be at least 1"));
        }
        Ok(DataLoader { dataset, config })
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The example order of `epoch`: a function of the seed and the epoch number alone.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            // Decorrelate consecutive epochs of consecutive seeds.
            let mut rng = Rng::new(self.config.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            rng.shuffle(&mut idx);
        }
        idx
    }

    /// The batches of `epoch`, starting at batch `start` (to resume mid-epoch).
    pub fn epoch(&self, epoch: u64, start: usize) -> Batches {
        let order = self.order(epoch);
        let b = self.config.batch_size;
        let mut chunks: Vec<Vec<usize>> = order.chunks(b).map(|c| c.to_vec()).collect();
        if self.config.drop_last && chunks.last().is_some_and(|c| c.len() < b) {
            chunks.pop();
        }
        let chunks: Vec<Vec<usize>> = chunks.into_iter().skip(start).collect();
        if self.config.prefetch == 0 {
            return Batches {
                inner: Inner::Inline { dataset: self.dataset.clone() as Arc<dyn Dataset>, chunks, next: 0 },
            };
        }
        let (tx, rx) = sync_channel(self.config.prefetch);
        let dataset = self.dataset.clone();
        // jizen's pool starts first: starting, it limits glibc to one arena. A thread that
        // allocates before that gets an arena of its own, which the pool's workers may later be
        // given too (training steps run there), and each arena keeps its own freed memory:
        // `jizen bench epoch-cnn` peaked at 151 MiB that way, 107 MiB with one arena.
        jizen_tensor::num_threads();
        let worker = std::thread::spawn(move || {
            for c in chunks {
                // A closed channel means the consumer stopped early: stop too.
                if tx.send(dataset.batch(&c)).is_err() {
                    break;
                }
            }
        });
        Batches { inner: Inner::Prefetch { rx, worker: Some(worker) } }
    }
}

enum Inner {
    Inline { dataset: Arc<dyn Dataset>, chunks: Vec<Vec<usize>>, next: usize },
    Prefetch { rx: Receiver<Result<(Tensor, Tensor)>>, worker: Option<JoinHandle<()>> },
}

/// One epoch's batches, in order.
pub struct Batches {
    inner: Inner,
}

impl Iterator for Batches {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Inline { dataset, chunks, next } => {
                let c = chunks.get(*next)?;
                *next += 1;
                Some(dataset.batch(c))
            }
            Inner::Prefetch { rx, worker } => match rx.recv() {
                Ok(b) => Some(b),
                Err(_) => {
                    // The worker finished (or panicked, which is reported as an error).
                    if let Some(w) = worker.take() {
                        if w.join().is_err() {
                            return Some(Err(jizen_tensor::Error::invalid(
                                "DataLoader",
                                "the prefetch thread panicked",
                            )));
                        }
                    }
                    None
                }
            },
        }
    }
}

/// The examples of a data set at `indices`, in that order (a validation hold-out, a subsample).
pub struct Subset {
    dataset: Arc<dyn Dataset>,
    indices: Vec<usize>,
}

impl Subset {
    /// The examples of `dataset` at `indices`; an index past the end is an error.
    pub fn new(dataset: Arc<dyn Dataset>, indices: Vec<usize>) -> Result<Subset> {
        let n = dataset.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(jizen_tensor::Error::invalid(
                "Subset",
                format!("index {bad} is out of range for {n} examples"),
            ));
        }
        Ok(Subset { dataset, indices })
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let mapped: Vec<usize> = indices.iter().map(|&i| self.indices[i]).collect();
        self.dataset.batch(&mapped)
    }

    fn set_epoch(&self, epoch: u64) {
        self.dataset.set_epoch(epoch)
    }
}

/// Splits `0..n` into a training part and a held-out part of `held_out` examples, by a seeded
/// permutation (both parts sorted, so reading them stays sequential).
pub fn holdout_split(n: usize, held_out: usize, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if held_out >= n {
        return Err(jizen_tensor::Error::invalid(
            "holdout_split",
            format!("cannot hold out {held_out} of {n} examples"),
        ));
    }
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed ^ 0x5EED_0F4E_1D00_0075).shuffle(&mut order);
    let (mut held, mut rest) = (order[..held_out].to_vec(), order[held_out..].to_vec());
    held.sort_unstable();
    rest.sort_unstable();
    Ok((rest, held))
}

/// The labels of every example of `data`, read in chunks.
fn all_labels(data: &dyn Dataset) -> Result<Vec<i64>> {
    let all: Vec<usize> = (0..data.len()).collect();
    let mut labels = Vec::with_capacity(data.len());
    for chunk in all.chunks(4096) {
        labels.extend(data.batch(chunk)?.1.to_vec::<i64>()?);
    }
    Ok(labels)
}

/// The examples of some classes only, relabelled `0..k` in the order `classes` gives them (a
/// source or target task cut from a larger data set: Fashion-MNIST classes 0–4 → 5–9).
pub struct ClassSubset {
    subset: Subset,
    relabel: Vec<(i64, i64)>,
}

impl ClassSubset {
    /// Keeps the examples whose label is in `classes`; an empty or repeated list, or a class
    /// with no example, is an error.
    pub fn new(data: Arc<dyn Dataset>, classes: &[i64]) -> Result<ClassSubset> {
        let mut seen = classes.to_vec();
        seen.sort_unstable();
        seen.dedup();
        if classes.is_empty() || seen.len() != classes.len() {
            return Err(jizen_tensor::Error::invalid(
                "ClassSubset",
                format!("classes {classes:?} must be distinct and non-empty"),
            ));
        }
        let labels = all_labels(data.as_ref())?;
        let keep: Vec<usize> = (0..labels.len()).filter(|&i| classes.contains(&labels[i])).collect();
        if let Some(c) = classes.iter().find(|c| !labels.contains(c)) {
            return Err(jizen_tensor::Error::invalid("ClassSubset", format!("no example has class {c}")));
        }
        let relabel = classes.iter().enumerate().map(|(new, &old)| (old, new as i64)).collect();
        Ok(ClassSubset { subset: Subset::new(data, keep)?, relabel })
    }
}

impl Dataset for ClassSubset {
    fn len(&self) -> usize {
        self.subset.len()
    }

    fn batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let (x, y) = self.subset.batch(indices)?;
        let y: Vec<i64> = y
            .to_vec::<i64>()?
            .into_iter()
            .map(|l| self.relabel.iter().find(|(old, _)| *old == l).map_or(l, |(_, new)| *new))
            .collect();
        let n = y.len();
        Ok((x, Tensor::from_vec(y, &[n])?))
    }

    fn set_epoch(&self, epoch: u64) {
        self.subset.set_epoch(epoch)
    }
}

/// A label budget: the first `n` examples of each class in an order shuffled by `seed` (sorted
/// afterwards). `n = usize::MAX` takes every example; a class with fewer than `n` examples is
/// an error naming it.
pub fn per_class(data: Arc<dyn Dataset>, n: usize, seed: u64) -> Result<Subset> {
    let mut order: Vec<usize> = (0..data.len()).collect();
    Rng::new(seed ^ 0x1AB3_15E7).shuffle(&mut order);
    let labels = all_labels(data.as_ref())?;
    let mut taken = std::collections::BTreeMap::<i64, usize>::new();
    let mut keep = Vec::new();
    for i in order {
        let count = taken.entry(labels[i]).or_default();
        if *count < n {
            *count += 1;
            keep.push(i);
        }
    }
    if let Some((class, have)) = taken.iter().find(|(_, &c)| c < n && n != usize::MAX) {
        return Err(jizen_tensor::Error::invalid(
            "per_class",
            format!("class {class} has only {have} examples, fewer than the {n} per class asked for"),
        ));
    }
    keep.sort_unstable();
    Subset::new(data, keep)
}
