//! Embedding lookup and its accumulating backward.

use fym_kernels::cpu::embedding::{embedding, embedding_backward};
use rand::{rngs::StdRng, Rng, SeedableRng};

#[test]
fn embedding_gathers_rows_and_backward_accumulates() {
    let mut rng = StdRng::seed_from_u64(70);
    for (vocab, dim, n) in [(1, 1, 1), (5, 3, 7), (50, 32, 2000)] {
        let table: Vec<f32> = (0..vocab * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut ids: Vec<u32> = (0..n).map(|_| rng.gen_range(0..vocab as u32)).collect();
        ids.push(0); // a guaranteed repeat once n ≥ 1
        let mut out = vec![f32::NAN; ids.len() * dim];
        embedding(&table, vocab, dim, &ids, &mut out).unwrap();
        for (i, &id) in ids.iter().enumerate() {
            let id = id as usize;
            assert_eq!(out[i * dim..(i + 1) * dim], table[id * dim..(id + 1) * dim]);
        }

        let dy: Vec<f32> = (0..ids.len() * dim)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let d0: Vec<f32> = (0..vocab * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut dtable = d0.clone();
        embedding_backward(&dy, dim, &ids, &mut dtable);
        let mut want: Vec<f64> = d0.iter().map(|&v| v as f64).collect();
        for (i, &id) in ids.iter().enumerate() {
            for j in 0..dim {
                want[id as usize * dim + j] += dy[i * dim + j] as f64;
            }
        }
        for (k, (&g, &w)) in dtable.iter().zip(&want).enumerate() {
            assert!(
                (g as f64 - w).abs() < 1e-5,
                "vocab {vocab} dim {dim} [{k}]: {g} vs {w}"
            );
        }
    }
}

#[test]
fn embedding_rejects_bad_input() {
    let table = vec![0.0; 12];
    let mut out = vec![0.0; 6];
    let err = embedding(&table, 4, 3, &[1, 4], &mut out)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("embedding:") && err.contains("id 4 at position 1"),
        "{err}"
    );
    let err = embedding(&table, 5, 3, &[1, 2], &mut out)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("embedding:") && err.contains("vocab 5"),
        "{err}"
    );
    let err = embedding(&table, 4, 3, &[1], &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("embedding:"), "{err}");
}
