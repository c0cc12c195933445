//! Per-image transforms for training-time augmentation and input normalisation: [`Normalize`]
//! (per-channel mean and std), [`RandomCrop`] (with zero padding), [`RandomHorizontalFlip`],
//! chained with [`Compose`] and applied through the loader by [`Transformed`].
//!
//! Randomness is reproducible: example `i` of epoch `e` draws from a generator seeded by the
//! transform seed, `e` and `i` alone, so the same seed gives the same augmented batches whatever
//! the batch size, the order of the examples or the prefetch thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use jizen_tensor::{Result as TResult, Rng, Tensor};

use crate::images::{Image, ImageSource};

/// A change to one image, drawing any randomness from `rng`.
pub trait Transform: Send + Sync {
    /// The transformed image.
    fn apply(&self, image: Image, rng: &mut Rng) -> TResult<Image>;
}

/// Subtracts a per-channel mean and divides by a per-channel standard deviation.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalize {
    /// A normalisation; `mean` and `std` must have one value per channel and `std` be positive.
    pub fn new(mean: &[f32], std: &[f32]) -> TResult<Normalize> {
        if mean.len() != std.len() || mean.is_empty() {
            return Err(jizen_tensor::Error::invalid(
                "Normalize",
                format!("mean has {} values and std {}: expected one of each per channel", mean.len(), std.len()),
            ));
        }
        if let Some(s) = std.iter().find(|&&s| s.is_nan() || s <= 0.0) {
            return Err(jizen_tensor::Error::invalid("Normalize", format!("std {s} is not positive")));
        }
        Ok(Normalize { mean: mean.to_vec(), std: std.to_vec() })
    }
}

impl Transform for Normalize {
    fn apply(&self, mut image: Image, _rng: &mut Rng) -> TResult<Image> {
        if image.channels != self.mean.len() {
            return Err(jizen_tensor::Error::invalid(
                "Normalize",
                format!("{} channel statistics for an image of shape {:?}", self.mean.len(), image.shape()),
            ));
        }
        let plane = image.height * image.width;
        for (c, values) in image.data.chunks_mut(plane).enumerate() {
            let (m, s) = (self.mean[c], self.std[c]);
            values.iter_mut().for_each(|v| *v = (*v - m) / s);
        }
        Ok(image)
    }
}

/// Pads the image with `padding` zeros on every side, then cuts out a random `height × width`
/// window (by default the original size, so the shape is kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomCrop {
    pub padding: usize,
    /// Output size; `None` keeps the input's size.
    pub size: Option<(usize, usize)>,
}

impl RandomCrop {
    /// A crop that keeps the input size, after padding by `padding` (CIFAR's usual 4).
    pub fn new(padding: usize) -> RandomCrop {
        RandomCrop { padding, size: None }
    }
}

impl Transform for RandomCrop {
    fn apply(&self, image: Image, rng: &mut Rng) -> TResult<Image> {
        let (h, w, p) = (image.height, image.width, self.padding);
        let (oh, ow) = self.size.unwrap_or((h, w));
        let (ph, pw) = (h + 2 * p, w + 2 * p);
        if oh > ph || ow > pw || oh == 0 || ow == 0 {
            return Err(jizen_tensor::Error::invalid(
                "RandomCrop",
                format!("a {oh}x{ow} crop does not fit an image of shape {:?} padded by {p}", image.shape()),
            ));
        }
        // The window's top-left corner in padded coordinates.
        let top = rng.below((ph - oh + 1) as u64) as usize;
        let left = rng.below((pw - ow + 1) as u64) as usize;
        let mut out = Image::zeros(image.channels, oh, ow);
        for c in 0..image.channels {
            for y in 0..oh {
                // Row in the source image, if the window row is not in the padding.
                let Some(sy) = (top + y).checked_sub(p).filter(|&sy| sy < h) else { continue };
                for x in 0..ow {
                    if let Some(sx) = (left + x).checked_sub(p).filter(|&sx| sx < w) {
                        out.data[(c * oh + y) * ow + x] = image.at(c, sy, sx);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Mirrors the image left–right with probability `p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomHorizontalFlip {
    pub p: f64,
}

impl Default for RandomHorizontalFlip {
    fn default() -> Self {
        RandomHorizontalFlip { p: 0.5 }
    }
}

/// Mirrors an image left–right.
pub fn flip_horizontal(mut image: Image) -> Image {
    let w = image.width;
    image.data.chunks_mut(w).for_each(|row| row.reverse());
    image
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, image: Image, rng: &mut Rng) -> TResult<Image> {
        // Always draw, so that later transforms see the same stream whatever the outcome.
        let flip = rng.uniform() < self.p;
        Ok(if flip { flip_horizontal(image) } else { image })
    }
}

/// Transforms applied one after the other.
#[derive(Default)]
pub struct Compose {
    pub steps: Vec<Box<dyn Transform>>,
}

impl Compose {
    /// An empty chain (the identity).
    pub fn new() -> Compose {
        Compose::default()
    }

    /// The chain with `t` appended.
    pub fn then(mut self, t: impl Transform + 'static) -> Compose {
        self.steps.push(Box::new(t));
        self
    }
}

impl Transform for Compose {
    fn apply(&self, mut image: Image, rng: &mut Rng) -> TResult<Image> {
        for t in &self.steps {
            image = t.apply(image, rng)?;
        }
        Ok(image)
    }
}

/// The generator for example `index` in `epoch`: a function of the three numbers alone.
pub fn example_rng(seed: u64, epoch: u64, index: usize) -> Rng {
    Rng::new(
        seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (index as u64).wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

/// An image source seen through a transform: a [`crate::Dataset`] whose batches are f32
/// `[n, c, h, w]` (every transformed image must have the same shape) with i64 labels `[n]`.
///
/// Random transforms differ between epochs: [`Transformed::set_epoch`] (also reachable as
/// [`crate::Dataset::set_epoch`]) must be told the epoch before its batches are drawn — before
/// `DataLoader::epoch`, since the loader assembles batches ahead on another thread.
pub struct Transformed<S: ImageSource> {
    source: Arc<S>,
    transform: Box<dyn Transform>,
    seed: u64,
    epoch: AtomicU64,
}

impl<S: ImageSource> Transformed<S> {
    /// `source` through `transform`, with randomness from `seed`.
    pub fn new(source: Arc<S>, transform: impl Transform + 'static, seed: u64) -> Transformed<S> {
        Transformed { source, transform: Box::new(transform), seed, epoch: AtomicU64::new(0) }
    }

    /// Sets the epoch that the random transforms draw for.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// Example `i`, transformed.
    pub fn get(&self, i: usize) -> TResult<(Image, i64)> {
        let mut rng = example_rng(self.seed, self.epoch.load(Ordering::SeqCst), i);
        Ok((self.transform.apply(self.source.image(i), &mut rng)?, self.source.label(i)))
    }
}

impl<S: ImageSource> crate::Dataset for Transformed<S> {
    fn len(&self) -> usize {
        self.source.len()
    }

    fn set_epoch(&self, epoch: u64) {
        Transformed::set_epoch(self, epoch);
    }

    fn batch(&self, indices: &[usize]) -> TResult<(Tensor, Tensor)> {
        let mut x = Vec::new();
        let mut y = Vec::with_capacity(indices.len());
        let mut shape = None;
        for &i in indices {
            let (img, label) = self.get(i)?;
            match shape {
                None => shape = Some(img.shape()),
                Some(s) if s != img.shape() => {
                    return Err(jizen_tensor::Error::invalid(
                        "Transformed",
                        format!("example {i} has shape {:?}, the batch's first {s:?}", img.shape()),
                    ))
                }
                Some(_) => {}
            }
            x.extend_from_slice(&img.data);
            y.push(label);
        }
        let [c, h, w] = shape.unwrap_or([0, 0, 0]);
        Ok((Tensor::from_vec(x, &[indices.len(), c, h, w])?, Tensor::from_vec(y, &[indices.len()])?))
    }
}
