//! Namespace controller: a deleted namespace is emptied, reports what remains, and goes.

use std::time::Duration;

use capstan_controllers::namespace;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::harness::{TestServer, create, eventually, gone};

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn deleted_namespace_is_emptied_and_removed() -> anyhow::Result<()> {
    let srv = TestServer::start().await?;
    srv.spawn(namespace::run);
    let c = srv.client.clone();
    let nss: Api<Namespace> = Api::all(c.clone());
    create(&nss, json!({"metadata": {"name": "doomed"}})).await?;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "doomed");
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "doomed");
    let svcs: Api<Service> = Api::namespaced(c.clone(), "doomed");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "doomed");
    create(&cms, json!({"metadata": {"name": "a"}})).await?;
    create(
        &cms,
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .await?;
    create(
        &secrets,
        json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
    )
    .await?;
    create(&svcs, json!({"metadata": {"name": "svc"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}})).await?;
    create(&pods, json!({"metadata": {"name": "loose"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})).await?;
    // A pod on a node deletes gracefully: the "kubelet" (this test) finishes it.
    create(&pods, json!({"metadata": {"name": "bound"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}})).await?;
    let running = json!({"status": {"phase": "Running"}});
    pods.patch_status("bound", &PatchParams::default(), &Patch::Merge(&running))
        .await?;

    nss.delete("doomed", &DeleteParams::default()).await?;
    // The controller deletes kind after kind (pods first, then configmaps, ..., secrets,
    // services): wait for all of the unheld content, not a snapshot after the first kinds.
    eventually("the unheld content to go", LIMIT, || async {
        (gone(&cms, "a").await
            && gone(&pods, "loose").await
            && gone(&secrets, "s").await
            && gone(&svcs, "svc").await)
            .then_some(())
    })
    .await?;
    let ns = nss.get("doomed").await?;
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert!(gone(&cms, "a").await && gone(&secrets, "s").await && gone(&svcs, "svc").await);
    assert!(gone(&pods, "loose").await);
    let bound = pods.get("bound").await?;
    assert!(bound.metadata.deletion_timestamp.is_some());
    pods.delete(
        "bound",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await?;
    assert!(
        !gone(&nss, "doomed").await,
        "the held ConfigMap keeps the namespace"
    );
    // Its status says why, in upstream's conditions (what `kubectl describe ns` shows).
    let conditions = eventually("the deletion conditions", LIMIT, || async {
        let ns = nss.get("doomed").await.ok()?;
        let conds = ns.status?.conditions?;
        let held = conds
            .iter()
            .find(|c| c.type_ == "NamespaceFinalizersRemaining")?;
        (held.status == "True").then_some(conds)
    })
    .await?;
    let by_type = |t: &str| conditions.iter().find(|c| c.type_ == t);
    let fins =
        by_type("NamespaceFinalizersRemaining").map(|c| (c.reason.clone(), c.message.clone()));
    assert_eq!(
        fins,
        Some((
            Some("SomeFinalizersRemain".to_string()),
            Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances".to_string())
        ))
    );
    let content =
        by_type("NamespaceContentRemaining").map(|c| (c.status.clone(), c.reason.clone()));
    assert_eq!(
        content,
        Some(("True".to_string(), Some("SomeResourcesRemain".to_string())))
    );
    assert!(
        !gone(&nss, "doomed").await,
        "writing the conditions does not complete the deletion"
    );
    let release = json!({"metadata": {"finalizers": null}});
    cms.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await?;
    eventually("the namespace to go", LIMIT, || async {
        gone(&nss, "doomed").await.then_some(())
    })
    .await?;
    srv.stop().await;
    Ok(())
}
