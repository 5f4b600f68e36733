//! The engine thread's step loop: take commands, `schedule`, run the model over the paged
//! cache, sample and stream each sequence's token, `update_from_output`. Idle, it blocks on
//! the command channel.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use candle_core::Device;
use kiln_model::{CausalLM, PagedKvCache, SeqLogits, Tokenizer};

use crate::config::EngineConfig;
use crate::handle::Command;
use crate::model_runner::{run_step, StepLogits};
use crate::output::FinishReason;
use crate::output_stream::OutputStream;
use crate::request::RequestId;
use crate::scheduler::{Scheduler, SchedulerConfig, SchedulerOutput};
use crate::stats::EngineStats;

/// A request in flight: its output side and the prompt rows of logits gathered so far.
struct Active {
    out: OutputStream,
    prompt_rows: Vec<Vec<f32>>,
}

pub struct EngineLoop {
    model: Box<dyn CausalLM>,
    device: Device,
    tokenizer: Arc<Tokenizer>,
    stats: Arc<EngineStats>,
    scheduler: Scheduler,
    cache: PagedKvCache,
    active: HashMap<RequestId, Active>,
    shutting_down: bool,
}

impl EngineLoop {
    pub fn new(
        model: Box<dyn CausalLM>,
        device: Device,
        tokenizer: Arc<Tokenizer>,
        config: EngineConfig,
        num_blocks: usize,
        stats: Arc<EngineStats>,
    ) -> Self {
        let cache = PagedKvCache::new(model.config(), num_blocks, config.block_size);
        let scheduler = Scheduler::new(SchedulerConfig {
            max_num_seqs: config.max_num_seqs,
            max_num_batched_tokens: config.max_num_batched_tokens,
            block_size: config.block_size,
            num_blocks,
            enable_prefix_caching: config.enable_prefix_caching,
        });
        Self {
            model,
            device,
            tokenizer,
            stats,
            scheduler,
            cache,
            active: HashMap::new(),
            shutting_down: false,
        }
    }

    pub fn run(&mut self, rx: Receiver<Command>) {
        loop {
            if !self.scheduler.has_work() {
                if self.shutting_down {
                    return;
                }
                match rx.recv() {
                    Ok(cmd) => self.command(cmd),
                    Err(_) => return,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(cmd) => self.command(cmd),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.shutting_down = true;
                        break;
                    }
                }
            }
            self.drop_closed();
            let out = self.scheduler.schedule();
            if !out.is_empty() {
                self.step(&out);
            }
            self.publish_stats();
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Add { id, request, tx } => {
                let Some(out) = OutputStream::new(&request, self.tokenizer.clone(), tx) else {
                    return;
                };
                let mut seq =
                    self.scheduler
                        .new_sequence(id, request.prompt.clone(), request.max_tokens);
                if request.stop_at_eos {
                    seq.stop_token_ids = self.tokenizer.eos_token_ids().to_vec();
                }
                if request.prompt_logprobs.is_some() {
                    // Token i is scored by the logits at position i - 1.
                    seq.prompt_logits_from = Some(request.prompt_logprobs_from.max(1) - 1);
                }
                self.scheduler.add_request(seq);
                self.active.insert(
                    id,
                    Active {
                        out,
                        prompt_rows: vec![],
                    },
                );
            }
            Command::Abort(id) => self.abort(id),
            Command::Shutdown => self.shutting_down = true,
        }
    }

    fn abort(&mut self, id: RequestId) {
        self.scheduler.finish_request(id);
        if let Some(a) = self.active.remove(&id) {
            a.out.finish(FinishReason::Abort);
        }
    }

    /// Cancels requests whose client has gone away.
    fn drop_closed(&mut self) {
        let closed: Vec<RequestId> = self
            .active
            .iter()
            .filter(|(_, a)| a.out.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in closed {
            self.abort(id);
        }
    }

    fn step(&mut self, out: &SchedulerOutput) {
        for id in &out.preempted {
            if let Some(a) = self.active.get_mut(id) {
                a.prompt_rows.clear();
            }
        }
        let logits = match run_step(&self.model, &mut self.cache, &self.device, out) {
            Ok(l) => l,
            Err(e) => return self.fail_step(out, &e.to_string()),
        };
        self.stats.steps.fetch_add(1, Relaxed);
        let mut sampled = vec![];
        let mut row = 0;
        for s in &out.seqs {
            let rows = match s.logits {
                SeqLogits::None => 0,
                SeqLogits::Last => 1,
                SeqLogits::Tail(n) => n.min(s.tokens.len()),
            };
            let Some(a) = self.active.get_mut(&s.id) else {
                row += rows;
                continue;
            };
            let (prompt_len, cached) = self
                .scheduler
                .get(s.id)
                .map_or((0, 0), |q| (q.prompt_len, q.num_cached_tokens));
            a.out.cached_tokens = cached;
            let prefill = prompt_len.saturating_sub(s.start_pos).min(s.tokens.len());
            self.stats
                .prompt_tokens_computed
                .fetch_add(prefill as u64, Relaxed);
            if a.out.wants_prompt_logprobs() && s.start_pos < prompt_len {
                // The rows are positions end - rows .. end; the one at position p predicts
                // token p + 1, so positions up to prompt_len - 2 score the prompt.
                let end = s.start_pos + s.tokens.len();
                let keep = prompt_len
                    .saturating_sub(1)
                    .min(end)
                    .saturating_sub(end - rows);
                a.prompt_rows
                    .extend((0..keep).map(|r| logits.row(row + r).to_vec()));
                if end >= prompt_len {
                    a.out.send_prompt_logprobs(&a.prompt_rows);
                    a.prompt_rows = vec![];
                }
            }
            if s.sample {
                if a.out.max_tokens() == 0 {
                    sampled.push((s.id, None));
                } else {
                    let tok = a.out.sample(logits.row(row + rows - 1));
                    sampled.push((s.id, Some((tok, row + rows - 1))));
                }
            }
            row += rows;
        }
        self.finish_step(out, &logits, sampled);
    }

    /// Appends sampled tokens, streams them, and retires finished requests.
    fn finish_step(
        &mut self,
        out: &SchedulerOutput,
        logits: &StepLogits,
        sampled: Vec<(RequestId, Option<(u32, usize)>)>,
    ) {
        let tokens: Vec<(RequestId, u32)> = sampled
            .iter()
            .filter_map(|(id, t)| t.map(|(tok, _)| (*id, tok)))
            .collect();
        self.stats
            .generated_tokens
            .fetch_add(tokens.len() as u64, Relaxed);
        let ended: HashMap<RequestId, FinishReason> = self
            .scheduler
            .update_from_output(out, &tokens)
            .into_iter()
            .collect();
        for (id, t) in sampled {
            let Some(a) = self.active.get_mut(&id) else {
                continue;
            };
            let finish = match t {
                None => {
                    // max_tokens 0: the prompt was only scored.
                    a.out.finish(FinishReason::Length);
                    Some(FinishReason::Length)
                }
                Some((tok, r)) => a.out.emit(tok, logits.row(r), ended.get(&id).copied()),
            };
            if finish.is_some() {
                self.scheduler.finish_request(id);
                self.active.remove(&id);
            }
        }
    }

    fn fail_step(&mut self, out: &SchedulerOutput, msg: &str) {
        tracing::error!("engine step failed: {msg}");
        for s in &out.seqs {
            self.scheduler.finish_request(s.id);
            if let Some(a) = self.active.remove(&s.id) {
                a.out.fail(msg.to_string());
            }
        }
    }

    fn publish_stats(&self) {
        let s = &self.stats;
        let kv = self.scheduler.kv();
        s.waiting
            .store(self.scheduler.num_waiting() as u64, Relaxed);
        s.running
            .store(self.scheduler.num_running() as u64, Relaxed);
        s.kv_blocks_used.store(kv.pool().num_used() as u64, Relaxed);
        s.prefix_queried_tokens.store(kv.queried_tokens, Relaxed);
        s.prefix_hit_tokens.store(kv.hit_tokens, Relaxed);
        s.preemptions.store(self.scheduler.num_preemptions, Relaxed);
    }
}
