//! Embedded SQLite backend (the default).
//!
//! Layout (one concept per file):
//! - `schema`: connections (`unix-excl` VFS: the process holds the file exclusively and
//!   keeps the WAL index in memory), pragmas (WAL, `synchronous=FULL`, 512-byte pages,
//!   incremental auto-vacuum), tables, shared helpers.
//! - `writer`: the single writer thread; group commit (one transaction and one fsync per
//!   batch of pending writes), then replies and watch events.
//! - `compact`: chunked compaction run by the writer, and the automatic compaction task.
//! - `read`: the read-only connection pool (`get`, `list`, watch history replay).
//! - `watch`: the in-process watch hub and the watch streams.

mod compact;
mod read;
mod schema;
mod watch;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use self::compact::Compaction;
use self::read::ReadPool;
use self::schema::{META_COMPACT_CURSOR, meta_get, revisions, unavailable};
use self::watch::Hub;
use self::writer::{Op, Outcome, Shared, Writer, WriterHandle};
use crate::{
    Deleted, KeyValue, ListOptions, ListResult, Result, Revision, Store, StoreConfig, StoreError,
    WatchStream,
};

/// Read-only connections in the pool (the machine class this targets has few cores; reads
/// are short, so a few connections keep the blocking pool from being flooded).
const READ_POOL_SIZE: usize = 4;

/// The embedded store. Cheap to share behind an `Arc`; clones share one database. The
/// writer thread and the compaction task stop when the last clone is dropped or on
/// [`SqliteStore::close`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    config: StoreConfig,
    writer: WriterHandle,
    pool: Arc<ReadPool>,
    hub: Arc<Hub>,
    shared: Arc<Shared>,
    /// Cancelled on close/drop: stops the compactor, refuses new requests.
    cancel: CancellationToken,
    /// Cancelled by the writer thread when it has exited.
    writer_done: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
        // The channel also closes when `writer` is dropped right after this; the explicit
        // message just makes the thread stop before draining a long queue.
        self.writer.try_shutdown();
    }
}

impl SqliteStore {
    /// Open (or create) the database at `path`, creating parent directories.
    pub async fn open(path: &Path, config: StoreConfig) -> Result<Self> {
        Self::open_with(path, config, watch::WATCH_BUFFER).await
    }

    /// [`SqliteStore::open`] with a given per-watcher buffer size.
    pub(crate) async fn open_with(
        path: &Path,
        config: StoreConfig,
        watch_buffer: usize,
    ) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                StoreError::Unavailable(format!("create {}: {e}", parent.display()))
            })?;
        }
        let path = path.to_path_buf();
        let p = path.clone();
        let (conn, pool, current, compacted, cursor) = tokio::task::spawn_blocking(move || {
            let conn = schema::open_writer(&p)?;
            let (current, compacted) = revisions(&conn)?;
            let cursor = meta_get(&conn, META_COMPACT_CURSOR)?;
            let pool = ReadPool::open(&p, READ_POOL_SIZE)?;
            rusqlite::Result::Ok((conn, pool, current, compacted, cursor))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("open task failed: {e}")))?
        .map_err(|e| {
            tracing::error!(path = %path.display(), error = %e, "cannot open sqlite store");
            unavailable(e)
        })?;

        let shared = Arc::new(Shared::default());
        shared.current.store(current, Ordering::Release);
        shared.compacted.store(compacted, Ordering::Release);
        let hub = Arc::new(Hub::new(current, watch_buffer));
        let writer_done = CancellationToken::new();
        let writer = writer::spawn(
            Writer {
                conn,
                hub: hub.clone(),
                shared: shared.clone(),
                rev: current,
                // Resumes an interrupted compaction (cursor below the compacted revision).
                compaction: Compaction::new(cursor.min(compacted), compacted),
            },
            writer_done.clone(),
        )
        .map_err(|e| StoreError::Unavailable(format!("spawn writer thread: {e}")))?;
        let cancel = CancellationToken::new();
        tokio::spawn(compact::auto_compact(
            writer.clone(),
            shared.clone(),
            config.clone(),
            cancel.clone(),
        ));
        tracing::info!(
            path = %path.display(),
            revision = current,
            compacted,
            "sqlite store opened"
        );
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                config,
                writer,
                pool: Arc::new(pool),
                hub,
                shared,
                cancel,
                writer_done,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stop the writer thread and the compactor and wait for the writer to close its
    /// connection. Later calls on any clone fail with `Closed`; watch streams end.
    pub async fn close(&self) {
        self.inner.cancel.cancel();
        self.inner.writer.shutdown().await;
        self.inner.writer_done.cancelled().await;
        tracing::info!(path = %self.inner.path.display(), "sqlite store closed");
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.cancel.is_cancelled() {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Number of registered watchers (for tests and metrics).
    pub fn watcher_count(&self) -> usize {
        self.inner.hub.watcher_count()
    }

    async fn write(&self, op: Op) -> Result<Outcome> {
        self.check_open()?;
        self.inner.writer.write(op).await
    }
}

fn unexpected() -> StoreError {
    StoreError::Corrupt("writer answered with the wrong kind of outcome".into())
}

impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.config.check_key(key)?;
        self.check_open()?;
        self.inner.pool.get(key.to_string()).await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        self.inner.config.check_prefix(prefix)?;
        if let Some(s) = &opts.start_after
            && !s.starts_with(prefix)
        {
            return Err(StoreError::InvalidKey {
                key: s.clone(),
                reason: "start_after is outside the listed prefix",
            });
        }
        self.check_open()?;
        self.inner.pool.list(prefix.to_string(), opts).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        self.inner.config.check_write(key, &value)?;
        match self
            .write(Op::Create {
                key: key.to_string(),
                value,
            })
            .await?
        {
            Outcome::Written(kv) => Ok(kv),
            Outcome::Deleted(_) => Err(unexpected()),
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        self.inner.config.check_write(key, &value)?;
        match self
            .write(Op::Update {
                key: key.to_string(),
                value,
                expected,
            })
            .await?
        {
            Outcome::Written(kv) => Ok(kv),
            Outcome::Deleted(_) => Err(unexpected()),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        self.inner.config.check_key(key)?;
        match self
            .write(Op::Delete {
                key: key.to_string(),
                expected,
            })
            .await?
        {
            Outcome::Deleted(d) => Ok(d),
            Outcome::Written(_) => Err(unexpected()),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.inner.config.check_prefix(prefix)?;
        self.check_open()?;
        let after = after.max(0);
        // Register first, then check: every event after the registration arrives live.
        let reg = self.inner.hub.register(prefix)?;
        let current = self.inner.shared.current();
        if after > current {
            return Err(StoreError::FutureRevision {
                requested: after,
                current,
            });
        }
        let compacted = self.inner.shared.compacted();
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        Ok(watch::stream(
            self.inner.pool.clone(),
            prefix.to_string(),
            after,
            reg,
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.check_open()?;
        tracing::info!(revision, "compaction requested");
        let res = self.inner.writer.compact(revision).await;
        if let Err(e) = &res {
            tracing::debug!(revision, error = %e, "compaction refused or failed");
        }
        res
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.check_open()?;
        Ok(self.inner.shared.current())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.check_open()?;
        Ok(self.inner.shared.compacted())
    }

    async fn health(&self) -> Result<()> {
        self.check_open()?;
        if self.inner.writer_done.is_cancelled() {
            return Err(StoreError::Unavailable(
                "sqlite writer thread stopped".into(),
            ));
        }
        self.inner.pool.health().await
    }
}
