//! Writes a temporal-head ST-LoRA (random non-zero factors, heads {1} of layer 0 and {0} of
//! layer 1, to_out.0 included) for the model in DIR, to check that diffusers applies fym's files
//! exactly as fym does: `cargo run --release --example write_st_lora -- DIR OUT.safetensors`
//! (see scripts/check-diffusers-lora.py).

use std::collections::BTreeMap;

use fym_autograd::Tensor;
use fym_model::lora::{Adapter, AdapterKind};
use fym_model::lora_io::write_lora;
use fym_model::WanConfig;
use rand::SeedableRng;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 3,
        "usage: write_st_lora MODEL_DIR OUT.safetensors"
    );
    let config = WanConfig::load(std::path::Path::new(&args[1]).join("config.json"))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let heads = BTreeMap::from([(0, vec![1]), (1, vec![0])]);
    let alpha: f32 = std::env::var("ALPHA")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(8.0);
    let mut adapter = Adapter::st_lora(
        AdapterKind::Temporal,
        &config,
        heads,
        4,
        alpha,
        true,
        &mut rng,
    )?;
    for f in adapter.factors.values_mut() {
        f.b = Tensor::param(
            fym_autograd::init::normal_vec(&mut rng, f.b.numel(), 0.5),
            f.b.shape(),
        )?;
    }
    write_lora(
        &args[2],
        &adapter.to_io(Some("temporal"), config.attention_head_dim)?,
    )?;
    Ok(())
}
