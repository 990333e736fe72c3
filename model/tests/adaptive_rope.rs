//! Adaptive RoPE positions (the paper's formula, with numbers), the consecutive baseline, and the
//! sparse frame samplers.

use fym_model::adaptive_rope::{
    adaptive_temporal_positions, baseline_temporal_positions, frame_index_positions,
    sample_sparse_frames, sample_sparse_frames_with, SparseSampling, TemporalPositions,
};
use rand::SeedableRng;

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
}

#[test]
fn paper_positions_with_numbers() {
    // 21 latent frames (81 pixel frames), 5 sampled: 21/2 + 4.2·(i − 2.5).
    let p = adaptive_temporal_positions(21, 5).unwrap();
    assert!(close(&p, &[0.0, 4.2, 8.4, 12.6, 16.8]), "{p:?}");
    let p = adaptive_temporal_positions(8, 4).unwrap();
    assert!(close(&p, &[0.0, 2.0, 4.0, 6.0]), "{p:?}");
    let p = adaptive_temporal_positions(8, 3).unwrap();
    assert!(close(&p, &[0.0, 8.0 / 3.0, 16.0 / 3.0]), "{p:?}");
    // All frames sampled: the ordinary positions 0..F.
    let p = adaptive_temporal_positions(6, 6).unwrap();
    assert!(close(&p, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]), "{p:?}");
    // One frame: the middle of the clip minus half its span, i.e. 0.
    assert!(close(&adaptive_temporal_positions(9, 1).unwrap(), &[0.0]));
    // Against the formula written out, for many sizes.
    for f in 1..40usize {
        for fs in 1..=f {
            let p = adaptive_temporal_positions(f, fs).unwrap();
            for (i, &pi) in p.iter().enumerate() {
                let want = f as f64 / 2.0 + (f as f64 / fs as f64) * (i as f64 - fs as f64 / 2.0);
                assert!((pi - want).abs() < 1e-12);
                assert!(pi >= -1e-12 && pi < f as f64);
            }
        }
    }
}

#[test]
fn baseline_and_index_positions() {
    assert_eq!(baseline_temporal_positions(4), vec![0.0, 1.0, 2.0, 3.0]);
    assert_eq!(frame_index_positions(&[1, 5, 9]), vec![1.0, 5.0, 9.0]);
    let idx = [0usize, 7, 9, 15, 20];
    assert!(close(
        &TemporalPositions::Adaptive.positions(21, &idx).unwrap(),
        &[0.0, 4.2, 8.4, 12.6, 16.8]
    ));
    assert_eq!(
        TemporalPositions::Consecutive.positions(21, &idx).unwrap(),
        vec![0.0, 1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(
        TemporalPositions::FrameIndex.positions(21, &idx).unwrap(),
        vec![0.0, 7.0, 9.0, 15.0, 20.0]
    );
    assert!(TemporalPositions::FrameIndex
        .positions(21, &[3, 21])
        .is_err());
}

#[test]
fn bad_counts_are_errors() {
    assert!(adaptive_temporal_positions(5, 0).is_err());
    let msg = adaptive_temporal_positions(5, 6).unwrap_err().to_string();
    assert!(msg.contains('6') && msg.contains('5'), "{msg}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    assert!(sample_sparse_frames(&mut rng, 4, 5).is_err());
    assert!(sample_sparse_frames(&mut rng, 4, 0).is_err());
}

#[test]
fn stratified_sampling_draws_one_frame_per_bin() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let (f, fs) = (21usize, 5usize);
    let mut seen = vec![0usize; f];
    for _ in 0..4000 {
        let idx = sample_sparse_frames(&mut rng, f, fs).unwrap();
        assert_eq!(idx.len(), fs);
        for (i, &k) in idx.iter().enumerate() {
            // bin i = [⌊i·21/5⌋, ⌊(i+1)·21/5⌋) = [0,4) [4,8) [8,12) [12,16) [16,21)
            assert!(k >= i * f / fs && k < (i + 1) * f / fs, "{idx:?}");
            seen[k] += 1;
        }
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
    }
    // Every frame is reachable, uniformly within its bin (bin of 4 → ~1000, bin of 5 → ~800).
    for (k, &c) in seen.iter().enumerate() {
        let want = if k >= 16 { 800.0 } else { 1000.0 };
        assert!((c as f64 - want).abs() < 150.0, "frame {k}: {c}");
    }
    // Sampling every frame gives every frame.
    assert_eq!(
        sample_sparse_frames(&mut rng, 6, 6).unwrap(),
        vec![0, 1, 2, 3, 4, 5]
    );
}

#[test]
fn uniform_sampling_is_a_sorted_distinct_subset() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let (f, fs) = (10usize, 3usize);
    let mut seen = vec![0usize; f];
    let trials = 6000;
    for _ in 0..trials {
        let idx = sample_sparse_frames_with(&mut rng, f, fs, SparseSampling::Uniform).unwrap();
        assert_eq!(idx.len(), fs);
        assert!(idx.windows(2).all(|w| w[0] < w[1]) && idx.iter().all(|&k| k < f));
        for k in idx {
            seen[k] += 1;
        }
    }
    // Each frame is in a uniform 3-subset of 10 with probability 0.3.
    for (k, &c) in seen.iter().enumerate() {
        assert!(
            (c as f64 / trials as f64 - 0.3).abs() < 0.03,
            "frame {k}: {c}"
        );
    }
}
