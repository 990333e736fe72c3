//! LayerNorm (biased variance, optional affine) and RMSNorm over the last dim of a `rows × cols`
//! matrix, forward and backward.
//!
//! Row statistics are f32 with 16 accumulator lanes; LayerNorm's variance is the corrected
//! two-pass formula (Σd² − (Σd)²/n with d = x − μ̃), which also corrects the mean, so rows with a large
//! offset keep their variance. Weight/bias gradients sum over rows in f64 partials, one per task.
//!
//! Buffer sizes are not `Result`-checked: the tape sizes these buffers from shapes it already
//! checked, so a mismatch is a bug in fym and panics with the sizes.

use crate::cpu::elementwise::{simd_dispatch, PAR_MIN_ELEMS};
use crate::cpu::pool::{num_threads, parallel_for, SharedMut};
use crate::cpu::reduce::{dot_f32, sum_f32};

/// Rows handed to one task in the forward pass: ~16k elements.
fn forward_rows_per_task(rows: usize, cols: usize) -> usize {
    if rows * cols < PAR_MIN_ELEMS {
        rows.max(1)
    } else {
        ((1 << 14) / cols.max(1)).clamp(1, rows)
    }
}

/// Backward tasks: one contiguous row range per thread (each keeps its own weight-gradient partial).
fn backward_tasks(rows: usize, cols: usize) -> usize {
    if rows * cols < PAR_MIN_ELEMS {
        1
    } else {
        num_threads().min(rows).max(1)
    }
}

fn check_len(op: &str, name: &str, got: usize, want: usize) {
    assert_eq!(
        got, want,
        "{op}: {name} has {got} elements, expected {want}"
    );
}

/// Runs `f(row_start, row_end)` for consecutive blocks of `rows_per_task` rows, in parallel.
fn for_row_blocks(rows: usize, rows_per_task: usize, f: impl Fn(usize, usize) + Sync) {
    let tasks = rows.div_ceil(rows_per_task);
    parallel_for(tasks, |t| {
        f(t * rows_per_task, ((t + 1) * rows_per_task).min(rows))
    });
}

/// Σ(x − c) and Σ(x − c)² with 16 lanes.
#[inline(always)]
fn dev_sums(x: &[f32], c: f32) -> (f32, f32) {
    let mut d2 = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let (mut d1_tail, mut d2_tail) = (0f32, 0f32);
    for &v in chunks.remainder() {
        d1_tail += v - c;
        d2_tail += (v - c) * (v - c);
    }
    let mut d1 = [0f32; 16];
    for ch in chunks {
        for i in 0..16 {
            let d = ch[i] - c;
            d1[i] += d;
            d2[i] += d * d;
        }
    }
    (sum_f32(&d1) + d1_tail, sum_f32(&d2) + d2_tail)
}

simd_dispatch! {
    fn layer_norm_rows(
        x: &[f32],
        cols: usize,
        eps: f32,
        weight: Option<&[f32]>,
        bias: Option<&[f32]>,
        out: &mut [f32],
        mean: &mut [f32],
        rstd: &mut [f32],
    ) {
        let n = cols as f32;
        let rows = x.chunks_exact(cols).zip(out.chunks_exact_mut(cols));
        for (((xr, or), m), rs) in rows.zip(mean.iter_mut()).zip(rstd.iter_mut()) {
            let mu0 = sum_f32(xr) / n;
            let (d1, d2) = dev_sums(xr, mu0);
            let var = ((d2 - d1 * d1 / n) / n).max(0.0);
            let r = 1.0 / (var + eps).sqrt();
            *m = mu0 + d1 / n;
            *rs = r;
            // x − μ as (x − μ̃) − δ: x − μ̃ is exact for x near μ̃, so offset rows lose nothing to
            // the rounding of μ.
            let delta = d1 / n;
            match (weight, bias) {
                (Some(w), Some(b)) => {
                    for (((o, &v), &w), &b) in or.iter_mut().zip(xr).zip(w).zip(b) {
                        *o = (v - mu0 - delta) * r * w + b;
                    }
                }
                (Some(w), None) => {
                    for ((o, &v), &w) in or.iter_mut().zip(xr).zip(w) {
                        *o = (v - mu0 - delta) * r * w;
                    }
                }
                (None, Some(b)) => {
                    for ((o, &v), &b) in or.iter_mut().zip(xr).zip(b) {
                        *o = (v - mu0 - delta) * r + b;
                    }
                }
                (None, None) => {
                    for (o, &v) in or.iter_mut().zip(xr) {
                        *o = (v - mu0 - delta) * r;
                    }
                }
            }
        }
    }
}

/// `out = (x − μ)·rstd · w + b`; saves per-row `mean` and `rstd = 1/√(σ² + eps)` for backward.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    x: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    const OP: &str = "layer_norm";
    check_len(OP, "x", x.len(), rows * cols);
    check_len(OP, "out", out.len(), rows * cols);
    check_len(OP, "mean", mean.len(), rows);
    check_len(OP, "rstd", rstd.len(), rows);
    if let Some(w) = weight {
        check_len(OP, "weight", w.len(), cols);
    }
    if let Some(b) = bias {
        check_len(OP, "bias", b.len(), cols);
    }
    if rows == 0 || cols == 0 {
        mean.fill(0.0);
        rstd.fill(1.0 / eps.sqrt());
        return;
    }
    let (po, pm, pr) = (
        SharedMut::new(out),
        SharedMut::new(mean),
        SharedMut::new(rstd),
    );
    for_row_blocks(rows, forward_rows_per_task(rows, cols), |r0, r1| {
        let n = r1 - r0;
        // SAFETY: row blocks are disjoint, so are their slices of out/mean/rstd.
        let (o, m, r) = unsafe {
            (
                po.slice(r0 * cols, n * cols),
                pm.slice(r0, n),
                pr.slice(r0, n),
            )
        };
        layer_norm_rows(&x[r0 * cols..r1 * cols], cols, eps, weight, bias, o, m, r);
    });
}

simd_dispatch! {
    fn layer_norm_backward_rows(
        x: &[f32],
        cols: usize,
        weight: Option<&[f32]>,
        mean: &[f32],
        rstd: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        dw_acc: Option<&mut [f64]>,
        db_acc: Option<&mut [f64]>,
        scratch: &mut [f32],
    ) {
        let n = cols as f32;
        let (mut dw_acc, mut db_acc) = (dw_acc, db_acc);
        for (r, dxr) in dx.chunks_exact_mut(cols).enumerate() {
            let (xr, gr) = (&x[r * cols..(r + 1) * cols], &dy[r * cols..(r + 1) * cols]);
            let (mu, rs) = (mean[r], rstd[r]);
            // scratch = x̂
            for (h, &v) in scratch.iter_mut().zip(xr) {
                *h = (v - mu) * rs;
            }
            // dx temporarily holds ĝ = g·w.
            match weight {
                Some(w) => {
                    for ((o, &g), &w) in dxr.iter_mut().zip(gr).zip(w) {
                        *o = g * w;
                    }
                }
                None => dxr.copy_from_slice(gr),
            }
            let mean_g = sum_f32(dxr) / n;
            let mean_gx = dot_f32(dxr, scratch) / n;
            for (o, &h) in dxr.iter_mut().zip(scratch.iter()) {
                *o = rs * (*o - mean_g - h * mean_gx);
            }
            if let Some(acc) = dw_acc.as_deref_mut() {
                for ((a, &g), &h) in acc.iter_mut().zip(gr).zip(scratch.iter()) {
                    *a += (g * h) as f64;
                }
            }
            if let Some(acc) = db_acc.as_deref_mut() {
                for (a, &g) in acc.iter_mut().zip(gr) {
                    *a += g as f64;
                }
            }
        }
    }
}

/// Backward of [`layer_norm`]: overwrites `dx`; overwrites `dweight`/`dbias` when given.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    x: &[f32],
    rows: usize,
    cols: usize,
    weight: Option<&[f32]>,
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dweight: Option<&mut [f32]>,
    dbias: Option<&mut [f32]>,
) {
    const OP: &str = "layer_norm_backward";
    check_len(OP, "x", x.len(), rows * cols);
    check_len(OP, "dy", dy.len(), rows * cols);
    check_len(OP, "dx", dx.len(), rows * cols);
    check_len(OP, "mean", mean.len(), rows);
    check_len(OP, "rstd", rstd.len(), rows);
    if let Some(w) = weight {
        check_len(OP, "weight", w.len(), cols);
    }
    if let Some(dw) = &dweight {
        check_len(OP, "dweight", dw.len(), cols);
    }
    if let Some(db) = &dbias {
        check_len(OP, "dbias", db.len(), cols);
    }
    if rows == 0 || cols == 0 {
        if let Some(d) = dweight {
            d.fill(0.0);
        }
        if let Some(d) = dbias {
            d.fill(0.0);
        }
        return;
    }
    let tasks = backward_tasks(rows, cols);
    let per = rows.div_ceil(tasks).max(1);
    let (want_dw, want_db) = (dweight.is_some(), dbias.is_some());
    let mut dw_parts = vec![0f64; if want_dw { tasks * cols } else { 0 }];
    let mut db_parts = vec![0f64; if want_db { tasks * cols } else { 0 }];
    let (pdx, pdw, pdb) = (
        SharedMut::new(dx),
        SharedMut::new(&mut dw_parts),
        SharedMut::new(&mut db_parts),
    );
    parallel_for(tasks, |t| {
        let (r0, r1) = ((t * per).min(rows), ((t + 1) * per).min(rows));
        let n = r1 - r0;
        // SAFETY: task `t` owns rows r0..r1 of dx and partial `t` of the weight/bias gradients.
        let (dxb, dwb, dbb) = unsafe {
            (
                pdx.slice(r0 * cols, n * cols),
                want_dw.then(|| pdw.slice(t * cols, cols)),
                want_db.then(|| pdb.slice(t * cols, cols)),
            )
        };
        let mut scratch = vec![0f32; cols];
        let rr = r0 * cols..r1 * cols;
        layer_norm_backward_rows(
            &x[rr.clone()],
            cols,
            weight,
            &mean[r0..r1],
            &rstd[r0..r1],
            &dy[rr],
            dxb,
            dwb,
            dbb,
            &mut scratch,
        );
    });
    if let Some(dw) = dweight {
        sum_partials(&dw_parts, dw);
    }
    if let Some(db) = dbias {
        sum_partials(&db_parts, db);
    }
}

/// `out[j] = Σ_t parts[t·n + j]`, rounded to f32 (n = out.len()).
fn sum_partials(parts: &[f64], out: &mut [f32]) {
    let n = out.len();
    for (j, o) in out.iter_mut().enumerate() {
        *o = parts.iter().skip(j).step_by(n.max(1)).sum::<f64>() as f32;
    }
}

simd_dispatch! {
    fn rms_norm_rows(
        x: &[f32],
        cols: usize,
        eps: f32,
        weight: Option<&[f32]>,
        out: &mut [f32],
        rstd: &mut [f32],
    ) {
        let rows = x.chunks_exact(cols).zip(out.chunks_exact_mut(cols));
        for ((xr, or), rs) in rows.zip(rstd.iter_mut()) {
            let r = 1.0 / (dot_f32(xr, xr) / cols as f32 + eps).sqrt();
            *rs = r;
            match weight {
                Some(w) => {
                    for ((o, &v), &w) in or.iter_mut().zip(xr).zip(w) {
                        *o = v * r * w;
                    }
                }
                None => {
                    for (o, &v) in or.iter_mut().zip(xr) {
                        *o = v * r;
                    }
                }
            }
        }
    }
}

/// `out = x · rstd · w`, `rstd = 1/√(mean(x²) + eps)` saved per row.
pub fn rms_norm(
    x: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
    weight: Option<&[f32]>,
    out: &mut [f32],
    rstd: &mut [f32],
) {
    const OP: &str = "rms_norm";
    check_len(OP, "x", x.len(), rows * cols);
    check_len(OP, "out", out.len(), rows * cols);
    check_len(OP, "rstd", rstd.len(), rows);
    if let Some(w) = weight {
        check_len(OP, "weight", w.len(), cols);
    }
    if rows == 0 || cols == 0 {
        rstd.fill(1.0 / eps.sqrt());
        return;
    }
    let (po, pr) = (SharedMut::new(out), SharedMut::new(rstd));
    for_row_blocks(rows, forward_rows_per_task(rows, cols), |r0, r1| {
        let n = r1 - r0;
        // SAFETY: row blocks are disjoint, so are their slices of out/rstd.
        let (o, r) = unsafe { (po.slice(r0 * cols, n * cols), pr.slice(r0, n)) };
        rms_norm_rows(&x[r0 * cols..r1 * cols], cols, eps, weight, o, r);
    });
}

simd_dispatch! {
    fn rms_norm_backward_rows(
        x: &[f32],
        cols: usize,
        weight: Option<&[f32]>,
        rstd: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        dw_acc: Option<&mut [f64]>,
    ) {
        let n = cols as f32;
        let mut dw_acc = dw_acc;
        for (r, dxr) in dx.chunks_exact_mut(cols).enumerate() {
            let (xr, gr) = (&x[r * cols..(r + 1) * cols], &dy[r * cols..(r + 1) * cols]);
            let rs = rstd[r];
            // dx temporarily holds ĝ = g·w.
            match weight {
                Some(w) => {
                    for ((o, &g), &w) in dxr.iter_mut().zip(gr).zip(w) {
                        *o = g * w;
                    }
                }
                None => dxr.copy_from_slice(gr),
            }
            let c = rs * rs * rs * dot_f32(dxr, xr) / n;
            for (o, &v) in dxr.iter_mut().zip(xr) {
                *o = rs * *o - v * c;
            }
            if let Some(acc) = dw_acc.as_deref_mut() {
                for ((a, &g), &v) in acc.iter_mut().zip(gr).zip(xr) {
                    *a += (g * v * rs) as f64;
                }
            }
        }
    }
}

/// Backward of [`rms_norm`]: overwrites `dx`; overwrites `dweight` when given.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_backward(
    x: &[f32],
    rows: usize,
    cols: usize,
    weight: Option<&[f32]>,
    rstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dweight: Option<&mut [f32]>,
) {
    const OP: &str = "rms_norm_backward";
    check_len(OP, "x", x.len(), rows * cols);
    check_len(OP, "dy", dy.len(), rows * cols);
    check_len(OP, "dx", dx.len(), rows * cols);
    check_len(OP, "rstd", rstd.len(), rows);
    if let Some(w) = weight {
        check_len(OP, "weight", w.len(), cols);
    }
    if let Some(dw) = &dweight {
        check_len(OP, "dweight", dw.len(), cols);
    }
    if rows == 0 || cols == 0 {
        if let Some(d) = dweight {
            d.fill(0.0);
        }
        return;
    }
    let tasks = backward_tasks(rows, cols);
    let per = rows.div_ceil(tasks).max(1);
    let want_dw = dweight.is_some();
    let mut dw_parts = vec![0f64; if want_dw { tasks * cols } else { 0 }];
    let (pdx, pdw) = (SharedMut::new(dx), SharedMut::new(&mut dw_parts));
    parallel_for(tasks, |t| {
        let (r0, r1) = ((t * per).min(rows), ((t + 1) * per).min(rows));
        let n = r1 - r0;
        // SAFETY: task `t` owns rows r0..r1 of dx and partial `t` of the weight gradient.
        let (dxb, dwb) = unsafe {
            (
                pdx.slice(r0 * cols, n * cols),
                want_dw.then(|| pdw.slice(t * cols, cols)),
            )
        };
        let rr = r0 * cols..r1 * cols;
        rms_norm_backward_rows(
            &x[rr.clone()],
            cols,
            weight,
            &rstd[r0..r1],
            &dy[rr],
            dxb,
            dwb,
        );
    });
    if let Some(dw) = dweight {
        sum_partials(&dw_parts, dw);
    }
}
