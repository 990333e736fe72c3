//! Every op of the tape checked against central finite differences of its forward.

use fym_autograd::{
    gradcheck, MaskMode, PatchOrder, PatchSize, Result, RopeTable, Tensor, VideoDims,
};
use fym_kernels::cpu::rope::{grid_positions, rope_table};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::Arc;

const EPS: f32 = 1e-2;
const TOL: f32 = 2e-2;

fn rand_t(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, &mut StdRng::seed_from_u64(seed))
}

fn positive_t(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.gen_range(0.5..2.0)).collect(), shape).unwrap()
}

fn check(name: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: Vec<Tensor>) {
    let report = gradcheck(f, &inputs, EPS).unwrap();
    assert!(report.checked > 0, "{name}: nothing checked");
    assert!(
        report.max_rel_err < TOL,
        "{name}: gradient mismatch {report:?}"
    );
}

#[test]
fn linear_with_and_without_bias() {
    let (x, w, b) = (rand_t(&[2, 3, 5], 1), rand_t(&[4, 5], 2), rand_t(&[4], 3));
    check(
        "linear",
        |t| t[0].linear(&t[1], Some(&t[2])),
        vec![x.clone(), w.clone(), b],
    );
    check("linear no bias", |t| t[0].linear(&t[1], None), vec![x, w]);
}

#[test]
fn matmul_all_transposes_batched_and_shared() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = rand_t(if ta { &[2, 4, 3] } else { &[2, 3, 4] }, 4);
        let b = rand_t(if tb { &[2, 5, 4] } else { &[2, 4, 5] }, 5);
        check(
            "matmul batched",
            |t| t[0].matmul_t(&t[1], ta, tb),
            vec![a.clone(), b],
        );
        let b2 = rand_t(if tb { &[5, 4] } else { &[4, 5] }, 6);
        check(
            "matmul shared b",
            |t| t[0].matmul_t(&t[1], ta, tb),
            vec![a, b2],
        );
    }
}

#[test]
fn broadcasting_binary_ops() {
    let a = rand_t(&[2, 3, 4], 7);
    let b = positive_t(&[2, 1, 4], 8);
    let c = positive_t(&[4], 9);
    check("add", |t| t[0].add(&t[1]), vec![a.clone(), b.clone()]);
    check("sub", |t| t[0].sub(&t[1]), vec![a.clone(), c.clone()]);
    check("mul", |t| t[0].mul(&t[1]), vec![a.clone(), b.clone()]);
    check("div", |t| t[0].div(&t[1]), vec![a.clone(), b]);
    check("div row", |t| t[1].div(&t[0]), vec![c, a]);
}

#[test]
fn pointwise_functions() {
    let x = rand_t(&[3, 7], 10);
    let p = positive_t(&[3, 7], 11);
    check("affine", |t| t[0].affine(-1.5, 0.3), vec![x.clone()]);
    check("gelu", |t| t[0].gelu(), vec![x.clone()]);
    check("silu", |t| t[0].silu(), vec![x.clone()]);
    check("square", |t| t[0].square(), vec![x.clone()]);
    check("exp", |t| t[0].exp(), vec![x]);
    check("abs", |t| t[0].abs(), vec![p.clone()]);
    check("sqrt", |t| t[0].sqrt(), vec![p.clone()]);
    check("log", |t| t[0].log(), vec![p]);
}

#[test]
fn modulate_matches_its_unfused_form() {
    let (x, scale, shift) = (
        rand_t(&[2, 5, 6], 31),
        rand_t(&[2, 1, 6], 32),
        rand_t(&[2, 1, 6], 33),
    );
    check(
        "modulate",
        |t| t[0].modulate(&t[1], &t[2]),
        vec![x.clone(), scale.clone(), shift.clone()],
    );
    let fused = x.modulate(&scale, &shift).unwrap().to_vec();
    let unfused = x
        .mul(&scale.affine(1.0, 1.0).unwrap())
        .unwrap()
        .add(&shift)
        .unwrap()
        .to_vec();
    for (a, b) in fused.iter().zip(&unfused) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
    }
    assert!(x.modulate(&rand_t(&[2, 6], 34), &shift).is_err());
}

#[test]
fn reductions_and_losses() {
    let x = rand_t(&[2, 3, 4], 12);
    let y = rand_t(&[2, 3, 4], 13);
    for axis in 0..3 {
        check("sum_axis", |t| t[0].sum_axis(axis), vec![x.clone()]);
    }
    check("mean_axis", |t| t[0].mean_axis(1), vec![x.clone()]);
    check("sum_all", |t| t[0].sum_all(), vec![x.clone()]);
    check("mean_all", |t| t[0].mean_all(), vec![x.clone()]);
    check(
        "broadcast_to",
        |t| t[0].broadcast_to(&[2, 3, 4]),
        vec![rand_t(&[3, 1], 14)],
    );
    check("mse_loss", |t| t[0].mse_loss(&t[1]), vec![x, y]);
}

#[test]
fn norms_and_softmax() {
    let x = rand_t(&[3, 2, 6], 15);
    let (w, b) = (rand_t(&[6], 16), rand_t(&[6], 17));
    check(
        "layer_norm",
        |t| t[0].layer_norm(None, None, 1e-6),
        vec![x.clone()],
    );
    check(
        "layer_norm affine",
        |t| t[0].layer_norm(Some(&t[1]), Some(&t[2]), 1e-6),
        vec![x.clone(), w.clone(), b],
    );
    check("rms_norm", |t| t[0].rms_norm(None, 1e-6), vec![x.clone()]);
    check(
        "rms_norm affine",
        |t| t[0].rms_norm(Some(&t[1]), 1e-6),
        vec![x.clone(), w],
    );
    check("softmax", |t| t[0].softmax(), vec![x]);
}

#[test]
fn rope_with_fractional_positions() {
    let positions = grid_positions(3, 2, 2, Some(&[0.0, 1.7, 3.4]));
    let table: Arc<RopeTable> = Arc::new(rope_table(&positions, 16, 10000.0).unwrap());
    let x = rand_t(&[2, 12, 2 * 16], 18);
    check("rope", |t| t[0].rope(&table, 2), vec![x]);
}

#[test]
fn attention_every_mask_and_cross() {
    // 3 frames × 4 tokens, 2 heads × 8.
    let (q, k, v) = (
        rand_t(&[2, 12, 16], 19),
        rand_t(&[2, 12, 16], 20),
        rand_t(&[2, 12, 16], 21),
    );
    for mask in [MaskMode::Full, MaskMode::Spatial, MaskMode::Temporal] {
        check(
            "attention",
            |t| t[0].attention(&t[1], &t[2], 2, mask, 4),
            vec![q.clone(), k.clone(), v.clone()],
        );
    }
    let (kc, vc) = (rand_t(&[2, 5, 16], 22), rand_t(&[2, 5, 16], 23));
    check(
        "cross attention",
        |t| t[0].attention(&t[1], &t[2], 2, MaskMode::Full, 1),
        vec![q, kc, vc],
    );
}

#[test]
fn layout_ops() {
    let x = rand_t(&[2, 3, 4], 24);
    check("reshape", |t| t[0].reshape(&[6, 4]), vec![x.clone()]);
    check("permute", |t| t[0].permute(&[2, 0, 1]), vec![x.clone()]);
    check("slice", |t| t[0].slice(1, 1, 2), vec![x.clone()]);
    check(
        "concat",
        |t| Tensor::concat(&[t[0].clone(), t[1].clone()], 1),
        vec![x.clone(), rand_t(&[2, 2, 4], 25)],
    );
    check(
        "index_select",
        |t| t[0].index_select(2, &[3, 0, 3]),
        vec![x],
    );
    check(
        "embedding",
        |t| t[0].embedding(&[2, 0, 2, 4]),
        vec![rand_t(&[5, 3], 26)],
    );
}

#[test]
fn patchify_both_orders() {
    let dims = VideoDims {
        batch: 2,
        channels: 3,
        frames: 2,
        height: 4,
        width: 6,
    };
    let patch = PatchSize { t: 1, h: 2, w: 3 };
    let video = rand_t(&[2, 3, 2, 4, 6], 27);
    for order in [PatchOrder::ChannelFirst, PatchOrder::ChannelLast] {
        check(
            "patchify",
            |t| t[0].patchify(patch, order),
            vec![video.clone()],
        );
        let tokens = rand_t(&[2, 2 * 2 * 2, 18], 28);
        check(
            "unpatchify",
            |t| t[0].unpatchify(dims, patch, order),
            vec![tokens],
        );
    }
}

#[test]
fn composite_graph_with_shared_inputs() {
    // x is used twice: gradients from both paths must add up.
    let x = rand_t(&[4, 5], 29);
    let w = rand_t(&[5, 5], 30);
    check(
        "shared",
        |t| t[0].linear(&t[1], None)?.gelu()?.mul(&t[0])?.add(&t[0]),
        vec![x, w],
    );
}
