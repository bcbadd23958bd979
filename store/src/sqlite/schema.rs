//! Connections, pragmas, the schema, and the small helpers every other submodule shares.
//!
//! Tables:
//! - `log(rev, key, kind, create_rev, prev_rev, value)`: append-only history, one row per
//!   write, `rev` is the rowid. `value` is NULL for deletions; `prev_rev` names the row that
//!   held the previous value (0 for creations). Compaction deletes superseded rows.
//! - `current(key, create_rev, mod_rev)`: the live keys; the value is read from `log` by
//!   `mod_rev` (a rowid lookup), so a write stores its value once.
//!
//! There is deliberately no index on `log.key`: every write would dirty one more B-tree
//! leaf (one more WAL frame, one more page at checkpoint), which is most of the idle-write
//! budget. Reads at a past revision `R` follow `prev_rev` links instead (see `read.rs`):
//! a key's version at `R` is named by the `prev_rev` of its earliest row above `R`.
//! - `meta(name, value)`: `compacted` (the compacted revision) and `compact_cursor` (how
//!   far the compaction job got; below `compacted` it is resumed on open).
//!
//! The current revision is `max(max(log.rev), compacted)`: compaction never deletes rows
//! above the compacted revision, and it records the compacted revision before deleting, so
//! the revision cannot go backwards even when the newest row (a tombstone) is compacted away.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::{Revision, StoreError};

/// 512-byte pages (SQLite's smallest). An idle write (one key updated, 1 KiB value)
/// appends a handful of WAL frames: the log leaf, the value's overflow pages, the `current`
/// leaf, a pointer-map page (incremental auto-vacuum) and page 1 (file size / free-list
/// count); each frame dirties the 4 KiB OS pages it lands in, and the tail page again at the
/// next commit, so what an idle commit costs is mostly the frames' total size. Measured per
/// heartbeat update (10 s apart): 24.8 KB with 4 KiB pages, 17.2 KB with 1 KiB pages (both
/// still with the `-shm` file), then with `unix-excl` 12.2 KB (1 KiB pages) vs 9.97 KB
/// (512-byte pages) over the same 300 s run; see the idle part of `benches/store.rs`. Large
/// values go to overflow pages either way: bulk create throughput was unchanged within noise
/// (c=16: 1.85x raw etcd puts with 512-byte pages). Only a new file gets it: an existing
/// file keeps the page size it was created with.
pub(crate) const PAGE_SIZE: u32 = 512;

/// The WAL is truncated back to this size after a checkpoint resets it.
pub(crate) const JOURNAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// Checkpoint after this many WAL frames (pages): ~1 MiB of WAL with 512-byte pages.
pub(crate) const WAL_AUTOCHECKPOINT: i64 = 2000;

/// Address space each read connection may map of the database file (see `open_reader`).
const READER_MMAP_SIZE: i64 = 256 * 1024 * 1024;

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite's `unix-excl` VFS: the first write lock takes a process-wide exclusive lock on
/// the database file (held until the last connection closes), so the WAL index lives in
/// this process's heap instead of a mmap'd `-shm` file shared with other processes. The
/// `-shm` file's pages were dirtied by every commit and written back by the kernel every
/// few seconds: ~4.8 KB of the ~17.2 KB an idle heartbeat update wrote (measured). The
/// store owns its file anyway (one writer thread and its read pool in one process);
/// another process opening the same file now gets `SQLITE_BUSY` instead of racing it. The
/// WAL, its fsync per commit and crash recovery are unchanged (the index is rebuilt from
/// the WAL on open).
const VFS: &str = "unix-excl";

pub(crate) const KIND_CREATE: i64 = 0;
pub(crate) const KIND_UPDATE: i64 = 1;
pub(crate) const KIND_DELETE: i64 = 2;

pub(crate) const META_COMPACTED: &str = "compacted";
pub(crate) const META_COMPACT_CURSOR: &str = "compact_cursor";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    rev        INTEGER PRIMARY KEY,
    key        BLOB NOT NULL,
    kind       INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev   INTEGER NOT NULL,
    value      BLOB
);
DROP INDEX IF EXISTS log_key_rev;
CREATE TABLE IF NOT EXISTS current (
    key        BLOB PRIMARY KEY,
    create_rev INTEGER NOT NULL,
    mod_rev    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('compacted', 0);
INSERT OR IGNORE INTO meta (name, value) VALUES ('compact_cursor', 0);
";

/// Map a SQLite error to the store boundary.
pub(crate) fn unavailable(err: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {err}"))
}

/// Decode a key column (stored as a BLOB so that range bounds from [`crate::prefix_end`],
/// which need not be UTF-8, compare bytewise).
pub(crate) fn key_from_blob(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|e| StoreError::Corrupt(format!("key is not UTF-8: {e}")))
}

/// Open (creating if needed) the writer connection and set up the schema.
pub(crate) fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        VFS,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Both only take effect on an empty database, i.e. before the first table exists.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "sqlite refused WAL journal mode");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
    conn.pragma_update(None, "foreign_keys", false)?;
    // 8 MiB page cache for the writer (negative = KiB).
    conn.pragma_update(None, "cache_size", -8192)?;
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))?;
    let auto_vacuum: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    if auto_vacuum != 2 {
        tracing::warn!(
            auto_vacuum,
            "database was created without incremental auto_vacuum; compaction will not shrink the file"
        );
    }
    Ok(conn)
}

/// Open one connection for the read pool (after [`open_writer`]). It is opened read-write
/// but set `query_only`: under `unix-excl` a read-only file would pass its locks through
/// to `fcntl`, where (POSIX locks being per process) they would replace and then release
/// the process's exclusive lock.
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        VFS,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.pragma_update(None, "cache_size", -4096)?;
    // Read the database file through a memory map instead of one pread(2) per page: a LIST of
    // 10k 3.4 KB values went from ~140-170 ms to ~25-80 ms (min/p50 of 15, loaded 2-core
    // machine, the `list` part of `benches/store.rs`). Pages still in the WAL are read
    // with pread as before. The map is virtual address space; only pages touched count,
    // as shared page cache. Caveat (SQLite's own): an I/O error on a mapped page is a
    // SIGBUS rather than an error return.
    conn.pragma_update(None, "mmap_size", READER_MMAP_SIZE)?;
    Ok(conn)
}

pub(crate) fn meta_get(conn: &Connection, name: &str) -> rusqlite::Result<Revision> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0))
}

pub(crate) fn meta_set(conn: &Connection, name: &str, value: Revision) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?
        .execute(params![name, value])?;
    Ok(())
}

/// `(current revision, compacted revision)` as seen by `conn` (inside a transaction when
/// the caller needs them to agree with other reads).
pub(crate) fn revisions(conn: &Connection) -> rusqlite::Result<(Revision, Revision)> {
    let compacted = meta_get(conn, META_COMPACTED)?;
    let max_rev: Option<i64> = conn
        .prepare_cached("SELECT max(rev) FROM log")?
        .query_row([], |r| r.get(0))?;
    Ok((max_rev.unwrap_or(0).max(compacted), compacted))
}
