//! Answers of generation tasks: extraction (the last number, for GSM8K's worked solutions;
//! or a regex's first group) and the comparisons, exact match after normalisation and
//! SQuAD's token-overlap F1.

use std::sync::OnceLock;

use regex::Regex;

fn number_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(-\s?)?[\d,]*\.?\d+").expect("number regex"))
}

/// The last number in `text` without thousands separators or a trailing point ("$1,234." ->
/// "1234"), as GSM8K's answer extraction takes it. A minus (also "- 10", as some gold
/// solutions write it) is the number's sign only when no number or bracket comes just
/// before it: "50 - 10" ends in 10.
pub fn last_number(text: &str) -> Option<String> {
    let m = number_re().find_iter(text).last()?;
    let before = text[..m.start()].trim_end().chars().last();
    let binary = before.is_some_and(|c| c.is_ascii_digit() || c == ')');
    let digits: String = m
        .as_str()
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let digits = digits.trim_end_matches('.');
    if digits.is_empty() {
        return None;
    }
    let negative = m.as_str().starts_with('-') && !binary;
    Some(format!("{}{digits}", if negative { "-" } else { "" }))
}

/// Two numbers as GSM8K compares them: equal as numbers when both parse ("18.0" == "18"),
/// else as text.
pub fn same_number(a: &str, b: &str) -> bool {
    let clean = |s: &str| {
        s.replace([',', '$'], "")
            .trim()
            .trim_end_matches('.')
            .to_string()
    };
    let (a, b) = (clean(a), clean(b));
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() < 1e-9 * (1.0 + y.abs()),
        _ => a == b,
    }
}

/// SQuAD's normalisation: lower case, no punctuation, no articles, single spaces.
pub fn normalize(text: &str) -> String {
    let lower: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() {
                c
            } else {
                ' '
            }
        })
        .collect();
    lower
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn exact_match(prediction: &str, gold: &str) -> bool {
    normalize(prediction) == normalize(gold)
}

/// Token-overlap F1 of the normalised texts (SQuAD's).
pub fn f1(prediction: &str, gold: &str) -> f64 {
    let (p, g) = (normalize(prediction), normalize(gold));
    let (p, g): (Vec<&str>, Vec<&str>) = (
        p.split_whitespace().collect(),
        g.split_whitespace().collect(),
    );
    if p.is_empty() || g.is_empty() {
        return f64::from(u8::from(p == g));
    }
    let mut counts: std::collections::HashMap<&str, i64> = Default::default();
    for w in &g {
        *counts.entry(w).or_default() += 1;
    }
    let mut common = 0;
    for w in &p {
        if let Some(c) = counts.get_mut(w) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / p.len() as f64;
    let recall = common as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_number_reads_worked_solutions() {
        assert_eq!(
            last_number("9 * 2 = $18 every day. So the answer is 18.").as_deref(),
            Some("18")
        );
        assert_eq!(
            last_number("It costs $1,234.50 in total.").as_deref(),
            Some("1234.50")
        );
        assert_eq!(last_number("a loss of -3 dollars").as_deref(), Some("-3"));
        assert_eq!(
            last_number("So the answer is - 10.").as_deref(),
            Some("-10")
        );
        assert_eq!(last_number("50 - 10").as_deref(), Some("10"));
        assert_eq!(last_number("(4 + 6)-2").as_deref(), Some("2"));
        assert_eq!(last_number("no digits here"), None);
        assert!(
            same_number("18.0", "18") && same_number("$1,000", "1000") && !same_number("17", "18")
        );
    }

    #[test]
    fn exact_match_and_f1_follow_squad() {
        assert!(exact_match("The Eiffel Tower!", "eiffel tower"));
        assert!(!exact_match("Eiffel", "eiffel tower"));
        assert!((f1("the Eiffel", "Eiffel Tower") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(f1("Paris", "London"), 0.0);
        assert_eq!(f1("", ""), 1.0);
    }
}
