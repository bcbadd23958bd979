//! The store contract (see `src/lib.rs`), written once against `S: Store` and run unchanged for
//! every backend by `conformance_suite!` at the bottom of this file.
//!
//! Isolation: each test gets a fresh store — a new SQLite file in a temp dir, or a new
//! single-member etcd from `capstan_testkit` on loopback ports (so revision arithmetic and compaction never see
//! another test's writes). Automatic compaction is off; the compaction test compacts itself.
//! Every watch receive is bounded by a timeout, so a bug fails a test instead of hanging it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use capstan_store::{
    DEFAULT_MAX_VALUE_BYTES, EventKind, ListOptions, ListResult, Revision, Store, StoreConfig,
    StoreError, WatchEvent, WatchStream,
};
use futures::{StreamExt, TryStreamExt};

// ---------------------------------------------------------------------------------------------
// helpers

/// Upper bound for any single watch receive that is expected to produce something.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

fn config() -> StoreConfig {
    StoreConfig {
        compaction_interval: None,
        ..StoreConfig::default()
    }
}

/// A key under the store prefix.
fn k(path: &str) -> String {
    format!("/registry/{path}")
}

fn val(s: impl Into<String>) -> Bytes {
    Bytes::from(s.into())
}

async fn rev<S: Store>(s: &S) -> Revision {
    s.current_revision().await.expect("current_revision")
}

/// Next watch item, or `None` when the stream ended. Panics after `RECV_TIMEOUT`.
async fn next_item(w: &mut WatchStream) -> Option<capstan_store::Result<WatchEvent>> {
    tokio::time::timeout(RECV_TIMEOUT, w.next())
        .await
        .expect("timed out waiting for a watch event")
}

/// Next watch event; panics on error, end of stream or timeout.
async fn next_event(w: &mut WatchStream) -> WatchEvent {
    match next_item(w).await {
        Some(Ok(ev)) => ev,
        Some(Err(e)) => panic!("watch failed: {e}"),
        None => panic!("watch ended unexpectedly"),
    }
}

/// Nothing arrives on `w` for `quiet`.
async fn assert_quiet(w: &mut WatchStream, quiet: Duration) {
    if let Ok(item) = tokio::time::timeout(quiet, w.next()).await {
        panic!("expected no watch event, got {item:?}");
    }
}

/// The error a watch fails with, whether `watch()` itself refuses or the stream's first item
/// is the error.
async fn watch_error<S: Store>(s: &S, prefix: &str, after: Revision) -> StoreError {
    match s.watch(prefix, after).await {
        Err(e) => e,
        Ok(mut w) => match next_item(&mut w).await {
            Some(Err(e)) => e,
            other => panic!("watch({prefix:?}, {after}) should have failed, got {other:?}"),
        },
    }
}

fn assert_event(
    ev: &WatchEvent,
    kind: EventKind,
    key: &str,
    value: &str,
    revision: Revision,
    prev_value: Option<&str>,
) {
    assert_eq!(ev.kind, kind, "event {ev:?}");
    assert_eq!(ev.kv.key, key, "event {ev:?}");
    assert_eq!(ev.revision(), revision, "event {ev:?}");
    assert_eq!(ev.kv.mod_revision, revision, "event {ev:?}");
    match kind {
        EventKind::Delete => {
            assert!(
                ev.kv.value.is_empty(),
                "delete event carries a value: {ev:?}"
            );
            assert_eq!(ev.kv.create_revision, 0, "delete event {ev:?}");
        }
        _ => assert_eq!(ev.kv.value, value.as_bytes(), "event {ev:?}"),
    }
    match prev_value {
        None => assert!(ev.prev.is_none(), "unexpected prev in {ev:?}"),
        Some(p) => {
            let prev = ev
                .prev
                .as_ref()
                .unwrap_or_else(|| panic!("no prev in {ev:?}"));
            assert_eq!(prev.key, key, "prev of {ev:?}");
            assert_eq!(prev.value, p.as_bytes(), "prev of {ev:?}");
            assert!(prev.mod_revision < revision, "prev of {ev:?}");
        }
    }
}

/// All pages of `prefix` at one revision (the first page's), `limit` per page.
async fn list_all_paged<S: Store>(s: &S, prefix: &str, limit: u64) -> ListResult {
    let first = s
        .list(
            prefix,
            ListOptions {
                limit: Some(limit),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let revision = first.revision;
    let mut out = first.clone();
    let mut page = first;
    while let Some(after) = page.continue_after().map(str::to_string) {
        assert_eq!(page.items.len() as u64, limit, "a short page claimed more");
        page = s
            .list(
                prefix,
                ListOptions {
                    count_remaining: false,
                    revision: Some(revision),
                    limit: Some(limit),
                    start_after: Some(after),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            page.revision, revision,
            "continued page read at another revision"
        );
        out.items.extend(page.items.iter().cloned());
    }
    out.more = false;
    out
}

// ---------------------------------------------------------------------------------------------
// cases: each an `async fn(Arc<S>)` over any backend

/// create/get/update/delete; create and mod revisions; the global revision moves by exactly one
/// per successful write.
async fn crud_and_revisions<S: Store>(s: Arc<S>) {
    s.health().await.unwrap();
    let r0 = rev(&*s).await;
    assert!(r0 >= 0);
    let key = k("pods/default/web");
    assert_eq!(s.get(&key).await.unwrap(), None);

    let created = s.create(&key, val("v1")).await.unwrap();
    assert_eq!(created.key, key);
    assert_eq!(created.value, "v1".as_bytes());
    assert_eq!(created.create_revision, r0 + 1);
    assert_eq!(created.mod_revision, r0 + 1);
    assert_eq!(rev(&*s).await, r0 + 1);
    assert_eq!(s.get(&key).await.unwrap(), Some(created.clone()));

    let updated = s.update(&key, val("v2"), r0 + 1).await.unwrap();
    assert_eq!(updated.value, "v2".as_bytes());
    assert_eq!(updated.create_revision, r0 + 1);
    assert_eq!(updated.mod_revision, r0 + 2);
    assert_eq!(rev(&*s).await, r0 + 2);
    assert_eq!(s.get(&key).await.unwrap(), Some(updated.clone()));

    // A second key interleaved: the revision is global, not per key.
    let other = s.create(&k("pods/default/db"), val("x")).await.unwrap();
    assert_eq!(other.mod_revision, r0 + 3);

    let deleted = s.delete(&key, None).await.unwrap();
    assert_eq!(deleted.revision, r0 + 4);
    assert_eq!(deleted.prev, updated);
    assert_eq!(rev(&*s).await, r0 + 4);
    assert_eq!(s.get(&key).await.unwrap(), None);

    // Re-creating starts a new life: new create revision.
    let again = s.create(&key, val("v3")).await.unwrap();
    assert_eq!(again.create_revision, r0 + 5);
    assert_eq!(again.mod_revision, r0 + 5);

    // Empty values are values.
    let empty = s.create(&k("empty"), Bytes::new()).await.unwrap();
    assert_eq!(empty.mod_revision, r0 + 6);
    assert_eq!(s.get(&k("empty")).await.unwrap().unwrap().value.len(), 0);

    let all = s.list("/registry/", ListOptions::default()).await.unwrap();
    assert_eq!(all.revision, r0 + 6);
    assert!(!all.more);
    let keys: Vec<_> = all.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [k("empty"), k("pods/default/db"), k("pods/default/web")]
    );
    assert_eq!(s.compacted_revision().await.unwrap(), 0);
}

/// CAS on a stale revision: Conflict with the actual revision; nothing written.
async fn update_conflict<S: Store>(s: Arc<S>) {
    let key = k("cm/a");
    let c = s.create(&key, val("1")).await.unwrap();
    let u = s.update(&key, val("2"), c.mod_revision).await.unwrap();
    let before = rev(&*s).await;
    match s.update(&key, val("3"), c.mod_revision).await {
        Err(StoreError::Conflict {
            key: ek,
            expected,
            actual,
        }) => {
            assert_eq!(ek, key);
            assert_eq!(expected, c.mod_revision);
            assert_eq!(actual, u.mod_revision);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    let err = s
        .update(&key, val("3"), u.mod_revision + 100)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { actual, .. } if actual == u.mod_revision));
    assert!(err.is_retryable());
    assert_eq!(rev(&*s).await, before, "a failed CAS moved the revision");
    assert_eq!(s.get(&key).await.unwrap(), Some(u));
}

/// create of an existing key: AlreadyExists; nothing written.
async fn create_existing<S: Store>(s: Arc<S>) {
    let key = k("cm/a");
    let c = s.create(&key, val("1")).await.unwrap();
    let before = rev(&*s).await;
    match s.create(&key, val("2")).await {
        Err(StoreError::AlreadyExists { key: ek }) => assert_eq!(ek, key),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(rev(&*s).await, before);
    assert_eq!(s.get(&key).await.unwrap(), Some(c));
}

/// update / delete / guarded delete of a missing key: NotFound; nothing written.
async fn missing_keys<S: Store>(s: Arc<S>) {
    s.create(&k("present"), val("p")).await.unwrap();
    let before = rev(&*s).await;
    let key = k("cm/missing");
    assert!(
        matches!(s.update(&key, val("x"), 1).await, Err(StoreError::NotFound { key: ref ek }) if *ek == key)
    );
    assert!(
        matches!(s.delete(&key, None).await, Err(StoreError::NotFound { key: ref ek }) if *ek == key)
    );
    assert!(matches!(
        s.delete(&key, Some(before)).await,
        Err(StoreError::NotFound { .. })
    ));
    // A deleted key is missing too.
    let gone = s.create(&key, val("x")).await.unwrap();
    s.delete(&key, Some(gone.mod_revision)).await.unwrap();
    let before = rev(&*s).await;
    assert!(matches!(
        s.update(&key, val("y"), gone.mod_revision).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.delete(&key, None).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(rev(&*s).await, before);
    assert_eq!(s.get(&key).await.unwrap(), None);
}

/// Guarded delete with a stale revision: Conflict with the actual one; key kept. With the right
/// one: deleted.
async fn guarded_delete<S: Store>(s: Arc<S>) {
    let key = k("cm/a");
    let c = s.create(&key, val("1")).await.unwrap();
    let u = s.update(&key, val("2"), c.mod_revision).await.unwrap();
    let before = rev(&*s).await;
    match s.delete(&key, Some(c.mod_revision)).await {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => {
            assert_eq!(expected, c.mod_revision);
            assert_eq!(actual, u.mod_revision);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(rev(&*s).await, before);
    assert_eq!(s.get(&key).await.unwrap(), Some(u.clone()));
    let d = s.delete(&key, Some(u.mod_revision)).await.unwrap();
    assert_eq!(d.revision, before + 1);
    assert_eq!(d.prev, u);
    assert_eq!(s.get(&key).await.unwrap(), None);
}

/// A list at a past revision shows the state as it was then.
async fn list_at_past_revision<S: Store>(s: Arc<S>) {
    let a1 = s.create(&k("ns/a"), val("a1")).await.unwrap();
    let b1 = s.create(&k("ns/b"), val("b1")).await.unwrap();
    let r1 = rev(&*s).await;
    s.update(&k("ns/a"), val("a2"), a1.mod_revision)
        .await
        .unwrap();
    s.delete(&k("ns/b"), None).await.unwrap();
    s.create(&k("ns/c"), val("c1")).await.unwrap();

    let then = s
        .list(
            &k("ns/"),
            ListOptions {
                revision: Some(r1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(then.revision, r1);
    assert!(!then.more);
    assert_eq!(then.items, vec![a1.clone(), b1]);

    let between = s
        .list(
            &k("ns/"),
            ListOptions {
                revision: Some(r1 + 1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let vals: Vec<_> = between.items.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(vals, [val("a2"), val("b1")]);

    let now = s.list(&k("ns/"), ListOptions::default()).await.unwrap();
    assert_eq!(now.revision, rev(&*s).await);
    let keys: Vec<_> = now.items.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, [k("ns/a"), k("ns/c")]);

    // A limited, continued list at the past revision.
    let p1 = s
        .list(
            &k("ns/"),
            ListOptions {
                count_remaining: false,
                revision: Some(r1),
                limit: Some(1),
                start_after: None,
            },
        )
        .await
        .unwrap();
    assert!(p1.more);
    assert_eq!(p1.items, vec![a1]);
    let p2 = s
        .list(
            &k("ns/"),
            ListOptions {
                count_remaining: false,
                revision: Some(r1),
                limit: Some(1),
                start_after: p1.continue_after().map(str::to_string),
            },
        )
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 1);
    assert_eq!(p2.items[0].key, k("ns/b"));
    assert!(!p2.more);
    assert_eq!(p2.continue_after(), None);
}

/// limit / more / continue_after and limit 0 = all.
async fn list_limit_basics<S: Store>(s: Arc<S>) {
    for i in 0..5 {
        s.create(&k(&format!("l/{i}")), val(format!("{i}")))
            .await
            .unwrap();
    }
    let all = s
        .list(
            &k("l/"),
            ListOptions {
                limit: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 5);
    assert!(!all.more);
    let exact = s
        .list(
            &k("l/"),
            ListOptions {
                limit: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 5);
    assert!(!exact.more, "limit == count must not claim more");
    let p = s
        .list(
            &k("l/"),
            ListOptions {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(p.more);
    assert_eq!(p.continue_after(), Some(k("l/1").as_str()));
    let rest = s
        .list(
            &k("l/"),
            ListOptions {
                count_remaining: false,
                revision: Some(p.revision),
                limit: None,
                start_after: Some(k("l/1")),
            },
        )
        .await
        .unwrap();
    let keys: Vec<_> = rest.items.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, [k("l/2"), k("l/3"), k("l/4")]);
    let paged = list_all_paged(&*s, &k("l/"), 2).await;
    assert_eq!(paged.items, all.items);
}

/// `count_remaining`: how many keys follow a limited page, at the page's revision (also a past
/// one), only when asked and only when the limit cut the list short.
async fn list_counts_remaining<S: Store>(s: Arc<S>) {
    for i in 0..10 {
        s.create(&k(&format!("rc/{i}")), val(format!("{i}")))
            .await
            .unwrap();
    }
    s.create(&k("rc0"), val("outside the prefix"))
        .await
        .unwrap();
    let counted = |revision: Option<Revision>, limit: u64, after: Option<&str>| ListOptions {
        revision,
        limit: Some(limit),
        start_after: after.map(k),
        count_remaining: true,
    };
    let first = s.list(&k("rc/"), counted(None, 3, None)).await.unwrap();
    assert!(first.more);
    assert_eq!(first.remaining, Some(7));
    let then = first.revision;
    let next = s
        .list(&k("rc/"), counted(Some(then), 3, Some("rc/2")))
        .await
        .unwrap();
    assert_eq!(next.remaining, Some(4));
    // Change the keyspace: the count at the old revision is unchanged, the current one moves.
    s.delete(&k("rc/5"), None).await.unwrap();
    s.delete(&k("rc/8"), None).await.unwrap();
    s.create(&k("rc/55"), val("new")).await.unwrap();
    let old = s
        .list(&k("rc/"), counted(Some(then), 3, Some("rc/2")))
        .await
        .unwrap();
    assert_eq!(old.items, next.items);
    assert_eq!(old.remaining, Some(4));
    let now = s
        .list(&k("rc/"), counted(None, 3, Some("rc/2")))
        .await
        .unwrap();
    let keys: Vec<_> = now.items.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, [k("rc/3"), k("rc/4"), k("rc/55")]);
    assert_eq!(now.remaining, Some(3), "rc/6, rc/7, rc/9");
    let last = s
        .list(&k("rc/"), counted(None, 3, Some("rc/55")))
        .await
        .unwrap();
    assert!(!last.more);
    assert_eq!(last.remaining, None);
    let unasked = s
        .list(
            &k("rc/"),
            ListOptions {
                limit: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(unasked.more);
    assert_eq!(unasked.remaining, None);
}

/// Paging with limit/continue while other tasks write yields exactly the snapshot at the first
/// page's revision: no duplicates, no gaps, no later values.
async fn paged_list_is_one_snapshot<S: Store>(s: Arc<S>) {
    const N: usize = 60;
    let name = |i: usize| k(&format!("snap/k{i:03}"));
    let mut expected = Vec::new();
    for i in 0..N {
        expected.push(s.create(&name(i), val(format!("v0-{i}"))).await.unwrap());
    }

    // Background writers churning the same prefix for the whole paging.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let mut churn = Vec::new();
    for t in 0..4 {
        let (s, stop, writes) = (s.clone(), stop.clone(), writes.clone());
        churn.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let i = (n * 7 + t * 13) % N;
                let key = name(i);
                // Churn only: a read that fails under load (an etcd request timing out on a
                // busy machine) just skips this round; the assertions are about the pages.
                match s.get(&key).await {
                    Ok(Some(kv)) if n.is_multiple_of(5) => {
                        let _ = s.delete(&key, Some(kv.mod_revision)).await;
                    }
                    Ok(Some(kv)) => {
                        let _ = s
                            .update(&key, val(format!("bg{t}-{n}")), kv.mod_revision)
                            .await;
                    }
                    Ok(None) => {
                        let _ = s.create(&key, val(format!("re{t}-{n}"))).await;
                    }
                    Err(_) => {}
                }
                let _ = s
                    .create(&k(&format!("snap/k{i:03}-new{t}-{n}")), val("new"))
                    .await;
                writes.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }

    let limit = 7u64;
    let first = s
        .list(
            &k("snap/"),
            ListOptions {
                limit: Some(limit),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let snap = first.revision;
    assert!(first.more);
    let mut got = first.items.clone();
    let mut page = first;
    let mut pages = 1;
    while let Some(after) = page.continue_after().map(str::to_string) {
        // Deterministic writes between pages too: update the next unread key, delete one further
        // on, and insert a key right after the cursor.
        let next_unread = got.len();
        if next_unread < N {
            if let Some(kv) = s.get(&name(next_unread)).await.unwrap() {
                let _ = s.update(&kv.key, val("changed"), kv.mod_revision).await;
            }
            let _ = s.delete(&name((next_unread + 3).min(N - 1)), None).await;
        }
        let _ = s.create(&format!("{after}-inserted"), val("ins")).await;
        // Let the background writers get a turn.
        tokio::time::sleep(Duration::from_millis(5)).await;

        page = s
            .list(
                &k("snap/"),
                ListOptions {
                    count_remaining: false,
                    revision: Some(snap),
                    limit: Some(limit),
                    start_after: Some(after),
                },
            )
            .await
            .unwrap();
        assert_eq!(page.revision, snap);
        got.extend(page.items.iter().cloned());
        pages += 1;
        assert!(pages < 100, "paging does not terminate");
    }
    stop.store(true, Ordering::Relaxed);
    for t in churn {
        t.await.unwrap();
    }
    assert!(
        writes.load(Ordering::Relaxed) > 0,
        "background writers made no progress"
    );
    assert!(rev(&*s).await > snap, "nothing was written during paging");
    assert_eq!(got.len(), N, "wrong item count across pages");
    assert_eq!(got, expected, "pages are not the snapshot at {snap}");
}

/// A watch from an old revision replays every event since, in order, with prev values, and then
/// delivers live events.
async fn watch_replays_then_follows<S: Store>(s: Arc<S>) {
    let r0 = rev(&*s).await;
    let a = k("w/a");
    let b = k("w/b");
    s.create(&a, val("a1")).await.unwrap(); // r0+1
    s.update(&a, val("a2"), r0 + 1).await.unwrap(); // r0+2
    s.create(&b, val("b1")).await.unwrap(); // r0+3
    s.delete(&a, None).await.unwrap(); // r0+4
    s.update(&b, val("b2"), r0 + 3).await.unwrap(); // r0+5

    let mut w = s.watch(&k("w/"), r0).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_event(&ev, EventKind::Create, &a, "a1", r0 + 1, None);
    assert_eq!(ev.kv.create_revision, r0 + 1);
    let ev = next_event(&mut w).await;
    assert_event(&ev, EventKind::Update, &a, "a2", r0 + 2, Some("a1"));
    assert_eq!(ev.kv.create_revision, r0 + 1);
    assert_eq!(ev.prev.as_ref().unwrap().mod_revision, r0 + 1);
    assert_event(
        &next_event(&mut w).await,
        EventKind::Create,
        &b,
        "b1",
        r0 + 3,
        None,
    );
    let ev = next_event(&mut w).await;
    assert_event(&ev, EventKind::Delete, &a, "", r0 + 4, Some("a2"));
    assert_eq!(ev.prev.as_ref().unwrap().mod_revision, r0 + 2);
    assert_eq!(ev.prev.as_ref().unwrap().create_revision, r0 + 1);
    assert_event(
        &next_event(&mut w).await,
        EventKind::Update,
        &b,
        "b2",
        r0 + 5,
        Some("b1"),
    );

    // Live.
    s.create(&a, val("a3")).await.unwrap(); // r0+6
    assert_event(
        &next_event(&mut w).await,
        EventKind::Create,
        &a,
        "a3",
        r0 + 6,
        None,
    );
    s.delete(&b, Some(r0 + 5)).await.unwrap(); // r0+7
    assert_event(
        &next_event(&mut w).await,
        EventKind::Delete,
        &b,
        "",
        r0 + 7,
        Some("b2"),
    );
    assert_quiet(&mut w, Duration::from_millis(300)).await;

    // From the middle of history: strictly after the given revision.
    let mut mid = s.watch(&k("w/"), r0 + 3).await.unwrap();
    let revs = [
        next_event(&mut mid).await.revision(),
        next_event(&mut mid).await.revision(),
        next_event(&mut mid).await.revision(),
        next_event(&mut mid).await.revision(),
    ];
    assert_eq!(revs, [r0 + 4, r0 + 5, r0 + 6, r0 + 7]);
    assert_quiet(&mut mid, Duration::from_millis(200)).await;

    // A burst of live writes arrives complete and in order.
    let base = rev(&*s).await;
    for i in 0..200 {
        s.create(&k(&format!("w/burst/{i:03}")), val("x"))
            .await
            .unwrap();
    }
    for i in 0..200 {
        let ev = next_event(&mut w).await;
        assert_eq!(ev.revision(), base + 1 + i, "burst event {i}");
        assert_eq!(ev.kv.key, k(&format!("w/burst/{i:03}")));
    }
}

/// A watch from the current revision sees only what comes after.
async fn watch_from_current<S: Store>(s: Arc<S>) {
    for i in 0..5 {
        s.create(&k(&format!("wc/{i}")), val("old")).await.unwrap();
    }
    let now = rev(&*s).await;
    let mut w = s.watch(&k("wc/"), now).await.unwrap();
    assert_quiet(&mut w, Duration::from_millis(300)).await;
    let kv = s.update(&k("wc/3"), val("new"), now - 1).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_event(
        &ev,
        EventKind::Update,
        &k("wc/3"),
        "new",
        now + 1,
        Some("old"),
    );
    assert_eq!(ev.kv, kv);
    assert_quiet(&mut w, Duration::from_millis(200)).await;
}

/// After compaction at `c`: reads at and watches from revisions before `c` fail with Compacted;
/// the state at `c` and the events after it are kept.
async fn compaction<S: Store>(s: Arc<S>) {
    let key = k("cmp/x");
    let mut kv = s.create(&key, val("0")).await.unwrap();
    let first = kv.mod_revision;
    let mut values = BTreeMap::new();
    values.insert(kv.mod_revision, kv.clone());
    for i in 1..=6 {
        kv = s
            .update(&key, val(format!("{i}")), kv.mod_revision)
            .await
            .unwrap();
        values.insert(kv.mod_revision, kv.clone());
    }
    let c = first + 4;
    s.compact(c).await.unwrap();
    assert_eq!(s.compacted_revision().await.unwrap(), c);

    // Reads.
    match s
        .list(
            &k("cmp/"),
            ListOptions {
                revision: Some(c - 1),
                ..Default::default()
            },
        )
        .await
    {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!(requested, c - 1);
            assert_eq!(compacted, c);
        }
        other => panic!("list at a compacted revision: expected Compacted, got {other:?}"),
    }
    assert!(matches!(
        s.list(
            &k("cmp/"),
            ListOptions {
                revision: Some(first),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::Compacted { .. })
    ));
    let at_c = s
        .list(
            &k("cmp/"),
            ListOptions {
                revision: Some(c),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(at_c.items, vec![values[&c].clone()]);
    assert_eq!(s.get(&key).await.unwrap(), Some(kv.clone()));

    // Watches.
    let err = watch_error(&*s, &k("cmp/"), c - 2).await;
    assert!(
        matches!(err, StoreError::Compacted { compacted, .. } if compacted == c),
        "watch from a compacted revision: expected Compacted, got {err:?}"
    );
    let err = watch_error(&*s, &k("cmp/"), 0).await;
    assert!(
        matches!(err, StoreError::Compacted { .. }),
        "watch from 0 after compaction: {err:?}"
    );
    let mut w = s.watch(&k("cmp/"), c).await.unwrap();
    for r in (c + 1)..=kv.mod_revision {
        let ev = next_event(&mut w).await;
        assert_eq!(ev.revision(), r);
        assert_eq!(ev.kv, values[&r]);
        assert_eq!(ev.prev.as_ref(), Some(&values[&(r - 1)]));
    }
    assert_quiet(&mut w, Duration::from_millis(200)).await;

    // Writes and the live watch go on after compaction.
    let next = s.update(&key, val("7"), kv.mod_revision).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!(ev.kv, next);
}

/// Reads, watches and compactions at a revision not reached yet: FutureRevision.
async fn future_revisions<S: Store>(s: Arc<S>) {
    s.create(&k("f/a"), val("1")).await.unwrap();
    let now = rev(&*s).await;
    match s
        .list(
            &k("f/"),
            ListOptions {
                revision: Some(now + 5),
                ..Default::default()
            },
        )
        .await
    {
        Err(StoreError::FutureRevision { requested, current }) => {
            assert_eq!(requested, now + 5);
            assert_eq!(current, now);
        }
        other => panic!("list in the future: expected FutureRevision, got {other:?}"),
    }
    let err = watch_error(&*s, &k("f/"), now + 5).await;
    assert!(
        matches!(err, StoreError::FutureRevision { requested, .. } if requested == now + 5),
        "watch from the future: {err:?}"
    );
    assert!(matches!(
        s.compact(now + 5).await,
        Err(StoreError::FutureRevision { .. })
    ));
    assert_eq!(s.compacted_revision().await.unwrap(), 0);
    // The current revision itself is fine for all three.
    s.list(
        &k("f/"),
        ListOptions {
            revision: Some(now),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut w = s.watch(&k("f/"), now).await.unwrap();
    assert_quiet(&mut w, Duration::from_millis(100)).await;
    assert_eq!(rev(&*s).await, now);
}

/// 32 writers each add N to one counter with get + CAS retry loops: no update is lost.
async fn concurrent_counter<S: Store>(s: Arc<S>) {
    const WRITERS: usize = 32;
    const PER_WRITER: u64 = 25;
    let key = k("counter");
    let created = s.create(&key, val("0")).await.unwrap();
    let conflicts = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (s, key, conflicts) = (s.clone(), key.clone(), conflicts.clone());
            tokio::spawn(async move {
                for _ in 0..PER_WRITER {
                    loop {
                        let cur = s.get(&key).await.unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&cur.value).unwrap().parse().unwrap();
                        match s
                            .update(&key, val(format!("{}", n + 1)), cur.mod_revision)
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("update failed: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(tasks))
        .await
        .expect("counter writers did not finish in 120 s")
        .into_iter()
        .for_each(|r| r.unwrap());
    let total = WRITERS as u64 * PER_WRITER;
    let fin = s.get(&key).await.unwrap().unwrap();
    assert_eq!(fin.value, format!("{total}").as_bytes(), "lost updates");
    assert_eq!(fin.mod_revision, created.mod_revision + total as i64);
    assert_eq!(fin.create_revision, created.create_revision);
    eprintln!(
        "counter: {total} increments, {} conflicts retried",
        conflicts.load(Ordering::Relaxed)
    );
}

/// Values of exactly the limit round-trip; one byte more is ValueTooLarge and nothing is stored.
async fn value_size_limit<S: Store>(s: Arc<S>) {
    let max = DEFAULT_MAX_VALUE_BYTES;
    let big: Bytes = (0..max).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
    let key = k("big/a");
    let c = s.create(&key, big.clone()).await.unwrap();
    assert_eq!(c.value.len(), max);
    let got = s.get(&key).await.unwrap().unwrap();
    assert!(got.value == big, "1.5 MiB value did not round-trip");

    let big2: Bytes = (0..max).map(|i| (i % 241) as u8).collect::<Vec<_>>().into();
    let u = s.update(&key, big2.clone(), c.mod_revision).await.unwrap();
    assert!(s.get(&key).await.unwrap().unwrap().value == big2);
    let listed = s.list(&k("big/"), ListOptions::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(listed.items[0].value == big2);

    let before = rev(&*s).await;
    let over: Bytes = vec![7u8; max + 1].into();
    match s.create(&k("big/b"), over.clone()).await {
        Err(StoreError::ValueTooLarge {
            key: ek,
            size,
            limit,
        }) => {
            assert_eq!(ek, k("big/b"));
            assert_eq!(size, max + 1);
            assert_eq!(limit, max);
        }
        other => panic!("expected ValueTooLarge, got {:?}", other.map(|kv| kv.key)),
    }
    assert!(matches!(
        s.update(&key, over, u.mod_revision).await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    assert_eq!(rev(&*s).await, before, "a refused value moved the revision");
    assert_eq!(s.get(&k("big/b")).await.unwrap(), None);
    assert_eq!(
        s.get(&key).await.unwrap().unwrap().mod_revision,
        u.mod_revision
    );
}

/// 100k keys inserted concurrently, then listed in pages of 1000: all there, in order, once.
async fn hundred_thousand_keys<S: Store>(s: Arc<S>) {
    const N: usize = 100_000;
    const CONCURRENCY: usize = 128;
    let name = |i: usize| k(&format!("bulk/{i:06}"));
    let t0 = Instant::now();
    let insert = futures::stream::iter(0..N)
        .map(|i| {
            let s = s.clone();
            async move { s.create(&name(i), val(format!("{i}"))).await.map(|_| ()) }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>();
    tokio::time::timeout(Duration::from_secs(240), insert)
        .await
        .expect("inserting 100k keys took over 240 s")
        .unwrap();
    let inserted = t0.elapsed();

    let t1 = Instant::now();
    let listed = tokio::time::timeout(
        Duration::from_secs(120),
        list_all_paged(&*s, &k("bulk/"), 1000),
    )
    .await
    .expect("listing 100k keys took over 120 s");
    let list_time = t1.elapsed();
    assert_eq!(listed.items.len(), N);
    for (i, kv) in listed.items.iter().enumerate() {
        assert_eq!(kv.key, name(i), "item {i} out of order or missing");
        assert_eq!(kv.value, format!("{i}").as_bytes());
        assert!(kv.mod_revision <= listed.revision);
    }
    eprintln!(
        "100k keys: insert {:.1} s ({:.0}/s at c={CONCURRENCY}), paged list {:.1} s",
        inserted.as_secs_f64(),
        N as f64 / inserted.as_secs_f64(),
        list_time.as_secs_f64()
    );
}

/// Empty keys, keys outside the prefix, list/watch prefixes and start_after outside the prefix:
/// InvalidKey, and nothing stored.
async fn bad_keys<S: Store>(s: Arc<S>) {
    let before = rev(&*s).await;
    for bad in [
        "",
        "/other/a",
        "/registry",
        "/registry/",
        "registry/a",
        "/registryx/a",
        "/registry/a\0b",
    ] {
        fn inv<T>(r: &capstan_store::Result<T>) -> bool {
            matches!(r, Err(StoreError::InvalidKey { .. }))
        }
        assert!(inv(&s.create(bad, val("x")).await), "create {bad:?}");
        assert!(inv(&s.update(bad, val("x"), 1).await), "update {bad:?}");
        assert!(inv(&s.delete(bad, None).await), "delete {bad:?}");
        assert!(inv(&s.get(bad).await), "get {bad:?}");
    }
    for bad_prefix in ["", "/other/", "/registryx/", "registry/"] {
        assert!(
            matches!(
                s.list(bad_prefix, ListOptions::default()).await,
                Err(StoreError::InvalidKey { .. })
            ),
            "list {bad_prefix:?}"
        );
        assert!(
            matches!(
                watch_error(&*s, bad_prefix, before).await,
                StoreError::InvalidKey { .. }
            ),
            "watch {bad_prefix:?}"
        );
    }
    for bad_after in ["/other/x", "", "/registryx/a"] {
        assert!(
            matches!(
                s.list(
                    "/registry/",
                    ListOptions {
                        start_after: Some(bad_after.into()),
                        ..Default::default()
                    }
                )
                .await,
                Err(StoreError::InvalidKey { .. })
            ),
            "start_after {bad_after:?}"
        );
    }
    assert_eq!(rev(&*s).await, before, "a refused write moved the revision");
    let all = s.list("/registry", ListOptions::default()).await.unwrap();
    assert!(
        all.items.is_empty(),
        "something was stored: {:?}",
        all.items
    );
    // The store prefix itself (with or without the slash) is a valid list/watch prefix.
    s.create(&k("ok"), val("1")).await.unwrap();
    assert_eq!(
        s.list("/registry", ListOptions::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

/// A watch on one prefix gets nothing from sibling prefixes, including ones sharing a string
/// prefix (`/registry/pods/` vs `/registry/podsx/`); lists likewise.
async fn prefix_isolation<S: Store>(s: Arc<S>) {
    let now = rev(&*s).await;
    let mut pods = s.watch(&k("pods/"), now).await.unwrap();
    let mut all = s.watch("/registry/", now).await.unwrap();
    s.create(&k("podsx/a"), val("no")).await.unwrap();
    s.create(&k("pod/a"), val("no")).await.unwrap();
    s.create(&k("services/a"), val("no")).await.unwrap();
    let yes = s.create(&k("pods/a"), val("yes")).await.unwrap();
    s.update(&k("podsx/a"), val("no2"), now + 1).await.unwrap();

    let ev = next_event(&mut pods).await;
    assert_eq!(ev.kv, yes);
    assert_quiet(&mut pods, Duration::from_millis(500)).await;

    let seen: Vec<_> = [
        next_event(&mut all).await,
        next_event(&mut all).await,
        next_event(&mut all).await,
        next_event(&mut all).await,
        next_event(&mut all).await,
    ]
    .iter()
    .map(|e| (e.kv.key.clone(), e.revision()))
    .collect();
    assert_eq!(
        seen,
        [
            (k("podsx/a"), now + 1),
            (k("pod/a"), now + 2),
            (k("services/a"), now + 3),
            (k("pods/a"), now + 4),
            (k("podsx/a"), now + 5),
        ]
    );

    let listed = s.list(&k("pods/"), ListOptions::default()).await.unwrap();
    assert_eq!(listed.items, vec![yes]);
    // Replay from before respects the prefix too.
    let mut replay = s.watch(&k("pods/"), now).await.unwrap();
    assert_eq!(next_event(&mut replay).await.kv.key, k("pods/a"));
    assert_quiet(&mut replay, Duration::from_millis(300)).await;
}

/// Keys round-trip with their value byte-for-byte (binary, non-UTF-8, multi-byte key chars).
async fn binary_values_and_odd_keys<S: Store>(s: Arc<S>) {
    let value: Bytes = (0..=255u8)
        .chain((0..=255u8).rev())
        .collect::<Vec<_>>()
        .into();
    let keys = [
        k("odd/with space"),
        k("odd/ünïcödé"),
        k("odd/a:b@c%2F"),
        k("odd/trailing/"),
    ];
    for key in &keys {
        let c = s.create(key, value.clone()).await.unwrap();
        assert_eq!(c.value, value);
        assert_eq!(s.get(key).await.unwrap().unwrap().value, value);
    }
    let listed = s.list(&k("odd/"), ListOptions::default()).await.unwrap();
    let mut sorted = keys.to_vec();
    sorted.sort(); // byte order
    let got: Vec<_> = listed.items.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(got, sorted);
}

/// A watch opened from a past revision while writers keep writing hands over from replay to
/// live events without a gap or a duplicate: the revisions it sees are exactly contiguous.
async fn watch_handoff_under_concurrent_writes<S: Store>(s: Arc<S>) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 60;
    let r0 = rev(&*s).await;
    let start = Arc::new(tokio::sync::Barrier::new(WRITERS + 1));
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (s, start) = (s.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                for i in 0..PER_WRITER {
                    let key = k(&format!("hand/{t}/{i:03}"));
                    let kv = s.create(&key, val("c")).await.unwrap();
                    if i % 3 == 0 {
                        s.update(&key, val("u"), kv.mod_revision).await.unwrap();
                    }
                    if i % 5 == 0 {
                        s.delete(&key, None).await.unwrap();
                    }
                }
            })
        })
        .collect();
    start.wait().await;
    // Let some history accumulate, then watch from the beginning while writes go on.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut early = s.watch(&k("hand/"), r0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mid_from = rev(&*s).await;
    let mut mid = s.watch(&k("hand/"), mid_from).await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let end = rev(&*s).await;
    let per_writer_writes = PER_WRITER + PER_WRITER.div_ceil(3) + PER_WRITER.div_ceil(5);
    assert_eq!(end - r0, (WRITERS * per_writer_writes) as i64);

    let mut live: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for expect in (r0 + 1)..=end {
        let ev = next_event(&mut early).await;
        assert_eq!(
            ev.revision(),
            expect,
            "gap or duplicate in the replay/live handoff"
        );
        match ev.kind {
            EventKind::Create => {
                assert!(ev.prev.is_none());
                assert!(
                    live.insert(ev.kv.key.clone(), ev.kv.value.to_vec())
                        .is_none()
                );
            }
            EventKind::Update | EventKind::Delete => {
                let prev = ev.prev.as_ref().expect("prev on update/delete");
                assert_eq!(
                    live.get(&ev.kv.key).map(Vec::as_slice),
                    Some(&prev.value[..])
                );
                if ev.kind == EventKind::Delete {
                    live.remove(&ev.kv.key);
                } else {
                    live.insert(ev.kv.key.clone(), ev.kv.value.to_vec());
                }
            }
        }
    }
    assert_quiet(&mut early, Duration::from_millis(200)).await;
    for expect in (mid_from + 1)..=end {
        assert_eq!(next_event(&mut mid).await.revision(), expect);
    }
    // The replayed state matches the store.
    let listed = s.list(&k("hand/"), ListOptions::default()).await.unwrap();
    let now: BTreeMap<String, Vec<u8>> = listed
        .items
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.to_vec()))
        .collect();
    assert_eq!(now, live);
}

/// A watcher that does not read must not hold writers up. Once it reads, it gets a gap-free,
/// in-order run of events that is either complete or ends with WatchLagged naming the last
/// revision it delivered (then the stream ends, and watching again from there works).
async fn slow_watcher_never_blocks_writers<S: Store>(s: Arc<S>) {
    const WRITES: i64 = 3000;
    let r0 = rev(&*s).await;
    let mut w = s.watch(&k("slow/"), r0).await.unwrap();
    let payload = val("x".repeat(512));
    let write_all = futures::stream::iter(0..WRITES)
        .map(|i| {
            let (s, payload) = (s.clone(), payload.clone());
            async move {
                s.create(&k(&format!("slow/{i:05}")), payload)
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>();
    tokio::time::timeout(Duration::from_secs(120), write_all)
        .await
        .expect("writers stalled behind an unread watch")
        .unwrap();
    let end = r0 + WRITES;
    assert_eq!(rev(&*s).await, end);

    let mut last = r0;
    loop {
        if last == end {
            break;
        }
        match next_item(&mut w).await {
            Some(Ok(ev)) => {
                assert_eq!(ev.revision(), last + 1, "gap or reordering");
                last = ev.revision();
            }
            Some(Err(StoreError::WatchLagged { last_revision, .. })) => {
                assert_eq!(last_revision, last, "WatchLagged names the wrong revision");
                assert!(
                    tokio::time::timeout(RECV_TIMEOUT, w.next())
                        .await
                        .expect("stream did not end after WatchLagged")
                        .is_none(),
                    "stream went on after WatchLagged"
                );
                eprintln!("slow watcher lagged after {} of {WRITES} events", last - r0);
                w = s.watch(&k("slow/"), last).await.unwrap();
            }
            Some(Err(e)) => panic!("watch failed: {e}"),
            None => panic!("watch ended without an error"),
        }
    }
    assert_quiet(&mut w, Duration::from_millis(200)).await;
}

/// Compaction in the middle of a paged list or of an unread watch never yields data from
/// another revision: the next page at the old revision fails with Compacted; the watch either
/// goes on gap-free or fails with Compacted.
async fn compaction_during_paging_and_watch<S: Store>(s: Arc<S>) {
    for i in 0..20 {
        s.create(&k(&format!("cp/{i:02}")), val("v0"))
            .await
            .unwrap();
    }
    let first = s
        .list(
            &k("cp/"),
            ListOptions {
                limit: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let r = first.revision;
    let mut w = s.watch(&k("cp/"), r).await.unwrap();
    for i in 0..20 {
        let key = k(&format!("cp/{i:02}"));
        let kv = s.get(&key).await.unwrap().unwrap();
        s.update(&key, val("v1"), kv.mod_revision).await.unwrap();
    }
    s.compact(r + 10).await.unwrap();
    match s
        .list(
            &k("cp/"),
            ListOptions {
                count_remaining: false,
                revision: Some(r),
                limit: Some(5),
                start_after: first.continue_after().map(str::to_string),
            },
        )
        .await
    {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!(requested, r);
            assert_eq!(compacted, r + 10);
        }
        other => panic!("next page after compaction: expected Compacted, got {other:?}"),
    }
    let mut last = r;
    while last < r + 20 {
        match next_item(&mut w).await {
            Some(Ok(ev)) => {
                assert_eq!(
                    ev.revision(),
                    last + 1,
                    "gap or reordering across compaction"
                );
                assert_eq!(ev.kind, EventKind::Update);
                assert_eq!(ev.prev.as_ref().map(|p| &p.value[..]), Some(&b"v0"[..]));
                last = ev.revision();
            }
            Some(Err(StoreError::Compacted { .. })) => break,
            Some(Err(e)) => panic!("watch failed: {e}"),
            None => panic!("watch ended without an error"),
        }
    }
}

/// Opens the same underlying store again (same SQLite file / same etcd cluster).
type Opener<S> = Box<dyn Fn() -> futures::future::BoxFuture<'static, S> + Send + Sync>;

/// Closing and reopening keeps data, the revision (even when the last write was a delete) and
/// the compacted revision; the next write continues the revision sequence.
async fn reopen_keeps_revisions<S: Store>(open: Opener<S>) {
    let (last, c, a) = {
        let s = open().await;
        let a1 = s.create(&k("re/a"), val("a1")).await.unwrap();
        let a = s
            .update(&k("re/a"), val("a2"), a1.mod_revision)
            .await
            .unwrap();
        s.create(&k("re/b"), val("b1")).await.unwrap();
        let c = rev(&s).await;
        s.create(&k("re/c"), val("c1")).await.unwrap();
        s.compact(c).await.unwrap();
        s.delete(&k("re/b"), None).await.unwrap();
        let last = s.delete(&k("re/c"), None).await.unwrap().revision;
        (last, c, a)
    };
    let s = open().await;
    assert_eq!(
        rev(&s).await,
        last,
        "current revision changed across reopen"
    );
    assert_eq!(s.compacted_revision().await.unwrap(), c);
    assert_eq!(s.get(&k("re/a")).await.unwrap(), Some(a));
    assert_eq!(s.get(&k("re/b")).await.unwrap(), None);
    assert!(matches!(
        s.list(
            &k("re/"),
            ListOptions {
                revision: Some(c - 1),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::Compacted { .. })
    ));
    let mut w = s.watch(&k("re/"), c).await.unwrap();
    let evs = [
        next_event(&mut w).await,
        next_event(&mut w).await,
        next_event(&mut w).await,
    ];
    let got: Vec<_> = evs.iter().map(|e| (e.kind, e.kv.key.clone())).collect();
    assert_eq!(
        got,
        [
            (EventKind::Create, k("re/c")),
            (EventKind::Delete, k("re/b")),
            (EventKind::Delete, k("re/c")),
        ]
    );
    let d = s.create(&k("re/d"), val("d")).await.unwrap();
    assert_eq!(
        d.mod_revision,
        last + 1,
        "revision sequence restarted after reopen"
    );
    assert_eq!(next_event(&mut w).await.kv, d);
}

// ---------------------------------------------------------------------------------------------
// backends

async fn open_sqlite() -> (Arc<capstan_store::sqlite::SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("capstan-conformance-")
        .tempdir()
        .unwrap();
    let store = capstan_store::sqlite::SqliteStore::open(&dir.path().join("state.db"), config())
        .await
        .expect("open SqliteStore");
    (Arc::new(store), dir)
}

async fn open_etcd() -> (
    Arc<capstan_store::etcd::EtcdStore>,
    capstan_testkit::EtcdCluster,
) {
    let etcd = tokio::task::spawn_blocking(|| capstan_testkit::EtcdCluster::start(1))
        .await
        .unwrap()
        .expect("start etcd");
    let store = capstan_store::etcd::EtcdStore::connect(&etcd.endpoints(), config())
        .await
        .expect("connect EtcdStore");
    (Arc::new(store), etcd)
}

/// Instantiate every case for every backend: `sqlite::<case>` and `etcd::<case>`. Cases after
/// `reopen:` take an [`Opener`] instead of a store.
macro_rules! conformance_suite {
    ($($case:ident),+ $(,)? ; reopen: $($rcase:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, _dir) = super::open_sqlite().await;
                    super::$case(store).await;
                }
            )+
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $rcase() {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("state.db");
                    super::$rcase(Box::new(move || {
                        let path = path.clone();
                        Box::pin(async move {
                            capstan_store::sqlite::SqliteStore::open(&path, super::config())
                                .await
                                .expect("open SqliteStore")
                        })
                    }))
                    .await;
                }
            )+
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, _etcd) = super::open_etcd().await;
                    super::$case(store).await;
                }
            )+
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $rcase() {
                    let (_, etcd) = super::open_etcd().await;
                    let endpoints = etcd.endpoints();
                    super::$rcase(Box::new(move || {
                        let endpoints = endpoints.clone();
                        Box::pin(async move {
                            capstan_store::etcd::EtcdStore::connect(&endpoints, super::config())
                                .await
                                .expect("connect EtcdStore")
                        })
                    }))
                    .await;
                }
            )+
        }
    };
}

conformance_suite!(
    crud_and_revisions,
    update_conflict,
    create_existing,
    missing_keys,
    guarded_delete,
    list_at_past_revision,
    list_limit_basics,
    list_counts_remaining,
    paged_list_is_one_snapshot,
    watch_replays_then_follows,
    watch_from_current,
    compaction,
    future_revisions,
    concurrent_counter,
    value_size_limit,
    hundred_thousand_keys,
    bad_keys,
    prefix_isolation,
    binary_values_and_odd_keys,
    watch_handoff_under_concurrent_writes,
    slow_watcher_never_blocks_writers,
    compaction_during_paging_and_watch;
    reopen:
    reopen_keeps_revisions,
);
