//! Where does the base model lose a shape? Renders the quality gate's 50 held-out captions,
//! noises each clip to σ0 and samples from there (the default stochastic sampler, 25-step schedule,
//! CFG 3), optionally stopping at σ_stop and taking the model's x0 prediction there; prints the
//! gate's shape / colour / direction agreement per σ0.
//!
//! usage: cargo run --release --example sdedit_probe -- MODEL_DIR [σ0,σ0,…] [σ_stop,…]
//! (defaults: σ0 = 0.2,0.4,0.6,0.8,0.9,1.0 and no early stop). One thread.
use fym::base::data::World;
use fym::base::eval::{gate_captions, score_clip};
use fym::base::{read_clip, write_clip, BaseModel};
use fym::world::render;
use fym_autograd::{no_grad, Tensor};
use fym_model::flow::{
    cfg_combine, fill_standard_normal, inference_schedule, sigma_to_timestep, stochastic_sample,
};
use fym_model::ForwardOptions;
use rand::SeedableRng;
use std::collections::BTreeMap;

fn list(arg: Option<String>, default: &[f32]) -> anyhow::Result<Vec<f32>> {
    match arg {
        Some(s) => Ok(s.split(',').map(str::parse).collect::<Result<_, _>>()?),
        None => Ok(default.to_vec()),
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: sdedit_probe MODEL_DIR [σ0,…] [σ_stop,…]"))?;
    let starts = list(args.next(), &[0.2, 0.4, 0.6, 0.8, 0.9, 1.0])?;
    let stops = list(args.next(), &[0.0])?;
    fym_kernels::cpu::set_num_threads(1);
    let model = BaseModel::load(std::path::Path::new(&dir))?;
    let world = World::default();
    let cases = gate_captions(&world);
    let s = model.spec;
    let (n, per) = (cases.len(), s.numel());
    let mut scene_rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut clean = vec![0.0f32; n * per];
    for ((_, a), chunk) in cases.iter().zip(clean.chunks_exact_mut(per)) {
        let (video, _) = render(
            &world.scene(*a, &mut scene_rng),
            s.frames,
            s.height,
            s.width,
        );
        write_clip(&video, chunk);
    }
    let mut captions: Vec<&str> = cases.iter().map(|(c, _)| c.as_str()).collect();
    captions.extend(std::iter::repeat_n("", n));
    let text = model.text.encode(&captions)?;
    let velocity = |x: &[f32], sigma: f32| -> fym_model::Result<Vec<f32>> {
        let mut both = x.to_vec();
        both.extend_from_slice(x);
        let xt = Tensor::from_vec(both, &[2 * n, 3, s.frames, s.height, s.width])?;
        let t = vec![sigma_to_timestep(sigma); 2 * n];
        let v = model
            .wan
            .forward(&xt, &t, &text, &ForwardOptions::default())?
            .to_vec();
        let (cond, uncond) = v.split_at(n * per);
        cfg_combine(uncond, cond, 3.0)
    };
    let schedule = inference_schedule(25, 3.0)?;
    for &stop in &stops {
        for &s0 in &starts {
            let first = schedule.sigmas.iter().position(|&x| x <= s0).unwrap_or(0);
            let mut sigmas: Vec<f32> = schedule.sigmas[first..]
                .iter()
                .copied()
                .filter(|&x| x >= stop)
                .collect();
            if sigmas.last() != Some(&0.0) {
                sigmas.push(0.0); // the last step to σ = 0 returns the x0 prediction
            }
            let mut noise = vec![0.0f32; clean.len()];
            fill_standard_normal(&mut rand::rngs::StdRng::seed_from_u64(7), &mut noise);
            let x = fym_model::flow::add_noise(&clean, &noise, sigmas[0])?;
            let mut rng = rand::rngs::StdRng::seed_from_u64(11);
            let out = no_grad(|| stochastic_sample(&x, &sigmas, 1.0, &mut rng, &velocity))?;
            let (mut shape, mut color, mut direction, mut by_fill) = (0, 0, 0, 0);
            let mut by_shape: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
            for ((_, a), clip) in cases.iter().zip(out.chunks_exact(per)) {
                let score = score_clip(&read_clip(clip, s.frames, s.height, s.width), a);
                shape += score.shape_match as usize;
                by_fill += score.shape_by_fill_match as usize;
                color += score.color_match as usize;
                direction += score.direction_match as usize;
                let e = by_shape.entry(format!("{:?}", a.shape)).or_default();
                e.0 += score.shape_match as usize;
                e.1 += score.shape_by_fill_match as usize;
                e.2 += 1;
            }
            println!(
                "from σ {:.3} to σ {stop}: shape {shape}/{n} (by fill {by_fill}/{n}), colour {color}/{n}, direction {direction}/{n}, by shape (right, right by fill, of) {by_shape:?}",
                sigmas[0]
            );
        }
    }
    Ok(())
}
