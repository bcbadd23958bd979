//! Reads: a small pool of read-only WAL connections used from `spawn_blocking`. Every read
//! that needs more than one statement runs in one read transaction (one snapshot), so the
//! items and the revision it reports agree.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Semaphore;

use super::schema::{
    KIND_CREATE, KIND_DELETE, KIND_UPDATE, key_from_blob, open_reader, revisions, unavailable,
};
use crate::{
    EventKind, KeyValue, ListOptions, ListResult, Result, Revision, StoreError, WatchEvent,
    prefix_end,
};

/// Most events one replay step loads (one snapshot each).
const REPLAY_MAX_EVENTS: usize = 512;
/// Stop a replay step once it holds this many value bytes (values can be 1.5 MiB each).
const REPLAY_MAX_BYTES: usize = 16 * 1024 * 1024;

pub(crate) struct ReadPool {
    path: PathBuf,
    conns: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

pub(crate) struct ReplayChunk {
    pub(crate) events: Vec<WatchEvent>,
    /// Every event up to this revision has been returned.
    pub(crate) reached: Revision,
}

impl ReadPool {
    pub(crate) fn open(path: &Path, size: usize) -> rusqlite::Result<Self> {
        let size = size.max(1);
        let mut conns = Vec::with_capacity(size);
        for _ in 0..size {
            conns.push(open_reader(path)?);
        }
        Ok(ReadPool {
            path: path.to_path_buf(),
            conns: Mutex::new(conns),
            permits: Arc::new(Semaphore::new(size)),
        })
    }

    /// Run `f` on a pooled connection in the blocking pool.
    async fn with_conn<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let taken = pool.conns.lock().unwrap_or_else(|e| e.into_inner()).pop();
            // A connection is missing only if a previous task died holding it: reopen.
            let mut conn = match taken {
                Some(c) => c,
                None => open_reader(&pool.path).map_err(unavailable)?,
            };
            let out = f(&mut conn);
            // Never return a connection stuck inside a transaction to the pool.
            if conn.is_autocommit() {
                pool.conns
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    pub(crate) async fn health(self: &Arc<Self>) -> Result<()> {
        self.with_conn(|c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn get(self: &Arc<Self>, key: String) -> Result<Option<KeyValue>> {
        self.with_conn(move |c| {
            let row = c
                .prepare_cached(
                    "SELECT c.create_rev, c.mod_rev, l.value FROM current c \
                     JOIN log l ON l.rev = c.mod_rev WHERE c.key = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([key.as_bytes()], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Option<Vec<u8>>>(2)?,
                        ))
                    })
                    .optional()
                })
                .map_err(unavailable)?;
            Ok(row.map(|(create_revision, mod_revision, value)| KeyValue {
                key,
                value: value.map(Bytes::from).unwrap_or_default(),
                create_revision,
                mod_revision,
            }))
        })
        .await
    }

    pub(crate) async fn list(
        self: &Arc<Self>,
        prefix: String,
        opts: ListOptions,
    ) -> Result<ListResult> {
        self.with_conn(move |c| list_blocking(c, &prefix, &opts))
            .await
    }

    /// Events under `prefix` in `(after, until]`, oldest first, from one snapshot; fewer
    /// than all when a step limit is hit (`reached` says how far it got).
    pub(crate) async fn replay_chunk(
        self: &Arc<Self>,
        prefix: String,
        after: Revision,
        until: Revision,
    ) -> Result<ReplayChunk> {
        self.with_conn(move |c| replay_blocking(c, &prefix, after, until))
            .await
    }
}

fn list_blocking(c: &mut Connection, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
    let tx = c.transaction().map_err(unavailable)?;
    let (current, compacted) = revisions(&tx).map_err(unavailable)?;
    let at = match opts.revision {
        Some(r) if r > 0 => r,
        _ => current,
    };
    if at > current {
        return Err(StoreError::FutureRevision {
            requested: at,
            current,
        });
    }
    if at < compacted {
        return Err(StoreError::Compacted {
            requested: at,
            compacted,
        });
    }
    let end = prefix_end(prefix);
    // Lower bound: exclusive after `start_after`, else inclusive at the prefix. `key > x`
    // with x = prefix minus nothing is not expressible, so use `key >= prefix` then.
    let (lower, lower_inclusive): (&[u8], bool) = match &opts.start_after {
        Some(s) => (s.as_bytes(), false),
        None => (prefix.as_bytes(), true),
    };
    let limit = match opts.limit {
        Some(n) if n > 0 => Some(n),
        _ => None,
    };
    // Fetch one row more than the limit to learn whether there are more.
    let fetch: i64 = limit
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX - 1).saturating_add(1))
        .unwrap_or(-1);
    let op = if lower_inclusive { ">=" } else { ">" };
    let sql = if at == current {
        format!(
            "SELECT c.key, c.create_rev, c.mod_rev, l.value FROM current c \
             JOIN log l ON l.rev = c.mod_rev \
             WHERE c.key {op} ?1 AND c.key < ?2 AND ?3 >= 0 \
             ORDER BY c.key LIMIT ?4"
        )
    } else {
        // State at `at` without a key index: live rows not changed since `at`, plus, for
        // every key changed after `at`, the version its earliest later row replaced
        // (`prev_rev`; 0 = the key did not exist at `at`, e.g. a creation after `at`). The
        // changed keys come from a rowid range scan of the rows above `at` (`+key` keeps
        // the planner on the rowid range), so the cost is the history after `at` (bounded
        // by compaction), not the keyspace. SQLite takes the bare `prev_rev` from the row
        // holding `min(rev)`. Both arms are produced in key order and merged.
        format!(
            "WITH changed(k, first, p) AS \
               (SELECT key, min(rev), prev_rev FROM log \
                WHERE rev > ?3 AND +key {op} ?1 AND +key < ?2 GROUP BY key) \
             SELECT c.key, c.create_rev, c.mod_rev, l.value FROM current c \
             JOIN log l ON l.rev = c.mod_rev \
             WHERE c.key {op} ?1 AND c.key < ?2 AND c.mod_rev <= ?3 \
             UNION ALL \
             SELECT l.key, l.create_rev, l.rev, l.value FROM changed \
             JOIN log l ON l.rev = changed.p WHERE changed.p > 0 \
             ORDER BY 1 LIMIT ?4"
        )
    };
    let mut items = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&sql).map_err(unavailable)?;
        let mut rows = stmt
            .query(params![lower, end, at, fetch])
            .map_err(unavailable)?;
        while let Some(row) = rows.next().map_err(unavailable)? {
            let key = key_from_blob(row.get(0).map_err(unavailable)?)?;
            let value: Option<Vec<u8>> = row.get(3).map_err(unavailable)?;
            items.push(KeyValue {
                key,
                value: value.map(Bytes::from).unwrap_or_default(),
                create_revision: row.get(1).map_err(unavailable)?,
                mod_revision: row.get(2).map_err(unavailable)?,
            });
        }
    }
    let more = match limit {
        Some(n) if items.len() as u64 > n => {
            items.truncate(usize::try_from(n).unwrap_or(usize::MAX));
            true
        }
        _ => false,
    };
    let remaining = match items.last() {
        Some(last) if more && opts.count_remaining => Some(count_after(
            &tx,
            last.key.as_bytes(),
            &end,
            at,
            at == current,
        )?),
        _ => None,
    };
    tx.finish().map_err(unavailable)?;
    Ok(ListResult {
        items,
        revision: at,
        more,
        remaining,
    })
}

/// How many keys in `(after, end)` exist at revision `at` (see [`list_blocking`] for the
/// shape of a read at a past revision).
fn count_after(
    tx: &rusqlite::Transaction<'_>,
    after: &[u8],
    end: &[u8],
    at: Revision,
    current: bool,
) -> Result<u64> {
    let sql = if current {
        "SELECT count(*) FROM current WHERE key > ?1 AND key < ?2 AND ?3 >= 0"
    } else {
        "WITH changed(k, first, p) AS \
           (SELECT key, min(rev), prev_rev FROM log \
            WHERE rev > ?3 AND +key > ?1 AND +key < ?2 GROUP BY key) \
         SELECT (SELECT count(*) FROM current \
                 WHERE key > ?1 AND key < ?2 AND mod_rev <= ?3) \
              + (SELECT count(*) FROM changed WHERE p > 0)"
    };
    let mut stmt = tx.prepare_cached(sql).map_err(unavailable)?;
    let n: i64 = stmt
        .query_row(params![after, end, at], |row| row.get(0))
        .map_err(unavailable)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn replay_blocking(
    c: &mut Connection,
    prefix: &str,
    after: Revision,
    until: Revision,
) -> Result<ReplayChunk> {
    let tx = c.transaction().map_err(unavailable)?;
    let (_, compacted) = revisions(&tx).map_err(unavailable)?;
    if after < compacted {
        // History after `after` may already be gone (compaction ran during the replay).
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    let end = prefix_end(prefix);
    let mut events = Vec::new();
    let mut bytes = 0usize;
    let mut reached = until;
    {
        // Scan by revision (rowid order; there is no key index): replays
        // cover recent history, bounded by the compaction settings.
        let mut stmt = tx
            .prepare_cached(
                "SELECT l.rev, l.key, l.kind, l.create_rev, l.value, \
                        p.rev, p.create_rev, p.value \
                 FROM log l LEFT JOIN log p ON p.rev = l.prev_rev AND l.prev_rev > 0 \
                 WHERE l.rev > ?1 AND l.rev <= ?2 AND +l.key >= ?3 AND +l.key < ?4 \
                 ORDER BY l.rev",
            )
            .map_err(unavailable)?;
        let mut rows = stmt
            .query(params![after, until, prefix.as_bytes(), end])
            .map_err(unavailable)?;
        while let Some(row) = rows.next().map_err(unavailable)? {
            let rev: i64 = row.get(0).map_err(unavailable)?;
            if events.len() >= REPLAY_MAX_EVENTS || bytes >= REPLAY_MAX_BYTES {
                reached = rev - 1;
                break;
            }
            let key = key_from_blob(row.get(1).map_err(unavailable)?)?;
            let kind: i64 = row.get(2).map_err(unavailable)?;
            let value: Option<Vec<u8>> = row.get(4).map_err(unavailable)?;
            let prev_rev: Option<i64> = row.get(5).map_err(unavailable)?;
            let prev_value: Option<Vec<u8>> = row.get(7).map_err(unavailable)?;
            bytes += value.as_ref().map_or(0, Vec::len) + prev_value.as_ref().map_or(0, Vec::len);
            let prev = match prev_rev {
                Some(prev_rev) => Some(KeyValue {
                    key: key.clone(),
                    value: prev_value.map(Bytes::from).unwrap_or_default(),
                    create_revision: row.get(6).map_err(unavailable)?,
                    mod_revision: prev_rev,
                }),
                None => None,
            };
            let event = match kind {
                KIND_CREATE | KIND_UPDATE => WatchEvent {
                    kind: if kind == KIND_CREATE {
                        EventKind::Create
                    } else {
                        EventKind::Update
                    },
                    kv: KeyValue {
                        key,
                        value: value.map(Bytes::from).unwrap_or_default(),
                        create_revision: row.get(3).map_err(unavailable)?,
                        mod_revision: rev,
                    },
                    prev: if kind == KIND_CREATE { None } else { prev },
                },
                KIND_DELETE => WatchEvent {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key,
                        value: Bytes::new(),
                        create_revision: 0,
                        mod_revision: rev,
                    },
                    prev,
                },
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "log row {rev} has unknown kind {other}"
                    )));
                }
            };
            events.push(event);
        }
    }
    tx.finish().map_err(unavailable)?;
    Ok(ReplayChunk { events, reached })
}
