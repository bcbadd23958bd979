//! A whole cluster in one process: the API server (SQLite, HTTPS, kubeconfig written), the
//! controllers, the scheduler and three fake nodes, driven by the real kubectl 1.33 through the
//! everyday workflows: create a Deployment, roll it out, update and undo, scale, delete (GC),
//! an unschedulable pod's FailedScheduling reason, namespace deletion, and a node that stops
//! heartbeating (NotReady, its pods replaced elsewhere).
//!
//! kubectl is `/usr/lib/google-cloud-sdk/bin/kubectl.1.33`; a missing binary fails the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::ListParams;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
/// Every poll gives up after this long.
const WAIT: Duration = Duration::from_secs(60);
/// A single kubectl invocation is killed after this long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
const NS: &str = "cluster-test";

/// What a kubectl run printed.
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
    work: PathBuf,
}

impl Kubectl {
    async fn run(&self, args: &[&str]) -> Result<Out> {
        let mut cmd = tokio::process::Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", &self.work)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("running {KUBECTL}"))?;
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| format!("kubectl {} timed out", args.join(" ")))??;
        Ok(Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Run and require exit status 0; returns stdout.
    async fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args).await?;
        ensure!(
            out.ok,
            "kubectl {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        Ok(out.stdout)
    }

    /// `kubectl rollout status` of `target` in [`NS`], bounded at 60 s; must succeed.
    async fn rollout_status(&self, target: &str) -> Result<String> {
        self.ok(&["rollout", "status", "-n", NS, target, "--timeout=60s"])
            .await
    }

    fn file(&self, name: &str, content: &str) -> Result<String> {
        let p = self.work.join(name);
        std::fs::write(&p, content)?;
        Ok(p.display().to_string())
    }
}

/// Poll `check` until it returns `Some`, for at most [`WAIT`].
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + WAIT;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            bail!("timed out after {WAIT:?} waiting for {what} (last error: {last_err:?})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn running(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect()
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

async fn list_pods(pods: &Api<Pod>, selector: &str) -> Result<Vec<Pod>> {
    Ok(pods
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

/// Wait until exactly `n` pods matching `selector` exist and all are Running.
async fn wait_running(pods: &Api<Pod>, selector: &str, n: usize) -> Result<Vec<Pod>> {
    wait_for(&format!("{n} Running pods {selector}"), || async {
        let all = list_pods(pods, selector).await?;
        let live = running(&all).len();
        Ok((all.len() == n && live == n).then_some(all))
    })
    .await
}

fn deployment(name: &str, replicas: u32, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
{extra_spec}      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
"
    )
}

/// The components, each a task with its own shutdown token.
struct Cluster {
    tasks: Vec<(&'static str, CancellationToken, JoinHandle<Result<()>>)>,
}

impl Cluster {
    fn spawn<F>(&mut self, name: &'static str, token: CancellationToken, fut: F)
    where
        F: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        self.tasks.push((name, token, tokio::spawn(fut)));
    }

    /// Stop one component (by name) and wait for it.
    async fn stop(&mut self, name: &str) -> Result<()> {
        let i = self
            .tasks
            .iter()
            .position(|(n, _, _)| *n == name)
            .with_context(|| format!("no component {name}"))?;
        let (name, token, handle) = self.tasks.remove(i);
        token.cancel();
        tokio::time::timeout(Duration::from_secs(20), handle)
            .await
            .with_context(|| format!("{name} did not stop within 20s"))?
            .with_context(|| format!("{name} panicked"))?
            .with_context(|| format!("{name} failed"))
    }

    /// Stop everything, clients first, the API server last.
    async fn shutdown(mut self) -> Result<()> {
        while let Some((name, _, _)) = self.tasks.last() {
            let name = *name;
            self.stop(name).await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_with_kubectl() -> Result<()> {
    ensure!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} is missing: the cluster test needs the real kubectl 1.33"
    );
    capstan_apiserver::tls::install_crypto_provider();
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster { tasks: Vec::new() };

    // API server: HTTPS on an OS-chosen port, SQLite in the temp dir, kubeconfig written.
    let mut args = capstan_apiserver::server::Args::for_tests(dir.path().join("data"));
    args.insecure_http = false;
    args.https_port = 0;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let token = CancellationToken::new();
    let t = token.clone();
    cluster.spawn("apiserver", token, async move {
        capstan_apiserver::server::run(args, t, move |ready| {
            let _ = ready_tx.send(ready);
        })
        .await
        .map_err(anyhow::Error::from)
    });
    let ready = tokio::time::timeout(WAIT, ready_rx)
        .await
        .context("API server not ready within 60s")?
        .context("API server stopped before it was ready")?;
    ensure!(
        ready.url.starts_with("https://"),
        "not HTTPS: {}",
        ready.url
    );
    let kubeconfig = ready.kubeconfig.context("no kubeconfig written")?;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &Default::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;

    // Controllers with a short grace period, the scheduler, and 3 fake nodes: two in one
    // fake-nodes instance and one in another, so that a single node can be stopped.
    let token = CancellationToken::new();
    let (c, t) = (client.clone(), token.clone());
    cluster.spawn("controllers", token, async move {
        let args = capstan_controllers::Args {
            kubeconfig: None,
            cluster_cidr: "10.42.0.0/16".parse()?,
            node_cidr_mask_size: 24,
            node_monitor_grace_period: Duration::from_secs(4),
            pod_eviction_timeout: Duration::from_secs(2),
        };
        capstan_controllers::run(c, args, t)
            .await
            .map_err(anyhow::Error::from)
    });
    let token = CancellationToken::new();
    let (c, t) = (client.clone(), token.clone());
    cluster.spawn("scheduler", token, async move {
        capstan_scheduler::run(c, capstan_scheduler::Args::default(), t)
            .await
            .map_err(anyhow::Error::from)
    });
    for (name, prefix, count) in [("nodes", "node-", 2), ("flaky-node", "flaky-", 1)] {
        let token = CancellationToken::new();
        let (c, t) = (client.clone(), token.clone());
        let args = capstan_fake_nodes::Args {
            count,
            name_prefix: prefix.into(),
            lease_interval_seconds: 1,
            lease_duration_seconds: 4,
            status_interval_seconds: 2,
            ..Default::default()
        };
        cluster.spawn(name, token, async move {
            capstan_fake_nodes::run(c, args, t)
                .await
                .map_err(anyhow::Error::from)
        });
    }

    let work = dir.path().join("kubectl");
    std::fs::create_dir_all(&work)?;
    let k = Kubectl {
        kubeconfig,
        cache: work.join("cache"),
        work,
    };
    let result = scenarios(&k, &client, &mut cluster).await;
    let setup_and_scenarios = started.elapsed();
    let stopped = cluster.shutdown().await;
    eprintln!(
        "cluster test: scenarios {setup_and_scenarios:?}, total {:?}",
        started.elapsed()
    );
    result?;
    stopped
}

async fn scenarios(k: &Kubectl, client: &kube::Client, cluster: &mut Cluster) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let t = Instant::now();
    wait_for("3 Ready nodes", || async {
        let list = nodes.list(&ListParams::default()).await?.items;
        let ready = list
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        Ok((ready == 3).then_some(()))
    })
    .await?;
    eprintln!("[{:?}] 3 nodes Ready", t.elapsed());

    k.ok(&["create", "namespace", NS]).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let rses: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);

    // Create: 3 replicas Running on 3 distinct nodes; rollout status succeeds.
    let manifest = k.file("web.yaml", &deployment("web", 3, ""))?;
    k.ok(&["create", "-n", NS, "-f", &manifest]).await?;
    let web = wait_running(&pods, "app=web", 3).await?;
    let on: BTreeSet<String> = web.iter().map(node_of).collect();
    ensure!(
        on.len() == 3,
        "3 replicas should spread over 3 nodes: {on:?}"
    );
    k.rollout_status("deployment/web").await?;
    eprintln!("[{:?}] create + rollout status", t.elapsed());

    // Update the image, then undo.
    let image = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    };
    k.ok(&["set", "image", "-n", NS, "deployment/web", "web=nginx:1.26"])
        .await?;
    k.rollout_status("deployment/web").await?;
    ensure!(image(&deploys.get("web").await?) == "nginx:1.26");
    let web = wait_running(&pods, "app=web", 3).await?;
    for p in &web {
        let img = p
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone());
        ensure!(
            img.as_deref() == Some("nginx:1.26"),
            "old pod left: {img:?}"
        );
    }
    k.ok(&["rollout", "undo", "-n", NS, "deployment/web"])
        .await?;
    wait_for("template image back to nginx:1.25", || async {
        Ok((image(&deploys.get("web").await?) == "nginx:1.25").then_some(()))
    })
    .await?;
    k.rollout_status("deployment/web").await?;
    eprintln!("[{:?}] set image + undo", t.elapsed());

    // Scale up and down to zero.
    k.ok(&["scale", "-n", NS, "deployment/web", "--replicas=10"])
        .await?;
    wait_running(&pods, "app=web", 10).await?;
    k.ok(&["scale", "-n", NS, "deployment/web", "--replicas=0"])
        .await?;
    wait_for("0 web pods", || async {
        Ok(list_pods(&pods, "app=web").await?.is_empty().then_some(()))
    })
    .await?;
    eprintln!("[{:?}] scale 10 / 0", t.elapsed());

    // Delete: the ReplicaSets and pods are garbage-collected.
    k.ok(&["scale", "-n", NS, "deployment/web", "--replicas=2"])
        .await?;
    wait_running(&pods, "app=web", 2).await?;
    k.ok(&["delete", "-n", NS, "deployment", "web"]).await?;
    wait_for("web ReplicaSets and pods gone", || async {
        let rs = rses
            .list(&ListParams::default().labels("app=web"))
            .await?
            .items;
        let p = list_pods(&pods, "app=web").await?;
        Ok((rs.is_empty() && p.is_empty()).then_some(()))
    })
    .await?;
    eprintln!("[{:?}] delete + GC", t.elapsed());

    // Unschedulable: the scheduler's reason shows in describe.
    let hog = k.file(
        "hog.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  containers:
  - name: hog
    image: nginx:1.25
    resources:
      requests:
        cpu: \"100\"
",
    )?;
    k.ok(&["create", "-n", NS, "-f", &hog]).await?;
    let want = "0/3 nodes are available: 3 Insufficient cpu.";
    wait_for("FailedScheduling in describe", || async {
        let out = k.ok(&["describe", "pod", "-n", NS, "hog"]).await?;
        Ok(out.contains(want).then_some(()))
    })
    .await?;
    let out = k.ok(&["describe", "pod", "-n", NS, "hog"]).await?;
    ensure!(out.contains("FailedScheduling"), "describe:\n{out}");
    ensure!(node_of(&pods.get("hog").await?).is_empty());
    eprintln!("[{:?}] unschedulable", t.elapsed());

    // Namespace deletion with a few objects (and running pods) in it.
    let doomed = "doomed";
    k.ok(&["create", "namespace", doomed]).await?;
    k.ok(&[
        "create",
        "-n",
        doomed,
        "configmap",
        "cm",
        "--from-literal=a=b",
    ])
    .await?;
    k.ok(&[
        "create",
        "-n",
        doomed,
        "secret",
        "generic",
        "s",
        "--from-literal=a=b",
    ])
    .await?;
    k.ok(&[
        "create",
        "-n",
        doomed,
        "service",
        "clusterip",
        "svc",
        "--tcp=80:80",
    ])
    .await?;
    let small = k.file("small.yaml", &deployment("small", 2, ""))?;
    k.ok(&["create", "-n", doomed, "-f", &small]).await?;
    let doomed_pods: Api<Pod> = Api::namespaced(client.clone(), doomed);
    wait_running(&doomed_pods, "app=small", 2).await?;
    k.ok(&["delete", "namespace", doomed, "--wait=false"])
        .await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_for("namespace gone", || async {
        Ok(namespaces.get_opt(doomed).await?.is_none().then_some(()))
    })
    .await?;
    let out = k.run(&["get", "namespace", doomed]).await?;
    ensure!(!out.ok && out.stderr.contains("NotFound"), "{}", out.stderr);
    eprintln!("[{:?}] namespace deleted", t.elapsed());

    // A node stops heartbeating: NotReady, and its pods are replaced on the others.
    let tolerations = "      tolerations:
      - key: node.kubernetes.io/not-ready
        operator: Exists
        effect: NoExecute
        tolerationSeconds: 1
      - key: node.kubernetes.io/unreachable
        operator: Exists
        effect: NoExecute
        tolerationSeconds: 1
";
    let spread = k.file("spread.yaml", &deployment("spread", 3, tolerations))?;
    k.ok(&["create", "-n", NS, "-f", &spread]).await?;
    let before = wait_running(&pods, "app=spread", 3).await?;
    let victims: Vec<String> = before
        .iter()
        .filter(|p| node_of(p) == "flaky-0")
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    ensure!(
        victims.len() == 1,
        "one spread pod should be on flaky-0: {:?}",
        before.iter().map(node_of).collect::<Vec<_>>()
    );
    cluster.stop("flaky-node").await?;
    wait_for("flaky-0 NotReady in kubectl get nodes", || async {
        let out = k.ok(&["get", "node", "flaky-0", "--no-headers"]).await?;
        Ok(out.contains("NotReady").then_some(()))
    })
    .await?;
    eprintln!("[{:?}] flaky-0 NotReady", t.elapsed());
    wait_for("flaky-0's pod replaced", || async {
        let all = list_pods(&pods, "app=spread").await?;
        let live: Vec<&Pod> = running(&all)
            .into_iter()
            .filter(|p| !victims.contains(p.metadata.name.as_ref().unwrap_or(&String::new())))
            .filter(|p| node_of(p) != "flaky-0")
            .collect();
        Ok((live.len() == 3).then_some(()))
    })
    .await?;
    eprintln!("[{:?}] pod replaced", t.elapsed());

    Ok(())
}
