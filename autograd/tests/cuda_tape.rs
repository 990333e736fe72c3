//! The tape on a GPU against the tape on the CPU: every op's forward values and the gradients of
//! its inputs (through `loss = Σ out ⊙ proj` with a fixed random `proj`), and an AdamW step on GPU
//! parameters. Skips, saying why, where no GPU can be opened. Every case is checked and printed
//! before the test fails, so one run on a GPU machine reports all failing ops.

use fym_autograd::{
    AdamW, AdamWConfig, Device, MaskMode, ParamSet, PatchOrder, PatchSize, RopeTable, Tensor,
    VideoDims,
};
use fym_kernels::cpu::rope::{grid_positions, rope_table};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// f32 on both sides; only the order of the sums differs.
const TOLERANCE: f64 = 1e-4;

fn gpu() -> Option<Device> {
    match Device::cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: no usable GPU: {e}");
            None
        }
    }
}

fn random(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

/// max |got − want| / max(max |want|, 1e-3).
fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let scale = want.iter().fold(1e-3f64, |m, w| m.max(w.abs() as f64));
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            if g.is_finite() {
                (*g as f64 - *w as f64).abs() / scale
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}

type Inputs = Vec<(Vec<usize>, Vec<f32>)>;
type Forward<'a> = &'a dyn Fn(&[Tensor]) -> fym_autograd::Result<Tensor>;

/// Output and input gradients of `f` with its inputs as parameters on `device`.
fn run(
    device: Device,
    inputs: &Inputs,
    f: Forward,
) -> fym_autograd::Result<(Vec<f32>, Vec<Vec<f32>>)> {
    let params = inputs
        .iter()
        .map(|(shape, values)| Tensor::param(values.clone(), shape)?.to_device(device))
        .collect::<fym_autograd::Result<Vec<_>>>()?;
    let out = f(&params)?;
    assert_eq!(
        out.device(),
        device,
        "the result lives where its inputs are"
    );
    let mut rng = StdRng::seed_from_u64(99);
    let proj = Tensor::from_vec(random(&mut rng, out.numel(), -1.0, 1.0), out.shape())?
        .to_device(device)?;
    let grads = out.mul(&proj)?.sum_all()?.backward()?;
    let input_grads = params
        .iter()
        .map(|p| grads.get(p).map(|g| g.to_vec()).unwrap_or_default())
        .collect();
    Ok((out.to_host()?, input_grads))
}

struct Checker {
    device: Device,
    failures: Vec<String>,
}

impl Checker {
    fn case(&mut self, name: &str, inputs: Inputs, f: Forward) {
        let (want, got) = match (run(Device::Cpu, &inputs, f), run(self.device, &inputs, f)) {
            (Ok(w), Ok(g)) => (w, g),
            (w, g) => {
                let msg = format!("{name}: cpu {:?} / gpu {:?}", w.err(), g.err());
                println!("FAIL {msg}");
                self.failures.push(msg);
                return;
            }
        };
        let mut errs = vec![("out".to_string(), rel_err(&got.0, &want.0))];
        for (i, (g, w)) in got.1.iter().zip(&want.1).enumerate() {
            errs.push((format!("d{i}"), rel_err(g, w)));
        }
        let worst = errs.iter().map(|e| e.1).fold(0.0, f64::max);
        let line = errs
            .iter()
            .map(|(n, e)| format!("{n} {e:.1e}"))
            .collect::<Vec<_>>()
            .join(", ");
        if worst <= TOLERANCE {
            println!("ok   {name}: {line}");
        } else {
            println!("FAIL {name}: {line}");
            self.failures.push(format!("{name}: {line}"));
        }
    }
}

fn input(rng: &mut StdRng, shape: &[usize]) -> (Vec<usize>, Vec<f32>) {
    let n = shape.iter().product();
    (shape.to_vec(), random(rng, n, -1.0, 1.0))
}

fn positive(rng: &mut StdRng, shape: &[usize]) -> (Vec<usize>, Vec<f32>) {
    let n = shape.iter().product();
    (shape.to_vec(), random(rng, n, 0.5, 2.0))
}

#[test]
fn every_op_matches_the_cpu_tape_forward_and_backward() {
    let Some(device) = gpu() else { return };
    let mut c = Checker {
        device,
        failures: Vec::new(),
    };
    let mut rng = StdRng::seed_from_u64(7);
    let r = &mut rng;

    c.case(
        "linear + bias",
        vec![input(r, &[2, 5, 7]), input(r, &[6, 7]), input(r, &[6])],
        &|p| p[0].linear(&p[1], Some(&p[2])),
    );
    c.case(
        "linear, 4096 rows (weight gradient in slices)",
        vec![
            input(r, &[4, 1024, 16]),
            input(r, &[24, 16]),
            input(r, &[24]),
        ],
        &|p| p[0].linear(&p[1], Some(&p[2])),
    );
    c.case(
        "linear",
        vec![input(r, &[9, 16]), input(r, &[3, 16])],
        &|p| p[0].linear(&p[1], None),
    );
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = if ta { [3, 5, 4] } else { [3, 4, 5] };
        let b = if tb { [6, 5] } else { [5, 6] };
        c.case(
            &format!("matmul shared B ta={ta} tb={tb}"),
            vec![input(r, &a), input(r, &b)],
            &move |p| p[0].matmul_t(&p[1], ta, tb),
        );
        let b3 = if tb { [3, 6, 5] } else { [3, 5, 6] };
        c.case(
            &format!("matmul batched ta={ta} tb={tb}"),
            vec![input(r, &a), input(r, &b3)],
            &move |p| p[0].matmul_t(&p[1], ta, tb),
        );
    }
    c.case(
        "add broadcast",
        vec![input(r, &[2, 3, 4]), input(r, &[3, 1])],
        &|p| p[0].add(&p[1]),
    );
    c.case(
        "add bias row",
        vec![input(r, &[2, 3, 4]), input(r, &[4])],
        &|p| p[0].add(&p[1]),
    );
    c.case(
        "sub broadcast a",
        vec![input(r, &[1, 3, 1]), input(r, &[2, 3, 4])],
        &|p| p[0].sub(&p[1]),
    );
    c.case(
        "mul broadcast",
        vec![input(r, &[2, 1, 4]), input(r, &[2, 3, 1])],
        &|p| p[0].mul(&p[1]),
    );
    c.case(
        "div broadcast",
        vec![input(r, &[2, 3, 4]), positive(r, &[3, 4])],
        &|p| p[0].div(&p[1]),
    );
    c.case(
        "modulate",
        vec![
            input(r, &[2, 5, 8]),
            input(r, &[2, 1, 8]),
            input(r, &[2, 1, 8]),
        ],
        &|p| p[0].modulate(&p[1], &p[2]),
    );
    c.case("affine", vec![input(r, &[3, 7])], &|p| {
        p[0].affine(-1.5, 0.25)
    });
    c.case("abs", vec![input(r, &[3, 7])], &|p| p[0].abs());
    c.case("sqrt", vec![positive(r, &[3, 7])], &|p| p[0].sqrt());
    c.case("square", vec![input(r, &[3, 7])], &|p| p[0].square());
    c.case("exp", vec![input(r, &[3, 7])], &|p| p[0].exp());
    c.case("log", vec![positive(r, &[3, 7])], &|p| p[0].log());
    c.case("gelu", vec![input(r, &[4, 33])], &|p| p[0].gelu());
    c.case("silu", vec![input(r, &[4, 33])], &|p| p[0].silu());
    for axis in 0..3 {
        c.case(
            &format!("sum_axis {axis}"),
            vec![input(r, &[3, 4, 5])],
            &move |p| p[0].sum_axis(axis),
        );
    }
    c.case("mean_axis", vec![input(r, &[3, 4, 5])], &|p| {
        p[0].mean_axis(1)
    });
    c.case("sum_all", vec![input(r, &[3, 4, 5])], &|p| p[0].sum_all());
    c.case("mean_all", vec![input(r, &[3, 4, 5])], &|p| p[0].mean_all());
    c.case("broadcast_to", vec![input(r, &[3, 1])], &|p| {
        p[0].broadcast_to(&[2, 3, 4])
    });
    c.case(
        "mse_loss",
        vec![input(r, &[2, 3, 4]), input(r, &[2, 3, 4])],
        &|p| p[0].mse_loss(&p[1]),
    );
    c.case("softmax", vec![input(r, &[5, 19])], &|p| p[0].softmax());
    c.case(
        "layer_norm affine",
        vec![input(r, &[2, 5, 24]), input(r, &[24]), input(r, &[24])],
        &|p| p[0].layer_norm(Some(&p[1]), Some(&p[2]), 1e-6),
    );
    c.case("layer_norm", vec![input(r, &[2, 5, 24])], &|p| {
        p[0].layer_norm(None, None, 1e-6)
    });
    c.case(
        "rms_norm",
        vec![input(r, &[2, 5, 24]), input(r, &[24])],
        &|p| p[0].rms_norm(Some(&p[1]), 1e-6),
    );
    // A 2×2×3 token grid, 2 heads of dimension 16, fractional temporal positions.
    let positions = grid_positions(2, 2, 3, Some(&[0.0, 1.5]));
    let table: Arc<RopeTable> = Arc::new(rope_table(&positions, 16, 10000.0).unwrap());
    c.case("rope", vec![input(r, &[2, 12, 32])], &move |p| {
        p[0].rope(&table, 2)
    });
    for mask in [MaskMode::Full, MaskMode::Spatial, MaskMode::Temporal] {
        // 3 frames of 4 tokens, 2 heads of dimension 16.
        c.case(
            &format!("attention {mask:?}"),
            vec![
                input(r, &[2, 12, 32]),
                input(r, &[2, 12, 32]),
                input(r, &[2, 12, 32]),
            ],
            &move |p| p[0].attention(&p[1], &p[2], 2, mask, 4),
        );
    }
    c.case(
        "cross attention",
        vec![
            input(r, &[2, 12, 32]),
            input(r, &[2, 5, 32]),
            input(r, &[2, 5, 32]),
        ],
        &|p| p[0].attention(&p[1], &p[2], 2, MaskMode::Full, 12),
    );
    let patch = PatchSize { t: 2, h: 2, w: 2 };
    for order in [PatchOrder::ChannelFirst, PatchOrder::ChannelLast] {
        c.case(
            &format!("patchify {order:?}"),
            vec![input(r, &[2, 3, 4, 4, 6])],
            &move |p| p[0].patchify(patch, order),
        );
        let dims = VideoDims {
            batch: 2,
            channels: 3,
            frames: 4,
            height: 4,
            width: 6,
        };
        c.case(
            &format!("unpatchify {order:?}"),
            vec![input(r, &[2, 12, 24])],
            &move |p| p[0].unpatchify(dims, patch, order),
        );
    }
    c.case("reshape", vec![input(r, &[2, 3, 4])], &|p| {
        p[0].reshape(&[6, 4])
    });
    c.case("permute", vec![input(r, &[2, 3, 4, 5])], &|p| {
        p[0].permute(&[2, 0, 3, 1])
    });
    c.case("slice", vec![input(r, &[3, 8, 5])], &|p| {
        p[0].slice(1, 2, 4)
    });
    c.case(
        "concat",
        vec![input(r, &[2, 3, 4]), input(r, &[2, 5, 4])],
        &|p| Tensor::concat(&[p[0].clone(), p[1].clone()], 1),
    );
    c.case("index_select", vec![input(r, &[2, 6, 3])], &|p| {
        p[0].index_select(1, &[5, 0, 5, 2])
    });
    c.case("embedding", vec![input(r, &[7, 12])], &|p| {
        p[0].embedding(&[3, 0, 6, 3, 1])
    });
    c.case(
        "chain: a small block",
        vec![
            input(r, &[2, 6, 16]),
            input(r, &[48, 16]),
            input(r, &[48]),
            input(r, &[16]),
        ],
        &|p| {
            let qkv = p[0].linear(&p[1], Some(&p[2]))?;
            let q = qkv.slice(2, 0, 16)?.rms_norm(Some(&p[3]), 1e-6)?;
            let k = qkv.slice(2, 16, 16)?;
            let v = qkv.slice(2, 32, 16)?.gelu()?;
            let o = q.attention(&k, &v, 2, MaskMode::Full, 3)?;
            o.add(&p[0])?.layer_norm(None, None, 1e-6)?.silu()
        },
    );
    assert!(
        c.failures.is_empty(),
        "{} ops differ from the CPU: {:#?}",
        c.failures.len(),
        c.failures
    );
}

#[test]
fn adamw_updates_gpu_parameters_like_cpu_ones() {
    let Some(device) = gpu() else { return };
    let mut rng = StdRng::seed_from_u64(3);
    let (w0, x0) = (
        random(&mut rng, 24, -1.0, 1.0),
        random(&mut rng, 12, -1.0, 1.0),
    );
    let step = |device: Device| -> Vec<f32> {
        let w = Tensor::param(w0.clone(), &[6, 4])
            .unwrap()
            .to_device(device)
            .unwrap();
        let x = Tensor::from_vec(x0.clone(), &[3, 4])
            .unwrap()
            .to_device(device)
            .unwrap();
        let mut params = ParamSet::new();
        params.push("w", w.clone());
        let mut opt = AdamW::new(AdamWConfig::default());
        for _ in 0..3 {
            let loss = x
                .linear(&w, None)
                .unwrap()
                .square()
                .unwrap()
                .mean_all()
                .unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&params, &grads);
        }
        w.to_host().unwrap()
    };
    let (want, got) = (step(Device::Cpu), step(device));
    let err = rel_err(&got, &want);
    println!("AdamW, 3 steps: relative error {err:.1e}");
    assert!(err <= TOLERANCE, "got {got:?}, want {want:?}");
    assert_ne!(got, w0, "the GPU parameter was updated in place");
}
