//! Stop strings that may span token boundaries: text that could still turn into a stop
//! string is held back until it either does (generation stops) or cannot.

#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
        }
    }

    /// Feeds newly decoded text. Returns the text that is safe to emit and whether a stop
    /// string was reached (the stop string itself and what follows are never emitted).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        if let Some(pos) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            let out = self.pending[..pos].to_string();
            self.pending.clear();
            return (out, true);
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let hold = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.pending, s))
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - hold;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        (out, false)
    }

    /// Whatever is still held back once generation ends for another reason.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of `stop`, cut
/// at character boundaries.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = text.len().min(stop.len().saturating_sub(1));
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && stop.is_char_boundary(n)
                && stop.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_string_split_across_pushes_is_caught_and_not_emitted() {
        let mut m = StopMatcher::new(vec!["\nUser:".into()]);
        let mut out = String::new();
        for piece in ["Hello", " world", "\nUs", "er:", " more"] {
            let (t, stop) = m.push(piece);
            out.push_str(&t);
            if stop {
                break;
            }
        }
        assert_eq!(out, "Hello world");
    }

    #[test]
    fn held_text_is_released_when_it_stops_matching() {
        let mut m = StopMatcher::new(vec!["STOP".into()]);
        assert_eq!(m.push("abc ST"), ("abc ".to_string(), false));
        assert_eq!(m.push("AR"), ("STAR".to_string(), false));
        assert_eq!(m.push("x S"), ("x ".to_string(), false));
        assert_eq!(m.finish(), "S");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut m = StopMatcher::new(vec!["b".into(), "a".into()]);
        assert_eq!(m.push("xxabyy"), ("xx".to_string(), true));
    }

    #[test]
    fn multibyte_text_is_never_cut_mid_character() {
        let mut m = StopMatcher::new(vec!["é!".into()]);
        assert_eq!(m.push("caféé"), ("café".to_string(), false));
        assert_eq!(m.push("!"), (String::new(), true));
    }
}
