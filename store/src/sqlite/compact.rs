//! Compaction: the writer-side job that deletes history in bounded steps, and the
//! background task that decides when to compact.
//!
//! Compacting to `C` keeps, for every key, its newest version `<= C` unless that is a
//! deletion, and every row above `C`. The job walks the log by revision from a persisted
//! cursor in steps of [`CHUNK_REVISIONS`], each step its own short transaction between
//! write batches. For a step over `(a, b]` it deletes:
//! 1. every row that a row in `(a, b]` replaced (its `prev_rev`: the write after a version
//!    always names it, and `b <= C`), and
//! 2. the deletions in `(a, b]`.
//!
//! Every superseded row `<= C` has its successor `<= C`, so exactly one step deletes it; a
//! row whose successor is above `C` is the key's version at `C` and stays. Both rules are
//! rowid lookups and range scans: the log has no key index.
//!
//! The compacted revision is recorded (meta + memory) when the request is accepted, before
//! anything is deleted, so a read that could miss deleted rows is already refused. A
//! newer target simply extends a running job (rows before the cursor that the extension
//! makes obsolete are caught by rule 1 when their successor's step runs). The cursor is
//! persisted, so a job interrupted by shutdown resumes on the next open.
//!
//! Freed pages stay on the free list, where later writes reuse them, so a steady workload
//! does not grow the file. Only when the free list is over 1 MiB and a quarter of the
//! file (see [`vacuum_worthwhile`]) are pages returned with `PRAGMA incremental_vacuum`
//! steps: that moves pages and rewrites their parents, which for a small free list costs
//! far more writes than it saves. No checkpoint is forced: the WAL autocheckpoint folds the pages
//! in with everything else.
//!
//! The automatic task also skips compactions that would remove only a few revisions (see
//! [`MIN_AUTO_COMPACT_REVISIONS`]) unless `history_max_revisions` is exceeded: each
//! compaction is at least two commits and dirties the oldest log pages and the free list,
//! which for a node heartbeat costs more than the history it drops.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::schema::{KIND_DELETE, META_COMPACT_CURSOR, meta_set};
use super::writer::{Shared, WriterHandle};
use crate::{Result, Revision, StoreConfig, StoreError};

/// Revisions examined per compaction step (one transaction).
pub(crate) const CHUNK_REVISIONS: i64 = 1024;
/// Pages returned to the file system per vacuum step.
pub(crate) const VACUUM_PAGES: i64 = 512;
/// Vacuum only when the free list holds more than this share of the file (1/4) ...
const VACUUM_MIN_FREE_FRACTION: i64 = 4;
/// ... and more than this many bytes. A small store (an idle cluster's heartbeats: the
/// history is most of the file) would otherwise move every live page after each
/// compaction, only to grow the file again with the next writes.
const VACUUM_MIN_FREE_BYTES: i64 = 1024 * 1024;
/// Automatic compaction by age waits until it can drop at least this many revisions
/// (about 17 minutes of one 10 s heartbeat; nothing on a busy store).
pub(crate) const MIN_AUTO_COMPACT_REVISIONS: i64 = 100;

pub(crate) struct Compaction {
    /// Everything at or below the cursor has been compacted to `target`.
    cursor: Revision,
    target: Revision,
    vacuum_pending: bool,
    /// A vacuum found the free list worth returning and goes on until it is empty.
    vacuuming: bool,
    /// A step failed; retry after the next write batch rather than spin.
    paused: bool,
    waiters: Vec<oneshot::Sender<Result<()>>>,
    started: Option<Instant>,
}

impl Compaction {
    pub(crate) fn new(cursor: Revision, target: Revision) -> Self {
        Compaction {
            cursor,
            target,
            vacuum_pending: cursor < target,
            vacuuming: false,
            paused: false,
            waiters: Vec::new(),
            started: (cursor < target).then(Instant::now),
        }
    }

    pub(crate) fn has_work(&self) -> bool {
        !self.paused && (self.cursor < self.target || self.vacuum_pending)
    }

    pub(crate) fn extend(&mut self, target: Revision) {
        if target > self.target {
            self.target = target;
            self.vacuum_pending = true;
            self.started.get_or_insert_with(Instant::now);
        }
        self.paused = false;
    }

    pub(crate) fn wait(&mut self, reply: oneshot::Sender<Result<()>>) {
        self.waiters.push(reply);
    }

    pub(crate) fn fail(&mut self, err: StoreError) {
        self.paused = true;
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(StoreError::Unavailable(err.to_string())));
        }
    }

    pub(crate) fn abandon(&mut self) {
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(StoreError::Closed));
        }
    }

    /// Do one bounded step of work, if any.
    pub(crate) fn step(&mut self, conn: &mut Connection) -> rusqlite::Result<()> {
        if self.paused {
            return Ok(());
        }
        if self.cursor < self.target {
            self.cursor = delete_step(conn, self.cursor, self.target)?;
            return Ok(());
        }
        if self.vacuum_pending && vacuum_step(conn, &mut self.vacuuming)? {
            self.vacuum_pending = false;
            self.vacuuming = false;
            let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
            let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
            tracing::info!(
                revision = self.target,
                elapsed_ms = self.started.take().map_or(0, |s| s.elapsed().as_millis()),
                file_pages = pages,
                free_pages = free,
                "compaction done"
            );
        }
        Ok(())
    }

    /// Retry a paused job (called after a successful write batch).
    pub(crate) fn resume(&mut self) {
        self.paused = false;
    }

    /// Reply to waiters once the job has fully finished (called after each step).
    pub(crate) fn settle(&mut self) {
        if !self.has_work() && !self.paused {
            for w in self.waiters.drain(..) {
                let _ = w.send(Ok(()));
            }
        }
    }
}

/// Compact `(cursor, min(cursor + CHUNK, target)]`; returns the new cursor.
fn delete_step(
    conn: &mut Connection,
    cursor: Revision,
    target: Revision,
) -> rusqlite::Result<Revision> {
    let end = cursor.saturating_add(CHUNK_REVISIONS).min(target);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // The subquery is evaluated once, before any row is deleted.
    let replaced = tx
        .prepare_cached(
            "DELETE FROM log WHERE rev IN (SELECT prev_rev FROM log \
             WHERE rev > ?1 AND rev <= ?2 AND prev_rev > 0)",
        )?
        .execute(params![cursor, end])?;
    let deletions = tx
        .prepare_cached("DELETE FROM log WHERE rev > ?1 AND rev <= ?2 AND kind = ?3")?
        .execute(params![cursor, end, KIND_DELETE])?;
    meta_set(&tx, META_COMPACT_CURSOR, end)?;
    tx.commit()?;
    tracing::debug!(
        from = cursor,
        to = end,
        target,
        replaced,
        deletions,
        "compaction step"
    );
    Ok(end)
}

/// Whether `free` free pages out of `pages` are worth an incremental vacuum.
/// `page_size` is the file's own (a file created by an older build keeps its page size).
fn vacuum_worthwhile(free: i64, pages: i64, page_size: i64) -> bool {
    free.saturating_mul(VACUUM_MIN_FREE_FRACTION) > pages
        && free.saturating_mul(page_size) > VACUUM_MIN_FREE_BYTES
}

/// One incremental-vacuum step; true when done: the free list is empty, stopped
/// shrinking, or (before `vacuuming` started) small enough to leave to later writes.
fn vacuum_step(conn: &Connection, vacuuming: &mut bool) -> rusqlite::Result<bool> {
    let before: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    if before == 0 {
        return Ok(true);
    }
    if !*vacuuming {
        let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        if !vacuum_worthwhile(before, pages, page_size) {
            return Ok(true);
        }
        *vacuuming = true;
    }
    {
        // Each page freed is reported as a result row; step through all of them.
        let mut stmt =
            conn.prepare_cached(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
    }
    let after: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    Ok(after == 0 || after >= before)
}

/// Background task: every `compaction_interval`, compact to
/// `max(current - history_max_revisions, newest revision sampled >= history_max_age ago)`.
pub(crate) async fn auto_compact(
    writer: WriterHandle,
    shared: Arc<Shared>,
    config: StoreConfig,
    cancel: CancellationToken,
) {
    let Some(interval) = config.compaction_interval.filter(|d| !d.is_zero()) else {
        return;
    };
    let max_age = config.history_max_age;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples: VecDeque<(Instant, Revision)> = VecDeque::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        let current = shared.current();
        let target = record_and_pick(
            &mut samples,
            now,
            current,
            max_age,
            config.history_max_revisions,
        );
        let compacted = shared.compacted();
        if target <= compacted {
            continue;
        }
        let over_count = current.saturating_sub(compacted) > config.history_max_revisions.max(0);
        if !over_count && target - compacted < MIN_AUTO_COMPACT_REVISIONS {
            // Too little to drop yet; the history is kept a little longer instead.
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            res = writer.compact(target) => match res {
                Ok(()) => tracing::debug!(revision = target, "automatic compaction finished"),
                // Someone else compacted further in the meantime.
                Err(StoreError::Compacted { .. }) => {}
                Err(StoreError::Closed) => break,
                Err(e) => tracing::warn!(error = %e, revision = target, "automatic compaction failed"),
            }
        }
    }
    tracing::debug!("automatic compaction stopped");
}

/// Push the sample `(now, current)` and return the revision to compact to (0: none).
/// Keeps the newest sample that is already `max_age` old and every newer one.
fn record_and_pick(
    samples: &mut VecDeque<(Instant, Revision)>,
    now: Instant,
    current: Revision,
    max_age: Duration,
    max_revisions: i64,
) -> Revision {
    samples.push_back((now, current));
    while samples.len() >= 2
        && samples
            .get(1)
            .is_some_and(|s| now.duration_since(s.0) >= max_age)
    {
        samples.pop_front();
    }
    let by_age = samples
        .front()
        .filter(|s| now.duration_since(s.0) >= max_age)
        .map_or(0, |s| s.1);
    let by_count = current.saturating_sub(max_revisions.max(0));
    by_age.max(by_count).min(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_larger_of_age_and_count_bounds() {
        let t0 = Instant::now();
        let mut s = VecDeque::new();
        let age = Duration::from_secs(60);
        assert_eq!(record_and_pick(&mut s, t0, 100, age, 1000), 0);
        assert_eq!(
            record_and_pick(&mut s, t0 + Duration::from_secs(30), 200, age, 1000),
            0
        );
        // The t0 sample (rev 100) is now 60 s old.
        assert_eq!(
            record_and_pick(&mut s, t0 + Duration::from_secs(60), 300, age, 1000),
            100
        );
        // Revision bound wins when it is higher.
        assert_eq!(
            record_and_pick(&mut s, t0 + Duration::from_secs(90), 5000, age, 1000),
            4000
        );
        assert!(s.len() <= 3);
    }
}
