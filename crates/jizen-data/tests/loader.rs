//! The loader: seeded, per-epoch order; every example once per epoch; drop_last; resuming
//! mid-epoch; prefetch gives exactly the batches of the inline path; errors reach the caller.

use std::sync::Arc;

use jizen_data::{DataLoader, Dataset, Digits, LoaderConfig};
use jizen_tensor::{Result, Tensor};

/// A dataset whose example i is the number i (so batches show which examples they hold).
struct Numbers(usize);

impl Dataset for Numbers {
    fn len(&self) -> usize {
        self.0
    }
    fn batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        if indices.contains(&13) {
            return Err(jizen_tensor::Error::invalid("Numbers", "example 13 is unreadable"));
        }
        let x: Vec<f32> = indices.iter().map(|&i| i as f32).collect();
        let y: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        Ok((Tensor::from_vec(x, &[indices.len(), 1])?, Tensor::from_vec(y, &[indices.len()])?))
    }
}

fn ids(loader: &DataLoader<Numbers>, epoch: u64, start: usize) -> Vec<Vec<i64>> {
    loader.epoch(epoch, start).map(|b| b.unwrap().1.to_vec::<i64>().unwrap()).collect()
}

fn config(prefetch: usize, drop_last: bool) -> LoaderConfig {
    LoaderConfig { batch_size: 4, shuffle: true, drop_last, seed: 7, prefetch }
}

#[test]
fn epochs_are_seeded_permutations() {
    let loader = DataLoader::new(Arc::new(Numbers(10)), config(0, false)).unwrap();
    let e0 = ids(&loader, 0, 0);
    assert_eq!(e0.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![4, 4, 2]);
    let mut all: Vec<i64> = e0.concat();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<i64>>());
    assert_eq!(e0, ids(&loader, 0, 0), "same seed and epoch, same order");
    assert_ne!(e0, ids(&loader, 1, 0), "another epoch, another order");
    let other_seed = DataLoader::new(Arc::new(Numbers(10)), LoaderConfig { seed: 8, ..config(0, false) }).unwrap();
    assert_ne!(e0, ids(&other_seed, 0, 0));
    assert_eq!(ids(&loader, 0, 1), e0[1..].to_vec(), "resuming at batch 1");
}

#[test]
fn drop_last_and_prefetch() {
    let dropping = DataLoader::new(Arc::new(Numbers(10)), config(0, true)).unwrap();
    assert_eq!(dropping.batches_per_epoch(), 2);
    assert_eq!(ids(&dropping, 3, 0).len(), 2);
    let inline = DataLoader::new(Arc::new(Numbers(10)), config(0, false)).unwrap();
    let ahead = DataLoader::new(Arc::new(Numbers(10)), config(3, false)).unwrap();
    for epoch in 0..3 {
        assert_eq!(ids(&inline, epoch, 0), ids(&ahead, epoch, 0));
    }
    // Stopping early does not hang the prefetch thread.
    let mut it = ahead.epoch(0, 0);
    assert!(it.next().is_some());
    drop(it);
}

#[test]
fn errors_reach_the_caller() {
    let loader = DataLoader::new(Arc::new(Numbers(20)), LoaderConfig { shuffle: false, ..config(2, false) }).unwrap();
    let results: Vec<_> = loader.epoch(0, 0).collect();
    assert!(results[3].as_ref().unwrap_err().to_string().contains("example 13 is unreadable"));
    assert!(results[4].is_ok());
    assert!(DataLoader::new(Arc::new(Numbers(3)), LoaderConfig { batch_size: 0, ..config(0, false) }).is_err());
}

#[test]
fn digits_are_a_dataset() {
    let loader =
        DataLoader::new(Arc::new(Digits::uci8x8()), LoaderConfig { batch_size: 100, ..Default::default() }).unwrap();
    assert_eq!(loader.batches_per_epoch(), 18);
    let (x, y) = loader.epoch(0, 0).next().unwrap().unwrap();
    assert_eq!((x.shape(), y.shape()), (&[100, 64][..], &[100][..]));
}

#[test]
fn subsets_and_holdout_splits_partition_the_data() {
    use jizen_data::{holdout_split, Subset};
    let (train, held) = holdout_split(100, 20, 3).unwrap();
    assert_eq!((train.len(), held.len()), (80, 20));
    let mut all: Vec<usize> = train.iter().chain(&held).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert_eq!(holdout_split(100, 20, 3).unwrap(), (train, held.clone()));
    assert!(holdout_split(10, 10, 0).is_err());

    let digits: std::sync::Arc<dyn Dataset> = std::sync::Arc::new(jizen_data::Digits::uci8x8());
    let sub = Subset::new(digits.clone(), held.clone()).unwrap();
    assert_eq!(sub.len(), 20);
    let (x, y) = sub.batch(&[0, 1]).unwrap();
    let (x2, y2) = digits.batch(&held[..2]).unwrap();
    assert_eq!(x.to_vec::<f32>().unwrap(), x2.to_vec::<f32>().unwrap());
    assert_eq!(y.to_vec::<i64>().unwrap(), y2.to_vec::<i64>().unwrap());
    assert!(Subset::new(digits, vec![5000]).is_err());
}

#[test]
fn label_budgets_take_n_of_each_class() {
    let digits: std::sync::Arc<dyn Dataset> = std::sync::Arc::new(jizen_data::Digits::uci8x8());
    let five = jizen_data::per_class(digits.clone(), 5, 1).unwrap();
    assert_eq!(five.len(), 50);
    let mut y = five.batch(&(0..50).collect::<Vec<_>>()).unwrap().1.to_vec::<i64>().unwrap();
    y.sort_unstable();
    assert_eq!(y, (0..10).flat_map(|c| std::iter::repeat_n(c, 5)).collect::<Vec<i64>>());
    assert_eq!(jizen_data::per_class(digits.clone(), usize::MAX, 0).unwrap().len(), 1797);
    let err = jizen_data::per_class(digits, 1000, 0).err().unwrap().to_string();
    assert!(err.contains("fewer than the 1000 per class"), "{err}");
}
