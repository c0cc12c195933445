//! Weights move between PyTorch and jizen: every zoo model against its `torch.nn` twin.
//!
//! Oracle: `scripts/fixtures/torch_zoo.py` (torch 2.15.0, float32, deterministic) defined each
//! zoo model as plain `torch.nn` modules (the code in docs/pytorch.md), randomised its batch-norm
//! affine parameters and running statistics, and wrote `tests/fixtures/torch_zoo.safetensors`:
//! per model `M`, the state dict (`M/state/<key>`, float values stored as exact BF16), a batch of
//! 4 inputs, the outputs in eval and in train mode, the buffers after the train-mode pass, the
//! gradients of `(train_out * cot).sum()` for a random cotangent (in full, or at 1024 sampled
//! indices plus the full sum of squares for parameters over 8192 elements), and in the
//! metadata the exact `state_dict()` signature of the torch module (`M.state_dict`: key, dtype,
//! shape per line). The input batch keeps every ReLU input and max-pool runner-up of the
//! train-mode pass clear of its kink, so rounding cannot send a gradient down another path.
//!
//! PyTorch → jizen: the zoo model's names, shapes and dtypes must equal torch's, the state dict
//! loads with `load_state_dict(strict)`, and outputs, running statistics and gradients must
//! agree with torch's to within `TOL` of each tensor's largest magnitude
//! (`max |jizen - torch| <= TOL * max |torch|`; the L2 norm of each full gradient likewise).
//!
//! jizen → PyTorch: a jizen model saved with `safetensors::save` must hold exactly torch's
//! `state_dict()` keys, dtypes and shapes (so `model.load_state_dict(load_file(path))` works);
//! with `JIZEN_ZOO_EXPORT=<dir>` the files are kept there for
//! `torch_zoo.py --check-jizen <dir>/*.safetensors` to load into torch and compare.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jizen_models::{zoo, Model};
use jizen_nn::{load_state_dict, state_dict, Module};
use jizen_tensor::safetensors::{self, SafetensorsFile};
use jizen_tensor::{DType, Rng, Tensor};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/torch_zoo.safetensors");

/// The zoo models of the fixture and their per-sample input shapes (10 classes each).
const MODELS: [(&str, [usize; 3]); 4] =
    [("mlp", [1, 28, 28]), ("cnn", [1, 28, 28]), ("lenet5", [1, 28, 28]), ("resnet-cifar", [3, 32, 32])];
const CLASSES: usize = 10;
const BATCH: usize = 4;

/// Largest allowed `max |jizen - torch| / max |torch|` per compared tensor (and relative error
/// of a gradient's L2 norm). Measured (the table each parity test prints with `--nocapture`):
/// outputs and running statistics at most 7.1e-7, gradients at most 2.2e-6 (cnn) and 5.7e-6
/// (resnet-cifar); torch's own float32 result moves by 3.3e-6 on resnet-cifar's gradients when
/// oneDNN is switched off.
const TOL: f64 = 1e-5;

struct Fixture {
    tensors: BTreeMap<String, Tensor>,
    meta: HashMap<String, String>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (tensors, meta) = safetensors::load_with_metadata(FIXTURE)
            .unwrap_or_else(|e| panic!("cannot load {FIXTURE}: {e} (regenerate with scripts/fixtures/torch_zoo.py)"));
        Fixture { tensors, meta }
    })
}

impl Fixture {
    fn get(&self, key: &str) -> &Tensor {
        self.tensors.get(key).unwrap_or_else(|| panic!("{key} is not in {FIXTURE}"))
    }

    /// Entries `model/<group>/<rest>` as `rest -> tensor`.
    fn group(&self, model: &str, group: &str) -> BTreeMap<String, Tensor> {
        let prefix = format!("{model}/{group}/");
        self.tensors.iter().filter_map(|(k, t)| Some((k.strip_prefix(&prefix)?.to_string(), t.clone()))).collect()
    }

    /// The torch module's own `state_dict()`: key -> (safetensors dtype, shape).
    fn torch_signature(&self, model: &str) -> Signature {
        let key = format!("{model}.state_dict");
        let text = self.meta.get(&key).unwrap_or_else(|| panic!("metadata {key} is not in {FIXTURE}"));
        text.lines()
            .map(|line| {
                let (name, rest) = line.split_once(' ').expect("<key> <dtype> [<shape>]");
                let (dtype, shape) = rest.split_once(' ').expect("<key> <dtype> [<shape>]");
                let dims = shape.trim_start_matches('[').trim_end_matches(']');
                let shape = dims.split(", ").filter(|d| !d.is_empty()).map(|d| d.parse().unwrap()).collect();
                (name.to_string(), (dtype.to_string(), shape))
            })
            .collect()
    }
}

/// Tensor name -> (safetensors dtype name, shape).
type Signature = BTreeMap<String, (String, Vec<usize>)>;

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "F32",
        DType::F64 => "F64",
        DType::I64 => "I64",
    }
}

/// The names, dtypes and shapes of a module's parameters and buffers.
fn jizen_signature(m: &dyn Module) -> Signature {
    state_dict(m).into_iter().map(|(k, t)| (k, (dtype_name(t.dtype()).to_string(), t.shape().to_vec()))).collect()
}

/// Every difference between two signatures, one line each (empty when they are equal).
fn signature_diff(ours: &str, ours_sig: &Signature, theirs: &str, theirs_sig: &Signature) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in ours_sig {
        match theirs_sig.get(k) {
            None => out.push(format!("{k}: in {ours} {v:?}, not in {theirs}")),
            Some(w) if w != v => out.push(format!("{k}: {ours} {v:?}, {theirs} {w:?}")),
            Some(_) => {}
        }
    }
    for (k, w) in theirs_sig {
        if !ours_sig.contains_key(k) {
            out.push(format!("{k}: in {theirs} {w:?}, not in {ours}"));
        }
    }
    out
}

fn build(name: &str, input: &[usize], seed: u64) -> Model {
    Model::build(&zoo(name, input, CLASSES).unwrap(), DType::F32, seed).unwrap()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// `max |a - b| / max(max |b|, floor)`, or infinity on a length mismatch or NaN.
fn rel_diff(a: &[f64], b: &[f64], floor: f64) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let scale = max_abs(b).max(floor);
    let diff = a.iter().zip(b).fold(0.0f64, |m, (x, y)| if x == y { m } else { m.max((x - y).abs()) });
    if diff.is_nan() || a.iter().any(|x| x.is_nan()) {
        f64::INFINITY
    } else if diff == 0.0 {
        0.0
    } else {
        diff / scale
    }
}

/// Collects the measured differences of one model and the keys of the fixture they used.
struct Report {
    model: String,
    rows: Vec<(String, f64)>,
    used: BTreeSet<String>,
    failures: Vec<String>,
}

impl Report {
    fn new(model: &str) -> Report {
        Report { model: model.to_string(), rows: vec![], used: BTreeSet::new(), failures: vec![] }
    }

    /// Compares `actual` with the fixture entry `key` (shape, then relative difference).
    fn compare(&mut self, what: &str, actual: &Tensor, key: &str) {
        self.compare_floor(what, actual, key, 0.0)
    }

    /// [`Report::compare`] on the scale `max(max |torch|, floor)`.
    fn compare_floor(&mut self, what: &str, actual: &Tensor, key: &str, floor: f64) {
        let expected = fixture().get(key);
        self.used.insert(key.to_string());
        if actual.shape() != expected.shape() {
            self.failures.push(format!("{what}: jizen shape {:?}, torch {:?}", actual.shape(), expected.shape()));
            return;
        }
        self.check(what, rel_diff(&actual.to_f64_vec(), &expected.to_f64_vec(), floor));
    }

    fn check(&mut self, what: &str, d: f64) {
        if d > TOL {
            self.failures.push(format!("{what}: max |jizen - torch| / max |torch| = {d:.3e} > {TOL:.0e}"));
        }
        self.rows.push((what.to_string(), d));
    }

    /// The largest difference per kind of quantity (`grad`, `after`, ...) and where it is, for
    /// the printed table.
    fn summary(&self) -> String {
        let mut by_kind: BTreeMap<&str, (f64, &str, usize)> = BTreeMap::new();
        for (what, d) in &self.rows {
            let (kind, which) = what.split_once(' ').unwrap_or((what, ""));
            let e = by_kind.entry(kind).or_insert((-1.0, "", 0));
            if *d > e.0 {
                (e.0, e.1) = (*d, which);
            }
            e.2 += 1;
        }
        let parts: Vec<String> = by_kind
            .iter()
            .map(|(k, (d, which, n))| {
                let at = if *n > 1 { format!(" at {which}") } else { String::new() };
                format!("{k} ({n} tensors): {d:.1e}{at}")
            })
            .collect();
        format!("{}: max |jizen - torch| / max |torch|: {}", self.model, parts.join("; "))
    }
}

/// Loads the fixture's torch state dict into the jizen zoo model and compares eval-mode output,
/// train-mode output, running statistics after it and every gradient.
fn check_parity(name: &str, input: &[usize]) {
    let fx = fixture();
    let mut r = Report::new(name);
    let model = build(name, input, 1);

    // 1. The torch state dict loads strictly (names and shapes), values bit for bit.
    let state = fx.group(name, "state");
    let loaded = load_state_dict(&model, &state, true).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(loaded.loaded.len(), state.len(), "{name}");
    for (k, t) in state_dict(&model) {
        r.used.insert(format!("{name}/state/{k}"));
        assert_eq!(t.to_f64_vec(), state[&k].to_f64_vec(), "{name}: {k} after load_state_dict");
    }

    // 2. Eval mode: the running statistics.
    let x = fx.get(&format!("{name}/input")).clone();
    r.used.insert(format!("{name}/input"));
    model.set_training(false);
    let y = model.forward(&x).unwrap_or_else(|e| panic!("{name}: eval forward: {e}"));
    r.compare("eval_out", &y, &format!("{name}/eval_out"));

    // 3. Train mode: batch statistics, and one momentum update of the running statistics.
    model.set_training(true);
    let x = x.requires_grad_(true);
    let out = model.forward(&x).unwrap_or_else(|e| panic!("{name}: train forward: {e}"));
    r.compare("train_out", &out.detach(), &format!("{name}/train_out"));
    for (k, b) in model.named_buffers() {
        let key = format!("{name}/after/{k}");
        if b.dtype() == DType::I64 {
            r.used.insert(key.clone());
            assert_eq!(b.to_vec::<i64>().unwrap(), fx.get(&key).to_vec::<i64>().unwrap(), "{name}: {k}");
        } else {
            r.compare(&format!("after {k}"), &b, &key);
        }
    }

    // 4. Gradients of (out * cot).sum(): full, or sampled plus the full sum of squares. A
    // gradient that is zero in exact arithmetic (cnn's convolution biases, which the train-mode
    // batch norm after them cancels) is rounding noise in both frameworks (torch: 1.5e-6 against
    // 2.2 for the weights), so each gradient is compared on the scale of its own largest value or
    // its layer's weight gradient, whichever is larger.
    let cot_key = format!("{name}/cot");
    r.used.insert(cot_key.clone());
    let loss = out.mul(fx.get(&cot_key)).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap_or_else(|e| panic!("{name}: backward: {e}"));
    let grad_of = |t: &Tensor| grads.get(t).cloned().unwrap_or_else(|| t.zeros_like());
    r.compare("grad input", &grad_of(&x), &format!("{name}/grad_input"));
    let torch_norm = |k: &str| fx.get(&format!("{name}/grad_sumsq/{k}")).item().unwrap().sqrt();
    let torch_max = |k: &str| max_abs(&fx.get(&format!("{name}/grad/{k}")).to_f64_vec());
    for (k, p) in model.named_parameters() {
        let weight = format!("{}.weight", k.rsplit_once('.').map_or("", |(layer, _)| layer));
        let (max_floor, norm_floor) = (torch_max(&weight), torch_norm(&weight));
        let g = grad_of(&p);
        let values = g.to_f64_vec();
        let sumsq_key = format!("{name}/grad_sumsq/{k}");
        r.used.insert(sumsq_key.clone());
        let norm: f64 = values.iter().map(|v| v * v).sum::<f64>().sqrt();
        r.check(&format!("grad_norm {k}"), (norm - torch_norm(&k)).abs() / torch_norm(&k).max(norm_floor));
        let key = format!("{name}/grad/{k}");
        match fx.tensors.get(&format!("{name}/grad_index/{k}")) {
            None => r.compare_floor(&format!("grad {k}"), &g, &key, max_floor),
            Some(index) => {
                r.used.insert(format!("{name}/grad_index/{k}"));
                r.used.insert(key.clone());
                let sampled: Vec<f64> = index.to_vec::<i64>().unwrap().iter().map(|&i| values[i as usize]).collect();
                r.check(&format!("grad {k} (sampled)"), rel_diff(&sampled, &fx.get(&key).to_f64_vec(), max_floor));
            }
        }
    }

    // Every entry of the model in the fixture was compared.
    let all: BTreeSet<String> = fx.tensors.keys().filter(|k| k.starts_with(&format!("{name}/"))).cloned().collect();
    let unused: Vec<&String> = all.difference(&r.used).collect();
    assert!(unused.is_empty(), "{name}: fixture entries no check used: {unused:?}");

    println!("{}", r.summary());
    assert!(r.failures.is_empty(), "{name} differs from PyTorch:\n  {}", r.failures.join("\n  "));
}

#[test]
fn mlp_matches_pytorch() {
    check_parity("mlp", &[1, 28, 28]);
}

#[test]
fn cnn_matches_pytorch() {
    check_parity("cnn", &[1, 28, 28]);
}

#[test]
fn lenet5_matches_pytorch() {
    check_parity("lenet5", &[1, 28, 28]);
}

#[test]
fn resnet_cifar_matches_pytorch() {
    check_parity("resnet-cifar", &[3, 32, 32]);
}

#[test]
fn zoo_names_shapes_and_dtypes_are_the_torch_state_dicts() {
    let fx = fixture();
    let mut problems = Vec::new();
    for (name, input) in MODELS {
        let ours = jizen_signature(&build(name, &input, 0));
        let torch = fx.torch_signature(name);
        problems.extend(signature_diff("jizen", &ours, "torch", &torch).into_iter().map(|d| format!("{name}: {d}")));
        // The stored state dict has the same keys and shapes (its floats are BF16 on disk).
        let stored: BTreeMap<String, Vec<usize>> =
            fx.group(name, "state").into_iter().map(|(k, t)| (k, t.shape().to_vec())).collect();
        let ours_shapes: BTreeMap<String, Vec<usize>> = ours.iter().map(|(k, (_, s))| (k.clone(), s.clone())).collect();
        if stored != ours_shapes {
            problems.push(format!("{name}: the fixture's state keys/shapes differ from jizen's"));
        }
        // num_batches_tracked: an int64 0-d tensor in both.
        let counts: Vec<&String> = torch.keys().filter(|k| k.ends_with("num_batches_tracked")).collect();
        assert_eq!(counts.is_empty(), name == "mlp" || name == "lenet5", "{name}: batch-norm layers");
        for k in counts {
            assert_eq!(torch[k], ("I64".to_string(), vec![]), "{name}: torch's {k}");
        }
    }
    assert!(problems.is_empty(), "jizen's zoo and torch's state_dict() differ:\n  {}", problems.join("\n  "));
}

/// Each tensor's dtype as the header of a safetensors file spells it (what torch reads).
fn header_signature(path: &Path) -> Signature {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let file = SafetensorsFile::open(path).unwrap();
    file.names()
        .into_iter()
        .map(|name| {
            // The header is compact JSON: "<name>":{"data_offsets":[..],"dtype":"F32","shape":[..]}
            let open = format!("\"{name}\":{{");
            let start = header.find(&open).unwrap_or_else(|| panic!("{name} not in the header")) + open.len();
            let entry = &header[start..start + header[start..].find('}').unwrap()];
            let at = entry.find("\"dtype\":\"").unwrap_or_else(|| panic!("no dtype for {name}: {entry}")) + 9;
            let dtype = entry[at..].split('"').next().unwrap().to_string();
            let shape = file.shape(&name).unwrap();
            (name, (dtype, shape))
        })
        .collect()
}

/// A copy with its own storage (a snapshot of state that a forward pass will update).
fn snapshot(t: &Tensor) -> Tensor {
    match t.dtype() {
        DType::F32 => Tensor::from_vec(t.to_vec::<f32>().unwrap(), t.shape()),
        DType::F64 => Tensor::from_vec(t.to_vec::<f64>().unwrap(), t.shape()),
        DType::I64 => Tensor::from_vec(t.to_vec::<i64>().unwrap(), t.shape()),
    }
    .unwrap()
}

/// Random batch-norm affine parameters and running statistics, so the file's values are not
/// the defaults (ones and zeros) and eval mode depends on them.
fn randomise_batch_norm(model: &dyn Module, rng: &mut Rng) {
    let params: BTreeMap<String, Tensor> = model.named_parameters().into_iter().collect();
    let buffers: BTreeMap<String, Tensor> = model.named_buffers().into_iter().collect();
    let set = |t: &Tensor, v: Tensor| t.copy_from_(&v).unwrap();
    for (k, mean) in &buffers {
        let Some(layer) = k.strip_suffix(".running_mean") else { continue };
        let c = mean.numel();
        set(mean, Tensor::randn(&[c], DType::F32, rng).mul_scalar(0.2).unwrap());
        set(&buffers[&format!("{layer}.running_var")], Tensor::rand(&[c], 0.5, 2.0, DType::F32, rng));
        set(&params[&format!("{layer}.weight")], Tensor::rand(&[c], 0.5, 1.5, DType::F32, rng));
        set(&params[&format!("{layer}.bias")], Tensor::randn(&[c], DType::F32, rng).mul_scalar(0.2).unwrap());
    }
}

/// Where the files go: `$JIZEN_ZOO_EXPORT` (kept), else a temporary directory (removed).
fn export_dir() -> (PathBuf, bool) {
    match std::env::var_os("JIZEN_ZOO_EXPORT") {
        Some(d) => (PathBuf::from(d), true),
        None => (std::env::temp_dir().join(format!("jizen-pytorch-zoo-{}", std::process::id())), false),
    }
}

#[test]
fn jizen_state_dicts_load_into_pytorch() {
    let fx = fixture();
    let (dir, keep) = export_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut problems = Vec::new();
    for (i, (name, input)) in MODELS.into_iter().enumerate() {
        let mut rng = Rng::new(100 + i as u64);
        let model = build(name, &input, 7 + i as u64);
        randomise_batch_norm(&model, &mut rng);
        let state: BTreeMap<String, Tensor> =
            state_dict(&model).iter().map(|(k, t)| (k.clone(), snapshot(t))).collect();

        let mut shape = vec![BATCH];
        shape.extend_from_slice(&input);
        let x = Tensor::randn(&shape, DType::F32, &mut rng);
        model.set_training(false);
        let eval_out = model.forward(&x).unwrap();
        model.set_training(true);
        let train_out = model.forward(&x).unwrap();

        // The model's tensors under their own names (as jizen saves any state dict), plus the
        // records --check-jizen compares against, under names with '/' that torch skips.
        let mut named: Vec<(String, Tensor)> = state.iter().map(|(k, t)| (k.clone(), t.clone())).collect();
        named.push(("jizen/input".into(), x.clone()));
        named.push(("jizen/eval_out".into(), eval_out.clone()));
        named.push(("jizen/train_out".into(), train_out));
        named.extend(model.named_buffers().into_iter().map(|(k, b)| (format!("jizen/after/{k}"), b)));
        let meta = HashMap::from([("model".to_string(), name.to_string()), ("classes".into(), CLASSES.to_string())]);
        let path = dir.join(format!("{name}.safetensors"));
        safetensors::save(named.iter().map(|(k, t)| (k.as_str(), t)), Some(&meta), &path).unwrap();

        // What torch's load_file sees: exactly the torch module's state_dict() keys, dtypes and
        // shapes (num_batches_tracked: I64, shape []), besides the jizen/ records.
        let header = header_signature(&path);
        let model_part: Signature = header.into_iter().filter(|(k, _)| !k.contains('/')).collect();
        let torch = fx.torch_signature(name);
        problems.extend(
            signature_diff("jizen's file", &model_part, "torch", &torch).into_iter().map(|d| format!("{name}: {d}")),
        );

        // And the file reads back into a fresh jizen model, reproducing the eval output exactly.
        let back: BTreeMap<String, Tensor> =
            safetensors::load(&path).unwrap().into_iter().filter(|(k, _)| !k.contains('/')).collect();
        let fresh = build(name, &input, 99);
        load_state_dict(&fresh, &back, true).unwrap();
        fresh.set_training(false);
        assert_eq!(fresh.forward(&x).unwrap().to_f64_vec(), eval_out.to_f64_vec(), "{name}: reloaded eval output");
    }
    if keep {
        println!("wrote {} (check with scripts/fixtures/torch_zoo.py --check-jizen)", dir.display());
    } else {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(problems.is_empty(), "jizen's files do not match torch's state_dict():\n  {}", problems.join("\n  "));
}

/// docs/pytorch.md's Rust snippets, as written there (only the file names differ).
#[test]
fn the_docs_rust_snippets_run() -> jizen_tensor::Result<()> {
    use jizen_models::{zoo, Model};
    use jizen_nn::{load_state_dict, Module};
    use jizen_tensor::{safetensors, DType};

    let dir = std::env::temp_dir().join(format!("jizen-pytorch-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("from-jizen.safetensors");

    // "From jizen to PyTorch", on a model trained elsewhere (here: freshly built).
    let model = Model::build(&zoo("resnet-cifar", &[3, 32, 32], 10)?, DType::F32, 3)?;
    let state = jizen_nn::state_dict(&model);
    safetensors::save(state.iter().map(|(k, t)| (k.as_str(), t)), None, &saved)?;

    // "From PyTorch to jizen", reading that file back.
    let model = Model::build(&zoo("resnet-cifar", &[3, 32, 32], 10)?, DType::F32, 0)?;
    let state = safetensors::load(&saved)?;
    load_state_dict(&model, &state, true)?; // strict
    model.set_training(false);

    let x = Tensor::randn(&[2, 3, 32, 32], DType::F32, &mut Rng::new(5));
    let original = Model::build(&zoo("resnet-cifar", &[3, 32, 32], 10)?, DType::F32, 3)?;
    original.set_training(false);
    assert_eq!(model.forward(&x)?.to_f64_vec(), original.forward(&x)?.to_f64_vec());
    std::fs::remove_dir_all(&dir).unwrap();
    Ok(())
}

/// docs/pytorch.md shows the torch.nn definitions that torch_zoo.py ran to make the fixture.
#[test]
fn the_docs_show_the_fixture_scripts_definitions() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap_or_else(|e| panic!("{p}: {e}"));
    let (script, docs) = (read("scripts/fixtures/torch_zoo.py"), read("docs/pytorch.md"));
    let start = script.find("class Residual(nn.Module):").expect("the Residual class in torch_zoo.py");
    let end = start + script[start..].find("\n\n\nZOO = {").expect("the ZOO table in torch_zoo.py");
    assert!(
        docs.contains(&script[start..end]),
        "docs/pytorch.md no longer shows the definitions of scripts/fixtures/torch_zoo.py (from `class Residual` \
         to the ZOO table); copy them over"
    );
}
