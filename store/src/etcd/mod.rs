//! etcd backend through `etcd-client`.
//!
//! Keys are stored verbatim (they already carry the store prefix) and revisions are etcd's
//! own, so a Capstan store and kube-apiserver's layout are the same on the wire. Writes are
//! single transactions guarded on the key's create/mod revision, exactly like kube-apiserver's
//! etcd3 storage.
//!
//! Failover: one client balances over every endpoint. Requests that fail before they can
//! have reached etcd (connection refused, no leader) are retried on another member within
//! [`REQUEST_TIMEOUT`]; reads are also retried after any transport error. A write whose
//! outcome is unknown is reported as [`StoreError::Unavailable`].
//!
//! Compacted revision: etcd 3.4 does not report it (neither `Status` nor range headers carry
//! it). [`EtcdStore`] remembers the highest one it has seen (its own compactions, watch
//! responses) and checks it on demand: a read at revision `r` succeeds iff `r` is at or after
//! the compacted revision, so one read at the remembered value confirms it and, when another
//! client has compacted further, a binary search over `(remembered, current]` finds the new
//! one (about log2(current) point reads).

mod compaction;
mod errors;
mod watch;

use compaction::compactor;
use errors::{ERR_TOO_LARGE, error_message, is_transient, surely_not_applied};

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, PutOptions,
    Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use tokio_util::sync::CancellationToken;

use crate::{
    Deleted, KeyValue, ListOptions, ListResult, Result, Revision, Store, StoreConfig, StoreError,
    WatchStream, prefix_end,
};

/// Bound on one store operation, retries included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Bound on [`EtcdStore::connect`]: the first successful read from any endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest gRPC message accepted from etcd (etcd's own send limit is `i32::MAX`).
const MAX_DECODING_BYTES: usize = i32::MAX as usize;

/// A [`Store`] on an etcd v3 cluster.
pub struct EtcdStore {
    inner: Arc<Inner>,
    /// Cancelled on drop: stops the compactor and ends every watch stream.
    shutdown: CancellationToken,
}

struct Inner {
    kv: KvClient,
    watch: etcd_client::WatchClient,
    config: StoreConfig,
    endpoints: String,
    /// Highest compacted revision seen so far (see the module docs).
    compacted: AtomicI64,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl EtcdStore {
    /// Connect to the etcd cluster at `endpoints` (`http://host:port`; one client fails over
    /// between them) and check that it answers within [`CONNECT_TIMEOUT`].
    pub async fn connect(endpoints: &[String], config: StoreConfig) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(StoreError::InvalidConfig("no etcd endpoints given".into()));
        }
        let list = endpoints.join(",");
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| StoreError::InvalidConfig(format!("etcd endpoints {list}: {e}")))?;
        let inner = Arc::new(Inner {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_DECODING_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_DECODING_BYTES),
            config,
            endpoints: list,
            compacted: AtomicI64::new(0),
        });
        // The client connects lazily; make sure somebody answers before handing it out.
        match tokio::time::timeout(
            CONNECT_TIMEOUT,
            inner.current_revision_within(CONNECT_TIMEOUT),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(inner.timeout_error("connect", CONNECT_TIMEOUT)),
        }
        let shutdown = CancellationToken::new();
        if let Some(interval) = inner.config.compaction_interval {
            tokio::spawn(compactor(inner.clone(), interval, shutdown.child_token()));
        }
        Ok(EtcdStore { inner, shutdown })
    }

    /// The configuration this store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }
}

/// Which failures may be retried for an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads: retry after any transport failure.
    Idempotent,
    /// Writes: retry only when the request cannot have been applied.
    NotApplied,
}

impl Inner {
    fn kv(&self) -> KvClient {
        self.kv.clone()
    }

    fn timeout_error(&self, what: &str, after: Duration) -> StoreError {
        StoreError::Unavailable(format!(
            "etcd at {} did not answer {what} within {after:?}",
            self.endpoints
        ))
    }

    /// Run `op` with retries (per `retry`) until it succeeds, fails for good, or `budget` runs
    /// out.
    async fn call<T, F, Fut>(
        &self,
        what: &str,
        retry: Retry,
        budget: Duration,
        mut op: F,
    ) -> Result<T>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + budget;
        let mut delay = Duration::from_millis(20);
        loop {
            let attempt = tokio::time::timeout_at(deadline, op(self.kv())).await;
            let err = match attempt {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) => return Err(self.timeout_error(what, budget)),
            };
            let retryable = match retry {
                Retry::Idempotent => is_transient(&err),
                Retry::NotApplied => surely_not_applied(&err),
            };
            if !retryable || tokio::time::Instant::now() + delay >= deadline {
                return Err(self.map_err(what, err));
            }
            tracing::debug!(error = %err, "etcd {what}: retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// Generic mapping of an etcd error (callers handle compaction/future revisions first).
    fn map_err(&self, what: &str, err: etcd_client::Error) -> StoreError {
        let msg = error_message(&err);
        if msg.contains(ERR_TOO_LARGE) {
            return StoreError::InvalidConfig(format!(
                "etcd refused {what}: {msg} (start etcd with --max-request-bytes above the \
                 store's max value size of {} bytes plus the key)",
                self.config.max_value_bytes
            ));
        }
        StoreError::Unavailable(format!("etcd {what} at {}: {msg}", self.endpoints))
    }

    async fn current_revision_within(&self, budget: Duration) -> Result<Revision> {
        let probe = self.config.prefix.clone();
        let resp = self
            .call("read", Retry::Idempotent, budget, |mut kv| {
                let probe = probe.clone();
                async move {
                    kv.get(probe, Some(GetOptions::new().with_keys_only()))
                        .await
                }
            })
            .await?;
        header_revision(resp.header())
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.current_revision_within(REQUEST_TIMEOUT).await
    }

    /// A key's current value (used after a failed compare).
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        let mut resp = self
            .call("get", Retry::Idempotent, REQUEST_TIMEOUT, |mut kv| {
                let key = key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        resp.take_kvs().into_iter().next().map(to_kv).transpose()
    }

    async fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse> {
        self.call(what, Retry::NotApplied, REQUEST_TIMEOUT, |mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
    }
}

/// The key range of a list/watch prefix: the store prefix itself means everything under
/// `prefix/`.
fn range_of(config: &StoreConfig, prefix: &str) -> Result<(String, Vec<u8>)> {
    config.check_prefix(prefix)?;
    let start = if prefix == config.prefix {
        format!("{prefix}/")
    } else {
        prefix.to_string()
    };
    let end = prefix_end(&start);
    Ok((start, end))
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    h.map(|h| h.revision())
        .ok_or_else(|| StoreError::Corrupt("etcd response without a header".into()))
}

fn to_kv(kv: etcd_client::KeyValue) -> Result<KeyValue> {
    let (create_revision, mod_revision) = (kv.create_revision(), kv.mod_revision());
    let (key, value) = kv.into_key_value();
    let key = String::from_utf8(key).map_err(|e| {
        StoreError::Corrupt(format!(
            "non-UTF-8 key {:?} in etcd",
            String::from_utf8_lossy(e.as_bytes())
        ))
    })?;
    Ok(KeyValue {
        key,
        value: Bytes::from(value),
        create_revision,
        mod_revision,
    })
}

/// The put in a successful txn: its header revision is the write's revision.
fn txn_revision(resp: &TxnResponse) -> Result<Revision> {
    header_revision(resp.header())
}

/// The first Get result of a failed txn's else branch.
fn else_get(resp: &TxnResponse) -> Result<Option<KeyValue>> {
    for op in resp.op_responses() {
        if let TxnOpResponse::Get(mut g) = op {
            return g.take_kvs().into_iter().next().map(to_kv).transpose();
        }
    }
    Err(StoreError::Corrupt(
        "etcd txn response without its read".into(),
    ))
}

/// The previous key-value of a successful txn's put or delete.
fn prev_of(resp: &TxnResponse) -> Result<Option<KeyValue>> {
    for op in resp.op_responses() {
        match op {
            TxnOpResponse::Put(mut p) => return p.take_prev_key().map(to_kv).transpose(),
            TxnOpResponse::Delete(mut d) => {
                return d.take_prev_kvs().into_iter().next().map(to_kv).transpose();
            }
            _ => {}
        }
    }
    Ok(None)
}

/// The mismatch error after a failed guarded write of `key` expecting `expected`.
fn mismatch(key: &str, expected: Revision, current: Option<KeyValue>) -> StoreError {
    match current {
        None => StoreError::NotFound {
            key: key.to_string(),
        },
        Some(kv) => StoreError::Conflict {
            key: key.to_string(),
            expected,
            actual: kv.mod_revision,
        },
    }
}

impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.config.check_key(key)?;
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let inner = &*self.inner;
        let (start, end) = range_of(&inner.config, prefix)?;
        let mut from = start.clone().into_bytes();
        if let Some(after) = &opts.start_after {
            inner.config.check_key(after)?;
            let mut after = after.clone().into_bytes();
            after.push(0);
            from = from.max(after);
        }
        let revision = opts.revision.filter(|r| *r > 0);
        let limit = opts.limit.filter(|l| *l > 0);
        let mut get_opts = GetOptions::new();
        if let Some(r) = revision {
            get_opts = get_opts.with_revision(r);
        }
        let empty_range = from >= end;
        if empty_range {
            // Nothing can match; still read (the range start) at the revision so that
            // compacted/future revisions fail like any other list.
            from = start.into_bytes();
            get_opts = get_opts.with_keys_only().with_limit(1);
        } else {
            get_opts = get_opts.with_range(end);
            if let Some(l) = limit {
                get_opts = get_opts.with_limit(i64::try_from(l).unwrap_or(i64::MAX));
            }
        }
        let res = inner
            .call("list", Retry::Idempotent, REQUEST_TIMEOUT, |mut kv| {
                let (from, get_opts) = (from.clone(), get_opts.clone());
                async move { kv.get(from, Some(get_opts)).await }
            })
            .await;
        let mut resp = match res {
            Ok(r) => r,
            Err(e) => return Err(inner.revision_error(revision.unwrap_or(0), e).await),
        };
        let read_at = match revision {
            Some(r) => r,
            None => header_revision(resp.header())?,
        };
        if empty_range {
            return Ok(ListResult {
                items: Vec::new(),
                revision: read_at,
                more: false,
                remaining: None,
            });
        }
        let more = resp.more();
        let count = resp.count();
        let items = resp
            .take_kvs()
            .into_iter()
            .map(to_kv)
            .collect::<Result<Vec<_>>>()?;
        // etcd counts the whole range from `from`, the returned keys included.
        let remaining = (opts.count_remaining && more).then(|| {
            u64::try_from(count)
                .unwrap_or(0)
                .saturating_sub(items.len() as u64)
        });
        Ok(ListResult {
            items,
            revision: read_at,
            more,
            remaining,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let inner = &*self.inner;
        inner.config.check_write(key, &value)?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)])
            .or_else([TxnOp::get(key, Some(GetOptions::new().with_keys_only()))]);
        let resp = inner.txn("create", txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let rev = txn_revision(&resp)?;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: rev,
            mod_revision: rev,
        })
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        let inner = &*self.inner;
        inner.config.check_write(key, &value)?;
        let txn = Txn::new()
            .when([
                Compare::create_revision(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(
                key,
                value.to_vec(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, Some(GetOptions::new().with_keys_only()))]);
        let resp = inner.txn("update", txn).await?;
        if !resp.succeeded() {
            return Err(mismatch(key, expected, else_get(&resp)?));
        }
        let rev = txn_revision(&resp)?;
        let prev = prev_of(&resp)?.ok_or_else(|| {
            StoreError::Corrupt(format!("etcd update of {key:?} returned no previous value"))
        })?;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: prev.create_revision,
            mod_revision: rev,
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        let inner = &*self.inner;
        inner.config.check_key(key)?;
        let mut when = vec![Compare::create_revision(key, CompareOp::Greater, 0)];
        if let Some(e) = expected {
            when.push(Compare::mod_revision(key, CompareOp::Equal, e));
        }
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, Some(GetOptions::new().with_keys_only()))]);
        let resp = inner.txn("delete", txn).await?;
        if !resp.succeeded() {
            let current = else_get(&resp)?;
            return Err(match expected {
                Some(e) => mismatch(key, e, current),
                None => StoreError::NotFound {
                    key: key.to_string(),
                },
            });
        }
        let revision = txn_revision(&resp)?;
        let prev = prev_of(&resp)?.ok_or_else(|| StoreError::NotFound {
            key: key.to_string(),
        })?;
        Ok(Deleted { revision, prev })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let (start, end) = range_of(&self.inner.config, prefix)?;
        let after = after.max(0);
        let current = self.inner.current_revision().await?;
        if after > current {
            return Err(StoreError::FutureRevision {
                requested: after,
                current,
            });
        }
        let compacted = self.inner.compacted.load(Ordering::SeqCst);
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        Ok(watch::spawn(
            self.inner.clone(),
            start,
            end,
            after,
            self.shutdown.child_token(),
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.inner.compacted_revision().await
    }

    async fn health(&self) -> Result<()> {
        self.inner.current_revision().await.map(|_| ())
    }
}
