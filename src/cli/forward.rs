//! `fym forward`: runs the model on tensors from a safetensors file and writes the output (and,
//! with `--grads`, the gradients of `sum(output · cotangent)`) to another — the tool that checks
//! fym against diffusers on the same weights and inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use fym_autograd::Tensor;
use fym_model::lora::{Adapter, Adapters};
use fym_model::lora_io::read_lora;
use fym_model::weights::{load_safetensors_file, load_weights, save_safetensors};
use fym_model::{ForwardOptions, HostTensor, WanConfig, WanModel};

#[derive(clap::Args, Debug)]
pub struct ForwardArgs {
    /// Model folder: diffusers `config.json` and `diffusion_pytorch_model.safetensors` (or its
    /// shard index).
    #[arg(long)]
    pub model: PathBuf,
    /// safetensors file with `hidden_states` [B, C, F, H, W], `timestep` [B],
    /// `encoder_hidden_states` [B, L, text_dim] and, for --grads, `cotangent` (shaped like the
    /// output).
    #[arg(long)]
    pub inputs: PathBuf,
    /// Where to write `output` (and the gradients), as f32 safetensors.
    #[arg(long)]
    pub out: PathBuf,
    /// A diffusers/PEFT LoRA file to apply; with --grads the base is then frozen and only the
    /// LoRA factors (and the inputs) get gradients.
    #[arg(long)]
    pub lora: Option<PathBuf>,
    /// Also write `grad.hidden_states`, `grad.encoder_hidden_states` and `grad.<parameter>` for
    /// every trainable parameter, for the loss `sum(output · cotangent)`.
    #[arg(long)]
    pub grads: bool,
}

/// The model's inputs as read from the --inputs file.
struct Inputs {
    hidden_states: HostTensor,
    timestep: Vec<f32>,
    encoder_hidden_states: HostTensor,
    cotangent: Option<HostTensor>,
}

/// Reads and checks the input tensors against the config; errors name the file and tensor.
fn read_inputs(path: &Path, config: &WanConfig, need_cotangent: bool) -> anyhow::Result<Inputs> {
    let mut tensors = load_safetensors_file(path)
        .with_context(|| format!("reading --inputs {}", path.display()))?;
    let mut take = |name: &str| {
        tensors
            .remove(name)
            .with_context(|| format!("--inputs {}: no tensor named `{name}`", path.display()))
    };
    let hidden_states = take("hidden_states")?;
    let timestep = take("timestep")?;
    let encoder_hidden_states = take("encoder_hidden_states")?;
    let cotangent = if need_cotangent {
        Some(
            take("cotangent")
                .context("--grads needs `cotangent`, the upstream gradient of the output")?,
        )
    } else {
        None
    };
    let file = path.display();
    let hs = &hidden_states.shape;
    let [pt, ph, pw] = config.patch_size;
    if hs.len() != 5
        || hs[1] != config.in_channels
        || hs[2] % pt != 0
        || hs[3] % ph != 0
        || hs[4] % pw != 0
    {
        bail!(
            "--inputs {file}: `hidden_states` has shape {hs:?}; the model needs [B, {}, F, H, W] with F, H, W \
             divisible by the patch {:?}",
            config.in_channels,
            config.patch_size
        );
    }
    let batch = hs[0];
    if timestep.shape != [batch] {
        bail!(
            "--inputs {file}: `timestep` has shape {:?}; expected [{batch}] (one per batch item)",
            timestep.shape
        );
    }
    let es = &encoder_hidden_states.shape;
    if es.len() != 3 || es[0] != batch || es[2] != config.text_dim {
        bail!(
            "--inputs {file}: `encoder_hidden_states` has shape {es:?}; expected [{batch}, L, {}]",
            config.text_dim
        );
    }
    if let Some(c) = &cotangent {
        let want = [batch, config.out_channels, hs[2], hs[3], hs[4]];
        if c.shape != want {
            bail!(
                "--inputs {file}: `cotangent` has shape {:?}; expected the output's shape {want:?}",
                c.shape
            );
        }
    }
    Ok(Inputs {
        hidden_states,
        timestep: timestep.data,
        encoder_hidden_states,
        cotangent,
    })
}

fn host(t: &Tensor) -> anyhow::Result<HostTensor> {
    Ok(HostTensor::new(t.shape().to_vec(), t.to_vec())?)
}

pub fn run(args: ForwardArgs) -> anyhow::Result<()> {
    let config = WanConfig::load(&args.model)
        .with_context(|| format!("reading --model {}", args.model.display()))?;
    let inputs = read_inputs(&args.inputs, &config, args.grads)?;
    let weights = load_weights(&args.model, &config)
        .with_context(|| format!("reading --model {}", args.model.display()))?;
    // Base parameters are trainable only for a full-model gradient; with a LoRA they stay frozen.
    let train_base = args.grads && args.lora.is_none();
    let tensors = weights
        .into_iter()
        .map(|(n, t)| (n, (t.shape, t.data)))
        .collect();
    let mut model = WanModel::from_tensors(config.clone(), tensors, train_base)?;
    if let Some(path) = &args.lora {
        let io = read_lora(path).with_context(|| format!("reading --lora {}", path.display()))?;
        io.check_against_config(&config, path)?;
        let adapter = Adapter::from_io(&io, config.attention_head_dim, args.grads)?;
        model.adapters = Adapters {
            list: vec![adapter],
        };
    }

    let make = |t: &HostTensor| -> anyhow::Result<Tensor> {
        Ok(if args.grads {
            Tensor::param(t.data.clone(), &t.shape)?
        } else {
            Tensor::from_vec(t.data.clone(), &t.shape)?
        })
    };
    let hidden = make(&inputs.hidden_states)?;
    let text = make(&inputs.encoder_hidden_states)?;
    let opts = ForwardOptions::default();
    let output = if args.grads {
        model.forward(&hidden, &inputs.timestep, &text, &opts)?
    } else {
        fym_autograd::no_grad(|| model.forward(&hidden, &inputs.timestep, &text, &opts))?
    };

    let mut written: BTreeMap<String, HostTensor> = BTreeMap::new();
    written.insert("output".into(), host(&output)?);
    if let Some(cotangent) = &inputs.cotangent {
        let grads = output.backward_with(&cotangent.data)?;
        let mut trainable: Vec<(String, Tensor)> = vec![
            ("hidden_states".into(), hidden.clone()),
            ("encoder_hidden_states".into(), text.clone()),
        ];
        let params = if args.lora.is_some() {
            model.adapters.params()
        } else {
            model.trainable_base_params()
        };
        trainable.extend(params.iter().map(|(n, t)| (n.to_string(), t.clone())));
        for (name, t) in trainable {
            // A parameter the output does not depend on has gradient zero.
            let g = grads
                .get(&t)
                .map_or_else(|| vec![0.0; t.numel()], |g| g.to_vec());
            written.insert(
                format!("grad.{name}"),
                HostTensor::new(t.shape().to_vec(), g)?,
            );
        }
    }
    let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    save_safetensors(&args.out, &written, &meta)
        .with_context(|| format!("writing --out {}", args.out.display()))?;
    eprintln!("wrote {} tensors to {}", written.len(), args.out.display());
    Ok(())
}
