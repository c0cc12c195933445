//! `Display` in PyTorch's style: `tensor([[ 1.0000, -2.0000], ...])`, summarising large tensors
//! with `...` (first and last three entries of each long dimension).

use std::fmt;

use crate::dtype::DType;
use crate::Tensor;

const SUMMARY_THRESHOLD: usize = 1000;
const EDGE: usize = 3;

fn fmt_value(v: f64, dtype: DType, sci: bool) -> String {
    match dtype {
        DType::I64 => format!("{}", v as i64),
        _ if v.is_nan() => "nan".into(),
        _ if v.is_infinite() => {
            if v > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            }
        }
        _ if sci => format!("{v:.4e}"),
        _ => format!("{v:.4}"),
    }
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals = self.to_f64_vec();
        let shape = self.shape().to_vec();
        let summarise = vals.len() > SUMMARY_THRESHOLD;
        // Scientific notation when magnitudes span too much to show with 4 decimals.
        let finite: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite() && *v != 0.0).map(f64::abs).collect();
        let sci = self.dtype().is_float()
            && !finite.is_empty()
            && (finite.iter().cloned().fold(0.0, f64::max) >= 1e8
                || finite.iter().cloned().fold(f64::INFINITY, f64::min) < 1e-4);
        let width = vals.iter().map(|&v| fmt_value(v, self.dtype(), sci).len()).max().unwrap_or(1);
        let strides = crate::layout::contiguous_strides(&shape);
        let mut out = String::from("tensor(");
        fn rec(
            out: &mut String,
            vals: &[f64],
            shape: &[usize],
            strides: &[usize],
            base: usize,
            depth: usize,
            ctx: (&DType, bool, usize, bool),
        ) {
            let (dtype, sci, width, summarise) = ctx;
            if shape.is_empty() {
                out.push_str(&fmt_value(vals[base], *dtype, sci));
                return;
            }
            out.push('[');
            let n = shape[0];
            let idxs: Vec<Option<usize>> = if summarise && n > 2 * EDGE {
                (0..EDGE).map(Some).chain([None]).chain((n - EDGE..n).map(Some)).collect()
            } else {
                (0..n).map(Some).collect()
            };
            for (j, i) in idxs.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                    if shape.len() > 1 {
                        out.push_str(&"\n".repeat(shape.len() - 1));
                        out.push_str(&" ".repeat(depth + 8));
                    } else {
                        out.push(' ');
                    }
                }
                match i {
                    None => out.push_str("..."),
                    Some(i) if shape.len() == 1 => {
                        out.push_str(&format!(
                            "{:>width$}",
                            fmt_value(vals[base + i * strides[0]], *dtype, sci),
                            width = width
                        ));
                    }
                    Some(i) => rec(out, vals, &shape[1..], &strides[1..], base + i * strides[0], depth + 1, ctx),
                }
            }
            out.push(']');
        }
        if vals.is_empty() {
            out.push_str("[]");
        } else {
            rec(&mut out, &vals, &shape, &strides, 0, 0, (&self.dtype(), sci, width, summarise));
        }
        if self.dtype() == DType::F64 {
            out.push_str(", dtype=torch.float64");
        }
        if self.requires_grad() {
            out.push_str(", requires_grad=True");
        }
        out.push(')');
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn prints_like_pytorch() {
        let t = Tensor::from_vec(vec![1.0f32, -2.0, 3.5, 4.0], &[2, 2]).unwrap();
        assert_eq!(t.to_string(), "tensor([[ 1.0000, -2.0000],\n        [ 3.5000,  4.0000]])");
        let i = Tensor::from_vec(vec![3i64, 10], &[2]).unwrap();
        assert_eq!(i.to_string(), "tensor([ 3, 10])");
        let s = Tensor::scalar(0.5, crate::DType::F32);
        assert_eq!(s.to_string(), "tensor(0.5000)");
        let big = Tensor::arange(0.0, 2000.0, 1.0, crate::DType::F32).unwrap();
        assert!(big.to_string().contains("..."));
    }
}
