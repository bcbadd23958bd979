//! WATCH: store events mapped to Kubernetes watch events, with selector transitions (an
//! object that starts matching is ADDED, one that stops matching is DELETED), as upstream.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};

use bytes::Bytes;
use capstan_store::{AnyStore, EventKind, Revision, Store, StoreError, WatchEvent};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

use super::{ListParams, Registry, decode_kv, storage};
use crate::error::ApiError;
use crate::object::{self, Object};
use crate::resources::ResourceDef;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
            EventType::Bookmark => "BOOKMARK",
            EventType::Error => "ERROR",
        }
    }
}

pub struct ObjectEvent {
    pub kind: EventType,
    pub object: Arc<Object>,
    pub revision: Revision,
    /// The shared feed's event, when served from one (its encoded lines are cached there).
    pub shared: Option<Arc<SharedEvent>>,
}

pub type ObjectWatch = Pin<Box<dyn Stream<Item = Result<ObjectEvent, ApiError>> + Send>>;

impl Registry {
    /// Watch objects of `def` (in `ns`, or all) with revision `> after`, filtered by the
    /// selectors in `params`.
    pub async fn watch(
        &self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        after: Revision,
        params: &ListParams,
    ) -> Result<ObjectWatch, ApiError> {
        let def = storage(def);
        for req in &params.fields.0 {
            if super::strategy::field_value(def, &Object::new(), &req.field).is_none() {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {}",
                    req.field
                )));
            }
        }
        if let Some(w) = self.cached_watch(def, ns, after, params).await? {
            return Ok(w);
        }
        let prefix = self.collection_prefix(def, ns);
        let raw = self
            .store
            .watch(&prefix, after)
            .await
            .map_err(ApiError::from)?;
        let labels = params.labels.clone();
        let fields = params.fields.clone();
        let stream = raw.filter_map(move |ev| {
            let out = match ev {
                Ok(ev) => map_event(def, &ev, &labels, &fields).transpose(),
                Err(e) => Some(Err(ApiError::from(e))),
            };
            std::future::ready(out)
        });
        Ok(Box::pin(stream))
    }
}

fn map_event(
    def: &'static ResourceDef,
    ev: &WatchEvent,
    labels: &crate::selectors::LabelSelector,
    fields: &crate::selectors::FieldSelector,
) -> Result<Option<ObjectEvent>, ApiError> {
    let revision = ev.revision();
    let sel = |o: &Object| Registry::selected(def, o, labels, fields);
    let prev = ev.prev.as_ref().map(decode_kv).transpose()?;
    match ev.kind {
        EventKind::Create => {
            let obj = decode_kv(&ev.kv)?;
            Ok(sel(&obj)?.then_some(ObjectEvent {
                kind: EventType::Added,
                object: Arc::new(obj),
                revision,
                shared: None,
            }))
        }
        EventKind::Update => {
            let obj = decode_kv(&ev.kv)?;
            let now = sel(&obj)?;
            let before = match &prev {
                Some(p) => sel(p)?,
                None => now,
            };
            let kind = match (before, now) {
                (true, true) => EventType::Modified,
                (false, true) => EventType::Added,
                (true, false) => EventType::Deleted,
                (false, false) => return Ok(None),
            };
            Ok(Some(ObjectEvent {
                kind,
                object: Arc::new(obj),
                revision,
                shared: None,
            }))
        }
        EventKind::Delete => {
            // The last state, stamped with the deletion's revision, as upstream sends it.
            let Some(mut obj) = prev else {
                return Ok(None);
            };
            if !sel(&obj)? {
                return Ok(None);
            }
            object::set_resource_version(&mut obj, revision);
            Ok(Some(ObjectEvent {
                kind: EventType::Deleted,
                object: Arc::new(obj),
                revision,
                shared: None,
            }))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared watch feeds: one store watch per resource (all namespaces), its events decoded once
// and fanned out in-process to every HTTP watcher of that resource, with the encoded event
// line cached per served version. Without it each HTTP watcher is its own store watch (on
// etcd: its own etcd watch) and decodes and encodes every event itself.

/// Events kept per feed for watchers that start from a slightly older revision.
const FEED_RING: usize = 512;
/// Events a subscriber may fall behind before its watch is closed (it then re-watches).
const FEED_CHANNEL: usize = 4096;

/// One store event, decoded once and shared by every watcher of the feed.
pub struct SharedEvent {
    kind: EventKind,
    revision: Revision,
    key: String,
    /// The new state (create, update) or the last state stamped with the deletion's revision.
    object: Arc<Object>,
    /// The previous state of an update.
    prev: Option<Arc<Object>>,
    /// The first encoded line (what almost every watcher of the event asks for), without a
    /// lock; then the lines of other (served resource, event type) pairs.
    first_line: OnceLock<(usize, EventType, Bytes)>,
    lines: Mutex<Vec<(usize, EventType, Bytes)>>,
}

impl SharedEvent {
    /// The line for `def`/`kind`, encoded by `encode` the first time it is asked for.
    pub fn line(
        &self,
        def: &'static ResourceDef,
        kind: EventType,
        encode: impl FnOnce() -> Bytes,
    ) -> Bytes {
        let id = std::ptr::from_ref(def) as usize;
        let mut encode = Some(encode);
        let (d, k, b) = self.first_line.get_or_init(|| {
            let b = encode.take().map(|f| f()).unwrap_or_default();
            (id, kind, b)
        });
        if *d == id && *k == kind {
            return b.clone();
        }
        if let Ok(lines) = self.lines.lock()
            && let Some((_, _, b)) = lines.iter().find(|(d, k, _)| *d == id && *k == kind)
        {
            return b.clone();
        }
        let b = encode.map(|f| f()).unwrap_or_default();
        if let Ok(mut lines) = self.lines.lock() {
            lines.push((id, kind, b.clone()));
        }
        b
    }
}

struct FeedState {
    tx: Option<broadcast::Sender<Arc<SharedEvent>>>,
    ring: VecDeque<Arc<SharedEvent>>,
    /// Every event after this revision is in `ring` or not yet received.
    floor: Revision,
    /// The revision of the last event received (or the start).
    last: Revision,
}

struct Feed {
    store: Weak<AnyStore>,
    state: Mutex<FeedState>,
}

impl Feed {
    fn alive(&self, store: &Arc<AnyStore>) -> bool {
        self.store.upgrade().is_some_and(|s| Arc::ptr_eq(&s, store))
            && self.state.lock().is_ok_and(|s| s.tx.is_some())
    }
}

type FeedKey = (usize, String);
static FEEDS: LazyLock<tokio::sync::Mutex<HashMap<FeedKey, Arc<Feed>>>> =
    LazyLock::new(|| tokio::sync::Mutex::new(HashMap::new()));

fn decode_shared(ev: &WatchEvent) -> Result<SharedEvent, ApiError> {
    let revision = ev.revision();
    let prev = ev.prev.as_ref().map(decode_kv).transpose()?;
    let (object, prev) = match ev.kind {
        EventKind::Create => (decode_kv(&ev.kv)?, None),
        EventKind::Update => (decode_kv(&ev.kv)?, prev.map(Arc::new)),
        EventKind::Delete => {
            let Some(mut obj) = prev else {
                return Err(ApiError::Internal(
                    "delete event without the last state".into(),
                ));
            };
            object::set_resource_version(&mut obj, revision);
            (obj, None)
        }
    };
    Ok(SharedEvent {
        kind: ev.kind,
        revision,
        key: ev.kv.key.clone(),
        object: Arc::new(object),
        prev,
        first_line: OnceLock::new(),
        lines: Mutex::new(Vec::new()),
    })
}

async fn run_feed(feed: Arc<Feed>, mut raw: capstan_store::WatchStream, prefix: String) {
    while let Some(ev) = raw.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(%prefix, error = %e, "shared watch feed ended");
                break;
            }
        };
        let shared = match decode_shared(&ev) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!(%prefix, error = %e, "skipping an undecodable watch event");
                continue;
            }
        };
        let Ok(mut st) = feed.state.lock() else {
            break;
        };
        if st.ring.len() >= FEED_RING
            && let Some(old) = st.ring.pop_front()
        {
            st.floor = old.revision;
        }
        st.last = shared.revision;
        st.ring.push_back(shared.clone());
        if let Some(tx) = &st.tx {
            let _ = tx.send(shared);
        }
    }
    if let Ok(mut st) = feed.state.lock() {
        st.tx = None;
    }
}

impl Registry {
    /// The live feed for `prefix` (started on first use).
    async fn feed(&self, prefix: &str) -> Result<Arc<Feed>, ApiError> {
        let key = (Arc::as_ptr(&self.store) as usize, prefix.to_string());
        let mut feeds = FEEDS.lock().await;
        if let Some(f) = feeds.get(&key)
            && f.alive(&self.store)
        {
            return Ok(f.clone());
        }
        feeds.retain(|_, f| f.store.strong_count() > 0);
        let start = self
            .store
            .current_revision()
            .await
            .map_err(ApiError::from)?;
        let raw = self
            .store
            .watch(prefix, start)
            .await
            .map_err(ApiError::from)?;
        let (tx, _) = broadcast::channel(FEED_CHANNEL);
        let feed = Arc::new(Feed {
            store: Arc::downgrade(&self.store),
            state: Mutex::new(FeedState {
                tx: Some(tx),
                ring: VecDeque::new(),
                floor: start,
                last: start,
            }),
        });
        tokio::spawn(run_feed(feed.clone(), raw, prefix.to_string()));
        feeds.insert(key, feed.clone());
        Ok(feed)
    }

    /// A watch served from the shared feed, or `None` when the feed cannot serve `after`
    /// (older than what it holds).
    async fn cached_watch(
        &self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        after: Revision,
        params: &ListParams,
    ) -> Result<Option<ObjectWatch>, ApiError> {
        let feed = self.feed(&self.collection_prefix(def, None)).await?;
        let (backlog, rx, last) = {
            let Ok(st) = feed.state.lock() else {
                return Ok(None);
            };
            let Some(tx) = &st.tx else {
                return Ok(None);
            };
            if after < st.floor {
                return Ok(None);
            }
            let backlog: Vec<Arc<SharedEvent>> = st
                .ring
                .iter()
                .filter(|e| e.revision > after)
                .cloned()
                .collect();
            (backlog, tx.subscribe(), st.last)
        };
        if after > last {
            let current = self
                .store
                .current_revision()
                .await
                .map_err(ApiError::from)?;
            if after > current {
                return Err(ApiError::from(StoreError::FutureRevision {
                    requested: after,
                    current,
                }));
            }
        }
        let ns_prefix = self.collection_prefix(def, ns);
        let (labels, fields) = (params.labels.clone(), params.fields.clone());
        let live = futures::stream::unfold(
            (rx, ns_prefix.clone()),
            move |(mut rx, prefix)| async move {
                match rx.recv().await {
                    Ok(ev) => Some((Ok(ev), (rx, prefix))),
                    Err(broadcast::error::RecvError::Closed) => None,
                    Err(broadcast::error::RecvError::Lagged(_)) => Some((
                        Err(ApiError::from(StoreError::WatchLagged {
                            prefix: prefix.clone(),
                            last_revision: after,
                        })),
                        (rx, prefix),
                    )),
                }
            },
        );
        let mut failed = false;
        let stream = futures::stream::iter(backlog.into_iter().map(Ok))
            .chain(live)
            .take_while(move |r| {
                // An error is delivered, then the watch ends.
                let go = !failed;
                failed |= r.is_err();
                std::future::ready(go)
            })
            .filter_map(move |r| {
                let out = match r {
                    Ok(ev) if ev.revision <= after || !ev.key.starts_with(&ns_prefix) => None,
                    Ok(ev) => map_shared(def, ev, &labels, &fields).transpose(),
                    Err(e) => Some(Err(e)),
                };
                std::future::ready(out)
            });
        Ok(Some(Box::pin(stream)))
    }
}

fn map_shared(
    def: &'static ResourceDef,
    ev: Arc<SharedEvent>,
    labels: &crate::selectors::LabelSelector,
    fields: &crate::selectors::FieldSelector,
) -> Result<Option<ObjectEvent>, ApiError> {
    let sel = |o: &Object| Registry::selected(def, o, labels, fields);
    let now = sel(&ev.object)?;
    let kind = match ev.kind {
        EventKind::Create if now => EventType::Added,
        EventKind::Create => return Ok(None),
        EventKind::Update => {
            let before = match &ev.prev {
                Some(p) => sel(p)?,
                None => now,
            };
            match (before, now) {
                (true, true) => EventType::Modified,
                (false, true) => EventType::Added,
                (true, false) => EventType::Deleted,
                (false, false) => return Ok(None),
            }
        }
        EventKind::Delete if now => EventType::Deleted,
        EventKind::Delete => return Ok(None),
    };
    Ok(Some(ObjectEvent {
        kind,
        object: ev.object.clone(),
        revision: ev.revision,
        shared: Some(ev),
    }))
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use std::cell::Cell;

    use capstan_store::KeyValue;
    use serde_json::json;

    use super::*;
    use crate::selectors::{FieldSelector, LabelSelector};

    fn kv(name: &str, app: &str, rev: Revision) -> KeyValue {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app}}});
        KeyValue {
            key: format!("/registry/configmaps/default/{name}"),
            value: Bytes::from(obj.to_string()),
            create_revision: rev,
            mod_revision: rev,
        }
    }

    fn def() -> &'static ResourceDef {
        crate::resources::lookup("", "v1", "configmaps").expect("configmaps")
    }

    #[test]
    fn a_shared_line_is_encoded_once_per_resource_and_type() {
        let ev = WatchEvent {
            kind: EventKind::Create,
            kv: kv("a", "x", 5),
            prev: None,
        };
        let shared = decode_shared(&ev).expect("decodes");
        let encoded = Cell::new(0);
        let encode = |s: &'static str| {
            encoded.set(encoded.get() + 1);
            Bytes::from_static(s.as_bytes())
        };
        // 1000 watchers of the same resource: one encoding, the same bytes.
        for _ in 0..1000 {
            let line = shared.line(def(), EventType::Added, || encode("added\n"));
            assert_eq!(line, Bytes::from_static(b"added\n"));
        }
        assert_eq!(encoded.get(), 1);
        // Another event type (a watcher whose selector saw the object enter) or another
        // served resource gets its own line, also encoded once.
        for _ in 0..3 {
            let line = shared.line(def(), EventType::Modified, || encode("modified\n"));
            assert_eq!(line, Bytes::from_static(b"modified\n"));
        }
        let other = crate::resources::lookup("", "v1", "secrets").expect("secrets");
        for _ in 0..3 {
            let line = shared.line(other, EventType::Added, || encode("other\n"));
            assert_eq!(line, Bytes::from_static(b"other\n"));
        }
        assert_eq!(encoded.get(), 3);
        assert_eq!(
            shared.line(def(), EventType::Added, || encode("again\n")),
            Bytes::from_static(b"added\n")
        );
    }

    #[test]
    fn label_changes_map_to_added_modified_deleted() {
        let labels = LabelSelector::parse("app=in").expect("selector");
        let fields = FieldSelector::default();
        let kind_of = |before: &str, after: &str| {
            let ev = WatchEvent {
                kind: EventKind::Update,
                kv: kv("a", after, 7),
                prev: Some(kv("a", before, 6)),
            };
            let shared = decode_shared(&ev).expect("decodes");
            map_shared(def(), Arc::new(shared), &labels, &fields)
                .expect("maps")
                .map(|e| e.kind)
        };
        assert_eq!(kind_of("in", "in"), Some(EventType::Modified));
        assert_eq!(kind_of("out", "in"), Some(EventType::Added));
        assert_eq!(kind_of("in", "out"), Some(EventType::Deleted));
        assert_eq!(kind_of("out", "out"), None);
    }
}
