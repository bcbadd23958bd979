//! API server benchmark: `cargo bench -p capstan-apiserver --bench apiserver`.
//!
//! In one run, on each store (SQLite in a temp dir; a single-member etcd started by
//! capstan-testkit), with the server in-process on plain HTTP (`run_with_store`) on 127.0.0.1:
//!
//! 1. create-pod throughput and p50/p99 (2-4 KiB pods, JSON pre-generated) at concurrency
//!    1/16/256 through the HTTP API, next to the raw store write (`Store::create` of the same
//!    bytes at the same concurrency) and, on etcd, raw `etcd-client` puts (the floor), each
//!    with its CPU time per operation (this process, i.e. server and client, and the etcd
//!    process, from `/proc` around the cell; the process uses the binary's allocator, mimalloc);
//! 2. p99 of single creates at a steady 100 writes/s for 10 s (open loop: each write is
//!    started on its tick, so a slow write does not delay the next);
//! 3. 1000 watchers on one namespace, one create every 10 ms for 10 s, on a fresh server
//!    process (this same binary, `CAPSTAN_BENCH_CHILD=server`, on the same store): delivery
//!    latency (the pod's send timestamp annotation, written just before the POST, to the event's
//!    arrival in the watcher: an upper bound of write-ack → event; every event counted and its
//!    resourceVersion checked to rise) and the server process's VmRSS growth per idle watcher
//!    (fresh, so no heap freed by earlier parts hides it). The watchers are another child process
//!    (`CAPSTAN_BENCH_CHILD=watchers`, one thread, lines cut with memchr, no JSON parsing).
//!    Next to it the creates' own latency (part of every delivery latency), per event the
//!    first and the last watcher's latency (the pipeline up to the fan-out, and the fan-out's
//!    tail), and the floor,
//!    measured right after: the same fan-out of the same lines to the same watcher process
//!    from a bare tokio server (`CAPSTAN_BENCH_CHILD=floor`), so the latency can be read
//!    against what this machine does at that moment with no API server in the way;
//! 4. LIST of 10k pods in one namespace: latency, and this process's VmRSS/VmHWM before/after,
//!    next to the floor: the same prefix read with `Store::list` and, on etcd, a raw
//!    `etcd-client` range get.
//!
//! Prints a markdown table with the targets next to the figures.
//!
//! Knobs (environment): `CAPSTAN_BENCH_STORES=sqlite,etcd`, `CAPSTAN_BENCH_CONCURRENCY=1,16,256`,
//! `CAPSTAN_BENCH_OPS_C1=500`, `CAPSTAN_BENCH_OPS=5000` (creates per cell at c=1 / c>1),
//! `CAPSTAN_BENCH_CELL_SECS=30`, `CAPSTAN_BENCH_STEADY_SECS=10`, `CAPSTAN_BENCH_LIST_N=10000`,
//! `CAPSTAN_BENCH_WATCHERS=1000`, `CAPSTAN_BENCH_WATCH_SECS=10`,
//! `CAPSTAN_BENCH_WATCH_EVERY_MS=10`, `CAPSTAN_BENCH_PARTS=throughput,steady,watch,list` (which
//! measurements to run; e.g. `CAPSTAN_BENCH_PARTS=list CAPSTAN_BENCH_STORES=sqlite` for the LIST
//! alone).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use capstan_apiserver::server::{self, Args};
use capstan_store::{AnyStore, Datastore, ListOptions, Store, StoreConfig};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The allocator the `apiserver` binary uses (src/main.rs), since the server runs in this
/// process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SENT_ANNOTATION: &str = "bench.capstan.io/sent-unix-nanos";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether `CAPSTAN_BENCH_PARTS` (default: all) asks for this measurement.
fn part(name: &str) -> bool {
    env_list("CAPSTAN_BENCH_PARTS", "throughput,steady,watch,list")
        .iter()
        .any(|p| p == name)
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// (VmRSS, VmHWM) of this process, in kB.
fn rss_kb() -> (u64, u64) {
    rss_kb_of("/proc/self/status")
}

/// (VmRSS, VmHWM) from a `/proc/<pid>/status` file, in kB.
fn rss_kb_of(status: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(status).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A pod of 2-4 KiB (the padding annotation varies with `i`), as JSON.
fn pod_json(ns: &str, name: &str, i: u64, sent: Option<u64>) -> Bytes {
    let pad = 1200 + (i * 7919 % 1700) as usize;
    let mut annotations = serde_json::Map::new();
    annotations.insert("bench.capstan.io/padding".into(), "p".repeat(pad).into());
    if let Some(t) = sent {
        annotations.insert(SENT_ANNOTATION.into(), t.to_string().into());
    }
    let v = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": "bench", "tier": "web", "shard": format!("s{}", i % 16)},
            "annotations": annotations,
        },
        "spec": {
            "restartPolicy": "Always",
            "containers": [{
                "name": "app",
                "image": "registry.example/bench/app:1.2.3",
                "args": ["--port=8080", "--log-level=info"],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "MODE", "value": "bench"},
                    {"name": "INDEX", "value": i.to_string()},
                ],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}},
            }],
        },
    });
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

// ---------------------------------------------------------------------------------------------
// measurement cells

#[derive(Clone, Debug, Default)]
struct Cell {
    ops: u64,
    errors: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// CPU time used during the cell by this process (server and client) and by the etcd
    /// child processes.
    cpu_self: Duration,
    cpu_etcd: Duration,
}

impl Cell {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU µs per operation: (this process, etcd).
    fn cpu_us_per_op(&self) -> (f64, f64) {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / (self.ops.max(1) as f64);
        (per(self.cpu_self), per(self.cpu_etcd))
    }
}

/// utime + stime of a process from `/proc/<pid>/stat`.
fn proc_cpu(pid: &str) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command (which may hold spaces) start after the last ')'.
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// (this process, its etcd children) CPU time so far.
fn cpu_now() -> (Duration, Duration) {
    let me = std::process::id().to_string();
    let mut etcd = Duration::ZERO;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let pid = e.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let ppid = rest.split_whitespace().nth(1).unwrap_or("");
            if ppid == me && head.ends_with("(etcd") {
                etcd += proc_cpu(&pid);
            }
        }
    }
    (proc_cpu("self"), etcd)
}

fn pct(lat: &mut [Duration], p: f64) -> Duration {
    if lat.is_empty() {
        return Duration::ZERO;
    }
    lat.sort();
    lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]
}

/// Run `ops` operations `op(i)` from `concurrency` tasks (stopping at `max_time`).
async fn run_cell<F, Fut>(concurrency: usize, ops: u64, max_time: Duration, op: F) -> Cell
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let (cpu_self0, cpu_etcd0) = cpu_now();
    let start = Instant::now();
    let deadline = start + max_time;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, next, errors) = (op.clone(), next.clone(), errors.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops || Instant::now() > deadline {
                        break;
                    }
                    let t = Instant::now();
                    match op(i).await {
                        Ok(()) => lat.push(t.elapsed()),
                        Err(e) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("  op {i} failed: {e:#}");
                            }
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    let (cpu_self1, cpu_etcd1) = cpu_now();
    Cell {
        ops: lat.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        p50: pct(&mut lat, 0.50),
        p99: pct(&mut lat, 0.99),
        max: lat.last().copied().unwrap_or_default(),
        cpu_self: cpu_self1.saturating_sub(cpu_self0),
        cpu_etcd: cpu_etcd1.saturating_sub(cpu_etcd0),
    }
}

async fn post(client: &HttpClient, url: &str, body: Bytes) -> Result<()> {
    let req = http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let resp = client.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status.as_u16() != 201 {
        bail!("{status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

async fn get(client: &HttpClient, url: &str) -> Result<Bytes> {
    let req = http::Request::builder()
        .uri(url)
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()))?;
    let resp = client.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("{status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// one store

struct Server {
    url: String,
    store: Arc<AnyStore>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), server::ServerError>>,
    _dir: tempfile::TempDir,
}

async fn start_server(datastore: &str) -> Result<Server> {
    let dir = tempfile::Builder::new()
        .prefix("capstan-apiserver-bench-")
        .tempdir()?;
    let mut args = Args::for_tests(dir.path().to_path_buf());
    args.datastore = datastore.to_string();
    let ds = Datastore::parse(&args.datastore, &args.data_dir)?;
    let config = StoreConfig {
        compaction_interval: None,
        ..StoreConfig::default()
    };
    let store = Arc::new(AnyStore::open(&ds, config).await?);
    let shutdown = CancellationToken::new();
    let (ready, task) = tokio::time::timeout(
        Duration::from_secs(30),
        server::spawn_with_store(args, store.clone(), shutdown.clone()),
    )
    .await??;
    Ok(Server {
        url: ready.url,
        store,
        shutdown,
        task,
        _dir: dir,
    })
}

#[derive(Default)]
struct StoreResults {
    name: String,
    /// (concurrency, http, raw store, raw etcd put)
    throughput: Vec<(usize, Cell, Cell, Option<Cell>)>,
    steady: Cell,
    steady_target_rate: f64,
    list_n: usize,
    list_first: Duration,
    list_p50: Duration,
    list_bytes: usize,
    list_rss_growth_kb: i64,
    list_hwm_growth_kb: i64,
    /// The floor: p50 of 5 of the same prefix read through `Store::list`, and on etcd with a
    /// raw `etcd-client` range get.
    list_store_p50: Duration,
    list_raw_etcd_p50: Option<Duration>,
    watchers: usize,
    watch_rss_per_watcher_b: f64,
    /// The watch server process's VmRSS before / with the idle watchers, kB.
    watch_rss_kb: (u64, u64),
    /// Events out of order plus lines that were not the expected events.
    watch_bad: u64,
    /// CPU seconds from the first write to the last event: (server process, watcher process).
    watch_cpu_s: (f64, f64),
    /// The same fan-out from a bare server, right after: events, latencies, CPU seconds
    /// (floor server, watcher process).
    floor_events: u64,
    /// The writes' own latency during the watch part (POST → 201).
    watch_write_p50: Duration,
    watch_write_p99: Duration,
    floor_p50: Duration,
    floor_p99: Duration,
    floor_max: Duration,
    floor_cpu_s: (f64, f64),
    watch_events: u64,
    watch_expected: u64,
    watch_p50: Duration,
    watch_p99: Duration,
    watch_max: Duration,
    /// Per event, the first and the last watcher's latency, p99 over events: the pipeline up
    /// to the fan-out, and the fan-out's tail.
    watch_first_p99: Duration,
    watch_last_p99: Duration,
}

async fn bench_store(
    name: &str,
    datastore: &str,
    etcd_endpoints: Option<Vec<String>>,
) -> Result<StoreResults> {
    let concurrency: Vec<usize> = env_list("CAPSTAN_BENCH_CONCURRENCY", "1,16,256")
        .iter()
        .filter(|_| part("throughput"))
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .context("CAPSTAN_BENCH_CONCURRENCY")?;
    let ops_c1: u64 = env_or("CAPSTAN_BENCH_OPS_C1", 500);
    let ops_cn: u64 = env_or("CAPSTAN_BENCH_OPS", 5000);
    let max_time = Duration::from_secs(env_or("CAPSTAN_BENCH_CELL_SECS", 30));

    let srv = start_server(datastore).await?;
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build_http();
    let mut res = StoreResults {
        name: name.to_string(),
        ..StoreResults::default()
    };
    for ns in ["bench-http", "bench-steady", "bench-list", "bench-watch"] {
        let body = serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))?;
        post(
            &client,
            &format!("{}/api/v1/namespaces", srv.url),
            body.into(),
        )
        .await?;
    }
    let raw_etcd = match &etcd_endpoints {
        Some(eps) => Some(etcd_client::Client::connect(eps, None).await?),
        None => None,
    };

    // 1. throughput
    for &c in &concurrency {
        let ops = if c <= 1 { ops_c1 } else { ops_cn };
        let warm = (c as u64 * 2).max(50);
        let bodies: Arc<Vec<Bytes>> = Arc::new(
            (0..ops + warm)
                .map(|i| pod_json("bench-http", &format!("c{c}-{i:07}"), i, None))
                .collect(),
        );
        let url = Arc::new(format!("{}/api/v1/namespaces/bench-http/pods", srv.url));
        let mut cells = Vec::new();
        for http_phase in [true, false] {
            // warm-up then the measured cell (ops offset by `warm` so names differ)
            let mut measured = Cell::default();
            for (n, base) in [(warm, ops), (ops, 0)] {
                let (bodies, url, client, store) = (
                    bodies.clone(),
                    url.clone(),
                    client.clone(),
                    srv.store.clone(),
                );
                measured = run_cell(c, n, max_time, move |i| {
                    let body = bodies[(base + i) as usize].clone();
                    let (url, client, store) = (url.clone(), client.clone(), store.clone());
                    async move {
                        if http_phase {
                            post(&client, &url, body).await
                        } else {
                            store
                                .create(
                                    &format!("/registry/pods/bench-raw/c{c}-{:07}", base + i),
                                    body,
                                )
                                .await?;
                            Ok(())
                        }
                    }
                })
                .await;
            }
            cells.push(measured);
        }
        let raw = match &raw_etcd {
            Some(etcd) => {
                let mut measured = Cell::default();
                for (n, base) in [(warm, ops), (ops, 0)] {
                    let (bodies, etcd) = (bodies.clone(), etcd.clone());
                    measured = run_cell(c, n, max_time, move |i| {
                        let body = bodies[(base + i) as usize].to_vec();
                        let mut kv = etcd.kv_client();
                        async move {
                            kv.put(format!("/bench-raw-put/c{c}/{:07}", base + i), body, None)
                                .await?;
                            Ok(())
                        }
                    })
                    .await;
                }
                Some(measured)
            }
            None => None,
        };
        let store_cell = cells.pop().unwrap_or_default();
        let http_cell = cells.pop().unwrap_or_default();
        let cpu = |c: &Cell| {
            let (me, etcd) = c.cpu_us_per_op();
            format!("CPU/op {me:.0} µs + etcd {etcd:.0} µs")
        };
        eprintln!(
            "  [{name}] c={c}: http {:.0}/s ({}), store {:.0}/s ({}), raw etcd {}",
            http_cell.ops_per_sec(),
            cpu(&http_cell),
            store_cell.ops_per_sec(),
            cpu(&store_cell),
            raw.as_ref().map_or("-".into(), |r| format!(
                "{:.0}/s ({})",
                r.ops_per_sec(),
                cpu(r)
            ))
        );
        res.throughput.push((c, http_cell, store_cell, raw));
    }

    // 2. steady 100 writes/s
    let rate: f64 = 100.0;
    let secs: u64 = env_or("CAPSTAN_BENCH_STEADY_SECS", 10);
    res.steady_target_rate = rate;
    if part("steady") {
        let url = format!("{}/api/v1/namespaces/bench-steady/pods", srv.url);
        let n = (rate as u64) * secs;
        let bodies: Vec<Bytes> = (0..n)
            .map(|i| pod_json("bench-steady", &format!("s-{i:07}"), i, None))
            .collect();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for body in bodies {
            tick.tick().await;
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                post(&client, &url, body).await.map(|()| t.elapsed())
            }));
        }
        let mut lat = Vec::new();
        let mut errors = 0;
        for t in tasks {
            match t.await? {
                Ok(d) => lat.push(d),
                Err(e) => {
                    errors += 1;
                    if errors < 3 {
                        eprintln!("  steady write failed: {e:#}");
                    }
                }
            }
        }
        res.steady = Cell {
            ops: lat.len() as u64,
            errors,
            elapsed: start.elapsed(),
            p50: pct(&mut lat, 0.5),
            p99: pct(&mut lat, 0.99),
            max: lat.last().copied().unwrap_or_default(),
            ..Cell::default()
        };
        eprintln!("  [{name}] steady: {:?}", res.steady);
    }

    // 3. watchers (on their own server process)
    if part("watch") {
        watchers(datastore, &client, &mut res).await?;
    }

    // 4. LIST 10k
    let list_n: usize = env_or("CAPSTAN_BENCH_LIST_N", 10_000);
    res.list_n = list_n;
    if part("list") {
        // Created through the API, so they are what the server stores.
        let bodies: Arc<Vec<Bytes>> = Arc::new(
            (0..list_n as u64)
                .map(|i| pod_json("bench-list", &format!("l-{i:07}"), i, None))
                .collect(),
        );
        let url = Arc::new(format!("{}/api/v1/namespaces/bench-list/pods", srv.url));
        let (b, u, cl) = (bodies.clone(), url.clone(), client.clone());
        let fill = run_cell(64, list_n as u64, Duration::from_secs(300), move |i| {
            let (body, url, client) = (b[i as usize].clone(), u.clone(), cl.clone());
            async move { post(&client, &url, body).await }
        })
        .await;
        if fill.ops != list_n as u64 {
            bail!("filling the list namespace: {fill:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (rss0, hwm0) = rss_kb();
        let mut lat = Vec::new();
        for i in 0..5 {
            let t = Instant::now();
            let body = get(&client, &url).await?;
            let d = t.elapsed();
            if i == 0 {
                res.list_first = d;
                res.list_bytes = body.len();
                let (rss1, hwm1) = rss_kb();
                res.list_rss_growth_kb = rss1 as i64 - rss0 as i64;
                res.list_hwm_growth_kb = hwm1 as i64 - hwm0 as i64;
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                let n = v["items"].as_array().map_or(0, Vec::len);
                if n != list_n {
                    bail!("LIST returned {n} items, want {list_n}");
                }
            }
            lat.push(d);
        }
        res.list_p50 = pct(&mut lat, 0.5);
        // The floor: the same prefix read from the store, interleaved with nothing else.
        let prefix = "/registry/pods/bench-list/";
        let mut lat = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let got = srv.store.list(prefix, ListOptions::default()).await?;
            lat.push(t.elapsed());
            if got.items.len() != list_n {
                bail!("Store::list returned {} items", got.items.len());
            }
        }
        res.list_store_p50 = pct(&mut lat, 0.5);
        if let Some(etcd) = &raw_etcd {
            let mut kv = etcd
                .kv_client()
                .max_decoding_message_size(i32::MAX as usize);
            let mut lat = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                let got = kv
                    .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
                    .await?;
                lat.push(t.elapsed());
                if got.kvs().len() != list_n {
                    bail!("raw etcd range returned {} items", got.kvs().len());
                }
            }
            res.list_raw_etcd_p50 = Some(pct(&mut lat, 0.5));
        }
        eprintln!(
            "  [{name}] LIST {list_n}: first {:?}, p50 {:?}, {} bytes, RSS +{} kB, HWM +{} kB; \
             Store::list p50 {:?}, raw etcd range p50 {:?}",
            res.list_first,
            res.list_p50,
            res.list_bytes,
            res.list_rss_growth_kb,
            res.list_hwm_growth_kb,
            res.list_store_p50,
            res.list_raw_etcd_p50,
        );
    }

    srv.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), srv.task).await;
    Ok(res)
}

/// A child process of this bench, killed if still running when dropped.
struct ChildProc(std::process::Child);

impl Drop for ChildProc {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The next line a child process writes on its stdout (bounded wait).
async fn child_line(
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    within: Duration,
) -> Result<(String, std::io::Lines<BufReader<std::process::ChildStdout>>)> {
    let read = tokio::task::spawn_blocking(move || {
        let mut lines = lines;
        let l = lines.next();
        (l, lines)
    });
    let (line, lines) = tokio::time::timeout(within, read)
        .await
        .context("child process: no answer in time")??;
    Ok((line.context("child process ended")??, lines))
}

/// The watch part, against a fresh API server process (this binary with
/// `CAPSTAN_BENCH_CHILD=server`, on the same datastore): its RSS grows only with what the
/// watchers hold, not hidden by heap that earlier parts freed (which a reused allocator
/// arena would hand out again). Baseline: after one warm-up watch (so the shared feed and the
/// runtime's lazily built state exist) and 1 s to settle; then 1000 watchers, 2 s to settle.
async fn watchers(datastore: &str, client: &HttpClient, res: &mut StoreResults) -> Result<()> {
    let n: usize = env_or("CAPSTAN_BENCH_WATCHERS", 1000);
    let secs: u64 = env_or("CAPSTAN_BENCH_WATCH_SECS", 10);
    let every = Duration::from_millis(env_or("CAPSTAN_BENCH_WATCH_EVERY_MS", 10));
    res.watchers = n;
    let exe = std::env::current_exe()?;
    let mut server = ChildProc(
        Command::new(&exe)
            .env("CAPSTAN_BENCH_CHILD", "server")
            .env("CAPSTAN_BENCH_DATASTORE", datastore)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning the server process")?,
    );
    let server_status = format!("/proc/{}/status", server.0.id());
    let stdout = server.0.stdout.take().context("server stdout")?;
    let (base, _server_lines) =
        child_line(BufReader::new(stdout).lines(), Duration::from_secs(60)).await?;
    let base = base.trim().to_string();
    let ns = serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-watch"}}))?;
    if let Err(e) = post(client, &format!("{base}/api/v1/namespaces"), ns.into()).await
        && !e.to_string().contains("409")
    {
        return Err(e);
    }
    let list: serde_json::Value = serde_json::from_slice(
        &get(
            client,
            &format!("{base}/api/v1/namespaces/bench-watch/pods"),
        )
        .await?,
    )?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .context("list resourceVersion")?
        .to_string();
    let watch_path = format!("{base}/api/v1/namespaces/bench-watch/pods?watch=true");
    // Warm-up: one watch that ends after 1 s.
    get(
        client,
        &format!("{watch_path}&resourceVersion={rv}&timeoutSeconds=1"),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss0, _) = rss_kb_of(&server_status);
    let mut child = ChildProc(
        Command::new(&exe)
            .env("CAPSTAN_BENCH_CHILD", "watchers")
            .env(
                "CAPSTAN_BENCH_WATCH_URL",
                format!(
                    "{watch_path}&resourceVersion={rv}&timeoutSeconds={}",
                    secs + 120
                ),
            )
            .env("CAPSTAN_BENCH_WATCHERS", n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning the watcher process")?,
    );
    let stdout = child.0.stdout.take().context("child stdout")?;
    let (first, lines) =
        child_line(BufReader::new(stdout).lines(), Duration::from_secs(120)).await?;
    if first.trim() != "ready" {
        bail!("watcher process: {first}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss1, _) = rss_kb_of(&server_status);
    res.watch_rss_kb = (rss0, rss1);
    res.watch_rss_per_watcher_b = (rss1 as f64 - rss0 as f64) * 1024.0 / n as f64;
    eprintln!(
        "  [{}] {n} watchers: server process VmRSS {rss0} kB -> {rss1} kB",
        res.name
    );

    let server_pid = server.0.id().to_string();
    let cpu0 = proc_cpu(&server_pid);
    let url = format!("{base}/api/v1/namespaces/bench-watch/pods");
    let writes = secs * 1000 / every.as_millis().max(1) as u64;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for i in 0..writes {
        tick.tick().await;
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let body = pod_json("bench-watch", &format!("w-{i:07}"), i, Some(unix_nanos()));
            let t = Instant::now();
            post(&client, &url, body).await.map(|()| t.elapsed())
        }));
    }
    // The write's own latency (send timestamp → 201), part of every delivery latency.
    let mut acks = Vec::new();
    for t in tasks {
        if let Ok(d) = t.await? {
            acks.push(d);
        }
    }
    let ok = acks.len() as u64;
    res.watch_write_p50 = pct(&mut acks, 0.5);
    res.watch_write_p99 = pct(&mut acks, 0.99);
    eprintln!(
        "  [{}] creates during the watch: p99.9 {} ms, max {} ms, {} of {ok} over 50 ms",
        res.name,
        ms(pct(&mut acks, 0.999)),
        ms(acks.last().copied().unwrap_or_default()),
        acks.iter()
            .filter(|d| **d > Duration::from_millis(50))
            .count(),
    );
    let mut stdin = child.0.stdin.take().context("child stdin")?;
    writeln!(stdin, "done {ok}")?;
    drop(stdin);
    let (summary, _) = child_line(lines, Duration::from_secs(120)).await?;
    let server_cpu = proc_cpu(&server_pid).saturating_sub(cpu0).as_secs_f64();
    let _ = child.0.wait();
    // The server exits when its stdin closes.
    drop(server.0.stdin.take());
    let _ = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        while matches!(server.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(server);
    })
    .await;
    let v: serde_json::Value =
        serde_json::from_str(&summary).with_context(|| format!("watcher summary: {summary}"))?;
    res.watch_events = v["events"].as_u64().unwrap_or(0);
    res.watch_bad = ["out_of_order", "other_lines", "broken"]
        .iter()
        .map(|k| v[k].as_u64().unwrap_or(1))
        .sum();
    res.watch_cpu_s = (server_cpu, v["cpu_s"].as_f64().unwrap_or(0.0));
    res.watch_expected = ok * n as u64;
    res.watch_p50 = Duration::from_micros(v["p50_us"].as_u64().unwrap_or(0));
    res.watch_p99 = Duration::from_micros(v["p99_us"].as_u64().unwrap_or(0));
    res.watch_max = Duration::from_micros(v["max_us"].as_u64().unwrap_or(0));
    res.watch_first_p99 = Duration::from_micros(v["first_p99_us"].as_u64().unwrap_or(0));
    res.watch_last_p99 = Duration::from_micros(v["last_p99_us"].as_u64().unwrap_or(0));
    eprintln!(
        "  [{}] watch: {summary}; server CPU {server_cpu:.1} s",
        res.name
    );
    watch_floor(n, ok, every, res).await
}

/// The floor of the watch part, measured right after it: the same fan-out (1000 connections,
/// the same event lines of the same size, one every `every`) from a bare tokio server (this
/// binary, `CAPSTAN_BENCH_CHILD=floor`: a broadcast channel and one `write_all` per
/// connection per event, no API server, no store) to the same watcher process. What this
/// machine, at this moment, does with no API server in the way.
async fn watch_floor(n: usize, events: u64, every: Duration, res: &mut StoreResults) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut floor = ChildProc(
        Command::new(&exe)
            .env("CAPSTAN_BENCH_CHILD", "floor")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning the floor server")?,
    );
    let floor_pid = floor.0.id().to_string();
    let stdout = floor.0.stdout.take().context("floor stdout")?;
    let (base, floor_lines) =
        child_line(BufReader::new(stdout).lines(), Duration::from_secs(30)).await?;
    let mut child = ChildProc(
        Command::new(&exe)
            .env("CAPSTAN_BENCH_CHILD", "watchers")
            .env("CAPSTAN_BENCH_WATCH_URL", format!("{}/watch", base.trim()))
            .env("CAPSTAN_BENCH_WATCHERS", n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning the watcher process")?,
    );
    let stdout = child.0.stdout.take().context("child stdout")?;
    let (first, lines) =
        child_line(BufReader::new(stdout).lines(), Duration::from_secs(120)).await?;
    if first.trim() != "ready" {
        bail!("watcher process: {first}");
    }
    let cpu0 = proc_cpu(&floor_pid);
    let mut floor_in = floor.0.stdin.take().context("floor stdin")?;
    writeln!(floor_in, "go {events} {}", every.as_micros())?;
    let (sent, _) =
        child_line(floor_lines, Duration::from_secs(60) + every * events as u32).await?;
    if sent.trim() != "sent" {
        bail!("floor server: {sent}");
    }
    let mut stdin = child.0.stdin.take().context("child stdin")?;
    writeln!(stdin, "done {events}")?;
    drop(stdin);
    let (summary, _) = child_line(lines, Duration::from_secs(120)).await?;
    let floor_cpu = proc_cpu(&floor_pid).saturating_sub(cpu0).as_secs_f64();
    let _ = child.0.wait();
    drop(floor_in);
    let v: serde_json::Value =
        serde_json::from_str(&summary).with_context(|| format!("floor summary: {summary}"))?;
    res.floor_events = v["events"].as_u64().unwrap_or(0);
    res.floor_p50 = Duration::from_micros(v["p50_us"].as_u64().unwrap_or(0));
    res.floor_p99 = Duration::from_micros(v["p99_us"].as_u64().unwrap_or(0));
    res.floor_max = Duration::from_micros(v["max_us"].as_u64().unwrap_or(0));
    res.floor_cpu_s = (floor_cpu, v["cpu_s"].as_f64().unwrap_or(0.0));
    eprintln!(
        "  [{}] watch floor: {summary}; floor server CPU {floor_cpu:.1} s",
        res.name
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// the child processes

/// `CAPSTAN_BENCH_CHILD=server`: an API server on `CAPSTAN_BENCH_DATASTORE`; prints its URL,
/// runs until stdin closes.
fn child_server() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let datastore = std::env::var("CAPSTAN_BENCH_DATASTORE").unwrap_or_default();
        let srv = start_server(&datastore).await?;
        println!("{}", srv.url);
        tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            std::io::stdin().read_line(&mut s)
        })
        .await??;
        srv.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), srv.task).await;
        Ok(())
    })
}

/// `CAPSTAN_BENCH_CHILD=floor`: the watch floor's server. Prints its URL; answers every
/// request with a chunked 200 and then the broadcast event lines; after "go <events>
/// <every µs>" on stdin sends that many ADDED lines (a bench pod with its send timestamp and
/// resourceVersion i+1), prints "sent", and runs until stdin closes.
fn child_floor() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("http://{}", listener.local_addr()?);
        let (tx, _) = tokio::sync::broadcast::channel::<Bytes>(8192);
        let subscribe = tx.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let mut rx = subscribe.subscribe();
                tokio::spawn(async move {
                    let mut head = vec![0u8; 4096];
                    let mut len = 0;
                    while memchr::memmem::find(&head[..len], b"\r\n\r\n").is_none() {
                        match tcp.read(&mut head[len..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => len += n,
                        }
                        if len == head.len() {
                            return;
                        }
                    }
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                    if tcp.write_all(ok).await.is_err() {
                        return;
                    }
                    while let Ok(chunk) = rx.recv().await {
                        if tcp.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let (go_tx, go) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::stdin().read_line(&mut s);
            let _ = go_tx.send(std::mem::take(&mut s));
            let _ = std::io::stdin().read_line(&mut s);
            std::process::exit(0);
        });
        let go = go.await.unwrap_or_default();
        let mut words = go.split_whitespace().skip(1).map(|w| w.parse::<u64>());
        let (Some(Ok(events)), Some(Ok(every_us))) = (words.next(), words.next()) else {
            bail!("floor: expected 'go <events> <every µs>', got {go:?}");
        };
        let mut tick = tokio::time::interval(Duration::from_micros(every_us));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0..events {
            tick.tick().await;
            let pod = pod_json("bench-watch", &format!("w-{i:07}"), i, Some(unix_nanos()));
            let mut object: serde_json::Value = serde_json::from_slice(&pod)?;
            object["metadata"]["resourceVersion"] = (i + 1).to_string().into();
            let mut line = serde_json::to_vec(&serde_json::json!({"type": "ADDED", "object": object}))?;
            line.push(b'\n');
            let mut chunk = format!("{:x}\r\n", line.len()).into_bytes();
            chunk.extend_from_slice(&line);
            chunk.extend_from_slice(b"\r\n");
            let _ = tx.send(Bytes::from(chunk));
        }
        println!("sent");
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// What the watchers saw.
#[derive(Default)]
struct Seen {
    /// (resourceVersion, send→arrival latency µs) of each event a watcher got: per event, the
    /// first and the last watcher's latency tell the pipeline before the fan-out from the
    /// fan-out itself.
    by_rv: Vec<(u64, u64)>,
    /// Events whose resourceVersion was not above the previous one's.
    out_of_order: u64,
    /// Lines that are not an ADDED event carrying the send timestamp.
    other_lines: u64,
    /// Watches that failed or ended early (protocol or I/O error, or the end of the stream).
    broken: u64,
}

/// The line searches of a watcher.
struct Needles {
    sent: memchr::memmem::Finder<'static>,
    rv: memchr::memmem::Finder<'static>,
    added: memchr::memmem::Finder<'static>,
}

/// The digits right after `finder`'s needle in `line`.
fn number_after(line: &[u8], finder: &memchr::memmem::Finder<'_>) -> Option<u64> {
    let at = finder.find(line)? + finder.needle().len();
    let rest = &line[at..];
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Where a chunked body decoder is.
enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk, with this many data bytes to go.
    Data(usize),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last (empty) chunk.
    Done,
}

/// One watch on a plain HTTP/1.1 connection, read into a fixed buffer: the response head is
/// checked (200, chunked), the chunked body decoded, and each line of the body handed to
/// `line` with the time its bytes were read. A plain client (not hyper's, whose read buffers
/// grow and are reallocated per connection) so the client costs as little as it can.
struct RawWatch {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` read and not yet decoded: `buf[start..end]`.
    start: usize,
    end: usize,
    state: Chunked,
    /// Decoded body bytes not yet cut into lines.
    body: Vec<u8>,
}

impl RawWatch {
    async fn open(addr: std::net::SocketAddr, host: &str, path: &str) -> Result<RawWatch> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut w = RawWatch {
            stream,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            state: Chunked::Size,
            body: Vec::with_capacity(16 * 1024),
        };
        let head_end = loop {
            if let Some(at) = memchr::memmem::find(&w.buf[..w.end], b"\r\n\r\n") {
                break at;
            }
            if w.end == w.buf.len() {
                bail!("response head too large");
            }
            let n = w.stream.read(&mut w.buf[w.end..]).await?;
            if n == 0 {
                bail!("connection closed before the response head");
            }
            w.end += n;
        };
        let head = String::from_utf8_lossy(&w.buf[..head_end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            bail!("watch response: {}", head.lines().next().unwrap_or(""));
        }
        if !head.contains("\r\ntransfer-encoding: chunked") {
            bail!("watch response is not chunked: {head}");
        }
        w.start = head_end + 4;
        Ok(w)
    }

    /// Reads what the server sent, calls `line` for each complete line; `false` at the end of
    /// the body.
    async fn read(&mut self, mut line: impl FnMut(&[u8], u64)) -> Result<bool> {
        use tokio::io::AsyncReadExt;
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            bail!("chunk-size line too long");
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            bail!("connection closed mid-watch");
        }
        let now = unix_nanos();
        self.end += n;
        loop {
            let avail = &self.buf[self.start..self.end];
            match self.state {
                Chunked::Size => {
                    let Some(eol) = memchr::memmem::find(avail, b"\r\n") else {
                        break;
                    };
                    let hex = avail[..eol].split(|b| *b == b';').next().unwrap_or(&[]);
                    let size = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
                        .context("bad chunk size")?;
                    self.start += eol + 2;
                    self.state = if size == 0 {
                        Chunked::Done
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if avail.is_empty() {
                        break;
                    }
                    let take = left.min(avail.len());
                    self.body.extend_from_slice(&avail[..take]);
                    self.start += take;
                    self.state = if take == left {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left - take)
                    };
                }
                Chunked::DataEnd => {
                    if avail.len() < 2 {
                        break;
                    }
                    if &avail[..2] != b"\r\n" {
                        bail!("chunk data not followed by CRLF");
                    }
                    self.start += 2;
                    self.state = Chunked::Size;
                }
                Chunked::Done => break,
            }
        }
        let mut from = 0;
        while let Some(nl) = memchr::memchr(b'\n', &self.body[from..]) {
            line(&self.body[from..from + nl], now);
            from += nl + 1;
        }
        self.body.drain(..from);
        Ok(!matches!(self.state, Chunked::Done))
    }
}

/// `CAPSTAN_BENCH_CHILD=watchers`: `CAPSTAN_BENCH_WATCHERS` watches of
/// `CAPSTAN_BENCH_WATCH_URL`; prints "ready" once all are open, then, after "done <writes>" on
/// stdin and every event arrived (or 30 s), a JSON summary. One thread; each line is cut and
/// searched with memchr (no JSON parsing), so the client keeps up with 1000 streams; every
/// event is still counted, and its resourceVersion checked to rise.
fn child_watchers() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let url: http::Uri = std::env::var("CAPSTAN_BENCH_WATCH_URL")?.parse()?;
        let n: usize = env_or("CAPSTAN_BENCH_WATCHERS", 1000);
        let host = url
            .authority()
            .context("watch URL without host")?
            .to_string();
        let path = url
            .path_and_query()
            .context("watch URL without path")?
            .to_string();
        let addr = tokio::net::lookup_host(&host)
            .await?
            .next()
            .context("watch host")?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let events = Arc::new(AtomicU64::new(0));
        let needles = Arc::new(Needles {
            sent: memchr::memmem::Finder::new(format!("\"{SENT_ANNOTATION}\":\"").as_bytes())
                .into_owned(),
            rv: memchr::memmem::Finder::new(b"\"resourceVersion\":\"").into_owned(),
            added: memchr::memmem::Finder::new(b"\"type\":\"ADDED\"").into_owned(),
        });
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<()>>(n);
        let sem = Arc::new(tokio::sync::Semaphore::new(32));
        for _ in 0..n {
            let (host, path, seen, events, needles, ready_tx, sem) = (
                host.clone(),
                path.clone(),
                seen.clone(),
                events.clone(),
                needles.clone(),
                ready_tx.clone(),
                sem.clone(),
            );
            tokio::spawn(async move {
                let permit = sem.acquire_owned().await;
                let mut w = match RawWatch::open(addr, &host, &path).await {
                    Ok(w) => w,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e)).await;
                        return;
                    }
                };
                drop(permit);
                let _ = ready_tx.send(Ok(())).await;
                let mut mine = Seen::default();
                let mut last_rv = 0u64;
                loop {
                    let mut got = 0;
                    let r = w
                        .read(|line, now| {
                            let (Some(t), true) = (
                                number_after(line, &needles.sent),
                                needles.added.find(line).is_some(),
                            ) else {
                                mine.other_lines += 1;
                                return;
                            };
                            let rv = number_after(line, &needles.rv).unwrap_or(0);
                            if rv <= last_rv {
                                mine.out_of_order += 1;
                            }
                            last_rv = rv;
                            mine.by_rv.push((rv, now.saturating_sub(t) / 1000));
                            got += 1;
                        })
                        .await;
                    if let Ok(mut s) = seen.lock() {
                        s.by_rv.append(&mut mine.by_rv);
                        s.out_of_order += std::mem::take(&mut mine.out_of_order);
                        s.other_lines += std::mem::take(&mut mine.other_lines);
                        if !matches!(r, Ok(true)) {
                            s.broken += 1;
                        }
                    }
                    events.fetch_add(got, Ordering::Relaxed);
                    match r {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            eprintln!("  watcher: {e:#}");
                            break;
                        }
                    }
                }
            });
        }
        drop(ready_tx);
        for _ in 0..n {
            match ready_rx.recv().await {
                Some(Ok(())) => {}
                Some(Err(e)) => bail!("a watch failed to start: {e:#}"),
                None => bail!("watch tasks ended"),
            }
        }
        println!("ready");
        let me = std::process::id().to_string();
        let cpu_ready = proc_cpu(&me);
        // Wait for "done <writes>" from the parent, then for every event (bounded).
        let (tx, done) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::stdin().read_line(&mut s);
            let _ = tx.send(s);
        });
        let line = done.await.unwrap_or_default();
        let writes: u64 = line
            .trim()
            .strip_prefix("done ")
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        let want = writes * n as u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while events.load(Ordering::Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (mut by_rv, out_of_order, other_lines, broken) = seen
            .lock()
            .map(|s| (s.by_rv.clone(), s.out_of_order, s.other_lines, s.broken))
            .unwrap_or_default();
        let mut all: Vec<u64> = by_rv.iter().map(|(_, lat)| *lat).collect();
        // Per event: the first and the last watcher's latency.
        by_rv.sort_unstable();
        let (mut first, mut last) = (Vec::new(), Vec::new());
        for group in by_rv.chunk_by(|a, b| a.0 == b.0) {
            first.push(group[0].1);
            last.push(group[group.len() - 1].1);
        }
        for v in [&mut all, &mut first, &mut last] {
            v.sort_unstable();
        }
        let q = |v: &[u64], q: f64| {
            v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        println!(
            "{}",
            serde_json::json!({
                "events": events.load(Ordering::Relaxed),
                "out_of_order": out_of_order, "other_lines": other_lines, "broken": broken,
                "p50_us": q(&all, 0.5), "p99_us": q(&all, 0.99), "max_us": all.last().copied().unwrap_or(0),
                "first_p50_us": q(&first, 0.5), "first_p99_us": q(&first, 0.99),
                "first_max_us": first.last().copied().unwrap_or(0),
                "last_p50_us": q(&last, 0.5), "last_p99_us": q(&last, 0.99),
                "cpu_s": proc_cpu(&me).saturating_sub(cpu_ready).as_secs_f64(),
            })
        );
        std::process::exit(0)
    })
}

// ---------------------------------------------------------------------------------------------

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**NOT met**" }
}

fn report(all: &[StoreResults]) {
    println!("\n## Throughput: create pod (2-4 KiB) through the HTTP API vs the raw store write\n");
    println!(
        "| store | c | HTTP creates/s | HTTP p50 ms | HTTP p99 ms | raw Store::create/s | raw p99 ms | HTTP ÷ raw store | raw etcd put/s | HTTP ÷ raw etcd put |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in all {
        for (c, h, s, e) in &r.throughput {
            println!(
                "| {} | {c} | {:.0}{} | {} | {} | {:.0} | {} | {:.2}× | {} | {} |",
                r.name,
                h.ops_per_sec(),
                if h.errors > 0 {
                    format!(" ({} errors)", h.errors)
                } else {
                    String::new()
                },
                ms(h.p50),
                ms(h.p99),
                s.ops_per_sec(),
                ms(s.p99),
                h.ops_per_sec() / s.ops_per_sec().max(1e-9),
                e.as_ref()
                    .map_or("–".into(), |e| format!("{:.0}", e.ops_per_sec())),
                e.as_ref().map_or("–".into(), |e| format!(
                    "{:.2}×",
                    h.ops_per_sec() / e.ops_per_sec().max(1e-9)
                )),
            );
        }
    }
    println!(
        "\nCPU per operation, in µs (this process, i.e. server and client, + the etcd process):\n"
    );
    println!("| store | c | HTTP create | raw Store::create | raw etcd put |");
    println!("|---|---:|---:|---:|---:|");
    let cpu = |c: &Cell| {
        let (me, etcd) = c.cpu_us_per_op();
        format!("{me:.0} + {etcd:.0}")
    };
    for r in all {
        for (c, h, s, e) in &r.throughput {
            println!(
                "| {} | {c} | {} | {} | {} |",
                r.name,
                cpu(h),
                cpu(s),
                e.as_ref().map_or("–".into(), cpu)
            );
        }
    }
    println!("\n## Targets\n");
    println!("| store | measure | figure | target | verdict |");
    println!("|---|---|---:|---|---|");
    for r in all {
        for (c, h, _, e) in &r.throughput {
            if let Some(e) = e {
                let ratio = h.ops_per_sec() / e.ops_per_sec().max(1e-9);
                println!(
                    "| {} | create throughput ÷ raw etcd put, c={c} | {ratio:.2}× | ≥ 0.5× | {} |",
                    r.name,
                    verdict(ratio >= 0.5)
                );
            }
        }
        if part("steady") {
            println!(
                "| {} | p99 single create at a steady {:.0} writes/s ({} ok, {} errors; p50 {} ms, max {} ms) | {} ms | ≤ 50 ms | {} |",
                r.name,
                r.steady_target_rate,
                r.steady.ops,
                r.steady.errors,
                ms(r.steady.p50),
                ms(r.steady.max),
                ms(r.steady.p99),
                verdict(r.steady.p99 <= Duration::from_millis(50) && r.steady.errors == 0)
            );
        }
        if part("list") {
            println!(
                "| {} | LIST {} pods ({:.1} MB), first / p50 of 5 | {} / {} ms | ≤ 200 ms | {} |",
                r.name,
                r.list_n,
                r.list_bytes as f64 / 1e6,
                ms(r.list_first),
                ms(r.list_p50),
                verdict(r.list_p50 <= Duration::from_millis(200))
            );
            let ratio = |floor: Duration| r.list_p50.as_secs_f64() / floor.as_secs_f64().max(1e-9);
            println!(
                "| {} | LIST {} p50 ÷ floor: Store::list p50 {} ms{} | {:.2}×{} | – | – |",
                r.name,
                r.list_n,
                ms(r.list_store_p50),
                r.list_raw_etcd_p50.map_or(String::new(), |e| format!(
                    "; raw etcd range get p50 {} ms",
                    ms(e)
                )),
                ratio(r.list_store_p50),
                r.list_raw_etcd_p50
                    .map_or(String::new(), |e| format!(" ({:.2}× raw etcd)", ratio(e))),
            );
            println!(
                "| {} | LIST {} RSS growth (VmRSS / VmHWM) | +{:.1} / +{:.1} MB | – | – |",
                r.name,
                r.list_n,
                r.list_rss_growth_kb as f64 / 1024.0,
                r.list_hwm_growth_kb as f64 / 1024.0,
            );
        }
        if part("watch") {
            println!(
                "| {} | {} watchers, p99 delivery (p50, max; CPU s server / watchers; the creates' own p50 / p99: {} / {} ms; per event the first / last watcher, p99: {} / {} ms) | {} ms ({} / {}; {:.1} / {:.1}) | ≤ 50 ms | {} |",
                r.name,
                r.watchers,
                ms(r.watch_write_p50),
                ms(r.watch_write_p99),
                ms(r.watch_first_p99),
                ms(r.watch_last_p99),
                ms(r.watch_p99),
                ms(r.watch_p50),
                ms(r.watch_max),
                r.watch_cpu_s.0,
                r.watch_cpu_s.1,
                verdict(
                    r.watch_p99 <= Duration::from_millis(50)
                        && r.watch_events == r.watch_expected
                        && r.watch_bad == 0
                )
            );
            println!(
                "| {} | floor: the same fan-out from a bare tokio server, right after ({} events), p99 (p50, max; CPU s floor / watchers) | {} ms ({} / {}; {:.1} / {:.1}) | – | API server ÷ floor p99: {:.1}× |",
                r.name,
                r.floor_events,
                ms(r.floor_p99),
                ms(r.floor_p50),
                ms(r.floor_max),
                r.floor_cpu_s.0,
                r.floor_cpu_s.1,
                r.watch_p99.as_secs_f64() / r.floor_p99.as_secs_f64().max(1e-9),
            );
            println!(
                "| {} | watch events delivered (out of order or unexpected lines: {}) | {} / {} | all | {} |",
                r.name,
                r.watch_bad,
                r.watch_events,
                r.watch_expected,
                verdict(r.watch_events == r.watch_expected && r.watch_bad == 0)
            );
            println!(
                "| {} | RSS per idle watcher (fresh server process: VmRSS {:.1} → {:.1} MB) | {:.1} kB | ≤ 10 kB | {} |",
                r.name,
                r.watch_rss_kb.0 as f64 / 1024.0,
                r.watch_rss_kb.1 as f64 / 1024.0,
                r.watch_rss_per_watcher_b / 1024.0,
                verdict(r.watch_rss_per_watcher_b <= 10.0 * 1024.0)
            );
        }
    }
    println!();
}

fn main() -> Result<()> {
    match std::env::var("CAPSTAN_BENCH_CHILD").as_deref() {
        Ok("watchers") => return child_watchers(),
        Ok("server") => return child_server(),
        Ok("floor") => return child_floor(),
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stores = env_list("CAPSTAN_BENCH_STORES", "sqlite,etcd");
        println!(
            "# apiserver benchmark\n\n{} cores; server in-process on plain HTTP (127.0.0.1)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let mut all = Vec::new();
        for s in &stores {
            match s.as_str() {
                "sqlite" => {
                    eprintln!("SQLite:");
                    all.push(bench_store("SQLite", "", None).await?);
                }
                "etcd" => {
                    eprintln!("etcd:");
                    let cluster =
                        tokio::task::spawn_blocking(|| capstan_testkit::EtcdCluster::start(1))
                            .await?
                            .context("starting etcd")?;
                    let eps = cluster.endpoints();
                    let hostports: Vec<String> = eps
                        .iter()
                        .map(|e| e.trim_start_matches("http://").to_string())
                        .collect();
                    let r = bench_store(
                        "etcd",
                        &format!("etcd://{}", hostports.join(",")),
                        Some(eps),
                    )
                    .await?;
                    all.push(r);
                    drop(cluster);
                }
                other => bail!("unknown store {other:?}"),
            }
        }
        report(&all);
        Ok(())
    })
}
