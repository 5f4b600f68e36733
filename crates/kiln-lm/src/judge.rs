//! LLM-as-judge, in the two forms of MT-Bench (Zheng et al., 2023): single-answer grading
//! (a rating from 1 to 10 against a rubric, with an optional reference answer) and pairwise
//! comparison (which of two answers is better, or a tie), asked in both orders so that a
//! judge's preference for a position cancels out: an answer wins only when it wins in both
//! orders, and a split decision is a tie.

use serde::{Deserialize, Serialize};

/// The default rubric of single-answer grading.
pub const DEFAULT_RUBRIC: &str = "Rate how well the response answers the question: its \
correctness, helpfulness and completeness. 1 is useless or wrong, 10 is correct and complete.";

/// A judge's answer in one pairwise order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preference {
    A,
    B,
    Tie,
}

impl Preference {
    /// The label written in a task file ("a", "b", "tie"; "A", "B" and "C" as MT-Bench).
    pub fn parse_label(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "a" | "model_a" => Some(Self::A),
            "b" | "model_b" => Some(Self::B),
            "tie" | "c" => Some(Self::Tie),
            _ => None,
        }
    }

    /// The same preference with the two answers' places exchanged.
    pub fn swapped(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
            Self::Tie => Self::Tie,
        }
    }
}

/// The prompt that asks for a 1-10 rating.
pub fn single_prompt(
    rubric: &str,
    question: &str,
    answer: &str,
    reference: Option<&str>,
) -> String {
    let reference = reference
        .map(|r| format!("[Reference answer]\n{r}\n\n"))
        .unwrap_or_default();
    format!(
        "Please act as an impartial judge and evaluate the response to the question below. \
         {rubric} Give a short explanation, then the rating in the form \"Rating: [[5]]\".\n\n\
         [Question]\n{question}\n\n{reference}[Response]\n{answer}\n"
    )
}

/// The prompt that asks which of two answers is better.
pub fn pairwise_prompt(question: &str, first: &str, second: &str) -> String {
    format!(
        "Please act as an impartial judge and compare the two responses to the question \
         below. Judge which one answers it better: its correctness, helpfulness and \
         completeness; the order of the responses and their length must not matter. Give a \
         short explanation, then your verdict: \"[[A]]\" if response A is better, \"[[B]]\" \
         if response B is better, \"[[C]]\" for a tie.\n\n[Question]\n{question}\n\n\
         [Response A]\n{first}\n\n[Response B]\n{second}\n"
    )
}

/// The rating in a judge's reply: the last `[[n]]`, else the first whole number 1-10.
pub fn parse_rating(reply: &str) -> Option<u8> {
    let bracketed = reply
        .match_indices("[[")
        .filter_map(|(i, _)| {
            let rest = &reply[i + 2..];
            let end = rest.find("]]")?;
            rest[..end].trim().parse::<f64>().ok()
        })
        .last();
    let rating = bracketed.or_else(|| {
        reply
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .find_map(|s| s.parse::<f64>().ok().filter(|r| (1.0..=10.0).contains(r)))
    })?;
    (1.0..=10.0).contains(&rating).then(|| rating.round() as u8)
}

/// The verdict in a judge's reply: the last of `[[A]]`, `[[B]]`, `[[C]]`.
pub fn parse_preference(reply: &str) -> Option<Preference> {
    ["[[A]]", "[[B]]", "[[C]]"]
        .iter()
        .zip([Preference::A, Preference::B, Preference::Tie])
        .filter_map(|(tag, p)| reply.rfind(tag).map(|at| (at, p)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, p)| p)
}

/// Both orders combined: `first` judged A then B, `second` judged B then A (so its "A" is
/// answer B). An answer wins when it wins in both orders (or wins one and ties the other);
/// a split decision is a tie.
pub fn combine(first: Preference, second: Preference) -> Preference {
    let second = second.swapped();
    match (first, second) {
        (a, b) if a == b => a,
        (Preference::Tie, x) | (x, Preference::Tie) => x,
        _ => Preference::Tie,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Preference::*;

    #[test]
    fn ratings_prefer_the_bracketed_form() {
        assert_eq!(
            parse_rating("The answer is fine, 3 facts.\nRating: [[8]]"),
            Some(8)
        );
        assert_eq!(parse_rating("7"), Some(7));
        assert_eq!(parse_rating("Rating: [[7.5]]"), Some(8));
        assert_eq!(parse_rating("I'd say 11 or [[12]]"), None);
        assert_eq!(parse_rating("no idea"), None);
    }

    #[test]
    fn preferences_take_the_last_verdict() {
        assert_eq!(parse_preference("[[A]] hmm, no: [[B]]"), Some(B));
        assert_eq!(parse_preference("It's a tie. [[C]]"), Some(Tie));
        assert_eq!(parse_preference("A is better"), None);
    }

    #[test]
    fn a_position_biased_judge_yields_ties() {
        // Always "the first one": A in the first order, A (= answer B) in the second.
        assert_eq!(combine(A, A), Tie);
        assert_eq!(combine(B, B), Tie);
    }

    #[test]
    fn a_consistent_judge_keeps_its_verdict() {
        assert_eq!(combine(A, B), A);
        assert_eq!(combine(B, A), B);
        assert_eq!(combine(Tie, Tie), Tie);
        assert_eq!(combine(A, Tie), A);
        assert_eq!(combine(Tie, A), B);
    }
}
