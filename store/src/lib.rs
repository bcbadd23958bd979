//! Capstan's store: one async [`Store`] trait with etcd's model, two backends.
//!
//! The model (the contract every backend passes in `tests/conformance.rs`):
//! - One global revision, strictly increasing by one per successful write (create, update,
//!   delete). Every key carries the revision that created it and the one that last changed it.
//! - Keys are full paths (`/registry/pods/default/web`) and must lie under the store's prefix
//!   (default `/registry`); values are opaque bytes up to [`StoreConfig::max_value_bytes`].
//! - Writes are compare-and-swap on the key's mod revision; a mismatch is [`StoreError::Conflict`].
//! - A watch from revision `r` yields every event with revision `> r` under its prefix, in
//!   revision order, each exactly once, with the previous value on updates and deletes.
//!   Watchers never block writers: a watcher that falls too far behind is closed with
//!   [`StoreError::WatchLagged`] and may watch again from its last revision.
//! - Compaction at `c` drops history older than `c`: reads at, and watches from, revisions
//!   `< c` fail with [`StoreError::Compacted`]; state at `c` and every later event are kept.
//!
//! Backends: [`sqlite::SqliteStore`] (embedded, the default) and [`etcd::EtcdStore`].
//! [`AnyStore`] picks one from a datastore URL at run time without dynamic dispatch.

pub mod error;
pub mod etcd;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

pub use error::{Result, StoreError};

/// A store revision (etcd's `int64` revision). The first write gets revision 1 or later.
pub type Revision = i64;

/// Default key prefix, upstream's layout: `/registry/<resource>/<namespace>/<name>`.
pub const DEFAULT_PREFIX: &str = "/registry";

/// Largest value accepted by default: 1.5 MiB, etcd's default request limit.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1536 * 1024;

/// A key with its value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the write that produced this value.
    pub mod_revision: Revision,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Create,
    Update,
    Delete,
}

/// One change, as seen by a watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// For `Create`/`Update`: the new key-value. For `Delete`: the key with an empty value,
    /// `create_revision` 0 and `mod_revision` = the revision of the deletion.
    pub kv: KeyValue,
    /// The previous key-value, for `Update` and `Delete` (always `None` for `Create`).
    pub prev: Option<KeyValue>,
}

impl WatchEvent {
    /// The revision at which this event happened.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// Result of a successful delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// Revision of the deletion.
    pub revision: Revision,
    /// The key-value as it was just before the deletion.
    pub prev: KeyValue,
}

/// Options for [`Store::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read at this revision (`None`: the current one). Must be at or after the compacted
    /// revision and not in the future.
    pub revision: Option<Revision>,
    /// Return at most this many items (`None` or `Some(0)`: all).
    pub limit: Option<u64>,
    /// Return only keys strictly after this one (it must lie under the prefix). Continue a
    /// limited list by passing the last key received ([`ListResult::continue_after`]) with
    /// the same revision.
    pub start_after: Option<String>,
    /// When the limit cuts the list short, also count the keys after the last one returned
    /// ([`ListResult::remaining`]; the API's `remainingItemCount`).
    pub count_remaining: bool,
}

/// Result of [`Store::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListResult {
    /// Items in key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at (the current one when none was asked for).
    pub revision: Revision,
    /// True when the limit cut the list short.
    pub more: bool,
    /// With [`ListOptions::count_remaining`] and `more`: how many keys under the prefix follow
    /// the last one returned, at the same revision.
    pub remaining: Option<u64>,
}

impl ListResult {
    /// Where the next page starts after, when `more` is set: the last key returned.
    pub fn continue_after(&self) -> Option<&str> {
        if !self.more {
            return None;
        }
        self.items.last().map(|kv| kv.key.as_str())
    }
}

/// A stream of watch events; it ends when the store closes, and yields an error (then ends)
/// when the watch cannot go on.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send + 'static>>;

/// The storage contract. Implementations must be cheap to clone-share behind an `Arc` and
/// safe to call from many tasks at once.
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`, or `None`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>>> + Send;

    /// Keys under `prefix` (which must itself lie under the store prefix), in key order.
    fn list(
        &self,
        prefix: &str,
        opts: ListOptions,
    ) -> impl Future<Output = Result<ListResult>> + Send;

    /// Create `key`; fails with `AlreadyExists` if it exists.
    fn create(&self, key: &str, value: Bytes) -> impl Future<Output = Result<KeyValue>> + Send;

    /// Replace the value of `key` if its mod revision is `expected`.
    /// Missing key: `NotFound`; other revision: `Conflict`.
    fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> impl Future<Output = Result<KeyValue>> + Send;

    /// Delete `key`, guarded by its mod revision when `expected` is `Some`.
    /// Missing key: `NotFound`; other revision: `Conflict`.
    fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> impl Future<Output = Result<Deleted>> + Send;

    /// Every event under `prefix` with revision `> after`, in order. `after` = the current
    /// revision watches only what comes next.
    fn watch(
        &self,
        prefix: &str,
        after: Revision,
    ) -> impl Future<Output = Result<WatchStream>> + Send;

    /// Drop history older than `revision`.
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<()>> + Send;

    /// The revision of the latest write.
    fn current_revision(&self) -> impl Future<Output = Result<Revision>> + Send;

    /// The revision history has been compacted to (0 when never compacted).
    fn compacted_revision(&self) -> impl Future<Output = Result<Revision>> + Send;

    /// Ok when the backend answers.
    fn health(&self) -> impl Future<Output = Result<()>> + Send;
}

/// Settings shared by both backends.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Every key must start with `prefix` followed by `/`.
    pub prefix: String,
    /// Values above this many bytes are refused with `ValueTooLarge`.
    pub max_value_bytes: usize,
    /// Automatic compaction: keep at most this many revisions of history (SQLite only; on
    /// etcd the interval below applies).
    pub history_max_revisions: i64,
    /// Automatic compaction: keep history no older than this.
    pub history_max_age: Duration,
    /// How often automatic compaction runs. `None` disables it.
    pub compaction_interval: Option<Duration>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            prefix: DEFAULT_PREFIX.to_string(),
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            history_max_revisions: 10_000,
            history_max_age: Duration::from_secs(5 * 60),
            compaction_interval: Some(Duration::from_secs(60)),
        }
    }
}

impl StoreConfig {
    /// Check that `key` is a usable key under the prefix.
    pub fn check_key(&self, key: &str) -> Result<()> {
        check_key_under(&self.prefix, key)
    }

    /// Check a key and a value size together (for writes).
    pub fn check_write(&self, key: &str, value: &[u8]) -> Result<()> {
        self.check_key(key)?;
        if value.len() > self.max_value_bytes {
            return Err(StoreError::ValueTooLarge {
                key: key.to_string(),
                size: value.len(),
                limit: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Check a list/watch prefix: it must be the store prefix or lie under it.
    pub fn check_prefix(&self, prefix: &str) -> Result<()> {
        if prefix == self.prefix || prefix == format!("{}/", self.prefix) {
            return Ok(());
        }
        check_key_under(&self.prefix, prefix)
    }
}

fn check_key_under(prefix: &str, key: &str) -> Result<()> {
    let invalid = |reason| {
        Err(StoreError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("key is empty");
    }
    if key.contains('\0') {
        return invalid("key contains a NUL byte");
    }
    match key.strip_prefix(prefix) {
        Some(rest) if rest.starts_with('/') && rest.len() > 1 => Ok(()),
        _ => invalid("key is outside the store prefix"),
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's range end).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Where the data lives, parsed from `--datastore`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datastore {
    /// Embedded SQLite database file.
    Sqlite(std::path::PathBuf),
    /// etcd cluster endpoints (`http://host:port`).
    Etcd(Vec<String>),
}

impl Datastore {
    /// Parse a datastore URL: `sqlite:///abs/path.db`, `sqlite://rel.db`, or
    /// `etcd://host:port[,host:port...]` (also `http://` endpoints after `etcd://`).
    /// An empty URL means the embedded file `state.db` in `data_dir`.
    pub fn parse(url: &str, data_dir: &std::path::Path) -> Result<Self> {
        if url.is_empty() {
            return Ok(Datastore::Sqlite(data_dir.join("state.db")));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::InvalidConfig(format!(
                    "{url:?}: sqlite:// needs a file path"
                )));
            }
            return Ok(Datastore::Sqlite(path.into()));
        }
        if let Some(rest) = url.strip_prefix("etcd://") {
            let mut endpoints = Vec::new();
            for ep in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let ep = ep.trim_end_matches('/');
                let host_port = ep
                    .strip_prefix("http://")
                    .or_else(|| ep.strip_prefix("https://"))
                    .unwrap_or(ep);
                let valid = host_port
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !valid {
                    return Err(StoreError::InvalidConfig(format!(
                        "{url:?}: endpoint {ep:?} is not host:port"
                    )));
                }
                endpoints.push(if ep.contains("://") {
                    ep.to_string()
                } else {
                    format!("http://{ep}")
                });
            }
            if endpoints.is_empty() {
                return Err(StoreError::InvalidConfig(format!(
                    "{url:?}: etcd:// needs at least one host:port"
                )));
            }
            return Ok(Datastore::Etcd(endpoints));
        }
        Err(StoreError::InvalidConfig(format!(
            "{url:?}: expected sqlite://PATH or etcd://HOST:PORT[,HOST:PORT]"
        )))
    }
}

/// Either backend, chosen at run time; static dispatch through a match.
pub enum AnyStore {
    Sqlite(sqlite::SqliteStore),
    Etcd(etcd::EtcdStore),
}

impl AnyStore {
    /// Open the datastore `ds` with `config`.
    pub async fn open(ds: &Datastore, config: StoreConfig) -> Result<Self> {
        Ok(match ds {
            Datastore::Sqlite(path) => {
                AnyStore::Sqlite(sqlite::SqliteStore::open(path, config).await?)
            }
            Datastore::Etcd(endpoints) => {
                AnyStore::Etcd(etcd::EtcdStore::connect(endpoints, config).await?)
            }
        })
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e,
            AnyStore::Etcd($s) => $e,
        }
    };
}

impl Store for AnyStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        delegate!(self, s => s.get(key).await)
    }
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        delegate!(self, s => s.list(prefix, opts).await)
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        delegate!(self, s => s.create(key, value).await)
    }
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        delegate!(self, s => s.update(key, value, expected).await)
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        delegate!(self, s => s.delete(key, expected).await)
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        delegate!(self, s => s.watch(prefix, after).await)
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        delegate!(self, s => s.compact(revision).await)
    }
    async fn current_revision(&self) -> Result<Revision> {
        delegate!(self, s => s.current_revision().await)
    }
    async fn compacted_revision(&self) -> Result<Revision> {
        delegate!(self, s => s.compacted_revision().await)
    }
    async fn health(&self) -> Result<()> {
        delegate!(self, s => s.health().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_lie_under_the_prefix() {
        let c = StoreConfig::default();
        assert!(c.check_key("/registry/pods/default/a").is_ok());
        for bad in [
            "",
            "/registry",
            "/registry/",
            "/registryx/a",
            "/other/a",
            "registry/a",
        ] {
            assert!(
                matches!(c.check_key(bad), Err(StoreError::InvalidKey { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            c.check_key("/registry/a\0b"),
            Err(StoreError::InvalidKey { .. })
        ));
    }

    #[test]
    fn prefixes_may_be_the_store_prefix() {
        let c = StoreConfig::default();
        assert!(c.check_prefix("/registry").is_ok());
        assert!(c.check_prefix("/registry/").is_ok());
        assert!(c.check_prefix("/registry/pods/").is_ok());
        assert!(c.check_prefix("/etc/").is_err());
    }

    #[test]
    fn values_over_the_limit_are_refused() {
        let c = StoreConfig {
            max_value_bytes: 4,
            ..StoreConfig::default()
        };
        assert!(c.check_write("/registry/a", b"1234").is_ok());
        assert!(matches!(
            c.check_write("/registry/a", b"12345"),
            Err(StoreError::ValueTooLarge {
                size: 5,
                limit: 4,
                ..
            })
        ));
    }

    #[test]
    fn prefix_end_is_etcds_range_end() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn datastore_urls() {
        let dir = std::path::Path::new("/data");
        assert_eq!(
            Datastore::parse("", dir).ok(),
            Some(Datastore::Sqlite("/data/state.db".into()))
        );
        assert_eq!(
            Datastore::parse("etcd://127.0.0.1:2379,10.0.0.2:2379", dir).ok(),
            Some(Datastore::Etcd(vec![
                "http://127.0.0.1:2379".into(),
                "http://10.0.0.2:2379".into()
            ]))
        );
        assert!(Datastore::parse("etcd://", dir).is_err());
        assert!(Datastore::parse("etcd://host", dir).is_err());
        assert!(Datastore::parse("mysql://x", dir).is_err());
        assert!(Datastore::parse("sqlite://", dir).is_err());
    }

    #[test]
    fn continue_key_follows_the_last_item() {
        let r = ListResult {
            items: vec![KeyValue {
                key: "/registry/a".into(),
                value: Bytes::new(),
                create_revision: 1,
                mod_revision: 1,
            }],
            revision: 1,
            more: true,
            remaining: Some(3),
        };
        assert_eq!(r.continue_after(), Some("/registry/a"));
    }
}
