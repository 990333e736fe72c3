//! The base model's attention-head statistics at several noise levels: the gate measures them at
//! σ = 0.5 and the transfer's classification at σ = 0.9; this shows whether any level has clearly
//! spatial or temporal heads. Eight rendered clips of the gate's held-out captions, one thread;
//! on their black background (the gate's clips) or, with a second argument, the same scenes on a
//! static textured (`textured`), pixel-fine noise (`fine-noise`) or faint pixel-noise
//! (`faint-noise`) background, captioned so.
//!
//! usage: cargo run --release --example heads_probe -- MODEL_DIR [black|textured|fine-noise|faint-noise]
use fym::base::data::{faint_noise_background, fine_noise_background, textured_background, World};
use fym::base::eval::{gate_captions, head_stats};
use fym::base::BaseModel;
use fym::world::{caption, render};
use rand::SeedableRng;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: heads_probe MODEL_DIR"))?;
    let background = std::env::args().nth(2).unwrap_or_else(|| "black".into());
    if !["black", "textured", "fine-noise", "faint-noise"].contains(&background.as_str()) {
        anyhow::bail!("background {background:?}: one of black, textured, fine-noise, faint-noise");
    }
    fym_kernels::cpu::set_num_threads(1);
    let model = BaseModel::load(std::path::Path::new(&dir))?;
    let world = World::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let s = model.spec;
    let clips: Vec<_> = gate_captions(&world)
        .into_iter()
        .take(8)
        .map(|(_, a)| {
            let mut scene = world.scene(a, &mut rng);
            match background.as_str() {
                "textured" => textured_background(&mut scene, &mut rng),
                "fine-noise" => fine_noise_background(&mut scene, &mut rng),
                "faint-noise" => faint_noise_background(&mut scene, &mut rng),
                _ => {}
            }
            let clip = render(&scene, s.frames, s.height, s.width).0;
            (caption(&scene), clip)
        })
        .collect();
    for sigma in [0.1f32, 0.3, 0.5, 0.7, 0.9] {
        let stats = head_stats(&model, &clips, sigma, 7)?;
        let heads: Vec<_> = stats.iter().flatten().collect();
        let max =
            |f: fn(&&fym::base::eval::HeadStats) -> f32| heads.iter().map(f).fold(0.0, f32::max);
        let clear_s = heads.iter().filter(|h| h.clearly_spatial()).count();
        let clear_t = heads.iter().filter(|h| h.clearly_temporal()).count();
        println!(
            "σ {sigma}: best cos_spatial {:.3}, cos_temporal {:.3}; most mass in frame {:.3}, on own position in other frames {:.3}; clearly spatial {clear_s}, temporal {clear_t} of {}",
            max(|h| h.cos_spatial),
            max(|h| h.cos_temporal),
            max(|h| h.mass_spatial),
            max(|h| h.mass_temporal),
            heads.len()
        );
    }
    Ok(())
}
