//! Patchify / unpatchify against the index formulas of WAN_ARCH.md §2 and §7.

use fym_kernels::cpu::patchify::{patchify, unpatchify, PatchOrder, PatchSize, VideoDims};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn dims(batch: usize, channels: usize, frames: usize, height: usize, width: usize) -> VideoDims {
    VideoDims {
        batch,
        channels,
        frames,
        height,
        width,
    }
}

fn numel(d: VideoDims) -> usize {
    d.batch * d.channels * d.frames * d.height * d.width
}

/// tokens[b, s = (f·H' + h)·W' + w, feature] = x[b, c, f·pt+i, h·ph+j, w·pw+k] with feature
/// (c, i, j, k) channel-first or (i, j, k, c) channel-last.
fn reference_tokens(x: &[f32], d: VideoDims, p: PatchSize, order: PatchOrder) -> Vec<f32> {
    let (fq, hq, wq) = (d.frames / p.t, d.height / p.h, d.width / p.w);
    let feat = p.t * p.h * p.w * d.channels;
    let mut out = vec![f32::NAN; d.batch * fq * hq * wq * feat];
    for b in 0..d.batch {
        for c in 0..d.channels {
            for f in 0..fq {
                for h in 0..hq {
                    for w in 0..wq {
                        for i in 0..p.t {
                            for j in 0..p.h {
                                for k in 0..p.w {
                                    let s = (f * hq + h) * wq + w;
                                    let e = match order {
                                        PatchOrder::ChannelFirst => {
                                            ((c * p.t + i) * p.h + j) * p.w + k
                                        }
                                        PatchOrder::ChannelLast => {
                                            ((i * p.h + j) * p.w + k) * d.channels + c
                                        }
                                    };
                                    let (ff, hh, ww) = (f * p.t + i, h * p.h + j, w * p.w + k);
                                    let src = (((b * d.channels + c) * d.frames + ff) * d.height
                                        + hh)
                                        * d.width
                                        + ww;
                                    out[(b * fq * hq * wq + s) * feat + e] = x[src];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn patchify_matches_formula_and_unpatchify_inverts_it() {
    let mut rng = StdRng::seed_from_u64(50);
    let cases = [
        (dims(2, 3, 4, 6, 8), PatchSize { t: 1, h: 2, w: 2 }),
        (dims(1, 4, 4, 6, 8), PatchSize { t: 2, h: 3, w: 4 }),
        (dims(1, 1, 1, 1, 1), PatchSize { t: 1, h: 1, w: 1 }),
        (dims(3, 2, 3, 5, 7), PatchSize { t: 1, h: 1, w: 1 }),
        (dims(1, 5, 2, 4, 6), PatchSize { t: 2, h: 4, w: 3 }),
        // Threaded path (81920 elements).
        (dims(1, 16, 5, 32, 32), PatchSize { t: 1, h: 2, w: 2 }),
    ];
    for (d, p) in cases {
        let x: Vec<f32> = (0..numel(d)).map(|_| rng.gen_range(-1.0..1.0)).collect();
        for order in [PatchOrder::ChannelFirst, PatchOrder::ChannelLast] {
            let what = format!("{d:?} {p:?} {order:?}");
            let mut tokens = vec![f32::NAN; x.len()];
            patchify(&x, d, p, order, &mut tokens).unwrap();
            assert_eq!(tokens, reference_tokens(&x, d, p, order), "{what}");
            let mut back = vec![f32::NAN; x.len()];
            unpatchify(&tokens, d, p, order, &mut back).unwrap();
            assert_eq!(back, x, "{what}: unpatchify ∘ patchify");
        }
    }
}

#[test]
fn unpatchify_matches_wan_output_head() {
    // out[b, c, f·pt+i, h·ph+j, w·pw+k] = y[b, (f·H'+h)·W'+w, ((i·ph + j)·pw + k)·Cout + c]
    let (d, p) = (dims(2, 3, 2, 4, 6), PatchSize { t: 1, h: 2, w: 3 });
    let y: Vec<f32> = (0..numel(d)).map(|i| i as f32).collect();
    let mut out = vec![f32::NAN; y.len()];
    unpatchify(&y, d, p, PatchOrder::ChannelLast, &mut out).unwrap();
    let (fq, hq, wq) = (2, 2, 2);
    for b in 0..2 {
        for c in 0..3 {
            for ff in 0..d.frames {
                for hh in 0..d.height {
                    for ww in 0..d.width {
                        let (f, i, h, j, w, k) = (ff, 0, hh / 2, hh % 2, ww / 3, ww % 3);
                        let s = (f * hq + h) * wq + w;
                        let e = ((i * p.h + j) * p.w + k) * 3 + c;
                        let at = (((b * 3 + c) * d.frames + ff) * d.height + hh) * d.width + ww;
                        assert_eq!(out[at], y[(b * fq * hq * wq + s) * 18 + e]);
                    }
                }
            }
        }
    }
}

#[test]
fn patchify_rejects_bad_sizes() {
    let d = dims(1, 2, 3, 4, 4);
    let x = vec![0.0; numel(d)];
    let mut t = vec![0.0; numel(d)];
    let p = PatchSize { t: 2, h: 2, w: 2 };
    let err = patchify(&x, d, p, PatchOrder::ChannelFirst, &mut t)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("patchify:") && err.contains("not divisible"),
        "{err}"
    );
    let err = unpatchify(&t, d, p, PatchOrder::ChannelLast, &mut vec![0.0; numel(d)])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("unpatchify:") && err.contains("not divisible"),
        "{err}"
    );
    let zero = PatchSize { t: 1, h: 0, w: 2 };
    let err = patchify(&x, d, zero, PatchOrder::ChannelFirst, &mut t)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("patchify:"), "{err}");
    let p1 = PatchSize { t: 1, h: 2, w: 2 };
    let err = patchify(&x[1..], d, p1, PatchOrder::ChannelFirst, &mut t)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("patchify:") && err.contains("got 95"),
        "{err}"
    );
    let err = unpatchify(
        &t[1..],
        d,
        p1,
        PatchOrder::ChannelFirst,
        &mut vec![0.0; numel(d)],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("unpatchify:") && err.contains("got 95"),
        "{err}"
    );
}
