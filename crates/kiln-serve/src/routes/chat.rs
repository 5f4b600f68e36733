//! `POST /v1/chat/completions`: messages through the model's chat template, one engine
//! request per choice (`n`, seeds seed+i).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kiln_engine::EngineRequest;
use kiln_model::{ChatMessage, ModelError};

use crate::auth::ClientId;
use crate::generation::{collect, finish_reason, submit_all, token_cost, ChoiceResult, Deadline};
use crate::openai::chat::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionRequest, ChatLogprobs,
    ChatMessageIn, ChatTokenLogprob,
};
use crate::openai::common::{unix_now, UsageOut};
use crate::openai::error::ApiError;
use crate::openai::json::OpenAiJson;
use crate::openai::params::{
    check_context, check_max_tokens, check_n, check_top_logprobs, choice_seed, sampling_params,
};
use crate::registry::ModelEntry;
use crate::request_log::Record;
use crate::routes::chat_stream::ChatChunkFormat;
use crate::sse::{sse_response, StreamPlan};
use crate::state::AppState;

/// A validated chat request, ready to submit.
struct ChatPlan {
    prompt_tokens: usize,
    requests: Vec<EngineRequest>,
    logprobs: bool,
}

pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientId>,
    Extension(record): Extension<Record>,
    OpenAiJson(req): OpenAiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let entry = state.models.resolve(req.model.as_deref())?;
    record.set_model(entry.name());
    let plan = plan(&req, entry)?;
    state.limiter.check(&client, token_cost(&plan.requests))?;
    let n = plan.requests.len();
    let events = submit_all(&entry.engine, plan.requests, "messages")?;
    record.admitted(plan.prompt_tokens, n);
    let deadline = Deadline::after(record.start, state.options.request_timeout);
    let id = format!("chatcmpl-{}", record.id);
    let model = entry.name().to_string();
    if req.stream.unwrap_or(false) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let format = ChatChunkFormat::new(id, model, n, include_usage);
        return Ok(sse_response(StreamPlan {
            events,
            format: Box::new(format),
            record,
            deadline,
            include_usage,
            prompt_tokens: plan.prompt_tokens,
        }));
    }
    let results = collect(events, n, deadline, &record).await?;
    let body = response(id, model, plan.prompt_tokens, plan.logprobs, results);
    Ok(Json(body).into_response())
}

fn plan(req: &ChatCompletionRequest, entry: &ModelEntry) -> Result<ChatPlan, ApiError> {
    let context = entry.engine.context_length();
    let n = check_n(req.n)?;
    let max_tokens = match req.max_completion_tokens {
        Some(_) => check_max_tokens(
            "max_completion_tokens",
            req.max_completion_tokens,
            1,
            context,
        )?,
        None => check_max_tokens("max_tokens", req.max_tokens, 1, context)?,
    };
    let top = check_top_logprobs("top_logprobs", req.top_logprobs)?;
    let logprobs = req.logprobs.unwrap_or(false);
    if top.is_some_and(|t| t > 0) && !logprobs {
        return Err(ApiError::invalid(
            "top_logprobs",
            "'top_logprobs' requires 'logprobs' to be true.",
        ));
    }
    let base = sampling_params(&req.sampling_fields(), context)?;
    let prompt = render(entry, &req.messages)?;
    // Without max_tokens, the rest of the context (at least one token).
    let max_tokens = max_tokens.unwrap_or(context.saturating_sub(prompt.len()).max(1));
    check_context(prompt.len(), max_tokens, context, "messages")?;
    let stop = req.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    let requests = (0..n)
        .map(|i| EngineRequest {
            prompt: prompt.clone(),
            sampling: choice_seed(&base, i),
            max_tokens,
            stop: stop.clone(),
            stop_at_eos: !req.ignore_eos.unwrap_or(false),
            logprobs: logprobs.then_some(top.unwrap_or(0)),
            prompt_logprobs: None,
            prompt_logprobs_from: 0,
        })
        .collect();
    Ok(ChatPlan {
        prompt_tokens: prompt.len(),
        requests,
        logprobs,
    })
}

/// The prompt tokens of `messages` through the model's chat prompt (a model with neither a
/// template nor ChatML's tokens is not a chat model here).
pub(crate) fn render(entry: &ModelEntry, messages: &[ChatMessageIn]) -> Result<Vec<u32>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "'messages' must contain at least one message.",
        ));
    }
    let chat = entry.engine.chat_prompt();
    if !chat.is_chat() {
        return Err(ApiError::bad_request(format!(
            "The model `{}` has no chat template; use /v1/completions with a prompt.",
            entry.name()
        )));
    }
    let mut msgs = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let content = match &m.content {
            None => String::new(),
            Some(c) => c.text().map_err(|kind| {
                ApiError::invalid(
                    format!("messages[{i}].content"),
                    format!("Content parts of type '{kind}' are not supported; only 'text'."),
                )
            })?,
        };
        // OpenAI's newer name for the system role; templates know "system".
        let role = if m.role == "developer" {
            "system"
        } else {
            &m.role
        };
        msgs.push(ChatMessage::new(role, content));
    }
    chat.encode(entry.engine.tokenizer(), &msgs)
        .map_err(|e| match e {
            ModelError::ChatTemplate(_) => {
                ApiError::invalid("messages", format!("Cannot apply the chat template: {e}"))
            }
            e => ApiError::internal(format!("tokenizing the prompt: {e}")),
        })
}

fn response(
    id: String,
    model: String,
    prompt_tokens: usize,
    logprobs: bool,
    results: Vec<ChoiceResult>,
) -> ChatCompletion {
    let completion_tokens = results.iter().map(|r| r.usage.completion_tokens).sum();
    let cached = results
        .iter()
        .map(|r| r.usage.cached_tokens)
        .max()
        .unwrap_or(0);
    let choices = results
        .into_iter()
        .enumerate()
        .map(|(index, r)| ChatChoice {
            index,
            message: AssistantMessage {
                role: "assistant",
                content: r.text,
            },
            logprobs: logprobs.then(|| ChatLogprobs {
                content: r
                    .logprobs
                    .iter()
                    .map(ChatTokenLogprob::from_engine)
                    .collect(),
            }),
            finish_reason: r.finish.map(finish_reason),
        })
        .collect();
    ChatCompletion {
        id,
        object: "chat.completion",
        created: unix_now(),
        model,
        choices,
        usage: UsageOut::new(prompt_tokens, completion_tokens, cached),
    }
}
