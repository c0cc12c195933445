//! Bad input is a clear error, never a panic or a silently NaN model. Each test checks the
//! variant and that the message names the call and the offending value.

use jizen_ml::{
    matrix_from_rows, KnnConfig, LogisticRegressionConfig, Matrix, MlError, PcaConfig, StandardScalerConfig,
};

fn small() -> (Matrix, Vec<usize>) {
    (matrix_from_rows(4, 2, &[0.0, 1.0, 1.0, 0.0, 5.0, 5.0, 6.0, 5.0]).unwrap(), vec![0, 0, 1, 1])
}

#[test]
fn nan_feature_is_an_error_everywhere() {
    let (mut x, y) = small();
    x[(2, 1)] = f64::NAN;
    let errs = [
        StandardScalerConfig::default().fit(&x).unwrap_err(),
        PcaConfig::new(1).fit(&x).unwrap_err(),
        KnnConfig::new(1).fit(&x, &y).unwrap_err(),
        LogisticRegressionConfig::default().fit(&x, &y).unwrap_err(),
    ];
    for e in errs {
        assert!(matches!(e, MlError::NonFinite { row: 2, col: 1, .. }), "{e:?}");
        assert!(e.to_string().contains("non-finite value NaN at row 2, column 1"), "{e}");
    }
    // Predicting on bad data is caught too.
    let (clean, _) = small();
    let knn = KnnConfig::new(1).fit(&clean, &y).unwrap();
    x[(2, 1)] = f64::INFINITY;
    assert!(matches!(knn.predict(&x), Err(MlError::NonFinite { .. })));
}

#[test]
fn more_neighbours_than_samples_is_an_error() {
    let (x, y) = small();
    let e = KnnConfig::new(5).fit(&x, &y).unwrap_err();
    assert!(matches!(e, MlError::TooFew { param: "k", requested: 5, available: 4, .. }), "{e:?}");
    assert_eq!(e.to_string(), "KnnConfig::fit: k = 5 is too large: the data has only 4 samples");
    assert!(matches!(KnnConfig::new(0).fit(&x, &y), Err(MlError::InvalidParameter { .. })));
}

#[test]
fn more_components_than_features_or_samples_is_an_error() {
    let (x, _) = small();
    let e = PcaConfig::new(3).fit(&x).unwrap_err();
    assert_eq!(e.to_string(), "Pca::fit: n_components = 3 is too large: the data has only 2 features");
    let wide = Matrix::from_fn(3, 5, |i, j| (i * j) as f64);
    assert!(matches!(PcaConfig::new(4).fit(&wide), Err(MlError::TooFew { unit: "samples", .. })));
    assert!(matches!(PcaConfig::new(0).fit(&x), Err(MlError::InvalidParameter { .. })));
}

#[test]
fn a_single_class_is_an_error() {
    let (x, _) = small();
    let e = LogisticRegressionConfig::default().fit(&x, &[3, 3, 3, 3]).unwrap_err();
    assert!(matches!(e, MlError::SingleClass { class: 3, .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "LogisticRegressionConfig::fit: needs samples of at least two classes, but every label is 3"
    );
    assert!(matches!(KnnConfig::new(1).fit(&x, &[1, 1, 1, 1]), Err(MlError::SingleClass { .. })));
}

#[test]
fn shapes_must_agree() {
    let (x, y) = small();
    assert!(matches!(LogisticRegressionConfig::default().fit(&x, &y[..3]), Err(MlError::ShapeMismatch { .. })));
    let m = LogisticRegressionConfig::default().fit(&x, &y).unwrap();
    let e = m.predict(&Matrix::zeros(2, 3)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "LogisticRegression::decision_function: shape mismatch: x has 3 features but the model was fitted on 2"
    );
    let pca = PcaConfig::new(1).fit(&x).unwrap();
    assert!(matches!(pca.inverse_transform(&Matrix::zeros(1, 2)), Err(MlError::ShapeMismatch { .. })));
    assert!(matches!(StandardScalerConfig::default().fit(&Matrix::zeros(0, 2)), Err(MlError::Empty { .. })));
}

#[test]
fn huge_features_give_a_finite_model_or_an_error() {
    // Values near f64::MAX overflow the objective; the fit must not return NaN weights.
    let x = matrix_from_rows(4, 1, &[-1e300, -1e300, 1e300, 1e300]).unwrap();
    match LogisticRegressionConfig::default().fit(&x, &[0, 0, 1, 1]) {
        Ok(m) => assert!(m.coef()[(0, 0)].is_finite() && m.intercept().iter().all(|v| v.is_finite())),
        Err(e) => assert!(matches!(e, MlError::Numerical { .. }), "{e:?}"),
    }
}
