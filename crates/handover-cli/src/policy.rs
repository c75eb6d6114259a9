//! `handover policy`: the escalation policy as an operator reads and checks it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use handover_core::conversation::{evolve, Conversation};
use handover_core::rules::{PolicySpec, Rules, DEFAULT_POLICY_TOML};
use handover_core::{
    AgentName, AiAgentId, Author, Channel, ConversationEvent, CustomerId, HumanId, MessageText,
    Policy as _, TenantId, Timestamp,
};
use serde::Serialize;

/// What `handover policy` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum PolicyCommand {
    /// Print the default policy file, a starting point for your own.
    Default,
    /// Check a policy file: its syntax, each rule's kind and parameters, unique names. Prints
    /// the policy's name, version and rules, or the line and column of the first mistake.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
    },
    /// Say which rules a customer's message would fire while an AI agent is active (a fresh
    /// AI-active conversation with that single message), the concerns the lexicon hears in
    /// it and its frustration score.
    Test {
        /// The policy file (TOML); the default policy without it.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// The customer's message.
        #[arg(long, value_name = "TEXT")]
        message: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Reads and checks a policy file: `Err` with the file's name and the mistake's line and
/// column, for the caller to print.
pub(crate) fn read_rules(file: &std::path::Path) -> anyhow::Result<Rules> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Rules::parse(&text).map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))
}

/// One rule that fires, as `policy test --json` prints it.
#[derive(Debug, Serialize)]
struct Fired {
    rule: String,
    cause: &'static str,
    reason: String,
}

/// What `policy test --json` prints.
#[derive(Debug, Serialize)]
struct Tested {
    policy: String,
    policy_version: String,
    message: String,
    escalate: bool,
    cause: Option<&'static str>,
    rule: Option<String>,
    reason: Option<String>,
    rules: Vec<Fired>,
    concerns: Vec<&'static str>,
    frustration: f64,
}

/// A fresh conversation an AI agent holds, with the customer's `message` posted: what the
/// message rules see.
fn test_message(rules: &Rules, message: &str) -> anyhow::Result<Tested> {
    let text = MessageText::new(message).map_err(|error| anyhow::anyhow!("--message: {error}"))?;
    let concerns = rules.assess(text.as_str());
    let customer = CustomerId::new("customer").expect("a constant id");
    let events = [
        ConversationEvent::Started {
            tenant: TenantId::default_tenant(),
            customer: customer.clone(),
            channel: Channel::new("web-chat").expect("a constant channel"),
            team: None,
            language: None,
            at: Timestamp(0),
        },
        ConversationEvent::HandedOffToAi {
            agent_id: AiAgentId::new("ai-agent").expect("a constant id"),
            agent_name: AgentName::new("AI agent").expect("a constant name"),
            by_human: HumanId::new("human").expect("a constant id"),
            reason: None,
        },
        ConversationEvent::MessagePosted {
            author: Author::Customer(customer),
            text: text.clone(),
            concerns: concerns.clone(),
        },
    ];
    let state = events
        .iter()
        .try_fold(Conversation::NotOpened, evolve)
        .map_err(|rejection| anyhow::anyhow!("cannot build the test conversation: {rejection}"))?;
    let open = state.state().context("the test conversation is not open")?;
    let fired: Vec<Fired> = rules
        .all_on_customer_message(open, &concerns, rules)
        .into_iter()
        .map(|fired| Fired {
            rule: fired.rule.as_str().to_owned(),
            cause: fired.cause.as_str(),
            reason: fired.reason.as_str().to_owned(),
        })
        .collect();
    let first = fired.first();
    Ok(Tested {
        policy: rules.name().to_owned(),
        policy_version: rules.version().as_str().to_owned(),
        message: message.to_owned(),
        escalate: first.is_some(),
        cause: first.map(|f| f.cause),
        rule: first.map(|f| f.rule.clone()),
        reason: first.map(|f| f.reason.clone()),
        concerns: concerns.iter().map(|c| c.as_str()).collect(),
        frustration: rules.frustration(text.as_str()),
        rules: fired,
    })
}

fn describe_tested(tested: &Tested) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "policy {:?}, version {}",
        tested.policy, tested.policy_version
    );
    let concerns = if tested.concerns.is_empty() {
        "none".to_owned()
    } else {
        tested.concerns.join(", ")
    };
    let _ = writeln!(out, "concerns: {concerns}");
    let _ = writeln!(out, "frustration: {:.2}", tested.frustration);
    match tested.rules.split_first() {
        None => {
            let _ = writeln!(out, "escalates: no, no rule fires");
        }
        Some((first, others)) => {
            let _ = writeln!(
                out,
                "escalates: yes, by rule {} (cause {}): {}",
                first.rule, first.cause, first.reason
            );
            for other in others {
                let _ = writeln!(
                    out,
                    "also fires: rule {} (cause {}): {}",
                    other.rule, other.cause, other.reason
                );
            }
        }
    }
    out
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// Runs `handover policy`: 0 when done (a sound file), 1 for a file with a mistake (or one
/// that cannot be read).
pub(crate) fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Default => {
            print!("{DEFAULT_POLICY_TOML}");
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            match PolicySpec::parse(&text) {
                Ok(policy) => {
                    println!(
                        "sound: policy {:?}, version {}, {} rules",
                        policy.name,
                        policy.version(),
                        policy.rules.len()
                    );
                    for rule in &policy.rules {
                        println!("  {}", rule.name);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("error: {}: {error}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        PolicyCommand::Test {
            policy,
            message,
            json,
        } => {
            let rules = match &policy {
                Some(file) => match read_rules(file) {
                    Ok(rules) => rules,
                    Err(error) => {
                        eprintln!("error: {error:#}");
                        return Ok(ExitCode::FAILURE);
                    }
                },
                None => Rules::default_rules().clone(),
            };
            let tested = test_message(&rules, &message)?;
            if json {
                print(&format!("{}\n", serde_json::to_string(&tested)?))?;
            } else {
                print(&describe_tested(&tested))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
