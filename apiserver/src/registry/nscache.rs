//! Namespace lifecycle cache: whether a namespace exists and is being deleted, as every
//! namespaced create must check (upstream's NamespaceLifecycle admission, which reads an
//! informer cache too). Without it each create is two store round trips (a namespace read,
//! then the write).
//!
//! Fed by a watch of all namespaces (the registry's watch, so the shared feed when one runs)
//! and by this server's own namespace writes, applied as soon as they are stored, so a client
//! that deletes a namespace and then creates in it is refused without waiting for the watch.
//! A namespace the cache does not know (created a moment ago, or the watch not yet running)
//! is read from the store, so a create is never refused for a stale miss.
//!
//! Consistency: every entry carries the revision of the state it records, and a state only
//! replaces one of an older revision. Deletions leave a tombstone, so a store read that
//! started before a deletion cannot bring the namespace back. A read's result is recorded only
//! when the watch was already running before the read began (its revision is then at least
//! the watch's start, so every later change reaches the cache through the watch) and no reset
//! happened meanwhile (`generation`). When the watch ends, the cache empties and is restarted
//! by the next lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use capstan_store::{Revision, Store};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{EventType, ListParams, Registry};
use crate::object::{self, Object};
use crate::resources;

/// Tombstones kept before they are dropped all at once (with a generation bump, so no read in
/// flight can be recorded over a dropped one).
const MAX_TOMBSTONES: usize = 1024;

/// What the cache knows of one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsState {
    Active,
    /// `metadata.deletionTimestamp` is set: new content is refused.
    Terminating,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    revision: Revision,
    /// `None`: deleted (a tombstone).
    state: Option<NsState>,
}

#[derive(Default)]
struct State {
    /// A watch task is running or starting.
    started: bool,
    /// The watch is established: store reads begun from now on may be recorded.
    synced: bool,
    /// Bumped on every reset and tombstone purge; a read records its result only under the
    /// generation it began in.
    generation: u64,
    /// Bumped on every reset only: which watch task is the current one.
    epoch: u64,
    entries: HashMap<String, Entry>,
    tombstones: usize,
}

impl State {
    fn record(&mut self, name: &str, revision: Revision, state: Option<NsState>) {
        if let Some(e) = self.entries.get(name)
            && e.revision > revision
        {
            return;
        }
        let old = self
            .entries
            .insert(name.to_string(), Entry { revision, state });
        let was_tombstone = old.is_some_and(|e| e.state.is_none());
        match (was_tombstone, state.is_none()) {
            (false, true) => self.tombstones += 1,
            (true, false) => self.tombstones -= 1,
            _ => {}
        }
        if self.tombstones > MAX_TOMBSTONES {
            self.entries.retain(|_, e| e.state.is_some());
            self.tombstones = 0;
            self.generation += 1;
        }
    }

    fn reset(&mut self) {
        self.started = false;
        self.synced = false;
        self.generation += 1;
        self.epoch += 1;
        self.entries.clear();
        self.tombstones = 0;
    }
}

/// A token for one store read: the generation it began in, when its result may be recorded.
#[derive(Clone, Copy, Debug)]
pub struct ReadTicket(Option<u64>);

pub struct NamespaceCache {
    state: Mutex<State>,
    /// Ends the watch task when the last registry handle goes.
    stop: CancellationToken,
}

impl Default for NamespaceCache {
    fn default() -> Self {
        NamespaceCache {
            state: Mutex::new(State::default()),
            stop: CancellationToken::new(),
        }
    }
}

impl Drop for NamespaceCache {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn state_of(obj: &Object) -> NsState {
    if object::is_deleting(obj) {
        NsState::Terminating
    } else {
        NsState::Active
    }
}

fn revision_of(obj: &Object) -> Option<Revision> {
    object::resource_version(obj).and_then(|rv| rv.parse().ok())
}

impl NamespaceCache {
    /// The cached state of `name`, when the cache knows it (a live, synced entry).
    pub fn lookup(&self, name: &str) -> Option<NsState> {
        let st = self.state.lock().ok()?;
        if !st.synced {
            return None;
        }
        st.entries.get(name).and_then(|e| e.state)
    }

    /// Before a store read of a namespace: starts the watch if it is not running, and tells
    /// whether the read's result may be recorded.
    pub fn begin_read(self: &Arc<Self>, registry: &Registry) -> ReadTicket {
        let Ok(mut st) = self.state.lock() else {
            return ReadTicket(None);
        };
        if !st.started {
            st.started = true;
            let epoch = st.epoch;
            tokio::spawn(run(
                Arc::downgrade(self),
                registry.clone(),
                epoch,
                self.stop.clone(),
            ));
        }
        ReadTicket(st.synced.then_some(st.generation))
    }

    /// The result of a store read begun with `ticket`: the namespace as stored.
    pub fn finish_read(&self, ticket: ReadTicket, obj: &Object) {
        let (Some(generation), Some(name), Some(revision)) =
            (ticket.0, object::name(obj), revision_of(obj))
        else {
            return;
        };
        if let Ok(mut st) = self.state.lock()
            && st.synced
            && st.generation == generation
        {
            st.record(name, revision, Some(state_of(obj)));
        }
    }

    /// This server stored `obj` (a namespace, with its new resourceVersion).
    pub fn stored(&self, obj: &Object) {
        let (Some(name), Some(revision)) = (object::name(obj), revision_of(obj)) else {
            return;
        };
        if let Ok(mut st) = self.state.lock() {
            st.record(name, revision, Some(state_of(obj)));
        }
    }

    /// This server deleted namespace `name` at `revision`.
    pub fn deleted(&self, name: &str, revision: Revision) {
        if let Ok(mut st) = self.state.lock() {
            st.record(name, revision, None);
        }
    }
}

/// The watch task: follows every namespace change until the stream ends (the cache then
/// empties and the next lookup starts a new one) or the cache is dropped.
async fn run(cache: Weak<NamespaceCache>, registry: Registry, epoch: u64, stop: CancellationToken) {
    let stream = async {
        let def = resources::lookup("", "v1", "namespaces")?;
        let start = registry.store().current_revision().await.ok()?;
        registry
            .watch(def, None, start, &ListParams::default())
            .await
            .ok()
    }
    .await;
    // The task must not keep the registry (and so this cache) alive.
    drop(registry);
    let reset = |cache: &Weak<NamespaceCache>| {
        if let Some(c) = cache.upgrade()
            && let Ok(mut st) = c.state.lock()
            && st.epoch == epoch
        {
            st.reset();
        }
    };
    let Some(mut stream) = stream else {
        reset(&cache);
        return;
    };
    match cache.upgrade() {
        Some(c) => match c.state.lock() {
            Ok(mut st) if st.epoch == epoch => st.synced = true,
            _ => return,
        },
        None => return,
    }
    loop {
        let ev = tokio::select! {
            () = stop.cancelled() => return,
            ev = stream.next() => ev,
        };
        let ev = match ev {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                tracing::debug!(error = %e.to_status().message, "namespace cache watch ended");
                break;
            }
            None => break,
        };
        let Some(c) = cache.upgrade() else {
            return;
        };
        let Ok(mut st) = c.state.lock() else {
            return;
        };
        if st.epoch != epoch {
            return;
        }
        let Some(name) = object::name(&ev.object) else {
            continue;
        };
        match ev.kind {
            EventType::Added | EventType::Modified => {
                st.record(name, ev.revision, Some(state_of(&ev.object)));
            }
            EventType::Deleted => st.record(name, ev.revision, None),
            EventType::Bookmark | EventType::Error => {}
        }
    }
    reset(&cache);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_states_win_and_tombstones_hold() {
        let mut st = State {
            synced: true,
            ..State::default()
        };
        st.record("a", 5, Some(NsState::Active));
        st.record("a", 7, Some(NsState::Terminating));
        // A read that began before the update arrives late: ignored.
        st.record("a", 5, Some(NsState::Active));
        assert_eq!(st.entries["a"].state, Some(NsState::Terminating));
        st.record("a", 9, None);
        st.record("a", 7, Some(NsState::Terminating));
        assert_eq!(st.entries["a"].state, None);
        assert_eq!(st.tombstones, 1);
        // Re-created later.
        st.record("a", 12, Some(NsState::Active));
        assert_eq!(st.entries["a"].state, Some(NsState::Active));
        assert_eq!(st.tombstones, 0);
    }

    #[test]
    fn too_many_tombstones_are_dropped_with_a_new_generation() {
        let mut st = State::default();
        st.record("live", 1, Some(NsState::Active));
        for i in 0..=MAX_TOMBSTONES {
            st.record(&format!("gone-{i}"), 10 + i as Revision, None);
        }
        assert_eq!(st.generation, 1);
        // The watch task stays the current one.
        assert_eq!(st.epoch, 0);
        assert_eq!(st.tombstones, 0);
        assert_eq!(st.entries.len(), 1);
    }
}
