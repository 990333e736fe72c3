//! GEMM against a naive f64 triple loop, for every kernel this CPU supports, and the thread pool.

use fym_kernels::cpu::gemm::{sgemm, sgemm_batched_with, sgemm_bias_with, sgemm_with, GemmKernel};
use fym_kernels::cpu::pool::{parallel_for, set_num_threads, SharedMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Value written into padding (between rows, past `n`) that no GEMM may touch.
const SENTINEL: f32 = -7777.0;
/// Error allowed relative to Σ|alpha·a·b| + |beta·c| of each output element.
const REL_TOL: f64 = 1e-5;

fn supported_kernels() -> Vec<GemmKernel> {
    GemmKernel::ALL
        .into_iter()
        .filter(|k| k.is_supported())
        .collect()
}

/// A row-major matrix stored `rows×cols` with leading dimension `ld ≥ cols`; padding holds
/// [`SENTINEL`].
struct Stored {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    ld: usize,
}

impl Stored {
    fn random(rng: &mut StdRng, rows: usize, cols: usize, pad: usize) -> Stored {
        let ld = cols + pad;
        let mut data = vec![SENTINEL; rows * ld];
        for r in 0..rows {
            for c in 0..cols {
                data[r * ld + c] = rng.gen_range(-1.0..1.0);
            }
        }
        Stored {
            data,
            rows,
            cols,
            ld,
        }
    }

    fn get(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.ld + c] as f64
    }

    /// Element (i, j) of op(self).
    fn op(&self, trans: bool, i: usize, j: usize) -> f64 {
        if trans {
            self.get(j, i)
        } else {
            self.get(i, j)
        }
    }

    fn padding_untouched(&self) -> bool {
        (0..self.rows).all(|r| {
            self.data[r * self.ld + self.cols..(r + 1) * self.ld]
                .iter()
                .all(|&v| v == SENTINEL)
        })
    }
}

struct Case {
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
    pads: [usize; 3],
}

impl Case {
    fn random(rng: &mut StdRng, max_dim: usize) -> Case {
        let scalars = [0.0f32, 1.0, -1.0, 0.5, 2.5];
        Case {
            trans_a: rng.gen(),
            trans_b: rng.gen(),
            m: rng.gen_range(1..=max_dim),
            n: rng.gen_range(1..=max_dim),
            k: rng.gen_range(1..=max_dim),
            alpha: scalars[rng.gen_range(1..scalars.len())],
            beta: scalars[rng.gen_range(0..scalars.len())],
            pads: [
                rng.gen_range(0..4),
                rng.gen_range(0..4),
                rng.gen_range(0..4),
            ],
        }
    }
}

/// Runs `case` through `gemm` and checks C against the f64 reference and its padding.
fn check_case(
    rng: &mut StdRng,
    case: &Case,
    gemm: impl FnOnce(&[f32], usize, &[f32], usize, &mut [f32], usize),
) {
    let Case {
        trans_a,
        trans_b,
        m,
        n,
        k,
        alpha,
        beta,
        pads,
    } = *case;
    let a = if trans_a {
        Stored::random(rng, k, m, pads[0])
    } else {
        Stored::random(rng, m, k, pads[0])
    };
    let b = if trans_b {
        Stored::random(rng, n, k, pads[1])
    } else {
        Stored::random(rng, k, n, pads[1])
    };
    let mut c = Stored::random(rng, m, n, pads[2]);
    if beta == 0.0 {
        // beta = 0 must overwrite C, NaNs included.
        for r in 0..m {
            c.data[r * c.ld..r * c.ld + n].fill(f32::NAN);
        }
    }
    let c_before: Vec<f64> = (0..m * n).map(|x| c.get(x / n, x % n)).collect();
    gemm(&a.data, a.ld, &b.data, b.ld, &mut c.data, c.ld);
    let label = format!(
        "trans_a={trans_a} trans_b={trans_b} m={m} n={n} k={k} alpha={alpha} beta={beta} pads={pads:?}"
    );
    assert!(c.padding_untouched(), "C padding was written: {label}");
    for i in 0..m {
        for j in 0..n {
            let (mut exact, mut magnitude) = (0.0f64, 0.0f64);
            for p in 0..k {
                let ab = a.op(trans_a, i, p) * b.op(trans_b, p, j);
                exact += ab;
                magnitude += ab.abs();
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                c_before[i * n + j]
            };
            let expected = alpha as f64 * exact + beta as f64 * old;
            let bound =
                REL_TOL * (alpha.abs() as f64 * magnitude + (beta as f64 * old).abs()) + 1e-30;
            let got = c.get(i, j);
            assert!(
                (got - expected).abs() <= bound,
                "C[{i},{j}] = {got}, expected {expected} (bound {bound}): {label}"
            );
        }
    }
}

fn check_with_kernel(rng: &mut StdRng, kernel: GemmKernel, case: &Case) {
    check_case(rng, case, |a, lda, b, ldb, c, ldc| {
        sgemm_with(
            kernel,
            case.trans_a,
            case.trans_b,
            case.m,
            case.n,
            case.k,
            case.alpha,
            a,
            lda,
            b,
            ldb,
            case.beta,
            c,
            ldc,
        )
        .unwrap()
    });
}

#[test]
fn every_kernel_matches_reference_on_random_small_shapes() {
    let mut rng = StdRng::seed_from_u64(1);
    for kernel in supported_kernels() {
        for _ in 0..300 {
            let case = Case::random(&mut rng, 70);
            check_with_kernel(&mut rng, kernel, &case);
        }
    }
}

#[test]
fn every_kernel_handles_all_transposes_on_ragged_and_blocked_shapes() {
    // Two threads on any machine, so both ways of splitting C are exercised. (Every test in this
    // file that sets the thread count sets it to 2, so they do not disturb each other.)
    set_num_threads(2);
    let mut rng = StdRng::seed_from_u64(2);
    // 257×129×65 is ragged for every tile. On two threads, 700×100×270 splits C by rows into
    // blocks taller than MC and deeper than KC; 20×2100×120 splits C by columns into blocks wider
    // than NC; 20×1500×200 has a ragged column split.
    let shapes = [
        (257, 129, 65),
        (700, 100, 270),
        (20, 2100, 120),
        (20, 1500, 200),
        (1, 300, 1),
        (300, 1, 300),
    ];
    for kernel in supported_kernels() {
        for &(m, n, k) in &shapes {
            for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
                let case = Case {
                    trans_a,
                    trans_b,
                    m,
                    n,
                    k,
                    alpha: 0.75,
                    beta: -1.5,
                    pads: [3, 1, 5],
                };
                check_with_kernel(&mut rng, kernel, &case);
            }
        }
    }
}

#[test]
fn narrow_and_in_place_a_paths_match_reference() {
    set_num_threads(2);
    let mut rng = StdRng::seed_from_u64(12);
    // AVX-512 runs n ≤ 16 on its 14×16 tile and reads a row-major A in place while n ≤ 128
    // (4 panels of 32); these shapes straddle both limits, with k deeper than one KC block and
    // m past one MC block, ragged everywhere.
    let shapes = [
        (515, 8, 300),
        (515, 16, 33),
        (100, 17, 260),
        (70, 128, 513),
        (29, 129, 40),
        (350, 1, 7),
    ];
    for kernel in supported_kernels() {
        for &(m, n, k) in &shapes {
            for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
                for beta in [0.0, 0.5] {
                    let case = Case {
                        trans_a,
                        trans_b,
                        m,
                        n,
                        k,
                        alpha: -1.25,
                        beta,
                        pads: [2, 3, 1],
                    };
                    check_with_kernel(&mut rng, kernel, &case);
                }
            }
        }
    }
}

#[test]
fn bias_epilogue_matches_reference() {
    set_num_threads(2);
    let mut rng = StdRng::seed_from_u64(13);
    // Ragged edges (n not a multiple of any tile width), k deeper than KC (the bias must be added
    // once, by the last k slice), n ≤ 16 (AVX-512's narrow tile), a column split on two
    // threads (20×2100×120), and k = 0 (C = bias).
    let shapes = [
        (37, 45, 300),
        (515, 8, 130),
        (20, 2100, 120),
        (700, 100, 40),
        (5, 7, 0),
    ];
    for kernel in supported_kernels() {
        for &(m, n, k) in &shapes {
            for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
                let (a_rows, a_cols) = if trans_a { (k, m) } else { (m, k) };
                let (b_rows, b_cols) = if trans_b { (n, k) } else { (k, n) };
                let a = Stored::random(&mut rng, a_rows, a_cols, 1);
                let b = Stored::random(&mut rng, b_rows, b_cols, 2);
                let bias: Vec<f32> = (0..n).map(|j| (j as f32 * 0.37).sin()).collect();
                let alpha = 0.75;
                let ldc = n + 3;
                let mut c = vec![f32::NAN; (m.max(1) - 1) * ldc + n];
                sgemm_bias_with(
                    kernel, trans_a, trans_b, m, n, k, alpha, &a.data, a.ld, &b.data, b.ld, &bias,
                    &mut c, ldc,
                )
                .unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k)
                            .map(|p| a.op(trans_a, i, p) * b.op(trans_b, p, j))
                            .sum();
                        let want = alpha as f64 * dot + bias[j] as f64;
                        let got = c[i * ldc + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{kernel:?} {m}×{n}×{k} t{trans_a}{trans_b} C[{i},{j}] = {got}, want {want}"
                        );
                    }
                }
            }
        }
    }
    let short = sgemm_bias_with(
        GemmKernel::Scalar,
        false,
        false,
        2,
        3,
        2,
        1.0,
        &[0.0; 4],
        2,
        &[0.0; 6],
        3,
        &[0.0; 2],
        &mut [0.0; 6],
        3,
    );
    assert!(short
        .unwrap_err()
        .to_string()
        .contains("bias has 2 values for 3 columns"));
}

#[test]
fn default_kernel_matches_reference() {
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..50 {
        let case = Case::random(&mut rng, 40);
        check_case(&mut rng, &case, |a, lda, b, ldb, c, ldc| {
            sgemm(
                case.trans_a,
                case.trans_b,
                case.m,
                case.n,
                case.k,
                case.alpha,
                a,
                lda,
                b,
                ldb,
                case.beta,
                c,
                ldc,
            )
        });
    }
}

#[test]
fn empty_dimensions() {
    for kernel in supported_kernels() {
        // k = 0: C = beta·C, and beta = 0 overwrites NaN.
        let mut c = vec![1.0, 2.0, f32::NAN, 4.0];
        sgemm_with(
            kernel,
            false,
            false,
            2,
            2,
            0,
            1.0,
            &[],
            0,
            &[],
            2,
            0.0,
            &mut c,
            2,
        )
        .unwrap();
        assert_eq!(c, [0.0; 4]);
        let mut c = vec![1.0, 2.0, 3.0, 4.0];
        sgemm_with(
            kernel,
            false,
            false,
            2,
            2,
            0,
            1.0,
            &[],
            0,
            &[],
            2,
            3.0,
            &mut c,
            2,
        )
        .unwrap();
        assert_eq!(c, [3.0, 6.0, 9.0, 12.0]);
        // m = 0 or n = 0: nothing to do, no slice is read.
        let mut c: Vec<f32> = vec![];
        sgemm_with(
            kernel,
            false,
            false,
            0,
            5,
            3,
            1.0,
            &[],
            3,
            &[0.0; 15],
            5,
            0.0,
            &mut c,
            5,
        )
        .unwrap();
        sgemm_with(
            kernel,
            false,
            false,
            5,
            0,
            3,
            1.0,
            &[0.0; 15],
            3,
            &[],
            0,
            0.0,
            &mut c,
            0,
        )
        .unwrap();
    }
}

#[test]
fn alpha_zero_reads_neither_a_nor_b() {
    for kernel in supported_kernels() {
        let a = [f32::NAN; 6];
        let mut c = vec![1.0, -2.0, f32::NAN, 4.0];
        sgemm_with(
            kernel, false, false, 2, 2, 3, 0.0, &a, 3, &a, 2, 0.0, &mut c, 2,
        )
        .unwrap();
        assert_eq!(c, [0.0; 4]);
        let mut c = vec![1.0, -2.0, 3.0, 4.0];
        sgemm_with(
            kernel, false, false, 2, 2, 3, 0.0, &a, 3, &a, 2, 0.5, &mut c, 2,
        )
        .unwrap();
        assert_eq!(c, [0.5, -1.0, 1.5, 2.0]);
    }
}

#[test]
fn bad_slices_and_leading_dimensions_are_errors() {
    let kernel = GemmKernel::Scalar;
    let (a, b) = (vec![0.0; 6], vec![0.0; 6]);
    let mut c = vec![0.0; 4];
    // A is 2×3 but holds only 5 elements.
    let err = sgemm_with(
        kernel,
        false,
        false,
        2,
        2,
        3,
        1.0,
        &a[..5],
        3,
        &b,
        2,
        0.0,
        &mut c,
        2,
    )
    .unwrap_err();
    assert!(err.to_string().contains("A is stored 2×3"), "{err}");
    // ldb smaller than B's row.
    let err = sgemm_with(
        kernel, false, false, 2, 2, 3, 1.0, &a, 3, &b, 1, 0.0, &mut c, 2,
    )
    .unwrap_err();
    assert!(err.to_string().contains("B is stored 3×2"), "{err}");
    // C too short for ldc = 3.
    let err = sgemm_with(
        kernel, false, false, 2, 2, 3, 1.0, &a, 3, &b, 2, 0.0, &mut c, 3,
    )
    .unwrap_err();
    assert!(err.to_string().contains("C is stored 2×2"), "{err}");
    // Batched: the last entry's offset lies past the end of A.
    let err = sgemm_batched_with(
        kernel, 3, false, false, 2, 2, 3, 1.0, &a, 3, 6, &b, 2, 0, 0.0, &mut c, 2, 0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("A has 6 elements"), "{err}");
}

#[test]
fn batched_matches_reference_with_shared_b() {
    let mut rng = StdRng::seed_from_u64(4);
    // 8 entries of 64×128×128 take the split-over-entries path; 2 entries of 200×150×90 the
    // one-entry-at-a-time path; 3 tiny ones stay on one thread.
    for kernel in supported_kernels() {
        for &(batch, m, n, k) in &[(8, 64, 128, 128), (2, 200, 150, 90), (3, 5, 7, 3)] {
            let (lda, ldb, ldc) = (k + 1, n + 2, n + 3);
            let stride_a = m * lda + 4;
            let stride_c = m * ldc + 2;
            let a: Vec<f32> = (0..batch * stride_a)
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let b: Vec<f32> = (0..k * ldb).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let c0: Vec<f32> = (0..batch * stride_c)
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let mut c = c0.clone();
            let (alpha, beta) = (1.5f32, -0.5f32);
            sgemm_batched_with(
                kernel, batch, false, false, m, n, k, alpha, &a, lda, stride_a, &b, ldb, 0, beta,
                &mut c, ldc, stride_c,
            )
            .unwrap();
            for e in 0..batch {
                for i in 0..m {
                    for j in 0..ldc {
                        let at = e * stride_c + i * ldc + j;
                        if j >= n {
                            assert_eq!(c[at], c0[at], "padding of entry {e} written");
                            continue;
                        }
                        let (mut exact, mut magnitude) = (0.0f64, 0.0f64);
                        for p in 0..k {
                            let ab = a[e * stride_a + i * lda + p] as f64 * b[p * ldb + j] as f64;
                            exact += ab;
                            magnitude += ab.abs();
                        }
                        let expected = alpha as f64 * exact + beta as f64 * c0[at] as f64;
                        let bound =
                            REL_TOL * (alpha as f64 * magnitude + (beta * c0[at]).abs() as f64);
                        assert!(
                            (c[at] as f64 - expected).abs() <= bound,
                            "{kernel:?} batch={batch} entry {e} C[{i},{j}] = {}, expected {expected}",
                            c[at]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn batched_with_shared_c_accumulates_in_order() {
    // stride_c = 0 with beta = 1: every entry adds its product into the same C.
    let mut rng = StdRng::seed_from_u64(5);
    let (batch, m, n, k) = (4, 30, 40, 50);
    let a: Vec<f32> = (0..batch * m * k)
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let b: Vec<f32> = (0..batch * k * n)
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let mut c = vec![0.25f32; m * n];
    sgemm_batched_with(
        GemmKernel::best(),
        batch,
        false,
        false,
        m,
        n,
        k,
        1.0,
        &a,
        k,
        m * k,
        &b,
        n,
        k * n,
        1.0,
        &mut c,
        n,
        0,
    )
    .unwrap();
    for i in 0..m {
        for j in 0..n {
            let (mut exact, mut magnitude) = (0.25f64, 0.25f64);
            for e in 0..batch {
                for p in 0..k {
                    let ab = a[e * m * k + i * k + p] as f64 * b[e * k * n + p * n + j] as f64;
                    exact += ab;
                    magnitude += ab.abs();
                }
            }
            assert!(
                (c[i * n + j] as f64 - exact).abs() <= REL_TOL * magnitude,
                "C[{i},{j}]"
            );
        }
    }
}

#[test]
fn pool_runs_every_task_once_with_nested_and_concurrent_calls() {
    set_num_threads(2);
    // Nested: each outer task runs an inner parallel_for.
    let (outer, inner) = (7, 13);
    let counts: Vec<AtomicUsize> = (0..outer * inner).map(|_| AtomicUsize::new(0)).collect();
    parallel_for(outer, |o| {
        parallel_for(inner, |i| {
            counts[o * inner + i].fetch_add(1, Ordering::Relaxed);
        })
    });
    assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));

    // Concurrent: several threads call parallel_for at once, many times.
    let callers = 4;
    let (rounds, tasks) = (50, 101);
    let counts: Vec<AtomicUsize> = (0..callers * tasks).map(|_| AtomicUsize::new(0)).collect();
    std::thread::scope(|s| {
        for t in 0..callers {
            let counts = &counts;
            s.spawn(move || {
                for _ in 0..rounds {
                    parallel_for(tasks, |i| {
                        counts[t * tasks + i].fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
        }
    });
    assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == rounds));

    // Disjoint writes through SharedMut.
    let mut out = vec![0usize; 1000];
    let shared = SharedMut::new(&mut out);
    parallel_for(10, |t| {
        // SAFETY: task t owns elements 100·t .. 100·t + 100.
        let part = unsafe { shared.slice(t * 100, 100) };
        part.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = t * 100 + i);
    });
    assert!(out.iter().enumerate().all(|(i, &v)| v == i));
}

#[test]
fn pool_survives_a_panicking_task() {
    set_num_threads(2);
    let result = std::panic::catch_unwind(|| {
        parallel_for(8, |i| {
            if i == 5 {
                panic!("task 5 fails");
            }
        })
    });
    assert!(result.is_err());
    let done = AtomicUsize::new(0);
    parallel_for(64, |_| {
        done.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(done.load(Ordering::Relaxed), 64);
}

/// Timing of the shapes the targets are set for. Not a benchmark harness: run with
/// `cargo test --release -p fym-kernels --test gemm -- --ignored --nocapture time_gemm`
/// (`FYM_TIME_THREADS=1` for one thread, `FYM_TIME_KERNELS=avx2,scalar` for other kernels).
#[test]
#[ignore]
fn time_gemm() {
    let runs = 21;
    let threads: usize = std::env::var("FYM_TIME_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    set_num_threads(threads);
    let peak = fym_kernels::cpu::peak::measure_fma_peak_gflops(threads);
    println!(
        "FMA peak ({}, {threads} threads): {peak:.1} GFLOP/s",
        fym_kernels::cpu::peak::best_isa()
    );
    let kernels: Vec<GemmKernel> = match std::env::var("FYM_TIME_KERNELS") {
        Ok(names) => names.split(',').filter_map(GemmKernel::from_name).collect(),
        Err(_) => vec![GemmKernel::best()],
    };
    for kernel in kernels {
        for &(m, k, n) in &[
            (512, 512, 512),
            (2048, 512, 128),
            (4096, 128, 512),
            (64, 128, 128),
        ] {
            let a = vec![0.5f32; m * k];
            let b = vec![0.25f32; k * n];
            let mut c = vec![0.0f32; m * n];
            let mut times: Vec<f64> = (0..runs)
                .map(|_| {
                    let t = std::time::Instant::now();
                    sgemm_with(
                        kernel, false, false, m, n, k, 1.0, &a, k, &b, n, 0.0, &mut c, n,
                    )
                    .unwrap();
                    t.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let (median, best) = (times[runs / 2], times[0]);
            let gflops = |t: f64| 2.0 * (m * n * k) as f64 / t / 1e9;
            println!(
                "{:>6} M={m:<5} K={k:<4} N={n:<4} median {:7.3} ms {:6.1} GFLOP/s ({:5.1}% of peak), best {:7.3} ms {:6.1} GFLOP/s",
                kernel.name(),
                median * 1e3,
                gflops(median),
                100.0 * gflops(median) / peak,
                best * 1e3,
                gflops(best),
            );
        }
    }
}
