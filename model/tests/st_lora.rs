//! ST-LoRA on a small random model (4 heads, 3 latent frames of 2×3 tokens, batch 2): zero-init
//! identity, head restriction of outputs and gradients, independent spatial/temporal adapters,
//! PEFT file round trip, and a finite-difference check of the LoRA-factor gradients.

mod common;
use common::random_model;

use fym_autograd::{gradcheck, Tensor};
use fym_model::lora::{Adapter, AdapterKind, Adapters, Attn, HeadAssignment, LoraSite, LoraTarget};
use fym_model::lora_io::{read_lora, write_lora};
use fym_model::weights::load_safetensors_with_metadata;
use fym_model::{ForwardOptions, WanConfig, WanModel};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// 4 heads × 8, 2 layers: odd frame count and non-square frames come from the inputs.
fn config() -> WanConfig {
    WanConfig {
        num_attention_heads: 4,
        attention_head_dim: 8,
        text_dim: 16,
        freq_dim: 16,
        ffn_dim: 32,
        num_layers: 2,
        ..WanConfig::dev()
    }
}

struct Inputs {
    hidden: Tensor,
    timestep: Vec<f32>,
    text: Tensor,
}

/// Batch 2, 3 latent frames of 4×6 pixels (2×3 tokens after the 2×2 patch), 5 text tokens.
fn inputs(config: &WanConfig, seed: u64) -> Inputs {
    let mut rng = StdRng::seed_from_u64(seed);
    Inputs {
        hidden: Tensor::randn(&[2, config.in_channels, 3, 4, 6], &mut rng),
        timestep: vec![250.0, 800.0],
        text: Tensor::randn(&[2, 5, config.text_dim], &mut rng),
    }
}

fn forward(model: &WanModel, x: &Inputs) -> Tensor {
    model
        .forward(&x.hidden, &x.timestep, &x.text, &ForwardOptions::default())
        .unwrap()
}

fn heads_every_layer(config: &WanConfig, heads: &[usize]) -> HeadAssignment {
    (0..config.num_layers)
        .map(|l| (l, heads.to_vec()))
        .collect()
}

/// Fills every factor (A and B) with N(0, 0.3²) values in place.
fn randomize(adapter: &Adapter, rng: &mut StdRng) {
    for f in adapter.factors.values() {
        for t in [&f.a, &f.b] {
            for v in t.data_mut().iter_mut() {
                *v = 0.3 * fym_autograd::init::standard_normal(rng);
            }
        }
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn head_of(feature: usize, head_dim: usize) -> usize {
    feature / head_dim
}

#[test]
fn st_lora_targets_self_attention_projections() {
    let cfg = config();
    let mut rng = StdRng::seed_from_u64(1);
    let heads = heads_every_layer(&cfg, &[0, 2]);
    let qkv = Adapter::st_lora(
        AdapterKind::Spatial,
        &cfg,
        heads.clone(),
        4,
        4.0,
        false,
        &mut rng,
    )
    .unwrap();
    let with_out = Adapter::st_lora(
        AdapterKind::Temporal,
        &cfg,
        heads.clone(),
        4,
        4.0,
        true,
        &mut rng,
    )
    .unwrap();
    assert_eq!(qkv.factors.len(), 3 * cfg.num_layers);
    assert_eq!(with_out.factors.len(), 4 * cfg.num_layers);
    assert!(qkv
        .factors
        .keys()
        .all(|s| s.attn == Attn::SelfAttn && s.target != LoraTarget::ToOut));
    assert!(with_out.factors.keys().all(|s| s.attn == Attn::SelfAttn));
    for f in with_out.factors.values() {
        assert_eq!(f.a.shape(), [4, cfg.dim()]);
        assert_eq!(f.b.shape(), [cfg.dim(), 4]);
        assert!(f.b.data().iter().all(|&v| v == 0.0));
    }

    // Plain LoRA may sit on cross-attention too.
    let site = LoraSite {
        block: 1,
        attn: Attn::CrossAttn,
        target: LoraTarget::ToV,
    };
    let plain = Adapter::plain(&cfg, &[site], 2, 2.0, &mut rng).unwrap();
    assert!(plain.heads.is_none() && plain.factors.contains_key(&site));

    // Bad arguments are errors that name what is wrong.
    let bad_head: HeadAssignment = [(0, vec![4])].into();
    let e = Adapter::st_lora(
        AdapterKind::Spatial,
        &cfg,
        bad_head,
        4,
        4.0,
        false,
        &mut rng,
    )
    .unwrap_err();
    assert!(e.to_string().contains("head 4"), "{e}");
    let bad_layer: HeadAssignment = [(2, vec![0])].into();
    let e = Adapter::st_lora(
        AdapterKind::Temporal,
        &cfg,
        bad_layer,
        4,
        4.0,
        false,
        &mut rng,
    )
    .unwrap_err();
    assert!(e.to_string().contains("layer 2"), "{e}");
    assert!(Adapter::st_lora(
        AdapterKind::Plain,
        &cfg,
        heads.clone(),
        4,
        4.0,
        false,
        &mut rng
    )
    .is_err());
    assert!(Adapter::st_lora(AdapterKind::Spatial, &cfg, heads, 0, 4.0, false, &mut rng).is_err());
    let far = LoraSite { block: 5, ..site };
    let e = Adapter::plain(&cfg, &[far], 2, 2.0, &mut rng).unwrap_err();
    assert!(e.to_string().contains("blocks.5.attn2.to_v"), "{e}");
}

#[test]
fn fresh_adapter_pair_is_bit_identical_to_base() {
    let cfg = config();
    let mut model = random_model(cfg.clone(), 10);
    let x = inputs(&cfg, 11);
    let base = forward(&model, &x).to_vec();
    let mut rng = StdRng::seed_from_u64(12);
    let spatial = Adapter::st_lora(
        AdapterKind::Spatial,
        &cfg,
        heads_every_layer(&cfg, &[0, 2]),
        4,
        4.0,
        true,
        &mut rng,
    )
    .unwrap();
    let temporal = Adapter::st_lora(
        AdapterKind::Temporal,
        &cfg,
        heads_every_layer(&cfg, &[1, 3]),
        4,
        8.0,
        true,
        &mut rng,
    )
    .unwrap();
    model.adapters = Adapters {
        list: vec![spatial, temporal],
    };
    let out = forward(&model, &x);
    assert_eq!(out.shape(), [2, cfg.out_channels, 3, 4, 6]);
    assert!(
        base.iter().any(|&v| v.abs() > 1e-3),
        "the base output must not be trivially zero"
    );
    assert_eq!(
        out.to_vec(),
        base,
        "B = 0 must leave the model exactly as it was"
    );
}

/// `y = x·Wᵀ + b + scale·(x·(A⊙M_A)ᵀ)·(B⊙M_B)ᵀ` written out with loops.
fn naive_projection(
    x: &[f32],
    rows: usize,
    w: &[f32],
    b: &[f32],
    adapter: &Adapter,
    site: LoraSite,
) -> Vec<f32> {
    let f = &adapter.factors[&site];
    let (r, inp) = (f.a.dim(0), f.a.dim(1));
    let out = f.b.dim(0);
    let (a, bb) = (f.a.to_vec(), f.b.to_vec());
    let ma = f
        .mask_a
        .as_ref()
        .map(|m| m.to_vec())
        .unwrap_or_else(|| vec![1.0; inp]);
    let mb = f
        .mask_b
        .as_ref()
        .map(|m| m.to_vec())
        .unwrap_or_else(|| vec![1.0; out]);
    let mut y = vec![0.0f32; rows * out];
    for n in 0..rows {
        let xn = &x[n * inp..(n + 1) * inp];
        let low: Vec<f64> = (0..r)
            .map(|k| {
                (0..inp)
                    .map(|i| (a[k * inp + i] * ma[i]) as f64 * xn[i] as f64)
                    .sum()
            })
            .collect();
        for o in 0..out {
            let base: f64 = b[o] as f64
                + (0..inp)
                    .map(|i| w[o * inp + i] as f64 * xn[i] as f64)
                    .sum::<f64>();
            let delta: f64 = (0..r)
                .map(|k| low[k] * (bb[o * r + k] * mb[o]) as f64)
                .sum();
            y[n * out + o] = (base + adapter.scale() as f64 * delta) as f32;
        }
    }
    y
}

#[test]
fn head_restricted_adapter_touches_only_its_heads() {
    let cfg = config();
    let hd = cfg.attention_head_dim;
    let dim = cfg.dim();
    let mut model = random_model(cfg.clone(), 20);
    let mut rng = StdRng::seed_from_u64(21);
    let spatial = Adapter::st_lora(
        AdapterKind::Spatial,
        &cfg,
        heads_every_layer(&cfg, &[0, 2]),
        4,
        6.0,
        true,
        &mut rng,
    )
    .unwrap();
    randomize(&spatial, &mut rng);
    model.adapters = Adapters {
        list: vec![spatial],
    };
    let mine = |feature: usize| matches!(head_of(feature, hd), 0 | 2);

    // The projection itself: q/k/v output columns change only for heads 0 and 2.
    let rows = 2 * 18;
    let x = Tensor::randn(&[2, 18, dim], &mut rng);
    for target in [
        LoraTarget::ToQ,
        LoraTarget::ToK,
        LoraTarget::ToV,
        LoraTarget::ToOut,
    ] {
        let site = LoraSite {
            block: 1,
            attn: Attn::SelfAttn,
            target,
        };
        let prefix = format!("blocks.1.attn1.{}", target.as_str());
        let w = model.param(&format!("{prefix}.weight")).unwrap();
        let b = model.param(&format!("{prefix}.bias")).unwrap();
        let base = x.linear(w, Some(b)).unwrap();
        let y = model
            .adapters
            .apply(site, &x, base.clone())
            .unwrap()
            .to_vec();
        let want = naive_projection(
            &x.to_vec(),
            rows,
            &w.to_vec(),
            &b.to_vec(),
            &model.adapters.list[0],
            site,
        );
        let err = max_abs_diff(&y, &want);
        assert!(
            err < 1e-5,
            "{site}: adapted projection differs from the naive one by {err}"
        );
        if target == LoraTarget::ToOut {
            // to_out.0 reads the heads' outputs: features of heads 1 and 3 must not matter.
            let mut other = x.to_vec();
            for (i, v) in other.iter_mut().enumerate() {
                if !mine(i % dim) {
                    *v += 1.0;
                }
            }
            let x2 = Tensor::from_vec(other, x.shape()).unwrap();
            let zero = Tensor::zeros(base.shape());
            let d1 = model
                .adapters
                .apply(site, &x, zero.clone())
                .unwrap()
                .to_vec();
            let d2 = model.adapters.apply(site, &x2, zero).unwrap().to_vec();
            assert_eq!(
                d1, d2,
                "{site}: the update depends on features of heads outside {{0, 2}}"
            );
            assert!(d1.iter().any(|v| v.abs() > 1e-3));
        } else {
            let base = base.to_vec();
            for (i, (yv, bv)) in y.iter().zip(&base).enumerate() {
                if !mine(i % dim) {
                    assert_eq!(
                        yv,
                        bv,
                        "{site}: column {} (head {}) changed",
                        i % dim,
                        head_of(i % dim, hd)
                    );
                }
            }
            let changed = y
                .iter()
                .zip(&base)
                .enumerate()
                .filter(|(i, (a, b))| mine(i % dim) && (*a - *b).abs() > 1e-4);
            assert!(
                changed.count() > rows * dim / 4,
                "{site}: heads 0 and 2 barely changed"
            );
        }
    }

    // The model: a different output, and zero gradient outside heads 0 and 2.
    let xin = inputs(&cfg, 22);
    let out = forward(&model, &xin);
    let cot: Vec<f32> = (0..out.numel())
        .map(|_| fym_autograd::init::standard_normal(&mut rng))
        .collect();
    let grads = out.backward_with(&cot).unwrap();
    for (site, f) in &model.adapters.list[0].factors {
        let (ga, gb) = (grads.get(&f.a).unwrap(), grads.get(&f.b).unwrap());
        let r = f.b.dim(1);
        if site.target == LoraTarget::ToOut {
            for (i, g) in ga.iter().enumerate() {
                if !mine(i % dim) {
                    assert_eq!(
                        *g,
                        0.0,
                        "{site}: lora_A column {} has gradient {g}",
                        i % dim
                    );
                }
            }
        } else {
            for (i, g) in gb.iter().enumerate() {
                if !mine(i / r) {
                    assert_eq!(*g, 0.0, "{site}: lora_B row {} has gradient {g}", i / r);
                }
            }
            let inside = gb
                .iter()
                .enumerate()
                .filter(|(i, g)| mine(i / r) && g.abs() > 0.0)
                .count();
            assert!(
                inside > 0,
                "{site}: no gradient for the rows of heads 0 and 2"
            );
        }
        assert!(
            ga.iter().any(|g| g.abs() > 0.0) && gb.iter().any(|g| g.abs() > 0.0),
            "{site}: no gradient"
        );
    }
    model.adapters = Adapters::default();
    let base = forward(&model, &xin).to_vec();
    assert!(
        max_abs_diff(&out.to_vec(), &base) > 1e-3,
        "the adapter did not change the output"
    );
}

#[test]
fn spatial_and_temporal_adapters_are_independent() {
    let cfg = config();
    let mut model = random_model(cfg.clone(), 30);
    let x = inputs(&cfg, 31);
    let mut rng = StdRng::seed_from_u64(32);
    let mut spatial = Adapter::st_lora(
        AdapterKind::Spatial,
        &cfg,
        heads_every_layer(&cfg, &[0, 2]),
        4,
        4.0,
        false,
        &mut rng,
    )
    .unwrap();
    let mut temporal = Adapter::st_lora(
        AdapterKind::Temporal,
        &cfg,
        heads_every_layer(&cfg, &[1, 3]),
        4,
        4.0,
        true,
        &mut rng,
    )
    .unwrap();
    randomize(&spatial, &mut rng);
    randomize(&temporal, &mut rng);
    let base = forward(&model, &x).to_vec();
    model.adapters = Adapters {
        list: vec![temporal.clone()],
    };
    let temporal_only = forward(&model, &x).to_vec();
    model.adapters = Adapters {
        list: vec![spatial.clone()],
    };
    let spatial_only = forward(&model, &x).to_vec();
    for (name, v) in [("temporal", &temporal_only), ("spatial", &spatial_only)] {
        assert!(
            max_abs_diff(v, &base) > 1e-3,
            "the {name} adapter has no effect"
        );
    }
    // Disabled, attached adapters leave the base model exactly; enabled again, they are back.
    model.set_adapters_enabled(false);
    assert_eq!(
        forward(&model, &x).to_vec(),
        base,
        "disabled adapters changed the output"
    );
    model.set_adapters_enabled(true);
    assert_eq!(forward(&model, &x).to_vec(), spatial_only);

    // Stage 3: spatial loaded and frozen, temporal trainable.
    spatial.set_trainable(false).unwrap();
    model.adapters = Adapters {
        list: vec![spatial.clone(), temporal.clone()],
    };
    let names: Vec<String> = model
        .adapters
        .params()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(names.len(), 2 * temporal.factors.len(), "{names:?}");
    let both = forward(&model, &x);
    let grads = both.backward_with(&vec![1.0; both.numel()]).unwrap();
    for f in model.adapters.list[0].factors.values() {
        assert!(
            grads.get(&f.a).is_none() && grads.get(&f.b).is_none(),
            "a frozen factor got a gradient"
        );
    }
    for f in model.adapters.list[1].factors.values() {
        assert!(
            grads.get(&f.a).is_some() && grads.get(&f.b).is_some(),
            "a trainable factor got no gradient"
        );
    }
    let both = both.to_vec();
    assert!(
        max_abs_diff(&both, &temporal_only) > 1e-3 && max_abs_diff(&both, &spatial_only) > 1e-3
    );

    // Disabled = absent, whichever adapter it is.
    model.adapters.list[0].enabled = false;
    assert_eq!(forward(&model, &x).to_vec(), temporal_only);
    model.adapters.list[0].enabled = true;
    model.adapters.list[1].enabled = false;
    assert_eq!(forward(&model, &x).to_vec(), spatial_only);
    model.adapters.list[0].enabled = false;
    assert_eq!(forward(&model, &x).to_vec(), base);

    // The other way round: temporal frozen, spatial trainable again.
    temporal.set_trainable(false).unwrap();
    spatial.set_trainable(true).unwrap();
    model.adapters = Adapters {
        list: vec![spatial, temporal],
    };
    let out = forward(&model, &x);
    assert_eq!(out.to_vec(), both, "freezing must not change values");
    let grads = out.backward_with(&vec![1.0; out.numel()]).unwrap();
    assert!(model.adapters.list[0]
        .factors
        .values()
        .all(|f| grads.get(&f.b).is_some()));
    assert!(model.adapters.list[1]
        .factors
        .values()
        .all(|f| grads.get(&f.b).is_none()));
}

#[test]
fn export_and_import_reproduce_the_output() {
    let cfg = config();
    let hd = cfg.attention_head_dim;
    let mut model = random_model(cfg.clone(), 40);
    let x = inputs(&cfg, 41);
    let mut rng = StdRng::seed_from_u64(42);
    let heads: HeadAssignment = [(0, vec![1, 3]), (1, vec![2])].into();
    let temporal = Adapter::st_lora(
        AdapterKind::Temporal,
        &cfg,
        heads.clone(),
        4,
        8.0,
        true,
        &mut rng,
    )
    .unwrap();
    randomize(&temporal, &mut rng);
    model.adapters = Adapters {
        list: vec![temporal.clone()],
    };
    let before = forward(&model, &x).to_vec();

    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("st_lora_export.safetensors");
    write_lora(&path, &temporal.to_io(Some("temporal"), hd).unwrap()).unwrap();
    let io = read_lora(&path).unwrap();
    assert_eq!(
        (io.rank, io.alpha, io.kind),
        (4, 8.0, AdapterKind::Temporal)
    );
    assert_eq!(io.stage.as_deref(), Some("temporal"));
    assert_eq!(io.heads.as_ref(), Some(&heads));
    assert_eq!(io.head_dim, Some(hd));
    // Exported factors are ordinary PEFT factors, zero outside the adapter's heads.
    for (site, f) in &io.factors {
        let allowed = &heads[&site.block];
        if site.target == LoraTarget::ToOut {
            let cols = f.a.shape[1];
            assert!(f
                .a
                .data
                .iter()
                .enumerate()
                .all(|(i, v)| allowed.contains(&head_of(i % cols, hd)) || *v == 0.0));
        } else {
            let r = f.b.shape[1];
            assert!(f
                .b
                .data
                .iter()
                .enumerate()
                .all(|(i, v)| allowed.contains(&head_of(i / r, hd)) || *v == 0.0));
        }
    }
    let (_, meta) = load_safetensors_with_metadata(&path).unwrap();
    assert_eq!(meta["fym.rank"], "4");
    assert_eq!(meta["fym.alpha"], "8");
    assert_eq!(meta["fym.adapter"], "temporal");
    assert_eq!(meta["fym.stage"], "temporal");
    assert_eq!(meta["fym.head_dim"], hd.to_string());
    let stored: serde_json::Value = serde_json::from_str(&meta["fym.heads"]).unwrap();
    assert_eq!(stored, serde_json::json!({"0": [1, 3], "1": [2]}));

    let imported = Adapter::from_io(&io, hd, false).unwrap();
    let mut fresh = random_model(cfg.clone(), 40);
    fresh.adapters = Adapters {
        list: vec![imported],
    };
    let after = forward(&fresh, &x).to_vec();
    let err = max_abs_diff(&after, &before);
    assert!(
        err <= 1e-6,
        "re-imported adapter changes the output by {err}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn lora_factor_gradients_match_finite_differences() {
    // Tiny: 1 layer, 2 heads × 6 (RoPE parts t/h/w = 2/2/2), 2 frames of 1×2 tokens.
    let cfg = WanConfig {
        num_attention_heads: 2,
        attention_head_dim: 6,
        text_dim: 8,
        freq_dim: 8,
        ffn_dim: 16,
        num_layers: 1,
        ..WanConfig::dev()
    };
    let model = std::cell::RefCell::new(random_model(cfg.clone(), 50));
    let mut rng = StdRng::seed_from_u64(51);
    let hidden = Tensor::randn(&[1, cfg.in_channels, 2, 2, 4], &mut rng);
    let text = Tensor::randn(&[1, 3, cfg.text_dim], &mut rng);
    let temporal = Adapter::st_lora(
        AdapterKind::Temporal,
        &cfg,
        [(0, vec![1])].into(),
        2,
        3.0,
        true,
        &mut rng,
    )
    .unwrap();
    // Cross-attention to_v/to_out.0: with 3 text tokens the gradients of to_q/to_k are so small
    // that f32 finite differences only measure rounding noise.
    let cross = [LoraTarget::ToV, LoraTarget::ToOut].map(|target| LoraSite {
        block: 0,
        attn: Attn::CrossAttn,
        target,
    });
    let plain = Adapter::plain(&cfg, &cross, 2, 2.0, &mut rng).unwrap();
    randomize(&temporal, &mut rng);
    randomize(&plain, &mut rng);
    let templates = [temporal, plain];
    let mut inputs = Vec::new();
    for t in &templates {
        for f in t.factors.values() {
            inputs.push(f.a.clone());
            inputs.push(f.b.clone());
        }
    }
    let f = |ps: &[Tensor]| {
        let mut it = ps.iter();
        let mut list = Vec::new();
        for t in &templates {
            let mut a = t.clone();
            for fac in a.factors.values_mut() {
                fac.a = it.next().unwrap().clone();
                fac.b = it.next().unwrap().clone();
            }
            list.push(a);
        }
        model.borrow_mut().adapters = Adapters { list };
        model
            .borrow()
            .forward(&hidden, &[600.0], &text, &ForwardOptions::default())
            .map_err(|e| match e {
                fym_model::Error::Tensor(t) => t,
                other => panic!("{other}"),
            })
    };
    let report = gradcheck(f, &inputs, 1e-2).unwrap();
    eprintln!("LoRA gradcheck: {report:?}");
    assert_eq!(report.checked, 6 * 2 * (2 * 12));
    assert!(report.max_rel_err < 5e-3, "{report:?}");
}
