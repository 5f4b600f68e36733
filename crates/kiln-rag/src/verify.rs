//! Citation verification: does a cited passage support the sentence that cites it?
//! Two signals, both cheap enough to run on every answer: lexical support (the share of the
//! sentence's content words found in the passage, after light stemming) and, with an
//! embedder, the best cosine between the sentence and one of the passage's sentences. A
//! number in the sentence that no cited passage contains is never supported: invented
//! figures are the commonest unsupported claim. The checks catch claims unrelated to their
//! source; they cannot see a negation or a swapped relation (an NLI model would).

use serde::Serialize;

use crate::embed::{cosine, Embedder};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Support {
    pub supported: bool,
    /// Share of the sentence's content words in the passages.
    pub overlap: f32,
    /// Best cosine against one of the passages' sentences (with an embedder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine: Option<f32>,
    /// Numbers of the sentence that no passage contains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_numbers: Vec<String>,
}

pub struct Verifier<'a> {
    pub embedder: Option<&'a Embedder>,
    /// Lexical overlap at or above which a sentence is supported.
    pub min_overlap: f32,
    /// Cosine at or above which a sentence is supported.
    pub min_cosine: f32,
    /// Vectors of the sentences embedded so far: an uncited sentence is checked against
    /// every source in turn, and the sources' sentences recur across an answer's sentences.
    vectors: std::sync::Mutex<std::collections::HashMap<String, Vec<f32>>>,
}

impl<'a> Verifier<'a> {
    pub fn new(embedder: Option<&'a Embedder>) -> Self {
        Self {
            embedder,
            min_overlap: 0.6,
            min_cosine: 0.7,
            vectors: Default::default(),
        }
    }

    /// The embedder's vectors of `texts`, each text embedded once per verifier.
    fn embed_once(&self, e: &Embedder, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut cache = self.vectors.lock().unwrap_or_else(|p| p.into_inner());
        let mut new: Vec<&str> = texts
            .iter()
            .map(String::as_str)
            .filter(|t| !cache.contains_key(*t))
            .collect();
        new.sort_unstable();
        new.dedup();
        for (t, v) in new.iter().zip(e.embed(&new, 16)?) {
            cache.insert(t.to_string(), v);
        }
        Ok(texts
            .iter()
            .map(|t| cache.get(t).cloned().unwrap_or_default())
            .collect())
    }

    /// Whether `passages` (together) support `sentence`.
    pub fn check(&self, sentence: &str, passages: &[&str]) -> Result<Support> {
        let words = content_words(sentence);
        let mut found = std::collections::HashSet::new();
        for p in passages {
            found.extend(content_words(p));
        }
        let overlap = if words.is_empty() {
            1.0
        } else {
            words.iter().filter(|w| found.contains(*w)).count() as f32 / words.len() as f32
        };
        let in_passages: Vec<String> = passages.iter().flat_map(|p| numbers(p)).collect();
        let missing_numbers: Vec<String> = numbers(sentence)
            .into_iter()
            .filter(|n| !in_passages.contains(n))
            .collect();
        let cosine = match self.embedder {
            Some(e) if !passages.is_empty() => {
                let mut texts = vec![sentence.to_string()];
                for p in passages {
                    texts.extend(split_sentences(p).into_iter().map(|s| s.text));
                }
                let v = self.embed_once(e, &texts)?;
                v[1..]
                    .iter()
                    .map(|p| cosine(&v[0], p))
                    .fold(None, |best: Option<f32>, c| {
                        Some(best.map_or(c, |b| b.max(c)))
                    })
            }
            _ => None,
        };
        let supported = missing_numbers.is_empty()
            && !passages.is_empty()
            && (overlap >= self.min_overlap || cosine.is_some_and(|c| c >= self.min_cosine));
        Ok(Support {
            supported,
            overlap,
            cosine,
            missing_numbers,
        })
    }
}

/// A sentence of a text and the citation numbers written in or right after it.
#[derive(Debug, Clone, PartialEq)]
pub struct CitedSentence {
    /// The sentence with its citation markers removed.
    pub text: String,
    pub citations: Vec<usize>,
}

/// Splits at `.`, `!` or `?` followed by whitespace (or the end), and at line breaks;
/// markers like `[1]` or `[1, 2]` are read off each sentence, and a marker standing alone
/// after a full stop ("... bread. [1]") belongs to the sentence before it.
pub fn split_sentences(text: &str) -> Vec<CitedSentence> {
    let mut out: Vec<CitedSentence> = vec![];
    let mut start = 0;
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let end_here = match b[i] {
            b'\n' => true,
            b'.' | b'!' | b'?' => b.get(i + 1).is_none_or(|c| c.is_ascii_whitespace()),
            _ => false,
        };
        if end_here {
            push_segment(&text[start..=i], &mut out);
            start = i + 1;
        }
        i += 1;
    }
    if start < text.len() {
        push_segment(&text[start..], &mut out);
    }
    out
}

fn push_segment(seg: &str, out: &mut Vec<CitedSentence>) {
    let (clean, cites) = take_citations(seg);
    let clean = clean.trim().to_string();
    // A segment without letters ("1." of a numbered list, a lone "[2]") is not a sentence.
    if clean.chars().any(char::is_alphabetic) {
        out.push(CitedSentence {
            text: clean,
            citations: cites,
        });
    } else if let Some(last) = out.last_mut() {
        last.citations.extend(cites);
    }
}

/// The text without `[n]` / `[n, m]` markers, and the numbers they held, in order.
fn take_citations(s: &str) -> (String, Vec<usize>) {
    let mut clean = String::with_capacity(s.len());
    let mut cites = vec![];
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let parsed = after.find(']').and_then(|close| {
            let inner = &after[..close];
            let nums: Option<Vec<usize>> = inner
                .split(',')
                .map(|n| n.trim().parse::<usize>().ok())
                .collect();
            nums.filter(|n| !n.is_empty()).map(|n| (n, close))
        });
        match parsed {
            Some((nums, close)) => {
                clean.push_str(rest[..open].trim_end());
                cites.extend(nums);
                rest = &after[close + 1..];
            }
            None => {
                clean.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    clean.push_str(rest);
    (clean, cites)
}

const STOPWORDS: &[&str] = &[
    "the",
    "and",
    "for",
    "are",
    "was",
    "were",
    "with",
    "that",
    "this",
    "from",
    "has",
    "have",
    "had",
    "its",
    "not",
    "but",
    "also",
    "can",
    "which",
    "who",
    "whom",
    "what",
    "when",
    "where",
    "how",
    "why",
    "been",
    "being",
    "into",
    "than",
    "then",
    "there",
    "their",
    "they",
    "them",
    "these",
    "those",
    "such",
    "any",
    "all",
    "each",
    "other",
    "some",
    "more",
    "most",
    "very",
    "will",
    "would",
    "could",
    "should",
    "may",
    "might",
    "does",
    "did",
    "yes",
    "our",
    "out",
    "about",
    "over",
    "only",
    "both",
    "one",
    "his",
    "her",
    "she",
    "him",
    "you",
    "your",
    "source",
    "sources",
    "passage",
    "according",
];

/// Lower-cased words of three or more letters (or any with a digit), stopwords out,
/// a plural or verb ending cut so "compilers" meets "compiler" and "designed" "design".
pub fn content_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 3 || w.chars().any(|c| c.is_ascii_digit()))
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect()
}

fn stem(w: &str) -> String {
    for suffix in ["ing", "ed", "es", "s"] {
        if let Some(s) = w.strip_suffix(suffix) {
            if s.chars().count() >= 4 {
                return s.to_string();
            }
        }
    }
    w.to_string()
}

/// Numbers written in digits ("1,024" and "1024" alike; a trailing ".0" kept as written).
fn numbers(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let inner_sep = (c == ',' || c == '.')
            && !cur.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if c.is_ascii_digit() {
            cur.push(c);
        } else if inner_sep {
            if c == '.' {
                cur.push(c);
            }
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSAGE: &str = "Python is a programming language designed by Guido van Rossum. \
                           Its first version was released in 1991.";

    #[test]
    fn sentences_carry_their_citations() {
        let s = split_sentences(
            "Python was designed by Guido van Rossum [1]. It appeared in 1991. [1, 2]\nSharks \
             are fish [3]",
        );
        let got: Vec<(&str, &[usize])> = s
            .iter()
            .map(|c| (c.text.as_str(), c.citations.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("Python was designed by Guido van Rossum.", &[1][..]),
                ("It appeared in 1991.", &[1, 2][..]),
                ("Sharks are fish", &[3][..]),
            ]
        );
        // A bracket that is not a citation stays in the text.
        assert_eq!(
            split_sentences("See [note] here.")[0].text,
            "See [note] here."
        );
        assert_eq!(split_sentences("Version 3.12 is out.").len(), 1);
        let listed = split_sentences("1. The answer is no. 2. It is yes [2].");
        let texts: Vec<&str> = listed.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["The answer is no.", "It is yes."]);
    }

    #[test]
    fn lexical_support_and_invented_numbers() {
        let v = Verifier::new(None);
        let ok = v
            .check("Python was designed by Guido van Rossum.", &[PASSAGE])
            .unwrap();
        assert!(ok.supported, "{ok:?}");
        let planted = v
            .check("Sharks are mammals that live in deserts.", &[PASSAGE])
            .unwrap();
        assert!(!planted.supported && planted.overlap < 0.2, "{planted:?}");
        let wrong_year = v
            .check("Python was first released in 1989.", &[PASSAGE])
            .unwrap();
        assert!(!wrong_year.supported);
        assert_eq!(wrong_year.missing_numbers, ["1989"]);
        assert!(
            !v.check("Python was designed by Guido.", &[])
                .unwrap()
                .supported
        );
    }

    #[test]
    fn numbers_and_words() {
        assert_eq!(
            numbers("In 1,024 cases (3.5%), not 7."),
            ["1024", "3.5", "7"]
        );
        assert_eq!(
            content_words("The compilers designed it"),
            ["compiler", "design"]
        );
    }
}
