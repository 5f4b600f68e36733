//! `POST /v1/completions`: one or more prompts (text or token ids), `n` choices each
//! (choice index = prompt index * n + j), `echo` with prompt scoring, `max_tokens` 0 to
//! score a prompt without generating.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kiln_engine::EngineRequest;

use crate::auth::ClientId;
use crate::generation::{collect, finish_reason, submit_all, token_cost, ChoiceResult, Deadline};
use crate::openai::common::{unix_now, UsageOut};
use crate::openai::completions::{Completion, CompletionChoice, CompletionRequest, PromptSpec};
use crate::openai::error::ApiError;
use crate::openai::json::OpenAiJson;
use crate::openai::params::{
    check_context, check_max_tokens, check_n, check_top_logprobs, choice_seed, sampling_params,
};
use crate::registry::ModelEntry;
use crate::request_log::Record;
use crate::routes::completions_stream::{CompletionChunkFormat, Echo};
use crate::routes::legacy_logprobs::LegacyBuilder;
use crate::sse::{sse_response, StreamPlan};
use crate::state::AppState;

/// OpenAI's default `max_tokens` for completions.
const DEFAULT_MAX_TOKENS: usize = 16;

struct Prompt {
    ids: Vec<u32>,
    text: String,
}

struct CompletionPlan {
    prompts: Vec<Prompt>,
    n: usize,
    requests: Vec<EngineRequest>,
    echo: bool,
    logprobs: bool,
}

impl CompletionPlan {
    fn prompt_tokens(&self) -> usize {
        self.prompts.iter().map(|p| p.ids.len()).sum()
    }

    /// Per choice, what it echoes (when `echo`).
    fn echoes(&self, entry: &ModelEntry) -> Vec<Option<Echo>> {
        let tok = entry.engine.tokenizer();
        self.requests
            .iter()
            .enumerate()
            .map(|(k, _)| {
                let p = &self.prompts[k / self.n];
                self.echo.then(|| Echo {
                    text: p.text.clone(),
                    first_token: p
                        .ids
                        .first()
                        .and_then(|&t| tok.decode(&[t]).ok())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientId>,
    Extension(record): Extension<Record>,
    OpenAiJson(req): OpenAiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let entry = state.models.resolve(req.model.as_deref())?;
    record.set_model(entry.name());
    let mut plan = plan(&req, entry)?;
    state.limiter.check(&client, token_cost(&plan.requests))?;
    let echoes = plan.echoes(entry);
    let choices = plan.requests.len();
    let events = submit_all(&entry.engine, std::mem::take(&mut plan.requests), "prompt")?;
    record.admitted(plan.prompt_tokens(), choices);
    let deadline = Deadline::after(record.start, state.options.request_timeout);
    let id = format!("cmpl-{}", record.id);
    let model = entry.name().to_string();
    if req.stream.unwrap_or(false) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let format = CompletionChunkFormat::new(id, model, echoes, plan.logprobs, include_usage);
        return Ok(sse_response(StreamPlan {
            events,
            format: Box::new(format),
            record,
            deadline,
            include_usage,
            prompt_tokens: plan.prompt_tokens(),
        }));
    }
    let results = collect(events, choices, deadline, &record).await?;
    let body = response(id, model, &plan, echoes, results);
    Ok(Json(body).into_response())
}

fn plan(req: &CompletionRequest, entry: &ModelEntry) -> Result<CompletionPlan, ApiError> {
    let context = entry.engine.context_length();
    let n = check_n(req.n)?;
    let max_tokens =
        check_max_tokens("max_tokens", req.max_tokens, 0, context)?.unwrap_or(DEFAULT_MAX_TOKENS);
    let top = check_top_logprobs("logprobs", req.logprobs)?;
    let echo = req.echo.unwrap_or(false);
    let base = sampling_params(&req.sampling_fields(), context)?;
    let prompts = prompts(req.prompt.as_ref(), entry)?;
    for p in &prompts {
        check_context(p.ids.len(), max_tokens, context, "prompt")?;
    }
    let stop = req.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    let mut requests = Vec::with_capacity(prompts.len() * n);
    for p in &prompts {
        for i in 0..n {
            requests.push(EngineRequest {
                prompt: p.ids.clone(),
                sampling: choice_seed(&base, i),
                max_tokens,
                stop: stop.clone(),
                stop_at_eos: !req.ignore_eos.unwrap_or(false),
                logprobs: top,
                prompt_logprobs: if echo { top } else { None },
                prompt_logprobs_from: 0,
            });
        }
    }
    Ok(CompletionPlan {
        prompts,
        n,
        requests,
        echo,
        logprobs: top.is_some(),
    })
}

/// The prompts' tokens (BOS added where the model wants it) and texts.
fn prompts(spec: Option<&PromptSpec>, entry: &ModelEntry) -> Result<Vec<Prompt>, ApiError> {
    let tok = entry.engine.tokenizer();
    let spec = spec.ok_or_else(|| ApiError::invalid("prompt", "'prompt' is required."))?;
    let from_text = |text: &String| -> Result<Prompt, ApiError> {
        let ids = tok
            .encode(text, true, true)
            .map_err(|e| ApiError::internal(format!("tokenizing the prompt: {e}")))?;
        Ok(Prompt {
            ids,
            text: text.clone(),
        })
    };
    let vocab = tok.vocab_size();
    let from_ids = |ids: &Vec<u32>| -> Result<Prompt, ApiError> {
        if let Some(bad) = ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(ApiError::invalid(
                "prompt",
                format!("Token id {bad} is outside the vocabulary (size {vocab})."),
            ));
        }
        let text = tok
            .decode(ids)
            .map_err(|e| ApiError::internal(format!("decoding the prompt: {e}")))?;
        Ok(Prompt {
            ids: ids.clone(),
            text,
        })
    };
    let prompts = match spec {
        PromptSpec::Text(t) => vec![from_text(t)?],
        PromptSpec::Texts(ts) => ts.iter().map(from_text).collect::<Result<_, _>>()?,
        PromptSpec::Tokens(ids) => vec![from_ids(ids)?],
        PromptSpec::TokenLists(l) => l.iter().map(from_ids).collect::<Result<_, _>>()?,
    };
    if prompts.is_empty() {
        return Err(ApiError::invalid("prompt", "'prompt' must not be empty."));
    }
    if prompts.iter().any(|p| p.ids.is_empty()) {
        return Err(ApiError::invalid(
            "prompt",
            "The prompt has no tokens; give it some text.",
        ));
    }
    Ok(prompts)
}

fn response(
    id: String,
    model: String,
    plan: &CompletionPlan,
    echoes: Vec<Option<Echo>>,
    results: Vec<ChoiceResult>,
) -> Completion {
    let completion_tokens = results.iter().map(|r| r.usage.completion_tokens).sum();
    let cached = results.iter().map(|r| r.usage.cached_tokens).sum();
    let choices = results
        .into_iter()
        .zip(echoes)
        .enumerate()
        .map(|(index, (r, echo))| {
            let logprobs = plan.logprobs.then(|| {
                let mut b = LegacyBuilder::default();
                if let Some(e) = &echo {
                    b.push_unscored(&e.first_token);
                    r.prompt_logprobs.iter().flatten().for_each(|lp| b.push(lp));
                }
                r.logprobs.iter().for_each(|lp| b.push(lp));
                b.take()
            });
            let text = match echo {
                Some(e) => e.text + &r.text,
                None => r.text,
            };
            CompletionChoice {
                index,
                text,
                logprobs,
                finish_reason: r.finish.map(finish_reason),
            }
        })
        .collect();
    Completion {
        id,
        object: "text_completion",
        created: unix_now(),
        model,
        choices,
        usage: Some(Some(UsageOut::new(
            plan.prompt_tokens(),
            completion_tokens,
            cached,
        ))),
    }
}
