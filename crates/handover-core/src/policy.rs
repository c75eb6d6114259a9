//! The handoff policy: the manual's "when not to hand off to an AI agent", applied by the
//! library. A [`Policy`] reads each customer message and names the concerns it raises; the
//! concerns are recorded with the message, so replay never re-runs the policy. The rules that
//! act on them live in [`crate::conversation`]:
//!
//! - a conversation whose customer raised any concern is not handed to an AI agent
//!   ([`crate::Rejection::HandoffAgainstPolicy`]);
//! - a customer who asks for a human while an AI agent is active is escalated at once.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use serde::{Deserialize, Serialize};

/// Something in a customer's message that calls for a human, per the handoff guidance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Concern {
    /// The customer asked for a human ("talk to a human", "falar com um atendente", ...).
    HumanRequested,
    /// A dissatisfied customer: a complaint needs human empathy.
    Complaint,
    /// A negotiation: deal closings or agreements.
    Negotiation,
    /// A sensitive, delicate or urgent situation.
    Sensitive,
}

impl Concern {
    /// The snake_case name used in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Concern::HumanRequested => "human_requested",
            Concern::Complaint => "complaint",
            Concern::Negotiation => "negotiation",
            Concern::Sensitive => "sensitive",
        }
    }

    /// A phrase for rejection messages.
    pub fn describe(self) -> &'static str {
        match self {
            Concern::HumanRequested => "the customer asked for a human",
            Concern::Complaint => "the customer is dissatisfied (complaint)",
            Concern::Negotiation => "the conversation is a negotiation",
            Concern::Sensitive => "the situation is sensitive or urgent",
        }
    }
}

/// Classifies a customer's message. Implementations must be pure and deterministic: the same
/// text always gives the same concerns.
pub trait Policy: Send + Sync {
    /// The concerns `text` raises, without duplicates, in [`Concern`] order.
    fn assess(&self, text: &str) -> Vec<Concern>;
}

/// The default policy: plain phrases in English, Portuguese and Spanish, matched on whole
/// words after lower-casing and removing accents ("Quero falar com um ATENDENTE!" matches).
#[derive(Debug, Clone, Default)]
pub struct DefaultPolicy {
    _private: (),
}

const HUMAN_REQUESTED: &[&str] = &[
    // English
    "talk to a human",
    "speak to a human",
    "speak with a human",
    "talk with a human",
    "talk to a person",
    "speak to a person",
    "real person",
    "real human",
    "human agent",
    "human please",
    "agent please",
    "talk to an agent",
    "speak to an agent",
    "live agent",
    "talk to someone",
    "representative",
    "i want a human",
    "connect me to a human",
    // Portuguese
    "falar com um humano",
    "falar com humano",
    "falar com uma pessoa",
    "pessoa real",
    "atendente humano",
    "falar com um atendente",
    "falar com atendente",
    "quero um atendente",
    "atendente por favor",
    "quero falar com alguem",
    // Spanish
    "hablar con un humano",
    "hablar con una persona",
    "persona real",
    "agente humano",
    "hablar con un agente",
    "quiero un agente",
    "agente por favor",
    "hablar con alguien",
    "representante",
];

const COMPLAINT: &[&str] = &[
    "complaint",
    "complain",
    "unacceptable",
    "terrible",
    "awful",
    "worst",
    "furious",
    "disappointed",
    "ridiculous",
    "reclamacao",
    "reclamar",
    "pessimo",
    "absurdo",
    "decepcionado",
    "queja",
    "quejarme",
    "reclamo",
    "inaceptable",
    "horrible",
    "furioso",
];

const NEGOTIATION: &[&str] = &[
    "discount",
    "negotiate",
    "negotiation",
    "better price",
    "better deal",
    "counter offer",
    "counteroffer",
    "contract terms",
    "desconto",
    "negociar",
    "negociacao",
    "contraproposta",
    "descuento",
    "negociacion",
    "contraoferta",
];

const SENSITIVE: &[&str] = &[
    "lawyer",
    "legal action",
    "sue",
    "lawsuit",
    "fraud",
    "stolen",
    "emergency",
    "urgent",
    "harassment",
    "self harm",
    "passed away",
    "advogado",
    "processo judicial",
    "fraude",
    "roubado",
    "emergencia",
    "urgente",
    "assedio",
    "faleceu",
    "abogado",
    "demanda",
    "robado",
    "acoso",
    "fallecio",
];

/// Lower-cases, strips the accents common in Portuguese and Spanish, and turns every run of
/// non-alphanumeric characters into one space, with a space at each end, so a phrase matches
/// whole words only ("deal" does not match "ideal"): search for `" deal "`.
///
/// ```
/// use handover_core::policy::normalize_words;
/// assert_eq!(normalize_words("Quero falar com um ATENDENTE!"), " quero falar com um atendente ");
/// assert_eq!(normalize_words("¿Cuál es el horario?"), " cual es el horario ");
/// ```
pub fn normalize_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        };
        if c != ' ' || !out.ends_with(' ') {
            out.push(c);
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

/// Every phrase of every concern, in one automaton built once: one pass over a message finds
/// all of them. Each pattern is the phrase with a space on each side, so it matches whole words
/// of the normalized text; overlapping matches let two phrases share the space between them.
fn phrases() -> &'static (AhoCorasick, Vec<Concern>) {
    static PHRASES: OnceLock<(AhoCorasick, Vec<Concern>)> = OnceLock::new();
    PHRASES.get_or_init(|| {
        let lists = [
            (Concern::HumanRequested, HUMAN_REQUESTED),
            (Concern::Complaint, COMPLAINT),
            (Concern::Negotiation, NEGOTIATION),
            (Concern::Sensitive, SENSITIVE),
        ];
        let (patterns, concerns): (Vec<String>, Vec<Concern>) = lists
            .iter()
            .flat_map(|(concern, phrases)| phrases.iter().map(|p| (format!(" {p} "), *concern)))
            .unzip();
        let automaton = AhoCorasick::new(patterns).expect("the phrase lists are valid patterns");
        (automaton, concerns)
    })
}

impl Policy for DefaultPolicy {
    fn assess(&self, text: &str) -> Vec<Concern> {
        let normalized = normalize_words(text);
        let (automaton, concerns) = phrases();
        let mut found = Vec::new();
        for hit in automaton.find_overlapping_iter(&normalized) {
            let concern = concerns[hit.pattern().as_usize()];
            if !found.contains(&concern) {
                found.push(concern);
            }
        }
        found.sort_unstable();
        found
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::Strategy;

    use super::*;

    fn assess(text: &str) -> Vec<Concern> {
        DefaultPolicy::default().assess(text)
    }

    #[test]
    fn recognises_requests_for_a_human_in_three_languages() {
        for text in [
            "Can I talk to a human?",
            "I need a REAL PERSON now",
            "agent please",
            "Quero falar com um atendente",
            "pessoa real, por favor",
            "¿Puedo hablar con una persona?",
            "Agente, por favor!",
        ] {
            assert!(
                assess(text).contains(&Concern::HumanRequested),
                "{text:?} was not recognised"
            );
        }
    }

    #[test]
    fn ordinary_questions_raise_no_concern() {
        for text in [
            "What are your business hours?",
            "How much is the pro plan?",
            "Is this the ideal plan for a team of 5?",
            "Qual é o preço do plano básico?",
            "¿Cuál es el horario de atención?",
        ] {
            assert_eq!(assess(text), vec![], "{text:?}");
        }
    }

    #[test]
    fn recognises_complaints_negotiations_and_sensitive_matters() {
        assert_eq!(
            assess("This is unacceptable, I want to file a complaint"),
            vec![Concern::Complaint]
        );
        assert_eq!(
            assess("Can we negotiate a discount on the contract?"),
            vec![Concern::Negotiation]
        );
        assert_eq!(
            assess("My card was stolen, urgent!"),
            vec![Concern::Sensitive]
        );
        assert_eq!(
            assess("Péssimo serviço, quero falar com um humano"),
            vec![Concern::HumanRequested, Concern::Complaint]
        );
    }

    /// The plain definition the automaton must agree with: a phrase matches when it appears
    /// in the normalized text with a space on each side.
    fn reference(text: &str) -> Vec<Concern> {
        let normalized = normalize_words(text);
        let mentions = |phrases: &[&str]| {
            phrases
                .iter()
                .any(|phrase| normalized.contains(&format!(" {phrase} ")))
        };
        [
            (Concern::HumanRequested, HUMAN_REQUESTED),
            (Concern::Complaint, COMPLAINT),
            (Concern::Negotiation, NEGOTIATION),
            (Concern::Sensitive, SENSITIVE),
        ]
        .into_iter()
        .filter(|(_, phrases)| mentions(phrases))
        .map(|(concern, _)| concern)
        .collect()
    }

    proptest::proptest! {
        #[test]
        fn the_automaton_agrees_with_the_plain_definition(
            words in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(
                        HUMAN_REQUESTED.iter().chain(COMPLAINT).chain(NEGOTIATION).chain(SENSITIVE)
                            .flat_map(|phrase| phrase.split(' '))
                            .collect::<Vec<_>>()
                    ).prop_map(str::to_owned),
                    "[a-zA-Záçñ!?,. ]{1,8}",
                ],
                0..12,
            )
        ) {
            let text = words.join(" ");
            proptest::prop_assert_eq!(assess(&text), reference(&text), "{:?}", text);
        }
    }
}
