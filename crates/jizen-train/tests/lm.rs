//! The language model end to end on a tiny synthetic corpus: truncated BPTT learns a
//! deterministic sequence, perplexity falls towards 1, the saved model reloads to the same
//! perplexity, sampling continues the pattern, a run stopped after an epoch and resumed ends with
//! the same bits as one that never stopped, and bad input is a clear error.

use jizen_data::batchify;
use jizen_tensor::DType;
use jizen_train::lm::{self, LanguageModel, LmConfig, LmProgress, LmTrainConfig};

/// "abcdefg" repeated: each token determines the next, so a model that learns it has
/// perplexity near 1 (from 7 for a uniform guess).
fn corpus() -> Vec<u32> {
    (0..2_000).map(|i| (i % 7) as u32).collect()
}

fn model(tie: bool) -> LanguageModel {
    let config = LmConfig { vocab: 7, hidden: 16, layers: 2, dropout: 0.1, tie_weights: tie, init_range: 0.1 };
    LanguageModel::new(config, DType::F32, 0).unwrap()
}

fn train_config() -> LmTrainConfig {
    LmTrainConfig {
        batch: 4,
        steps: 10,
        lr: 1.0,
        decay_after: 10,
        decay: 0.5,
        epochs: 12,
        clip: 5.0,
        seed: 0,
        log_every: 20,
    }
}

#[test]
fn truncated_bptt_learns_a_sequence_and_the_model_reloads() {
    let ids = corpus();
    let (train, valid) = (batchify(&ids[..1600], 4, 10).unwrap(), batchify(&ids[1600..], 4, 10).unwrap());
    for tie in [false, true] {
        let m = model(tie);
        let before = lm::perplexity(&m, &valid).unwrap();
        let out = std::env::temp_dir().join(format!("jizen-lm-test-{tie}-{}", std::process::id()));
        let history = lm::train(&m, &train_config(), LmProgress::default(), &train, &valid, &out, &mut |_| {}).unwrap();
        let after = history.last().unwrap().valid_ppl;
        assert!(before > 5.0 && after < 1.5, "tie {tie}: perplexity {before:.2} -> {after:.2}");
        // The decay schedule: a constant rate for `decay_after` epochs, then halved each epoch.
        let lrs: Vec<f64> = history.iter().map(|e| e.lr).collect();
        assert_eq!(lrs, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.25]);
        assert!(history.iter().all(|e| e.grad_norm.is_finite() && e.grad_norm > 0.0));
        let loaded = lm::load(&out.join("lm.safetensors")).unwrap();
        assert_eq!(lm::perplexity(&loaded, &valid).unwrap(), lm::perplexity(&m, &valid).unwrap());
        let continued = lm::sample(&loaded, &[0, 1, 2], 7, 0.5, Some(2), 0).unwrap();
        assert_eq!(continued, [3, 4, 5, 6, 0, 1, 2], "tie {tie}");
        let names: Vec<String> = jizen_nn::state_dict(&m).into_keys().collect();
        assert_eq!(names.contains(&"decoder.weight".to_string()), !tie);
        assert!(names.contains(&"rnn.weight_ih_l1".to_string()));
        std::fs::remove_dir_all(&out).ok();
    }
}

#[test]
fn a_resumed_run_ends_with_the_same_bits() {
    let ids = corpus();
    let (train, valid) = (batchify(&ids[..1600], 4, 10).unwrap(), batchify(&ids[1600..], 4, 10).unwrap());
    let dir = |name: &str| std::env::temp_dir().join(format!("jizen-lm-resume-{name}-{}", std::process::id()));
    let cfg = LmTrainConfig { epochs: 3, ..train_config() };
    // Dropout 0.1 draws masks every window, so the generators' states must survive the restart.
    let whole = model(false);
    let full = lm::train(&whole, &cfg, LmProgress::default(), &train, &valid, &dir("whole"), &mut |_| {}).unwrap();

    let first = model(false);
    let short = LmTrainConfig { epochs: 1, ..cfg.clone() };
    lm::train(&first, &short, LmProgress::default(), &train, &valid, &dir("split"), &mut |_| {}).unwrap();
    drop(first);
    let run = lm::load_run(&lm::checkpoint_path(&dir("split"))).unwrap();
    assert_eq!(run.train.as_ref(), Some(&short));
    assert_eq!((run.progress.history.len(), run.progress.step), (1, train.len() as u64));
    let rest = lm::train(&run.model, &cfg, run.progress, &train, &valid, &dir("split"), &mut |_| {}).unwrap();

    let bits = |m: &LanguageModel| -> Vec<(String, Vec<u32>)> {
        let state = jizen_nn::state_dict(m);
        state.into_iter().map(|(k, t)| (k, t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect())).collect()
    };
    assert_eq!(bits(&run.model), bits(&whole));
    let key = |h: &[lm::LmEpoch]| h.iter().map(|e| (e.epoch, e.lr, e.train_ppl, e.valid_ppl)).collect::<Vec<_>>();
    assert_eq!(key(&rest), key(&full));
    // The metrics log reads as one run: every step once, in order.
    let steps = |d: &std::path::Path| -> Vec<u64> {
        jizen_train::metrics::read_records(&d.join("metrics.jsonl")).unwrap().iter().map(|r| r.step).collect()
    };
    assert_eq!(steps(&dir("split")), steps(&dir("whole")));
    for name in ["whole", "split"] {
        std::fs::remove_dir_all(dir(name)).ok();
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let m = model(false);
    let err = lm::sample(&m, &[], 3, 1.0, None, 0).unwrap_err().to_string();
    assert!(err.contains("prompt"), "{err}");
    let err = lm::sample(&m, &[1], 3, 0.0, None, 0).unwrap_err().to_string();
    assert!(err.contains("temperature"), "{err}");
    let err = lm::sample(&m, &[9], 3, 1.0, None, 0).unwrap_err().to_string();
    assert!(err.contains("token id 9 is outside the vocabulary of 7"), "{err}");
    assert!(lm::preset("huge", 10).is_err());
    assert!(batchify(&[1, 2, 3], 4, 10).is_err());
}
