//! Data sets by name for the command line: where they are found, how they split into train,
//! validation and test, and how training examples are augmented.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jizen_data::{
    holdout_split, load_cifar, load_csv, load_image_folder, load_mnist, Cifar, Compose, CsvOptions, Dataset, Digits,
    ImageFolderOptions, ImageSource, RandomCrop, RandomHorizontalFlip, Split, Subset, Transformed,
};
use jizen_tensor::Tensor;
use jizen_train::AugmentConfig;

/// The names `--data` knows besides file paths.
pub const NAMES: &str = "mnist, fashion-mnist, cifar10, digits, mnist8x8, a .csv file, or an image folder";

/// A data set opened for training and evaluation.
pub struct Data {
    /// The name given.
    pub name: String,
    /// Training examples (augmented if asked).
    pub train: Arc<dyn Dataset>,
    /// Held-out validation examples from the training set, if any.
    pub val: Option<Arc<dyn Dataset>>,
    /// The test set.
    pub test: Arc<dyn Dataset>,
    /// Per-sample input shape.
    pub input: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

/// Which split `jizen eval` and `jizen predict` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    Train,
    Val,
    Test,
}

impl Data {
    /// The split `which` (the validation split must exist).
    pub fn split(&self, which: Which) -> Result<Arc<dyn Dataset>, String> {
        match which {
            Which::Train => Ok(self.train.clone()),
            Which::Test => Ok(self.test.clone()),
            Which::Val => self.val.clone().ok_or_else(|| "there is no validation split (--val 0)".to_string()),
        }
    }
}

/// Where a named set's files are: `--data-dir`, else `$JIZEN_DATA/<name>`, else `data/<name>`
/// (where `jizen data get` puts them).
fn locate(name: &str, dir: Option<&Path>) -> Result<PathBuf, String> {
    let path = match (dir, std::env::var_os("JIZEN_DATA")) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(root)) => PathBuf::from(root).join(name),
        (None, None) => PathBuf::from("data").join(name),
    };
    if path.is_dir() {
        Ok(path)
    } else {
        Err(format!(
            "{name}: no data at {}\n  hint: run `jizen data get {name}`, or point --data-dir (or JIZEN_DATA) at it",
            path.display()
        ))
    }
}

/// Opens `name` as a run's config asks: its validation hold-out, seed, augmentation and
/// label budget.
pub fn open_for_run(name: &str, dir: Option<&Path>, config: &jizen_train::TrainConfig) -> Result<Data, String> {
    let mut data = open(name, dir, config.val, config.seed, &config.augment)?;
    if let Some(classes) = &config.classes {
        let only = |d: Arc<dyn Dataset>| -> Result<Arc<dyn Dataset>, String> {
            Ok(Arc::new(jizen_data::ClassSubset::new(d, classes).map_err(|e| format!("{name}: {e}"))?))
        };
        data.train = only(data.train)?;
        data.val = data.val.map(only).transpose()?;
        data.test = only(data.test)?;
        data.classes = classes.len();
        data.name = format!("{name} (classes {})", classes.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","));
    }
    if let Some(n) = config.labels_per_class {
        data.train = Arc::new(jizen_data::per_class(data.train, n, config.seed).map_err(|e| e.to_string())?);
    }
    Ok(data)
}

/// Opens `name` with `val` examples held out of the training set for validation (0: none;
/// `None`: 5,000 for the 60,000-image sets, a tenth otherwise).
pub fn open(
    name: &str,
    dir: Option<&Path>,
    val: Option<usize>,
    seed: u64,
    augment: &AugmentConfig,
) -> Result<Data, String> {
    let err = |e: jizen_data::DataError| e.to_string();
    match name {
        "mnist" | "fashion-mnist" => {
            let dir = locate(name, dir)?;
            let train = Arc::new(load_mnist(&dir, Split::Train, 10).map_err(err)?);
            let test = Arc::new(load_mnist(&dir, Split::Test, 10).map_err(err)?);
            images(name, train, test, 10, val.unwrap_or(5000), seed, augment)
        }
        "cifar10" => {
            let dir = locate(name, dir)?;
            let train = Arc::new(load_cifar(&dir, Cifar::Ten, Split::Train).map_err(err)?);
            let test = Arc::new(load_cifar(&dir, Cifar::Ten, Split::Test).map_err(err)?);
            images(name, train, test, 10, val.unwrap_or(5000), seed, augment)
        }
        "digits" | "mnist8x8" => {
            let all: Arc<dyn Dataset> = Arc::new(AsImage(
                Arc::new(if name == "digits" { Digits::uci8x8() } else { Digits::mnist8x8() }),
                [1, 8, 8],
            ));
            if augment.is_on() {
                return Err(format!("{name}: augmentation is not available for the embedded digits"));
            }
            // No official test split: a fixed fifth is the test set, whatever the seed.
            let (rest, test) = holdout_split(all.len(), all.len() / 5, 0).map_err(|e| e.to_string())?;
            let rest: Arc<dyn Dataset> = Arc::new(Subset::new(all.clone(), rest).map_err(|e| e.to_string())?);
            let test = Arc::new(Subset::new(all, test).map_err(|e| e.to_string())?);
            let (train, val) = hold_out(rest.clone(), rest, val.unwrap_or(0), seed)?;
            Ok(Data { name: name.into(), train, val, test, input: vec![1, 8, 8], classes: 10 })
        }
        path if path.ends_with(".csv") || path.ends_with(".csv.gz") => {
            let set = load_csv(Path::new(path), &CsvOptions::default()).map_err(err)?;
            let (input, classes) = (vec![set.dim()], set.classes());
            let all: Arc<dyn Dataset> = Arc::new(set);
            let (rest, test) = holdout_split(all.len(), all.len() / 5, 0).map_err(|e| e.to_string())?;
            let rest: Arc<dyn Dataset> = Arc::new(Subset::new(all.clone(), rest).map_err(|e| e.to_string())?);
            let test = Arc::new(Subset::new(all, test).map_err(|e| e.to_string())?);
            let n = rest.len();
            let (train, val) = hold_out(rest.clone(), rest, val.unwrap_or(n / 10), seed)?;
            Ok(Data { name: name.into(), train, val, test, input, classes })
        }
        path if Path::new(path).is_dir() => {
            let root = Path::new(path);
            let options = ImageFolderOptions { channels: 3, resize: None };
            let (train_dir, test_dir) = (root.join("train"), root.join("test"));
            if !(train_dir.is_dir() && test_dir.is_dir()) {
                return Err(format!(
                    "{path}: an image folder needs train/ and test/ inside, each with one folder per class"
                ));
            }
            let train = Arc::new(load_image_folder(&train_dir, &options).map_err(err)?);
            let test = Arc::new(load_image_folder(&test_dir, &options).map_err(err)?);
            let classes = train.classes.len();
            let n = train.len();
            images(name, train, test, classes, val.unwrap_or(n / 10), seed, augment)
        }
        other => Err(format!("unknown data set {other:?}; use {NAMES}")),
    }
}

/// Splits `augmented` / `plain` (two views of the same examples) into training examples and
/// `n` validation examples drawn by `seed`; validation never sees augmentation.
#[allow(clippy::type_complexity)]
fn hold_out(
    augmented: Arc<dyn Dataset>,
    plain: Arc<dyn Dataset>,
    n: usize,
    seed: u64,
) -> Result<(Arc<dyn Dataset>, Option<Arc<dyn Dataset>>), String> {
    if n == 0 {
        return Ok((augmented, None));
    }
    let (train, val) = holdout_split(plain.len(), n, seed).map_err(|e| e.to_string())?;
    Ok((
        Arc::new(Subset::new(augmented, train).map_err(|e| e.to_string())?),
        Some(Arc::new(Subset::new(plain, val).map_err(|e| e.to_string())?)),
    ))
}

fn images<S: ImageSource + 'static>(
    name: &str,
    train: Arc<S>,
    test: Arc<S>,
    classes: usize,
    val: usize,
    seed: u64,
    augment: &AugmentConfig,
) -> Result<Data, String> {
    let first = train.image(0);
    let input = first.shape().to_vec();
    let mut t = Compose::new();
    if augment.crop_padding > 0 {
        t = t.then(RandomCrop::new(augment.crop_padding));
    }
    if augment.hflip {
        t = t.then(RandomHorizontalFlip::default());
    }
    let augmented: Arc<dyn Dataset> = Arc::new(Transformed::new(train.clone(), t, seed));
    let plain: Arc<dyn Dataset> = Arc::new(Transformed::new(train, Compose::new(), seed));
    let (train, val) = hold_out(augmented, plain, val, seed)?;
    let test: Arc<dyn Dataset> = Arc::new(Transformed::new(test, Compose::new(), seed));
    Ok(Data { name: name.into(), train, val, test, input, classes })
}

/// A data set of flat features seen as images of `shape`.
struct AsImage<D>(Arc<D>, [usize; 3]);

impl<D: Dataset> Dataset for AsImage<D> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn batch(&self, indices: &[usize]) -> jizen_tensor::Result<(Tensor, Tensor)> {
        let (x, y) = self.0.batch(indices)?;
        let [c, h, w] = self.1;
        Ok((x.reshape(&[indices.len(), c, h, w])?, y))
    }
}
