//! Bad input to the clustering, mixture, PCA-option, metric, cross-validation and kNN-regression
//! APIs is a clear error, never a panic or a silently NaN model. Each test checks the variant and,
//! where it matters, that the message names the call and the offending value.

use jizen_ml::{
    cross_val_score, matrix_from_rows, CovarianceType, Covariances, Fold, GaussianMixtureConfig, GmmParams,
    KMeansConfig, KnnRegressorConfig, Matrix, MlError, PcaConfig, StratifiedKFold, SvdSolver,
};

fn small() -> Matrix {
    matrix_from_rows(4, 2, &[0.0, 1.0, 1.0, 0.0, 5.0, 5.0, 6.0, 5.0]).unwrap()
}

#[test]
fn nan_features_are_errors() {
    let mut x = small();
    x[(2, 1)] = f64::NAN;
    let errs = [
        KMeansConfig::new(2).fit(&x).unwrap_err(),
        GaussianMixtureConfig::new(2, CovarianceType::Full).fit(&x).unwrap_err(),
        KnnRegressorConfig::new(1).fit(&x, &[0.0; 4]).unwrap_err(),
        PcaConfig { svd_solver: SvdSolver::Randomized, standardize: true, ..PcaConfig::new(1) }.fit(&x).unwrap_err(),
    ];
    for e in errs {
        assert!(matches!(e, MlError::NonFinite { row: 2, col: 1, .. }), "{e:?}");
    }
    // Predicting on bad data is caught too.
    let clean = small();
    let km = KMeansConfig::new(2).fit(&clean).unwrap();
    let gm = GaussianMixtureConfig::new(2, CovarianceType::Diag).fit(&clean).unwrap();
    assert!(matches!(km.predict(&x), Err(MlError::NonFinite { .. })));
    assert!(matches!(gm.score_samples(&x), Err(MlError::NonFinite { .. })));
    // A NaN target of the regressor.
    let e = KnnRegressorConfig::new(1).fit(&clean, &[0.0, f64::NAN, 1.0, 2.0]).unwrap_err();
    assert!(matches!(e, MlError::NonFinite { row: 1, .. }), "{e:?}");
}

#[test]
fn more_clusters_or_components_than_samples_is_an_error() {
    let x = small();
    let e = KMeansConfig::new(5).fit(&x).unwrap_err();
    assert_eq!(e.to_string(), "KMeansConfig::fit: n_clusters = 5 is too large: the data has only 4 samples");
    let e = GaussianMixtureConfig::new(5, CovarianceType::Tied).fit(&x).unwrap_err();
    assert!(matches!(e, MlError::TooFew { param: "n_components", requested: 5, available: 4, .. }), "{e:?}");
    assert!(matches!(KMeansConfig::new(0).fit(&x), Err(MlError::InvalidParameter { .. })));
    assert!(matches!(
        GaussianMixtureConfig::new(0, CovarianceType::Full).fit(&x),
        Err(MlError::InvalidParameter { .. })
    ));
    let e = KnnRegressorConfig::new(5).fit(&x, &[0.0; 4]).unwrap_err();
    assert!(matches!(e, MlError::TooFew { param: "k", .. }), "{e:?}");
    let e = PcaConfig { svd_solver: SvdSolver::Randomized, ..PcaConfig::new(3) }.fit(&x).unwrap_err();
    assert_eq!(e.to_string(), "Pca::fit: n_components = 3 is too large: the data has only 2 features");
}

#[test]
fn invalid_settings_are_errors() {
    let x = small();
    for reg_covar in [0.0, -1e-6, f64::NAN, f64::INFINITY] {
        let cfg = GaussianMixtureConfig { reg_covar, ..GaussianMixtureConfig::new(2, CovarianceType::Full) };
        let e = cfg.fit(&x).unwrap_err();
        assert!(matches!(e, MlError::InvalidParameter { .. }), "{e:?}");
        assert!(e.to_string().contains("reg_covar must be positive"), "{e}");
    }
    let gm = GaussianMixtureConfig::new(2, CovarianceType::Full);
    for cfg in [
        GaussianMixtureConfig { tol: -1.0, ..gm },
        GaussianMixtureConfig { max_iter: 0, ..gm },
        GaussianMixtureConfig { n_init: 0, ..gm },
    ] {
        assert!(matches!(cfg.fit(&x), Err(MlError::InvalidParameter { .. })), "{cfg:?}");
    }
    let km = KMeansConfig::new(2);
    for cfg in
        [KMeansConfig { tol: f64::NAN, ..km }, KMeansConfig { max_iter: 0, ..km }, KMeansConfig { n_init: 0, ..km }]
    {
        assert!(matches!(cfg.fit(&x), Err(MlError::InvalidParameter { .. })), "{cfg:?}");
    }
}

#[test]
fn bad_initial_parameters_are_errors() {
    let x = small();
    let cfg = GaussianMixtureConfig::new(2, CovarianceType::Full);
    let eye = Matrix::from_fn(2, 2, |i, j| f64::from(u8::from(i == j)));
    let good = GmmParams {
        weights: Some(vec![0.5, 0.5]),
        means: Some(matrix_from_rows(2, 2, &[0.0, 0.0, 5.0, 5.0]).unwrap()),
        precisions: Some(Covariances::Full(vec![eye.clone(), eye.clone()])),
    };
    assert!(cfg.fit_from(&x, &good).is_ok());
    // Any subset may be given; the rest comes from the k-means initialisation.
    assert!(cfg.fit_from(&x, &GmmParams { weights: None, precisions: None, ..good.clone() }).is_ok());
    let cases = [
        GmmParams { weights: Some(vec![0.7, 0.7]), ..good.clone() },
        GmmParams { weights: Some(vec![1.5, -0.5]), ..good.clone() },
        GmmParams { precisions: Some(Covariances::Diag(Matrix::from_fn(2, 2, |_, _| 1.0))), ..good.clone() },
        GmmParams {
            precisions: Some(Covariances::Full(vec![eye.clone(), Matrix::from_fn(2, 2, |_, _| 1.0)])),
            ..good.clone()
        },
        GmmParams {
            precisions: Some(Covariances::Full(vec![
                eye.clone(),
                matrix_from_rows(2, 2, &[1.0, 0.5, 0.0, 1.0]).unwrap(),
            ])),
            ..good.clone()
        },
    ];
    for init in &cases {
        let e = cfg.fit_from(&x, init).unwrap_err();
        assert!(matches!(e, MlError::InvalidParameter { .. }), "{init:?}: {e:?}");
    }
    let e = cfg.fit_from(&x, &GmmParams { weights: Some(vec![1.0]), ..good.clone() }).unwrap_err();
    assert!(matches!(e, MlError::ShapeMismatch { .. }), "{e:?}");
    let e = cfg.fit_from(&x, &GmmParams { means: Some(Matrix::zeros(2, 3)), ..good.clone() }).unwrap_err();
    assert!(matches!(e, MlError::ShapeMismatch { .. }), "{e:?}");
    let e = KMeansConfig::new(2).fit_from(&x, &Matrix::zeros(3, 2)).unwrap_err();
    assert!(matches!(e, MlError::ShapeMismatch { .. }), "{e:?}");
}

#[test]
fn a_collapsing_component_names_reg_covar() {
    // Two identical points and one far away, full covariances, a tiny reg_covar: a component sits
    // on the duplicated point with a (nearly) singular covariance. The fit must either succeed
    // with finite values or say what to change.
    let x = matrix_from_rows(3, 2, &[0.0, 0.0, 0.0, 0.0, 1e3, 1e3]).unwrap();
    let cfg = GaussianMixtureConfig { reg_covar: 1e-300, ..GaussianMixtureConfig::new(2, CovarianceType::Full) };
    match cfg.fit(&x) {
        Ok(m) => assert!(m.score(&x).unwrap().is_finite()),
        Err(e) => {
            assert!(matches!(e, MlError::Numerical { .. }), "{e:?}");
            assert!(e.to_string().contains("reg_covar"), "{e}");
        }
    }
}

#[test]
fn shapes_must_agree_after_fitting() {
    let x = small();
    let km = KMeansConfig::new(2).fit(&x).unwrap();
    assert!(matches!(km.transform(&Matrix::zeros(1, 3)), Err(MlError::ShapeMismatch { .. })));
    let gm = GaussianMixtureConfig::new(2, CovarianceType::Spherical).fit(&x).unwrap();
    let e = gm.predict(&Matrix::zeros(1, 3)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "GaussianMixture::predict: shape mismatch: x has 3 features but the model was fitted on 2"
    );
    assert!(matches!(gm.sample(0, 1), Err(MlError::InvalidParameter { .. })));
    let e = KnnRegressorConfig::new(1).fit(&x, &[1.0, 2.0]).unwrap_err();
    assert_eq!(e.to_string(), "KnnRegressorConfig::fit: shape mismatch: x has 4 rows but y has 2 targets");
}

#[test]
fn bad_folds_are_errors() {
    let y = [0, 0, 1, 1, 1];
    assert!(matches!(StratifiedKFold::new(1).split(&y), Err(MlError::InvalidParameter { .. })));
    assert!(matches!(StratifiedKFold::new(6).split(&y), Err(MlError::TooFew { .. })));
    let e = StratifiedKFold::new(4).split(&y).unwrap_err();
    assert!(e.to_string().contains("only 3 samples in the largest class"), "{e}");
    let x = Matrix::zeros(5, 1);
    assert!(matches!(cross_val_score(&x, &y[..4], &[], |_, _, _, _| Ok(0.0)), Err(MlError::ShapeMismatch { .. })));
    let folds = [Fold { train: vec![0, 1], test: vec![5] }];
    let e = cross_val_score(&x, &y, &folds, |_, _, _, _| Ok(0.0)).unwrap_err();
    assert!(e.to_string().contains("fold 0 names sample 5"), "{e}");
    // The closure's own error comes back unchanged.
    let folds = StratifiedKFold::new(2).split(&y).unwrap();
    let e = cross_val_score(&x, &y, &folds, |xt, yt, _, _| {
        Err(KMeansConfig::new(9).fit(xt).unwrap_err()).map(|()| yt.len() as f64)
    })
    .unwrap_err();
    assert!(matches!(e, MlError::TooFew { param: "n_clusters", .. }), "{e:?}");
}

#[test]
fn huge_values_give_finite_models_or_errors() {
    let x = matrix_from_rows(4, 1, &[-1e300, -1e300, 1e300, 1e300]).unwrap();
    match KMeansConfig::new(2).fit(&x) {
        Ok(m) => assert!(m.inertia().is_finite()),
        Err(e) => assert!(matches!(e, MlError::Numerical { .. }), "{e:?}"),
    }
    match GaussianMixtureConfig::new(2, CovarianceType::Diag).fit(&x) {
        Ok(m) => assert!(m.score(&x).unwrap().is_finite()),
        Err(e) => assert!(matches!(e, MlError::Numerical { .. }), "{e:?}"),
    }
}
