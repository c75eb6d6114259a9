//! The handoff policy: the manual's "when not to hand off to an AI agent", applied by the
//! library. A [`Policy`] reads each customer message and names the concerns it raises; the
//! concerns are recorded with the message, so replay never re-runs the lexicon. What the
//! concerns lead to is decided by the policy's [`Rules`] (named, configurable, versioned):
//! with the default rules, a concern blocks a handoff to AI for a while, and a customer who
//! asks for a person, or complains, while an AI agent is active is escalated at once.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::rules::Rules;

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

    /// [`Policy::assess`] of a customer's message the conversation has already read with the
    /// built-in lexicons (`reading` is [`Reading::of`](crate::signals::Reading::of) `text`).
    /// Default: assesses `text`. The built-in policies take the lexicon's concerns from
    /// `reading`, so the message is not scanned twice.
    fn assess_read(&self, text: &str, reading: &crate::signals::Reading) -> Vec<Concern> {
        let _ = reading;
        self.assess(text)
    }

    /// The escalation rules it applies at a handoff, on a customer's message while an AI
    /// agent is active, on an AI's "could not answer" and before a skill. Default: the default
    /// policy ([`Rules::default_rules`]).
    fn rules(&self) -> &Rules {
        Rules::default_rules()
    }

    /// How frustrated a customer's message sounds, from 0 (calm) to 1 (furious), for the
    /// `frustration` rule. Must be pure and deterministic. Default: the built-in lexicon in six
    /// languages ([`crate::signals::frustration`]).
    fn frustration(&self, text: &str) -> f64 {
        crate::signals::frustration(text)
    }

    /// [`Policy::frustration`] of a recent message the conversation keeps. Default: scores its
    /// text. A policy whose `frustration` is the built-in lexicon returns the score the
    /// conversation folded with the message
    /// ([`RecentMessage::lexicon_frustration`](crate::conversation::RecentMessage::lexicon_frustration)),
    /// so the `frustration` rule does not score past messages again on every new one.
    fn frustration_of(&self, message: &crate::conversation::RecentMessage) -> f64 {
        self.frustration(message.text.as_str())
    }
}

impl Policy for Rules {
    /// The built-in lexicon's concerns ([`DefaultPolicy`]).
    fn assess(&self, text: &str) -> Vec<Concern> {
        DefaultPolicy::default().assess(text)
    }

    fn assess_read(&self, text: &str, reading: &crate::signals::Reading) -> Vec<Concern> {
        DefaultPolicy::default().assess_read(text, reading)
    }

    fn rules(&self) -> &Rules {
        self
    }

    fn frustration_of(&self, message: &crate::conversation::RecentMessage) -> f64 {
        message.lexicon_frustration()
    }
}

/// The default policy: plain phrases in English, Portuguese, Spanish, French, German and
/// Italian, matched on whole words after lower-casing and removing accents ("Quero falar com um
/// ATENDENTE!", "Je veux parler à quelqu’un", "Ich möchte mit einem Menschen sprechen" match).
///
/// A request for a human is recognised from phrases of several words ("parler à un conseiller",
/// "mit einem Mitarbeiter sprechen", "parlare con un operatore"), not from words that also occur
/// in ordinary questions ("conseiller" is also "to advise", "Person" and "operatore" are common
/// words); the other concerns also accept single words that are unambiguous ("inakzeptabel",
/// "Rabatt", "avvocato").
#[derive(Debug, Clone, Default)]
pub struct DefaultPolicy {
    _private: (),
}

// Every phrase is written as `normalize_words` leaves it: lower-case, without accents, words
// separated by one space ("quelqu un" for "quelqu'un"). German words with an umlaut are listed
// twice where customers often type them without one: folded ("enttauscht") and spelt out
// ("enttaeuscht"). A word shared by two languages is listed once, under the first.

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
    // French
    "parler a un conseiller",
    "parler avec un conseiller",
    "parler a une conseillere",
    "parler a un humain",
    "parler avec un humain",
    "parler a un etre humain",
    "parler a une personne",
    "parler avec une personne",
    "parler a quelqu un",
    "parler avec quelqu un",
    "parler a un agent",
    "parler a un operateur",
    "vrai humain",
    "vraie personne",
    "personne reelle",
    "conseiller humain",
    "agent humain",
    "je veux un conseiller",
    "un conseiller s il vous plait",
    "passez moi un conseiller",
    "en relation avec un conseiller",
    // German
    "mit einem menschen sprechen",
    "mit einem menschen reden",
    "einen menschen sprechen",
    "echter mensch",
    "echten menschen",
    "echte person",
    "echten person",
    "mit einer person sprechen",
    "mit einem mitarbeiter sprechen",
    "mit einem mitarbeiter reden",
    "mit einer mitarbeiterin sprechen",
    "einen mitarbeiter sprechen",
    "mit einem mitarbeiter verbinden",
    "verbinden sie mich mit einem mitarbeiter",
    "menschlichen mitarbeiter",
    "mitarbeiter bitte",
    "mit einem berater sprechen",
    "mit einem kundenberater sprechen",
    "mit jemandem sprechen",
    "mit jemandem reden",
    // Italian
    "parlare con un operatore",
    "parlare con l operatore",
    "parlare con un umano",
    "parlare con un essere umano",
    "parlare con una persona",
    "parlare con qualcuno",
    "parlare con un consulente",
    "parlare con un addetto",
    "persona vera",
    "persona reale",
    "operatore umano",
    "voglio un operatore",
    "operatore per favore",
    "passatemi un operatore",
    "mi passi un operatore",
    "in contatto con un operatore",
];

const COMPLAINT: &[&str] = &[
    // English
    "complaint",
    "complain",
    "unacceptable",
    "terrible",
    "awful",
    "worst",
    "furious",
    "disappointed",
    "ridiculous",
    // Portuguese ("pessimo" is also Italian)
    "reclamacao",
    "reclamar",
    "pessimo",
    "absurdo",
    "decepcionado",
    // Spanish ("reclamo" and "furioso" are also Italian, "horrible" also French)
    "queja",
    "quejarme",
    "reclamo",
    "inaceptable",
    "horrible",
    "furioso",
    // French
    "plainte",
    "reclamation",
    "plaindre",
    "inadmissible",
    "inacceptable",
    "scandaleux",
    "honteux",
    "lamentable",
    "ridicule",
    "catastrophique",
    "decu",
    "decue",
    "mecontent",
    "mecontente",
    "furieux",
    "furieuse",
    // German
    "beschwerde",
    "beschweren",
    "reklamation",
    "reklamieren",
    "inakzeptabel",
    "unakzeptabel",
    "unverschamt",
    "unverschaemt",
    "frechheit",
    "zumutung",
    "katastrophal",
    "schrecklich",
    "lacherlich",
    "laecherlich",
    "enttauscht",
    "enttaeuscht",
    "unzufrieden",
    "wutend",
    "wuetend",
    // Italian
    "lamentela",
    "lamentarmi",
    "inaccettabile",
    "inammissibile",
    "vergognoso",
    "vergogna",
    "scandaloso",
    "ridicolo",
    "assurdo",
    "fa schifo",
    "deluso",
    "delusa",
    "insoddisfatto",
    "insoddisfatta",
    "arrabbiato",
    "arrabbiata",
];

const NEGOTIATION: &[&str] = &[
    // English
    "discount",
    "negotiate",
    "negotiation",
    "better price",
    "better deal",
    "counter offer",
    "counteroffer",
    "contract terms",
    // Portuguese
    "desconto",
    "negociar",
    "negociacao",
    "contraproposta",
    // Spanish
    "descuento",
    "negociacion",
    "contraoferta",
    // French ("remise" alone is also a hand-over: "remise en main propre", "remise des cles")
    "une remise",
    "remise commerciale",
    "rabais",
    "ristourne",
    "geste commercial",
    "faire un prix",
    "negocier",
    "negociation",
    "un meilleur prix",
    "une meilleure offre",
    "contre offre",
    "contre proposition",
    "conditions du contrat",
    // German
    "rabatt",
    "preisnachlass",
    "verhandeln",
    "verhandlung",
    "nachverhandeln",
    "besseren preis",
    "besseres angebot",
    "gegenangebot",
    "vertragsbedingungen",
    // Italian
    "sconto",
    "negoziare",
    "negoziazione",
    "trattativa",
    "prezzo migliore",
    "offerta migliore",
    "controfferta",
    "controproposta",
    "condizioni contrattuali",
];

const SENSITIVE: &[&str] = &[
    // English
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
    // Portuguese ("urgente" is also Spanish and Italian)
    "advogado",
    "processo judicial",
    "fraude",
    "roubado",
    "emergencia",
    "urgente",
    "assedio",
    "faleceu",
    // Spanish
    "abogado",
    "demanda",
    "robado",
    "acoso",
    "fallecio",
    // French ("fraude" and "urgent" are listed above; "avocat" alone is also an avocado)
    "mon avocat",
    "contacter un avocat",
    "consulter un avocat",
    "prendre un avocat",
    "appel a un avocat",
    "en justice",
    "poursuites judiciaires",
    "porter plainte",
    "escroquerie",
    "arnaque",
    "ete vole",
    "ete volee",
    "on m a vole",
    "urgence",
    "harcelement",
    "automutilation",
    "deces",
    "decede",
    "decedee",
    // German
    "anwalt",
    "rechtsanwalt",
    "rechtliche schritte",
    "verklagen",
    "klage",
    "anzeige erstatten",
    "betrug",
    "gestohlen",
    "notfall",
    "dringend",
    "belastigung",
    "belaestigung",
    "selbstverletzung",
    "verstorben",
    // Italian
    "avvocato",
    "vie legali",
    "azione legale",
    "fare causa",
    "faccio causa",
    "sporgere denuncia",
    "truffa",
    "frode",
    "rubato",
    "rubata",
    "emergenza",
    "urgenza",
    "molestie",
    "autolesionismo",
    "deceduto",
    "deceduta",
    "venuto a mancare",
    "venuta a mancare",
];

/// Lower-cases, folds the accents and ligatures of Portuguese, Spanish, French, German and
/// Italian ("é" to "e", "ß" to "ss", "œ" to "oe", "æ" to "ae"), and turns every run of other
/// non-alphanumeric characters, apostrophes included, into one space, with a space at each end,
/// so a phrase matches whole words only ("deal" does not match "ideal"): search for `" deal "`.
///
/// ```
/// use handover_core::policy::normalize_words;
/// assert_eq!(normalize_words("Quero falar com um ATENDENTE!"), " quero falar com um atendente ");
/// assert_eq!(normalize_words("¿Cuál es el horario?"), " cual es el horario ");
/// assert_eq!(normalize_words("À quelqu’un, l'opérateur"), " a quelqu un l operateur ");
/// assert_eq!(normalize_words("Größe? STRASSE, Œuvre"), " grosse strasse oeuvre ");
/// ```
pub fn normalize_words(text: &str) -> String {
    String::from_utf8(Normalized::of(text).words).expect("the normalized words are UTF-8")
}

/// A message after one pass over it: its words as [`normalize_words`] writes them (as bytes,
/// for the lexicons and the content words), and what the frustration score reads in
/// the text as written.
pub(crate) struct Normalized {
    /// [`normalize_words`] of the text.
    pub(crate) words: Vec<u8>,
    /// Its letters.
    pub(crate) letters: usize,
    /// Its capital letters.
    pub(crate) capitals: usize,
    /// Whether it holds `!!`, `??` or `?!`.
    pub(crate) repeated_marks: bool,
}

/// Eight ASCII bytes at once as [`normalize_words`] writes them (letters lower-cased, digits
/// kept, anything else a space), with the flags (`0x80` in a byte) of their letters, capitals
/// and spaces.
struct Block {
    folded: u64,
    letters: u64,
    capitals: u64,
    spaces: u64,
}

impl Block {
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);

    /// `bytes` (each below `0x80`).
    fn of(bytes: u64) -> Block {
        let each = |byte: u8| u64::from_le_bytes([byte; 8]);
        // Per byte, `0x80` where the byte is at least `low` (no borrow crosses bytes: each
        // starts at `0x80` or more).
        let at_least = |low: u8| ((bytes | Self::HIGH) - each(low)) & Self::HIGH;
        let within = |low: u8, high: u8| at_least(low) & !at_least(high + 1);
        let capitals = within(b'A', b'Z');
        let letters = capitals | within(b'a', b'z');
        let kept = letters | within(b'0', b'9');
        let spaces = !kept & Self::HIGH;
        // `0x80 >> 2` is the case bit; a kept byte's mask is `0xff`.
        let lowered = bytes | (capitals >> 2);
        let mask = (kept >> 7) * 0xff;
        Block {
            folded: (lowered & mask) | (each(b' ') & !mask),
            letters,
            capitals,
            spaces,
        }
    }
}

/// A character as [`normalize_words`] writes it (lower-cased and folded) when that is a space
/// or one piece of text without a space, with what the frustration score counts of it.
#[derive(Clone, Copy)]
struct Folded {
    /// The text it becomes (`len` bytes); a space when `len` is 0.
    bytes: [u8; 4],
    len: u8,
    letter: bool,
    capital: bool,
}

/// [`Folded`] of the characters the six languages write outside ASCII (accented Latin letters,
/// typographic quotes and dashes), worked out once through the full path, so the common
/// characters of a message take a lookup.
fn folded(c: char) -> Option<Folded> {
    const LATIN: std::ops::Range<u32> = 0x80..0x250;
    const PUNCTUATION: std::ops::Range<u32> = 0x2000..0x2070;
    type Table = Vec<Option<Folded>>;
    static TABLES: OnceLock<(Table, Table)> = OnceLock::new();
    let (latin, punctuation) = TABLES.get_or_init(|| {
        let table = |range: std::ops::Range<u32>| {
            range
                .map(|code| {
                    let c = char::from_u32(code)?;
                    let mut out = vec![b'x'];
                    lower_and_fold(&mut out, c);
                    let text = &out[1..];
                    let letter = c.is_alphabetic();
                    let mut folded = Folded {
                        bytes: [0; 4],
                        len: 0,
                        letter,
                        capital: letter && c.is_uppercase(),
                    };
                    if text == b" " {
                        return Some(folded);
                    }
                    if text.contains(&b' ') || text.len() > folded.bytes.len() {
                        return None;
                    }
                    folded.bytes[..text.len()].copy_from_slice(text);
                    folded.len = u8::try_from(text.len()).ok()?;
                    Some(folded)
                })
                .collect::<Vec<_>>()
        };
        (table(LATIN), table(PUNCTUATION))
    });
    let code = u32::from(c);
    let (table, start) = if LATIN.contains(&code) {
        (latin, LATIN.start)
    } else if PUNCTUATION.contains(&code) {
        (punctuation, PUNCTUATION.start)
    } else {
        return None;
    };
    table[usize::try_from(code - start).ok()?]
}

/// Appends `c`, but never a space after a space.
fn push(out: &mut Vec<u8>, c: char) {
    if c != ' ' || out.last() != Some(&b' ') {
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
}

/// Appends a character lower-cased, then each of its lower-case characters folded, kept, or
/// a space.
fn lower_and_fold(out: &mut Vec<u8>, c: char) {
    c.to_lowercase().for_each(|c| fold(out, c));
}

/// Appends a lower-case character: folded, kept, or a space.
fn fold(out: &mut Vec<u8>, c: char) {
    match c {
        'ß' => "ss".chars().for_each(|c| push(out, c)),
        'œ' => "oe".chars().for_each(|c| push(out, c)),
        'æ' => "ae".chars().for_each(|c| push(out, c)),
        'á' | 'à' | 'â' | 'ã' | 'ä' => push(out, 'a'),
        'é' | 'è' | 'ê' | 'ë' => push(out, 'e'),
        'í' | 'ì' | 'î' | 'ï' => push(out, 'i'),
        'ó' | 'ò' | 'ô' | 'õ' | 'ö' => push(out, 'o'),
        'ú' | 'ù' | 'û' | 'ü' => push(out, 'u'),
        'ÿ' => push(out, 'y'),
        'ç' => push(out, 'c'),
        'ñ' => push(out, 'n'),
        // Apostrophes separate words: "qu'un" is "qu un", "l’opérateur" is "l operateur".
        '\'' | '’' => push(out, ' '),
        c if c.is_alphanumeric() => push(out, c),
        _ => push(out, ' '),
    }
}

impl Normalized {
    /// One pass over `text`.
    pub(crate) fn of(text: &str) -> Normalized {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len() + 2);
        out.push(b' ');
        let (mut letters, mut capitals) = (0usize, 0usize);
        // Most text is ASCII: eight bytes at a time, in integer arithmetic, written at once
        // unless a space follows a space; the other ASCII bytes one at a time, and the other
        // characters from a table or through the full path (the same result).
        let mut i = 0;
        while i < bytes.len() {
            if let Some(eight) = bytes.get(i..i + 8) {
                let eight = u64::from_le_bytes(eight.try_into().expect("8 bytes"));
                if eight & Block::HIGH == 0 {
                    let block = Block::of(eight);
                    letters += block.letters.count_ones() as usize;
                    capitals += block.capitals.count_ones() as usize;
                    let after_space = u64::from(out.last() == Some(&b' ')) << 7;
                    if block.spaces & (block.spaces << 8 | after_space) == 0 {
                        out.extend_from_slice(&block.folded.to_le_bytes());
                    } else {
                        // Without a branch per byte: each byte is written, and the end moves
                        // on unless it is a space after a space.
                        let (mut kept, mut end) = ([0u8; 8], 0);
                        let mut after_space = after_space != 0;
                        for byte in block.folded.to_le_bytes() {
                            let space = byte == b' ';
                            kept[end & 7] = byte;
                            end += usize::from(!(space & after_space));
                            after_space = space;
                        }
                        let start = out.len();
                        out.extend_from_slice(&kept);
                        out.truncate(start + end);
                    }
                    i += 8;
                    continue;
                }
            }
            let b = bytes[i];
            if b.is_ascii() {
                letters += usize::from(b.is_ascii_alphabetic());
                capitals += usize::from(b.is_ascii_uppercase());
                if b.is_ascii_alphanumeric() {
                    out.push(b.to_ascii_lowercase());
                } else if out.last() != Some(&b' ') {
                    out.push(b' ');
                }
                i += 1;
                continue;
            }
            let c = text[i..]
                .chars()
                .next()
                .expect("i is on a character boundary");
            match folded(c) {
                Some(folded) => {
                    letters += usize::from(folded.letter);
                    capitals += usize::from(folded.capital);
                    if folded.len == 0 {
                        push(&mut out, ' ');
                    } else {
                        out.extend_from_slice(&folded.bytes[..usize::from(folded.len)]);
                    }
                }
                None => {
                    let letter = c.is_alphabetic();
                    letters += usize::from(letter);
                    capitals += usize::from(letter && c.is_uppercase());
                    lower_and_fold(&mut out, c);
                }
            }
            i += c.len_utf8();
        }
        if out.last() != Some(&b' ') {
            out.push(b' ');
        }
        let repeated_marks = text.contains("!!") || text.contains("??") || text.contains("?!");
        Normalized {
            words: out,
            letters,
            capitals,
            repeated_marks,
        }
    }
}

/// Every concern with its phrases, in [`Concern`] order.
pub(crate) const CONCERN_PHRASES: [(Concern, &[&str]); 4] = [
    (Concern::HumanRequested, HUMAN_REQUESTED),
    (Concern::Complaint, COMPLAINT),
    (Concern::Negotiation, NEGOTIATION),
    (Concern::Sensitive, SENSITIVE),
];

impl Policy for DefaultPolicy {
    fn assess(&self, text: &str) -> Vec<Concern> {
        crate::signals::concerns(text)
    }

    fn assess_read(&self, _text: &str, reading: &crate::signals::Reading) -> Vec<Concern> {
        reading.concerns().to_vec()
    }

    fn frustration_of(&self, message: &crate::conversation::RecentMessage) -> f64 {
        message.lexicon_frustration()
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
    fn recognises_requests_for_a_human_in_english_portuguese_and_spanish() {
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
            "Can I return an item after 30 days?",
            "Quanto custa o frete para o Rio?",
            "¿Cuánto cuesta el envío a Madrid?",
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

    /// Asserts that each text raises `concern`.
    fn all_raise(concern: Concern, texts: &[&str]) {
        for text in texts {
            assert!(
                assess(text).contains(&concern),
                "{text:?} did not raise {concern:?}: {:?}",
                assess(text)
            );
        }
    }

    /// Asserts that no text raises any concern.
    fn none_raise(texts: &[&str]) {
        for text in texts {
            assert_eq!(assess(text), vec![], "{text:?}");
        }
    }

    #[test]
    fn recognises_french() {
        all_raise(
            Concern::HumanRequested,
            &[
                "JE VEUX PARLER À UN CONSEILLER !",
                "Est-ce que je peux parler à quelqu’un, s'il vous plaît ?",
                "Je voudrais parler avec un humain",
                "Je veux un vrai humain, pas un robot",
                "Passez-moi un conseiller",
                "Pouvez-vous me mettre en relation avec un conseiller ?",
                "Puis-je parler à une vraie personne ?",
                "Je veux parler à un être humain",
            ],
        );
        all_raise(
            Concern::Complaint,
            &[
                "C'est INADMISSIBLE",
                "Je souhaite déposer une réclamation",
                "Je veux me plaindre de votre service",
                "Je suis très déçue et mécontente",
                "Service lamentable, c’est scandaleux",
            ],
        );
        all_raise(
            Concern::Negotiation,
            &[
                "Pouvez-vous me faire une remise ?",
                "Un rabais serait possible ?",
                "On peut négocier le tarif ?",
                "Je cherche un meilleur prix",
                "Un geste commercial ?",
            ],
        );
        all_raise(
            Concern::Sensitive,
            &[
                "Mon avocat vous contactera",
                "Je vais porter plainte",
                "C'est une fraude, une arnaque !",
                "On m'a volé ma carte",
                "Ma carte a été volée",
                "C'est une URGENCE",
                "Mon père est décédé",
            ],
        );
        none_raise(&[
            "Quels sont vos horaires ?",
            "Combien coûte la livraison ?",
            "Pouvez-vous me conseiller un forfait ?",
            "Personne ne m'a répondu hier, où en est ma commande ?",
            "Est-ce possible en remise en main propre ?",
            "Quand aura lieu la remise des clés ?",
            "Les avocats sont-ils bio ?",
            "J'ai changé d'opérateur, comment garder mon numéro ?",
            "Où est mon colis ? Œuvre complète, tome 2",
        ]);
    }

    #[test]
    fn recognises_german() {
        all_raise(
            Concern::HumanRequested,
            &[
                "Ich möchte mit einem MENSCHEN sprechen",
                "Kann ich bitte mit einem Mitarbeiter sprechen?",
                "Ich will eine echte Person!",
                "Bitte mit einer echten Person sprechen",
                "Verbinden Sie mich mit einem Mitarbeiter",
                "Ich möchte einen Mitarbeiter sprechen",
                "Kann ich mit jemandem reden?",
                "Sind Sie ein echter Mensch?",
            ],
        );
        all_raise(
            Concern::Complaint,
            &[
                "Das ist INAKZEPTABEL",
                "Ich möchte eine Beschwerde einreichen",
                "Wo kann ich mich beschweren?",
                "Eine Frechheit, ich bin sehr enttäuscht",
                "Ich bin enttaeuscht und unzufrieden",
                "Einfach unverschämt",
            ],
        );
        all_raise(
            Concern::Negotiation,
            &[
                "Bekomme ich einen Rabatt?",
                "Können wir über den Preis verhandeln?",
                "Ich hätte gern einen besseren Preis",
                "Ist ein Preisnachlass möglich?",
            ],
        );
        all_raise(
            Concern::Sensitive,
            &[
                "Mein Anwalt meldet sich",
                "Ich werde rechtliche Schritte einleiten",
                "Das ist Betrug!",
                "Meine Karte wurde gestohlen",
                "Es ist ein NOTFALL",
                "Es ist dringend",
                "Meine Mutter ist verstorben",
                "Ich werde Sie verklagen",
            ],
        );
        none_raise(&[
            "Wie lange dauert der Versand?",
            "Was kostet das Abo pro Person?",
            "Welche Größe soll ich bestellen?",
            "Ich wohne in der Hauptstraße 5, STRASSE ist richtig geschrieben",
            "Wie funktioniert der Betrugsschutz?",
            "Habe ich einen Mitarbeiterrabatt?",
            "Mein Akku ist gestorben, gibt es Ersatz?",
            "Wie viele Menschen nutzen den Dienst?",
        ]);
    }

    #[test]
    fn recognises_italian() {
        all_raise(
            Concern::HumanRequested,
            &[
                "Voglio parlare con un OPERATORE",
                "Vorrei parlare con l’operatore",
                "Posso parlare con una persona vera?",
                "Voglio parlare con qualcuno",
                "Operatore, per favore!",
                "Mi passi un operatore",
                "Parlare con un essere umano è possibile?",
            ],
        );
        all_raise(
            Concern::Complaint,
            &[
                "È INACCETTABILE",
                "Voglio fare un reclamo",
                "Vorrei presentare una lamentela",
                "Sono molto deluso, il servizio fa schifo",
                "Che vergogna, sono arrabbiata",
                "Servizio pessimo",
            ],
        );
        all_raise(
            Concern::Negotiation,
            &[
                "Mi fate uno sconto?",
                "Possiamo negoziare il prezzo?",
                "Vorrei un prezzo migliore",
                "Faccio una controfferta",
            ],
        );
        all_raise(
            Concern::Sensitive,
            &[
                "Il mio avvocato vi contatterà",
                "Procederò per vie legali",
                "È una truffa",
                "Mi hanno rubato la carta",
                "È un'emergenza",
                "È urgente",
                "Mio padre è venuto a mancare",
            ],
        );
        none_raise(&[
            "Quanto costa la spedizione?",
            "Quali sono gli orari di apertura?",
            "Quale operatore telefonico usate?",
            "Siete un operatore logistico affidabile?",
            "Ho perso lo scontrino, posso fare il reso?",
            "Quante persone possono usare l'abbonamento?",
        ]);
    }

    #[test]
    fn phrases_match_whole_words_only() {
        none_raise(&[
            "Comment fonctionne le service antifraude ?",
            "Gibt es einen Rabattcode?",
            "Wie funktioniert der Betrugsschutz?",
            "Ho perso lo scontrino",
            "Is this the ideal plan?",
        ]);
        assert_eq!(assess("Ist das Betrug?"), vec![Concern::Sensitive]);
        assert_eq!(assess("Gibt es Rabatt?"), vec![Concern::Negotiation]);
        assert_eq!(assess("C'est une fraude"), vec![Concern::Sensitive]);
        assert_eq!(assess("C'è uno sconto?"), vec![Concern::Negotiation]);
    }

    #[test]
    fn folds_ligatures_sharp_s_and_apostrophes() {
        assert_eq!(normalize_words("Straße"), " strasse ");
        assert_eq!(normalize_words("GROẞ"), " gross ");
        assert_eq!(
            normalize_words("Œuvre, cœur, Æther"),
            " oeuvre coeur aether "
        );
        assert_eq!(normalize_words("qu'un l’opérateur"), " qu un l operateur ");
        assert_eq!(normalize_words("Größe über Ärger"), " grosse uber arger ");
        assert_eq!(normalize_words("È perché così"), " e perche cosi ");
    }

    #[test]
    fn every_phrase_is_written_normalized_and_listed_once() {
        let all: Vec<&str> = HUMAN_REQUESTED
            .iter()
            .chain(COMPLAINT)
            .chain(NEGOTIATION)
            .chain(SENSITIVE)
            .copied()
            .collect();
        for phrase in &all {
            assert_eq!(normalize_words(phrase), format!(" {phrase} "), "{phrase:?}");
        }
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "a phrase is listed twice");
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
                    "[a-zA-Záçñßœæ'’!?,. ]{1,8}",
                ],
                0..12,
            )
        ) {
            let text = words.join(" ");
            proptest::prop_assert_eq!(assess(&text), reference(&text), "{:?}", text);
        }
    }

    /// Normalization as plainly written, character by character, which the one pass (eight
    /// ASCII bytes at a time, common characters from a table) must agree with.
    fn reference_normalize(text: &str) -> String {
        /// Appends `c`, but never a space after a space.
        fn push(out: &mut String, c: char) {
            if c != ' ' || !out.ends_with(' ') {
                out.push(c);
            }
        }
        /// Appends a lower-case character: folded, kept, or a space.
        fn fold(out: &mut String, c: char) {
            match c {
                'ß' => "ss".chars().for_each(|c| push(out, c)),
                'œ' => "oe".chars().for_each(|c| push(out, c)),
                'æ' => "ae".chars().for_each(|c| push(out, c)),
                'á' | 'à' | 'â' | 'ã' | 'ä' => push(out, 'a'),
                'é' | 'è' | 'ê' | 'ë' => push(out, 'e'),
                'í' | 'ì' | 'î' | 'ï' => push(out, 'i'),
                'ó' | 'ò' | 'ô' | 'õ' | 'ö' => push(out, 'o'),
                'ú' | 'ù' | 'û' | 'ü' => push(out, 'u'),
                'ÿ' => push(out, 'y'),
                'ç' => push(out, 'c'),
                'ñ' => push(out, 'n'),
                // Apostrophes separate words: "qu'un" is "qu un", "l’opérateur" is "l operateur".
                '\'' | '’' => push(out, ' '),
                c if c.is_alphanumeric() => push(out, c),
                _ => push(out, ' '),
            }
        }
        let mut out = String::with_capacity(text.len() + 2);
        out.push(' ');
        // Most text is ASCII: its bytes are lower-cased and sorted here, without decoding them or
        // `char::to_lowercase`'s iterator (the same result); other characters take the full path.
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii() {
                if b.is_ascii_alphanumeric() {
                    out.push(char::from(b.to_ascii_lowercase()));
                } else {
                    push(&mut out, ' ');
                }
                i += 1;
            } else {
                let c = text[i..]
                    .chars()
                    .next()
                    .expect("i is on a character boundary");
                c.to_lowercase().for_each(|c| fold(&mut out, c));
                i += c.len_utf8();
            }
        }
        if !out.ends_with(' ') {
            out.push(' ');
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn normalization_agrees_with_the_plain_definition(
            text in proptest::prop_oneof![
                "\\PC{0,40}",
                "[a-zA-Z0-9 ,.;!?'’ÀàÁÉéÈèÍÓÚÜüÖöÄäßẞŒœÆæÇçÑñİ¿¡«»–—…-]{0,40}",
            ]
        ) {
            proptest::prop_assert_eq!(normalize_words(&text), reference_normalize(&text), "{:?}", text);
        }
    }
}
