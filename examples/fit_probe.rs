//! How well tuned adapters fit their reference: the flow-matching loss of the whole reference clip
//! (every frame, positions as in generation) at fixed noise levels, for the base model and with
//! the spatial, the temporal and both adapters of a `fym transfer` output folder; averaged over
//! 16 noise draws per level. Shows at which noise levels the tuning did or did not learn the clip.
//!
//! usage: cargo run --release --example fit_probe -- REFERENCE CAPTION RUN_DIR
use anyhow::Context;
use fym::pipeline::{lora::load_adapter, Model};
use fym_autograd::Tensor;
use fym_model::flow::{add_noise, fill_standard_normal, sigma_to_timestep};
use fym_model::ForwardOptions;
use rand::SeedableRng;
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, reference, caption, run] = &args[..] else {
        anyhow::bail!("usage: fit_probe REFERENCE CAPTION RUN_DIR");
    };
    let mut model = Model::load("builtin")?;
    let video = fym::video::read_video(reference).context("reading the reference")?;
    let x0 = model.video_to_tensor(&video)?.to_vec();
    let shape = [1, 3, model.clip.frames, model.clip.height, model.clip.width];
    let run = Path::new(run);
    let spatial = load_adapter(&run.join("spatial_lora.safetensors"), &model)?;
    let temporal = load_adapter(&run.join("temporal_lora.safetensors"), &model)?;
    let text = model.encode(&[caption.as_str()])?;
    let sigmas = [0.05f32, 0.2, 0.4, 0.6, 0.8, 0.9, 0.97, 1.0];
    println!("sigma  base  spatial  temporal  both");
    for &sigma in &sigmas {
        let mut row = Vec::new();
        for set in 0..4 {
            model.wan.adapters.list = match set {
                0 => vec![],
                1 => vec![spatial.clone()],
                2 => vec![temporal.clone()],
                _ => vec![spatial.clone(), temporal.clone()],
            };
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let mut total = 0.0f64;
            let draws = 16;
            for _ in 0..draws {
                let mut noise = vec![0.0f32; x0.len()];
                fill_standard_normal(&mut rng, &mut noise);
                let v = velocity(&model, add_noise(&x0, &noise, sigma)?, &shape, sigma, &text)?;
                let mse: f64 = v
                    .iter()
                    .zip(noise.iter().zip(&x0))
                    .map(|(&p, (&e, &x))| ((p - (e - x)) as f64).powi(2))
                    .sum::<f64>()
                    / v.len() as f64;
                total += mse;
            }
            row.push(total / draws as f64);
        }
        println!(
            "{sigma:.2}  {:.4}  {:.4}  {:.4}  {:.4}",
            row[0], row[1], row[2], row[3]
        );
    }
    // Euler sampling with both adapters and no guidance, 30 steps, shift 4 (as generation): the
    // prediction of the clean clip at each step against the reference.
    model.wan.adapters.list = vec![spatial.clone(), temporal.clone()];
    let schedule = fym_model::flow::inference_schedule(30, 4.0)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut x = vec![0.0f32; x0.len()];
    fill_standard_normal(&mut rng, &mut x);
    let rms = |a: &[f32], b: &[f32]| {
        (a.iter()
            .zip(b)
            .map(|(p, q)| ((p - q) as f64).powi(2))
            .sum::<f64>()
            / a.len() as f64)
            .sqrt()
    };
    for w in schedule.sigmas.windows(2) {
        let (sigma, next) = (w[0], w[1]);
        let v = velocity(&model, x.clone(), &shape, sigma, &text)?;
        let x0_hat: Vec<f32> = x.iter().zip(&v).map(|(x, v)| x - sigma * v).collect();
        println!(
            "step sigma {sigma:.3}: predicted clip vs reference rms {:.4}",
            rms(&x0_hat, &x0)
        );
        for (x, v) in x.iter_mut().zip(&v) {
            *x += (next - sigma) * v;
        }
    }
    println!("sampled clip vs reference rms {:.4}", rms(&x, &x0));
    Ok(())
}

/// The model's velocity prediction for clip `x` (of `shape`) at noise level `sigma`.
fn velocity(
    model: &Model,
    x: Vec<f32>,
    shape: &[usize],
    sigma: f32,
    text: &Tensor,
) -> anyhow::Result<Vec<f32>> {
    let input = Tensor::from_vec(x, shape)?;
    let t = [sigma_to_timestep(sigma)];
    let v = fym_autograd::no_grad(|| {
        model
            .wan
            .forward(&input, &t, text, &ForwardOptions::default())
    })?;
    Ok(v.to_vec())
}
