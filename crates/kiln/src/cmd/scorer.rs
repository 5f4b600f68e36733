//! `--scorer` for `kiln data prefs` and `kiln finetune eval`: kiln-eval's prompt-task
//! scorers, the judge behind any OpenAI-compatible endpoint.

use anyhow::{bail, Result};
use clap::{Args as ClapArgs, ValueEnum};
use kiln_eval::scoring::{
    ContainsAnswer, ExactAnswer, FinalNumber, JudgeScorer, RegexScorer, Scorer,
};
use kiln_lm::{EndpointLm, EndpointOptions};

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
                Box::new(judge_scorer(
                    url,
                    &self.judge_model,
                    std::env::var(&self.judge_key_env).ok(),
                )?)
            }
        })
    }
}

/// The judge scorer behind an OpenAI-compatible endpoint.
fn judge_scorer(url: &str, model: &str, key: Option<String>) -> Result<JudgeScorer> {
    let mut opts = EndpointOptions::new(url, model);
    opts.api_key = key;
    Ok(JudgeScorer::new(Box::new(EndpointLm::new(opts, None)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_eval::judge::parse_rating;
    use kiln_eval::tasks::prompt_items::TaskItem;
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
        let judge = judge_scorer(&url, "m", None).unwrap();
        let err = judge.score(&item(), "4").unwrap_err().to_string();
        server.join().unwrap();
        assert!(
            err.contains("line 3") && err.contains("I cannot rate this."),
            "{err}"
        );
    }
}
