//! The handoff policy: the manual's "when not to hand off to an AI agent", applied by the
//! library. A [`Policy`] reads each customer message and names the concerns it raises; the
//! concerns are recorded with the message, so replay never re-runs the policy. The rules that
//! act on them live in [`crate::conversation`]:
//!
//! - a conversation whose customer raised any concern is not handed to an AI agent
//!   ([`crate::Rejection::HandoffAgainstPolicy`]);
//! - a customer who asks for a human while an AI agent is active is escalated at once.

use serde::{Deserialize, Serialize};

/// Something in a customer's message that calls for a human, per the handoff guidance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

fn mentions(normalized: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|phrase| {
        let bytes = normalized.as_bytes();
        normalized.match_indices(phrase).any(|(at, _)| {
            bytes.get(at.wrapping_sub(1)) == Some(&b' ')
                && bytes.get(at + phrase.len()) == Some(&b' ')
        })
    })
}

impl Policy for DefaultPolicy {
    fn assess(&self, text: &str) -> Vec<Concern> {
        let normalized = normalize_words(text);
        [
            (Concern::HumanRequested, HUMAN_REQUESTED),
            (Concern::Complaint, COMPLAINT),
            (Concern::Negotiation, NEGOTIATION),
            (Concern::Sensitive, SENSITIVE),
        ]
        .into_iter()
        .filter(|(_, phrases)| mentions(&normalized, phrases))
        .map(|(concern, _)| concern)
        .collect()
    }
}

#[cfg(test)]
mod tests {
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
}
