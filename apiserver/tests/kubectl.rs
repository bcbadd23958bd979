//! The real kubectl against the real `apiserver` binary.
//!
//! Each test starts the binary as a child process (HTTPS on a port from the OS, its own data
//! dir, SQLite), then drives one stock kubectl release through the scenarios below with only
//! `--kubeconfig <data-dir>/kubeconfig.yaml --cache-dir <fresh dir>`, asserting on what kubectl
//! prints, the way a user would see it. The manifests come from `manifests/` at the repository
//! root, which doubles as documentation.
//!
//! The whole scenario list runs once per release: 1.33 (the newest, what the dispatcher picks
//! for our server), 1.29 (the oldest that needs no protobuf OpenAPI v2), 1.28 and 1.27 (which read
//! `/openapi/v2` as protobuf for create/apply validation, client-side apply and explain, and
//! ask for aggregated discovery v2beta1). A run takes about 20 s per release here, so there is
//! no need for a reduced subset on the older ones. `CAPSTAN_TEST_APISERVER_BIN` points the
//! suite at another build of the server (see [`apiserver_bin`]).
//!
//! Every scenario runs even when an earlier one failed; the test fails at the end listing every
//! failed scenario with the command, its exit status and its output. A missing kubectl binary is
//! a failure, not a skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";
/// Longest any single kubectl command may take before it counts as hung.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("manifests")
}

fn manifest(name: &str) -> String {
    manifests().join(name).display().to_string()
}

// ---------------------------------------------------------------------------------------
// The server under test

/// The binary under test: `CAPSTAN_TEST_APISERVER_BIN` when set (a copy of the binary that
/// another build into a shared target dir cannot overwrite mid-run), else Cargo's.
fn apiserver_bin() -> PathBuf {
    std::env::var_os("CAPSTAN_TEST_APISERVER_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_apiserver")),
        PathBuf::from,
    )
}

/// The `apiserver` binary running in a temp data dir; killed on drop.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Server {
    fn start() -> Result<Server> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let log = File::create(dir.path().join("server.log"))?;
        let child = Command::new(apiserver_bin())
            .arg("--data-dir")
            .arg(&data)
            .args(["--https-port", "0", "--bind-address", "127.0.0.1"])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting apiserver")?;
        let mut server = Server {
            child,
            dir,
            url: String::new(),
        };
        server.url = server.wait_ready()?;
        Ok(server)
    }

    /// Wait for the ready line and return the URL it reports.
    fn wait_ready(&mut self) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains("capstan apiserver ready")) {
                let url = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("url="))
                    .context("ready line without url=")?;
                ensure!(
                    self.kubeconfig().exists(),
                    "ready, but {} is missing",
                    self.kubeconfig().display()
                );
                return Ok(url.to_string());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("apiserver exited with {status} before it was ready:\n{log}");
            }
            if Instant::now() > deadline {
                bail!("apiserver was not ready within 60s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("data").join("kubeconfig.yaml")
    }

    /// The server's log so far, without terminal colours.
    fn log(&self) -> String {
        let raw = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        strip_ansi(&raw)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// kubectl

/// What one kubectl run printed.
#[derive(Debug)]
struct Out {
    cmd: String,
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Fail unless kubectl exited 0.
    fn success(self) -> Result<Out> {
        ensure!(self.ok(), "command failed:\n{self}");
        Ok(self)
    }

    /// Fail unless kubectl exited non-zero.
    fn failure(self) -> Result<Out> {
        ensure!(
            self.status.is_some() && !self.ok(),
            "command should have failed:\n{self}"
        );
        Ok(self)
    }

    fn stdout_has(&self, needle: &str) -> Result<()> {
        ensure!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{self}"
        );
        Ok(())
    }

    fn stderr_has(&self, needle: &str) -> Result<()> {
        ensure!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{self}"
        );
        Ok(())
    }

    /// stdout, trimmed, must be exactly `want`.
    fn stdout_is(&self, want: &str) -> Result<()> {
        ensure!(
            self.stdout.trim() == want,
            "stdout should be {want:?}:\n{self}"
        );
        Ok(())
    }

    /// The table kubectl printed: rows of whitespace-separated cells, the header first.
    fn table(&self) -> Vec<Vec<String>> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    }

    /// The table must have exactly this header and a row starting with `row_prefix`.
    fn table_has(&self, header: &str, row_prefix: &[&str]) -> Result<()> {
        let table = self.table();
        let want: Vec<&str> = header.split_whitespace().collect();
        ensure!(
            table.first().is_some_and(|h| h == &want),
            "header should be {header:?}:\n{self}"
        );
        ensure!(
            table
                .iter()
                .skip(1)
                .any(|r| r.len() >= row_prefix.len() && r[..row_prefix.len()] == *row_prefix),
            "no row starting with {row_prefix:?}:\n{self}"
        );
        Ok(())
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "killed after timeout".into(),
        };
        write!(
            f,
            "  $ {}\n  ({status})\n  --- stdout\n{}\n  --- stderr\n{}",
            self.cmd,
            indent(&self.stdout),
            indent(&self.stderr)
        )
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// One kubectl release pointed at the server, with its own discovery cache.
struct Kubectl {
    version: String,
    bin: PathBuf,
    kubeconfig: PathBuf,
    work: tempfile::TempDir,
    runs: std::cell::Cell<u32>,
}

/// A kubectl still running (a watch, a wait); killed on drop.
struct Running {
    child: Child,
    cmd: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Wait until stdout satisfies `pred` (or the process ends or `timeout` passes).
    fn wait_stdout(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.stdout();
            if pred(&out) {
                return Ok(out);
            }
            if self.child.try_wait()?.is_some() || Instant::now() > deadline {
                let out = self.finish(Duration::ZERO);
                bail!("output never showed what was expected:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait up to `timeout` for the process to end (killing it after), and collect its output.
    fn finish(&mut self, timeout: Duration) -> Out {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        Out {
            cmd: self.cmd.clone(),
            status,
            stdout: self.stdout(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Kubectl {
    fn new(version: &str, server: &Server) -> Result<Kubectl> {
        let bin = Path::new(KUBECTL_DIR).join(format!("kubectl.{version}"));
        ensure!(
            bin.is_file(),
            "{} is missing: these tests need the real kubectl {version}",
            bin.display()
        );
        Ok(Kubectl {
            version: version.to_string(),
            bin,
            kubeconfig: server.kubeconfig(),
            work: tempfile::tempdir()?,
            runs: std::cell::Cell::new(0),
        })
    }

    fn cache_dir(&self) -> PathBuf {
        self.work.path().join("cache")
    }

    /// A file in this kubectl's scratch dir.
    fn file(&self, name: &str, content: &str) -> Result<String> {
        let p = self.work.path().join(name);
        std::fs::write(&p, content)?;
        Ok(p.display().to_string())
    }

    fn spawn(&self, args: &[&str]) -> Result<Running> {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let stdout = self.work.path().join(format!("{n}.out"));
        let stderr = self.work.path().join(format!("{n}.err"));
        let child = Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache_dir())
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.work.path())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout)?)
            .stderr(File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("running {}", self.bin.display()))?;
        Ok(Running {
            child,
            cmd: format!("kubectl {}", args.join(" ")),
            stdout,
            stderr,
        })
    }

    /// Run to completion (killed after [`COMMAND_TIMEOUT`]).
    fn run(&self, args: &[&str]) -> Result<Out> {
        Ok(self.spawn(args)?.finish(COMMAND_TIMEOUT))
    }

    /// Run and require exit status 0.
    fn ok(&self, args: &[&str]) -> Result<Out> {
        self.run(args)?.success()
    }

    /// Run and require a non-zero exit status.
    fn fails(&self, args: &[&str]) -> Result<Out> {
        self.run(args)?.failure()
    }

    /// `get <what> -o jsonpath=<path>`, trimmed.
    fn jsonpath(&self, what: &[&str], path: &str) -> Result<String> {
        let arg = format!("jsonpath={path}");
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", &arg]);
        Ok(self.ok(&args)?.stdout.trim().to_string())
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios: each gets a fresh view of the same server, in this order.

type Scenario = fn(&Kubectl) -> Result<()>;

const SCENARIOS: &[(&str, Scenario)] = &[
    ("discovery and namespaces", get_namespaces),
    ("create -f", create),
    ("create -f of an existing object", create_existing),
    ("create <generator> (typed clients)", create_generators),
    ("get: table output", get_tables),
    ("get -o wide", get_wide),
    ("get -o yaml / -o json / -o jsonpath", get_formats),
    ("get -w receives an event", get_watch),
    ("describe pod / deployment", describe),
    ("apply -f twice, then a change", apply_client_side),
    ("apply --server-side", apply_server_side),
    ("replace with a stale resourceVersion", replace_stale),
    ("label / annotate (--overwrite)", label_annotate),
    ("scale deployment", scale),
    ("wait --for=condition=Available", wait_condition),
    ("get all", get_all),
    ("api-resources", api_resources),
    ("explain deployment.spec.strategy", explain),
    ("error output for missing objects", not_found),
    ("logs / exec of a pod with no node", logs_unscheduled),
    ("delete --wait", delete_wait),
    (
        "delete --wait on an object held by a finalizer",
        delete_finalizer,
    ),
    ("delete namespace: Terminating", delete_namespace),
];

fn run_all(version: &str) {
    let started = Instant::now();
    let server = match Server::start() {
        Ok(s) => s,
        Err(e) => panic!("{e:#}"),
    };
    let kubectl = match Kubectl::new(version, &server) {
        Ok(k) => k,
        Err(e) => panic!("{e:#}"),
    };
    let mut failures = String::new();
    let mut passed = Vec::new();
    for (name, scenario) in SCENARIOS {
        let t = Instant::now();
        match scenario(&kubectl) {
            Ok(()) => passed.push(*name),
            Err(e) => {
                let _ = writeln!(failures, "\n=== FAILED: {name}\n{e:#}");
            }
        }
        eprintln!("kubectl {version}: {name}: {:?}", t.elapsed());
    }
    eprintln!(
        "kubectl {version}: {} of {} scenarios passed in {:?} (server {})",
        passed.len(),
        SCENARIOS.len(),
        started.elapsed(),
        server.url
    );
    if !failures.is_empty() {
        panic!(
            "kubectl {version}: {} scenario(s) failed:{failures}\n=== server log (tail)\n{}",
            SCENARIOS.len() - passed.len(),
            tail(&server.log(), 40)
        );
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

macro_rules! kubectl_suite {
    ($($test:ident => $version:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            run_all($version);
        }
    )*};
}

kubectl_suite! {
    kubectl_1_33 => "1.33",
    kubectl_1_29 => "1.29",
    kubectl_1_28 => "1.28",
    kubectl_1_27 => "1.27",
}

fn get_namespaces(k: &Kubectl) -> Result<()> {
    let out = k.ok(&["get", "ns"])?;
    out.table_has("NAME STATUS AGE", &["default", "Active"])?;
    out.table_has("NAME STATUS AGE", &["kube-system", "Active"])?;
    Ok(())
}

fn create(k: &Kubectl) -> Result<()> {
    for (file, printed) in [
        ("namespace.yaml", "namespace/scratch created"),
        ("pod.yaml", "pod/nginx created"),
        (
            "legacy-deployment-v1beta1.yaml",
            "deployment.apps/legacy created",
        ),
    ] {
        k.ok(&["create", "-f", &manifest(file)])?
            .stdout_is(printed)?;
    }
    // The apps/v1beta1 Deployment had no selector: the server defaulted it from the template.
    let sel = k.jsonpath(&["deploy", "legacy"], "{.spec.selector.matchLabels.app}")?;
    ensure!(sel == "legacy", "defaulted selector: {sel:?}");
    // Read back in the version it was written in.
    let av = k.jsonpath(&["deployments.v1beta1.apps", "legacy"], "{.apiVersion}")?;
    ensure!(av == "apps/v1beta1", "apiVersion read back as {av:?}");
    Ok(())
}

fn create_existing(k: &Kubectl) -> Result<()> {
    let file = manifest("pod.yaml");
    let out = k.fails(&["create", "-f", &file])?;
    out.stderr_has(&format!(
        "Error from server (AlreadyExists): error when creating \"{file}\": pods \"nginx\" already exists"
    ))
}

/// `kubectl create namespace|configmap|deployment|...` go through client-go's typed clients.
/// kubectl 1.33 sends their bodies as protobuf (`Content-Type: application/vnd.kubernetes.protobuf`,
/// no JSON fallback); earlier releases send JSON. Both must create the same objects.
fn create_generators(k: &Kubectl) -> Result<()> {
    k.ok(&["create", "namespace", "gen"])?
        .stdout_is("namespace/gen created")?;
    k.ok(&[
        "create",
        "configmap",
        "gen",
        "-n",
        "gen",
        "--from-literal=a=b",
    ])?
    .stdout_is("configmap/gen created")?;
    k.ok(&[
        "create",
        "secret",
        "generic",
        "gen",
        "-n",
        "gen",
        "--from-literal=a=b",
    ])?
    .stdout_is("secret/gen created")?;
    k.ok(&["create", "serviceaccount", "gen", "-n", "gen"])?
        .stdout_is("serviceaccount/gen created")?;
    k.ok(&[
        "create",
        "deployment",
        "gen",
        "-n",
        "gen",
        "--image=nginx:1.25",
    ])?
    .stdout_is("deployment.apps/gen created")?;
    k.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "gen",
        "--image=nginx:1.27",
        "--port=80",
        "--replicas=3",
    ])?
    .stdout_is("deployment.apps/web created")?;
    k.ok(&[
        "create",
        "service",
        "clusterip",
        "gen",
        "-n",
        "gen",
        "--tcp=80:8080",
    ])?
    .stdout_is("service/gen created")?;
    k.ok(&[
        "create",
        "service",
        "nodeport",
        "web",
        "-n",
        "gen",
        "--tcp=443:https",
    ])?
    .stdout_is("service/web created")?;

    let got = k.jsonpath(&["configmap", "gen", "-n", "gen"], "{.data.a}")?;
    ensure!(got == "b", "configmap data: {got:?}");
    let got = k.jsonpath(&["secret", "gen", "-n", "gen"], "{.data.a}")?;
    ensure!(got == "Yg==", "secret data: {got:?}");
    let got = k.jsonpath(&["secret", "gen", "-n", "gen"], "{.type}")?;
    ensure!(got == "Opaque", "secret type: {got:?}");
    let got = k.jsonpath(&["serviceaccount", "gen", "-n", "gen"], "{.metadata.name}")?;
    ensure!(got == "gen", "serviceaccount: {got:?}");

    let dep = get_json(k, &["deployment", "gen", "-n", "gen"])?;
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    ensure!(
        c["image"] == "nginx:1.25" && c["name"] == "nginx",
        "deployment container: {c}"
    );
    ensure!(dep["spec"]["replicas"] == 1, "replicas: {}", dep["spec"]);
    ensure!(
        dep["spec"]["selector"]["matchLabels"]["app"] == "gen"
            && dep["spec"]["template"]["metadata"]["labels"]["app"] == "gen",
        "selector/labels: {}",
        dep["spec"]
    );
    let dep = get_json(k, &["deployment", "web", "-n", "gen"])?;
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    ensure!(c["image"] == "nginx:1.27", "image: {c}");
    ensure!(c["ports"][0]["containerPort"] == 80, "ports: {c}");
    ensure!(dep["spec"]["replicas"] == 3, "replicas: {}", dep["spec"]);

    let svc = get_json(k, &["service", "gen", "-n", "gen"])?;
    let port = &svc["spec"]["ports"][0];
    ensure!(
        port["port"] == 80 && port["targetPort"] == 8080 && port["protocol"] == "TCP",
        "service port: {port}"
    );
    ensure!(
        svc["spec"]["type"] == "ClusterIP" && svc["spec"]["selector"]["app"] == "gen",
        "service spec: {}",
        svc["spec"]
    );
    let svc = get_json(k, &["service", "web", "-n", "gen"])?;
    let port = &svc["spec"]["ports"][0];
    ensure!(
        port["port"] == 443 && port["targetPort"] == "https" && port["nodePort"].is_u64(),
        "nodeport service port: {port}"
    );
    ensure!(svc["spec"]["type"] == "NodePort", "type: {}", svc["spec"]);
    Ok(())
}

/// `get <what> -o json`, parsed.
fn get_json(k: &Kubectl, what: &[&str]) -> Result<Value> {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json"]);
    let out = k.ok(&args)?;
    serde_json::from_str(&out.stdout)
        .with_context(|| format!("kubectl {}: parsing {}", k.version, out.stdout))
}

fn get_tables(k: &Kubectl) -> Result<()> {
    k.ok(&["get", "pods"])?.table_has(
        "NAME READY STATUS RESTARTS AGE",
        &["nginx", "0/1", "Pending", "0"],
    )?;
    k.ok(&["get", "deploy"])?.table_has(
        "NAME READY UP-TO-DATE AVAILABLE AGE",
        &["legacy", "0/1", "0", "0"],
    )?;
    k.ok(&["get", "deployment", "legacy"])?.table_has(
        "NAME READY UP-TO-DATE AVAILABLE AGE",
        &["legacy", "0/1", "0", "0"],
    )?;
    // Upstream's pods/nginx form prints kind prefixes only with several kinds.
    let out = k.ok(&["get", "po/nginx", "deploy/legacy"])?;
    out.stdout_has("pod/nginx")?;
    out.stdout_has("deployment.apps/legacy")?;
    k.ok(&["get", "ns", "scratch"])?
        .table_has("NAME STATUS AGE", &["scratch", "Active"])?;
    Ok(())
}

fn get_wide(k: &Kubectl) -> Result<()> {
    k.ok(&["get", "pods", "-o", "wide"])?.table_has(
        "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES",
        &["nginx", "0/1", "Pending", "0"],
    )?;
    let out = k.ok(&["get", "deploy", "legacy", "-o", "wide"])?;
    out.table_has(
        "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR",
        &["legacy", "0/1", "0", "0"],
    )?;
    let row = &out.table()[1];
    ensure!(
        row[row.len() - 3..] == ["app", "busybox:1.36", "app=legacy"],
        "wide columns: {row:?}\n{out}"
    );
    Ok(())
}

fn get_formats(k: &Kubectl) -> Result<()> {
    let yaml = k.ok(&["get", "deploy", "legacy", "-o", "yaml"])?;
    for needle in [
        "apiVersion: apps/v1\n",
        "kind: Deployment\n",
        "  name: legacy\n",
        "  namespace: default\n",
        "  resourceVersion: \"",
        "  uid: ",
        "  replicas: 1\n",
    ] {
        yaml.stdout_has(needle)?;
    }
    let json = k.ok(&["get", "pod", "nginx", "-o", "json"])?;
    let v: Value = serde_json::from_str(&json.stdout).with_context(|| format!("{json}"))?;
    ensure!(v["kind"] == "Pod" && v["apiVersion"] == "v1", "{json}");
    ensure!(v["metadata"]["name"] == "nginx", "{json}");
    ensure!(
        v["spec"]["containers"][0]["image"] == "nginx:1.25",
        "{json}"
    );
    let list = k.ok(&["get", "pods", "-o", "json"])?;
    let v: Value = serde_json::from_str(&list.stdout).with_context(|| format!("{list}"))?;
    ensure!(
        v["kind"] == "List" && v["items"][0]["kind"] == "Pod",
        "{list}"
    );
    k.ok(&["get", "deploy", "legacy", "-o", "jsonpath={.spec.replicas}"])?
        .stdout_is("1")?;
    k.ok(&["get", "pods", "-o", "name"])?
        .stdout_is("pod/nginx")?;
    Ok(())
}

fn get_watch(k: &Kubectl) -> Result<()> {
    let mut watch = k.spawn(&[
        "get",
        "deploy",
        "legacy",
        "-w",
        "--output-watch-events",
        "--request-timeout=30s",
    ])?;
    // The initial state arrives as an ADDED row.
    watch.wait_stdout(Duration::from_secs(20), |s| {
        s.lines()
            .any(|l| l.starts_with("ADDED") && l.contains("legacy"))
    })?;
    k.ok(&["scale", "deploy", "legacy", "--replicas=4"])?;
    let out = watch.wait_stdout(Duration::from_secs(20), |s| {
        s.lines()
            .any(|l| l.starts_with("MODIFIED") && l.contains("legacy") && l.contains("0/4"))
    })?;
    let header = out.lines().next().unwrap_or("");
    ensure!(
        header.split_whitespace().collect::<Vec<_>>()
            == ["EVENT", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "watch header: {out}"
    );
    drop(watch);

    // A plain -w without events: the list, then one row per change.
    let mut watch = k.spawn(&["get", "pods", "-w", "--request-timeout=30s"])?;
    watch.wait_stdout(Duration::from_secs(20), |s| s.contains("nginx"))?;
    k.ok(&["label", "pod", "nginx", "watched=yes"])?;
    let out = watch.wait_stdout(Duration::from_secs(20), |s| {
        s.lines().filter(|l| l.starts_with("nginx")).count() >= 2
    })?;
    ensure!(
        out.lines().next().unwrap_or("").starts_with("NAME"),
        "pods -w: {out}"
    );
    Ok(())
}

fn describe(k: &Kubectl) -> Result<()> {
    let pod = k.ok(&["describe", "pod", "nginx"])?;
    for needle in [
        "Name:",
        "Namespace:        default",
        "Labels:",
        "app=nginx",
        "Status:           Pending",
        "Containers:\n  nginx:\n    Image:",
        "nginx:1.25",
        "QoS Class:",
        "BestEffort",
        "Events:",
    ] {
        pod.stdout_has(needle)?;
    }
    let dep = k.ok(&["describe", "deployment", "legacy"])?;
    for needle in [
        "Name:                   legacy",
        "Namespace:              default",
        "Selector:               app=legacy",
        "desired | 0 updated | 0 total | 0 available",
        "StrategyType:           RollingUpdate",
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
        "Pod Template:",
        "busybox:1.36",
        "Events:",
    ] {
        dep.stdout_has(needle)?;
    }
    Ok(())
}

fn apply_client_side(k: &Kubectl) -> Result<()> {
    let web = manifest("web-deployment.yaml");
    k.ok(&["apply", "-f", &web])?
        .stdout_is("deployment.apps/web created")?;
    k.ok(&["apply", "-f", &web])?
        .stdout_is("deployment.apps/web unchanged")?;
    let svc = manifest("web-service.yaml");
    k.ok(&["apply", "-f", &svc])?
        .stdout_is("service/web created")?;
    k.ok(&["apply", "-f", &svc])?
        .stdout_is("service/web unchanged")?;

    // Change the image: a strategic merge patch that keeps the container's other fields.
    let changed = std::fs::read_to_string(manifests().join("web-deployment.yaml"))?
        .replace("image: nginx:1.25", "image: nginx:1.26");
    ensure!(changed.contains("nginx:1.26"), "manifest changed");
    let changed = k.file("web-changed.yaml", &changed)?;
    k.ok(&["apply", "-f", &changed])?
        .stdout_is("deployment.apps/web configured")?;
    k.ok(&["apply", "-f", &changed])?
        .stdout_is("deployment.apps/web unchanged")?;
    let got = k.jsonpath(
        &["deploy", "web"],
        "{.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.metadata.generation}",
    )?;
    ensure!(got == "nginx:1.26 80 2", "after apply: {got:?}");
    let last = k.jsonpath(
        &["deploy", "web"],
        "{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
    )?;
    ensure!(
        last.contains("nginx:1.26"),
        "last-applied annotation: {last:?}"
    );
    // Service ports: merged by port, the allocated ClusterIP kept.
    let ip = k.jsonpath(&["svc", "web"], "{.spec.clusterIP}")?;
    ensure!(
        ip.parse::<std::net::IpAddr>().is_ok(),
        "service clusterIP: {ip:?}"
    );
    Ok(())
}

fn apply_server_side(k: &Kubectl) -> Result<()> {
    let cm = manifest("settings-configmap.yaml");
    k.ok(&["apply", "--server-side", "-f", &cm])?
        .stdout_is("configmap/settings serverside-applied")?;
    k.ok(&["apply", "--server-side", "-f", &cm])?
        .stdout_is("configmap/settings serverside-applied")?;
    let got = k.jsonpath(
        &["cm", "settings"],
        "{.data.mode} {.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}",
    )?;
    ensure!(
        got == "fast kubectl Apply",
        "after server-side apply: {got:?}"
    );

    // Another manager changing the same field conflicts, until it forces.
    let other = std::fs::read_to_string(manifests().join("settings-configmap.yaml"))?
        .replace("mode: fast", "mode: slow");
    let other = k.file("settings-other.yaml", &other)?;
    let out = k.fails(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &other,
    ])?;
    out.stderr_has("error: Apply failed with 1 conflict: conflict with \"kubectl\": .data.mode\n")?;
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &other,
    ])?
    .stdout_is("configmap/settings serverside-applied")?;
    let got = k.jsonpath(&["cm", "settings"], "{.data.mode}")?;
    ensure!(got == "slow", "after forced apply: {got:?}");

    // Non-apply writes own what they set too (an `Update` entry): applying a different
    // replica count over `kubectl create` conflicts with it, named with its apiVersion.
    k.ok(&["create", "deployment", "ssa-web", "--image=nginx:1.25"])?
        .stdout_is("deployment.apps/ssa-web created")?;
    let got = k.jsonpath(
        &["deploy", "ssa-web"],
        "{.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation} {.metadata.managedFields[0].apiVersion}",
    )?;
    ensure!(
        got == "kubectl-create Update apps/v1",
        "after create: {got:?}"
    );
    let applied = k.file(
        "ssa-web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ssa-web\nspec:\n  replicas: 3\n",
    )?;
    let out = k.fails(&["apply", "--server-side", "-f", &applied])?;
    out.stderr_has(
        "error: Apply failed with 1 conflict: conflict with \"kubectl-create\" using apps/v1: .spec.replicas\n",
    )?;
    k.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &applied,
    ])?
    .stdout_is("deployment.apps/ssa-web serverside-applied")?;
    let got = k.jsonpath(&["deploy", "ssa-web"], "{.spec.replicas}")?;
    ensure!(got == "3", "after forced apply: {got:?}");
    k.ok(&["delete", "deployment", "ssa-web"])?;
    Ok(())
}

fn replace_stale(k: &Kubectl) -> Result<()> {
    let stale = k.ok(&["get", "svc", "web", "-o", "yaml"])?.stdout;
    let stale = k.file("svc-stale.yaml", &stale)?;
    // Someone else changes it...
    k.ok(&["label", "svc", "web", "changed=yes"])?;
    // ...so replacing from the old copy is refused.
    let out = k.fails(&["replace", "-f", &stale])?;
    out.stderr_has(&format!(
        "Error from server (Conflict): error when replacing \"{stale}\": Operation cannot be fulfilled on services \"web\": the object has been modified; please apply your changes to the latest version and try again"
    ))?;
    // A fresh copy replaces fine.
    let fresh = k.ok(&["get", "svc", "web", "-o", "yaml"])?.stdout;
    let fresh = k.file(
        "svc-fresh.yaml",
        &fresh.replace("changed: \"yes\"", "changed: again"),
    )?;
    k.ok(&["replace", "-f", &fresh])?
        .stdout_is("service/web replaced")?;
    let got = k.jsonpath(&["svc", "web"], "{.metadata.labels.changed}")?;
    ensure!(got == "again", "after replace: {got:?}");
    Ok(())
}

fn label_annotate(k: &Kubectl) -> Result<()> {
    k.ok(&["label", "deploy", "web", "tier=front"])?
        .stdout_is("deployment.apps/web labeled")?;
    k.fails(&["label", "deploy", "web", "tier=back"])?
        .stderr_has("error: 'tier' already has a value (front), and --overwrite is false")?;
    k.ok(&["label", "deploy", "web", "tier=back", "--overwrite"])?
        .stdout_is("deployment.apps/web labeled")?;
    // kubectl 1.27 itself misprints the verb (kubernetes/kubectl#1462, fixed in 1.28).
    let annotated = if k.version == "1.27" {
        "deployment.apps/web annotate"
    } else {
        "deployment.apps/web annotated"
    };
    k.ok(&["annotate", "deploy", "web", "note=first"])?
        .stdout_is(annotated)?;
    k.fails(&["annotate", "deploy", "web", "note=second"])?
        .stderr_has("error: --overwrite is false but found the following declared annotation(s): 'note' already has a value (first)")?;
    k.ok(&["annotate", "deploy", "web", "note=second", "--overwrite"])?
        .stdout_is(annotated)?;
    let got = k.jsonpath(
        &["deploy", "web"],
        "{.metadata.labels.tier} {.metadata.annotations.note} {.metadata.generation}",
    )?;
    // Metadata changes do not bump the generation.
    ensure!(got == "back second 2", "after label/annotate: {got:?}");
    k.ok(&["label", "deploy", "web", "tier-"])?
        .stdout_is("deployment.apps/web unlabeled")?;
    k.ok(&["get", "deploy", "-l", "tier=back"])?;
    k.ok(&["get", "deploy", "-l", "app=web", "-o", "name"])?
        .stdout_is("deployment.apps/web")?;
    Ok(())
}

fn scale(k: &Kubectl) -> Result<()> {
    k.ok(&["scale", "deployment", "web", "--replicas=3"])?
        .stdout_is("deployment.apps/web scaled")?;
    let got = k.jsonpath(&["deploy", "web"], "{.spec.replicas}")?;
    ensure!(got == "3", "replicas after scale: {got:?}");
    // With a precondition that does not hold.
    k.fails(&[
        "scale",
        "deployment",
        "web",
        "--current-replicas=7",
        "--replicas=1",
    ])?
    .stderr_has("Expected replicas to be 7, was 3")?;
    Ok(())
}

fn wait_condition(k: &Kubectl) -> Result<()> {
    // Nothing sets the condition yet: kubectl waits (list + watch on metadata.name)...
    let mut wait = k.spawn(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=60s",
    ])?;
    std::thread::sleep(Duration::from_millis(1500));
    ensure!(
        wait.child.try_wait()?.is_none(),
        "wait ended before the condition was set:\n{}",
        wait.finish(Duration::ZERO)
    );
    // ...until the status says Available (as the deployment controller would write it).
    let generation = k.jsonpath(&["deploy", "web"], "{.metadata.generation}")?;
    let patch = format!(
        r#"{{"status":{{"observedGeneration":{generation},"conditions":[{{"type":"Available","status":"True","reason":"MinimumReplicasAvailable","message":"Deployment has minimum availability.","lastUpdateTime":"2026-01-01T00:00:00Z","lastTransitionTime":"2026-01-01T00:00:00Z"}}]}}}}"#
    );
    k.ok(&[
        "patch",
        "deployment",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ])?
    .stdout_is("deployment.apps/web patched")?;
    let out = wait.finish(Duration::from_secs(30)).success()?;
    out.stdout_is("deployment.apps/web condition met")?;
    // The status patch left the spec alone.
    let got = k.jsonpath(&["deploy", "web"], "{.spec.replicas}")?;
    ensure!(got == "3", "status patch changed the spec: {got:?}");
    // Already met: returns at once.
    k.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=10s",
    ])?
    .stdout_is("deployment.apps/web condition met")?;
    // Never met: times out with upstream's message.
    k.fails(&[
        "wait",
        "--for=condition=Progressing",
        "deployment/web",
        "--timeout=2s",
    ])?
    .stderr_has("error: timed out waiting for the condition on deployments/web")?;
    Ok(())
}

fn get_all(k: &Kubectl) -> Result<()> {
    let out = k.ok(&["get", "all"])?;
    for needle in [
        "pod/nginx",
        "service/web",
        "deployment.apps/web",
        "deployment.apps/legacy",
    ] {
        out.stdout_has(needle)?;
    }
    Ok(())
}

fn api_resources(k: &Kubectl) -> Result<()> {
    let out = k.ok(&["api-resources"])?;
    out.table_has(
        "NAME SHORTNAMES APIVERSION NAMESPACED KIND",
        &["pods", "po", "v1", "true", "Pod"],
    )?;
    out.table_has(
        "NAME SHORTNAMES APIVERSION NAMESPACED KIND",
        &["deployments", "deploy", "apps/v1", "true", "Deployment"],
    )?;
    out.table_has(
        "NAME SHORTNAMES APIVERSION NAMESPACED KIND",
        &["namespaces", "ns", "v1", "false", "Namespace"],
    )?;
    let ns = k.ok(&["api-resources", "--namespaced=false", "-o", "name"])?;
    ns.stdout_has("namespaces\n")?;
    ensure!(!ns.stdout.contains("pods\n"), "{ns}");
    Ok(())
}

fn explain(k: &Kubectl) -> Result<()> {
    let out = k.ok(&["explain", "deployment.spec.strategy"])?;
    for needle in [
        "GROUP:      apps",
        "KIND:       Deployment",
        "VERSION:    v1",
        "FIELD: strategy <DeploymentStrategy>",
        "DESCRIPTION:",
        "The deployment strategy to use to replace existing pods with new ones.",
        "FIELDS:",
        "rollingUpdate\t<RollingUpdateDeployment>",
        "type\t<string>",
    ] {
        out.stdout_has(needle)?;
    }
    k.ok(&["explain", "pods.spec.containers.image"])?
        .stdout_has("FIELD: image <string>")?;
    // The OpenAPI v2 renderer reads `/openapi/v2` as gnostic protobuf (as kubectl 1.27 and
    // 1.28 do for create/apply validation and client-side apply).
    let v2 = k.ok(&[
        "explain",
        "deployment.spec.strategy",
        "--output=plaintext-openapiv2",
    ])?;
    for needle in [
        "KIND:     Deployment",
        "VERSION:  apps/v1",
        "RESOURCE: strategy <Object>",
        "The deployment strategy to use to replace existing pods with new ones.",
        "rollingUpdate\t<Object>",
        "type\t<string>",
    ] {
        v2.stdout_has(needle)?;
    }
    k.ok(&[
        "explain",
        "deployment.spec.strategy.rollingUpdate",
        "--output=plaintext-openapiv2",
    ])?
    .stdout_has("maxSurge\t<string>")?;
    Ok(())
}

fn not_found(k: &Kubectl) -> Result<()> {
    k.fails(&["get", "pod", "x"])?
        .stderr_has("Error from server (NotFound): pods \"x\" not found")?;
    k.fails(&["get", "deploy", "x"])?
        .stderr_has("Error from server (NotFound): deployments.apps \"x\" not found")?;
    // kubectl looks the namespace up itself after a NotFound.
    k.fails(&["get", "pods", "-n", "nope", "x"])?
        .stderr_has("Error from server (NotFound): namespaces \"nope\" not found")?;
    k.fails(&["delete", "pod", "x"])?
        .stderr_has("Error from server (NotFound): pods \"x\" not found")?;
    k.fails(&["get", "bogus"])?
        .stderr_has("error: the server doesn't have a resource type \"bogus\"")?;
    // An empty namespace prints upstream's notice on stderr.
    let out = k.ok(&["get", "pods", "-n", "kube-public"])?;
    out.stderr_has("No resources found in kube-public namespace.")?;
    Ok(())
}

fn logs_unscheduled(k: &Kubectl) -> Result<()> {
    // As upstream: no node yet means no logs (empty, success)...
    k.ok(&["logs", "nginx"])?.stdout_is("")?;
    // ...but the container must exist,
    k.fails(&["logs", "nginx", "-c", "bogus"])?
        .stderr_has("container bogus is not valid for pod nginx")?;
    // and exec needs a node.
    k.fails(&["exec", "nginx", "--", "true"])?
        .stderr_has("pod nginx does not have a host assigned")?;
    Ok(())
}

fn delete_wait(k: &Kubectl) -> Result<()> {
    let t = Instant::now();
    k.ok(&["delete", "pod", "nginx", "--wait=true"])?
        .stdout_is("pod \"nginx\" deleted")?;
    ensure!(
        t.elapsed() < Duration::from_secs(20),
        "deleting an unscheduled pod took {:?}",
        t.elapsed()
    );
    k.fails(&["get", "pod", "nginx"])?
        .stderr_has("pods \"nginx\" not found")?;
    k.ok(&["delete", "-f", &manifest("web-service.yaml")])?
        .stdout_is("service \"web\" deleted")?;
    Ok(())
}

fn delete_finalizer(k: &Kubectl) -> Result<()> {
    let held = k.file(
        "held.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\ndata:\n  a: b\n",
    )?;
    k.ok(&["create", "-f", &held])?
        .stdout_is("configmap/held created")?;
    // delete --wait watches for the DELETED event...
    let mut del = k.spawn(&["delete", "configmap", "held", "--timeout=60s"])?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while k
        .jsonpath(&["cm", "held"], "{.metadata.deletionTimestamp}")?
        .is_empty()
    {
        ensure!(Instant::now() < deadline, "held was never marked deleting");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        del.child.try_wait()?.is_none(),
        "delete returned while the finalizer was still there:\n{}",
        del.finish(Duration::ZERO)
    );
    // ...which comes once the finalizer is removed.
    k.ok(&[
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])?;
    let out = del.finish(Duration::from_secs(30)).success()?;
    out.stdout_is("configmap \"held\" deleted")?;
    k.fails(&["get", "cm", "held"])?
        .stderr_has("configmaps \"held\" not found")?;
    Ok(())
}

fn delete_namespace(k: &Kubectl) -> Result<()> {
    let cm = |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    let inside = k.file("inside.yaml", &cm("inside"))?;
    let late = k.file("late.yaml", &cm("late"))?;
    k.ok(&["create", "-f", &inside, "-n", "scratch"])?
        .stdout_is("configmap/inside created")?;
    // No namespace controller empties it yet, so don't wait for it to go away.
    k.ok(&["delete", "namespace", "scratch", "--wait=false"])?
        .stdout_is("namespace \"scratch\" deleted")?;
    k.ok(&["get", "ns", "scratch"])?
        .table_has("NAME STATUS AGE", &["scratch", "Terminating"])?;
    let phase = k.jsonpath(&["ns", "scratch"], "{.status.phase}")?;
    ensure!(phase == "Terminating", "namespace phase: {phase:?}");
    let out = k.fails(&["create", "-f", &late, "-n", "scratch"])?;
    out.stderr_has(&format!(
        "Error from server (Forbidden): error when creating \"{late}\": configmaps \"late\" is forbidden: unable to create new content in namespace scratch because it is being terminated"
    ))?;
    let out = k.fails(&["create", "-f", &manifest("pod.yaml"), "-n", "scratch"])?;
    out.stderr_has("(Forbidden)")?;
    out.stderr_has("because it is being terminated")?;
    // What was inside is still readable.
    k.ok(&["get", "cm", "inside", "-n", "scratch"])?;
    Ok(())
}
