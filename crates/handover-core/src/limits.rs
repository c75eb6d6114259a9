//! Every bound the domain enforces, as a named constant with its unit last.

/// Longest identifier (AI agent, human, customer, channel, skill name, specialty), in bytes.
pub const IDENTIFIER_BYTES_MAX: usize = 128;
/// Longest AI agent display name, in bytes.
pub const AGENT_NAME_BYTES_MAX: usize = 128;
/// Most specialties one AI agent may declare.
pub const SPECIALTIES_COUNT_MAX: usize = 32;
/// Longest message text, in bytes (64 KiB).
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024;
/// Longest handoff, reclaim, escalation or closing reason, in bytes (1 KiB).
pub const REASON_BYTES_MAX: usize = 1024;
/// Longest skill input or outcome detail, in bytes (64 KiB).
pub const SKILL_DATA_BYTES_MAX: usize = 64 * 1024;
/// Most teams one human may belong to.
pub const TEAMS_COUNT_MAX: usize = 32;
/// Most conversations one human may be given at once (their capacity's upper bound).
pub const HUMAN_CAPACITY_MAX: u32 = 1000;
/// Most skills an AI agent may have started in one conversation without reporting their
/// outcome.
pub const SKILLS_STARTED_MAX: usize = 64;
