//! Parity with PyTorch on committed fixtures.
//!
//! `scripts/fixtures/torch_ops.py` (torch 2.15.0, float32, deterministic) wrote
//! `tests/fixtures/ops.safetensors`: for every case `C`, inputs `C.in.k`, torch's output `C.out`,
//! a random cotangent `C.cot` and, for every float input, `C.grad.k` = d/d(in.k) of
//! `(out * cot).sum()`. Each test below runs the same computation with jizen's ops and compares
//! the output and every gradient elementwise with `|a - b| <= ATOL + RTOL * |b|`.
//! `mlp.safetensors` and `cnn.safetensors` hold one cross-entropy step of two small models.
//!
//! Regenerate the fixtures with `scripts/fixtures/README.md`; `every_fixture_case_is_checked`
//! makes sure no case of the file is left without a Rust counterpart (and vice versa).

use std::collections::{BTreeMap, BTreeSet};

use jizen_tensor::{
    binary_cross_entropy_with_logits, cross_entropy, mse_loss, multi_margin_loss, nll_loss, ConvOptions,
    CrossEntropyOptions, DType, Reduction, Result, Tensor,
};

const OPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/ops.safetensors");
const MLP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/mlp.safetensors");
const CNN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/cnn.safetensors");

/// Absolute part of the elementwise tolerance.
const ATOL: f64 = 1e-5;
/// Relative part of the elementwise tolerance.
const RTOL: f64 = 1e-4;

type Fixtures = BTreeMap<String, Tensor>;
type OpFn = fn(&[Tensor]) -> Result<Tensor>;

fn load(path: &str) -> Fixtures {
    jizen_tensor::safetensors::load(path)
        .unwrap_or_else(|e| panic!("cannot load {path}: {e} (regenerate with scripts/fixtures/README.md)"))
}

// ------------------------------------------------------------------------------- comparison

/// The outcome of comparing one tensor with its fixture.
struct Comparison {
    key: String,
    /// Largest `|a - b|`.
    max_abs: f64,
    /// Largest `|a - b| / (ATOL + RTOL * |b|)`: at most 1 passes.
    worst_ratio: f64,
    /// Where the worst ratio occurs, with jizen's and torch's values there.
    worst_at: Vec<usize>,
    worst_vals: (f64, f64),
    failure: Option<String>,
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        idx[d] = flat % n.max(1);
        flat /= n.max(1);
    }
    idx
}

fn compare(key: &str, actual: &Tensor, expected: &Tensor, atol: f64, rtol: f64) -> Comparison {
    let mut c = Comparison {
        key: key.to_string(),
        max_abs: 0.0,
        worst_ratio: 0.0,
        worst_at: vec![],
        worst_vals: (0.0, 0.0),
        failure: None,
    };
    if actual.shape() != expected.shape() || actual.dtype() != expected.dtype() {
        c.failure = Some(format!(
            "{key}: jizen gives {:?} {}, torch {:?} {}",
            actual.shape(),
            actual.dtype(),
            expected.shape(),
            expected.dtype()
        ));
        return c;
    }
    let (a, b) = (actual.to_f64_vec(), expected.to_f64_vec());
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        // Equal values (infinities included) pass; a NaN on either side alone fails.
        let diff = if x == y {
            0.0
        } else if (x - y).is_nan() {
            f64::INFINITY
        } else {
            (x - y).abs()
        };
        let ratio = if diff.is_finite() { diff / (atol + rtol * y.abs()) } else { f64::INFINITY };
        c.max_abs = c.max_abs.max(diff);
        if i == 0 || ratio > c.worst_ratio {
            c.worst_ratio = ratio;
            c.worst_at = unravel(i, expected.shape());
            c.worst_vals = (x, y);
        }
    }
    if c.worst_ratio > 1.0 {
        c.failure = Some(format!(
            "{key}: max |jizen - torch| = {:.3e}; worst at {:?}: jizen {:.8e}, torch {:.8e} \
             ({:.1}x the tolerance {atol:e} + {rtol:e}*|torch|)",
            c.max_abs, c.worst_at, c.worst_vals.0, c.worst_vals.1, c.worst_ratio
        ));
    }
    c
}

/// Collects comparisons of one test, prints a summary and fails with every mismatch.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
    failures: Vec<String>,
}

impl Report {
    fn case(&mut self, name: &str, comparisons: Vec<Comparison>) {
        let worst = comparisons.iter().max_by(|a, b| a.max_abs.total_cmp(&b.max_abs));
        if let Some(w) = worst {
            self.lines.push(format!(
                "  {name:<28} {:>2} tensors, max |Δ| {:.2e} ({})",
                comparisons.len(),
                w.max_abs,
                w.key
            ));
        }
        for c in comparisons {
            if let Some(f) = c.failure {
                self.failures.push(format!("[{name}] {f}"));
            }
        }
    }

    fn error(&mut self, name: &str, msg: String) {
        self.failures.push(format!("[{name}] {msg}"));
    }

    fn finish(self, what: &str) {
        println!("{what}:\n{}", self.lines.join("\n"));
        assert!(
            self.failures.is_empty(),
            "{what}: {} mismatch(es) with PyTorch:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

// ------------------------------------------------------------------------------- op cases

/// One case of `ops.safetensors`: jizen's version of the computation torch ran.
struct Case {
    name: &'static str,
    f: OpFn,
    /// Whether the fixture has a cotangent and gradients (false: output only).
    grads: bool,
}

/// A case whose output and input gradients are checked.
fn c(name: &'static str, f: OpFn) -> Case {
    Case { name, f, grads: true }
}

/// A case whose output only is checked (not differentiable, or stability checks).
fn out_only(name: &'static str, f: OpFn) -> Case {
    Case { grads: false, ..c(name, f) }
}

fn check_case(fx: &Fixtures, case: &Case, report: &mut Report) {
    let name = case.name;
    let mut inputs = Vec::new();
    while let Some(t) = fx.get(&format!("{name}.in.{}", inputs.len())) {
        inputs.push(t.clone());
    }
    let Some(expected) = fx.get(&format!("{name}.out")) else {
        return report.error(name, "no such case in the fixture file".into());
    };
    let cot = fx.get(&format!("{name}.cot"));
    if cot.is_some() != case.grads {
        return report.error(
            name,
            format!(
                "the fixture {} gradients but the Rust case expects {}",
                if cot.is_some() { "has" } else { "has no" },
                if case.grads { "them" } else { "none" }
            ),
        );
    }
    // Fresh leaves: float inputs require a gradient when the case checks gradients.
    let inputs: Vec<Tensor> = inputs
        .into_iter()
        .map(|t| if case.grads && t.dtype() != DType::I64 { t.requires_grad_(true) } else { t })
        .collect();
    let out = match (case.f)(&inputs) {
        Ok(out) => out,
        Err(e) => return report.error(name, format!("forward failed: {e}")),
    };
    let mut comparisons = vec![compare(&format!("{name}.out"), &out, expected, ATOL, RTOL)];
    if let Some(cot) = cot {
        let float_idx: Vec<usize> = (0..inputs.len()).filter(|&k| inputs[k].dtype() != DType::I64).collect();
        let wrt: Vec<&Tensor> = float_idx.iter().map(|&k| &inputs[k]).collect();
        let grads = match jizen_tensor::grad(&out, &wrt, Some(cot), false) {
            Ok(g) => g,
            Err(e) => {
                report.case(name, comparisons);
                return report.error(name, format!("backward failed: {e}"));
            }
        };
        for (&k, g) in float_idx.iter().zip(grads) {
            let key = format!("{name}.grad.{k}");
            let Some(want) = fx.get(&key) else {
                report.error(name, format!("fixture lacks {key}"));
                continue;
            };
            // An input the output does not depend on gets no gradient: zero.
            let g = g.unwrap_or_else(|| inputs[k].zeros_like());
            comparisons.push(compare(&key, &g, want, ATOL, RTOL));
        }
    }
    report.case(name, comparisons);
}

fn run_family(what: &str, cases: Vec<Case>) {
    assert!(!cases.is_empty());
    let fx = load(OPS);
    let mut report = Report::default();
    for case in &cases {
        check_case(&fx, case, &mut report);
    }
    report.finish(what);
}

// ------------------------------------------------------------------------------- families

fn binary_cases() -> Vec<Case> {
    vec![
        c("add_same", |x| x[0].add(&x[1])),
        c("add_bcast_row", |x| x[0].add(&x[1])),
        c("add_bcast_3d", |x| x[0].add(&x[1])),
        c("sub_same", |x| x[0].sub(&x[1])),
        c("sub_bcast_row", |x| x[0].sub(&x[1])),
        c("sub_bcast_3d", |x| x[0].sub(&x[1])),
        c("mul_same", |x| x[0].mul(&x[1])),
        c("mul_bcast_row", |x| x[0].mul(&x[1])),
        c("mul_bcast_3d", |x| x[0].mul(&x[1])),
        c("div_same", |x| x[0].div(&x[1])),
        c("div_bcast_row", |x| x[0].div(&x[1])),
        c("div_bcast_3d", |x| x[0].div(&x[1])),
        c("pow", |x| x[0].pow(&x[1])),
        c("pow_bcast", |x| x[0].pow(&x[1])),
        c("maximum_same", |x| x[0].maximum(&x[1])),
        c("maximum_bcast", |x| x[0].maximum(&x[1])),
        c("minimum_same", |x| x[0].minimum(&x[1])),
        c("minimum_bcast", |x| x[0].minimum(&x[1])),
        c("where_same", |x| Tensor::where_(&x[0], &x[1], &x[2])),
        c("where_bcast", |x| Tensor::where_(&x[0], &x[1], &x[2])),
        c("clamp", |x| x[0].clamp(-0.5, 0.8)),
        c("scalar_ops", |x| x[0].mul_scalar(2.5)?.add_scalar(1.5)?.div_scalar(3.0)?.sub_scalar(0.25)),
        c("powf", |x| x[0].powf(3.0)),
        c("powf_frac", |x| x[0].powf(1.5)),
        c("square", |x| x[0].square()),
        c("recip", |x| x[0].recip()),
        out_only("cmp_gt", |x| x[0].gt(&x[1])),
        out_only("cmp_le", |x| x[0].le(&x[1])),
        out_only("cmp_eq", |x| x[0].eq(&x[1])),
        out_only("sign", |x| x[0].sign()),
    ]
}

/// oracle: torch.add / sub / mul / div / pow / maximum / minimum / where / clamp / reciprocal /
/// gt / le / eq / sign (broadcasting), torch 2.15.0
#[test]
fn elementwise_binary() {
    run_family("elementwise binary", binary_cases());
}

fn unary_cases() -> Vec<Case> {
    vec![
        c("neg", |x| x[0].neg()),
        c("exp", |x| x[0].exp()),
        c("log", |x| x[0].log()),
        c("sqrt", |x| x[0].sqrt()),
        c("abs", |x| x[0].abs()),
        c("tanh", |x| x[0].tanh()),
        c("sigmoid", |x| x[0].sigmoid()),
        c("relu", |x| x[0].relu()),
        c("gelu", |x| x[0].gelu()),
        c("gelu_tanh", |x| x[0].gelu_tanh()),
        c("leaky_relu", |x| x[0].leaky_relu(0.1)),
        c("silu", |x| x[0].silu()),
        c("softplus", |x| x[0].softplus()),
        c("erf", |x| x[0].erf()),
        c("cast_f64", |x| x[0].to_dtype(DType::F64)?.exp()?.mul_scalar(0.5)?.to_dtype(DType::F32)),
    ]
}

/// oracle: torch.neg / exp / log / sqrt / abs / tanh / sigmoid / relu / erf,
/// torch.nn.functional.gelu (approximate 'none' and 'tanh') / leaky_relu / silu / softplus,
/// Tensor.double / float, torch 2.15.0
#[test]
fn elementwise_unary() {
    run_family("elementwise unary", unary_cases());
}

fn reduce_cases() -> Vec<Case> {
    vec![
        c("sum_ax1", |x| x[0].sum(&[1], false)),
        c("sum_ax1_keep", |x| x[0].sum(&[1], true)),
        c("sum_axneg1", |x| x[0].sum(&[-1], false)),
        c("sum_ax02", |x| x[0].sum(&[0, 2], false)),
        c("sum_ax02_keep", |x| x[0].sum(&[0, 2], true)),
        c("sum_all", |x| x[0].sum_all()),
        c("mean_ax1", |x| x[0].mean(&[1], false)),
        c("mean_ax1_keep", |x| x[0].mean(&[1], true)),
        c("mean_axneg1", |x| x[0].mean(&[-1], false)),
        c("mean_ax02", |x| x[0].mean(&[0, 2], false)),
        c("mean_ax02_keep", |x| x[0].mean(&[0, 2], true)),
        c("mean_all", |x| x[0].mean_all()),
        c("max_ax1", |x| x[0].max(&[1], false)),
        c("max_ax1_keep", |x| x[0].max(&[1], true)),
        c("max_axneg1", |x| x[0].max(&[-1], false)),
        c("max_ax02", |x| x[0].max(&[0, 2], false)),
        c("max_ax02_keep", |x| x[0].max(&[0, 2], true)),
        c("max_all", |x| x[0].max_all()),
        c("min_ax1", |x| x[0].min(&[1], false)),
        c("min_ax1_keep", |x| x[0].min(&[1], true)),
        c("min_axneg1", |x| x[0].min(&[-1], false)),
        c("min_ax02", |x| x[0].min(&[0, 2], false)),
        c("min_ax02_keep", |x| x[0].min(&[0, 2], true)),
        c("min_all", |x| x[0].min_all()),
        c("var_ax1", |x| x[0].var(&[1], 1, false)),
        c("var_ax02_keep", |x| x[0].var(&[0, 2], 1, true)),
        c("var_axneg1", |x| x[0].var(&[-1], 1, false)),
        c("std_ax1", |x| x[0].std(&[1], 1, false)),
        c("std_ax02_keep", |x| x[0].std(&[0, 2], 1, true)),
        c("std_axneg1", |x| x[0].std(&[-1], 1, false)),
        out_only("argmax_ax1", |x| x[0].argmax(1, false)),
        out_only("argmin_axneg1_keep", |x| x[0].argmin(-1, true)),
    ]
}

/// oracle: Tensor.sum / mean / amax / amin / var / std (correction=1) / argmax / argmin over one
/// and several axes, with and without keepdim, torch 2.15.0
#[test]
fn reductions() {
    run_family("reductions", reduce_cases());
}

fn matmul_cases() -> Vec<Case> {
    vec![
        c("matmul_2d", |x| x[0].matmul(&x[1])),
        c("matmul_batched", |x| x[0].matmul(&x[1])),
        c("matmul_bcast_rhs2d", |x| x[0].matmul(&x[1])),
        c("matmul_bcast_batch", |x| x[0].matmul(&x[1])),
        c("matmul_lhs_t", |x| x[0].t()?.matmul(&x[1])),
        c("matmul_rhs_t", |x| x[0].matmul(&x[1].t()?)),
        c("matmul_batched_rhs_t", |x| x[0].matmul(&x[1].transpose(-1, -2)?)),
        c("matmul_mv", |x| x[0].matmul(&x[1])),
        c("matmul_vm", |x| x[0].matmul(&x[1])),
        c("matmul_dot", |x| x[0].matmul(&x[1])),
    ]
}

/// oracle: torch.matmul (2-D, batched, broadcast batch, transposed operands, vectors),
/// torch 2.15.0
#[test]
fn matmul() {
    run_family("matmul", matmul_cases());
}

fn movement_cases() -> Vec<Case> {
    vec![
        c("reshape", |x| x[0].reshape(&[6, 4])),
        c("reshape_strided", |x| x[0].transpose(0, 1)?.reshape(&[3, 8])),
        c("permute", |x| x[0].permute(&[2, 0, 1])),
        c("transpose", |x| x[0].transpose(0, 2)),
        c("contiguous", |x| x[0].t()?.contiguous()?.mul_scalar(2.0)),
        c("expand", |x| x[0].expand(&[2, 3, 4])),
        c("narrow", |x| x[0].narrow(1, 1, 2)),
        c("flatten", |x| x[0].flatten(1, 2)),
        c("unsqueeze_squeeze", |x| x[0].unsqueeze(1)?.squeeze(0)),
        c("split", |x| Ok(x[0].split(2, 1)?.swap_remove(2))),
        c("cat_dim0", |x| Tensor::cat(&[&x[0], &x[1], &x[2]], 0)),
        c("cat_dim1", |x| Tensor::cat(&[&x[0], &x[1]], 1)),
        c("stack_dim0", |x| Tensor::stack(&[&x[0], &x[1], &x[2]], 0)),
        c("stack_dim2", |x| Tensor::stack(&[&x[0], &x[1]], 2)),
        // F.pad(x, (1, 2, 0, 3), value=0.5): [left, right, top, bottom].
        c("pad", |x| x[0].pad2d([1, 2, 0, 3], 0.5)),
    ]
}

/// oracle: Tensor.reshape / permute / transpose / contiguous / expand / narrow / flatten /
/// unsqueeze / squeeze, torch.split / cat / stack, torch.nn.functional.pad, torch 2.15.0
#[test]
fn movement() {
    run_family("movement", movement_cases());
}

fn index_cases() -> Vec<Case> {
    vec![
        c("index_select_dim0", |x| x[0].index_select(0, &x[1])),
        c("index_select_dim1", |x| x[0].index_select(1, &x[1])),
        c("gather_dim1", |x| x[0].gather(1, &x[1])),
        c("gather_dim0", |x| x[0].gather(0, &x[1])),
        c("scatter_add_dim1", |x| x[0].scatter_add(1, &x[1], &x[2])),
        c("scatter_add_dim0", |x| x[0].scatter_add(0, &x[1], &x[2])),
        c("index_add_dim0", |x| x[0].index_add(0, &x[1], &x[2])),
        c("index_add_dim1", |x| x[0].index_add(1, &x[1], &x[2])),
        c("embedding", |x| x[0].embedding(&x[1])),
    ]
}

/// oracle: torch.index_select / gather / scatter_add / index_add (repeated indices),
/// torch.nn.functional.embedding, torch 2.15.0
#[test]
fn indexing() {
    run_family("indexing", index_cases());
}

/// PyTorch's defaults: stride 1, padding 0, dilation 1, groups 1.
fn o() -> ConvOptions {
    ConvOptions::default()
}

fn conv_cases() -> Vec<Case> {
    vec![
        c("conv2d_plain", |x| x[0].conv2d(&x[1], None, o())),
        c("conv2d_stride2_pad1", |x| x[0].conv2d(&x[1], None, o().stride(2).padding(1))),
        c("conv2d_dilation2", |x| x[0].conv2d(&x[1], None, o().dilation(2))),
        c("conv2d_groups2", |x| x[0].conv2d(&x[1], None, o().groups(2))),
        c("conv2d_bias", |x| x[0].conv2d(&x[1], Some(&x[2]), o().padding(1))),
        c("conv2d_rect", |x| {
            let opts = ConvOptions { stride: [1, 2], padding: [1, 0], ..o() };
            x[0].conv2d(&x[1], None, opts)
        }),
        c("conv_transpose2d_s2p1op1", |x| {
            let opts = o().stride(2).padding(1).output_padding(1);
            x[0].conv_transpose2d(&x[1], Some(&x[2]), opts)
        }),
        c("conv_transpose2d_groups2", |x| x[0].conv_transpose2d(&x[1], None, o().groups(2))),
        c("max_pool2d_2x2", |x| x[0].max_pool2d([2, 2], [2, 2], [0, 0], [1, 1])),
        c("max_pool2d_3x3_s2_p1", |x| x[0].max_pool2d([3, 3], [2, 2], [1, 1], [1, 1])),
        c("max_pool2d_dil2", |x| x[0].max_pool2d([2, 2], [1, 1], [0, 0], [2, 2])),
        c("avg_pool2d_2x2", |x| x[0].avg_pool2d([2, 2], [2, 2], [0, 0], true)),
        c("avg_pool2d_pad_incl", |x| x[0].avg_pool2d([3, 3], [2, 2], [1, 1], true)),
        c("avg_pool2d_pad_excl", |x| x[0].avg_pool2d([3, 3], [2, 2], [1, 1], false)),
        c("adaptive_avg_pool2d_1x1", |x| x[0].adaptive_avg_pool2d([1, 1])),
        c("adaptive_avg_pool2d_3x3", |x| x[0].adaptive_avg_pool2d([3, 3])),
        c("im2col", |x| x[0].im2col([3, 3], [2, 2], [1, 1], [1, 1])),
        c("im2col_dil2", |x| x[0].im2col([2, 2], [1, 1], [0, 0], [2, 2])),
        c("col2im", |x| x[0].col2im([6, 5], [3, 3], [2, 2], [1, 1], [1, 1])),
    ]
}

/// oracle: torch.nn.functional.conv2d / conv_transpose2d / max_pool2d / avg_pool2d /
/// adaptive_avg_pool2d / unfold / fold, torch 2.15.0
#[test]
fn conv_and_pooling() {
    run_family("conv and pooling", conv_cases());
}

fn ce(x: &[Tensor], label_smoothing: f64, ignore: bool, reduction: Reduction) -> Result<Tensor> {
    let o = CrossEntropyOptions { label_smoothing, ignore_index: ignore.then_some(-100), reduction };
    cross_entropy(&x[0], &x[1], o)
}

fn softmax_loss_cases() -> Vec<Case> {
    use Reduction::{Mean, None, Sum};
    vec![
        c("softmax_last", |x| x[0].softmax(-1)),
        c("softmax_ax0", |x| x[0].softmax(0)),
        c("softmax_3d_ax1", |x| x[0].softmax(1)),
        c("log_softmax_last", |x| x[0].log_softmax(-1)),
        c("log_softmax_3d_ax1", |x| x[0].log_softmax(1)),
        c("logsumexp_ax1", |x| x[0].logsumexp(1, false)),
        c("logsumexp_axneg1_keep", |x| x[0].logsumexp(-1, true)),
        out_only("log_softmax_stable", |x| x[0].log_softmax(-1)),
        out_only("softmax_stable", |x| x[0].softmax(-1)),
        out_only("logsumexp_stable", |x| x[0].logsumexp(-1, false)),
        c("cross_entropy_plain", |x| ce(x, 0.0, false, Mean)),
        c("cross_entropy_smooth", |x| ce(x, 0.1, false, Mean)),
        c("cross_entropy_ignore", |x| ce(x, 0.0, true, Mean)),
        c("cross_entropy_ignore_smooth", |x| ce(x, 0.1, true, Mean)),
        c("cross_entropy_4d", |x| ce(x, 0.0, false, Mean)),
        c("cross_entropy_sum", |x| ce(x, 0.0, false, Sum)),
        c("cross_entropy_none", |x| ce(x, 0.0, false, None)),
        c("nll_loss", |x| nll_loss(&x[0], &x[1], Mean)),
        c("nll_loss_sum", |x| nll_loss(&x[0], &x[1], Sum)),
        c("mse_loss", |x| mse_loss(&x[0], &x[1], Mean)),
        c("multi_margin_loss", |x| multi_margin_loss(&x[0], &x[1], 1.0, Mean)),
        c("multi_margin_loss_m2_sum", |x| multi_margin_loss(&x[0], &x[1], 2.0, Sum)),
        c("mse_loss_sum", |x| mse_loss(&x[0], &x[1], Sum)),
        c("bce_with_logits", |x| binary_cross_entropy_with_logits(&x[0], &x[1], Mean)),
        c("bce_with_logits_none", |x| binary_cross_entropy_with_logits(&x[0], &x[1], None)),
    ]
}

/// oracle: torch.softmax / log_softmax / logsumexp (also on logits of ±1e4),
/// torch.nn.functional.cross_entropy (label_smoothing, ignore_index, [N, C, H, W], reductions) /
/// nll_loss / mse_loss / binary_cross_entropy_with_logits, torch 2.15.0
#[test]
fn softmax_and_losses() {
    run_family("softmax and losses", softmax_loss_cases());
}

/// Every case in `ops.safetensors` has a Rust counterpart, and every Rust case is in the file.
#[test]
fn every_fixture_case_is_checked() {
    let (fx, meta) = jizen_tensor::safetensors::load_with_metadata(OPS).unwrap();
    let source = meta.get("source").map(String::as_str).unwrap_or("");
    assert!(
        source.contains("torch 2.15.0"),
        "fixtures were made by {source:?}, the tests name torch 2.15.0 as their oracle"
    );
    let in_file: BTreeSet<&str> = fx.keys().filter_map(|k| k.strip_suffix(".out")).collect();
    let tables = [
        binary_cases(),
        unary_cases(),
        reduce_cases(),
        matmul_cases(),
        movement_cases(),
        index_cases(),
        conv_cases(),
        softmax_loss_cases(),
    ];
    let mut in_rust = BTreeSet::new();
    for case in tables.iter().flatten() {
        assert!(in_rust.insert(case.name), "case {} listed twice", case.name);
    }
    let unchecked: Vec<_> = in_file.difference(&in_rust).collect();
    let missing: Vec<_> = in_rust.difference(&in_file).collect();
    assert!(
        unchecked.is_empty() && missing.is_empty(),
        "fixture cases without a Rust check: {unchecked:?}; Rust cases missing from the \
         fixture: {missing:?}"
    );
    // Every tensor of the file belongs to a case.
    for k in fx.keys() {
        let case = k.split('.').next().unwrap();
        assert!(in_file.contains(case), "stray tensor {k}");
    }
    println!("{} cases checked against {source}", in_file.len());
}

// ------------------------------------------------------------------------------- small models

/// `x @ weightᵀ + bias`, with PyTorch's [out, in] weight layout.
fn linear(x: &Tensor, p: &BTreeMap<&str, Tensor>, name: &str) -> Result<Tensor> {
    x.matmul(&p[format!("{name}.weight").as_str()].t()?)?.add(&p[format!("{name}.bias").as_str()])
}

/// Runs `forward` on the fixture's parameters, compares logits, loss and every parameter's
/// gradient with torch's.
fn check_model(
    what: &str,
    path: &str,
    params: &[&'static str],
    forward: fn(&Tensor, &BTreeMap<&str, Tensor>) -> Result<Tensor>,
) {
    let fx = load(path);
    let p: BTreeMap<&str, Tensor> = params
        .iter()
        .map(|&name| {
            let t = fx.get(name).unwrap_or_else(|| panic!("{path} lacks parameter {name}"));
            (name, t.clone().requires_grad_(true))
        })
        .collect();
    // The fixture holds exactly these parameters, each with a gradient, and nothing else.
    let mut expect_keys: BTreeSet<String> = ["x", "y", "logits", "loss"].iter().map(|s| s.to_string()).collect();
    for name in params {
        expect_keys.insert(name.to_string());
        expect_keys.insert(format!("grad.{name}"));
    }
    let keys: BTreeSet<String> = fx.keys().cloned().collect();
    assert_eq!(keys, expect_keys, "{path}: unexpected set of tensors");

    let logits = forward(&fx["x"], &p).unwrap();
    let loss = cross_entropy(&logits, &fx["y"], CrossEntropyOptions::default()).unwrap();
    let grads = loss.backward().unwrap();
    let mut comparisons =
        vec![compare("logits", &logits, &fx["logits"], ATOL, RTOL), compare("loss", &loss, &fx["loss"], ATOL, RTOL)];
    for name in params {
        let g = grads.get(&p[name]).unwrap_or_else(|| panic!("no gradient reached {name}"));
        let key = format!("grad.{name}");
        comparisons.push(compare(&key, g, &fx[&key], ATOL, RTOL));
    }
    let mut report = Report::default();
    report.case(what, comparisons);
    report.finish(what);
}

/// oracle: torch.nn.Linear ×3 with ReLU, torch.nn.functional.cross_entropy and autograd
/// (loss.backward()), torch 2.15.0
#[test]
fn mlp_step() {
    fn forward(x: &Tensor, p: &BTreeMap<&str, Tensor>) -> Result<Tensor> {
        let h = linear(x, p, "fc1")?.relu()?; // [8, 32]
        let h = linear(&h, p, "fc2")?.relu()?; // [8, 16]
        linear(&h, p, "fc3") // [8, 5]
    }
    let params = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"];
    check_model("mlp 20-32-16-5", MLP, &params, forward);
}

/// oracle: torch.nn.Conv2d / max_pool2d / Linear with ReLU, torch.nn.functional.cross_entropy
/// and autograd (loss.backward()), torch 2.15.0
#[test]
fn cnn_step() {
    fn forward(x: &Tensor, p: &BTreeMap<&str, Tensor>) -> Result<Tensor> {
        let conv = |x: &Tensor, name: &str| {
            x.conv2d(
                &p[format!("{name}.weight").as_str()],
                Some(&p[format!("{name}.bias").as_str()]),
                ConvOptions::default().padding(1),
            )
        };
        let pool = |x: &Tensor| x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1]);
        let h = pool(&conv(x, "conv1")?.relu()?)?; // [4, 4, 6, 6]
        let h = pool(&conv(&h, "conv2")?.relu()?)?; // [4, 8, 3, 3]
        linear(&h.flatten(1, -1)?, p, "fc") // [4, 5]
    }
    let params = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"];
    check_model("cnn conv-pool-conv-pool-linear", CNN, &params, forward);
}
