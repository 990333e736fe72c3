//! Finite-difference gradient checking: compares `backward` with central differences of the
//! forward for every input element.

use rand::{rngs::StdRng, SeedableRng};

use crate::{no_grad, Result, Tensor};

/// Outcome of a gradient check: worst error over all checked elements.
#[derive(Clone, Copy, Debug)]
pub struct GradcheckReport {
    /// max |analytic − numeric| / max(|numeric| max over the input, 1e-3 floor).
    pub max_rel_err: f32,
    pub max_abs_err: f32,
    pub checked: usize,
}

/// Checks the gradients of `f` w.r.t. every element of every input. The output of `f` is reduced
/// to a scalar by a fixed random projection so every output element matters. Inputs are cloned as
/// fresh parameters; `eps` is the finite-difference step (f32: ~1e-2 for well-scaled inputs).
pub fn gradcheck(
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    eps: f32,
) -> Result<GradcheckReport> {
    let params: Vec<Tensor> = inputs.iter().map(|t| t.to_param()).collect();
    let out = f(&params)?;
    let mut rng = StdRng::seed_from_u64(0x6772_6164);
    let proj = Tensor::randn(out.shape(), &mut rng);
    let loss = out.mul(&proj)?.sum_all()?;
    let grads = loss.backward()?;
    let eval = |ps: &[Tensor]| -> Result<f64> {
        no_grad(|| {
            let o = f(ps)?;
            let (o, p) = (o.data(), proj.data());
            Ok(o.iter()
                .zip(p.iter())
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum())
        })
    };
    let mut report = GradcheckReport {
        max_rel_err: 0.0,
        max_abs_err: 0.0,
        checked: 0,
    };
    for p in &params {
        let analytic = grads
            .get(p)
            .map(|g| g.to_vec())
            .unwrap_or_else(|| vec![0.0; p.numel()]);
        let mut numeric = vec![0.0f32; p.numel()];
        for (i, slot) in numeric.iter_mut().enumerate() {
            let orig = p.data()[i];
            p.data_mut()[i] = orig + eps;
            let plus = eval(&params)?;
            p.data_mut()[i] = orig - eps;
            let minus = eval(&params)?;
            p.data_mut()[i] = orig;
            *slot = ((plus - minus) / (2.0 * eps as f64)) as f32;
        }
        let scale = numeric.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (a, n) in analytic.iter().zip(&numeric) {
            let abs = (a - n).abs();
            report.max_abs_err = report.max_abs_err.max(abs);
            report.max_rel_err = report.max_rel_err.max(abs / scale);
        }
        report.checked += p.numel();
    }
    Ok(report)
}
