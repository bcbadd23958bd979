//! Scheduler throughput in scheduler_perf's shape ("SchedulingBasic"), through our API server
//! in-process (SQLite in a temp dir) and the real `scheduler` binary as a child process (so its
//! RSS is its own).
//!
//! Per scale (nodes × pods): create Ready nodes (4 CPU / 32 GiB / 110 pods) through the API,
//! start the scheduler and wait for its caches, then create the pods (100m / 500Mi)
//! concurrently with scheduling (32 creators) — mode `concurrent` — or create them all first
//! and start the scheduler afterwards — mode `preloaded`. A watch in the bench records when
//! each pod is first seen bound. Reported: pods/s from the first pod created (or, preloaded,
//! from the scheduler's caches being synced) to the last bound, p50/p99 latency (create call
//! start → bound seen; preloaded: caches synced → bound), scheduler peak RSS and CPU seconds
//! (vs wall time from its start to the last bind), and the API server's mean latency per
//! POST binding / event / pod from its /metrics.
//!
//! `cargo bench -p capstan-scheduler --bench scheduler`
//! env: BENCH_SCALES="500x1000,5000x10000" BENCH_MODES="concurrent,preloaded"

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_apiserver::server::{self, Args};
use capstan_store::{AnyStore, Datastore, StoreConfig};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const CREATORS: usize = 32;

struct Server {
    url: String,
    client: kube::Client,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn start_server() -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let args = Args::for_tests(dir.path().to_path_buf());
    let datastore = Datastore::parse(&args.datastore, &args.data_dir)?;
    let store = Arc::new(AnyStore::open(&datastore, StoreConfig::default()).await?);
    let shutdown = CancellationToken::new();
    let (ready, _task) = tokio::time::timeout(
        Duration::from_secs(30),
        server::spawn_with_store(args, store, shutdown.clone()),
    )
    .await??;
    let client = kube::Client::try_from(kube::Config::new(ready.url.parse()?))?;
    Ok(Server {
        url: ready.url,
        client,
        shutdown,
        _dir: dir,
    })
}

fn node(name: &str) -> anyhow::Result<Node> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
        }
    }))?)
}

fn pod(ns: &str, name: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]}
    }))?)
}

/// Create `n` objects with CREATORS concurrent callers; returns each one's call start time.
async fn create_all<F, Fut>(n: usize, f: F) -> anyhow::Result<Vec<(String, Instant)>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let results: Vec<anyhow::Result<(String, Instant)>> = futures::stream::iter(0..n)
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                fut.await.map(|name| (name, t))
            }
        })
        .buffer_unordered(CREATORS)
        .collect()
        .await;
    results.into_iter().collect()
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Mean server-side latency (ms) and count of requests matching the label fragments.
async fn server_latency(url: &str, verb: &str, resource: &str, sub: &str) -> (f64, u64) {
    let body = match reqwest_get(&format!("{url}/metrics")).await {
        Ok(b) => b,
        Err(_) => return (0.0, 0),
    };
    let want = format!(
        "verb=\"{verb}\",dry_run=\"\",group=\"\",version=\"v1\",resource=\"{resource}\",subresource=\"{sub}\""
    );
    let mut sum = 0.0;
    let mut count = 0.0;
    for l in body.lines() {
        if !l.contains(&want) {
            continue;
        }
        let v: f64 = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if l.starts_with("apiserver_request_duration_seconds_sum") {
            sum += v;
        } else if l.starts_with("apiserver_request_duration_seconds_count") {
            count += v;
        }
    }
    if count == 0.0 {
        (0.0, 0)
    } else {
        (sum / count * 1000.0, count as u64)
    }
}

async fn reqwest_get(url: &str) -> anyhow::Result<String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let resp = client.get(url.parse()?).await?;
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await?
        .to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// user + system CPU seconds of a process.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after the comm field: state is [0], utime [11], stime [12]
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Row {
    mode: String,
    nodes: usize,
    pods: usize,
    node_setup: Duration,
    create_rate: f64,
    throughput: f64,
    p50: Duration,
    p99: Duration,
    rss_peak_mib: f64,
    startup: Duration,
    sched_cpu: f64,
    wall: f64,
    bind_ms: (f64, u64),
    event_ms: (f64, u64),
    pod_create_ms: (f64, u64),
}

async fn run_case(nodes: usize, pods: usize, preloaded: bool) -> anyhow::Result<Row> {
    let server = start_server().await?;
    let client = server.client.clone();
    let t0 = Instant::now();
    let napi: Api<Node> = Api::all(client.clone());
    create_all(nodes, |i| {
        let napi = napi.clone();
        async move {
            let name = format!("node-{i}");
            napi.create(&PostParams::default(), &node(&name)?).await?;
            Ok(name)
        }
    })
    .await?;
    let node_setup = t0.elapsed();

    // the bench's own watch: when is each pod first seen bound
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watch_stop = CancellationToken::new();
    {
        let bound = bound.clone();
        let stop = watch_stop.clone();
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        tokio::spawn(async move {
            let mut s = watcher::watcher(api, watcher::Config::default()).boxed();
            loop {
                let ev = tokio::select! { ev = s.next() => ev, _ = stop.cancelled() => return };
                let Some(ev) = ev else { return };
                if let Ok(Event::Apply(p) | Event::InitApply(p)) = ev
                    && p.spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .is_some_and(|n| !n.is_empty())
                {
                    let name = p.metadata.name.unwrap_or_default();
                    bound
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(name)
                        .or_insert_with(Instant::now);
                }
            }
        });
    }

    let papi: Api<Pod> = Api::namespaced(client.clone(), "default");
    let create_pods = || {
        create_all(pods, |i| {
            let papi = papi.clone();
            async move {
                let name = format!("pod-{i}");
                papi.create(&PostParams::default(), &pod("default", &name)?)
                    .await?;
                Ok(name)
            }
        })
    };
    let kubeconfig = server._dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user: {{}}\ncurrent-context: c\n",
            server.url
        ),
    )?;
    let mut created = Vec::new();
    let mut create_secs = 0.0;
    if preloaded {
        let t = Instant::now();
        created = create_pods().await?;
        create_secs = t.elapsed().as_secs_f64();
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scheduler"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("RUST_LOG", "warn,capstan_scheduler=info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    let stdout = child.stdout.take();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let Some(out) = stdout else { return };
        let mut lines = tokio::io::BufReader::new(out).lines();
        let mut tx = Some(started_tx);
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("scheduler started")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(Instant::now());
            }
            if l.contains("WARN") || l.contains("ERROR") || l.contains("stopped") {
                eprintln!("  scheduler: {l}");
            }
        }
    });
    let sched_start = Instant::now();
    let started_at = tokio::time::timeout(Duration::from_secs(300), started_rx).await??;
    let begin;
    if preloaded {
        begin = started_at;
    } else {
        let t = Instant::now();
        created = create_pods().await?;
        create_secs = t.elapsed().as_secs_f64();
        begin = created.iter().map(|(_, t)| *t).min().unwrap_or(started_at);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n = bound.lock().unwrap_or_else(|e| e.into_inner()).len();
        if n >= pods || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_peak = rss_kib(pid, "VmHWM:");
    let sched_cpu = cpu_secs(pid);
    let bound = bound.lock().unwrap_or_else(|e| e.into_inner()).clone();
    watch_stop.cancel();
    let last = bound.values().max().copied().unwrap_or(begin);
    let mut lat: Vec<Duration> = created
        .iter()
        .filter_map(|(n, t)| {
            bound
                .get(n)
                .map(|b| b.saturating_duration_since(if preloaded { started_at } else { *t }))
        })
        .collect();
    lat.sort();
    let span = last
        .saturating_duration_since(begin)
        .as_secs_f64()
        .max(1e-9);
    let bind_ms = server_latency(&server.url, "POST", "pods", "binding").await;
    let event_ms = server_latency(&server.url, "POST", "events", "").await;
    let pod_create_ms = server_latency(&server.url, "POST", "pods", "").await;
    if bound.len() < pods {
        eprintln!(
            "  only {}/{} pods bound before the deadline",
            bound.len(),
            pods
        );
    }
    // SIGTERM, as a real shutdown
    if pid != 0 {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    server.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Row {
        mode: if preloaded { "preloaded" } else { "concurrent" }.into(),
        nodes,
        pods,
        node_setup,
        create_rate: pods as f64 / create_secs.max(1e-9),
        throughput: bound.len() as f64 / span,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        rss_peak_mib: rss_peak as f64 / 1024.0,
        startup: started_at.saturating_duration_since(sched_start),
        sched_cpu,
        wall: last.saturating_duration_since(sched_start).as_secs_f64(),
        bind_ms,
        event_ms,
        pod_create_ms,
    })
}

fn main() -> anyhow::Result<()> {
    // cargo bench passes --bench; a filter argument is not supported
    let scales: Vec<(usize, usize)> = std::env::var("BENCH_SCALES")
        .unwrap_or_else(|_| "500x1000,5000x10000".into())
        .split(',')
        .filter_map(|s| {
            let (n, p) = s.split_once('x')?;
            Some((n.trim().parse().ok()?, p.trim().parse().ok()?))
        })
        .collect();
    let modes: Vec<String> = std::env::var("BENCH_MODES")
        .unwrap_or_else(|_| "concurrent,preloaded".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for (nodes, pods) in scales {
        for mode in &modes {
            eprintln!("running {mode} {nodes} nodes / {pods} pods ...");
            let row = rt.block_on(run_case(nodes, pods, mode == "preloaded"))?;
            eprintln!(
                "  {:.0} pods/s, p99 {:?}, rss {:.1} MiB",
                row.throughput, row.p99, row.rss_peak_mib
            );
            rows.push(row);
        }
    }
    println!(
        "\n| mode | nodes | pods | node setup | pod create rate | scheduled pods/s | p50 latency | p99 latency | scheduler peak RSS | scheduler start→synced | scheduler CPU / wall | server POST binding (mean ms / n) | POST events | POST pods |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.1}s | {:.0}/s | {:.0} | {:.0} ms | {:.0} ms | {:.1} MiB | {:.2}s | {:.2}s / {:.2}s | {:.2} / {} | {:.2} / {} | {:.2} / {} |",
            r.mode,
            r.nodes,
            r.pods,
            r.node_setup.as_secs_f64(),
            r.create_rate,
            r.throughput,
            r.p50.as_secs_f64() * 1000.0,
            r.p99.as_secs_f64() * 1000.0,
            r.rss_peak_mib,
            r.startup.as_secs_f64(),
            r.sched_cpu,
            r.wall,
            r.bind_ms.0,
            r.bind_ms.1,
            r.event_ms.0,
            r.event_ms.1,
            r.pod_create_ms.0,
            r.pod_create_ms.1
        );
    }
    Ok(())
}
