//! The FAQ/pricing agent: an [`AiAgentBehavior`] that answers customers from a small knowledge
//! table (business hours, plans and prices, shipping, returns, ...), records the skill behind
//! each answer, and hands the conversation back to humans when it cannot help.
//!
//! Matching is deterministic and whole-word: a message and every keyword are lower-cased,
//! stripped of the accents common in Portuguese and Spanish, and split on everything that is not
//! a letter or a digit, so "Horário?" matches `horario` and `ship` does not match "relationship".
//!
//! ```
//! use handover_sim::faq::{KnowledgeTable, Lookup};
//!
//! let table = KnowledgeTable::sample();
//! assert_eq!(
//!     table.lookup("How much is the Pro plan?"),
//!     Lookup::Price { plan: "Pro".into(), price: "USD 49 per month".into() },
//! );
//! assert!(matches!(table.lookup("¿Cuál es su horario?"), Lookup::Entry { id, .. } if id == "hours"));
//! assert_eq!(table.lookup("Can you paint my fence?"), Lookup::Miss);
//! ```

use async_trait::async_trait;
use handover_core::policy::normalize_words;
use handover_core::{
    MessageText, Reason, Skill, SkillData, SkillName, SkillOutcome, MESSAGE_BYTES_MAX,
};

use handover::Error;
use handover::{AgentError, AiAgentBehavior, AiSession};

/// The skill recorded when a message names a plan and asks for its price: the plan's name is
/// its input and the price its outcome.
pub const LOOKUP_PRICE_SKILL: &str = "lookup_price";

/// The skill recorded for every other message: the question is its input, and the matched
/// entry's id its outcome (a failed outcome when nothing matched).
pub const SEARCH_FAQ_SKILL: &str = "search_faq";

/// The skill the agent runs for a customer who asks for the refund of an order (a word for a
/// refund and an order number such as `A-1042`): its input is `{"order":"A-1042"}`. The
/// default policy makes it wait for a person's approval (`AiSession::run_skill` waits); the
/// agent tells the customer first, then how it went.
pub const REFUND_SKILL: &str = "refund";

/// Words for a refund, as [`normalize_words`] leaves them, in English, Portuguese, Spanish,
/// French, German and Italian.
const REFUND_WORDS: &[&str] = &[
    "refund",
    "reembolso",
    "remboursement",
    "rembourser",
    "ruckerstattung",
    "rueckerstattung",
    "rimborso",
];

/// Longest knowledge entry id or plan name, in bytes.
pub const ENTRY_ID_BYTES_MAX: usize = 64;

/// Longest plan price text, in bytes.
pub const PRICE_BYTES_MAX: usize = 1024;

/// The price words of [`KnowledgeTable::new`], in English, Portuguese and Spanish, separated
/// by commas (kept as one string so the list stays readable).
const DEFAULT_PRICE_WORDS: &str = "price, prices, pricing, cost, costs, how much, fee, preco, \
    precos, quanto custa, custa, valor, precio, precios, cuanto cuesta, cuesta, prix, tarif, \
    combien coute, coute, preis, preise, was kostet, kostet, prezzo, prezzi, quanto costa, costa";

/// The entries of [`KnowledgeTable::sample`]: id, comma-separated keywords, answer.
const SAMPLE_ENTRIES: &[(&str, &str, &str)] = &[
    (
        "hours",
        "hours, business hours, opening hours, open, opening, horario, horarios, aberto, \
         abertos, abierto, abiertos, horaires, ouvert, offnungszeiten, geoffnet, orari, aperto, \
         apertura",
        "We are open Monday to Friday from 9:00 to 18:00 and on Saturdays from 9:00 to 13:00. \
         This chat is answered around the clock.",
    ),
    (
        "shipping",
        "shipping, ship, shipped, delivery, deliver, tracking, track my order, frete, entrega, \
         rastreamento, rastrear, envio, envios, livraison, expedition, lieferung, versand, \
         consegna, spedizione",
        "Orders ship within one business day. Standard delivery takes 3 to 5 business days and \
         is free over USD 50; express delivery takes 1 to 2 days for USD 15. You get a tracking \
         link by email as soon as the order ships.",
    ),
    (
        "returns",
        "return, returns, refund, refunds, exchange, send back, devolucao, devolver, troca, \
         reembolso, devolucion, retourner, retour, remboursement, zuruckgeben, rucksendung, \
         restituire, reso, rimborso",
        "You can return any item within 30 days of delivery for a full refund: start the return \
         in Orders > Return item and we email you a prepaid label. The refund reaches your card \
         5 to 10 days after we receive the item.",
    ),
    (
        "password",
        "password, reset password, forgot password, log in, login, sign in, locked out, senha, \
         esqueci, contrasena, olvide, mot de passe, passwort, kennwort",
        "To reset your password, click \"Forgot password?\" on the sign-in page and enter your \
         email; the link we send is valid for one hour. If it does not arrive, check your spam \
         folder.",
    ),
    (
        "payment",
        "payment, payment methods, pay, credit card, invoice, pix, boleto, pagamento, pagar, \
         cartao, pago, tarjeta, factura, paiement, payer, zahlung, zahlungsarten, bezahlen",
        "We accept credit and debit cards, PayPal, Pix and boleto, and bank transfer for yearly \
         Enterprise contracts. Your invoices are in Billing > Invoices.",
    ),
    (
        "cancellation",
        "cancel, cancellation, cancel my subscription, cancelar, cancelamento, cancelacion",
        "You can cancel at any time in Settings > Subscription > Cancel plan. The plan stays \
         active until the end of the period you paid for, and you are not charged again.",
    ),
    (
        "plans",
        "plans, plan, pricing, price, prices, subscription, planos, plano, preco, precos, \
         assinatura, planes, precio, precios, suscripcion",
        "We have three plans: Basic at USD 19 per month, Pro at USD 49 per month and Enterprise \
         at USD 199 per month. Every plan is billed monthly and can be cancelled at any time.",
    ),
    (
        SAMPLE_FAREWELL,
        "thanks, thank you, thx, bye, goodbye, that's all, that is all, obrigado, obrigada, \
         valeu, tchau, gracias, adios, eso es todo",
        "You're welcome! I'm closing this conversation now; write to us any time.",
    ),
];

/// The sample entry that closes the conversation.
const SAMPLE_FAREWELL: &str = "goodbye";

/// The plans of [`KnowledgeTable::sample`]: name, comma-separated keywords, price.
const SAMPLE_PLANS: &[(&str, &str, &str)] = &[
    ("Basic", "basic, basico, starter", "USD 19 per month"),
    (
        "Pro",
        "pro, professional, profissional, profesional",
        "USD 49 per month",
    ),
    (
        "Enterprise",
        "enterprise, empresarial, corporate, corporativo",
        "USD 199 per month",
    ),
];

/// Splits a comma-separated keyword list.
fn split_keywords(list: &str) -> Vec<&str> {
    list.split(',').map(str::trim).collect()
}

/// The closing reason when a farewell entry answers the customer.
const RESOLVED_REASON: &str = "the customer's questions were answered";

/// Why a knowledge entry or plan was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FaqError {
    /// An id, name, answer or price is empty, too long, or holds a control character.
    #[error("{what} {value:?} is invalid: it must be 1 to {max} bytes with no control characters")]
    Invalid {
        /// Which field: `entry id`, `answer`, `plan name` or `price`.
        what: &'static str,
        /// The start of the value given.
        value: String,
        /// Its limit in bytes.
        max: usize,
    },
    /// None of the keywords holds a letter or a digit, so the entry could never match.
    #[error("{owner:?} has no keyword with a letter or digit in it, so it could never match")]
    NoKeywords {
        /// The entry id or plan name.
        owner: String,
    },
}

fn check_field(what: &'static str, value: &str, max: usize) -> Result<(), FaqError> {
    let bad_character = value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'));
    if value.trim().is_empty() || value.len() > max || bad_character {
        return Err(FaqError::Invalid {
            what,
            value: value.chars().take(64).collect(),
            max,
        });
    }
    Ok(())
}

/// Normalizes keywords, dropping those with no letter or digit; each keeps its surrounding
/// spaces so that `contains` on a normalized text is a whole-word match.
fn normalize_keywords(owner: &str, keywords: &[&str]) -> Result<Vec<String>, FaqError> {
    let normalized: Vec<String> = keywords
        .iter()
        .map(|k| normalize_words(k))
        .filter(|k| k.len() > 1)
        .collect();
    if normalized.is_empty() {
        return Err(FaqError::NoKeywords {
            owner: owner.to_owned(),
        });
    }
    Ok(normalized)
}

/// How well `keywords` match a normalized text: the number of words of the keywords found,
/// so a matching phrase counts for more than a single word.
fn score(normalized: &str, keywords: &[String]) -> usize {
    keywords
        .iter()
        .filter(|k| normalized.contains(k.as_str()))
        .map(|k| k.split_whitespace().count())
        .sum()
}

/// One question the FAQ agent can answer: an id (recorded as the `search_faq` outcome), the
/// keywords that recognise it, and the answer.
///
/// ```
/// use handover_sim::faq::FaqEntry;
///
/// let entry = FaqEntry::new("gift-cards", &["gift card", "vale presente"], "Gift cards are sold in every store.")?;
/// assert_eq!(entry.id(), "gift-cards");
/// assert!(!entry.closes());
/// # Ok::<(), handover_sim::faq::FaqError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaqEntry {
    id: String,
    keywords: Vec<String>,
    answer: String,
    closes: bool,
}

impl FaqEntry {
    /// An entry answering `answer` to any message that holds one of `keywords` as whole words.
    ///
    /// Fails if the id is empty or longer than [`ENTRY_ID_BYTES_MAX`], the answer is not a
    /// valid message, or no keyword holds a letter or digit.
    ///
    /// ```
    /// use handover_sim::faq::{FaqEntry, FaqError};
    ///
    /// assert!(FaqEntry::new("hours", &["hours"], "9 to 5").is_ok());
    /// assert!(matches!(FaqEntry::new("hours", &["?!"], "9 to 5"), Err(FaqError::NoKeywords { .. })));
    /// ```
    pub fn new(id: &str, keywords: &[&str], answer: &str) -> Result<FaqEntry, FaqError> {
        check_field("entry id", id, ENTRY_ID_BYTES_MAX)?;
        check_field("answer", answer, MESSAGE_BYTES_MAX)?;
        Ok(FaqEntry {
            id: id.to_owned(),
            keywords: normalize_keywords(id, keywords)?,
            answer: answer.to_owned(),
            closes: false,
        })
    }

    /// Marks the entry as a farewell: after answering it, the agent closes the conversation as
    /// resolved. A farewell entry is chosen only when no other entry matches, so "thanks, and
    /// what are your hours?" is answered rather than closed.
    ///
    /// ```
    /// use handover_sim::faq::FaqEntry;
    ///
    /// let bye = FaqEntry::new("goodbye", &["thanks", "bye"], "You're welcome!")?.closing();
    /// assert!(bye.closes());
    /// # Ok::<(), handover_sim::faq::FaqError>(())
    /// ```
    pub fn closing(mut self) -> FaqEntry {
        self.closes = true;
        self
    }

    /// The entry's id, recorded as the outcome of `search_faq`.
    ///
    /// ```
    /// # use handover_sim::faq::FaqEntry;
    /// assert_eq!(FaqEntry::new("hours", &["hours"], "9 to 5")?.id(), "hours");
    /// # Ok::<(), handover_sim::faq::FaqError>(())
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The keywords, normalized (lower case, no accents, words separated by one space).
    ///
    /// ```
    /// # use handover_sim::faq::FaqEntry;
    /// let entry = FaqEntry::new("hours", &["Horário"], "9 to 5")?;
    /// assert_eq!(entry.keywords().collect::<Vec<_>>(), ["horario"]);
    /// # Ok::<(), handover_sim::faq::FaqError>(())
    /// ```
    pub fn keywords(&self) -> impl Iterator<Item = &str> + '_ {
        self.keywords.iter().map(|k| k.trim())
    }

    /// The answer the agent replies with.
    ///
    /// ```
    /// # use handover_sim::faq::FaqEntry;
    /// assert_eq!(FaqEntry::new("hours", &["hours"], "9 to 5")?.answer(), "9 to 5");
    /// # Ok::<(), handover_sim::faq::FaqError>(())
    /// ```
    pub fn answer(&self) -> &str {
        &self.answer
    }

    /// Whether answering this entry closes the conversation (see [`FaqEntry::closing`]).
    ///
    /// ```
    /// # use handover_sim::faq::FaqEntry;
    /// assert!(!FaqEntry::new("hours", &["hours"], "9 to 5")?.closes());
    /// # Ok::<(), handover_sim::faq::FaqError>(())
    /// ```
    pub fn closes(&self) -> bool {
        self.closes
    }
}

/// A plan and its price, for the `lookup_price` skill: a message that names the plan (one of
/// its keywords) and asks for a price (a price word) is answered with the price.
///
/// ```
/// use handover_sim::faq::PricePlan;
///
/// let pro = PricePlan::new("Pro", &["pro", "professional"], "USD 49 per month")?;
/// assert_eq!((pro.name(), pro.price()), ("Pro", "USD 49 per month"));
/// # Ok::<(), handover_sim::faq::FaqError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricePlan {
    name: String,
    keywords: Vec<String>,
    price: String,
}

impl PricePlan {
    /// A plan called `name`, recognised by `keywords`, that costs `price`.
    ///
    /// Fails if the name is empty or longer than [`ENTRY_ID_BYTES_MAX`], the price is empty or
    /// longer than [`PRICE_BYTES_MAX`], or no keyword holds a letter or digit.
    ///
    /// ```
    /// # use handover_sim::faq::PricePlan;
    /// assert!(PricePlan::new("Basic", &["basic", "básico"], "USD 19 per month").is_ok());
    /// assert!(PricePlan::new("", &["basic"], "USD 19").is_err());
    /// ```
    pub fn new(name: &str, keywords: &[&str], price: &str) -> Result<PricePlan, FaqError> {
        check_field("plan name", name, ENTRY_ID_BYTES_MAX)?;
        check_field("price", price, PRICE_BYTES_MAX)?;
        Ok(PricePlan {
            name: name.to_owned(),
            keywords: normalize_keywords(name, keywords)?,
            price: price.to_owned(),
        })
    }

    /// The plan's name, recorded as the input of `lookup_price`.
    ///
    /// ```
    /// # use handover_sim::faq::PricePlan;
    /// assert_eq!(PricePlan::new("Pro", &["pro"], "USD 49")?.name(), "Pro");
    /// # Ok::<(), handover_sim::faq::FaqError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The price, recorded as the outcome of `lookup_price`.
    ///
    /// ```
    /// # use handover_sim::faq::PricePlan;
    /// assert_eq!(PricePlan::new("Pro", &["pro"], "USD 49")?.price(), "USD 49");
    /// # Ok::<(), handover_sim::faq::FaqError>(())
    /// ```
    pub fn price(&self) -> &str {
        &self.price
    }
}

/// What a [`KnowledgeTable`] makes of a customer's message.
///
/// ```
/// use handover_sim::faq::{KnowledgeTable, Lookup};
///
/// match KnowledgeTable::sample().lookup("Where is my delivery?") {
///     Lookup::Entry { id, .. } => assert_eq!(id, "shipping"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup {
    /// The message names a plan and asks for a price: run `lookup_price`.
    Price {
        /// The plan's name.
        plan: String,
        /// Its price.
        price: String,
    },
    /// The message matches an entry: run `search_faq`.
    Entry {
        /// The entry's id.
        id: String,
        /// Its answer.
        answer: String,
        /// Whether answering closes the conversation (a farewell).
        closes: bool,
    },
    /// Nothing in the table matches.
    Miss,
}

/// The FAQ agent's knowledge: entries, priced plans, and the words that ask for a price.
///
/// ```
/// use handover_sim::faq::{FaqEntry, KnowledgeTable, Lookup, PricePlan};
///
/// let table = KnowledgeTable::new()
///     .with_entry(FaqEntry::new("parking", &["parking", "estacionamento"], "Parking is free for customers.")?)
///     .with_plan(PricePlan::new("Gold", &["gold", "ouro"], "EUR 30 per month")?);
/// assert!(matches!(table.lookup("Is there parking?"), Lookup::Entry { id, .. } if id == "parking"));
/// assert!(matches!(table.lookup("Quanto custa o plano Ouro?"), Lookup::Price { plan, .. } if plan == "Gold"));
/// # Ok::<(), handover_sim::faq::FaqError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnowledgeTable {
    entries: Vec<FaqEntry>,
    plans: Vec<PricePlan>,
    price_words: Vec<String>,
}

impl Default for KnowledgeTable {
    fn default() -> Self {
        KnowledgeTable::new()
    }
}

impl KnowledgeTable {
    /// A table with no entries and no plans, and the default price words in English,
    /// Portuguese and Spanish ("price", "how much", "quanto custa", "cuánto cuesta", ...).
    ///
    /// ```
    /// # use handover_sim::faq::{KnowledgeTable, Lookup};
    /// assert_eq!(KnowledgeTable::new().lookup("What are your hours?"), Lookup::Miss);
    /// ```
    pub fn new() -> KnowledgeTable {
        KnowledgeTable {
            entries: Vec::new(),
            plans: Vec::new(),
            price_words: split_keywords(DEFAULT_PRICE_WORDS)
                .into_iter()
                .map(normalize_words)
                .collect(),
        }
    }

    /// The sample table of an online shop with a subscription: business hours, plans and
    /// prices (Basic, Pro, Enterprise), shipping, returns, password reset, payment methods,
    /// cancellation, and a farewell that closes the conversation; in English, with the main
    /// Portuguese and Spanish keywords.
    ///
    /// ```
    /// # use handover_sim::faq::{KnowledgeTable, Lookup};
    /// let table = KnowledgeTable::sample();
    /// assert!(matches!(table.lookup("Esqueci minha senha"), Lookup::Entry { id, .. } if id == "password"));
    /// assert!(matches!(table.lookup("Thanks, bye!"), Lookup::Entry { closes: true, .. }));
    /// ```
    pub fn sample() -> KnowledgeTable {
        let mut table = KnowledgeTable::new();
        for &(id, keywords, answer) in SAMPLE_ENTRIES {
            let entry = FaqEntry::new(id, &split_keywords(keywords), answer)
                .expect("the sample entries are valid");
            table = table.with_entry(if id == SAMPLE_FAREWELL {
                entry.closing()
            } else {
                entry
            });
        }
        for &(name, keywords, price) in SAMPLE_PLANS {
            let plan = PricePlan::new(name, &split_keywords(keywords), price)
                .expect("the sample plans are valid");
            table = table.with_plan(plan);
        }
        table
    }

    /// Adds an entry. Entries earlier in the table win ties.
    ///
    /// ```
    /// # use handover_sim::faq::{FaqEntry, KnowledgeTable};
    /// let table = KnowledgeTable::new().with_entry(FaqEntry::new("hours", &["hours"], "9 to 5")?);
    /// assert_eq!(table.entries().len(), 1);
    /// # Ok::<(), handover_sim::faq::FaqError>(())
    /// ```
    pub fn with_entry(mut self, entry: FaqEntry) -> KnowledgeTable {
        self.entries.push(entry);
        self
    }

    /// Adds a priced plan. Plans earlier in the table win ties.
    ///
    /// ```
    /// # use handover_sim::faq::{KnowledgeTable, PricePlan};
    /// let table = KnowledgeTable::new().with_plan(PricePlan::new("Pro", &["pro"], "USD 49")?);
    /// assert_eq!(table.plans()[0].name(), "Pro");
    /// # Ok::<(), handover_sim::faq::FaqError>(())
    /// ```
    pub fn with_plan(mut self, plan: PricePlan) -> KnowledgeTable {
        self.plans.push(plan);
        self
    }

    /// Replaces the words that ask for a price (for a table in another language, say).
    /// Words with no letter or digit are ignored.
    ///
    /// ```
    /// # use handover_sim::faq::{KnowledgeTable, Lookup, PricePlan};
    /// let table = KnowledgeTable::new()
    ///     .with_plan(PricePlan::new("Pro", &["pro"], "EUR 45")?)
    ///     .with_price_words(&["prix", "combien"]);
    /// assert!(matches!(table.lookup("Combien coûte Pro ?"), Lookup::Price { .. }));
    /// assert_eq!(table.lookup("What is the price of Pro?"), Lookup::Miss);
    /// # Ok::<(), handover_sim::faq::FaqError>(())
    /// ```
    pub fn with_price_words(mut self, words: &[&str]) -> KnowledgeTable {
        self.price_words = words
            .iter()
            .map(|w| normalize_words(w))
            .filter(|w| w.len() > 1)
            .collect();
        self
    }

    /// The entries, in table order.
    ///
    /// ```
    /// # use handover_sim::faq::KnowledgeTable;
    /// assert_eq!(KnowledgeTable::sample().entries()[0].id(), "hours");
    /// ```
    pub fn entries(&self) -> &[FaqEntry] {
        &self.entries
    }

    /// The priced plans, in table order.
    ///
    /// ```
    /// # use handover_sim::faq::KnowledgeTable;
    /// assert_eq!(KnowledgeTable::sample().plans().len(), 3);
    /// ```
    pub fn plans(&self) -> &[PricePlan] {
        &self.plans
    }

    /// Finds the answer to `question`; pure and deterministic.
    ///
    /// 1. A plan keyword together with a price word gives [`Lookup::Price`] for that plan.
    /// 2. Otherwise the entry matching the most keyword words wins, farewell entries only if
    ///    no other entry matches; ties go to the entry earlier in the table.
    /// 3. Otherwise [`Lookup::Miss`].
    ///
    /// ```
    /// # use handover_sim::faq::{KnowledgeTable, Lookup};
    /// let table = KnowledgeTable::sample();
    /// assert!(matches!(table.lookup("¿Cuánto cuesta el plan Empresarial?"), Lookup::Price { plan, .. } if plan == "Enterprise"));
    /// assert!(matches!(table.lookup("Tell me about your plans"), Lookup::Entry { id, .. } if id == "plans"));
    /// ```
    pub fn lookup(&self, question: &str) -> Lookup {
        let text = normalize_words(question);
        let asks_price = self.price_words.iter().any(|w| text.contains(w.as_str()));
        if asks_price {
            if let Some(plan) = best(&self.plans, |plan| score(&text, &plan.keywords)) {
                return Lookup::Price {
                    plan: plan.name.clone(),
                    price: plan.price.clone(),
                };
            }
        }
        let answer = best(&self.entries, |e| {
            if e.closes {
                0
            } else {
                score(&text, &e.keywords)
            }
        })
        .or_else(|| {
            best(&self.entries, |e| {
                if e.closes {
                    score(&text, &e.keywords)
                } else {
                    0
                }
            })
        });
        match answer {
            Some(entry) => Lookup::Entry {
                id: entry.id.clone(),
                answer: entry.answer.clone(),
                closes: entry.closes,
            },
            None => Lookup::Miss,
        }
    }
}

/// The item with the highest positive score, the earliest among equals.
fn best<T>(items: &[T], score: impl Fn(&T) -> usize) -> Option<&T> {
    let mut best: Option<(&T, usize)> = None;
    for item in items {
        let s = score(item);
        if s > 0 && !matches!(best, Some((_, top)) if top >= s) {
            best = Some((item, s));
        }
    }
    best.map(|(item, _)| item)
}

/// What the agent does after its reply.
enum Then {
    Continue,
    Close,
}

/// The FAQ/pricing agent: attach it to a runtime with
/// [`Handover::attach_ai_agent`](handover::Handover::attach_ai_agent).
///
/// For each customer message it looks the question up in its [`KnowledgeTable`], records the
/// skill it ran ([`LOOKUP_PRICE_SKILL`] or [`SEARCH_FAQ_SKILL`], failed when nothing matched),
/// and replies. A farewell entry ("thanks, bye") closes the conversation as resolved. When
/// nothing matches it reports so (`AiSession::could_not_answer`) before it says it does not
/// know: the policy's `ai_could_not_answer` rule decides when that goes to humans. A refund
/// request for an order runs [`REFUND_SKILL`], which the policy may make wait for a person's
/// approval. It keeps no state, reads no clock and draws no random number, so the same
/// conversation always gets the same answers.
///
/// ```
/// use std::sync::Arc;
/// use handover_sim::faq::FaqAgent;
/// use handover::*;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let handover = Handover::start(Config::new(dir.path())).await?;
/// let bot = AiAgentId::new("faq-bot")?;
/// handover
///     .register_ai_agent(AiAgentProfile {
///         id: bot.clone(),
///         name: AgentName::new("FAQ assistant")?,
///         specialties: vec![Specialty::new("faq")?, Specialty::new("pricing")?],
///     })
///     .await?;
/// handover.activate_ai_agent(bot.clone()).await?;
/// handover.attach_ai_agent(bot.clone(), Arc::new(FaqAgent::sample()))?;
///
/// let customer = CustomerId::new("cust-1")?;
/// let ana = HumanId::new("ana")?;
/// handover.register_human(NewHuman::agent(ana.clone(), AgentName::new("Ana")?)).await?;
/// handover.set_presence(ana.clone(), Presence::Available).await?;
/// let id = handover.open_conversation(customer.clone(), Channel::new("web-chat")?, Some(ana.clone())).await?.conversation_id;
/// handover.post_customer_message(id, customer, MessageText::new("How much is the Pro plan?")?).await?;
/// handover.hand_off_to_ai(id, ana, bot, None).await?;
///
/// // The agent records `lookup_price` and then replies.
/// let mut watch = handover.watch(id).await?;
/// while let Some(record) = watch.next().await.transpose()? {
///     if let Event::Conversation(ConversationEvent::MessagePosted { author: Author::Ai(_), text, .. }) = &record.event {
///         assert_eq!(text.as_str(), "The Pro plan costs USD 49 per month.");
///         break;
///     }
/// }
/// handover.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FaqAgent {
    table: KnowledgeTable,
}

impl FaqAgent {
    /// An agent answering from `table`.
    ///
    /// ```
    /// use handover_sim::faq::{FaqAgent, FaqEntry, KnowledgeTable};
    ///
    /// let table = KnowledgeTable::new().with_entry(FaqEntry::new("hours", &["hours"], "9 to 5")?);
    /// let agent = FaqAgent::new(table);
    /// assert_eq!(agent.table().entries().len(), 1);
    /// # Ok::<(), handover_sim::faq::FaqError>(())
    /// ```
    pub fn new(table: KnowledgeTable) -> FaqAgent {
        FaqAgent { table }
    }

    /// An agent answering from [`KnowledgeTable::sample`].
    pub fn sample() -> FaqAgent {
        FaqAgent::new(KnowledgeTable::sample())
    }

    /// The table it answers from.
    pub fn table(&self) -> &KnowledgeTable {
        &self.table
    }

    /// Runs [`REFUND_SKILL`] for `order`: tells the customer it is asking, waits for the
    /// skill (and the approval the policy may ask for), then says how it went.
    async fn refund(&self, session: &AiSession, order: &str) -> Result<(), AgentError> {
        let asking = format!(
            "I am asking a colleague to approve a refund for order {order}; I will be back in a \
             moment."
        );
        if !proceed(session.reply(MessageText::new(asking)?).await)? {
            return Ok(());
        }
        let input = SkillData::new(format!("{{\"order\":\"{order}\"}}"))?;
        let issued = format!("refund of order {order} issued");
        let run = session.run_skill(
            SkillName::new(REFUND_SKILL)?,
            input,
            async move { Ok(issued) },
        );
        let reply = match run.await {
            Ok(_) => format!(
                "Your refund for order {order} is on its way: it reaches your card in 5 to 10 \
                 days."
            ),
            Err(Error::SkillDenied { reason, .. }) => format!(
                "I could not get the refund for order {order} approved ({reason}). A colleague \
                 will follow up with you."
            ),
            // The assignment ended while the skill waited (or the skill was refused).
            Err(Error::Rejected(_)) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        proceed(session.reply(MessageText::new(reply)?).await)?;
        Ok(())
    }
}

/// The order a refund request names: a word for a refund and an order number (`A-1042`).
pub(crate) fn refund_order(question: &str) -> Option<String> {
    let text = normalize_words(question);
    if !REFUND_WORDS
        .iter()
        .any(|word| text.contains(&format!(" {word} ")))
    {
        return None;
    }
    question
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '?' | '!' | ';' | ':'))
        .find(|word| {
            word.len() > 2
                && word.starts_with("A-")
                && word[2..].bytes().all(|b| b.is_ascii_digit())
        })
        .map(str::to_owned)
}

/// Whether to go on after a command: `false` when it was rejected (the assignment ended).
fn proceed<T>(result: Result<T, Error>) -> Result<bool, AgentError> {
    match result {
        Ok(_) => Ok(true),
        Err(Error::Rejected(_)) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

#[async_trait]
impl AiAgentBehavior for FaqAgent {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        text: &MessageText,
    ) -> Result<(), AgentError> {
        let question = text.as_str();
        if let Some(order) = refund_order(question) {
            return self.refund(session, &order).await;
        }
        let (skill, input, outcome, reply, then) = match self.table.lookup(question) {
            Lookup::Price { plan, price } => {
                let reply = format!("The {plan} plan costs {price}.");
                (LOOKUP_PRICE_SKILL, plan, Ok(price), reply, Then::Continue)
            }
            Lookup::Entry { id, answer, closes } => {
                let then = if closes { Then::Close } else { Then::Continue };
                (SEARCH_FAQ_SKILL, question.to_owned(), Ok(id), answer, then)
            }
            Lookup::Miss => {
                let outcome = Err("no entry matches the question".to_owned());
                let reply = "Sorry, I could not find an answer to that. Could you ask it \
                             another way?";
                (
                    SEARCH_FAQ_SKILL,
                    question.to_owned(),
                    outcome,
                    reply.to_owned(),
                    Then::Continue,
                )
            }
        };
        let missed = outcome.is_err();
        let skill = Skill {
            name: SkillName::new(skill)?,
            input: SkillData::new(input)?,
            outcome: match outcome {
                Ok(result) => SkillOutcome::Succeeded(SkillData::new(result)?),
                Err(error) => SkillOutcome::Failed(SkillData::new(error)?),
            },
        };
        if !proceed(session.record_skill(skill).await)? {
            return Ok(());
        }
        // The report comes before the apology: the policy may hand the conversation to a
        // person on it, and then the apology is not sent.
        if missed {
            let why = Reason::new("no entry of the knowledge table matches the question")?;
            if !proceed(session.could_not_answer(Some(why)).await)? {
                return Ok(());
            }
        }
        if !proceed(session.reply(MessageText::new(reply)?).await)? {
            return Ok(());
        }
        match then {
            Then::Continue => {}
            Then::Close => {
                proceed(session.close(Some(Reason::new(RESOLVED_REASON)?)).await)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use handover::StreamExt as _;
    use handover::{
        AgentName, AiAgentId, AiAgentProfile, Author, Channel, Config, ConversationEvent,
        CustomerId, Durability, EscalationCause, Event, Handover, HumanId, NewHuman, Presence,
        SkillOutcome, Specialty,
    };

    fn entry_id(lookup: Lookup) -> String {
        match lookup {
            Lookup::Entry { id, .. } => id,
            other => panic!("expected an entry, got {other:?}"),
        }
    }

    #[test]
    fn matches_whole_words_only() {
        let table = KnowledgeTable::sample();
        assert_eq!(entry_id(table.lookup("When do you ship?")), "shipping");
        // "ship" inside "relationship" and "pro" inside "problem" are not words of the message.
        assert_eq!(table.lookup("Our relationship is a problem"), Lookup::Miss);
        assert_eq!(
            table.lookup("What's the cost of the product?"),
            Lookup::Miss
        );
    }

    #[test]
    fn ignores_case_accents_and_punctuation() {
        let table = KnowledgeTable::sample();
        assert_eq!(entry_id(table.lookup("HORÁRIO???")), "hours");
        assert_eq!(
            entry_id(table.lookup("¿Cómo hago una devolución?")),
            "returns"
        );
        assert_eq!(entry_id(table.lookup("Olvidé mi contraseña")), "password");
        assert_eq!(
            entry_id(table.lookup("Quais formas de pagamento?")),
            "payment"
        );
    }

    #[test]
    fn a_plan_with_a_price_word_is_a_price_lookup() {
        let table = KnowledgeTable::sample();
        let price = |plan: &str, price: &str| Lookup::Price {
            plan: plan.to_owned(),
            price: price.to_owned(),
        };
        assert_eq!(
            table.lookup("How much is the Pro plan?"),
            price("Pro", "USD 49 per month")
        );
        assert_eq!(
            table.lookup("Quanto custa o plano Básico?"),
            price("Basic", "USD 19 per month")
        );
        assert_eq!(
            table.lookup("¿Cuánto cuesta el plan Empresarial?"),
            price("Enterprise", "USD 199 per month")
        );
        // A price word without a plan is a question about plans in general.
        assert_eq!(entry_id(table.lookup("What are your prices?")), "plans");
        // A plan without a price word is too.
        assert_eq!(
            entry_id(table.lookup("Tell me about the Pro plan")),
            "plans"
        );
    }

    #[test]
    fn phrases_outweigh_single_words_and_earlier_entries_win_ties() {
        let table = KnowledgeTable::new()
            .with_entry(FaqEntry::new("a", &["card"], "A").unwrap())
            .with_entry(FaqEntry::new("b", &["gift card"], "B").unwrap())
            .with_entry(FaqEntry::new("c", &["card"], "C").unwrap());
        assert_eq!(entry_id(table.lookup("Do you sell a gift card?")), "b");
        assert_eq!(entry_id(table.lookup("Which card?")), "a");
    }

    #[test]
    fn farewells_close_only_when_nothing_else_matches() {
        let table = KnowledgeTable::sample();
        assert!(matches!(
            table.lookup("Thanks, that's all!"),
            Lookup::Entry { closes: true, .. }
        ));
        assert!(matches!(
            table.lookup("Obrigado, tchau"),
            Lookup::Entry { closes: true, .. }
        ));
        assert_eq!(
            entry_id(table.lookup("Thanks! How do I reset my password?")),
            "password"
        );
    }

    #[test]
    fn entries_and_plans_are_validated() {
        assert!(matches!(
            FaqEntry::new("", &["x"], "answer"),
            Err(FaqError::Invalid {
                what: "entry id",
                ..
            })
        ));
        assert!(matches!(
            FaqEntry::new("id", &["x"], " "),
            Err(FaqError::Invalid { what: "answer", .. })
        ));
        assert!(matches!(
            FaqEntry::new("id", &["", "--"], "answer"),
            Err(FaqError::NoKeywords { .. })
        ));
        assert!(matches!(
            PricePlan::new("Pro", &["pro"], "\u{7}"),
            Err(FaqError::Invalid { what: "price", .. })
        ));
    }

    /// Runs the sample agent on one conversation: `texts` are posted by the customer, the first
    /// before the handoff, each next one once the agent settled the previous one.
    async fn converse(texts: &[&str]) -> Vec<ConversationEvent> {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path()).durability(Durability::Buffered);
        let handover = Handover::start(config).await.unwrap();
        let bot = AiAgentId::new("faq-bot").unwrap();
        handover
            .register_ai_agent(AiAgentProfile {
                id: bot.clone(),
                name: AgentName::new("FAQ").unwrap(),
                specialties: vec![Specialty::new("faq").unwrap()],
            })
            .await
            .unwrap();
        handover.activate_ai_agent(bot.clone()).await.unwrap();
        handover
            .attach_ai_agent(bot.clone(), Arc::new(FaqAgent::sample()))
            .unwrap();
        let customer = CustomerId::new("c").unwrap();
        let human = HumanId::new("h").unwrap();
        handover
            .register_human(NewHuman::agent(human.clone(), AgentName::new("H").unwrap()))
            .await
            .unwrap();
        handover
            .set_presence(human.clone(), Presence::Available)
            .await
            .unwrap();
        let id = handover
            .open_conversation(
                customer.clone(),
                Channel::new("chat").unwrap(),
                Some(human.clone()),
            )
            .await
            .unwrap()
            .conversation_id;
        let mut watch = handover.watch(id).await.unwrap();
        let mut events = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            handover
                .post_customer_message(id, customer.clone(), MessageText::new(*text).unwrap())
                .await
                .unwrap();
            if i == 0 {
                handover
                    .hand_off_to_ai(id, human.clone(), bot.clone(), None)
                    .await
                    .unwrap();
            }
            // The agent's turn ends with its reply, then a close or escalation if any.
            let mut replied = false;
            loop {
                let record = watch.next().await.unwrap().unwrap();
                let Event::Conversation(event) = &record.event else {
                    unreachable!()
                };
                events.push(event.clone());
                match event {
                    ConversationEvent::MessagePosted {
                        author: Author::Ai(_),
                        text,
                        ..
                    } => {
                        replied = true;
                        if !text.as_str().starts_with("You're welcome") {
                            break;
                        }
                    }
                    ConversationEvent::Closed { .. } if replied => break,
                    // The policy's rule escalates on the agent's second report in a row,
                    // before its apology.
                    ConversationEvent::EscalatedToHuman { .. }
                    | ConversationEvent::EscalatedByRule { .. } => break,
                    _ => {}
                }
            }
        }
        handover.shutdown().await;
        events
    }

    fn skills(events: &[ConversationEvent]) -> Vec<(String, String, Result<String, String>)> {
        events
            .iter()
            .filter_map(|event| match event {
                ConversationEvent::AiActionRecorded { skill, .. } => Some((
                    skill.name.to_string(),
                    skill.input.to_string(),
                    match &skill.outcome {
                        SkillOutcome::Succeeded(data) => Ok(data.to_string()),
                        SkillOutcome::Failed(data) => Err(data.to_string()),
                    },
                )),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_records_skills_and_closes_on_farewell() {
        let events =
            converse(&["How much is the Pro plan?", "And shipping?", "Thanks, bye!"]).await;
        assert_eq!(
            skills(&events),
            vec![
                (
                    "lookup_price".into(),
                    "Pro".into(),
                    Ok("USD 49 per month".into())
                ),
                (
                    "search_faq".into(),
                    "And shipping?".into(),
                    Ok("shipping".into())
                ),
                (
                    "search_faq".into(),
                    "Thanks, bye!".into(),
                    Ok("goodbye".into())
                ),
            ]
        );
        assert!(matches!(
            events.last(),
            Some(ConversationEvent::Closed {
                by: Author::Ai(_),
                ..
            })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn escalates_after_two_misses_in_a_row() {
        let events = converse(&[
            "Can you paint my fence?",
            "What are your hours?",
            "Do you sell pianos?",
            "Do you tune pianos?",
        ])
        .await;
        let outcomes: Vec<bool> = skills(&events).iter().map(|(_, _, o)| o.is_ok()).collect();
        assert_eq!(outcomes, [false, true, false, false]);
        assert!(matches!(
            events.last(),
            Some(ConversationEvent::EscalatedByRule {
                cause: EscalationCause::AiCouldNotAnswer,
                ..
            })
        ));
        let reports = events
            .iter()
            .filter(|e| matches!(e, ConversationEvent::AiCouldNotAnswer { .. }))
            .count();
        assert_eq!(reports, 3, "one report for each unanswered question");
        let escalations = events
            .iter()
            .filter(|e| matches!(e, ConversationEvent::EscalatedByRule { .. }))
            .count();
        assert_eq!(escalations, 1, "one answered question resets the count");
    }
}
