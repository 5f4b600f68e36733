//! The engine thread's loop. (First version: one request at a time with a contiguous
//! cache; the scheduler-driven batched loop replaces it.)

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use candle_core::Device;
use kiln_model::{Batch, CausalLM, ForwardContext, KvCache, Llama, LogitsMode, Tokenizer};

use crate::config::EngineConfig;
use crate::handle::Command;
use crate::output::FinishReason;
use crate::output_stream::OutputStream;
use crate::request::{EngineRequest, RequestId};
use crate::stats::EngineStats;

pub struct EngineLoop {
    model: Llama,
    device: Device,
    tokenizer: Arc<Tokenizer>,
    stats: Arc<EngineStats>,
    queue: VecDeque<(RequestId, EngineRequest, OutputStream)>,
    shutting_down: bool,
}

impl EngineLoop {
    pub fn new(
        model: Llama,
        device: Device,
        tokenizer: Arc<Tokenizer>,
        _config: EngineConfig,
        _num_blocks: usize,
        stats: Arc<EngineStats>,
    ) -> Self {
        Self {
            model,
            device,
            tokenizer,
            stats,
            queue: VecDeque::new(),
            shutting_down: false,
        }
    }

    pub fn run(&mut self, rx: Receiver<Command>) {
        loop {
            if self.queue.is_empty() {
                if self.shutting_down {
                    return;
                }
                match rx.recv() {
                    Ok(cmd) => self.command(cmd),
                    Err(_) => return,
                }
            }
            while let Ok(cmd) = rx.try_recv() {
                self.command(cmd);
            }
            if let Some((id, req, out)) = self.queue.pop_front() {
                self.stats.waiting.fetch_sub(1, Relaxed);
                self.stats.running.store(1, Relaxed);
                self.serve_one(id, &req, out, &rx);
                self.stats.running.store(0, Relaxed);
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Add { id, request, tx } => {
                match OutputStream::new(&request, self.tokenizer.clone(), tx) {
                    Ok(out) => self.queue.push_back((id, request, out)),
                    Err(e) => {
                        self.stats.waiting.fetch_sub(1, Relaxed);
                        let (_, _, _) = (id, request, e);
                    }
                }
            }
            Command::Abort(id) => {
                if let Some(i) = self.queue.iter().position(|(q, _, _)| *q == id) {
                    if let Some((_, _, out)) = self.queue.remove(i) {
                        self.stats.waiting.fetch_sub(1, Relaxed);
                        out.finish(FinishReason::Abort);
                    }
                }
            }
            Command::Shutdown => self.shutting_down = true,
        }
    }

    fn serve_one(
        &mut self,
        id: RequestId,
        req: &EngineRequest,
        mut out: OutputStream,
        rx: &Receiver<Command>,
    ) {
        let mut cache = KvCache::new(self.model.config().num_layers);
        let mode = if out.wants_prompt_logprobs().is_some() {
            LogitsMode::All
        } else {
            LogitsMode::Last
        };
        let mut logits = match step(&self.model, &self.device, &req.prompt, 0, mode, &mut cache) {
            Ok(l) => l,
            Err(e) => return out.fail(e.to_string()),
        };
        self.stats
            .prompt_tokens_computed
            .fetch_add(req.prompt.len() as u64, Relaxed);
        if mode == LogitsMode::All {
            let vocab = logits.len() / req.prompt.len();
            let rows: Vec<Vec<f32>> = logits.chunks(vocab).map(<[f32]>::to_vec).collect();
            out.send_prompt_logprobs(&rows[..rows.len() - 1]);
            logits = rows[rows.len() - 1].clone();
        }
        let mut pos = req.prompt.len();
        loop {
            let mut aborted = out.is_closed();
            while let Ok(cmd) = rx.try_recv() {
                match cmd {
                    Command::Abort(a) if a == id => aborted = true,
                    other => self.command(other),
                }
            }
            if aborted {
                return out.finish(FinishReason::Abort);
            }
            let (tok, finish) = out.on_logits(&logits);
            self.stats.generated_tokens.fetch_add(1, Relaxed);
            if finish.is_some() {
                return;
            }
            logits = match step(
                &self.model,
                &self.device,
                &[tok],
                pos,
                LogitsMode::Last,
                &mut cache,
            ) {
                Ok(l) => l,
                Err(e) => return out.fail(e.to_string()),
            };
            pos += 1;
        }
    }
}

fn step(
    model: &Llama,
    device: &Device,
    tokens: &[u32],
    start: usize,
    mode: LogitsMode,
    cache: &mut KvCache,
) -> kiln_model::Result<Vec<f32>> {
    let batch = Batch::from_tokens(tokens, start, mode, device)?;
    let logits = model.forward(&batch, &mut ForwardContext::with_cache(cache))?;
    Ok(logits.flatten_all()?.to_vec1::<f32>()?)
}
