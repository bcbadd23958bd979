//! An in-process API server for component tests (SQLite in a temp dir, plain HTTP on a port
//! from the OS), the TestServer pattern of apiserver/tests/common, plus object helpers.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use capstan_apiserver::server::{self, Args};
use capstan_store::{AnyStore, Datastore, StoreConfig};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub struct TestServer {
    pub url: String,
    pub client: kube::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), server::ServerError>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let args = Args::for_tests(dir.path().to_path_buf());
        let datastore = Datastore::parse(&args.datastore, &args.data_dir)?;
        let config = StoreConfig {
            compaction_interval: None,
            ..StoreConfig::default()
        };
        let store = Arc::new(AnyStore::open(&datastore, config).await?);
        let shutdown = CancellationToken::new();
        let (ready, task) = tokio::time::timeout(
            Duration::from_secs(30),
            server::spawn_with_store(args, store, shutdown.clone()),
        )
        .await??;
        let config = kube::Config::new(ready.url.parse()?);
        let client = kube::Client::try_from(config)?;
        Ok(TestServer {
            url: ready.url,
            client,
            shutdown,
            task: Some(task),
            _dir: dir,
        })
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A Ready node with the given cpu, 32Gi, 110 pods; `extra` is merged into the object.
pub fn node(name: &str, cpu: &str, spec: serde_json::Value, labels: serde_json::Value) -> Node {
    let mut l = json!({"kubernetes.io/hostname": name});
    if let (Some(l), Some(extra)) = (l.as_object_mut(), labels.as_object()) {
        l.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": l},
        "spec": spec,
        "status": {
            "capacity": {"cpu": cpu, "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
        }
    }))
    .unwrap_or_default()
}

pub async fn create_node(client: &kube::Client, n: Node) -> anyhow::Result<()> {
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &n)
        .await?;
    Ok(())
}

/// A pod requesting `cpu`; `spec` is merged into the spec.
pub fn pod(name: &str, cpu: &str, spec: serde_json::Value, owner: Option<&str>) -> Pod {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}]}
    });
    if let (Some(s), Some(extra)) = (v["spec"].as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    if let Some(o) = owner {
        v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "rs", "uid": o, "controller": true}]);
    }
    serde_json::from_value(v).unwrap_or_default()
}

pub async fn create_pod(client: &kube::Client, p: Pod) -> anyhow::Result<()> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &p)
        .await?;
    Ok(())
}

/// Poll `f` until it returns Some, or fail after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node a pod is bound to, if any.
pub async fn node_of(client: &kube::Client, name: &str) -> Option<String> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .ok()
        .and_then(|p| p.spec.and_then(|s| s.node_name))
}
