//! What the message rules read in a customer's words: how frustrated a message sounds, and
//! whether two messages ask the same question. Pure functions over text, in English,
//! Portuguese, Spanish, French, German and Italian, after [`normalize_words`].

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind};

use crate::policy::normalize_words;

/// Words that carry frustration, each with its weight (0 to 1), in the six languages, written
/// as [`normalize_words`] leaves them (lower case, accents removed).
const FRUSTRATION: &[(&str, f64)] = &[
    // English
    ("useless", 0.8),
    ("ridiculous", 0.8),
    ("annoyed", 0.6),
    ("annoying", 0.6),
    ("frustrated", 0.8),
    ("frustrating", 0.8),
    ("angry", 0.8),
    ("fed up", 0.9),
    ("waste of time", 0.9),
    ("not helping", 0.7),
    ("doesn t help", 0.7),
    ("again", 0.2),
    ("still", 0.2),
    ("stupid", 0.9),
    ("hate", 0.8),
    // Portuguese
    ("inutil", 0.8),
    ("ridiculo", 0.8),
    ("irritado", 0.7),
    ("frustrado", 0.8),
    ("frustrante", 0.8),
    ("cansado", 0.5),
    ("perda de tempo", 0.9),
    ("nao ajuda", 0.7),
    ("de novo", 0.2),
    ("absurdo", 0.8),
    // Spanish
    ("enojado", 0.8),
    ("harto", 0.9),
    ("perdida de tiempo", 0.9),
    ("no ayuda", 0.7),
    ("otra vez", 0.2),
    // French
    ("inutile", 0.8),
    ("ridicule", 0.8),
    ("agace", 0.6),
    ("enerve", 0.7),
    ("frustre", 0.8),
    ("marre", 0.9),
    ("perte de temps", 0.9),
    ("ne sert a rien", 0.8),
    ("encore", 0.2),
    // German
    ("nutzlos", 0.8),
    ("lacherlich", 0.8),
    ("genervt", 0.7),
    ("frustriert", 0.8),
    ("verargert", 0.7),
    ("zeitverschwendung", 0.9),
    ("hilft nicht", 0.7),
    ("schon wieder", 0.4),
    // Italian ("inutile" is French's too)
    ("ridicolo", 0.8),
    ("arrabbiato", 0.8),
    ("frustrato", 0.8),
    ("stufo", 0.9),
    ("perdita di tempo", 0.9),
    ("non aiuta", 0.7),
    ("di nuovo", 0.2),
];

/// How frustrated a customer's message sounds, from 0 (calm) to 1 (furious): the strongest
/// frustration word or phrase it holds (whole words), raised a little by shouting (most
/// letters in capitals) and by repeated `!` or `?`.
///
/// ```
/// use handover_core::signals::frustration;
///
/// assert_eq!(frustration("What are your opening hours?"), 0.0);
/// assert!(frustration("This is USELESS!!!") > 0.8);
/// assert!(frustration("J'en ai marre, c'est une perte de temps") >= 0.9);
/// ```
pub fn frustration(text: &str) -> f64 {
    frustration_of_normalized(text, &normalize_words(text))
}

/// [`frustration`] of `text`, whose [`normalize_words`] is `words` (a conversation folds each
/// customer message's words once, for its fingerprint and its score).
pub(crate) fn frustration_of_normalized(text: &str, words: &str) -> f64 {
    let (automaton, weights) = frustration_phrases();
    let mut score: f64 = automaton
        .find_overlapping_iter(words)
        .map(|hit| weights[hit.pattern().as_usize()])
        .fold(0.0, f64::max);
    let (mut letters, mut capitals) = (0usize, 0usize);
    for c in text.chars() {
        // ASCII first: the Unicode tables only for the rest.
        let (letter, capital) = if c.is_ascii() {
            (c.is_ascii_alphabetic(), c.is_ascii_uppercase())
        } else {
            (c.is_alphabetic(), c.is_uppercase())
        };
        letters += usize::from(letter);
        capitals += usize::from(letter && capital);
    }
    if letters >= 8 && capitals * 10 >= letters * 7 {
        score += 0.2;
    }
    if text.contains("!!") || text.contains("??") || text.contains("?!") {
        score += 0.1;
    }
    score.min(1.0)
}

/// The frustration lexicon as one automaton, built once (one pass over a message finds every
/// phrase; each pattern has a space on each side, so it matches whole words).
fn frustration_phrases() -> &'static (AhoCorasick, Vec<f64>) {
    static PHRASES: OnceLock<(AhoCorasick, Vec<f64>)> = OnceLock::new();
    PHRASES.get_or_init(|| {
        let (patterns, weights): (Vec<String>, Vec<f64>) = FRUSTRATION
            .iter()
            .map(|(phrase, weight)| (format!(" {phrase} "), *weight))
            .unzip();
        // A DFA: the fastest search, and the lexicon is small enough to build one once.
        let automaton = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::DFA))
            .build(patterns)
            .expect("the lexicon is valid patterns");
        (automaton, weights)
    })
}

/// Words too common to tell two questions apart, in the six languages.
const STOPWORDS: &[&str] = &[
    "the", "and", "you", "your", "for", "are", "can", "what", "how", "this", "that", "with", "not",
    "que", "com", "uma", "para", "por", "nao", "voce", "los", "las", "una", "con", "del", "les",
    "des", "est", "une", "pour", "pas", "vous", "der", "die", "das", "und", "ist", "ich", "sie",
    "nicht", "mit", "ein", "eine", "che", "per", "non", "sono", "della",
];

/// [`STOPWORDS`] as a set, built once: a long message looks up every word.
fn stopwords() -> &'static std::collections::HashSet<&'static str> {
    static SET: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| STOPWORDS.iter().copied().collect())
}

/// A message's content words, for telling whether two messages ask the same thing: the
/// sorted hashes of its words after [`normalize_words`], without words shorter than three
/// letters or too common to tell questions apart. Conversations keep one per recent customer
/// message, so comparing a new message with them hashes nothing twice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint(Box<[u64]>);

impl Fingerprint {
    /// The fingerprint of `text`.
    pub fn of(text: &str) -> Fingerprint {
        Fingerprint::of_normalized(&normalize_words(text))
    }

    /// The fingerprint of a text whose [`normalize_words`] is `words`.
    pub(crate) fn of_normalized(words: &str) -> Fingerprint {
        let mut hashes: Vec<u64> = words
            .split_whitespace()
            // Every stopword is at most 5 bytes long: longer words skip the lookup.
            .filter(|word| {
                word.chars().nth(2).is_some() && (word.len() > 5 || !stopwords().contains(word))
            })
            .map(fnv1a)
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        Fingerprint(hashes.into_boxed_slice())
    }

    /// Whether the message had no content word.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Shared words over all words of the two messages (0 to 1); 0 when neither has a content
    /// word.
    pub fn similarity(&self, other: &Fingerprint) -> f64 {
        let (a, b) = (&self.0, &other.0);
        let (mut i, mut j, mut shared) = (0, 0, 0usize);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    shared += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        let union = a.len() + b.len() - shared;
        if union == 0 {
            return 0.0;
        }
        shared as f64 / union as f64
    }
}

/// FNV-1a, 64 bits: stable across builds and machines, so a replay compares the same way.
fn fnv1a(word: &str) -> u64 {
    word.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// How much two messages ask the same thing, from 0 to 1: the overlap of their content words
/// (shared words over all words, after [`normalize_words`], without words shorter than three
/// letters or too common to tell questions apart). Two messages without content words are 0.
///
/// ```
/// use handover_core::signals::similarity;
///
/// let a = "How do I cancel my subscription?";
/// let b = "how do i CANCEL my subscription???";
/// assert_eq!(similarity(a, b), 1.0);
/// assert!(similarity(a, "Where is my parcel?") < 0.2);
/// ```
pub fn similarity(a: &str, b: &str) -> f64 {
    Fingerprint::of(a).similarity(&Fingerprint::of(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stopword_is_short_enough_for_the_length_check() {
        // `Fingerprint::of_normalized` looks up only words of at most 5 bytes.
        for word in STOPWORDS {
            assert!(word.len() <= 5, "{word}");
            assert_eq!(normalize_words(word), format!(" {word} "), "{word}");
        }
    }

    #[test]
    fn frustration_is_recognised_in_each_language() {
        for text in [
            "This is useless, I'm fed up",
            "Isso é inútil, que perda de tempo",
            "Estoy harto, no ayuda nada",
            "J'en ai marre, ça ne sert à rien",
            "Das ist nutzlos, reine Zeitverschwendung",
            "Sono stufo, è una perdita di tempo",
        ] {
            assert!(frustration(text) >= 0.8, "{text}: {}", frustration(text));
        }
    }

    #[test]
    fn ordinary_questions_are_calm_in_each_language() {
        for text in [
            "What are your opening hours?",
            "Qual é o prazo de entrega?",
            "¿Cuánto cuesta el envío?",
            "Quels sont vos horaires ?",
            "Wie lange dauert der Versand?",
            "Quanto costa la spedizione?",
        ] {
            assert_eq!(frustration(text), 0.0, "{text}");
        }
    }

    #[test]
    fn shouting_and_repeated_marks_raise_the_score() {
        let calm = frustration("this is not helping");
        assert!(frustration("THIS IS NOT HELPING") > calm);
        assert!(frustration("this is not helping!!") > calm);
        assert!(frustration("THIS IS NOT HELPING!!!") <= 1.0);
    }

    #[test]
    fn frustration_words_match_whole_words_only() {
        // "hate" inside "whatever" or "chateau" does not count.
        assert_eq!(frustration("whatever you think"), 0.0);
        assert_eq!(frustration("chateau"), 0.0);
    }

    #[test]
    fn the_same_question_rephrased_lightly_is_similar() {
        let pairs = [
            (
                "How do I cancel my subscription?",
                "how can I cancel my subscription",
            ),
            (
                "Como cancelo minha assinatura?",
                "como CANCELO a minha assinatura??",
            ),
            ("Wie kündige ich mein Abo?", "wie kündige ich mein abo"),
        ];
        for (a, b) in pairs {
            assert!(similarity(a, b) >= 0.8, "{a} / {b}: {}", similarity(a, b));
        }
    }

    #[test]
    fn different_questions_are_not_similar() {
        assert!(similarity("How do I cancel my subscription?", "Where is my parcel?") < 0.2);
        assert_eq!(similarity("ok", "yes"), 0.0);
        assert_eq!(similarity("", ""), 0.0);
    }
}
