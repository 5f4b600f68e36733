//! Documents to chunks, the unit that is indexed and retrieved. Three chunkers:
//!
//! - `tokens`: windows of `size` tokens, each starting `size - overlap` after the last;
//! - `sentences`: whole sentences packed up to `size` tokens, never across a paragraph
//!   break when the paragraph so far fills half a chunk (a sentence longer than a chunk is
//!   cut by tokens);
//! - `markdown`: sections under each heading, each packed as `sentences` does, the
//!   section's heading path (`# A > ## B`) kept with every chunk of it.
//!
//! Tokens are what `TokenSpans` says: the embedder's own tokenizer when there is one (so a
//! chunk fits its window), else words and punctuation. A chunk is a byte span of its
//! document's text; its id is `doc_id#n`, the same each time the same text is chunked with
//! the same settings.

use std::ops::Range;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::document::Document;

/// Token byte spans of a text.
pub trait TokenSpans {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>>;
}

/// Words and single punctuation marks.
pub struct WordTokens;

impl TokenSpans for WordTokens {
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        static WORD: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
        let re = WORD.get_or_init(|| Regex::new(r"\w+|[^\w\s]").expect("a valid regex"));
        re.find_iter(text).map(|m| m.range()).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Chunker {
    Tokens { size: usize, overlap: usize },
    Sentences { size: usize },
    Markdown { size: usize },
}

impl Default for Chunker {
    fn default() -> Self {
        Chunker::Sentences { size: 200 }
    }
}

impl Chunker {
    /// Parses `tokens:SIZE:OVERLAP`, `sentences:SIZE` or `markdown:SIZE` (sizes optional).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or_default();
        let num = |p: Option<&str>, default: usize| -> Result<usize, String> {
            p.map_or(Ok(default), |v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0 || default == 0)
                    .ok_or_else(|| format!("'{v}' in chunker '{s}' is not a usable number"))
            })
        };
        let c = match kind {
            "tokens" => {
                let size = num(parts.next(), 200)?;
                let overlap = num(parts.next(), 0)?;
                if overlap >= size {
                    return Err(format!("chunker '{s}': overlap must be below the size"));
                }
                Chunker::Tokens { size, overlap }
            }
            "sentences" => Chunker::Sentences {
                size: num(parts.next(), 200)?,
            },
            "markdown" => Chunker::Markdown {
                size: num(parts.next(), 200)?,
            },
            _ => {
                return Err(format!(
                    "unknown chunker '{s}'; expected tokens:SIZE:OVERLAP, sentences:SIZE or \
                     markdown:SIZE"
                ))
            }
        };
        if parts.next().is_some() {
            return Err(format!("chunker '{s}' has too many fields"));
        }
        Ok(c)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub doc_id: String,
    pub chunk_id: String,
    /// Byte span in the document's text.
    pub start: usize,
    pub end: usize,
    /// The span's text, after the heading path for Markdown sections.
    pub text: String,
}

/// The document's chunks, in order.
pub fn chunk_document(doc: &Document, chunker: Chunker, tok: &dyn TokenSpans) -> Vec<Chunk> {
    let spans: Vec<(Range<usize>, String)> = match chunker {
        Chunker::Tokens { size, overlap } => {
            token_windows(&doc.text, 0..doc.text.len(), size, overlap, tok)
                .into_iter()
                .map(|r| (r, String::new()))
                .collect()
        }
        Chunker::Sentences { size } => pack_sentences(&doc.text, 0..doc.text.len(), size, tok)
            .into_iter()
            .map(|r| (r, String::new()))
            .collect(),
        Chunker::Markdown { size } => markdown_sections(&doc.text)
            .into_iter()
            .flat_map(|(path, r)| {
                pack_sentences(&doc.text, r, size, tok)
                    .into_iter()
                    .map(move |c| (c, path.clone()))
            })
            .collect(),
    };
    spans
        .into_iter()
        .filter(|(r, _)| !doc.text[r.clone()].trim().is_empty())
        .enumerate()
        .map(|(n, (r, path))| {
            let body = &doc.text[r.clone()];
            Chunk {
                doc_id: doc.id.clone(),
                chunk_id: format!("{}#{n}", doc.id),
                start: r.start,
                end: r.end,
                text: if path.is_empty() || body.trim_start().starts_with('#') {
                    body.to_string()
                } else {
                    format!("{path}\n{body}")
                },
            }
        })
        .collect()
}

/// Windows of `size` tokens of `text[range]`, `size - overlap` apart.
fn token_windows(
    text: &str,
    range: Range<usize>,
    size: usize,
    overlap: usize,
    tok: &dyn TokenSpans,
) -> Vec<Range<usize>> {
    let spans: Vec<Range<usize>> = tok
        .token_spans(&text[range.clone()])
        .into_iter()
        .map(|r| r.start + range.start..r.end + range.start)
        .collect();
    let size = size.max(1);
    let step = size.saturating_sub(overlap).max(1);
    let mut out = vec![];
    let mut i = 0;
    while i < spans.len() {
        let j = (i + size).min(spans.len());
        out.push(spans[i].start..spans[j - 1].end);
        if j == spans.len() {
            break;
        }
        i += step;
    }
    out
}

/// Sentence spans (end after the terminator and its trailing space) and whether each ends
/// a paragraph.
fn sentences(text: &str, range: Range<usize>) -> Vec<(Range<usize>, bool)> {
    static END: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = END.get_or_init(|| Regex::new(r#"[.!?]["')\]]*\s+|\n\s*\n"#).expect("a valid regex"));
    let mut out = vec![];
    let mut start = range.start;
    for m in re.find_iter(&text[range.clone()]) {
        let end = range.start + m.end();
        if end > start {
            let paragraph = m.as_str().matches('\n').count() >= 2;
            out.push((start..end, paragraph));
            start = end;
        }
    }
    if start < range.end {
        out.push((start..range.end, true));
    }
    out
}

/// Whole sentences packed up to `size` tokens.
fn pack_sentences(
    text: &str,
    range: Range<usize>,
    size: usize,
    tok: &dyn TokenSpans,
) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = vec![];
    let mut cur: Option<Range<usize>> = None;
    let mut cur_tokens = 0;
    let mut cur_paragraph_end = false;
    for (s, paragraph) in sentences(text, range) {
        let n = tok.token_spans(&text[s.clone()]).len();
        if n > size {
            // A sentence longer than a chunk: flush, then cut it by tokens.
            out.extend(cur.take());
            cur_tokens = 0;
            out.extend(token_windows(text, s, size, 0, tok));
            continue;
        }
        let full = cur_tokens + n > size;
        let paragraph_break = cur_paragraph_end && cur_tokens * 2 >= size;
        if cur.is_some() && (full || paragraph_break) {
            out.extend(cur.take());
            cur_tokens = 0;
        }
        cur = Some(cur.map_or(s.clone(), |c| c.start..s.end));
        cur_tokens += n;
        cur_paragraph_end = paragraph;
    }
    out.extend(cur);
    out
}

/// (heading path, section span) for each Markdown section; text before the first heading
/// is a section with an empty path. Headings inside fenced code blocks do not count.
fn markdown_sections(text: &str) -> Vec<(String, Range<usize>)> {
    let mut out = vec![];
    let mut path: Vec<(usize, String)> = vec![];
    let mut start = 0;
    let mut current = String::new();
    let mut offset = 0;
    let mut fenced = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
        }
        let level = trimmed.chars().take_while(|&c| c == '#').count();
        let is_heading = !fenced && (1..=6).contains(&level) && trimmed[level..].starts_with(' ');
        if is_heading {
            if offset > start {
                out.push((current.clone(), start..offset));
            }
            path.retain(|(l, _)| *l < level);
            path.push((level, trimmed.to_string()));
            current = path
                .iter()
                .map(|(_, h)| h.as_str())
                .collect::<Vec<_>>()
                .join(" > ");
            start = offset;
        }
        offset += line.len();
    }
    if offset > start {
        out.push((current, start..offset));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        Document {
            id: "d".into(),
            title: "t".into(),
            source: "x".into(),
            offset: 0,
            text: text.into(),
            meta: Default::default(),
        }
    }

    #[test]
    fn token_windows_overlap_and_cover_the_text() {
        let d = doc("a b c d e f g");
        let c = chunk_document(
            &d,
            Chunker::Tokens {
                size: 3,
                overlap: 1,
            },
            &WordTokens,
        );
        let texts: Vec<&str> = c.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["a b c", "c d e", "e f g"]);
        assert_eq!(c[1].chunk_id, "d#1");
        assert_eq!(&d.text[c[2].start..c[2].end], "e f g");
    }

    #[test]
    fn sentences_are_packed_whole_and_long_ones_cut() {
        let d = doc("One two. Three four five. Six.\n\nSeven eight nine ten eleven twelve.");
        let c = chunk_document(&d, Chunker::Sentences { size: 7 }, &WordTokens);
        let texts: Vec<&str> = c.iter().map(|c| c.text.trim()).collect();
        // "One two." (3 tokens) + "Three four five." (4) fill 7; "Six." ends the paragraph;
        // the last sentence (7 tokens) fits exactly.
        assert_eq!(
            texts,
            [
                "One two. Three four five.",
                "Six.",
                "Seven eight nine ten eleven twelve."
            ]
        );
        let c = chunk_document(&d, Chunker::Sentences { size: 4 }, &WordTokens);
        assert!(c.iter().all(|c| WordTokens.token_spans(&c.text).len() <= 4));
    }

    #[test]
    fn markdown_chunks_carry_their_heading_path() {
        let d =
            doc("intro text\n# A\nalpha.\n## B\nbeta.\n```\n# not a heading\n```\n# C\ngamma.\n");
        let c = chunk_document(&d, Chunker::Markdown { size: 50 }, &WordTokens);
        let texts: Vec<&str> = c.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts[0], "intro text\n");
        assert_eq!(texts[1], "# A\nalpha.\n");
        assert!(texts[2].starts_with("## B\nbeta.") && texts[2].contains("# not a heading"));
        assert_eq!(texts[3], "# C\ngamma.\n");
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn chunker_specs_parse_and_bad_ones_explain() {
        assert_eq!(
            Chunker::parse("tokens:128:32"),
            Ok(Chunker::Tokens {
                size: 128,
                overlap: 32
            })
        );
        assert_eq!(
            Chunker::parse("markdown"),
            Ok(Chunker::Markdown { size: 200 })
        );
        assert!(Chunker::parse("tokens:10:10")
            .unwrap_err()
            .contains("overlap"));
        assert!(Chunker::parse("words:3")
            .unwrap_err()
            .contains("unknown chunker"));
    }
}
