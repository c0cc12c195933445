//! Labelled colour (or grey) images with a channel dimension — what the CIFAR files and image
//! folders load into — and [`ImageSource`], the per-example view that transforms work on.

use jizen_tensor::{Result as TResult, Tensor};

use crate::ImageSet;

/// Images of one size with integer labels, as stored on disk (pixels 0–255).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// `len * channels * height * width` pixels, image-major, each image channel-major
    /// (`[c, h, w]`, as CIFAR stores them and as convolutions take them).
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
    /// Class names by label, where the format has them (image folders); may be empty.
    pub classes: Vec<String>,
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (`channels * height * width`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i`, `[c, h, w]`.
    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.image_len();
        &self.pixels[i * d..(i + 1) * d]
    }

    /// The images at `indices` as f32 `[n, c, h, w]` scaled to [0, 1], and i64 labels `[n]`.
    pub fn tensors(&self, indices: &[usize]) -> TResult<(Tensor, Tensor)> {
        let mut x = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            x.extend(self.image(i).iter().map(|&p| p as f32 / 255.0));
        }
        let y = indices.iter().map(|&i| self.labels[i] as i64).collect();
        Ok((
            Tensor::from_vec(x, &[indices.len(), self.channels, self.height, self.width])?,
            Tensor::from_vec(y, &[indices.len()])?,
        ))
    }
}

impl crate::Dataset for Images {
    fn len(&self) -> usize {
        Images::len(self)
    }
    fn batch(&self, indices: &[usize]) -> TResult<(Tensor, Tensor)> {
        self.tensors(indices)
    }
}

/// One image as f32 values, `[channels, height, width]`, channel-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Image {
    /// An image of zeros.
    pub fn zeros(channels: usize, height: usize, width: usize) -> Image {
        Image { channels, height, width, data: vec![0.0; channels * height * width] }
    }

    /// The value at channel `c`, row `y`, column `x`.
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.height + y) * self.width + x]
    }

    /// The shape `[channels, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}

/// Labelled images addressable one at a time, with values in [0, 1]: the input of
/// [`crate::transforms::Transformed`].
pub trait ImageSource: Send + Sync + 'static {
    /// Number of images.
    fn len(&self) -> usize;

    /// Whether there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image `i` as f32 `[c, h, w]` in [0, 1].
    fn image(&self, i: usize) -> Image;

    /// The label of image `i`.
    fn label(&self, i: usize) -> i64;
}

impl ImageSource for Images {
    fn len(&self) -> usize {
        Images::len(self)
    }
    fn image(&self, i: usize) -> Image {
        Image {
            channels: self.channels,
            height: self.height,
            width: self.width,
            data: Images::image(self, i).iter().map(|&p| p as f32 / 255.0).collect(),
        }
    }
    fn label(&self, i: usize) -> i64 {
        self.labels[i] as i64
    }
}

/// MNIST-style grey images are one-channel images.
impl ImageSource for ImageSet {
    fn len(&self) -> usize {
        ImageSet::len(self)
    }
    fn image(&self, i: usize) -> Image {
        let d = self.rows * self.cols;
        Image {
            channels: 1,
            height: self.rows,
            width: self.cols,
            data: self.pixels[i * d..(i + 1) * d].iter().map(|&p| p as f32 / 255.0).collect(),
        }
    }
    fn label(&self, i: usize) -> i64 {
        self.labels[i] as i64
    }
}
