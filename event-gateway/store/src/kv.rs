//! The key–value side of a gateway store: durable values under string keys, with per-key revisions for
//! compare-and-set and an optional time-to-live.
//!
//! The durable conductor keeps its run records, completion records and join counters here, and the
//! state service (`cx.state()`) keeps functions' state; both need the same few operations, on the
//! embedded log and on JetStream alike.
//!
//! Semantics every implementation keeps (checked for each by [`crate::testing::kv_contract`]):
//! - **Durable on acknowledgement.** A put or delete that returned `Ok` survives a crash of the process.
//! - **Linearizable per key.** Once a write has returned, every later read of that key sees it (or a
//!   newer write); a conditional write is decided against the latest write of that key, including one
//!   not yet acknowledged to its own caller.
//! - **Revisions.** Every successful put or delete takes a new revision from one counter of the store,
//!   strictly greater than every revision handed out before, including those of keys since deleted (so a
//!   stale [`Expect::Revision`] can never match a key deleted and written again: no ABA).
//! - **Time-to-live.** A key written with a TTL reads as absent once `expires_at` has passed, whether or
//!   not it has been swept away yet; for [`Expect`] it is absent too.
//! - **Keys** follow [`check_key`]; values are opaque bytes up to the store's limit.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use crate::StoreError;

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// A key's current value, as [`KvStore::kv_get`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The value, as written.
    pub value: Bytes,
    /// The revision of the write that set it; pass it to [`Expect::Revision`] to change it only if
    /// nothing else has since.
    pub revision: u64,
    /// When it stops being readable, if it was written with a time-to-live.
    pub expires_at: Option<SystemTime>,
}

/// The condition a write is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Whatever the key holds (or whether it exists).
    Any,
    /// Only if the key is absent (never written, deleted, or expired).
    Absent,
    /// Only if the key's current revision is this one.
    Revision(u64),
}

impl Expect {
    /// Whether a key whose current revision is `current` (`None`: absent) meets this condition.
    ///
    /// ```
    /// use faas_gateway_store::kv::Expect;
    /// assert!(Expect::Any.met_by(None));
    /// assert!(Expect::Absent.met_by(None));
    /// assert!(!Expect::Absent.met_by(Some(3)));
    /// assert!(Expect::Revision(3).met_by(Some(3)));
    /// assert!(!Expect::Revision(3).met_by(None));
    /// ```
    pub fn met_by(self, current: Option<u64>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Revision(wanted) => current == Some(wanted),
        }
    }
}

/// One page of [`KvStore::kv_list`]: keys in byte order, with their entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvPage {
    /// The entries, by key in ascending byte order.
    pub entries: Vec<(String, KvEntry)>,
    /// When more keys follow: pass it as `after` to get the next page (it is the page's last key).
    pub next: Option<String>,
}

/// Durable key–value storage beside the events (see the [module documentation](self)).
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// The key's current entry, or `None` if it is absent or expired.
    async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>, StoreError>;

    /// Writes `value` under `key` if `expect` holds, durably; returns the new revision. `ttl`: the key
    /// reads as absent once this much time has passed (`None`: it lasts until deleted).
    ///
    /// Errors: [`StoreError::Conflict`] (with the key's current revision) when `expect` does not hold,
    /// [`StoreError::BadKey`], [`StoreError::ValueTooLarge`].
    async fn kv_put(&self, key: &str, value: Bytes, expect: Expect, ttl: Option<Duration>) -> Result<u64, StoreError>;

    /// Deletes `key` if `expect` holds, durably. Returns whether it existed (deleting an absent key with
    /// [`Expect::Any`] is not an error, and writes nothing).
    async fn kv_delete(&self, key: &str, expect: Expect) -> Result<bool, StoreError>;

    /// Up to `limit` (at least 1) live keys starting with `prefix`, in byte order, after the key `after`
    /// if given.
    async fn kv_list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<KvPage, StoreError>;
}

/// Checks a key against the rules every store applies, naming the problem:
/// 1 to [`MAX_KEY_BYTES`] bytes of UTF-8 with no control characters, in `/`-separated segments of
/// which none is empty (no leading, trailing or doubled `/`). Stores map keys to their own naming
/// rules (JetStream subjects, for instance) and back, so any key that passes works on every store.
///
/// ```
/// use faas_gateway_store::kv::check_key;
/// assert!(check_key("state/shop/cart:42").is_ok());
/// assert!(check_key("runs/01J/steps/3").is_ok());
/// assert!(check_key("").unwrap_err().to_string().contains("empty"));
/// assert!(check_key("a//b").unwrap_err().to_string().contains("empty segment"));
/// assert!(check_key("tab\there").unwrap_err().to_string().contains("control character"));
/// ```
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason: String| Err(StoreError::BadKey { key: shorten(key), reason });
    if key.is_empty() {
        return bad("a key must not be empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return bad(format!("a key is at most {MAX_KEY_BYTES} bytes; this one has {}", key.len()));
    }
    if let Some((at, c)) = key.char_indices().find(|(_, c)| c.is_control()) {
        return bad(format!("control character U+{:04X} at byte {at}", c as u32));
    }
    if key.split('/').any(str::is_empty) {
        return bad("a key is made of `/`-separated segments, and an empty segment (a leading, trailing or \
                    doubled `/`) is not allowed"
            .into());
    }
    Ok(())
}

/// A key as quoted in an error message: at most 80 characters.
fn shorten(key: &str) -> String {
    match key.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &key[..at]),
        None => key.to_owned(),
    }
}

/// The absolute expiry of a write made at `now` with `ttl`.
pub fn expiry(now: SystemTime, ttl: Option<Duration>) -> Option<SystemTime> {
    ttl.map(|ttl| now.checked_add(ttl).unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(u32::MAX as u64 * 64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_at_the_limits() {
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        let err = check_key(&"k".repeat(MAX_KEY_BYTES + 1)).unwrap_err().to_string();
        assert!(err.contains("at most 1024 bytes") && err.contains("1025"), "{err}");
        assert!(err.contains('…'), "a long key is shortened in the message: {err}");
        for bad in ["/a", "a/", "/", "a//b", "nul\0"] {
            assert!(matches!(check_key(bad), Err(StoreError::BadKey { .. })), "{bad:?}");
        }
        for good in ["a", "a.b", "ü/ß", "x=1&y=2", "with space", "*", ">"] {
            assert!(check_key(good).is_ok(), "{good:?}");
        }
    }
}
