//! The namespace controller (upstream's `namespace` deleter): a terminating namespace whose
//! `spec.finalizers` still holds `kubernetes` is emptied kind by kind (a delete-collection per
//! kind, then a list to see what remains), its status conditions report progress, and once
//! nothing is left the `kubernetes` finalizer is removed through the `finalize` subresource, at
//! which point the API server removes the namespace.

pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use self::status::{Remaining, conditions};
use crate::gc::kinds::{self, Kind};

/// The finalizer this controller owns.
pub const FINALIZER: &str = "kubernetes";
/// How soon a namespace with content left is looked at again.
const RECHECK: Duration = Duration::from_millis(500);

/// Why reconciling a namespace failed (retried with a delay).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} for namespace {namespace}: {source}")]
    Api {
        action: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    kinds: Vec<Kind>,
}

/// Run the controller until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        kinds: kinds::namespaced(),
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

fn error_policy(_ns: Arc<Namespace>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    warn!(error = %e, "namespace reconcile failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

fn api_err(action: &'static str, ns: &str) -> impl FnOnce(kube::Error) -> Error + use<> {
    let ns = ns.to_string();
    move |source| Error::Api {
        action,
        namespace: ns,
        source,
    }
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = ns.name_any();
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if ns.metadata.deletion_timestamp.is_none() || !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let span = info_span!("namespace", namespace = %name);
    async move {
        let (remaining, failures) = delete_content(&ctx, &name).await;
        let conds = conditions(&remaining, &failures, ns.status.as_ref());
        if let Some(conds) = conds {
            debug!(?conds, "writing conditions");
            let patch = serde_json::json!({"status": {"conditions": conds}});
            Api::<Namespace>::all(ctx.client.clone())
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api_err("writing status", &name))?;
        }
        if !remaining.is_empty() || !failures.is_empty() {
            debug!(kinds = remaining.len(), "content remains");
            return Ok(Action::requeue(RECHECK));
        }
        let mut body = (*ns).clone();
        if let Some(spec) = body.spec.as_mut() {
            spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
        }
        body.metadata.managed_fields = None;
        match Api::<Namespace>::all(ctx.client.clone())
            .replace_subresource::<Namespace>("finalize", &name, &PostParams::default(), &body)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(api_err("finalizing", &name)(e)),
        }
        info!("namespace emptied and finalized");
        Ok(Action::await_change())
    }
    .instrument(span)
    .await
}

/// Delete every namespaced object in `ns`; returns what is still there (per kind) and the
/// kinds whose deletion failed.
async fn delete_content(ctx: &Ctx, ns: &str) -> (Vec<Remaining>, Vec<String>) {
    let mut remaining = Vec::new();
    let mut failures = Vec::new();
    for kind in &ctx.kinds {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &kind.resource);
        let listed = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("listing {}: {e}", kind.resource.plural));
                continue;
            }
        };
        if listed.items.is_empty() {
            continue;
        }
        let live = listed
            .items
            .iter()
            .any(|o| o.metadata.deletion_timestamp.is_none());
        if live
            && let Err(e) = api
                .delete_collection(&DeleteParams::background(), &ListParams::default())
                .await
        {
            failures.push(format!("deleting {}: {e}", kind.resource.plural));
        }
        let left = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) => {
                failures.push(format!("listing {}: {e}", kind.resource.plural));
                continue;
            }
        };
        if !left.is_empty() {
            remaining.push(Remaining::of(
                &kind.resource.plural,
                &kind.resource.group,
                &left,
            ));
        }
    }
    (remaining, failures)
}
