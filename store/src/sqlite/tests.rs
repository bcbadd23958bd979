//! SQLite-specific tests (the backend-agnostic contract lives in `tests/conformance.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::SqliteStore;
use crate::{EventKind, ListOptions, Store, StoreConfig, StoreError};

fn config() -> StoreConfig {
    StoreConfig {
        compaction_interval: None,
        ..StoreConfig::default()
    }
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, config()).await.unwrap()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn page_stats(path: &Path) -> (i64, i64) {
    let c = rusqlite::Connection::open(path).unwrap();
    let pages: i64 = c
        .pragma_query_value(None, "page_count", |r| r.get(0))
        .unwrap();
    let free: i64 = c
        .pragma_query_value(None, "freelist_count", |r| r.get(0))
        .unwrap();
    (pages, free)
}

#[tokio::test]
async fn crud_semantics_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("sub/dir/state.db")).await;
    assert_eq!(s.current_revision().await.unwrap(), 0);
    let a = s.create("/registry/a", b("1")).await.unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (1, 1));
    assert!(matches!(
        s.create("/registry/a", b("x")).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let a2 = s.update("/registry/a", b("2"), 1).await.unwrap();
    assert_eq!((a2.create_revision, a2.mod_revision), (1, 2));
    assert!(matches!(
        s.update("/registry/a", b("3"), 1).await,
        Err(StoreError::Conflict {
            actual: 2,
            expected: 1,
            ..
        })
    ));
    assert!(matches!(
        s.update("/registry/missing", b("3"), 1).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.delete("/registry/missing", None).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.delete("/registry/a", Some(1)).await,
        Err(StoreError::Conflict { actual: 2, .. })
    ));
    let d = s.delete("/registry/a", Some(2)).await.unwrap();
    assert_eq!(d.revision, 3);
    assert_eq!(d.prev.value, b("2"));
    assert_eq!(d.prev.mod_revision, 2);
    assert_eq!(s.get("/registry/a").await.unwrap(), None);
    let again = s.create("/registry/a", b("new")).await.unwrap();
    assert_eq!((again.create_revision, again.mod_revision), (4, 4));
    assert_eq!(s.current_revision().await.unwrap(), 4);
    // Invalid input writes nothing.
    assert!(matches!(
        s.create("/other/a", b("x")).await,
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(matches!(
        s.get("/registry").await,
        Err(StoreError::InvalidKey { .. })
    ));
    assert_eq!(s.current_revision().await.unwrap(), 4);
    s.close().await;
    assert!(matches!(
        s.get("/registry/a").await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        s.create("/registry/z", b("x")).await,
        Err(StoreError::Closed)
    ));
}

#[tokio::test]
async fn list_paging_and_past_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("state.db")).await;
    for i in 0..10 {
        s.create(&format!("/registry/pods/p{i:02}"), b(&i.to_string()))
            .await
            .unwrap();
    }
    s.create("/registry/podsx/other", b("x")).await.unwrap();
    let at10 = s.current_revision().await.unwrap();
    s.update("/registry/pods/p00", b("changed"), 1)
        .await
        .unwrap();
    s.delete("/registry/pods/p01", None).await.unwrap();

    let now = s
        .list("/registry/pods/", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(now.items.len(), 9);
    assert_eq!(now.revision, 13);
    assert_eq!(now.items[0].value, b("changed"));
    assert!(!now.more);

    let past = s
        .list(
            "/registry/pods/",
            ListOptions {
                revision: Some(at10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(past.items.len(), 10);
    assert_eq!(past.revision, at10);
    assert_eq!(past.items[0].value, b("0"));
    assert_eq!(past.items[1].key, "/registry/pods/p01");

    // Page through the past state, 3 at a time.
    let mut keys = Vec::new();
    let mut start_after = None;
    loop {
        let page = s
            .list(
                "/registry/pods/",
                ListOptions {
                    count_remaining: false,
                    revision: Some(at10),
                    limit: Some(3),
                    start_after: start_after.clone(),
                },
            )
            .await
            .unwrap();
        keys.extend(page.items.iter().map(|kv| kv.key.clone()));
        match page.continue_after() {
            Some(k) => start_after = Some(k.to_string()),
            None => break,
        }
    }
    assert_eq!(keys.len(), 10);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));

    assert!(matches!(
        s.list(
            "/registry/pods/",
            ListOptions {
                revision: Some(99),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::FutureRevision {
            requested: 99,
            current: 13
        })
    ));
    assert!(matches!(
        s.list(
            "/registry/pods/",
            ListOptions {
                start_after: Some("/registry/a".into()),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::InvalidKey { .. })
    ));

    s.compact(at10).await.unwrap();
    assert_eq!(s.compacted_revision().await.unwrap(), at10);
    let at_c = s
        .list(
            "/registry/",
            ListOptions {
                revision: Some(at10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(at_c.items.len(), 11);
    assert!(matches!(
        s.list(
            "/registry/",
            ListOptions {
                revision: Some(at10 - 1),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        s.compact(at10).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        s.compact(100).await,
        Err(StoreError::FutureRevision { .. })
    ));
    assert!(matches!(
        s.watch("/registry/", at10 - 1).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        s.watch("/registry/", 100).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

#[tokio::test]
async fn reopen_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = open(&path).await;
        s.create("/registry/a", b("1")).await.unwrap();
        s.create("/registry/b", b("2")).await.unwrap();
        s.update("/registry/a", b("3"), 1).await.unwrap();
        s.compact(2).await.unwrap();
        s.close().await;
    }
    let s = open(&path).await;
    assert_eq!(s.current_revision().await.unwrap(), 3);
    assert_eq!(s.compacted_revision().await.unwrap(), 2);
    let a = s.get("/registry/a").await.unwrap().unwrap();
    assert_eq!((a.value, a.create_revision, a.mod_revision), (b("3"), 1, 3));
    assert_eq!(
        s.create("/registry/c", b("4")).await.unwrap().mod_revision,
        4
    );
}

#[tokio::test]
async fn revision_never_goes_backwards_after_compacting_a_head_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = open(&path).await;
        s.create("/registry/a", b("1")).await.unwrap();
        s.create("/registry/b", b("1")).await.unwrap();
        s.delete("/registry/a", None).await.unwrap();
        s.delete("/registry/b", None).await.unwrap();
        s.compact(4).await.unwrap();
        assert_eq!(s.current_revision().await.unwrap(), 4);
        let l = s.list("/registry/", ListOptions::default()).await.unwrap();
        assert_eq!((l.items.len(), l.revision), (0, 4));
        s.close().await;
    }
    let c = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = c
        .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "tombstones at the compacted revision are dropped");
    drop(c);
    let s = open(&path).await;
    assert_eq!(s.current_revision().await.unwrap(), 4);
    let a = s.create("/registry/a", b("again")).await.unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (5, 5));
}

#[tokio::test]
async fn compaction_keeps_state_and_prev_values() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("state.db")).await;
    s.create("/registry/a", b("a1")).await.unwrap(); // 1
    s.update("/registry/a", b("a2"), 1).await.unwrap(); // 2
    s.create("/registry/b", b("b1")).await.unwrap(); // 3
    s.delete("/registry/b", None).await.unwrap(); // 4
    s.create("/registry/b", b("b2")).await.unwrap(); // 5
    s.update("/registry/a", b("a3"), 2).await.unwrap(); // 6
    s.compact(5).await.unwrap();
    let at5 = s
        .list(
            "/registry/",
            ListOptions {
                revision: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let got: Vec<_> = at5
        .items
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![("/registry/a", b("a2")), ("/registry/b", b("b2"))]
    );
    // The event after the compacted revision still has its previous value.
    let mut w = s.watch("/registry/", 5).await.unwrap();
    let ev = w.next().await.unwrap().unwrap();
    assert_eq!(ev.kind, EventKind::Update);
    assert_eq!(ev.kv.mod_revision, 6);
    assert_eq!(ev.prev.unwrap().value, b("a2"));
}

#[tokio::test]
async fn compaction_frees_space() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let s = open(&path).await;
    // Each cycle frees more than the 1 MiB below which free pages are left to reuse.
    let value = Bytes::from(vec![7u8; 16_000]);
    for i in 0..100 {
        s.create(&format!("/registry/k/{i}"), value.clone())
            .await
            .unwrap();
    }
    let mut sizes = Vec::new();
    for _cycle in 0..12 {
        let futs: Vec<_> = (0..100)
            .map(|i| {
                let s = s.clone();
                let value = value.clone();
                async move {
                    let key = format!("/registry/k/{i}");
                    let cur = s.get(&key).await.unwrap().unwrap();
                    s.update(&key, value, cur.mod_revision).await.unwrap();
                }
            })
            .collect();
        futures::future::join_all(futs).await;
        let rev = s.current_revision().await.unwrap();
        s.compact(rev).await.unwrap();
        sizes.push(page_stats(&path));
    }
    let (first_pages, _) = sizes[1];
    let (last_pages, last_free) = sizes[sizes.len() - 1];
    assert!(
        last_pages <= first_pages + first_pages / 10,
        "file grew over compaction cycles: {sizes:?}"
    );
    assert!(last_free < 64, "free pages not returned: {sizes:?}");
}

#[tokio::test]
async fn concurrent_cas_writers_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(&dir.path().join("state.db")).await);
    let kv = s.create("/registry/counter", b("0")).await.unwrap();
    let futs: Vec<_> = (0..32)
        .map(|i| {
            let s = s.clone();
            async move {
                s.update("/registry/counter", b(&i.to_string()), kv.mod_revision)
                    .await
            }
        })
        .collect();
    let results = futures::future::join_all(futs).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "exactly one CAS wins");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, StoreError::Conflict { actual: 2, .. }), "{e}");
        }
    }
    assert_eq!(s.current_revision().await.unwrap(), 2);
}

#[tokio::test]
async fn a_failing_op_in_a_batch_does_not_affect_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("state.db")).await;
    s.create("/registry/dup", b("x")).await.unwrap();
    // Many concurrent writes end up in the same batches; every other one fails.
    let futs: Vec<_> = (0..200)
        .map(|i| {
            let s = s.clone();
            async move {
                if i % 2 == 0 {
                    s.create("/registry/dup", b("again")).await.map(|_| ())
                } else {
                    s.create(&format!("/registry/k/{i}"), b("v"))
                        .await
                        .map(|_| ())
                }
            }
        })
        .collect();
    let results = futures::future::join_all(futs).await;
    for (i, r) in results.iter().enumerate() {
        if i % 2 == 0 {
            assert!(matches!(r, Err(StoreError::AlreadyExists { .. })));
        } else {
            assert!(r.is_ok());
        }
    }
    assert_eq!(s.current_revision().await.unwrap(), 101);
    let l = s
        .list("/registry/k/", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(l.items.len(), 100);
    let mut revs: Vec<_> = l.items.iter().map(|kv| kv.mod_revision).collect();
    revs.sort_unstable();
    assert_eq!(revs, (2..=101).collect::<Vec<_>>(), "revisions are dense");
}

#[tokio::test]
async fn watch_from_an_old_revision_while_writing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("state.db")).await;
    for i in 0..50 {
        s.create(&format!("/registry/w/{i}"), b("0")).await.unwrap();
    }
    s.create("/registry/other/x", b("0")).await.unwrap(); // 51, not watched
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                let key = format!("/registry/w/{i}");
                let cur = s.get(&key).await.unwrap().unwrap();
                s.update(&key, b("1"), cur.mod_revision).await.unwrap();
            }
        })
    };
    let mut w = s.watch("/registry/w/", 10).await.unwrap();
    let mut revs = Vec::new();
    while revs.len() < 90 {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(ev.kv.key.starts_with("/registry/w/"));
        if ev.kind == EventKind::Update {
            assert_eq!(ev.prev.as_ref().unwrap().value, b("0"));
        }
        revs.push(ev.kv.mod_revision);
    }
    writer.await.unwrap();
    let mut expected: Vec<_> = (11..=50).collect();
    expected.extend(52..=101);
    assert_eq!(revs, expected);
}

#[tokio::test]
async fn a_watcher_that_never_reads_is_lagged_and_writers_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open_with(&dir.path().join("state.db"), config(), 8)
        .await
        .unwrap();
    let mut w = s.watch("/registry/", 0).await.unwrap();
    let mut live = s.watch("/registry/", 0).await.unwrap();
    for i in 0..30 {
        tokio::time::timeout(
            Duration::from_secs(5),
            s.create(&format!("/registry/{i}"), b("v")),
        )
        .await
        .expect("writer blocked by a watcher")
        .unwrap();
        // The second watcher keeps up.
        let ev = live.next().await.unwrap().unwrap();
        assert_eq!(ev.kv.mod_revision, i + 1);
    }
    let mut got = Vec::new();
    let err = loop {
        match w.next().await {
            Some(Ok(ev)) => got.push(ev.kv.mod_revision),
            Some(Err(e)) => break e,
            None => panic!("stream ended without an error"),
        }
    };
    assert_eq!(got, (1..=8).collect::<Vec<_>>());
    assert!(
        matches!(
            err,
            StoreError::WatchLagged {
                last_revision: 8,
                ..
            }
        ),
        "{err}"
    );
    assert!(w.next().await.is_none());
    assert_eq!(s.watcher_count(), 1);
}

#[tokio::test]
async fn streams_end_when_the_store_closes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("state.db")).await;
    let mut w = s.watch("/registry/", 0).await.unwrap();
    s.create("/registry/a", b("v")).await.unwrap();
    let done = s.inner.writer_done.clone();
    drop(s);
    tokio::time::timeout(Duration::from_secs(5), done.cancelled())
        .await
        .expect("writer thread did not stop on drop");
    assert_eq!(w.next().await.unwrap().unwrap().kv.mod_revision, 1);
    assert!(w.next().await.is_none());
}

#[tokio::test]
async fn large_values_and_many_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("state.db")).await;
    let big = Bytes::from(vec![0xabu8; crate::DEFAULT_MAX_VALUE_BYTES]);
    s.create("/registry/big", big.clone()).await.unwrap();
    assert_eq!(s.get("/registry/big").await.unwrap().unwrap().value, big);
    assert!(matches!(
        s.create(
            "/registry/big2",
            Bytes::from(vec![0u8; crate::DEFAULT_MAX_VALUE_BYTES + 1])
        )
        .await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    let n = 20_000;
    let futs: Vec<_> = (0..n)
        .map(|i| {
            let s = s.clone();
            async move { s.create(&format!("/registry/many/{i:06}"), b("v")).await }
        })
        .collect();
    for r in futures::future::join_all(futs).await {
        r.unwrap();
    }
    let t = std::time::Instant::now();
    let l = s
        .list("/registry/many/", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(l.items.len(), n);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "list took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn automatic_compaction_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        history_max_revisions: 5,
        history_max_age: Duration::from_secs(3600),
        compaction_interval: Some(Duration::from_millis(50)),
        ..StoreConfig::default()
    };
    let s = SqliteStore::open(&dir.path().join("state.db"), cfg)
        .await
        .unwrap();
    for i in 0..20 {
        s.create(&format!("/registry/{i}"), b("v")).await.unwrap();
    }
    for _ in 0..100 {
        if s.compacted_revision().await.unwrap() == 15 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not compacted: {}", s.compacted_revision().await.unwrap());
}

/// Lists at every past revision (whole and paged) match a model of the history, across
/// creates, updates, deletes and re-creates, before and after a compaction: past states are
/// rebuilt from `prev_rev` links, there is no key index.
#[tokio::test]
async fn past_revision_lists_match_a_model() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("state.db")).await;
    let mut model: BTreeMap<String, crate::KeyValue> = BTreeMap::new();
    let mut states = vec![(0, model.clone())];
    let mut seed: u64 = 7;
    for i in 0..300u32 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = format!("/registry/m/{}", (seed >> 33) % 7);
        let value = Bytes::from(format!("v{i}"));
        match model.get(&key).cloned() {
            None => {
                let kv = s.create(&key, value).await.unwrap();
                model.insert(key, kv);
            }
            Some(cur) if (seed >> 20).is_multiple_of(4) => {
                s.delete(&key, Some(cur.mod_revision)).await.unwrap();
                model.remove(&key);
            }
            Some(cur) => {
                let kv = s.update(&key, value, cur.mod_revision).await.unwrap();
                model.insert(key, kv);
            }
        }
        states.push((s.current_revision().await.unwrap(), model.clone()));
    }
    let check = |from: usize| {
        let s = s.clone();
        let states = states.clone();
        async move {
            for (rev, state) in &states[from..] {
                let want: Vec<_> = state.values().cloned().collect();
                let opts = ListOptions {
                    revision: Some(*rev),
                    ..Default::default()
                };
                let got = s.list("/registry/m/", opts).await.unwrap();
                assert_eq!(got.items, want, "list at {rev}");
                let mut paged = Vec::new();
                let mut after = None;
                loop {
                    let opts = ListOptions {
                        count_remaining: false,
                        revision: Some(*rev),
                        limit: Some(2),
                        start_after: after.clone(),
                    };
                    let page = s.list("/registry/m/", opts).await.unwrap();
                    paged.extend(page.items.iter().cloned());
                    match page.continue_after() {
                        Some(k) => after = Some(k.to_string()),
                        None => break,
                    }
                }
                assert_eq!(paged, want, "paged list at {rev}");
            }
        }
    };
    check(1).await;
    let (mid, _) = states[150];
    s.compact(mid).await.unwrap();
    check(150).await;
}
