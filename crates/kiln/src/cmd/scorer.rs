//! `--scorer` for `kiln data prefs` and `kiln finetune eval`: the checks kiln-train defines,
//! and an LLM judge behind any OpenAI-compatible endpoint (kiln eval's judge).

use anyhow::{bail, Result};
use clap::{Args as ClapArgs, ValueEnum};
use kiln_eval::judge::{parse_rating, single_prompt, DEFAULT_RUBRIC};
use kiln_lm::{user, EndpointLm, EndpointOptions, GenParams, TextCompletion};
use kiln_train::error::TrainError;
use kiln_train::task::{ContainsAnswer, ExactAnswer, FinalNumber, RegexScorer, Scorer, TaskItem};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum ScorerKind {
    /// The completion's first line equals "answer" (case, quotes, trailing punctuation ignored).
    Exact,
    /// The answer appears in the completion as whole words (lenient: answers in a sentence count).
    Contains,
    /// The last number in the completion equals the last number in "answer" (GSM8K-style).
    Number,
    /// The completion matches --regex, or without it each line's "answer" read as a pattern.
    Regex,
    /// An LLM judge rates the completion 1-10 through --judge-url (OpenAI-compatible).
    Judge,
}

#[derive(ClapArgs, Debug, Clone)]
pub struct ScorerArgs {
    /// How a completion is scored.
    #[arg(long, value_enum, default_value_t = ScorerKind::Exact)]
    pub scorer: ScorerKind,
    /// The pattern for --scorer regex (without it, each line's "answer" is its own pattern).
    #[arg(long)]
    pub regex: Option<String>,
    /// Base URL of the judge's OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1.
    #[arg(long)]
    pub judge_url: Option<String>,
    /// The judge's model name at that endpoint.
    #[arg(long, default_value = "default")]
    pub judge_model: String,
    /// Environment variable holding the judge's API key (sent as a bearer token if set).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub judge_key_env: String,
}

impl ScorerArgs {
    pub fn build(&self) -> Result<Box<dyn Scorer>> {
        Ok(match self.scorer {
            ScorerKind::Exact => Box::new(ExactAnswer),
            ScorerKind::Contains => Box::new(ContainsAnswer),
            ScorerKind::Number => Box::new(FinalNumber),
            ScorerKind::Regex => match &self.regex {
                Some(p) => Box::new(RegexScorer::new(p)?),
                None => Box::new(RegexScorer::PerItem),
            },
            ScorerKind::Judge => {
                let Some(url) = &self.judge_url else {
                    bail!("--scorer judge needs --judge-url (an OpenAI-compatible /v1 base URL)");
                };
                Box::new(JudgeScorer::new(
                    url,
                    &self.judge_model,
                    std::env::var(&self.judge_key_env).ok(),
                )?)
            }
        })
    }
}

/// Asks a chat model to rate a response 1-10 (kiln eval's single-answer judge prompt and
/// rating parser, through its endpoint backend) and scores (rating - 1) / 9.
pub struct JudgeScorer {
    judge: EndpointLm,
}

/// Tokens the judge may write: a short explanation, then "Rating: [[n]]".
const JUDGE_MAX_TOKENS: usize = 256;

impl JudgeScorer {
    pub fn new(url: &str, model: &str, key: Option<String>) -> kiln_lm::Result<Self> {
        let mut opts = EndpointOptions::new(url, model);
        opts.api_key = key;
        Ok(Self {
            judge: EndpointLm::new(opts, None)?,
        })
    }
}

impl Scorer for JudgeScorer {
    fn name(&self) -> &str {
        "judge"
    }
    fn score(&self, item: &TaskItem, completion: &str) -> kiln_train::error::Result<f64> {
        let question: Vec<&str> = item.messages.iter().map(|m| m.content.as_str()).collect();
        let prompt = single_prompt(
            DEFAULT_RUBRIC,
            &question.join("\n"),
            completion,
            item.answer.as_deref(),
        );
        let reply = self
            .judge
            .chat_text(&user(&prompt), &GenParams::greedy(JUDGE_MAX_TOKENS))
            .map_err(|e| TrainError::InvalidArgument(format!("judge: {e}")))?;
        let rating = parse_rating(&reply).ok_or_else(|| {
            TrainError::InvalidArgument(format!(
                "line {}: the judge replied {reply:?}, not a rating from 1 to 10",
                item.line
            ))
        })?;
        Ok(f64::from(rating - 1) / 9.0)
    }
    fn needs_answer(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    #[test]
    fn ratings_are_read_from_the_reply() {
        assert_eq!(parse_rating("7"), Some(7));
        assert_eq!(parse_rating("Rating: 10/10"), Some(10));
        assert_eq!(parse_rating("0, then 3"), Some(3));
        assert_eq!(parse_rating("great"), None);
    }

    /// A one-request OpenAI-compatible server that answers with `reply` and hands back the
    /// request body it saw.
    fn fake_endpoint(reply: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let json = serde_json::json!({"choices": [{"message": {"role": "assistant", "content": reply}}]})
                .to_string();
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                json.len()
            )
            .unwrap();
            String::from_utf8(body).unwrap()
        });
        (url, handle)
    }

    fn item() -> TaskItem {
        TaskItem {
            line: 3,
            prompt: serde_json::Value::String("What is 2+2?".into()),
            messages: vec![kiln_model::ChatMessage::new("user", "What is 2+2?")],
            answer: Some("4".into()),
        }
    }

    #[test]
    fn judge_scores_through_an_openai_endpoint() {
        let (url, server) = fake_endpoint("8");
        let judge = ScorerArgs {
            scorer: ScorerKind::Judge,
            regex: None,
            judge_url: Some(url),
            judge_model: "judge-model".into(),
            judge_key_env: "KILN_TEST_NO_SUCH_KEY".into(),
        }
        .build()
        .unwrap();
        let score = judge.score(&item(), "It is 4.").unwrap();
        assert!((score - 7.0 / 9.0).abs() < 1e-12);
        let sent: serde_json::Value = serde_json::from_str(&server.join().unwrap()).unwrap();
        assert_eq!(sent["model"], "judge-model");
        let content = sent["messages"][0]["content"].as_str().unwrap();
        assert!(content.contains("What is 2+2?") && content.contains("It is 4."));
        assert!(content.contains("[Reference answer]\n4"));
    }

    #[test]
    fn a_judge_reply_without_a_rating_is_an_error_naming_the_line() {
        let (url, server) = fake_endpoint("I cannot rate this.");
        let judge = JudgeScorer::new(&url, "m", None).unwrap();
        let err = judge.score(&item(), "4").unwrap_err().to_string();
        server.join().unwrap();
        assert!(
            err.contains("line 3") && err.contains("I cannot rate this."),
            "{err}"
        );
    }
}
