//! The model learns: a fresh model's loss is ln(vocab) (uniform predictions), and AdamW
//! drives a tiny model to memorise one batch, for the Llama parts and for GPT-2's.

use candle_core::{DType, Device, Tensor};
use kiln_model::config::{
    BlockKinds, MlpKind, ModelConfig, NormKind, PositionKind, RopeConfig, RopeStyle,
};
use kiln_model::weights::vars::VarWeights;
use kiln_model::weights::Weights;
use kiln_model::{Batch, CausalLM, ForwardContext, LogitsMode};
use kiln_train::{AdamW, AdamWConfig};

fn config(
    vocab: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    kinds: BlockKinds,
) -> ModelConfig {
    ModelConfig {
        architecture: "llama".into(),
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: 4 * hidden,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: heads,
        head_dim: hidden / heads,
        rms_norm_eps: 1e-5,
        rope: RopeConfig {
            theta: 10_000.0,
            style: RopeStyle::Halves,
            scaling: None,
        },
        max_position_embeddings: 64,
        tie_word_embeddings: true,
        attention_bias: false,
        bos_token_id: None,
        eos_token_ids: vec![],
        kinds,
    }
}

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as u32
        })
        .collect()
}

/// Mean next-token cross-entropy of `seq` rows (b, t + 1) under `model`.
fn loss(model: &dyn CausalLM, seq: &[u32], b: usize, t: usize) -> Tensor {
    let dev = Device::Cpu;
    let all = Tensor::from_vec(seq.to_vec(), (b, t + 1), &dev).unwrap();
    let inputs = all.narrow(1, 0, t).unwrap();
    let targets = all.narrow(1, 1, t).unwrap().flatten_all().unwrap();
    let batch = Batch {
        input_ids: inputs,
        start_pos: 0,
        logits: LogitsMode::All,
    };
    let logits = model
        .forward(&batch, &mut ForwardContext::training())
        .unwrap();
    let v = model.config().vocab_size;
    let logits = logits.reshape((b * t, v)).unwrap();
    candle_nn::loss::cross_entropy(&logits, &targets).unwrap()
}

type Model = (Box<dyn CausalLM>, Vec<kiln_model::weights::vars::Param>);

fn model(cfg: &ModelConfig, seed: u64) -> Model {
    let (source, params) = VarWeights::init(cfg, seed, DType::F32, &Device::Cpu).unwrap();
    let model = kiln_model::loader::build_model(&Weights::new(source), cfg).unwrap();
    (model, params)
}

#[test]
fn initial_loss_is_ln_vocab() {
    // nanoGPT's shakespeare-char shape: 65 characters, 4 layers, 4 heads, 128 dims.
    let cfg = config(65, 128, 4, 4, BlockKinds::default());
    let (m, _) = model(&cfg, 1337);
    let (b, t) = (12, 64);
    let l = loss(&m, &tokens(b * (t + 1), 65, 7), b, t)
        .to_scalar::<f32>()
        .unwrap();
    let want = (65f32).ln();
    assert!((l - want).abs() < 0.1, "initial loss {l}, ln(65) = {want}");
}

#[test]
fn a_tiny_model_memorises_one_batch() {
    let gpt2 = BlockKinds {
        norm: NormKind::LayerNorm,
        position: PositionKind::Learned,
        mlp: MlpKind::Gelu,
    };
    for kinds in [BlockKinds::default(), gpt2] {
        let cfg = config(32, 64, 2, 4, kinds);
        let (m, params) = model(&cfg, 3);
        let mut opt = AdamW::new(AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        });
        for p in &params {
            opt.add(p.name.clone(), p.var.clone(), p.decay).unwrap();
        }
        let (b, t) = (4, 16);
        let seq = tokens(b * (t + 1), 32, 11);
        let mut last = f32::MAX;
        for _ in 0..150 {
            let l = loss(&m, &seq, b, t);
            last = l.to_scalar::<f32>().unwrap();
            let grads = l.backward().unwrap();
            opt.step(&grads, 1e-2).unwrap();
        }
        assert!(
            last < 0.1,
            "{kinds:?}: loss after 150 steps on one batch is {last}"
        );
    }
}
