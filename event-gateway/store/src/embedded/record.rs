//! The on-disk record format of the embedded log: framing (length + CRC32) and the record types.
//!
//! Every record is one frame: `len: u32 LE | crc32(payload): u32 LE | payload`, where the payload starts with
//! a one-byte record type. Integers are little-endian; strings and byte strings are `u32 LE` length-prefixed.

use bytes::Bytes;

/// Size of a frame header (length + CRC).
pub(crate) const FRAME_HEADER: usize = 8;

/// Largest payload a frame may claim; anything larger is treated as damage, not a record.
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

/// Magic bytes of a segment's header record; changes with incompatible format changes.
pub(crate) const MAGIC: &[u8; 8] = b"FAASGWL1";

const T_HEADER: u8 = 1;
const T_EVENT: u8 = 2;
const T_ACK: u8 = 3;
const T_RETRY: u8 = 4;
const T_DEDUPE: u8 = 5;
const T_KV_PUT: u8 = 6;
const T_KV_DELETE: u8 = 7;
const T_KV_CLOCK: u8 = 8;

/// One delivery as stored inside an event record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredDelivery {
    /// Index of the target in the event's original target list (stable across compactions).
    pub idx: u32,
    pub target: String,
    pub attempt: u32,
    /// Not due before this time (microseconds since the Unix epoch).
    pub not_before: u64,
}

/// A decoded log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// First record of every segment.
    Header { next_seq: u64 },
    /// An event with its live deliveries.
    Event { seq: u64, received_at: u64, source: String, id: String, body: Bytes, deliveries: Vec<StoredDelivery> },
    /// A delivery was acked (delivered or dead-lettered).
    Ack { seq: u64, idx: u32 },
    /// A delivery failed and is due again at `not_before` with this attempt count (absolute values, so
    /// replaying a retry twice is harmless).
    Retry { seq: u64, idx: u32, attempt: u32, not_before: u64 },
    /// A de-duplication key whose event is no longer live (written by compaction).
    Dedupe { received_at: u64, source: String, id: String },
    /// A key–value write; `expires_at` is in microseconds since the Unix epoch, 0 for none.
    KvPut { key: String, revision: u64, expires_at: u64, value: Bytes },
    /// A key–value delete, taking a revision of its own.
    KvDelete { key: String, revision: u64 },
    /// The next key–value revision to hand out (written by compaction, so that the revisions of keys
    /// deleted and compacted away are never handed out again).
    KvClock { next_revision: u64 },
}

impl Record {
    /// Appends this record, framed, to `out`; returns the frame's length.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(&[0u8; FRAME_HEADER]);
        match self {
            Record::Header { next_seq } => {
                out.push(T_HEADER);
                out.extend_from_slice(MAGIC);
                put_u64(out, *next_seq);
            }
            Record::Event { seq, received_at, source, id, body, deliveries } => {
                out.push(T_EVENT);
                put_u64(out, *seq);
                put_u64(out, *received_at);
                put_bytes(out, source.as_bytes());
                put_bytes(out, id.as_bytes());
                put_bytes(out, body);
                put_u32(out, deliveries.len() as u32);
                for d in deliveries {
                    put_u32(out, d.idx);
                    put_bytes(out, d.target.as_bytes());
                    put_u32(out, d.attempt);
                    put_u64(out, d.not_before);
                }
            }
            Record::Ack { seq, idx } => {
                out.push(T_ACK);
                put_u64(out, *seq);
                put_u32(out, *idx);
            }
            Record::Retry { seq, idx, attempt, not_before } => {
                out.push(T_RETRY);
                put_u64(out, *seq);
                put_u32(out, *idx);
                put_u32(out, *attempt);
                put_u64(out, *not_before);
            }
            Record::Dedupe { received_at, source, id } => {
                out.push(T_DEDUPE);
                put_u64(out, *received_at);
                put_bytes(out, source.as_bytes());
                put_bytes(out, id.as_bytes());
            }
            Record::KvPut { key, revision, expires_at, value } => {
                out.push(T_KV_PUT);
                put_bytes(out, key.as_bytes());
                put_u64(out, *revision);
                put_u64(out, *expires_at);
                put_bytes(out, value);
            }
            Record::KvDelete { key, revision } => {
                out.push(T_KV_DELETE);
                put_bytes(out, key.as_bytes());
                put_u64(out, *revision);
            }
            Record::KvClock { next_revision } => {
                out.push(T_KV_CLOCK);
                put_u64(out, *next_revision);
            }
        }
        let payload_len = out.len() - start - FRAME_HEADER;
        let crc = crc32fast::hash(&out[start + FRAME_HEADER..]);
        out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        out.len() - start
    }

    /// Encodes this record as one frame.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes a payload (the bytes after the frame header, CRC already checked).
    pub(crate) fn decode(payload: &[u8]) -> Result<Record, String> {
        let mut r = Reader { buf: payload, pos: 0 };
        let record = match r.u8()? {
            T_HEADER => {
                let magic = r.take(MAGIC.len())?;
                if magic != MAGIC {
                    return Err(format!("unknown log format {:?}", String::from_utf8_lossy(magic)));
                }
                Record::Header { next_seq: r.u64()? }
            }
            T_EVENT => {
                let seq = r.u64()?;
                let received_at = r.u64()?;
                let source = r.string()?;
                let id = r.string()?;
                let body = Bytes::copy_from_slice(r.bytes()?);
                let n = r.u32()? as usize;
                let mut deliveries = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    deliveries.push(StoredDelivery {
                        idx: r.u32()?,
                        target: r.string()?,
                        attempt: r.u32()?,
                        not_before: r.u64()?,
                    });
                }
                Record::Event { seq, received_at, source, id, body, deliveries }
            }
            T_ACK => Record::Ack { seq: r.u64()?, idx: r.u32()? },
            T_RETRY => Record::Retry { seq: r.u64()?, idx: r.u32()?, attempt: r.u32()?, not_before: r.u64()? },
            T_DEDUPE => Record::Dedupe { received_at: r.u64()?, source: r.string()?, id: r.string()? },
            T_KV_PUT => Record::KvPut {
                key: r.string()?,
                revision: r.u64()?,
                expires_at: r.u64()?,
                value: Bytes::copy_from_slice(r.bytes()?),
            },
            T_KV_DELETE => Record::KvDelete { key: r.string()?, revision: r.u64()? },
            T_KV_CLOCK => Record::KvClock { next_revision: r.u64()? },
            other => return Err(format!("unknown record type {other}")),
        };
        if r.pos != payload.len() {
            return Err(format!("{} unexpected trailing bytes in record", payload.len() - r.pos));
        }
        Ok(record)
    }
}

/// What sits at one offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A frame whose length and CRC check out: its payload and total length.
    Valid { payload: &'a [u8], len: usize },
    /// Not a valid frame (short, implausible length, or CRC mismatch).
    Invalid,
}

/// Reads the frame at `offset` of `data` (which must be `< data.len()`).
pub(crate) fn frame_at(data: &[u8], offset: usize) -> Frame<'_> {
    let rest = &data[offset..];
    if rest.len() < FRAME_HEADER {
        return Frame::Invalid;
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    // A payload holds at least its type byte: a zero length (as in a zero-filled tail) is never a record.
    if len == 0 || len > MAX_PAYLOAD || rest.len() - FRAME_HEADER < len {
        return Frame::Invalid;
    }
    let payload = &rest[FRAME_HEADER..FRAME_HEADER + len];
    // The type byte first: it rules out most offsets of a damaged tail before hashing up to its
    // whole length, which `next_valid_frame` would otherwise do at every byte.
    if !(T_HEADER..=T_KV_CLOCK).contains(&payload[0]) || crc32fast::hash(payload) != crc {
        return Frame::Invalid;
    }
    Frame::Valid { payload, len: FRAME_HEADER + len }
}

/// The first offset after `offset` at which a valid frame starts, if any (used to tell a torn tail, after
/// which nothing valid follows, from damage in the middle of a segment).
pub(crate) fn next_valid_frame(data: &[u8], offset: usize) -> Option<usize> {
    (offset + 1..data.len()).find(|&at| matches!(frame_at(data, at), Frame::Valid { .. }))
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() - self.pos < n {
            return Err(format!("record truncated at byte {} (wanted {n} more)", self.pos));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("invalid UTF-8 in record before byte {}", self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record> {
        vec![
            Record::Header { next_seq: 42 },
            Record::Event {
                seq: 7,
                received_at: 1_700_000_000_000_000,
                source: "/src".into(),
                id: "e-1".into(),
                body: Bytes::from_static(br#"{"specversion":"1.0"}"#),
                deliveries: vec![
                    StoredDelivery { idx: 0, target: "a".into(), attempt: 0, not_before: 5 },
                    StoredDelivery { idx: 2, target: "c".into(), attempt: 3, not_before: 9 },
                ],
            },
            Record::Ack { seq: 7, idx: 0 },
            Record::Retry { seq: 7, idx: 2, attempt: 4, not_before: 11 },
            Record::Dedupe { received_at: 3, source: "/s".into(), id: "x".into() },
            Record::KvPut { key: "state/a".into(), revision: 9, expires_at: 0, value: Bytes::from_static(b"v") },
            Record::KvPut { key: "k".into(), revision: 10, expires_at: 77, value: Bytes::new() },
            Record::KvDelete { key: "state/a".into(), revision: 11 },
            Record::KvClock { next_revision: 12 },
        ]
    }

    #[test]
    fn every_record_type_round_trips_through_a_frame() {
        for record in samples() {
            let frame = record.encode();
            match frame_at(&frame, 0) {
                Frame::Valid { payload, len } => {
                    assert_eq!(len, frame.len());
                    assert_eq!(Record::decode(payload).unwrap(), record);
                }
                Frame::Invalid => panic!("frame of {record:?} not valid"),
            }
        }
    }

    #[test]
    fn damaged_frames_are_invalid() {
        let frame = samples()[1].encode();
        // Cut in half.
        assert_eq!(frame_at(&frame[..frame.len() / 2], 0), Frame::Invalid);
        // One flipped bit in the payload.
        let mut flipped = frame.clone();
        flipped[20] ^= 0x10;
        assert_eq!(frame_at(&flipped, 0), Frame::Invalid);
        // Zero-filled tail.
        assert_eq!(frame_at(&[0u8; 64], 0), Frame::Invalid);
    }

    #[test]
    fn next_valid_frame_finds_the_record_after_damage() {
        let mut data = samples()[1].encode();
        let second_at = data.len();
        data.extend(samples()[2].encode());
        data[20] ^= 0x10;
        assert_eq!(next_valid_frame(&data, 0), Some(second_at));
        // Garbage with nothing valid after it.
        let garbage = vec![0xA5u8; 300];
        assert_eq!(next_valid_frame(&garbage, 0), None);
    }

    #[test]
    fn unknown_record_type_and_trailing_bytes_are_errors() {
        assert!(Record::decode(&[99]).unwrap_err().contains("unknown record type 99"));
        let mut frame = Record::Ack { seq: 1, idx: 1 }.encode();
        frame.push(0);
        assert!(Record::decode(&frame[FRAME_HEADER..]).unwrap_err().contains("trailing"));
    }
}
