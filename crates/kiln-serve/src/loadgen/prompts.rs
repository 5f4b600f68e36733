//! Synthetic prompts of about P tokens. Each word below is one token, with its leading
//! space, in the common BPE vocabularies (GPT-2, Llama 2/3, SmolLM2, Qwen2), so a prompt of
//! P words is about P tokens without shipping a tokenizer; the server's `usage` reports the
//! exact count.

/// Common lowercase English words that BPE tokenizers keep whole.
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "with", "as", "by", "at", "from",
    "that", "this", "it", "he", "she", "they", "we", "you", "his", "her", "their", "our", "my",
    "be", "are", "were", "been", "has", "have", "had", "do", "did", "will", "would", "can",
    "could", "should", "may", "might", "must", "not", "no", "but", "or", "if", "then", "so",
    "when", "where", "who", "what", "which", "how", "why", "all", "any", "some", "many", "more",
    "most", "other", "new", "old", "good", "great", "small", "large", "long", "little", "high",
    "low", "first", "last", "next", "same", "own", "only", "also", "just", "very", "well", "still",
    "even", "back", "again", "never", "always", "often", "time", "year", "day", "way", "man",
    "world", "life", "work", "part", "place", "case", "week", "point", "home", "water", "room",
    "house", "city", "book", "school", "story", "game", "word", "name", "line", "end", "side",
    "head", "hand", "eye", "face", "door", "car", "road", "tree", "river", "light", "night",
    "morning", "food", "money", "music", "paper", "table", "window", "garden", "friend", "family",
    "father", "mother", "child", "people", "group", "state", "market", "power", "war", "art",
    "song", "make", "take", "give", "find", "tell", "ask", "use", "feel", "try", "leave", "call",
    "keep", "turn", "start", "show", "hear", "play", "run", "move", "live", "write", "read", "sit",
    "stand", "lose", "pay", "meet", "learn", "change", "lead", "watch", "follow", "stop", "speak",
    "grow", "open", "walk", "win", "offer", "love", "wait", "serve", "die", "send", "build",
    "stay", "fall", "cut", "reach", "kill", "rise",
];

/// A small, seedable generator (splitmix64): prompts must be reproducible from `--seed`
/// and need no statistical quality.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn word(&mut self) -> &'static str {
        WORDS[(self.next() % WORDS.len() as u64) as usize]
    }
}

/// Prompts of `prompt_tokens` words; the first `shared_prefix_tokens` words are the same for
/// every index of one seed, the rest differ per index.
#[derive(Debug, Clone)]
pub struct PromptSet {
    prefix: String,
    suffix_tokens: usize,
    seed: u64,
}

impl PromptSet {
    /// `shared_prefix_tokens` must be below `prompt_tokens` (checked by the caller's config),
    /// so every prompt keeps at least one unique word.
    pub fn new(prompt_tokens: usize, shared_prefix_tokens: usize, seed: u64) -> PromptSet {
        let shared = shared_prefix_tokens.min(prompt_tokens);
        // The prefix stream is seeded apart from every per-index stream.
        let mut rng = SplitMix(seed ^ 0x5EED_F00D_CAFE_BEEF);
        let prefix: Vec<&str> = (0..shared).map(|_| rng.word()).collect();
        PromptSet {
            prefix: prefix.join(" "),
            suffix_tokens: prompt_tokens - shared,
            seed,
        }
    }

    /// The prompt for request `index`. Its unique part opens with words that encode `index`
    /// (distinct for the first |WORDS|² indices), so no two prompts of a run share more than
    /// the intended prefix and a prefix cache cannot inflate the numbers.
    pub fn prompt(&self, index: u64) -> String {
        let n = WORDS.len() as u64;
        let mut rng = SplitMix(
            self.seed
                .wrapping_add(index.wrapping_mul(0xA24B_AED4_963E_E407)),
        );
        let mut words: Vec<&str> = Vec::with_capacity(self.suffix_tokens);
        let tag = [
            WORDS[(index % n) as usize],
            WORDS[((index / n) % n) as usize],
        ];
        words.extend(tag.iter().take(self.suffix_tokens));
        while words.len() < self.suffix_tokens {
            words.push(rng.word());
        }
        match (self.prefix.is_empty(), words.is_empty()) {
            (true, _) => words.join(" "),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{} {}", self.prefix, words.join(" ")),
        }
    }

    /// The shared prefix (empty without `--shared-prefix-tokens`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn word_counts_match_the_token_budget() {
        let p = PromptSet::new(128, 0, 7);
        for i in 0..20 {
            assert_eq!(p.prompt(i).split(' ').count(), 128);
        }
        let p = PromptSet::new(1100, 1000, 7);
        assert_eq!(p.prompt(3).split(' ').count(), 1100);
        assert_eq!(p.prefix().split(' ').count(), 1000);
    }

    #[test]
    fn prompts_differ_without_a_shared_prefix() {
        let p = PromptSet::new(64, 0, 1);
        let all: HashSet<String> = (0..2000).map(|i| p.prompt(i)).collect();
        assert_eq!(all.len(), 2000);
        // They differ from the first word on for consecutive indices, so a prefix cache
        // finds nothing to reuse.
        let first = |s: &str| s.split(' ').next().unwrap().to_string();
        assert_ne!(first(&p.prompt(0)), first(&p.prompt(1)));
    }

    #[test]
    fn shared_prefix_is_shared_and_suffixes_differ() {
        let p = PromptSet::new(120, 100, 9);
        let prompts: Vec<String> = (0..50).map(|i| p.prompt(i)).collect();
        let suffixes: HashSet<&str> = prompts
            .iter()
            .map(|s| {
                assert!(s.starts_with(p.prefix()));
                &s[p.prefix().len()..]
            })
            .collect();
        assert_eq!(suffixes.len(), 50);
        for s in &suffixes {
            assert_eq!(s.split_whitespace().count(), 20);
        }
    }

    #[test]
    fn seeds_give_different_prefixes_and_the_same_seed_reproduces() {
        let a = PromptSet::new(50, 40, 1);
        let b = PromptSet::new(50, 40, 2);
        assert_ne!(a.prefix(), b.prefix());
        assert_eq!(a.prompt(5), PromptSet::new(50, 40, 1).prompt(5));
    }

    #[test]
    fn every_word_is_a_single_lowercase_ascii_word() {
        for w in WORDS {
            assert!(
                !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()),
                "{w}"
            );
        }
    }
}
