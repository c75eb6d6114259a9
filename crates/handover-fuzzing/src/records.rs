//! `record_decoder`: the store's record decoder, `handover_store::decode_record`.
//!
//! The first byte of the input chooses the mode, the rest is its input:
//!
//! - even: **raw bytes**, decoded as they are;
//! - odd: **structured**: a valid record built from the input (any stream, place, time and
//!   event, with the previous record's hash zero or from the input) is encoded, must decode to
//!   itself, and is then mutated by the operations the rest of the input lists (flip a bit, set,
//!   insert or delete a byte, truncate, append, or recompute the checksum, as a forger would).
//!
//! Properties, in both modes:
//!
//! - decoding never panics, and fails only with `StoreError::Corrupted` and `Damage::Record`;
//! - a decode allocates at most [`allocation_bound`] bytes (checked when the binary installs
//!   the counting allocator, see the crate's documentation): a damaged length prefix must not
//!   allocate beyond the record size limit (but see [`LIST_PREALLOCATION_BYTES`]: a list's
//!   length can cost 1 MiB);
//! - whatever decodes re-encodes to the same bytes: a record has one encoding (but see
//!   [`NON_MINIMAL_INTEGERS_DECODE`]: integers in long form decode too);
//! - a mutated record whose checksum was not recomputed is rejected as corrupted, or, if the
//!   mutations cancel out, decodes to the identical record.

use handover_store::{
    decode_record, encode_record, record_previous_hash, Damage, RecordHash, RecordedEvent,
    StoreError, RECORD_BYTES_MAX, RECORD_FORMAT_VERSION,
};

use crate::input::Input;
use crate::values;
use crate::INSTRUMENTED_SYSTEM;

/// Header of format 1: version, CRC-32.
const HEADER_V1: usize = 1 + 4;
/// Header of format 2: version, CRC-32, the previous record's hash.
const HEADER_V2: usize = HEADER_V1 + RecordHash::LEN;
/// Mutations one structured input may apply.
const MUTATIONS_MAX: usize = 16;

/// What one input came to, for the replay test's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeOutcome {
    /// The bytes decoded, and re-encode to themselves.
    Decoded,
    /// The bytes decoded, but hold integers in long form (see [`NON_MINIMAL_INTEGERS_DECODE`]),
    /// so they re-encode to a shorter encoding of the same record.
    DecodedLongForm,
    /// The decoder rejected the bytes as corrupted.
    Rejected,
}

/// What a damaged list length makes a decode allocate before it fails: serde's `Vec`
/// preallocates from the length it is told, up to 1 MiB (serde's `size_hint::cautious`),
/// before it reads an element, and bincode's serde decoder passes the length on unchecked (its
/// limit counts the bytes it reads; only its native decoder claims a list's length against it).
/// So 64 bytes under a recomputed checksum allocate 1 MiB, four times the 256 KiB that
/// `docs/storage-format.md` promises. Set this to 0 once decoding holds lists to the limit.
pub const LIST_PREALLOCATION_BYTES: usize = 1024 * 1024;

/// The most a decode of `len` bytes may allocate: the record size limit, which bincode's limit
/// holds a damaged string length to, plus what a damaged list length preallocates (see
/// [`LIST_PREALLOCATION_BYTES`]), plus 64 bytes per input byte for what a sound body really
/// holds (a list of one-character identifiers costs a 24-byte `String` and its byte for every
/// 2 bytes of input, and a growing `Vec` up to twice that).
pub fn allocation_bound(len: usize) -> u64 {
    (RECORD_BYTES_MAX + LIST_PREALLOCATION_BYTES + 64 * len) as u64
}

/// Bytes allocated while `f` ran, if the counting allocator is installed.
fn metered<T>(f: impl FnOnce() -> T) -> (T, Option<u64>) {
    let before = INSTRUMENTED_SYSTEM.stats();
    let value = f();
    let after = INSTRUMENTED_SYSTEM.stats();
    // A binary that did not install it never counts an allocation.
    if before.allocations == 0 {
        return (value, None);
    }
    let allocated = (after.bytes_allocated - before.bytes_allocated) as u64;
    let grown = (after.bytes_reallocated - before.bytes_reallocated).max(0) as u64;
    (value, Some(allocated + grown))
}

/// Decodes `bytes`, checking the allocation bound and that a failure is typed.
fn decode_checked(bytes: &[u8]) -> Option<RecordedEvent> {
    let (result, allocated) = metered(|| decode_record(bytes));
    if let Some(allocated) = allocated {
        assert!(
            allocated <= allocation_bound(bytes.len()),
            "decoding {} bytes allocated {allocated} bytes, over the bound of {}",
            bytes.len(),
            allocation_bound(bytes.len())
        );
    }
    match result {
        Ok(record) => Some(record),
        Err(StoreError::Corrupted {
            damage: Damage::Record,
            ..
        }) => None,
        Err(other) => panic!("decode_record failed with {other:?}, not as a corrupted record"),
    }
}

/// Whether `decode_record` accepts integers written in more bytes than they need: bincode 2
/// decodes a varint's long form (`fb 05 00`, a u16 marker and 5) as readily as its short one
/// (`05`). It does today, so bytes holding such an integer, under a checksum recomputed over
/// them, decode to a record whose own encoding is shorter. Set this to false once the decoder
/// rejects them, and the round trip is checked byte for byte again.
pub const NON_MINIMAL_INTEGERS_DECODE: bool = true;

/// Checks that `record`, decoded from `bytes`, re-encodes to them: a record has one encoding,
/// but for integers in long form while [`NON_MINIMAL_INTEGERS_DECODE`] holds.
fn check_round_trip(bytes: &[u8], record: &RecordedEvent) -> DecodeOutcome {
    let previous = record_previous_hash(bytes).unwrap_or(RecordHash::ZERO);
    let encoded = match encode_record(record, &previous) {
        Ok(encoded) => encoded,
        Err(error) => panic!("a decoded record does not encode: {error}: {record:?}"),
    };
    assert_eq!(
        decode_record(&encoded).ok().as_ref(),
        Some(record),
        "a re-encoded record does not decode to itself"
    );
    // Format 1 is read, never written: its body must be the body format 2 writes.
    let stored_body = match bytes[0] {
        1 => &bytes[HEADER_V1..],
        2 => &bytes[HEADER_V2..],
        version => panic!("decoded a record of unknown format version {version}"),
    };
    let encoded_body = &encoded[HEADER_V2..];
    if stored_body == encoded_body {
        if bytes[0] == 2 {
            assert_eq!(encoded, bytes, "equal bodies, other headers");
        }
        return DecodeOutcome::Decoded;
    }
    // The only other encodings bincode decodes are integers in long form: longer bodies.
    assert!(
        NON_MINIMAL_INTEGERS_DECODE && encoded_body.len() < stored_body.len(),
        "a record decoded from {} bytes re-encodes to {} other bytes: {record:?}\n\
         stored:     {bytes:02x?}\nre-encoded: {encoded:02x?}",
        bytes.len(),
        encoded.len()
    );
    DecodeOutcome::DecodedLongForm
}

fn raw(bytes: &[u8]) -> DecodeOutcome {
    match decode_checked(bytes) {
        Some(record) => check_round_trip(bytes, &record),
        None => DecodeOutcome::Rejected,
    }
}

/// Recomputes the CRC-32 of a record's header over its version byte and everything after
/// the header of format 1, as both formats define it.
fn forge_checksum(bytes: &mut [u8]) {
    if bytes.len() < HEADER_V1 {
        return;
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes[..1]);
    hasher.update(&bytes[HEADER_V1..]);
    let crc = hasher.finalize().to_be_bytes();
    bytes[1..HEADER_V1].copy_from_slice(&crc);
}

/// A valid record built from the input, encoded, and mutated.
fn structured(input: &mut Input<'_>) -> DecodeOutcome {
    let record = values::recorded_event(input);
    let previous = match input.bool() {
        false => RecordHash::ZERO,
        true => {
            let mut hash = [0u8; RecordHash::LEN];
            let taken = input.take(RecordHash::LEN);
            hash[..taken.len()].copy_from_slice(taken);
            RecordHash(hash)
        }
    };
    let encoded = match encode_record(&record, &previous) {
        Ok(encoded) => encoded,
        Err(error) => panic!("a valid record does not encode: {error}: {record:?}"),
    };
    assert_eq!(encoded[0], RECORD_FORMAT_VERSION);
    assert_eq!(record_previous_hash(&encoded), Some(previous));
    assert_eq!(
        decode_checked(&encoded).as_ref(),
        Some(&record),
        "a valid record does not decode to itself"
    );
    let mut bytes = encoded.clone();
    let mut forged = false;
    for _ in 0..MUTATIONS_MAX {
        if input.is_empty() {
            break;
        }
        let op = input.below(7);
        let at = |input: &mut Input<'_>, len: usize| {
            usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % len.max(1)
        };
        match op {
            0 if !bytes.is_empty() => {
                let i = at(input, bytes.len());
                bytes[i] ^= 1 << (input.byte() % 8);
            }
            1 if !bytes.is_empty() => {
                let i = at(input, bytes.len());
                bytes[i] = input.byte();
            }
            2 => {
                let i = at(input, bytes.len() + 1);
                bytes.insert(i, input.byte());
            }
            3 if !bytes.is_empty() => {
                let i = at(input, bytes.len());
                bytes.remove(i);
            }
            4 => {
                let len = at(input, bytes.len() + 1);
                bytes.truncate(len);
            }
            5 => {
                let n = input.below(16) + 1;
                bytes.extend_from_slice(input.take(n));
            }
            6 => {
                forge_checksum(&mut bytes);
                forged = true;
            }
            _ => {}
        }
    }
    if bytes == encoded {
        assert_eq!(decode_checked(&bytes).as_ref(), Some(&record));
        return DecodeOutcome::Decoded;
    }
    match decode_checked(&bytes) {
        None => DecodeOutcome::Rejected,
        Some(decoded) => {
            // Only a forger who recomputed the checksum gets changed bytes past it.
            assert!(
                forged,
                "a mutated record passed its checksum: {decoded:?}\n\
                 original: {encoded:02x?}\nmutated:  {bytes:02x?}"
            );
            check_round_trip(&bytes, &decoded)
        }
    }
}

/// Runs the `record_decoder` body on `data`, checking every property; what it came to.
pub fn run_record_decoder(data: &[u8]) -> DecodeOutcome {
    let Some((&mode, rest)) = data.split_first() else {
        return raw(data);
    };
    match mode % 2 {
        0 => raw(rest),
        _ => structured(&mut Input::new(rest)),
    }
}
