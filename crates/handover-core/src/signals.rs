//! What the message rules read in a customer's words: how frustrated a message sounds, and
//! whether two messages ask the same question. Pure functions over text, in English,
//! Portuguese, Spanish, French, German and Italian, after [`normalize_words`].

use std::collections::HashSet;

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
    let words = normalize_words(text);
    let mut score: f64 = 0.0;
    for (phrase, weight) in FRUSTRATION {
        if words.contains(&format!(" {phrase} ")) {
            score = score.max(*weight);
        }
    }
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let capitals = letters.iter().filter(|c| c.is_uppercase()).count();
    if letters.len() >= 8 && capitals * 10 >= letters.len() * 7 {
        score += 0.2;
    }
    if text.contains("!!") || text.contains("??") || text.contains("?!") {
        score += 0.1;
    }
    score.min(1.0)
}

/// Words too common to tell two questions apart, in the six languages.
const STOPWORDS: &[&str] = &[
    "the", "and", "you", "your", "for", "are", "can", "what", "how", "this", "that", "with", "not",
    "que", "com", "uma", "para", "por", "nao", "voce", "los", "las", "una", "con", "del", "les",
    "des", "est", "une", "pour", "pas", "vous", "der", "die", "das", "und", "ist", "ich", "sie",
    "nicht", "mit", "ein", "eine", "che", "per", "non", "sono", "della",
];

/// The content words of a message: normalised, at least three letters, no stopwords.
fn content_words(text: &str) -> HashSet<String> {
    normalize_words(text)
        .split_whitespace()
        .filter(|word| word.chars().count() >= 3 && !STOPWORDS.contains(word))
        .map(str::to_owned)
        .collect()
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
    let (a, b) = (content_words(a), content_words(b));
    let union = a.union(&b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(&b).count() as f64 / union as f64
}

#[cfg(test)]
mod tests {
    use super::*;

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
