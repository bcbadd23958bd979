//! The registry: the generic object lifecycle over the [`Store`]. Objects here are always in
//! their storage version; the HTTP layer converts to and from the version a client speaks.
//!
//! Every write is an optimistic compare-and-swap on the store's mod revision, which is also the
//! object's `metadata.resourceVersion` (never persisted inside the value, set on every read).

pub mod alloc;
pub mod kinds;
mod list;
mod nscache;
pub mod strategy;
mod watch;

use std::sync::Arc;

use bytes::Bytes;
use capstan_common::keys;
use capstan_store::{AnyStore, KeyValue, Store, StoreError};
use serde_json::Value;

use crate::error::ApiError;
use crate::object::{self, Object};
use crate::resources::{self, ResourceDef};

pub use list::{ListCursor, ListParams, Listing, ObjectList, RawList, STREAM_PAGE, parse_rv};
pub use watch::{EventType, ObjectEvent, ObjectWatch};

/// How unknown or duplicate fields in a request are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

/// Options every write accepts.
#[derive(Clone, Debug, Default)]
pub struct WriteParams {
    /// `dryRun=All`: run every check, persist nothing.
    pub dry_run: bool,
    /// Who is writing (`fieldManager`, or upstream's default from the User-Agent). With a
    /// manager, the write is recorded in `metadata.managedFields` as an `Update` operation
    /// (`ssa::track_update`); internal writes without one are not tracked.
    pub field_manager: Option<String>,
    /// A server-side apply: the apply engine has already recorded managedFields.
    pub apply: bool,
}

/// What a create stored.
#[derive(Debug)]
pub struct Created {
    /// The object, with its resourceVersion; `None` when the caller did not ask for it (it
    /// answers from `stored`, and [`Created::into_object`] decodes it when it must).
    pub object: Option<Object>,
    /// The bytes written (`encode` of the object, without resourceVersion) and their
    /// revision; `None` for a dry run.
    pub stored: Option<(Bytes, i64)>,
}

impl Created {
    /// The object with its resourceVersion: as kept, or decoded from the bytes written
    /// (which are its encoding, so the two are the same object).
    pub fn into_object(self) -> Result<Object, ApiError> {
        match (self.object, self.stored) {
            (Some(obj), _) => Ok(obj),
            (None, Some((bytes, rv))) => {
                let mut obj: Object = serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::Internal(format!("decoding the object written: {e}")))?;
                object::set_resource_version(&mut obj, rv);
                Ok(obj)
            }
            (None, None) => Err(ApiError::Internal(
                "a create kept neither the object nor its bytes".into(),
            )),
        }
    }
}

/// `propagationPolicy` of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteParams {
    pub dry_run: bool,
    pub propagation: Option<Propagation>,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// What a delete did.
#[derive(Debug)]
pub enum DeleteOutcome {
    /// The object is gone; its last state.
    Deleted(Object),
    /// Deletion is pending (finalizers or a grace period); the object as it now is.
    Pending(Object),
}

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The main resource: everything but status (for kinds with a status subresource).
    Main,
    /// The `status` subresource: only status.
    Status,
    /// `pods/binding`: the main resource, and the only write that may set a pod's
    /// `spec.nodeName`.
    Binding,
}

#[derive(Clone)]
pub struct Registry {
    store: Arc<AnyStore>,
    prefix: String,
    /// Service ClusterIP/NodePort allocation (alloc.rs).
    allocators: alloc::Allocators,
    /// Namespace existence and deletion state for creates (nscache.rs).
    namespaces: Arc<nscache::NamespaceCache>,
}

/// The storage row for a served row.
fn storage(def: &'static ResourceDef) -> &'static ResourceDef {
    if def.needs_conversion() {
        def.storage_def()
    } else {
        def
    }
}

impl Registry {
    pub fn new(
        store: Arc<AnyStore>,
        prefix: impl Into<String>,
        alloc_config: alloc::AllocConfig,
    ) -> Self {
        let prefix = prefix.into();
        Registry {
            allocators: alloc::Allocators::new(store.clone(), prefix.clone(), alloc_config),
            store,
            prefix,
            namespaces: Arc::new(nscache::NamespaceCache::default()),
        }
    }

    /// The Service IP and port allocators.
    pub fn allocators(&self) -> &alloc::Allocators {
        &self.allocators
    }

    pub fn store(&self) -> &Arc<AnyStore> {
        &self.store
    }

    pub fn key(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> String {
        keys::object_key(
            &self.prefix,
            def.storage_resource,
            ns.filter(|_| def.namespaced),
            name,
        )
    }

    pub fn collection_prefix(&self, def: &ResourceDef, ns: Option<&str>) -> String {
        keys::collection_prefix(
            &self.prefix,
            def.storage_resource,
            ns.filter(|_| def.namespaced),
        )
    }

    pub async fn get(
        &self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Object, ApiError> {
        let def = storage(def);
        match self.store.get(&self.key(def, ns, name)).await {
            Ok(Some(kv)) => decode_kv(&kv),
            Ok(None) => Err(ApiError::not_found(def, name)),
            Err(e) => Err(store_error(def, name, e)),
        }
    }

    /// Check that objects may be created in namespace `ns`: from the namespace cache, or the
    /// store when the cache does not know the namespace.
    async fn check_namespace(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let state = match self.namespaces.lookup(ns) {
            Some(state) => state,
            None => {
                let Some(ns_def) = resources::lookup("", "v1", "namespaces") else {
                    return Ok(());
                };
                let ticket = self.namespaces.begin_read(self);
                match self.get(ns_def, None, ns).await {
                    Ok(obj) => {
                        self.namespaces.finish_read(ticket, &obj);
                        if object::is_deleting(&obj) {
                            nscache::NsState::Terminating
                        } else {
                            nscache::NsState::Active
                        }
                    }
                    Err(ApiError::NotFound { .. }) => {
                        return Err(ApiError::NotFound {
                            group: String::new(),
                            resource: "namespaces".to_string(),
                            name: ns.to_string(),
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        match state {
            nscache::NsState::Active => Ok(()),
            // Worded as upstream's admission.NewForbidden: `pods "x" is forbidden: ...`.
            nscache::NsState::Terminating => Err(ApiError::Forbidden {
                message: format!(
                    "{}{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    def.qualified_resource(),
                    if name.is_empty() {
                        String::new()
                    } else {
                        format!(" {name:?}")
                    }
                ),
                group: def.group.to_string(),
                resource: def.plural.to_string(),
                name: name.to_string(),
            }),
        }
    }

    /// Keep the namespace cache current with this server's own namespace writes.
    fn namespace_stored(&self, def: &ResourceDef, obj: &Object) {
        if is_namespace(def) {
            self.namespaces.stored(obj);
        }
    }

    /// Namespace `name` was removed from the store at `revision` (by this server).
    pub fn namespace_deleted(&self, def: &ResourceDef, name: &str, revision: i64) {
        if is_namespace(def) {
            self.namespaces.deleted(name, revision);
        }
    }

    /// Create `obj` (already decoded, in storage version, namespace set by the caller).
    pub async fn create(
        &self,
        def: &'static ResourceDef,
        obj: Object,
        params: &WriteParams,
    ) -> Result<Object, ApiError> {
        self.create_stored(def, obj, params, true)
            .await?
            .into_object()
    }

    /// [`Registry::create`], also giving the bytes written (the HTTP layer answers from them).
    /// Without `keep_object` (a caller that answers from the bytes) the object is dropped as
    /// soon as it is encoded, on the thread and while the cache that built it is still warm,
    /// rather than after the store's round trip (freeing a pod's JSON tree there cost about
    /// 10 µs per create).
    pub async fn create_stored(
        &self,
        def: &'static ResourceDef,
        mut obj: Object,
        params: &WriteParams,
        keep_object: bool,
    ) -> Result<Created, ApiError> {
        let served = def;
        let def = storage(def);
        let ns = if def.namespaced {
            object::namespace(&obj).map(str::to_string)
        } else {
            None
        };
        // generateName
        if object::name(&obj).is_none()
            && let Some(base) = object::meta_str(&obj, "generateName").map(str::to_string)
            && !base.is_empty()
        {
            let mut base = base;
            base.truncate(63 - 5);
            object::set_meta(
                &mut obj,
                "name",
                Value::String(format!("{base}{}", object::random_suffix())),
            );
        }
        // system fields
        object::remove_meta(&mut obj, "resourceVersion");
        object::remove_meta(&mut obj, "deletionTimestamp");
        object::remove_meta(&mut obj, "deletionGracePeriodSeconds");
        object::set_meta(&mut obj, "uid", Value::String(object::new_uid()));
        object::set_meta(
            &mut obj,
            "creationTimestamp",
            Value::String(object::now_rfc3339()),
        );
        object::set_meta(&mut obj, "generation", Value::from(1));
        if !def.namespaced {
            object::remove_meta(&mut obj, "namespace");
        }
        strategy::prepare_for_create(def, &mut obj);
        strategy::default(def, &mut obj);
        track_fields(served, def, None, &mut obj, Part::Main, params);
        let name = object::name(&obj).unwrap_or("").to_string();
        let mut causes = strategy::validate(def, &obj, None, Part::Main);
        // Rules of the version the client spoke (events.k8s.io/v1 Events).
        causes.extend(kinds::validate_served(served, &obj, None));
        if !causes.is_empty() {
            return Err(ApiError::invalid(def, &name, causes));
        }
        if let Some(ns) = &ns {
            self.check_namespace(def, ns, &name).await?;
        }
        let key = self.key(def, ns.as_deref(), &name);
        // Service ClusterIP/NodePort reservations (alloc.rs), rolled back if the create fails.
        let reservation = self
            .allocators
            .before_create(def, &mut obj, params.dry_run)
            .await?;
        let bytes = match encode(&obj) {
            Ok(b) => b,
            Err(e) => {
                reservation.rollback(&self.allocators).await;
                return Err(e);
            }
        };
        if params.dry_run {
            // Report AlreadyExists as a real create would.
            if self
                .store
                .get(&key)
                .await
                .map_err(|e| store_error(def, &name, e))?
                .is_some()
            {
                return Err(ApiError::already_exists(def, &name));
            }
            // A dry run reserves nothing.
            reservation.rollback(&self.allocators).await;
            return Ok(Created {
                object: Some(obj),
                stored: None,
            });
        }
        // A namespace's object also feeds the namespace cache once written.
        let mut obj = (keep_object || is_namespace(def)).then_some(obj);
        let kv = match self.store.create(&key, bytes.clone()).await {
            Ok(kv) => kv,
            Err(e) => {
                reservation.rollback(&self.allocators).await;
                return Err(store_error(def, &name, e));
            }
        };
        if let Some(obj) = &mut obj {
            object::set_resource_version(obj, kv.mod_revision);
            self.namespace_stored(def, obj);
        }
        Ok(Created {
            object: obj.filter(|_| keep_object),
            stored: Some((bytes, kv.mod_revision)),
        })
    }

    /// Replace an object (PUT). `obj`'s resourceVersion, when set, must match the stored one.
    /// Returns the stored object.
    pub async fn update(
        &self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: Object,
        part: Part,
        params: &WriteParams,
    ) -> Result<Object, ApiError> {
        let served = def;
        let def = storage(def);
        let want_rv = object::resource_version(&obj).map(str::to_string);
        self.guaranteed_update(served, ns, name, part, params, |old| {
            if let Some(rv) = &want_rv
                && object::resource_version(&old) != Some(rv.as_str())
            {
                return Err(ApiError::conflict(def, name));
            }
            // The same new object is offered again on a retry only when no precondition was
            // given (an unconditional update keeps winning).
            Ok(obj.clone())
        })
        .await
    }

    /// Read-modify-write with retries on conflict: `mutate` gets the current object and returns
    /// the desired one. Metadata the client may not change is restored, then the kind's rules
    /// for updates apply, then the write is a CAS on the revision read.
    pub async fn guaranteed_update(
        &self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        part: Part,
        params: &WriteParams,
        mut mutate: impl FnMut(Object) -> Result<Object, ApiError>,
    ) -> Result<Object, ApiError> {
        let served = def;
        let def = storage(def);
        let key = self.key(def, ns, name);
        for _attempt in 0..16 {
            let kv = self
                .store
                .get(&key)
                .await
                .map_err(|e| store_error(def, name, e))?
                .ok_or_else(|| ApiError::not_found(def, name))?;
            let old = decode_kv(&kv)?;
            let mut new = mutate(old.clone())?;
            if let (Some(given), Some(cur)) = (object::name(&new), object::name(&old))
                && given != cur
            {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({given}) does not match the name on the URL ({cur})"
                )));
            }
            keep_system_meta(&mut new, &old);
            strategy::prepare_for_update(def, &mut new, &old, part);
            // Services keep allocated values a client left out (alloc.rs).
            alloc::patch_allocated_values(def, &mut new, &old);
            strategy::default(def, &mut new);
            track_fields(served, def, Some(&old), &mut new, part, params);
            let mut causes = strategy::validate(def, &new, Some(&old), part);
            causes.extend(kinds::validate_served(served, &new, Some(&old)));
            if !causes.is_empty() {
                return Err(ApiError::invalid(def, name, causes));
            }
            if strategy::spec_changed(&new, &old) {
                let generation = object::meta(&old)
                    .and_then(|m| m.get("generation"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                object::set_meta(&mut new, "generation", Value::from(generation + 1));
            }
            // Unchanged: answer without writing (upstream does the same, no new revision).
            let mut old_cmp = old.clone();
            object::remove_meta(&mut old_cmp, "resourceVersion");
            let mut new_cmp = new.clone();
            object::remove_meta(&mut new_cmp, "resourceVersion");
            if old_cmp == new_cmp {
                return Ok(old);
            }
            object::remove_meta(&mut new, "resourceVersion");
            // The last finalizer removed from an object being deleted, with no grace period
            // left and nothing else holding it: the update completes the delete (upstream's
            // rule; a terminating pod's status write or a namespace's must not remove it).
            if strategy::deletion_complete(def, &new) && !params.dry_run {
                match self.store.delete(&key, Some(kv.mod_revision)).await {
                    Ok(d) => {
                        // Release a Service's IP and ports (alloc.rs).
                        self.allocators.after_delete(def, &old).await;
                        self.namespace_deleted(def, name, d.revision);
                        object::set_resource_version(&mut new, d.revision);
                        return Ok(new);
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(store_error(def, name, e)),
                }
            }
            // Service reservations (alloc.rs): what `new` adds is reserved now, then either
            // committed (releasing what `new` dropped) or rolled back.
            let reservation = self
                .allocators
                .before_update(def, &mut new, &old, params.dry_run)
                .await?;
            if params.dry_run {
                reservation.rollback(&self.allocators).await;
                object::set_resource_version(&mut new, kv.mod_revision);
                return Ok(new);
            }
            let bytes = match encode(&new) {
                Ok(b) => b,
                Err(e) => {
                    reservation.rollback(&self.allocators).await;
                    return Err(e);
                }
            };
            match self.store.update(&key, bytes, kv.mod_revision).await {
                Ok(kv) => {
                    reservation.commit(&self.allocators).await;
                    object::set_resource_version(&mut new, kv.mod_revision);
                    self.namespace_stored(def, &new);
                    return Ok(new);
                }
                Err(StoreError::Conflict { .. }) => {
                    reservation.rollback(&self.allocators).await;
                    continue;
                }
                Err(e) => {
                    reservation.rollback(&self.allocators).await;
                    return Err(store_error(def, name, e));
                }
            }
        }
        Err(ApiError::conflict(def, name))
    }

    /// Delete an object, honouring preconditions, finalizers and propagation policy.
    pub async fn delete(
        &self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> Result<DeleteOutcome, ApiError> {
        let def = storage(def);
        let key = self.key(def, ns, name);
        for _attempt in 0..16 {
            let kv = self
                .store
                .get(&key)
                .await
                .map_err(|e| store_error(def, name, e))?
                .ok_or_else(|| ApiError::not_found(def, name))?;
            let cur = decode_kv(&kv)?;
            if let Some(uid) = &params.precondition_uid
                && object::uid(&cur) != uid
            {
                return Err(ApiError::Conflict {
                    group: def.group.to_string(),
                    resource: def.plural.to_string(),
                    name: name.to_string(),
                    detail: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        object::uid(&cur)
                    ),
                    causes: Vec::new(),
                });
            }
            if let Some(rv) = &params.precondition_rv
                && object::resource_version(&cur) != Some(rv.as_str())
            {
                return Err(ApiError::Conflict {
                    group: def.group.to_string(),
                    resource: def.plural.to_string(),
                    name: name.to_string(),
                    detail: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        object::resource_version(&cur).unwrap_or("")
                    ),
                    causes: Vec::new(),
                });
            }
            let mut next = cur.clone();
            let pending = strategy::begin_delete(def, &mut next, params);
            if pending {
                if params.dry_run || next == cur {
                    return Ok(DeleteOutcome::Pending(cur));
                }
                object::remove_meta(&mut next, "resourceVersion");
                match self
                    .store
                    .update(&key, encode(&next)?, kv.mod_revision)
                    .await
                {
                    Ok(kv) => {
                        object::set_resource_version(&mut next, kv.mod_revision);
                        self.namespace_stored(def, &next);
                        return Ok(DeleteOutcome::Pending(next));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(store_error(def, name, e)),
                }
            }
            if params.dry_run {
                return Ok(DeleteOutcome::Deleted(cur));
            }
            match self.store.delete(&key, Some(kv.mod_revision)).await {
                Ok(d) => {
                    // Release a Service's IP and ports (alloc.rs).
                    self.allocators.after_delete(def, &cur).await;
                    self.namespace_deleted(def, name, d.revision);
                    let mut last = cur;
                    object::set_resource_version(&mut last, d.revision);
                    return Ok(DeleteOutcome::Deleted(last));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound { .. }) => return Err(ApiError::not_found(def, name)),
                Err(e) => return Err(store_error(def, name, e)),
            }
        }
        Err(ApiError::conflict(def, name))
    }
}

fn is_namespace(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.kind == "Namespace"
}

/// Record a write in `metadata.managedFields` for its field manager (upstream's field manager
/// on create, update and patch): main-resource writes and status writes have their own
/// entries; applies (already recorded), bindings and writes without a manager are not
/// tracked. `served` is the row the client spoke (its apiVersion is recorded), `def` the
/// storage row the objects are in.
fn track_fields(
    served: &ResourceDef,
    def: &ResourceDef,
    old: Option<&Object>,
    new: &mut Object,
    part: Part,
    params: &WriteParams,
) {
    let Some(manager) = params.field_manager.as_deref() else {
        return;
    };
    if params.apply {
        return;
    }
    let subresource = match part {
        Part::Main => None,
        Part::Status => Some("status"),
        Part::Binding => return,
    };
    let kind = format!(
        "{}/{}",
        if def.group.is_empty() {
            "core"
        } else {
            def.group
        },
        def.kind
    );
    crate::ssa::track_update(
        &kind,
        old,
        new,
        manager,
        &served.api_version(),
        &object::now_rfc3339(),
        subresource,
    );
}

/// Fields the client may not change on update: uid, creationTimestamp, deletion fields,
/// generation (the server owns it), namespace and name.
fn keep_system_meta(new: &mut Object, old: &Object) {
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match object::meta(old).and_then(|m| m.get(field)).cloned() {
            Some(v) => object::set_meta(new, field, v),
            None => {
                object::remove_meta(new, field);
            }
        }
    }
}

pub(crate) fn decode_kv(kv: &KeyValue) -> Result<Object, ApiError> {
    let mut obj: Object = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal(format!("stored object at {} is not JSON: {e}", kv.key)))?;
    object::set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

pub(crate) fn encode(obj: &Object) -> Result<Bytes, ApiError> {
    serde_json::to_vec(obj)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("encoding object: {e}")))
}

/// Map a store error for an object of `def` named `name`.
pub(crate) fn store_error(def: &ResourceDef, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { .. } => ApiError::not_found(def, name),
        StoreError::AlreadyExists { .. } => ApiError::already_exists(def, name),
        StoreError::Conflict { .. } => ApiError::conflict(def, name),
        StoreError::ValueTooLarge { size, limit, .. } => ApiError::RequestEntityTooLarge(format!(
            "the object is {size} bytes, over the limit of {limit} bytes"
        )),
        StoreError::InvalidKey { reason, .. } => {
            ApiError::BadRequest(format!("invalid name {name:?}: {reason}"))
        }
        other => ApiError::from(other),
    }
}
