//! Saving and loading every fitted estimator (safetensors + JSON metadata): a loaded model
//! equals the saved one and predicts bit for bit the same; bad files are errors that name the
//! file. No fixtures: the models are fitted on small generated data.

use std::path::PathBuf;

use jizen_ml::{
    matrix_from_rows, ClassWeight, CovarianceType, Gamma, GaussianMixture, GaussianMixtureConfig, KMeans, KMeansConfig,
    Kernel, Knn, KnnAlgorithm, KnnConfig, KnnRegressor, KnnRegressorConfig, KnnWeights, LinearSvc, LinearSvcConfig,
    LogisticRegression, LogisticRegressionConfig, Matrix, MlError, Pca, PcaConfig, Persist, StandardScaler,
    StandardScalerConfig, Svc, SvcConfig,
};

/// A fresh path in the temporary folder, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        TempFile(std::env::temp_dir().join(format!("jizen-ml-persist-{}-{name}.safetensors", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Three noisy clusters in 3-D, deterministic: `(x, labels)`.
fn data() -> (Matrix, Vec<usize>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut noise = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let centres = [[0.0, 0.0, 0.0], [3.0, 1.0, -1.0], [0.5, 4.0, 2.0]];
    let n = 45;
    let x = Matrix::from_fn(n, 3, |i, j| centres[i % 3][j] + 1.5 * noise());
    (x, (0..n).map(|i| 10 + i % 3).collect())
}

/// Bit patterns of every entry, so that comparisons are exact (and NaN-safe).
fn bits(m: &Matrix) -> Vec<u64> {
    (0..m.nrows()).flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)].to_bits())).collect()
}

fn vec_bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// Saves `model`, loads it back, checks equality and returns the loaded copy.
fn round_trip<T: Persist + PartialEq + std::fmt::Debug>(name: &str, model: &T) -> T {
    let file = TempFile::new(name);
    model.save(&file.0).unwrap();
    let loaded = T::load(&file.0).unwrap();
    assert_eq!(&loaded, model, "{name}: the loaded model differs");
    loaded
}

#[test]
fn preprocessing_round_trips_bitwise() {
    let (x, _) = data();
    let scaler = StandardScalerConfig::default().fit(&x).unwrap();
    let back: StandardScaler = round_trip("scaler", &scaler);
    assert_eq!(bits(&back.transform(&x).unwrap()), bits(&scaler.transform(&x).unwrap()));
    for cfg in [PcaConfig::new(2), PcaConfig { whiten: true, standardize: true, ..PcaConfig::new(3) }] {
        let pca = cfg.fit(&x).unwrap();
        let back: Pca = round_trip("pca", &pca);
        assert_eq!(bits(&back.transform(&x).unwrap()), bits(&pca.transform(&x).unwrap()));
        let z = pca.transform(&x).unwrap();
        assert_eq!(bits(&back.inverse_transform(&z).unwrap()), bits(&pca.inverse_transform(&z).unwrap()));
    }
}

#[test]
fn neighbours_round_trip_bitwise() {
    let (x, y) = data();
    let t: Vec<f64> = (0..x.nrows()).map(|i| (i as f64).sin()).collect();
    for algorithm in [KnnAlgorithm::Brute, KnnAlgorithm::KdTree] {
        let knn = KnnConfig { weights: KnnWeights::Distance, algorithm, ..KnnConfig::new(4) }.fit(&x, &y).unwrap();
        let back: Knn = round_trip("knn", &knn);
        assert_eq!(back.uses_kd_tree(), knn.uses_kd_tree());
        assert_eq!(back.predict(&x).unwrap(), knn.predict(&x).unwrap());
        assert_eq!(bits(&back.predict_proba(&x).unwrap()), bits(&knn.predict_proba(&x).unwrap()));
        let reg = KnnRegressorConfig { algorithm, ..KnnRegressorConfig::new(3) }.fit(&x, &t).unwrap();
        let back: KnnRegressor = round_trip("knn-regressor", &reg);
        assert_eq!(vec_bits(&back.predict(&x).unwrap()), vec_bits(&reg.predict(&x).unwrap()));
    }
}

#[test]
fn linear_models_round_trip_bitwise() {
    let (x, y) = data();
    let binary: Vec<usize> = y.iter().map(|&l| usize::from(l == 11)).collect();
    for labels in [&y, &binary] {
        let cfg = LogisticRegressionConfig { class_weight: ClassWeight::Balanced, ..Default::default() };
        let lr = cfg.fit(&x, labels).unwrap();
        let back: LogisticRegression = round_trip("logistic", &lr);
        assert_eq!(bits(&back.predict_proba(&x).unwrap()), bits(&lr.predict_proba(&x).unwrap()));
        assert_eq!(back.predict(&x).unwrap(), lr.predict(&x).unwrap());
        let svc = LinearSvcConfig::default().fit(&x, labels).unwrap();
        let back: LinearSvc = round_trip("linear-svc", &svc);
        assert_eq!(bits(&back.decision_function(&x).unwrap()), bits(&svc.decision_function(&x).unwrap()));
    }
}

#[test]
fn kernel_svms_round_trip_bitwise() {
    let (x, y) = data();
    let kernels = [
        Kernel::Rbf { gamma: Gamma::Scale },
        Kernel::Poly { degree: 3, gamma: Gamma::Value(0.3), coef0: 1.25 },
        Kernel::Linear,
    ];
    for kernel in kernels {
        let svc = SvcConfig::with_kernel(kernel).fit(&x, &y).unwrap();
        let back: Svc = round_trip("svc", &svc);
        assert_eq!(bits(&back.decision_function(&x).unwrap()), bits(&svc.decision_function(&x).unwrap()));
        assert_eq!(back.predict(&x).unwrap(), svc.predict(&x).unwrap());
    }
}

#[test]
fn clustering_round_trips_bitwise() {
    let (x, _) = data();
    let km = KMeansConfig { n_init: 2, ..KMeansConfig::new(3) }.fit(&x).unwrap();
    let back: KMeans = round_trip("kmeans", &km);
    assert_eq!(back.predict(&x).unwrap(), km.predict(&x).unwrap());
    assert_eq!(back.inertia().to_bits(), km.inertia().to_bits());
    for covariance_type in [CovarianceType::Full, CovarianceType::Tied, CovarianceType::Diag, CovarianceType::Spherical]
    {
        let gm = GaussianMixtureConfig::new(3, covariance_type).fit(&x).unwrap();
        let back: GaussianMixture = round_trip("gmm", &gm);
        assert_eq!(vec_bits(&back.score_samples(&x).unwrap()), vec_bits(&gm.score_samples(&x).unwrap()));
        assert_eq!(bits(&back.predict_proba(&x).unwrap()), bits(&gm.predict_proba(&x).unwrap()));
    }
}

/// The error of loading `path` as a `T`, as text; panics when loading succeeds.
fn load_error<T: Persist + std::fmt::Debug>(path: &std::path::Path) -> String {
    match T::load(path) {
        Err(e @ MlError::Persist { .. }) => e.to_string(),
        other => panic!("expected a Persist error, got {other:?}"),
    }
}

#[test]
fn bad_files_are_errors_that_name_the_file() {
    let (x, y) = data();
    let file = TempFile::new("errors");
    let shown = file.0.display().to_string();
    let pca = PcaConfig::new(2).fit(&x).unwrap();
    pca.save(&file.0).unwrap();

    // Another estimator's file.
    let e = load_error::<Knn>(&file.0);
    assert_eq!(e, format!("Persist::load: {shown}: holds a Pca, not a Knn"));

    // Truncated: every proper prefix is rejected, none panics.
    let bytes = std::fs::read(&file.0).unwrap();
    for cut in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&file.0, &bytes[..cut]).unwrap();
        let e = load_error::<Pca>(&file.0);
        assert!(e.starts_with(&format!("Persist::load: {shown}: not a valid safetensors file")), "cut {cut}: {e}");
    }

    // Corrupt header bytes.
    let mut garbled = bytes.clone();
    garbled[10..30].fill(b'#');
    std::fs::write(&file.0, &garbled).unwrap();
    assert!(load_error::<Pca>(&file.0).contains(&shown));

    // A safetensors file that is not an estimator (no metadata).
    std::fs::write(
        &file.0,
        safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap(),
    )
    .unwrap();
    assert!(load_error::<Pca>(&file.0).contains("not a jizen-ml estimator file"));

    // A missing file.
    let missing = TempFile::new("missing");
    assert!(load_error::<Pca>(&missing.0).contains("cannot read"));

    // Consistent bytes but inconsistent contents: tensors of the wrong shape for the classes.
    let lr = LogisticRegressionConfig::default().fit(&x, &y).unwrap();
    let mut state = lr.to_state();
    state.put_vector("intercept", &[0.0; 5]);
    let bad = LogisticRegression::from_state(&state).unwrap_err();
    assert_eq!(bad, "tensor intercept has 5 values, expected 3");
    let mut state = lr.to_state();
    state.put("classes", &[10usize]);
    assert!(LogisticRegression::from_state(&state).unwrap_err().contains("classes [10]"));

    // Saving into a folder that does not exist is an error naming the file, too.
    let nowhere = std::env::temp_dir().join("jizen-ml-no-such-folder").join("m.safetensors");
    match pca.save(&nowhere) {
        Err(e @ MlError::Persist { .. }) => assert!(e.to_string().contains("cannot write"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn saving_replaces_an_existing_file_atomically() {
    let x = matrix_from_rows(4, 1, &[1.0, 2.0, 3.0, 5.0]).unwrap();
    let file = TempFile::new("replace");
    let a = StandardScalerConfig::default().fit(&x).unwrap();
    let b = StandardScalerConfig { with_mean: false, with_std: true }.fit(&x).unwrap();
    a.save(&file.0).unwrap();
    b.save(&file.0).unwrap();
    assert_eq!(StandardScaler::load(&file.0).unwrap(), b);
    // No temporary file is left beside it.
    let dir = file.0.parent().unwrap();
    let stem = file.0.file_name().unwrap().to_string_lossy().to_string();
    let leftovers = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!(".{stem}.tmp")))
        .count();
    assert_eq!(leftovers, 0);
}
