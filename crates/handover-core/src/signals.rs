//! What the message rules read in a customer's words: how frustrated a message sounds, and
//! whether two messages ask the same question. Pure functions over text, in English,
//! Portuguese, Spanish, French, German and Italian, after [`normalize_words`].

use std::sync::OnceLock;

#[cfg(any(doc, test))]
use crate::policy::normalize_words;
use crate::policy::{Concern, Normalized};

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
    let normalized = Normalized::of(text);
    let (_, weight) = read_words(&normalized.words, None);
    score(weight, &normalized)
}

/// The concerns the built-in lexicon hears in `text`, in [`Concern`] order.
pub(crate) fn concerns(text: &str) -> Vec<Concern> {
    let (concerns, _) = read_words(&Normalized::of(text).words, None);
    concerns.to_vec()
}

/// The frustration score of a message whose strongest lexicon weight is `weight`.
fn score(weight: f64, normalized: &Normalized) -> f64 {
    let mut score = weight;
    let (letters, capitals) = (normalized.letters, normalized.capitals);
    if letters >= 8 && capitals * 10 >= letters * 7 {
        score += 0.2;
    }
    if normalized.repeated_marks {
        score += 0.1;
    }
    score.min(1.0)
}

/// A set of concerns, one bit each.
#[derive(Clone, Copy, Default)]
struct ConcernSet(u8);

impl ConcernSet {
    const ALL: [Concern; 4] = [
        Concern::HumanRequested,
        Concern::Complaint,
        Concern::Negotiation,
        Concern::Sensitive,
    ];

    fn bit(concern: Concern) -> u8 {
        let index = Self::ALL
            .iter()
            .position(|c| *c == concern)
            .expect("every concern is listed");
        1 << index
    }

    fn to_vec(self) -> Vec<Concern> {
        Self::ALL
            .iter()
            .enumerate()
            .filter(|(index, _)| self.0 & (1 << index) != 0)
            .map(|(_, concern)| *concern)
            .collect()
    }
}

/// What a phrase of the built-in lexicons means: the concerns it raises (one bit each) and
/// its frustration weight (0 for none).
#[derive(Clone, Copy, Default)]
struct Tag {
    concerns: u8,
    weight: f64,
}

/// A word's key in 64 bits: its bytes eight at a time (little-endian, so the same on every
/// machine), each block mixed in with a bijective finalizer. A word of at most 8 bytes (most
/// words) has a key no other such word has, since its bytes hold no zero.
fn word_key(word: &[u8]) -> u64 {
    word_key_in(word, 0, word.len())
}

/// [`word_key`] of `bytes[start..end]`, reading eight bytes at once where `bytes` goes on.
fn word_key_in(bytes: &[u8], start: usize, end: usize) -> u64 {
    let mut key = (end - start) as u64;
    let mut at = start;
    while at < end {
        let len = (end - at).min(8);
        let block = match bytes.get(at..at + 8) {
            Some(eight) => {
                let eight = u64::from_le_bytes(eight.try_into().expect("8 bytes"));
                eight & (u64::MAX >> (64 - 8 * len))
            }
            None => packed(&bytes[at..at + len]),
        };
        key = mix(key ^ block);
        at += len;
    }
    key
}

/// The finalizer of MurmurHash3: a bijection of 64 bits that spreads every input bit.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The concern and frustration lexicons as one trie of words, built once: a message's words
/// are read once, and each word either extends the phrases it may continue or, when it is in
/// no phrase (most words), ends them all. A phrase matches exactly where `" phrase "` occurs in
/// the normalized text.
struct Lexicon {
    /// Every word of a phrase, and every stopword: an open-addressing table of (key, word
    /// index, length), empty slots `u32::MAX`, sized to a power of two at most half full.
    slots: Vec<(u64, u32, u32)>,
    /// Each word, for the words longer than a key tells apart.
    words: Vec<Box<[u8]>>,
    /// The trie node a phrase starting with each word reaches (`u32::MAX`: a stopword in no
    /// phrase).
    first: Vec<u32>,
    /// Whether each word is a stopword.
    stopword: Vec<bool>,
    /// Each node's children: (word, node).
    children: Vec<Vec<(u32, u32)>>,
    /// What reaching each node means (nothing but inside a phrase).
    tags: Vec<Tag>,
}

impl Lexicon {
    fn build() -> Lexicon {
        let mut lexicon = Lexicon {
            slots: Vec::new(),
            words: Vec::new(),
            first: Vec::new(),
            stopword: Vec::new(),
            children: Vec::new(),
            tags: Vec::new(),
        };
        let phrases = crate::policy::CONCERN_PHRASES
            .iter()
            .flat_map(|(concern, phrases)| {
                phrases
                    .iter()
                    .map(|phrase| (*phrase, ConcernSet::bit(*concern), 0.0))
            })
            .chain(
                FRUSTRATION
                    .iter()
                    .map(|(phrase, weight)| (*phrase, 0, *weight)),
            )
            .collect::<Vec<_>>();
        let in_phrases: std::collections::BTreeSet<&str> = phrases
            .iter()
            .flat_map(|(phrase, _, _)| phrase.split(' '))
            .collect();
        let mut vocabulary: Vec<&str> = in_phrases
            .iter()
            .copied()
            .chain(STOPWORDS.iter().copied())
            .collect();
        vocabulary.sort_unstable();
        vocabulary.dedup();
        lexicon.words = vocabulary
            .iter()
            .map(|word| word.as_bytes().into())
            .collect();
        lexicon.slots = vec![(0, u32::MAX, 0); (vocabulary.len() * 2).next_power_of_two()];
        for (index, word) in vocabulary.iter().enumerate() {
            let mut slot = lexicon.slot(word_key(word.as_bytes()));
            while lexicon.slots[slot].1 != u32::MAX {
                slot = (slot + 1) & (lexicon.slots.len() - 1);
            }
            lexicon.slots[slot] = (word_key(word.as_bytes()), index as u32, word.len() as u32);
            let first = if in_phrases.contains(word) {
                lexicon.node()
            } else {
                u32::MAX
            };
            lexicon.first.push(first);
            lexicon.stopword.push(STOPWORDS.contains(word));
        }
        // A phrase in both lexicons ("ridiculous") reaches one node with both meanings.
        for (phrase, concerns, weight) in phrases {
            let words: Vec<u32> = phrase
                .split(' ')
                .map(|word| {
                    lexicon
                        .word(word.as_bytes())
                        .expect("every word of a phrase is in the vocabulary")
                })
                .collect();
            let mut words = words.into_iter();
            let first = words.next().expect("a phrase has a word");
            let mut node = lexicon.first[first as usize];
            for word in words {
                node = match lexicon.child(node, word) {
                    Some(child) => child,
                    None => {
                        let child = lexicon.node();
                        lexicon.children[node as usize].push((word, child));
                        child
                    }
                };
            }
            let tag = &mut lexicon.tags[node as usize];
            tag.concerns |= concerns;
            tag.weight = tag.weight.max(weight);
        }
        lexicon
    }

    /// A new node of the trie.
    fn node(&mut self) -> u32 {
        self.children.push(Vec::new());
        self.tags.push(Tag::default());
        (self.tags.len() - 1) as u32
    }

    fn slot(&self, key: u64) -> usize {
        (key >> 32) as usize & (self.slots.len() - 1)
    }

    /// The index of `word` in the vocabulary.
    fn word(&self, word: &[u8]) -> Option<u32> {
        self.word_with_key(word, word_key(word))
    }

    /// The index of `word`, whose key is `key`, in the vocabulary.
    #[inline]
    fn word_with_key(&self, word: &[u8], key: u64) -> Option<u32> {
        let mut slot = self.slot(key);
        loop {
            let (found, index, len) = self.slots[slot];
            if index == u32::MAX {
                return None;
            }
            // Two words of one length up to 8 bytes are equal when their keys are.
            if found == key
                && len as usize == word.len()
                && (word.len() <= 8 || *self.words[index as usize] == *word)
            {
                return Some(index);
            }
            slot = (slot + 1) & (self.slots.len() - 1);
        }
    }

    fn child(&self, node: u32, word: u32) -> Option<u32> {
        self.children[node as usize]
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, child)| *child)
    }
}

fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(Lexicon::build)
}

/// The offset of the first space in `bytes` from `from` on (the normalized text ends with
/// one), eight bytes at a time.
fn next_space(bytes: &[u8], from: usize) -> usize {
    const SPACES: u64 = u64::from_le_bytes([b' '; 8]);
    const LOW: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let mut at = from;
    while let Some(block) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(block.try_into().expect("8 bytes")) ^ SPACES;
        // The lowest byte flagged is the first zero byte of `x`, a space of `bytes`.
        let zero = x.wrapping_sub(LOW) & !x & HIGH;
        if zero != 0 {
            return at + (zero.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + bytes[at..]
        .iter()
        .position(|b| *b == b' ')
        .unwrap_or(bytes.len() - at)
}

/// The keys of a message's content words, as they come. A long message repeats words: a small
/// open-addressing set keeps the repeats out, so fewer keys are sorted (any key it lets
/// through twice, once the set is full or for the key 0 it cannot hold, the sort removes).
struct ContentWords {
    keys: Vec<u64>,
    /// The set, for a long message, with 0 for an empty slot.
    seen: Option<Box<[u64; ContentWords::SLOTS]>>,
}

impl ContentWords {
    const SLOTS: usize = 256;

    /// For the normalized `words` of a message.
    fn for_words(words: &[u8]) -> ContentWords {
        // About one word in six bytes; a short message has too few to repeat many.
        ContentWords {
            keys: Vec::with_capacity(words.len() / 6),
            seen: (words.len() >= Self::SLOTS).then(|| Box::new([0; Self::SLOTS])),
        }
    }

    fn insert(&mut self, key: u64) {
        if let (Some(seen), true) = (&mut self.seen, key != 0) {
            // At most half full, so a free slot is near.
            if self.keys.len() < Self::SLOTS / 2 {
                let mut slot = (key >> 56) as usize;
                loop {
                    match seen[slot] {
                        0 => {
                            seen[slot] = key;
                            break;
                        }
                        found if found == key => return,
                        _ => slot = (slot + 1) % Self::SLOTS,
                    }
                }
            }
        }
        self.keys.push(key);
    }
}

/// One pass over normalized `words`: the concerns and the strongest frustration weight of the
/// phrases they hold, and each content word's key into `content` if given.
fn read_words(words: &[u8], mut content: Option<&mut ContentWords>) -> (ConcernSet, f64) {
    let lexicon = lexicon();
    let (mut concerns, mut weight) = (0u8, 0.0f64);
    // The trie nodes of the phrases the words so far may continue (as long as the longest
    // phrase, at most).
    let mut open: Vec<u32> = Vec::with_capacity(8);
    let mut next: Vec<u32> = Vec::with_capacity(8);
    let mut start = 1;
    while start < words.len() {
        let end = next_space(words, start);
        let word = &words[start..end];
        let key = word_key_in(words, start, end);
        let found = lexicon.word_with_key(word, key);
        if let Some(content) = content.as_deref_mut() {
            let stopword = found.is_some_and(|index| lexicon.stopword[index as usize]);
            if !stopword && has_three_characters(word) {
                content.insert(key);
            }
        }
        if open.is_empty() && found.is_none() {
            // Most words: no phrase open, none starting.
            start = end + 1;
            continue;
        }
        next.clear();
        if let Some(index) = found.filter(|index| lexicon.first[*index as usize] != u32::MAX) {
            next.extend(open.iter().filter_map(|node| lexicon.child(*node, index)));
            next.push(lexicon.first[index as usize]);
            for node in &next {
                let tag = lexicon.tags[*node as usize];
                concerns |= tag.concerns;
                weight = weight.max(tag.weight);
            }
        }
        std::mem::swap(&mut open, &mut next);
        start = end + 1;
    }
    (ConcernSet(concerns), weight)
}

/// Everything the built-in lexicons read in a customer's message, from one pass over its
/// normalized words: the concerns of [`DefaultPolicy`](crate::DefaultPolicy), the
/// [`frustration`] score and the content words ([`Fingerprint`]). A conversation reads each
/// customer message once, when its command is decided, and folds the reading in.
///
/// ```
/// use handover_core::signals::{frustration, Fingerprint, Reading};
/// use handover_core::{Concern, DefaultPolicy, Policy};
///
/// let text = "This is useless, I want to talk to a human!!";
/// let reading = Reading::of(text);
/// assert_eq!(reading.concerns(), [Concern::HumanRequested]);
/// assert_eq!(reading.concerns(), DefaultPolicy::default().assess(text));
/// assert_eq!(reading.frustration(), frustration(text));
/// assert_eq!(reading.words(), &Fingerprint::of(text));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Reading {
    concerns: Vec<Concern>,
    frustration: f64,
    words: Fingerprint,
}

impl Reading {
    /// Reads `text`.
    pub fn of(text: &str) -> Reading {
        let normalized = Normalized::of(text);
        let mut content = ContentWords::for_words(&normalized.words);
        let (concerns, weight) = read_words(&normalized.words, Some(&mut content));
        Reading {
            concerns: concerns.to_vec(),
            frustration: score(weight, &normalized),
            words: Fingerprint::of_keys(content.keys),
        }
    }

    /// The concerns of the built-in lexicon ([`DefaultPolicy`](crate::DefaultPolicy)), in
    /// [`Concern`] order.
    pub fn concerns(&self) -> &[Concern] {
        &self.concerns
    }

    /// The score on the built-in frustration lexicon ([`frustration`]).
    pub fn frustration(&self) -> f64 {
        self.frustration
    }

    /// The content words ([`Fingerprint::of`]).
    pub fn words(&self) -> &Fingerprint {
        &self.words
    }

    /// The content words, taken out of the reading.
    pub fn into_words(self) -> Fingerprint {
        self.words
    }
}

/// Words too common to tell two questions apart, in the six languages.
const STOPWORDS: &[&str] = &[
    "the", "and", "you", "your", "for", "are", "can", "what", "how", "this", "that", "with", "not",
    "que", "com", "uma", "para", "por", "nao", "voce", "los", "las", "una", "con", "del", "les",
    "des", "est", "une", "pour", "pas", "vous", "der", "die", "das", "und", "ist", "ich", "sie",
    "nicht", "mit", "ein", "eine", "che", "per", "non", "sono", "della",
];

/// The bytes of a word of at most 8 bytes in one integer (words hold no zero byte, so two
/// words are equal exactly when their integers are).
fn packed(word: &[u8]) -> u64 {
    word.iter()
        .rev()
        .fold(0, |packed, byte| packed << 8 | u64::from(*byte))
}

/// Whether a normalized word has three characters or more.
fn has_three_characters(word: &[u8]) -> bool {
    match word.len() {
        0..=2 => false,
        // Two characters take at most 8 bytes.
        9.. => true,
        _ => word.iter().filter(|b| !is_continuation(**b)).count() >= 3,
    }
}

/// Whether `byte` continues a UTF-8 character.
fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// A message's content words, for telling whether two messages ask the same thing: the
/// sorted keys of its words after [`normalize_words`], without words shorter than three
/// letters or too common to tell questions apart. Conversations keep one per recent customer
/// message, so comparing a new message with them hashes nothing twice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint(Box<[u64]>);

impl Fingerprint {
    /// The fingerprint of `text`.
    pub fn of(text: &str) -> Fingerprint {
        Reading::of(text).into_words()
    }

    /// The fingerprint of the content words with these keys.
    fn of_keys(mut keys: Vec<u64>) -> Fingerprint {
        keys.sort_unstable();
        keys.dedup();
        Fingerprint(keys.into_boxed_slice())
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

    /// The plain definitions the one-pass reading must agree with: a phrase counts when it
    /// appears in the normalized text with a space on each side; content words are the
    /// distinct words of three characters or more that are not stopwords; shouting is counted
    /// on the characters as written.
    fn reference(text: &str) -> (f64, std::collections::BTreeSet<String>) {
        let normalized = normalize_words(text);
        let mut score = FRUSTRATION
            .iter()
            .filter(|(phrase, _)| normalized.contains(&format!(" {phrase} ")))
            .map(|(_, weight)| *weight)
            .fold(0.0, f64::max);
        let letters = text.chars().filter(|c| c.is_alphabetic()).count();
        let capitals = text
            .chars()
            .filter(|c| c.is_alphabetic() && c.is_uppercase())
            .count();
        if letters >= 8 && capitals * 10 >= letters * 7 {
            score += 0.2;
        }
        if text.contains("!!") || text.contains("??") || text.contains("?!") {
            score += 0.1;
        }
        let words = normalized
            .split_whitespace()
            .filter(|word| word.chars().count() >= 3 && !STOPWORDS.contains(word))
            .map(str::to_owned)
            .collect();
        (score.min(1.0), words)
    }

    fn text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::Strategy;
        let words: Vec<&str> = FRUSTRATION
            .iter()
            .flat_map(|(phrase, _)| phrase.split(' '))
            .chain(STOPWORDS.iter().copied())
            .collect();
        proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(words).prop_map(str::to_owned),
                "[a-zA-Z0-9áÁçÇñßœæÆÉéèüÜöÖ'’!?,.;:¿¡«» -]{1,12}",
                "\\PC{1,4}",
            ],
            0..16,
        )
        .prop_map(|words| words.join(" "))
    }

    proptest::proptest! {
        #[test]
        fn the_reading_agrees_with_the_plain_definitions(a in text(), b in text()) {
            let (score, words) = reference(&a);
            let (_, other) = reference(&b);
            let reading = Reading::of(&a);
            proptest::prop_assert_eq!(reading.frustration(), score, "{:?}", a);
            proptest::prop_assert_eq!(frustration(&a), score, "{:?}", a);
            proptest::prop_assert_eq!(reading.words(), &Fingerprint::of(&a));
            proptest::prop_assert_eq!(reading.words().0.len(), words.len(), "{:?}", a);
            let shared = words.intersection(&other).count();
            let union = words.union(&other).count();
            let expected = if union == 0 { 0.0 } else { shared as f64 / union as f64 };
            proptest::prop_assert_eq!(similarity(&a, &b), expected, "{:?} / {:?}", a, b);
        }
    }
}
