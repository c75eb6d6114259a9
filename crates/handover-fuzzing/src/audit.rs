//! `audit_input`: a data directory built from the input, through the audit.
//!
//! The first byte of the input chooses how the directory is built:
//!
//! - even: **a real log, mutated**. A small log written once through `SledStore` (two AI
//!   agents, two conversations, every state; its sled key/value pairs and the store's own files
//!   beside sled's, such as the anchor) is copied into a fresh directory after the operations the
//!   rest of the input lists: flip a bit of a key or a value, remove a pair, copy or swap values
//!   between keys, truncate a value, add a pair (a valid record or raw bytes under a key of the
//!   store's layout), re-encode a record with a changed field and a recomputed checksum, or
//!   damage or remove one of the store's files;
//! - odd: **key/value pairs from the input**, under the store's key layout
//!   (`docs/storage-format.md`): records (valid ones built from the input, or raw bytes) under
//!   stream keys, index chunks, first-layout index entries, and any other key.
//!
//! Then the audit runs on it: `verify_dir`, and on a store opened with `open_data_dir`,
//! `Replay::from_store`, both export formats, `stats`, and each conversation's `timeline`.
//!
//! Properties:
//!
//! - nothing panics: every call returns `Ok` or a typed `AuditError`;
//! - a log that verifies as sound replays, exports one JSON line per event in both formats,
//!   sums up, and tells each conversation's timeline, all without error and with the same
//!   number of events;
//! - the real log, unchanged, verifies as sound with all its events;
//! - a real log whose store files (the anchor) are intact never verifies as sound, nor
//!   replays, with fewer events than were acknowledged: a shorter log is reported, not read as
//!   complete.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use handover_audit::{ExportFormat, ExportOptions, Replay, VerifyReport};
use handover_core::StreamId;
use handover_sled::{SledOptions, SledStore};
use handover_store::{
    decode_record, encode_record, record_previous_hash, EventStore, ExpectedVersion, RecordHash,
};

use crate::commands::{recorded_history, Script};
use crate::input::Input;
use crate::values;

/// sled's default tree, which `Db` is rather than opens.
const DEFAULT_TREE: &[u8] = b"__sled__default";
/// The tree that holds the log.
const LOG_TREE: &[u8] = b"log";
/// Files sled keeps in a data directory; any other regular file is the store's own.
const SLED_FILES: [&str; 2] = ["db", "conf"];
/// Operations one input may apply, and pairs it may write, so that executions stay fast.
const OPERATIONS_MAX: usize = 24;

/// A key and its value.
type Pair = (Vec<u8>, Vec<u8>);

/// A data directory's content: sled's trees, and the store's own files beside them.
#[derive(Clone, Debug, Default)]
struct DirImage {
    trees: Vec<(Vec<u8>, Vec<Pair>)>,
    files: Vec<(String, Option<Vec<u8>>)>,
}

/// What one input came to, for the replay test's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditFigures {
    /// The log verified as sound, with this many events.
    pub sound_events: Option<u64>,
    /// The store opened and the replay succeeded, with this many events.
    pub replayed_events: Option<u64>,
}

/// The real log every mutated input starts from, and how many events it holds.
struct BaseLog {
    image: DirImage,
    events: u64,
}

/// A fresh temporary directory, in memory where the system has one: executions stay fast.
fn temporary_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("handover-fuzz")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::Builder::new()
        .prefix("handover-fuzz")
        .tempdir()
        .expect("a temporary directory")
}

/// The script of the base log: two conversations through every state.
fn base_script() -> Script {
    Script::default()
        .open(0, Some(0))
        .customer_says(0, 0)
        .hand_off(0, 0)
        .ai_says(None, 0)
        .skill(None, false)
        .reclaim(1)
        .human_says(1)
        .switch()
        .open(1, None)
        .hand_off(2, 1)
        .skill(None, true)
        .customer_says(1, 7)
        .switch()
        .hand_off(1, 1)
        .escalate(None, 0)
        .close(1)
}

fn base_log() -> &'static BaseLog {
    static BASE: OnceLock<BaseLog> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = temporary_dir();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let store = SledStore::open(dir.path(), SledOptions::default()).expect("a new store");
        let mut versions = std::collections::HashMap::<StreamId, u64>::new();
        let mut events = 0;
        for (stream, batch) in recorded_history(&base_script().0) {
            let version = versions.entry(stream.clone()).or_insert(0);
            let expected = match *version {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v),
            };
            *version += batch.len() as u64;
            events += batch.len() as u64;
            runtime
                .block_on(store.append(&stream, expected, batch))
                .expect("the base log appends")
                .expect("no conflict");
        }
        drop(store);
        BaseLog {
            image: read_image(dir.path()),
            events,
        }
    })
}

/// Reads a closed data directory back.
fn read_image(dir: &Path) -> DirImage {
    let db = SledStore::open_raw(dir, Duration::from_secs(5)).expect("the base log reopens");
    let mut image = DirImage::default();
    for name in db.tree_names() {
        let tree = if &name[..] == DEFAULT_TREE {
            (*db).clone()
        } else {
            db.open_tree(&name).expect("a tree")
        };
        let pairs = tree
            .iter()
            .map(|pair| {
                let (key, value) = pair.expect("a pair");
                (key.to_vec(), value.to_vec())
            })
            .collect();
        image.trees.push((name.to_vec(), pairs));
    }
    drop(db);
    let mut files: Vec<(String, Option<Vec<u8>>)> = std::fs::read_dir(dir)
        .expect("the directory lists")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let own = entry.file_type().ok()?.is_file()
                && !SLED_FILES.contains(&name.as_str())
                && !name.starts_with("snap.");
            own.then(|| (name, std::fs::read(entry.path()).ok()))
        })
        .collect();
    files.sort();
    image.files = files;
    image
}

/// Writes `image` into the fresh directory `dir`.
fn write_image(dir: &Path, image: &DirImage) -> Result<(), sled::Error> {
    {
        let db = sled::Config::new().path(dir).open()?;
        for (name, pairs) in &image.trees {
            let tree = if &name[..] == DEFAULT_TREE {
                (*db).clone()
            } else {
                db.open_tree(name)?
            };
            for (key, value) in pairs {
                tree.insert(&key[..], &value[..])?;
            }
        }
        db.flush()?;
    }
    for (name, content) in &image.files {
        if let Some(content) = content {
            std::fs::write(dir.join(name), content).map_err(sled::Error::Io)?;
        }
    }
    Ok(())
}

/// A key of the store's layout: a stream record, an index chunk, a first-layout index entry,
/// a mark or command key, or raw bytes.
fn key(input: &mut Input<'_>) -> Vec<u8> {
    let stream_key = |input: &mut Input<'_>| {
        let mut key = Vec::new();
        match values::stream(input) {
            StreamId::Conversation(id) => {
                key.push(b'c');
                key.extend_from_slice(id.as_bytes());
            }
            StreamId::AiAgent(id) => {
                key.push(b'a');
                key.extend_from_slice(id.as_str().as_bytes());
                key.push(0);
            }
            StreamId::Human(id) => {
                key.push(b'h');
                key.extend_from_slice(id.as_str().as_bytes());
                key.push(0);
            }
        }
        key
    };
    let number = |input: &mut Input<'_>| match input.byte() {
        0xFF => input.u64(),
        small => u64::from(small),
    };
    let mut key = Vec::new();
    match input.below(6) {
        0 | 1 => {
            key.push(b's');
            key.extend(stream_key(input));
            key.extend_from_slice(&number(input).to_be_bytes());
        }
        2 => {
            key.push(b'G');
            key.extend_from_slice(&number(input).to_be_bytes());
        }
        3 => {
            key.push(b'g');
            key.extend_from_slice(&number(input).to_be_bytes());
        }
        4 => {
            key.push([b'M', b'C'][input.below(2)]);
            key.extend(stream_key(input));
        }
        _ => {
            let n = input.below(24);
            key.extend_from_slice(input.take(n));
        }
    }
    key
}

/// A value: a valid record, an index chunk of entries from the input, or raw bytes.
fn value(input: &mut Input<'_>) -> Vec<u8> {
    match input.below(3) {
        0 => {
            let record = values::recorded_event(input);
            let previous = match input.bool() {
                false => RecordHash::ZERO,
                true => RecordHash([input.byte(); RecordHash::LEN]),
            };
            encode_record(&record, &previous).expect("a valid record encodes")
        }
        1 => {
            // An index chunk: [1][CRC-32 of the entries][entries], each a stream key and seq.
            let mut entries = Vec::new();
            for _ in 0..input.below(4) + 1 {
                let mut entry = key(&mut Input::new(&[0, input.byte(), input.byte()]));
                entry.remove(0);
                entries.extend(entry);
            }
            let mut chunk = vec![1];
            chunk.extend_from_slice(&crc32fast::hash(&entries).to_be_bytes());
            chunk.extend(entries);
            chunk
        }
        _ => {
            let n = usize::from(input.byte());
            input.take(n).to_vec()
        }
    }
}

/// Applies one mutation of the real log; whether it touched the store's own files.
fn mutate(image: &mut DirImage, input: &mut Input<'_>) -> bool {
    let pairs: Vec<(usize, usize)> = image
        .trees
        .iter()
        .enumerate()
        .flat_map(|(t, (_, pairs))| (0..pairs.len()).map(move |p| (t, p)))
        .collect();
    let pick = |input: &mut Input<'_>| {
        let n = usize::from(u16::from_le_bytes([input.byte(), input.byte()]));
        pairs.get(n % pairs.len().max(1)).copied()
    };
    let op = input.below(9);
    match op {
        0 | 1 => {
            let Some((t, p)) = pick(input) else {
                return false;
            };
            let (key, value) = &mut image.trees[t].1[p];
            let target = if op == 0 { value } else { key };
            if !target.is_empty() {
                let at = usize::from(input.byte()) % target.len();
                target[at] ^= 1 << (input.byte() % 8);
            }
        }
        2 => {
            if let Some((t, p)) = pick(input) {
                image.trees[t].1.remove(p);
            }
        }
        3 | 4 => {
            let (Some(a), Some(b)) = (pick(input), pick(input)) else {
                return false;
            };
            let value_a = image.trees[a.0].1[a.1].1.clone();
            let value_b = std::mem::replace(&mut image.trees[b.0].1[b.1].1, value_a);
            if op == 4 {
                image.trees[a.0].1[a.1].1 = value_b;
            }
        }
        5 => {
            if let Some((t, p)) = pick(input) {
                let value = &mut image.trees[t].1[p].1;
                value.truncate(usize::from(input.byte()) % (value.len() + 1));
            }
        }
        6 => {
            let pair = (key(input), value(input));
            if let Some((_, pairs)) = image.trees.iter_mut().find(|(name, _)| name == LOG_TREE) {
                pairs.push(pair);
            }
        }
        7 => {
            // Re-encode a record with one field changed and its checksum right: only the
            // checks beyond the checksum (place, chain, anchor, rules) can tell.
            let Some((t, p)) = pick(input) else {
                return false;
            };
            let value = &mut image.trees[t].1[p].1;
            let Ok(mut record) = decode_record(value) else {
                return false;
            };
            let previous = record_previous_hash(value).unwrap_or(RecordHash::ZERO);
            match input.below(5) {
                0 => record.position = record.position.wrapping_add(u64::from(input.byte())),
                1 => record.seq = record.seq.wrapping_add(u64::from(input.byte())),
                2 => record.recorded_at.0 -= i64::from(input.byte()) * 1_000_000,
                3 => record.event = values::event(input),
                _ => record.stream = values::stream(input),
            }
            let previous = match input.bool() {
                false => previous,
                true => RecordHash([input.byte(); RecordHash::LEN]),
            };
            if let Ok(encoded) = encode_record(&record, &previous) {
                *value = encoded;
            }
        }
        _ => {
            if image.files.is_empty() {
                return false;
            }
            let f = input.below(image.files.len());
            let content = &mut image.files[f].1;
            match (input.below(3), content.as_mut()) {
                (0, _) => *content = None,
                (1, Some(bytes)) if !bytes.is_empty() => {
                    let at =
                        usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % bytes.len();
                    bytes[at] ^= 1 << (input.byte() % 8);
                }
                (_, Some(bytes)) => {
                    let len = bytes.len();
                    bytes.truncate(
                        usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % (len + 1),
                    );
                }
                _ => {}
            }
            return true;
        }
    }
    false
}

/// Runs the audit on `dir`, checking what a sound verdict promises.
fn audit(dir: &Path) -> AuditFigures {
    let mut figures = AuditFigures::default();
    let verdict = handover_audit::verify_dir(dir);
    let sound_events = match &verdict {
        Ok(VerifyReport::Sound { events, .. }) => Some(*events),
        _ => None,
    };
    figures.sound_events = sound_events;
    let store = match handover_audit::open_data_dir(dir) {
        Ok(store) => store,
        Err(error) => {
            assert!(
                sound_events.is_none(),
                "the log verified as sound but does not open: {error}"
            );
            return figures;
        }
    };
    let replay = match Replay::from_store(&store) {
        Ok(replay) => replay,
        Err(error) => {
            assert!(
                sound_events.is_none(),
                "the log verified as sound but does not replay: {error}"
            );
            return figures;
        }
    };
    figures.replayed_events = Some(replay.events());
    if let Some(events) = sound_events {
        assert_eq!(
            replay.events(),
            events,
            "verify and replay count differently"
        );
    }
    for format in [ExportFormat::JsonLines, ExportFormat::CloudEvents] {
        let mut out = Vec::new();
        let options = ExportOptions {
            format,
            conversation: None,
        };
        match handover_audit::export(&store, &options, &mut out) {
            Ok(lines) => {
                let text = String::from_utf8(out).expect("the export is UTF-8");
                assert_eq!(
                    text.lines().count() as u64,
                    lines,
                    "{format:?} miscounts its lines"
                );
                for line in text.lines() {
                    if let Err(error) = serde_json::from_str::<serde_json::Value>(line) {
                        panic!("{format:?} wrote a line that is not JSON ({error}): {line}");
                    }
                }
                assert_eq!(lines, replay.events(), "{format:?} exports another count");
            }
            Err(error) => assert!(
                sound_events.is_none(),
                "a sound log does not export as {format:?}: {error}"
            ),
        }
    }
    if let Err(error) = handover_audit::stats(&store) {
        assert!(sound_events.is_none(), "a sound log has no stats: {error}");
    }
    let ids: Vec<_> = replay.conversations().map(|history| history.id()).collect();
    for id in ids {
        match handover_audit::timeline(&store, id) {
            Ok(_) => {}
            Err(_) if sound_events.is_none() => {}
            Err(error) => panic!("a sound log has no timeline for {id}: {error}"),
        }
    }
    figures
}

/// Runs the `audit_input` body on `data`, checking every property; what it came to.
pub fn run_audit_input(data: &[u8]) -> AuditFigures {
    let mut input = Input::new(data);
    let mode = input.byte();
    let dir = temporary_dir();
    let (base_events, files_intact) = if mode % 2 == 0 {
        let base = base_log();
        let mut image = base.image.clone();
        let mut files_intact = true;
        for _ in 0..OPERATIONS_MAX {
            if input.is_empty() {
                break;
            }
            files_intact &= !mutate(&mut image, &mut input);
        }
        write_image(dir.path(), &image).expect("a data directory writes");
        (Some(base.events), files_intact)
    } else {
        let mut pairs = Vec::new();
        for _ in 0..OPERATIONS_MAX {
            if input.is_empty() {
                break;
            }
            pairs.push((key(&mut input), value(&mut input)));
        }
        let image = DirImage {
            trees: vec![(LOG_TREE.to_vec(), pairs)],
            files: Vec::new(),
        };
        write_image(dir.path(), &image).expect("a data directory writes");
        (None, false)
    };
    let figures = audit(dir.path());
    if let Some(base_events) = base_events {
        if data.len() <= 1 {
            assert_eq!(
                figures.sound_events,
                Some(base_events),
                "the real log, unchanged, does not verify as sound with all its events"
            );
        }
        if files_intact {
            for (what, events) in [
                ("verified as sound", figures.sound_events),
                ("replayed", figures.replayed_events),
            ] {
                if let Some(events) = events {
                    assert!(
                        events >= base_events,
                        "the log {what} with {events} events, fewer than the {base_events} \
                         acknowledged, though the store's files (the anchor) are intact"
                    );
                }
            }
        }
    }
    figures
}
