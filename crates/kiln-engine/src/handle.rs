//! The engine as its callers see it: a cloneable handle that submits requests and returns a
//! stream of events per request. The engine itself runs on its own thread; dropping a
//! request's stream cancels the request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use kiln_model::{ChatPrompt, Tokenizer};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::config::EngineConfig;
use crate::error::{EngineError, Result};
use crate::output::EngineEvent;
use crate::request::{EngineRequest, RequestId};
use crate::stats::{EngineStats, StatsSnapshot};

/// Messages from handles to the engine thread.
pub(crate) enum Command {
    Add {
        id: RequestId,
        request: EngineRequest,
        tx: tokio::sync::mpsc::UnboundedSender<EngineEvent>,
    },
    Abort(RequestId),
    /// Finish what was submitted, then stop.
    Shutdown,
}

/// What the handle knows of the model without asking the engine thread.
#[derive(Debug)]
pub struct ModelMeta {
    pub name: String,
    pub context_length: usize,
    pub tokenizer: Arc<Tokenizer>,
    /// How the model's conversations become prompts.
    pub chat: ChatPrompt,
}

pub(crate) struct Shared {
    pub meta: ModelMeta,
    pub config: EngineConfig,
    pub stats: Arc<EngineStats>,
    pub next_id: AtomicU64,
    pub closed: AtomicBool,
    pub tx: Mutex<mpsc::Sender<Command>>,
    pub thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle")
            .field("model", &self.shared.meta.name)
            .finish()
    }
}

impl EngineHandle {
    pub fn model_name(&self) -> &str {
        &self.shared.meta.name
    }

    pub fn context_length(&self) -> usize {
        self.shared.meta.context_length
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.shared.meta.tokenizer
    }

    pub fn chat_prompt(&self) -> &ChatPrompt {
        &self.shared.meta.chat
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Checks the request, queues it, and returns its event stream. Fails fast (without
    /// queueing) on an empty prompt, a prompt plus `max_tokens` over the context or the
    /// whole KV cache, bad sampling parameters, a full queue, or a shutting-down engine.
    pub fn submit(&self, request: EngineRequest) -> Result<RequestStream> {
        let s = &self.shared;
        if s.closed.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        if request.prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let context = s.meta.context_length;
        let total = request.prompt.len().saturating_add(request.max_tokens);
        if total > context {
            return Err(EngineError::ContextOverflow {
                prompt: request.prompt.len(),
                max_tokens: request.max_tokens,
                context,
            });
        }
        let blocks = s.stats.kv_blocks_total.load(Ordering::Relaxed) as usize;
        let needed = total.div_ceil(s.config.block_size);
        if needed > blocks {
            return Err(EngineError::CacheTooSmall {
                needed,
                total: blocks,
            });
        }
        request
            .sampling
            .validate()
            .map_err(|e| EngineError::InvalidParameter(e.to_string()))?;
        if s.stats.waiting.load(Ordering::Relaxed) as usize >= s.config.max_queue {
            return Err(EngineError::QueueFull {
                max: s.config.max_queue,
            });
        }
        let id = s.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = unbounded_channel();
        // Counted here so that concurrent submissions see the queue fill up at once.
        s.stats.waiting.fetch_add(1, Ordering::Relaxed);
        let sent =
            s.tx.lock()
                .map_err(|_| EngineError::ShuttingDown)?
                .send(Command::Add { id, request, tx });
        if sent.is_err() {
            s.stats.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(EngineError::ShuttingDown);
        }
        Ok(RequestStream {
            id,
            rx,
            handle: self.clone(),
            done: false,
        })
    }

    fn send(&self, cmd: Command) {
        if let Ok(tx) = self.shared.tx.lock() {
            let _ = tx.send(cmd);
        }
    }

    /// Stops accepting requests; the engine finishes those it has, then its thread ends.
    pub fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.send(Command::Shutdown);
    }

    /// [`Self::shutdown`], then waits for the engine thread to finish.
    pub fn shutdown_and_join(&self) {
        self.shutdown();
        let thread = self.shared.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// Events of one request, ending with `Finished` or `Error`. Dropping it before the end
/// cancels the request and frees its KV blocks.
pub struct RequestStream {
    id: RequestId,
    rx: UnboundedReceiver<EngineEvent>,
    handle: EngineHandle,
    done: bool,
}

impl RequestStream {
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The next event; `None` once the request has ended.
    pub async fn recv(&mut self) -> Option<EngineEvent> {
        let ev = self.rx.recv().await;
        self.note(&ev);
        ev
    }

    /// [`Self::recv`] for callers outside an async runtime.
    pub fn blocking_recv(&mut self) -> Option<EngineEvent> {
        let ev = self.rx.blocking_recv();
        self.note(&ev);
        ev
    }

    fn note(&mut self, ev: &Option<EngineEvent>) {
        if matches!(
            ev,
            None | Some(EngineEvent::Finished { .. }) | Some(EngineEvent::Error(_))
        ) {
            self.done = true;
        }
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if !self.done {
            self.handle.send(Command::Abort(self.id));
        }
    }
}
