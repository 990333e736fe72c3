//! Wan 3D RoPE against a direct implementation of the formula (WAN_ARCH.md §3).

use fym_kernels::cpu::rope::{grid_positions, rope_apply, rope_split, rope_table, RopeTable};
use rand::{rngs::StdRng, Rng, SeedableRng};

const THETA: f64 = 10_000.0;

fn rand_vec(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect()
}

/// The angle of every pair of one token, straight from the formula: the first t_dim/2 pairs use
/// ω_t = θ^(−2i/t_dim) and the frame position, then h, then w.
fn direct_angles(pos: [f64; 3], head_dim: usize) -> Vec<f64> {
    let hw = 2 * (head_dim / 6);
    let parts = [head_dim - 2 * hw, hw, hw];
    let mut angles = Vec::new();
    for (axis, &d) in parts.iter().enumerate() {
        for i in 0..d / 2 {
            let omega = 1.0 / THETA.powf(2.0 * i as f64 / d as f64);
            angles.push(pos[axis] * omega);
        }
    }
    angles
}

/// Direct rotation of `[batch, seq, heads, head_dim]` with f32 cos/sin of the f64 angles.
fn direct_rope(
    x: &[f32],
    batch: usize,
    heads: usize,
    pos: &[[f64; 3]],
    d: usize,
    inv: bool,
) -> Vec<f64> {
    let mut out = vec![0f64; x.len()];
    for b in 0..batch {
        for (s, &p) in pos.iter().enumerate() {
            let ang = direct_angles(p, d);
            for h in 0..heads {
                let base = ((b * pos.len() + s) * heads + h) * d;
                for k in 0..d / 2 {
                    let c = ang[k].cos() as f32 as f64;
                    let sn = ang[k].sin() as f32 as f64 * if inv { -1.0 } else { 1.0 };
                    let (x0, x1) = (x[base + 2 * k] as f64, x[base + 2 * k + 1] as f64);
                    out[base + 2 * k] = x0 * c - x1 * sn;
                    out[base + 2 * k + 1] = x0 * sn + x1 * c;
                }
            }
        }
    }
    out
}

#[test]
fn split_matches_wan() {
    let cases = [
        (16, (8, 4, 4)),
        (8, (4, 2, 2)),
        (32, (12, 10, 10)),
        (128, (44, 42, 42)),
        (2, (2, 0, 0)),
        (6, (2, 2, 2)),
        (12, (4, 4, 4)),
    ];
    for (d, want) in cases {
        assert_eq!(rope_split(d), want, "head_dim {d}");
    }
}

#[test]
fn dev_config_frequencies() {
    // D = 16: ω_t = [1, 0.1, 0.01, 0.001], ω_h = ω_w = [1, 0.01]; position (1, 1, 1) gives angle ω,
    // position (3, 2, 5) gives 3ω_t, 2ω_h, 5ω_w.
    let omega_t = [1.0, 0.1, 0.01, 0.001];
    let omega_hw = [1.0, 0.01];
    let table = rope_table(&[[1.0, 1.0, 1.0], [3.0, 2.0, 5.0]], 16, THETA).unwrap();
    assert_eq!((table.seq, table.head_dim, table.cos.len()), (2, 16, 16));
    let want: Vec<f64> = omega_t
        .iter()
        .chain(&omega_hw)
        .chain(&omega_hw)
        .cloned()
        .chain(omega_t.iter().map(|w| 3.0 * w))
        .chain(omega_hw.iter().map(|w| 2.0 * w))
        .chain(omega_hw.iter().map(|w| 5.0 * w))
        .collect();
    for (k, &a) in want.iter().enumerate() {
        assert!(
            (table.cos[k] as f64 - a.cos()).abs() < 1e-7,
            "cos[{k}] {} vs {}",
            table.cos[k],
            a.cos()
        );
        assert!(
            (table.sin[k] as f64 - a.sin()).abs() < 1e-7,
            "sin[{k}] {} vs {}",
            table.sin[k],
            a.sin()
        );
    }
    // D = 8: ω_t = [1, 0.01], ω_h = ω_w = [1].
    let t8 = rope_table(&[[2.0, 3.0, 4.0]], 8, THETA).unwrap();
    for (k, a) in [2.0f64, 0.02, 3.0, 4.0].into_iter().enumerate() {
        assert!(
            (t8.cos[k] as f64 - a.cos()).abs() < 1e-7 && (t8.sin[k] as f64 - a.sin()).abs() < 1e-7
        );
    }
}

#[test]
fn table_is_f64_angles_rounded_to_f32() {
    let pos = grid_positions(3, 2, 5, Some(&[0.0, 2.5, 7.25]));
    for d in [8, 16, 32, 128] {
        let t = rope_table(&pos, d, THETA).unwrap();
        for (s, &p) in pos.iter().enumerate() {
            for (k, a) in direct_angles(p, d).into_iter().enumerate() {
                assert_eq!(
                    t.cos[s * d / 2 + k],
                    a.cos() as f32,
                    "d {d} token {s} pair {k}"
                );
                assert_eq!(
                    t.sin[s * d / 2 + k],
                    a.sin() as f32,
                    "d {d} token {s} pair {k}"
                );
            }
        }
    }
}

#[test]
fn grid_positions_are_frame_major() {
    let (f, h, w) = (3, 4, 5);
    let fp = [0.0, 1.5, 9.75];
    let pos = grid_positions(f, h, w, Some(&fp));
    let plain = grid_positions(f, h, w, None);
    assert_eq!(pos.len(), f * h * w);
    for (fi, &t) in fp.iter().enumerate() {
        for hi in 0..h {
            for wi in 0..w {
                let s = (fi * h + hi) * w + wi;
                assert_eq!(pos[s], [t, hi as f64, wi as f64]);
                assert_eq!(plain[s], [fi as f64, hi as f64, wi as f64]);
            }
        }
    }
}

#[test]
fn apply_matches_direct_formula_and_inverts() {
    let mut rng = StdRng::seed_from_u64(40);
    /// (batch, heads, head_dim, frames, height, width, frame positions)
    type Case<'a> = (usize, usize, usize, usize, usize, usize, Option<&'a [f64]>);
    let cases: &[Case] = &[
        (1, 1, 16, 1, 1, 1, None),
        (2, 3, 16, 3, 2, 5, Some(&[0.0, 2.5, 7.25])),
        (1, 2, 8, 4, 3, 3, Some(&[0.5, 1.0, 13.0, 20.125])),
        (2, 1, 32, 2, 3, 4, None),
        (1, 1, 2, 2, 1, 2, None),
        // Threaded path: 2·256·4·32 = 65536 elements per tensor, 128 tokens per task.
        (2, 4, 32, 4, 8, 8, Some(&[0.0, 3.0, 6.0, 9.0])),
    ];
    for &(batch, heads, d, f, h, w, fp) in cases {
        let pos = grid_positions(f, h, w, fp);
        let table = rope_table(&pos, d, THETA).unwrap();
        let x = rand_vec(&mut rng, batch * pos.len() * heads * d);
        let what = format!("b {batch} heads {heads} d {d} grid {f}x{h}x{w}");
        for inverse in [false, true] {
            let mut out = vec![f32::NAN; x.len()];
            rope_apply(&x, batch, heads, &table, inverse, &mut out).unwrap();
            let want = direct_rope(&x, batch, heads, &pos, d, inverse);
            for (i, (&g, &e)) in out.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - e).abs() < 1e-6,
                    "{what} inverse {inverse} [{i}]: {g} vs {e}"
                );
            }
        }
        // inverse ∘ forward = identity.
        let (mut y, mut back) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        rope_apply(&x, batch, heads, &table, false, &mut y).unwrap();
        rope_apply(&y, batch, heads, &table, true, &mut back).unwrap();
        for (i, (&a, &b)) in x.iter().zip(&back).enumerate() {
            assert!((a - b).abs() < 2e-6, "{what} round trip [{i}]: {a} vs {b}");
        }
        // The inverse is the backward: ⟨rope(x), g⟩ = ⟨x, rope⁻¹(g)⟩, and matches WAN_ARCH §9's
        // dx[2k] = g[2k]c + g[2k+1]s, dx[2k+1] = −g[2k]s + g[2k+1]c.
        let g = rand_vec(&mut rng, x.len());
        let mut dx = vec![0.0; x.len()];
        rope_apply(&g, batch, heads, &table, true, &mut dx).unwrap();
        let lhs: f64 = y.iter().zip(&g).map(|(&a, &b)| a as f64 * b as f64).sum();
        let rhs: f64 = x.iter().zip(&dx).map(|(&a, &b)| a as f64 * b as f64).sum();
        assert!(
            (lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()),
            "{what} adjoint: {lhs} vs {rhs}"
        );
        let half = d / 2;
        for (t, chunk) in dx.chunks_exact(heads * d).enumerate() {
            let s = t % pos.len();
            for (hh, dxh) in chunk.chunks_exact(d).enumerate() {
                let gb = (t * heads + hh) * d;
                for k in 0..half {
                    let (c, sn) = (table.cos[s * half + k], table.sin[s * half + k]);
                    let (g0, g1) = (g[gb + 2 * k], g[gb + 2 * k + 1]);
                    assert!((dxh[2 * k] - (g0 * c + g1 * sn)).abs() < 1e-6);
                    assert!((dxh[2 * k + 1] - (-g0 * sn + g1 * c)).abs() < 1e-6);
                }
            }
        }
    }
}

#[test]
fn rope_rejects_bad_input() {
    let pos = grid_positions(1, 2, 2, None);
    for (d, theta) in [(15, THETA), (0, THETA), (16, 0.0), (16, f64::NAN)] {
        let err = rope_table(&pos, d, theta).unwrap_err().to_string();
        assert!(err.starts_with("rope_table:"), "{err}");
    }
    let err = rope_table(&[[0.0, f64::INFINITY, 0.0]], 16, THETA)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("rope_table:") && err.contains("position 0"),
        "{err}"
    );

    let table = rope_table(&pos, 16, THETA).unwrap();
    let x = vec![0.0; 2 * 4 * 16];
    let mut out = vec![0.0; x.len()];
    let err = rope_apply(&x, 1, 2, &table, false, &mut out[..64])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("rope_apply:") && err.contains("head_dim 16"),
        "{err}"
    );
    let err = rope_apply(&x[..100], 1, 2, &table, false, &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("rope_apply:"), "{err}");
    let broken = RopeTable {
        cos: vec![0.0; 3],
        ..table
    };
    let err = rope_apply(&x, 1, 2, &broken, false, &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("rope_apply:"), "{err}");
}
