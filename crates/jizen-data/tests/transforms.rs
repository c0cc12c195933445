//! Transforms: correctness of each (normalise, crop with padding, flip), determinism given a
//! seed, and use through the `DataLoader` on CIFAR-style and MNIST-style image sets.

use std::sync::Arc;

use jizen_data::transforms::{example_rng, flip_horizontal};
use jizen_data::{
    Compose, DataLoader, Dataset, Image, ImageSet, Images, LoaderConfig, Normalize, RandomCrop, RandomHorizontalFlip,
    Transform, Transformed,
};
use jizen_tensor::Rng;

/// A 2-channel 3x4 image with distinct values.
fn image() -> Image {
    Image { channels: 2, height: 3, width: 4, data: (0..24).map(|v| v as f32).collect() }
}

fn images(n: usize) -> Images {
    let d = 3 * 8 * 8;
    Images {
        channels: 3,
        height: 8,
        width: 8,
        pixels: (0..n * d).map(|i| (i * 7 % 251) as u8).collect(),
        labels: (0..n as u32).map(|i| i % 10).collect(),
        classes: Vec::new(),
    }
}

#[test]
fn normalize_per_channel() {
    let n = Normalize::new(&[1.0, 12.0], &[2.0, 0.5]).unwrap();
    let out = n.apply(image(), &mut Rng::new(0)).unwrap();
    assert_eq!(out.data[0], -0.5);
    assert_eq!(out.data[11], 5.0);
    assert_eq!(out.data[12], 0.0);
    assert_eq!(out.data[23], 22.0);
    assert!(Normalize::new(&[0.0], &[0.0]).is_err());
    assert!(Normalize::new(&[0.0, 1.0], &[1.0]).is_err());
    let one = Normalize::new(&[0.5], &[0.5]).unwrap();
    let e = one.apply(image(), &mut Rng::new(0)).unwrap_err().to_string();
    assert!(e.contains("[2, 3, 4]"), "{e}");
}

#[test]
fn flip_twice_is_identity() {
    let once = flip_horizontal(image());
    assert_eq!(once.data[..4], [3.0, 2.0, 1.0, 0.0]);
    assert_eq!(flip_horizontal(once), image());
    let always = RandomHorizontalFlip { p: 1.0 };
    let never = RandomHorizontalFlip { p: 0.0 };
    let mut rng = Rng::new(1);
    assert_eq!(always.apply(image(), &mut rng).unwrap(), flip_horizontal(image()));
    assert_eq!(never.apply(image(), &mut rng).unwrap(), image());
    // With p = 0.5 about half of many draws flip.
    let flips = (0..1000)
        .filter(|&i| RandomHorizontalFlip::default().apply(image(), &mut example_rng(3, 0, i)).unwrap() != image())
        .count();
    assert!((400..600).contains(&flips), "{flips} flips of 1000");
}

#[test]
fn crop_with_padding_keeps_shape_and_shifts() {
    let crop = RandomCrop::new(2);
    let src = image();
    // The image shifted by (dy, dx), zeros where the shift leaves the source.
    let shifted = |dy: i64, dx: i64| -> Vec<f32> {
        let mut v = Vec::new();
        for c in 0..2 {
            for y in 0..3i64 {
                for x in 0..4i64 {
                    let (sy, sx) = (y + dy, x + dx);
                    let inside = (0..3).contains(&sy) && (0..4).contains(&sx);
                    v.push(if inside { src.at(c, sy as usize, sx as usize) } else { 0.0 });
                }
            }
        }
        v
    };
    let mut shifts = std::collections::HashSet::new();
    for seed in 0..200 {
        let out = crop.apply(image(), &mut Rng::new(seed)).unwrap();
        assert_eq!(out.shape(), [2, 3, 4]);
        let shift = (-2..=2i64)
            .flat_map(|dy| (-2..=2i64).map(move |dx| (dy, dx)))
            .find(|&(dy, dx)| shifted(dy, dx) == out.data)
            .expect("a crop of the padded image is the image shifted by at most the padding");
        shifts.insert(shift);
    }
    assert_eq!(shifts.len(), 25, "every shift in [-2, 2]^2 occurs");
    // No padding and full size: the identity.
    assert_eq!(RandomCrop::new(0).apply(image(), &mut Rng::new(5)).unwrap(), image());
    // Padding 1 and a 5x6 window: the whole padded image, the source in the middle.
    let full = RandomCrop { padding: 1, size: Some((5, 6)) }.apply(image(), &mut Rng::new(0)).unwrap();
    assert_eq!(full.shape(), [2, 5, 6]);
    assert_eq!(full.at(0, 0, 0), 0.0);
    assert_eq!(full.at(0, 1, 1), image().at(0, 0, 0));
    assert_eq!(full.at(1, 3, 4), image().at(1, 2, 3));
    assert_eq!(full.data.iter().sum::<f32>(), image().data.iter().sum::<f32>());
    assert!(RandomCrop { padding: 0, size: Some((4, 4)) }.apply(image(), &mut Rng::new(0)).is_err());
}

#[test]
fn composed_transforms_are_deterministic_through_the_loader() {
    let make = |seed| {
        let t = Compose::new()
            .then(RandomCrop::new(2))
            .then(RandomHorizontalFlip::default())
            .then(Normalize::new(&[0.5; 3], &[0.25; 3]).unwrap());
        Arc::new(Transformed::new(Arc::new(images(10)), t, seed))
    };
    let cfg = LoaderConfig { batch_size: 4, seed: 9, ..Default::default() };
    let collect = |d: &Arc<Transformed<Images>>, epoch: u64| -> Vec<Vec<f32>> {
        d.set_epoch(epoch);
        let loader = DataLoader::new(d.clone(), cfg).unwrap();
        loader.epoch(epoch, 0).map(|b| b.unwrap().0.to_vec::<f32>().unwrap()).collect()
    };
    let (a, b) = (make(1), make(1));
    let first = collect(&a, 0);
    assert_eq!(first, collect(&b, 0), "same seed, same batches");
    assert_ne!(first, collect(&make(2), 0), "another seed, other crops and flips");
    assert_ne!(first, collect(&a, 1), "another epoch, other crops and flips");
    assert_eq!(first, collect(&a, 0), "back to epoch 0, the same again");
    // An example does not depend on the batch it is in.
    let (x, y) = a.batch(&[3, 7]).unwrap();
    let (x7, _) = a.batch(&[7]).unwrap();
    assert_eq!(x.shape(), &[2, 3, 8, 8]);
    assert_eq!(x.to_vec::<f32>().unwrap()[192..], x7.to_vec::<f32>().unwrap()[..]);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![3, 7]);
}

#[test]
fn mnist_style_sets_are_one_channel_sources() {
    let set = ImageSet { rows: 2, cols: 2, pixels: vec![0, 51, 102, 255, 1, 2, 3, 4], labels: vec![4, 2] };
    let t = Transformed::new(Arc::new(set), Compose::new().then(RandomHorizontalFlip { p: 1.0 }), 0);
    let (x, y) = t.batch(&[0]).unwrap();
    assert_eq!(x.shape(), &[1, 1, 2, 2]);
    assert_eq!(x.to_vec::<f32>().unwrap(), vec![0.2, 0.0, 1.0, 0.4]);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![4]);
}
