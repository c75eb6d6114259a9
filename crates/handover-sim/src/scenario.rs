//! The scenario scripts: languages, topics, what customers and humans say, and the seeded draw
//! of one scenario per conversation.
//!
//! Every random choice is drawn here, up front, from the seed alone: the driver then plays each
//! scenario step by step, so the same seed gives the same conversations and the same counts.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::staff::Approval;

/// The specialties the AI agents take in turn, with the display name of each.
pub(crate) const SPECIALTIES: [(&str, &str); 3] = [
    ("pricing", "Pricing assistant"),
    ("faq", "FAQ assistant"),
    ("shipping", "Shipping assistant"),
];

pub(crate) const CHANNELS: [&str; 3] = ["web-chat", "whatsapp", "email"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Pt,
    Es,
    Fr,
    De,
    It,
}

/// Every language, those the policy scripts are drawn in; the other scripts are drawn in the
/// first three.
pub(crate) const LANGS: [Lang; 6] = [Lang::En, Lang::Pt, Lang::Es, Lang::Fr, Lang::De, Lang::It];

/// What a simple question is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Topic {
    Hours,
    Shipping,
    Returns,
    Password,
    Payment,
    /// The price of one of the sample plans (0 Basic, 1 Pro, 2 Enterprise).
    Price(usize),
}

pub(crate) const FAQ_TOPICS: [Topic; 5] = [
    Topic::Hours,
    Topic::Shipping,
    Topic::Returns,
    Topic::Password,
    Topic::Payment,
];

impl Topic {
    /// The specialty a human looks for when handing this off.
    pub(crate) fn specialty(self) -> &'static str {
        match self {
            Topic::Price(_) => "pricing",
            Topic::Shipping | Topic::Returns => "shipping",
            Topic::Hours | Topic::Password | Topic::Payment => "faq",
        }
    }

    pub(crate) fn question(self, lang: Lang) -> String {
        let plan = |names: [&str; 3], i: usize| names[i % 3].to_owned();
        match (self, lang) {
            (Topic::Hours, Lang::En) => "What are your business hours?".into(),
            (Topic::Hours, Lang::Pt) => "Qual é o horário de atendimento de vocês?".into(),
            (Topic::Hours, Lang::Es) => "¿Cuál es su horario de atención?".into(),
            (Topic::Shipping, Lang::En) => "How long does delivery take?".into(),
            (Topic::Shipping, Lang::Pt) => "Quanto tempo demora a entrega?".into(),
            (Topic::Shipping, Lang::Es) => "¿Cuánto tarda el envío?".into(),
            (Topic::Returns, Lang::En) => "How do I return an item and get a refund?".into(),
            (Topic::Returns, Lang::Pt) => "Como faço para devolver um produto?".into(),
            (Topic::Returns, Lang::Es) => "¿Cómo hago una devolución?".into(),
            (Topic::Password, Lang::En) => "I forgot my password. How do I reset it?".into(),
            (Topic::Password, Lang::Pt) => "Esqueci minha senha, o que eu faço?".into(),
            (Topic::Password, Lang::Es) => "Olvidé mi contraseña, ¿qué hago?".into(),
            (Topic::Payment, Lang::En) => "Which payment methods do you accept?".into(),
            (Topic::Payment, Lang::Pt) => "Quais formas de pagamento vocês aceitam?".into(),
            (Topic::Payment, Lang::Es) => "¿Qué métodos de pago aceptan?".into(),
            (Topic::Price(i), Lang::En) => {
                format!(
                    "How much is the {} plan?",
                    plan(["Basic", "Pro", "Enterprise"], i)
                )
            }
            (Topic::Price(i), Lang::Pt) => {
                format!(
                    "Quanto custa o plano {}?",
                    plan(["Básico", "Pro", "Empresarial"], i)
                )
            }
            (Topic::Price(i), Lang::Es) => format!(
                "¿Cuánto cuesta el plan {}?",
                plan(["Básico", "Profesional", "Empresarial"], i)
            ),
            (Topic::Hours, Lang::Fr) => "Quels sont vos horaires d'ouverture ?".into(),
            (Topic::Hours, Lang::De) => "Wann haben Sie geöffnet?".into(),
            (Topic::Hours, Lang::It) => "Quali sono i vostri orari di apertura?".into(),
            (Topic::Shipping, Lang::Fr) => "Combien de temps prend la livraison ?".into(),
            (Topic::Shipping, Lang::De) => "Wie lange dauert die Lieferung?".into(),
            (Topic::Shipping, Lang::It) => "Quanto tempo ci vuole per la consegna?".into(),
            (Topic::Returns, Lang::Fr) => "Comment retourner un article ?".into(),
            (Topic::Returns, Lang::De) => "Wie kann ich einen Artikel zurückgeben?".into(),
            (Topic::Returns, Lang::It) => "Come posso restituire un articolo?".into(),
            (Topic::Password, Lang::Fr) => "J'ai oublié mon mot de passe, que faire ?".into(),
            (Topic::Password, Lang::De) => "Ich habe mein Passwort vergessen, was tun?".into(),
            (Topic::Password, Lang::It) => "Ho dimenticato la password, cosa faccio?".into(),
            (Topic::Payment, Lang::Fr) => "Quels moyens de paiement acceptez-vous ?".into(),
            (Topic::Payment, Lang::De) => "Welche Zahlungsarten akzeptieren Sie?".into(),
            (Topic::Payment, Lang::It) => "Quali metodi di pagamento accettate?".into(),
            (Topic::Price(i), Lang::Fr) => format!(
                "Combien coûte le plan {} ?",
                plan(["Basic", "Pro", "Enterprise"], i)
            ),
            (Topic::Price(i), Lang::De) => format!(
                "Was kostet der {}-Plan?",
                plan(["Basic", "Pro", "Enterprise"], i)
            ),
            (Topic::Price(i), Lang::It) => format!(
                "Quanto costa il piano {}?",
                plan(["Basic", "Pro", "Enterprise"], i)
            ),
        }
    }

    pub(crate) fn handoff_reason(self) -> &'static str {
        match self {
            Topic::Price(_) => "Customer wants information about pricing and plans",
            _ => "Frequently asked question the AI agent answers reliably",
        }
    }
}

/// How a conversation handed to an AI agent ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The customer says thanks; the AI agent closes it as resolved.
    AiCloses,
    /// The customer asks another question, then closes it.
    FollowUp(Topic),
    /// After the AI answered, the human who handed it off reclaims it (their supervisor does
    /// when they are signed out), writes, and closes it.
    Reclaimed,
    /// After the AI answered, the tenant's supervisor assumes the conversation, writes, and
    /// closes it.
    Assumed,
    /// The customer closes it after the AI's answer.
    CustomerCloses,
    /// The customer asks for a human: the policy escalates it in the same step; it waits in
    /// its team's queue until the router gives it to a human, who closes it.
    AsksForHuman,
    /// Two questions the AI agent cannot answer: the agent escalates it; routed as above.
    AiGivesUp,
    /// Handed to the tenant's slow agent, the customer asks a question it never answers: the
    /// reply deadline passes and the conversation is escalated with cause `ai_timeout`;
    /// routed as above.
    SlowAi,
}

/// Something the handoff guidance keeps with humans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Difficulty {
    Complaint,
    Negotiation,
}

impl Difficulty {
    pub(crate) fn message(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Difficulty::Complaint, Lang::En) => {
                "This is unacceptable, I want to file a complaint about my order."
            }
            (Difficulty::Complaint, Lang::Pt) => "Péssimo serviço, quero fazer uma reclamação.",
            (Difficulty::Complaint, Lang::Es) => "Quiero poner una queja, el servicio es horrible.",
            (Difficulty::Negotiation, Lang::En) => "Can we negotiate a discount for 50 seats?",
            (Difficulty::Negotiation, Lang::Pt) => "Podemos negociar um desconto no contrato?",
            (Difficulty::Negotiation, Lang::Es) => "¿Podemos negociar un descuento por volumen?",
            // The difficult scripts are drawn in English, Portuguese and Spanish only.
            (difficulty, Lang::Fr | Lang::De | Lang::It) => difficulty.message(Lang::En),
        }
    }

    pub(crate) fn specialty(self) -> &'static str {
        match self {
            Difficulty::Complaint => "faq",
            Difficulty::Negotiation => "pricing",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Script {
    /// A simple question: handed to an AI agent (or, now and then, answered by the human).
    Simple {
        topic: Topic,
        handoff: bool,
        ending: Ending,
    },
    /// A complaint or negotiation: the human keeps it, though some try a handoff anyway and
    /// the policy refuses it.
    Difficult {
        difficulty: Difficulty,
        tries_handoff: bool,
    },
    /// The human passes the question on, with a reason: to the other team's queue (where the
    /// router gives it to one of that team) or straight to another signed-in human; whoever
    /// gets it answers and closes it.
    Transferred { topic: Topic, to_team: bool },
    /// Handed to an AI agent after the first question, then a trial of the escalation policy.
    Policy { topic: Topic, trial: Trial },
}

/// What a policy script tries, after the handoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trial {
    /// The customer grows frustrated (the `frustration` rule).
    Frustrated,
    /// The customer asks the same question again and again (`going_in_circles`).
    Circles,
    /// Questions the FAQ agent cannot answer (`ai_could_not_answer`).
    Unanswerable,
    /// A refund the FAQ agent runs as a skill that waits for approval (`skill_approval`),
    /// which the staff gives, refuses or lets lapse.
    Refund(Approval),
}

/// Every random choice of one conversation, drawn up front.
#[derive(Clone, Debug)]
pub(crate) struct Scenario {
    pub(crate) index: usize,
    /// Index into the run's tenants.
    pub(crate) tenant: usize,
    /// Index into [`TEAMS`]: the queue it waits in.
    pub(crate) team: usize,
    pub(crate) lang: Lang,
    pub(crate) channel: &'static str,
    /// When the customer arrives, in simulated milliseconds from the start of the shift.
    pub(crate) arrival_ms: u64,
    /// How many simulation steps pass between two of its actions.
    pub(crate) pace: u64,
    /// Picks among the agents with the wanted specialty (modulo their number).
    pub(crate) agent_pick: usize,
    /// Picks the human a transfer goes to (modulo the candidates).
    pub(crate) other_pick: usize,
    /// The random part of its conversation id.
    pub(crate) id_bytes: [u8; 10],
    /// The human leaves a note for staff.
    pub(crate) whisper_staff: bool,
    /// The human who handed it off leaves guidance for the AI agent.
    pub(crate) whisper_ai: bool,
    /// The human raises "needs help"; the supervisor lowers it.
    pub(crate) flag: bool,
    pub(crate) script: Script,
}

/// The teams of every tenant.
pub(crate) const TEAMS: [&str; 2] = ["billing", "support"];

/// When a customer arrives, in milliseconds from the start of a shift of `shift_ms`: two in
/// five at any time of the shift, the others in its two rush hours (the windows from 20% to
/// 28% and from 55% to 63% of the shift), when queues form.
fn arrival(rng: &mut ChaCha8Rng, shift_ms: u64) -> u64 {
    let shift_ms = shift_ms.max(1);
    let within = |rng: &mut ChaCha8Rng, from: u64, to: u64| {
        let (from, to) = (shift_ms * from / 100, shift_ms * to / 100);
        rng.gen_range(from..to.max(from + 1))
    };
    match rng.gen_range(0..5) {
        0 | 1 => rng.gen_range(0..shift_ms),
        2 | 3 if rng.gen_bool(0.5) => within(rng, 20, 28),
        _ => within(rng, 55, 63),
    }
}

/// Draws one scenario per conversation; arrivals fall on whole steps of `step_ms` within
/// the first `shift_ms` of the shift.
/// Percent of conversations that play a policy script instead of the one drawn for them.
pub(crate) const POLICY_SCRIPTS_PERCENT: u32 = 20;

/// Mixed into the seed of the policy scripts' own generator, so that adding them left every
/// other draw of a seed as it was.
const POLICY_SEED_MIX: u64 = 0x9071_C1E5_5C21_9751;

pub(crate) fn draw_scenarios(
    seed: u64,
    conversations: usize,
    tenants: usize,
    shift_ms: u64,
    step_ms: u64,
) -> Vec<Scenario> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // The policy scripts draw from their own generator: a conversation keeps its arrival,
    // tenant, team, channel and pace whether or not it plays one.
    let mut policy_rng = ChaCha8Rng::seed_from_u64(seed ^ POLICY_SEED_MIX);
    (0..conversations)
        .map(|index| {
            let lang = [Lang::En, Lang::Pt, Lang::Es][rng.gen_range(0..3)];
            let channel = CHANNELS[rng.gen_range(0..CHANNELS.len())];
            let tenant = rng.gen_range(0..tenants.max(1));
            let team = rng.gen_range(0..TEAMS.len());
            let arrival_ms = arrival(&mut rng, shift_ms) / step_ms * step_ms;
            let pace = rng.gen_range(2..=6);
            let agent_pick = rng.gen_range(0..1024);
            let other_pick = rng.gen_range(0..1024);
            let id_bytes: [u8; 10] = rng.gen();
            let faq_topic = FAQ_TOPICS[rng.gen_range(0..FAQ_TOPICS.len())];
            let price_topic = Topic::Price(rng.gen_range(0..3));
            let either = if rng.gen_bool(0.5) {
                faq_topic
            } else {
                price_topic
            };
            let roll = rng.gen_range(0..100);
            let script = match roll {
                0..=44 => {
                    let topic = if roll < 25 { faq_topic } else { price_topic };
                    let ending = match rng.gen_range(0..100) {
                        0..=24 => Ending::AiCloses,
                        25..=46 => Ending::Reclaimed,
                        47..=56 => Ending::Assumed,
                        57..=78 => {
                            let other = FAQ_TOPICS[rng.gen_range(0..FAQ_TOPICS.len())];
                            Ending::FollowUp(if other == topic { price_topic } else { other })
                        }
                        _ => Ending::CustomerCloses,
                    };
                    Script::Simple {
                        topic,
                        handoff: rng.gen_range(0..100) < 90,
                        ending,
                    }
                }
                45..=59 => Script::Difficult {
                    difficulty: if roll < 52 {
                        Difficulty::Complaint
                    } else {
                        Difficulty::Negotiation
                    },
                    tries_handoff: rng.gen_range(0..100) < 35,
                },
                60..=69 => Script::Simple {
                    topic: either,
                    handoff: true,
                    ending: Ending::AsksForHuman,
                },
                70..=77 => Script::Simple {
                    topic: faq_topic,
                    handoff: true,
                    ending: Ending::AiGivesUp,
                },
                78..=87 => Script::Simple {
                    topic: faq_topic,
                    handoff: true,
                    ending: Ending::SlowAi,
                },
                _ => Script::Transferred {
                    topic: either,
                    to_team: rng.gen_range(0..100) < 60,
                },
            };
            let (lang, script) = match policy_rng.gen_range(0..100) < POLICY_SCRIPTS_PERCENT {
                false => (lang, script),
                true => {
                    let lang = LANGS[policy_rng.gen_range(0..LANGS.len())];
                    let trial = match policy_rng.gen_range(0..4) {
                        0 => Trial::Frustrated,
                        1 => Trial::Circles,
                        2 => Trial::Unanswerable,
                        _ => Trial::Refund(crate::staff::approval_choice(&mut policy_rng)),
                    };
                    let topic = if policy_rng.gen_bool(0.5) {
                        faq_topic
                    } else {
                        price_topic
                    };
                    (lang, Script::Policy { topic, trial })
                }
            };
            let difficult = matches!(script, Script::Difficult { .. });
            let whisper_staff = rng.gen_range(0..100) < 20;
            let whisper_ai = rng.gen_range(0..100) < 15;
            let flag = rng.gen_range(0..100) < if difficult { 50 } else { 5 };
            Scenario {
                index,
                tenant,
                team,
                lang,
                channel,
                arrival_ms,
                pace,
                agent_pick,
                other_pick,
                id_bytes,
                whisper_staff,
                whisper_ai,
                flag,
                script,
            }
        })
        .collect()
}

/// The customer's and humans' lines, by language.
pub(crate) mod lines {
    use super::Lang;

    pub(crate) fn greeting(lang: Lang, human: &str) -> String {
        match lang {
            Lang::En => format!("Hi, this is {human}. How can I help you today?"),
            Lang::Pt => format!("Olá, aqui é {human}. Como posso ajudar?"),
            Lang::Es => format!("Hola, soy {human}. ¿En qué puedo ayudarte?"),
            Lang::Fr => format!("Bonjour, ici {human}. Comment puis-je vous aider ?"),
            Lang::De => format!("Hallo, hier ist {human}. Wie kann ich helfen?"),
            Lang::It => format!("Ciao, sono {human}. Come posso aiutarti?"),
        }
    }

    pub(crate) fn thanks(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Thanks, that's all!",
            Lang::Pt => "Obrigado, era só isso!",
            Lang::Es => "¡Gracias, eso es todo!",
            // Drawn in English, Portuguese and Spanish only.
            Lang::Fr | Lang::De | Lang::It => thanks(Lang::En),
        }
    }

    pub(crate) fn wants_human(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "I want a human, please.",
            Lang::Pt => "Quero falar com um atendente.",
            Lang::Es => "Quiero hablar con un agente, por favor.",
            // Drawn in English, Portuguese and Spanish only.
            Lang::Fr | Lang::De | Lang::It => wants_human(Lang::En),
        }
    }

    /// Two questions the FAQ agent's sample table cannot answer.
    pub(crate) fn unanswerable(lang: Lang) -> [&'static str; 2] {
        match lang {
            Lang::En => ["Can you paint my fence?", "Do you tune pianos?"],
            Lang::Pt => ["Vocês consertam bicicletas?", "Vocês afinam pianos?"],
            Lang::Es => ["¿Reparan bicicletas?", "¿Afinan pianos?"],
            Lang::Fr => [
                "Pouvez-vous repeindre ma clôture ?",
                "Accordez-vous les pianos ?",
            ],
            Lang::De => [
                "Können Sie meinen Zaun streichen?",
                "Stimmen Sie auch Klaviere?",
            ],
            Lang::It => [
                "Potete dipingere la mia recinzione?",
                "Accordate pianoforti?",
            ],
        }
    }

    pub(crate) fn human_answer(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Let me answer that myself: I have sent the details to your email.",
            Lang::Pt => "Eu mesmo respondo: enviei os detalhes para o seu email.",
            Lang::Es => "Te respondo yo: te envié los detalles por correo.",
            // Drawn in English, Portuguese and Spanish only.
            Lang::Fr | Lang::De | Lang::It => human_answer(Lang::En),
        }
    }

    pub(crate) fn human_takes_over(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Hi, I am taking over from our assistant. Is there anything else?",
            Lang::Pt => "Olá, eu assumo a partir daqui. Posso ajudar em algo mais?",
            Lang::Es => "Hola, sigo yo desde aquí. ¿Algo más en lo que pueda ayudar?",
            Lang::Fr => "Bonjour, je prends le relais de notre assistant. Autre chose ?",
            Lang::De => "Hallo, ich übernehme von unserem Assistenten. Noch etwas?",
            Lang::It => "Ciao, continuo io al posto del nostro assistente. Altro?",
        }
    }

    /// The question the slow AI agents never answer (in every language: the marker they
    /// recognise).
    pub(crate) fn slow_question(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Could you look up the status of order A-1042 for me?",
            Lang::Pt => "Pode consultar a situação do pedido A-1042 para mim?",
            Lang::Es => "¿Puede consultar la situación del pedido A-1042?",
            // Drawn in English, Portuguese and Spanish only.
            Lang::Fr | Lang::De | Lang::It => slow_question(Lang::En),
        }
    }

    /// Whether `text` is one of the questions the slow AI agents never answer.
    pub(crate) fn is_slow_question(text: &str) -> bool {
        [Lang::En, Lang::Pt, Lang::Es]
            .into_iter()
            .any(|lang| slow_question(lang) == text)
    }

    pub(crate) fn staff_note(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Long-time customer; check the open invoices before answering.",
            Lang::Pt => "Cliente antigo; verificar as faturas em aberto antes de responder.",
            Lang::Es => "Cliente antiguo; revisar las facturas pendientes antes de responder.",
            Lang::Fr => "Client de longue date ; vérifier les factures ouvertes avant de répondre.",
            Lang::De => "Langjähriger Kunde; vor der Antwort die offenen Rechnungen prüfen.",
            Lang::It => "Cliente di lunga data; controllare le fatture aperte prima di rispondere.",
        }
    }

    pub(crate) const AI_GUIDANCE: &str =
        "Keep the answer short and offer the help center link at the end.";

    pub(crate) const TRANSFER_TO_TEAM: &str = "The question belongs to the other team";

    pub(crate) const TRANSFER_TO_HUMAN: &str = "A colleague knows this customer's account";

    pub(crate) fn transferred_answer(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Hi, a colleague passed your question to me: here is the answer.",
            Lang::Pt => "Olá, um colega me passou sua pergunta: aqui está a resposta.",
            Lang::Es => "Hola, un compañero me pasó tu pregunta: aquí tienes la respuesta.",
            // Drawn in English, Portuguese and Spanish only.
            Lang::Fr | Lang::De | Lang::It => transferred_answer(Lang::En),
        }
    }

    pub(crate) fn human_empathy(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "I am sorry about this. I will sort it out for you personally.",
            Lang::Pt => "Sinto muito por isso. Vou resolver pessoalmente.",
            Lang::Es => "Lo siento mucho. Lo resolveré personalmente.",
            // Drawn in English, Portuguese and Spanish only.
            Lang::Fr | Lang::De | Lang::It => human_empathy(Lang::En),
        }
    }

    /// A frustrated customer's messages, each scoring at least 0.9 on the frustration lexicon
    /// and marked by "!!", without a complaint or a request for a person in them.
    pub(crate) fn frustrated(lang: Lang) -> [&'static str; 3] {
        match lang {
            Lang::En => [
                "What a waste of time!!",
                "I am fed up with this!!",
                "Useless, another waste of time!!",
            ],
            Lang::Pt => [
                "Que perda de tempo!!",
                "Estou frustrado, isso é uma perda de tempo!!",
                "Inútil, outra perda de tempo!!",
            ],
            Lang::Es => [
                "¡¡Qué pérdida de tiempo!!",
                "¡¡Estoy harto de esto!!",
                "¡¡Esto es una pérdida de tiempo!!",
            ],
            Lang::Fr => [
                "Quelle perte de temps !!",
                "J'en ai marre !!",
                "Encore une perte de temps !!",
            ],
            Lang::De => [
                "Was für eine Zeitverschwendung!!",
                "Ich bin es leid, das ist Zeitverschwendung!!",
                "Das ist nutzlos, reine Zeitverschwendung!!",
            ],
            Lang::It => [
                "Che perdita di tempo!!",
                "Sono stufo di tutto questo!!",
                "È inutile, una perdita di tempo!!",
            ],
        }
    }

    /// The same question asked again with other capitals and punctuation, three times.
    pub(crate) fn circling(question: &str) -> [String; 3] {
        let bare: String = question
            .chars()
            .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '-' || *c == '\'')
            .collect();
        [
            question.to_lowercase(),
            format!("{}??", bare.trim()),
            bare.trim().to_uppercase(),
        ]
    }

    /// A customer asking for a refund of [`REFUND_ORDER`].
    pub(crate) fn refund_request(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Please refund order A-1042, it arrived broken.",
            Lang::Pt => "Quero o reembolso do pedido A-1042, chegou quebrado.",
            Lang::Es => "Quiero el reembolso del pedido A-1042, llegó roto.",
            Lang::Fr => "Je voudrais le remboursement de la commande A-1042, arrivée cassée.",
            Lang::De => {
                "Ich möchte eine Rückerstattung für die Bestellung A-1042, sie kam kaputt an."
            }
            Lang::It => "Vorrei il rimborso dell'ordine A-1042, è arrivato rotto.",
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::faq::{KnowledgeTable, Lookup};
    use handover::{Concern, DefaultPolicy, Policy};

    use super::*;

    const LANGS: [Lang; 3] = [Lang::En, Lang::Pt, Lang::Es];

    #[test]
    fn every_simple_question_is_answered_and_raises_no_concern() {
        let table = KnowledgeTable::sample();
        let policy = DefaultPolicy::default();
        let topics = FAQ_TOPICS.into_iter().chain((0..3).map(Topic::Price));
        for topic in topics {
            // The policy scripts ask them in all six languages.
            for lang in super::LANGS {
                let question = topic.question(lang);
                assert_eq!(policy.assess(&question), vec![], "{question:?}");
                let found = table.lookup(&question);
                match (topic, &found) {
                    (Topic::Price(_), Lookup::Price { .. }) => {}
                    (Topic::Price(_), _) => panic!("{question:?} gave {found:?}"),
                    (
                        _,
                        Lookup::Entry {
                            id, closes: false, ..
                        },
                    ) => {
                        let expected = format!("{topic:?}").to_lowercase();
                        assert_eq!(id, &expected, "{question:?}");
                    }
                    _ => panic!("{question:?} gave {found:?}"),
                }
            }
        }
    }

    #[test]
    fn scripted_lines_mean_what_the_scripts_expect() {
        let table = KnowledgeTable::sample();
        let policy = DefaultPolicy::default();
        for lang in LANGS {
            assert!(matches!(
                table.lookup(lines::thanks(lang)),
                Lookup::Entry { closes: true, .. }
            ));
            assert_eq!(policy.assess(lines::thanks(lang)), vec![]);
            for question in lines::unanswerable(lang) {
                assert_eq!(table.lookup(question), Lookup::Miss, "{question:?}");
                assert_eq!(policy.assess(question), vec![], "{question:?}");
            }
            let slow = lines::slow_question(lang);
            assert_eq!(policy.assess(slow), vec![], "{slow:?}");
            assert!(lines::is_slow_question(slow));
            assert!(!lines::is_slow_question(lines::thanks(lang)));
            assert_eq!(
                policy.assess(lines::wants_human(lang)),
                vec![Concern::HumanRequested]
            );
            assert_eq!(
                policy.assess(Difficulty::Complaint.message(lang)),
                vec![Concern::Complaint]
            );
            assert_eq!(
                policy.assess(Difficulty::Negotiation.message(lang)),
                vec![Concern::Negotiation]
            );
        }
    }

    #[test]
    fn policy_lines_mean_what_the_policy_scripts_expect() {
        use handover_core::signals::{frustration, Fingerprint};

        let table = KnowledgeTable::sample();
        let policy = DefaultPolicy::default();
        for lang in super::LANGS {
            for line in lines::frustrated(lang) {
                assert_eq!(policy.assess(line), vec![], "{line:?}");
                // With "!!", each scores the most: two of them after a calm question average
                // above the default policy's threshold of 0.6 over 3 messages.
                assert!(frustration(line) >= 0.99, "{line:?}: {}", frustration(line));
                assert_eq!(crate::faq::refund_order(line), None, "{line:?}");
            }
            for question in lines::unanswerable(lang) {
                assert_eq!(table.lookup(question), Lookup::Miss, "{question:?}");
                assert_eq!(policy.assess(question), vec![], "{question:?}");
            }
            let refund = lines::refund_request(lang);
            assert_eq!(policy.assess(refund), vec![], "{refund:?}");
            assert_eq!(
                crate::faq::refund_order(refund).as_deref(),
                Some("A-1042"),
                "{refund:?}"
            );
            for topic in FAQ_TOPICS.into_iter().chain((0..3).map(Topic::Price)) {
                let question = topic.question(lang);
                let asked = Fingerprint::of(&question);
                for again in lines::circling(&question) {
                    assert_eq!(policy.assess(&again), vec![], "{again:?}");
                    assert_eq!(table.lookup(&again), table.lookup(&question), "{again:?}");
                    let similarity = asked.similarity(&Fingerprint::of(&again));
                    assert!(similarity >= 0.99, "{again:?}: {similarity}");
                }
            }
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_scenarios() {
        let a = draw_scenarios(7, 500, 2, 480 * 60_000, 10_000);
        let b = draw_scenarios(7, 500, 2, 480 * 60_000, 10_000);
        let c = draw_scenarios(8, 500, 2, 480 * 60_000, 10_000);
        let key = |s: &[Scenario]| format!("{s:?}");
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        // Every script appears in a run of this size.
        let has = |f: &dyn Fn(&Script) -> bool| a.iter().any(|s| f(&s.script));
        assert!(has(&|s| matches!(
            s,
            Script::Difficult {
                tries_handoff: true,
                ..
            }
        )));
        assert!(has(&|s| matches!(s, Script::Simple { handoff: false, .. })));
        assert!(has(&|s| matches!(
            s,
            Script::Transferred { to_team: true, .. }
        )));
        assert!(has(&|s| matches!(
            s,
            Script::Transferred { to_team: false, .. }
        )));
        for trial in [
            Trial::Frustrated,
            Trial::Circles,
            Trial::Unanswerable,
            Trial::Refund(Approval::Approve),
            Trial::Refund(Approval::Deny),
            Trial::Refund(Approval::Lapse),
        ] {
            assert!(has(
                &|s| matches!(s, Script::Policy { trial: t, .. } if *t == trial)
            ));
        }
        // Only the policy scripts speak French, German or Italian.
        assert!(a.iter().all(|s| matches!(s.script, Script::Policy { .. })
            || matches!(s.lang, Lang::En | Lang::Pt | Lang::Es)));
        assert!(a
            .iter()
            .all(|s| s.arrival_ms % 10_000 == 0 && s.arrival_ms < 480 * 60_000));
        assert!(a.iter().any(|s| s.tenant == 1) && a.iter().any(|s| s.tenant == 0));
        for ending in [
            Ending::AiCloses,
            Ending::Reclaimed,
            Ending::Assumed,
            Ending::SlowAi,
            Ending::CustomerCloses,
            Ending::AsksForHuman,
            Ending::AiGivesUp,
        ] {
            assert!(has(
                &|s| matches!(s, Script::Simple { ending: e, .. } if *e == ending)
            ));
        }
    }
}
