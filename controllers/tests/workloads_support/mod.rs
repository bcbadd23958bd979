//! Harness for the Deployment/ReplicaSet scenario tests: an in-process API server on
//! SQLite, both controllers running against it, a fake kubelet that marks pods Ready, and
//! polling helpers.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use capstan_apiserver::server::{self, Args};
use capstan_store::{AnyStore, Datastore, StoreConfig};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub struct Cluster {
    pub client: kube::Client,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// API server plus the Deployment and ReplicaSet controllers.
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
        let (ready, _task) = tokio::time::timeout(
            Duration::from_secs(30),
            server::spawn_with_store(args, store, shutdown.clone()),
        )
        .await??;
        let client = kube::Client::try_from(kube::Config::new(ready.url.parse()?))?;
        tokio::spawn(capstan_controllers::deployment::run(
            client.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(capstan_controllers::replicaset::run(
            client.clone(),
            shutdown.clone(),
        ));
        Ok(Cluster {
            client,
            shutdown,
            _dir: dir,
        })
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), "default")
    }
    pub fn replicasets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), "default")
    }
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// A fake kubelet: every pod becomes Running and Ready `delay` after it is first seen,
    /// while `enabled` is true.
    pub fn kubelet(&self, delay: Duration) -> Arc<AtomicBool> {
        let enabled = Arc::new(AtomicBool::new(true));
        let on = enabled.clone();
        let pods = self.pods();
        let token = self.shutdown.clone();
        tokio::spawn(async move {
            let stream = watcher(pods.clone(), watcher::Config::default())
                .default_backoff()
                .touched_objects()
                .take_until(token.cancelled_owned());
            stream
                .try_for_each_concurrent(64, |pod| {
                    let pods = pods.clone();
                    let on = on.clone();
                    async move {
                        if pod.metadata.deletion_timestamp.is_some() || is_ready(&pod) {
                            return Ok(());
                        }
                        tokio::time::sleep(delay).await;
                        while !on.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        let now = jiff::Timestamp::now().to_string();
                        let patch = json!({"status": {"phase": "Running", "conditions": [
                            {"type": "Ready", "status": "True", "lastTransitionTime": now}
                        ]}});
                        let _ = pods
                            .patch_status(
                                &pod.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            )
                            .await;
                        Ok(())
                    }
                })
                .await
        });
        enabled
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Poll `f` until it returns `Some`, or fail after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .unwrap_or_default()
}

/// Pods owned (controller reference) by ReplicaSets of Deployment `name`, not deleting.
pub async fn pods_of(c: &Cluster, app: &str) -> anyhow::Result<Vec<Pod>> {
    let list = c
        .pods()
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

/// ReplicaSets labelled `app=<app>`.
pub async fn rss_of(c: &Cluster, app: &str) -> anyhow::Result<Vec<ReplicaSet>> {
    Ok(c.replicasets()
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?
        .items)
}

/// Wait until `kubectl rollout status` would say the rollout of `name` finished.
pub async fn rollout_complete(
    c: &Cluster,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Deployment> {
    let api = c.deployments();
    eventually(timeout, &format!("rollout of {name}"), || {
        let api = api.clone();
        async move {
            let d = api.get(name).await?;
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let s = d.status.clone().unwrap_or_default();
            let n = |v: Option<i32>| v.unwrap_or(0);
            let done = d.metadata.generation <= s.observed_generation
                && n(s.updated_replicas) == want
                && n(s.replicas) == n(s.updated_replicas)
                && n(s.available_replicas) == n(s.updated_replicas);
            Ok(done.then_some(d))
        }
    })
    .await
}

/// A watch on the pods of `app` tracking the lowest number of Ready pods seen once
/// `armed` (after the initial rollout).
pub struct MinReady {
    /// Fewest ready, non-deleting pods seen.
    pub min: Arc<AtomicU64>,
    /// Most non-deleting pods seen at once. Upstream bounds ReplicaSet spec sums, not live
    /// pods: a pod an old ReplicaSet was just scaled down from may still exist while the new
    /// one creates, so this can briefly pass replicas + maxSurge.
    pub max_total: Arc<AtomicU64>,
    /// Largest sum of `spec.replicas` over the Deployment's ReplicaSets: upstream's rolling
    /// update keeps this at or below replicas + maxSurge.
    pub max_spec_sum: Arc<AtomicU64>,
}

/// What a kube watcher's events say, by object name. A (re)list is gathered apart and
/// replaces the state at its end: mixing its items with the state from before it would count
/// objects that are gone.
struct ByName<V> {
    state: std::collections::HashMap<String, V>,
    relist: Option<std::collections::HashMap<String, V>>,
    listed: bool,
}

impl<V> Default for ByName<V> {
    fn default() -> Self {
        ByName {
            state: Default::default(),
            relist: None,
            listed: false,
        }
    }
}

impl<V> ByName<V> {
    /// Applies `ev` (`value` is what is kept of an object); true when `state` changed and is
    /// a complete picture (after the first list).
    fn apply<K: ResourceExt>(&mut self, ev: watcher::Event<K>, value: impl Fn(&K) -> V) -> bool {
        match ev {
            watcher::Event::Init => {
                self.relist = Some(Default::default());
                return false;
            }
            watcher::Event::InitApply(o) => {
                if let Some(r) = self.relist.as_mut() {
                    r.insert(o.name_any(), value(&o));
                }
                return false;
            }
            watcher::Event::InitDone => {
                self.state = self.relist.take().unwrap_or_default();
                self.listed = true;
            }
            watcher::Event::Apply(o) => {
                self.state.insert(o.name_any(), value(&o));
            }
            watcher::Event::Delete(o) => {
                self.state.remove(&o.name_any());
            }
        }
        self.listed
    }
}

pub fn watch_min_ready(c: &Cluster, app: &str) -> MinReady {
    let min = Arc::new(AtomicU64::new(u64::MAX));
    let max_total = Arc::new(AtomicU64::new(0));
    let (m, t) = (min.clone(), max_total.clone());
    let pods = c.pods();
    let token = c.shutdown.clone();
    let cfg = watcher::Config::default().labels(&format!("app={app}"));
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(
            watcher(pods, cfg)
                .default_backoff()
                .take_until(token.cancelled_owned())
        );
        let mut seen = ByName::default();
        while let Some(Ok(ev)) = stream.next().await {
            let changed = seen.apply(ev, |p: &Pod| {
                let live = p.metadata.deletion_timestamp.is_none();
                (live && is_ready(p), live)
            });
            if !changed {
                continue;
            }
            let ready = seen.state.values().filter(|(r, _)| *r).count() as u64;
            let total = seen.state.values().filter(|(_, l)| *l).count() as u64;
            m.fetch_min(ready, Ordering::SeqCst);
            t.fetch_max(total, Ordering::SeqCst);
        }
    });
    let max_spec_sum = Arc::new(AtomicU64::new(0));
    let spec_sum = max_spec_sum.clone();
    let rss = c.replicasets();
    let token = c.shutdown.clone();
    let rs_cfg = watcher::Config::default().labels(&format!("app={app}"));
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(
            watcher(rss, rs_cfg)
                .default_backoff()
                .take_until(token.cancelled_owned())
        );
        let mut specs = ByName::default();
        while let Some(Ok(ev)) = stream.next().await {
            let changed = specs.apply(ev, |rs: &ReplicaSet| {
                let n = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                u64::try_from(n).unwrap_or(0)
            });
            if changed {
                spec_sum.fetch_max(specs.state.values().sum(), Ordering::SeqCst);
            }
        }
    });
    MinReady {
        min,
        max_total,
        max_spec_sum,
    }
}
