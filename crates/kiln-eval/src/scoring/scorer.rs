//! Scorers grade one completion of a prompt task's item in [0, 1]: exact answers, answers
//! in a sentence, final numbers, format checks (a regex), and an LLM judge
//! ([`super::JudgeScorer`]) behind the same trait.

use regex::Regex;

use super::answer::{last_number, same_number};
use crate::error::{EvalError, Result};
use crate::tasks::prompt_items::TaskItem;

/// Refuses, before any generation, items without an `answer` when `scorer` needs one and
/// answers the scorer cannot read, naming the file and line.
pub fn check_answers(
    scorer: &dyn Scorer,
    items: &[TaskItem],
    path: &std::path::Path,
) -> Result<()> {
    let at = |line, message| EvalError::Parse {
        path: path.into(),
        line,
        message,
    };
    for it in items {
        match &it.answer {
            None if scorer.needs_answer() => {
                let msg = format!(
                    "the {} scorer needs an \"answer\" on every line",
                    scorer.name()
                );
                return Err(at(it.line, msg));
            }
            None => {}
            Some(answer) => scorer
                .check_answer(answer)
                .map_err(|msg| at(it.line, msg))?,
        }
    }
    Ok(())
}

pub trait Scorer {
    fn name(&self) -> &str;
    fn score(&self, item: &TaskItem, completion: &str) -> Result<f64>;
    /// Whether items must carry an `answer`.
    fn needs_answer(&self) -> bool {
        true
    }
    /// Why `answer` cannot be scored against, if it cannot.
    fn check_answer(&self, _answer: &str) -> std::result::Result<(), String> {
        Ok(())
    }
}

fn expected<'a>(scorer: &str, item: &'a TaskItem) -> Result<&'a str> {
    item.answer.as_deref().ok_or_else(|| {
        EvalError::Task(format!(
            "line {}: the {scorer} scorer needs an \"answer\"",
            item.line
        ))
    })
}

/// The first line of `s`, lower-cased, with surrounding whitespace, quotes, markdown
/// emphasis and trailing punctuation removed: "**Networking.**" and "networking" agree.
pub fn normalize_answer(s: &str) -> String {
    let first = s.trim().lines().next().unwrap_or("");
    first
        .trim_matches(|c: char| c.is_whitespace() || "\"'`*_.,;:!".contains(c))
        .to_lowercase()
}

/// 1 when the completion's first line, normalized, is the answer.
pub struct ExactAnswer;

impl Scorer for ExactAnswer {
    fn name(&self) -> &str {
        "exact"
    }
    fn score(&self, item: &TaskItem, completion: &str) -> Result<f64> {
        let want = normalize_answer(expected(self.name(), item)?);
        Ok(f64::from(u8::from(normalize_answer(completion) == want)))
    }
}

/// 1 when the answer appears in the completion as whole words, in any case: lenient to a
/// model that answers in a sentence ("It is a programming language." for "language"), and
/// to one that lists several answers, so a gain measured with it is a conservative one.
pub struct ContainsAnswer;

impl Scorer for ContainsAnswer {
    fn name(&self) -> &str {
        "contains"
    }
    fn score(&self, item: &TaskItem, completion: &str) -> Result<f64> {
        let want = expected(self.name(), item)?.trim().to_lowercase();
        let text = completion.to_lowercase();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
        let found = !want.is_empty()
            && text.match_indices(&want).any(|(i, m)| {
                boundary(text[..i].chars().next_back())
                    && boundary(text[i + m.len()..].chars().next())
            });
        Ok(f64::from(u8::from(found)))
    }
}

/// 1 when the last number in the completion equals the last number in the answer
/// (GSM8K-style: the worked solution ends with the result, "#### 42"), both read as the
/// generation tasks read them ([`last_number`]: "50 - 10" ends in 10).
pub struct FinalNumber;

impl Scorer for FinalNumber {
    fn name(&self) -> &str {
        "number"
    }
    fn score(&self, item: &TaskItem, completion: &str) -> Result<f64> {
        let want = expected(self.name(), item)?;
        let want = last_number(want).ok_or_else(|| {
            EvalError::Task(format!(
                "line {}: the answer {want:?} has no number",
                item.line
            ))
        })?;
        Ok(match last_number(completion) {
            Some(got) => f64::from(u8::from(same_number(&got, &want))),
            None => 0.0,
        })
    }
}

/// 1 when the completion matches a regular expression (a format check): one pattern for
/// every item, or each item's `answer` read as its own pattern (IFEval-style prompts, each
/// naming its own constraint: "at most 12 words", "no commas").
pub enum RegexScorer {
    Fixed(Regex),
    PerItem,
}

impl RegexScorer {
    pub fn new(pattern: &str) -> Result<Self> {
        Regex::new(pattern)
            .map(Self::Fixed)
            .map_err(|e| EvalError::Task(format!("--regex {pattern:?}: {e}")))
    }
}

impl Scorer for RegexScorer {
    fn name(&self) -> &str {
        "regex"
    }
    fn score(&self, item: &TaskItem, completion: &str) -> Result<f64> {
        let matched = match self {
            Self::Fixed(re) => re.is_match(completion),
            Self::PerItem => {
                let pattern = expected(self.name(), item)?;
                Regex::new(pattern)
                    .map_err(|e| {
                        EvalError::Task(format!(
                            "line {}: the answer {pattern:?} is not a regular expression: {e}",
                            item.line
                        ))
                    })?
                    .is_match(completion)
            }
        };
        Ok(f64::from(u8::from(matched)))
    }
    fn needs_answer(&self) -> bool {
        matches!(self, Self::PerItem)
    }
    fn check_answer(&self, answer: &str) -> std::result::Result<(), String> {
        match self {
            Self::Fixed(_) => Ok(()),
            Self::PerItem => Regex::new(answer)
                .map(drop)
                .map_err(|e| format!("the answer {answer:?} is not a regular expression: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(answer: &str) -> TaskItem {
        TaskItem {
            line: 1,
            prompt: serde_json::Value::String("q".into()),
            messages: vec![],
            answer: Some(answer.into()),
        }
    }

    #[test]
    fn exact_answer_ignores_case_punctuation_and_later_lines() {
        let it = item("operating system");
        for good in [
            "operating system",
            " Operating System.",
            "**operating system**\nBecause...",
        ] {
            assert_eq!(ExactAnswer.score(&it, good).unwrap(), 1.0, "{good:?}");
        }
        for bad in ["operating", "the operating system", "", "hardware"] {
            assert_eq!(ExactAnswer.score(&it, bad).unwrap(), 0.0, "{bad:?}");
        }
    }

    #[test]
    fn contains_answer_needs_whole_words() {
        let it = item("language");
        assert_eq!(
            ContainsAnswer
                .score(&it, "It is a programming Language.")
                .unwrap(),
            1.0
        );
        assert_eq!(ContainsAnswer.score(&it, "language").unwrap(), 1.0);
        assert_eq!(ContainsAnswer.score(&it, "languages galore").unwrap(), 0.0);
        assert_eq!(ContainsAnswer.score(&it, "metalanguage").unwrap(), 0.0);
        let two = item("operating system");
        assert_eq!(
            ContainsAnswer
                .score(&two, "an Operating System, really")
                .unwrap(),
            1.0
        );
    }

    #[test]
    fn final_number_compares_the_last_numbers() {
        let it = item("She pays 3 * 4 = 12 dollars.\n#### 1,200");
        assert_eq!(FinalNumber.score(&it, "so 1200").unwrap(), 1.0);
        assert_eq!(FinalNumber.score(&it, "1200 or 12").unwrap(), 0.0);
        assert_eq!(FinalNumber.score(&it, "no idea").unwrap(), 0.0);
        let no_answer = TaskItem { answer: None, ..it };
        assert!(FinalNumber.score(&no_answer, "1").is_err());
    }

    #[test]
    fn regex_checks_format_and_reports_a_bad_pattern() {
        let s = RegexScorer::new(r"^[a-z ]+$").unwrap();
        assert_eq!(s.score(&item("x"), "networking").unwrap(), 1.0);
        assert_eq!(s.score(&item("x"), "Networking!").unwrap(), 0.0);
        assert!(RegexScorer::new("(").is_err());
        assert!(!s.needs_answer());
    }

    #[test]
    fn per_item_regex_reads_each_answer_as_its_pattern() {
        let s = RegexScorer::PerItem;
        assert!(s.needs_answer());
        let no_commas = item("^[^,]*$");
        assert_eq!(s.score(&no_commas, "a language for it").unwrap(), 1.0);
        assert_eq!(s.score(&no_commas, "a language, for it").unwrap(), 0.0);
        let short = item(r"^\W*(\w+\W*){1,3}$");
        assert_eq!(s.score(&short, "one two three.").unwrap(), 1.0);
        assert_eq!(s.score(&short, "one two three four.").unwrap(), 0.0);
        let bad = TaskItem {
            line: 7,
            ..item("(")
        };
        let err = s.score(&bad, "x").unwrap_err().to_string();
        assert!(
            err.contains("line 7") && err.contains("not a regular expression"),
            "{err}"
        );
        // The same pattern is refused when the file is checked, before any generation.
        let items = [no_commas, bad];
        let err = check_answers(&s, &items, std::path::Path::new("t.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.jsonl") && err.contains('7') && err.contains("not a regular"),
            "{err}"
        );
        assert!(check_answers(&RegexScorer::new("x").unwrap(), &items, "t".as_ref()).is_ok());
    }
}
