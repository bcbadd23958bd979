//! The apiserver as a library: [`Args`] (flags, each also a `CAPSTAN_*` variable) and
//! [`run`], which opens the store, makes sure the system namespaces exist, and serves until
//! `shutdown` is cancelled.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use capstan_store::{AnyStore, Datastore, StoreConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::http::{self, AppState, Shared};
use crate::registry::alloc::AllocConfig;
use crate::registry::{Registry, WriteParams};
use crate::resources;

/// Flags of the API server (flattened into `capstan server` later).
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Where the server keeps its database, certificates and kubeconfig.
    #[arg(long, env = "CAPSTAN_DATA_DIR", default_value = "/var/lib/capstan")]
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `etcd://HOST:PORT[,HOST:PORT...]`; empty: SQLite in the data dir.
    #[arg(long, env = "CAPSTAN_DATASTORE", default_value = "")]
    pub datastore: String,
    /// Address to listen on.
    #[arg(long, env = "CAPSTAN_BIND_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_address: IpAddr,
    /// Port for HTTPS (0: any free port, reported in the ready line).
    #[arg(long, env = "CAPSTAN_HTTPS_PORT", default_value_t = 6443)]
    pub https_port: u16,
    /// Also write the admin kubeconfig here (it is always at `<data-dir>/kubeconfig.yaml`).
    #[arg(long, env = "CAPSTAN_WRITE_KUBECONFIG")]
    pub write_kubeconfig: Option<PathBuf>,
    /// ClusterIP range for Services.
    #[arg(long, env = "CAPSTAN_SERVICE_CIDR", default_value = "10.43.0.0/16")]
    pub service_cidr: ipnet::IpNet,
    /// NodePort range for Services, `FIRST-LAST`.
    #[arg(
        long,
        env = "CAPSTAN_SERVICE_NODE_PORT_RANGE",
        default_value = "30000-32767"
    )]
    pub service_node_port_range: String,
    /// Serve plain HTTP without authentication instead of HTTPS. For tests only.
    #[arg(long, env = "CAPSTAN_INSECURE_HTTP", default_value_t = false)]
    pub insecure_http: bool,
}

impl Args {
    /// Defaults for tests: a data dir, loopback, a port from the OS.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        Args {
            data_dir,
            datastore: String::new(),
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            https_port: 0,
            write_kubeconfig: None,
            service_cidr: "10.43.0.0/16"
                .parse()
                .unwrap_or_else(|_| unreachable_cidr()),
            service_node_port_range: "30000-32767".into(),
            insecure_http: true,
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_cidr() -> ipnet::IpNet {
    panic!("constant CIDR parses")
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("opening the store: {0}")]
    Store(#[from] capstan_store::StoreError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("creating {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bootstrapping: {0}")]
    Bootstrap(ApiError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("invalid flag: {0}")]
    Flag(String),
    #[error("the server stopped before it was ready")]
    NotReady,
}

/// What a started server tells its caller.
#[derive(Clone, Debug)]
pub struct Ready {
    pub addr: SocketAddr,
    /// `https://127.0.0.1:6443` (or http for tests).
    pub url: String,
    pub kubeconfig: Option<PathBuf>,
}

/// The namespaces that exist from the start, as upstream.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

async fn ensure_namespaces(registry: &Registry) -> Result<(), ApiError> {
    let Some(def) = resources::lookup("", "v1", "namespaces") else {
        return Ok(());
    };
    for ns in SYSTEM_NAMESPACES {
        let obj = serde_json::json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":ns}});
        let serde_json::Value::Object(obj) = obj else {
            continue;
        };
        match registry.create(def, obj, &WriteParams::default()).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The address other components reach this server at (upstream's `--advertise-address`): the
/// bind address when it is a specific one, else the address of the interface with the default
/// route (found by connecting a UDP socket, which sends nothing), else `None`.
fn advertise_address(bound: IpAddr) -> Option<IpAddr> {
    if !bound.is_unspecified() && !bound.is_loopback() {
        return Some(bound);
    }
    let probe = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    probe.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// Create the `kubernetes` Service in `default` (the first ClusterIP, port 443 to the
/// server's port) and, when the server has an address pods can reach, its Endpoints, if
/// missing — upstream's bootstrap controller. True when this call created the Service.
async fn ensure_kubernetes_service(
    registry: &Registry,
    advertise: Option<IpAddr>,
    port: u16,
) -> Result<bool, ApiError> {
    let Some(svc_def) = resources::lookup("", "v1", "services") else {
        return Ok(false);
    };
    let cluster_ip = registry
        .allocators()
        .config()
        .ips
        .first_ip()
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let svc = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            "sessionAffinity": "None"
        }
    });
    // Present already (a restart): leave it alone, as upstream's reconciler does; creating it
    // again would first trip over its own ClusterIP and report "already allocated".
    let exists = match registry.get(svc_def, Some("default"), "kubernetes").await {
        Ok(_) => true,
        Err(ApiError::NotFound { .. }) => false,
        Err(e) => return Err(e),
    };
    let mut created = false;
    if let (false, serde_json::Value::Object(svc)) = (exists, svc) {
        match registry.create(svc_def, svc, &WriteParams::default()).await {
            Ok(_) => created = true,
            Err(ApiError::AlreadyExists { .. }) => {}
            // Another API server sharing the store holds the IP while creating the Service.
            Err(e @ ApiError::Invalid { .. }) => {
                tracing::warn!(error = %e.to_status().message, "creating the kubernetes Service");
            }
            Err(e) => return Err(e),
        }
    }
    let (Some(ip), Some(ep_def)) = (advertise, resources::lookup("", "v1", "endpoints")) else {
        return Ok(created);
    };
    let ep = serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}
        },
        "subsets": [{
            "addresses": [{"ip": ip.to_string()}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]
        }]
    });
    if let serde_json::Value::Object(ep) = ep {
        let subsets = ep.get("subsets").cloned();
        match registry.create(ep_def, ep, &WriteParams::default()).await {
            Ok(_) => {}
            // Present: point it at this server if it names another address (a restart on a
            // new address or port), as upstream's endpoint reconciler does.
            Err(ApiError::AlreadyExists { .. }) => {
                registry
                    .guaranteed_update(
                        ep_def,
                        Some("default"),
                        "kubernetes",
                        crate::registry::Part::Main,
                        &WriteParams::default(),
                        |mut cur| {
                            if let Some(s) = &subsets {
                                cur.insert("subsets".into(), s.clone());
                            }
                            Ok(cur)
                        },
                    )
                    .await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

/// Bind, then serve until `shutdown`; `on_ready` is told the address once serving.
pub async fn run(
    args: Args,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(Ready) + Send,
) -> Result<(), ServerError> {
    std::fs::create_dir_all(&args.data_dir).map_err(|source| ServerError::DataDir {
        path: args.data_dir.clone(),
        source,
    })?;
    let datastore = Datastore::parse(&args.datastore, &args.data_dir)?;
    let store = Arc::new(AnyStore::open(&datastore, StoreConfig::default()).await?);
    run_with_store(args, store, shutdown, on_ready).await
}

/// Plain HTTP/1.1 (tests, benchmarks) until `shutdown` is cancelled, then waits for open
/// connections to finish: idle ones close at once, a request in flight is answered (with
/// `connection: close`) first, a streaming response (a watch) runs until the app ends it. Each
/// connection runs our own HTTP/1.1 loop ([`crate::http1`]), which holds no buffer for an idle
/// watch, with TCP_NODELAY so watch streams' small writes are not held back by Nagle.
async fn serve_plain(listener: TcpListener, app: axum::Router, shutdown: CancellationToken) {
    let options = crate::http1::Http1Options::default();
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let tcp = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (app, shutdown) = (app.clone(), shutdown.clone());
        // The connection's future is made inside the task's, not moved into it: a future
        // captured by an async block takes its room twice in the task.
        connections.spawn(async move {
            let conn = crate::http1::serve_connection(tcp, app, options, shutdown);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// [`run_with_store`] on its own task, returned once it serves: for whoever runs the API server
/// next to other components in one process (component tests, benchmarks). An error it stops
/// with before it is ready is returned here; a server stopped by `shutdown` before it was
/// ready gives [`ServerError::NotReady`].
pub async fn spawn_with_store(
    args: Args,
    store: Arc<AnyStore>,
    shutdown: CancellationToken,
) -> Result<(Ready, tokio::task::JoinHandle<Result<(), ServerError>>), ServerError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut task = tokio::spawn(async move {
        run_with_store(args, store, shutdown, move |ready| {
            let _ = tx.send(ready);
        })
        .await
    });
    match rx.await {
        Ok(ready) => Ok((ready, task)),
        // The sender is gone without a `Ready`: the server has stopped.
        Err(_) => match (&mut task).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) | Err(_) => Err(ServerError::NotReady),
        },
    }
}

/// [`run`] over a store the caller opened (tests and benchmarks keep a handle to it).
pub async fn run_with_store(
    args: Args,
    store: Arc<AnyStore>,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(Ready) + Send,
) -> Result<(), ServerError> {
    std::fs::create_dir_all(&args.data_dir).map_err(|source| ServerError::DataDir {
        path: args.data_dir.clone(),
        source,
    })?;
    let datastore = Datastore::parse(&args.datastore, &args.data_dir)?;
    let alloc_config = AllocConfig::from_flags(args.service_cidr, &args.service_node_port_range)
        .map_err(|e| ServerError::Flag(e.to_string()))?;
    let registry = Registry::new(store, capstan_store::DEFAULT_PREFIX, alloc_config);
    ensure_namespaces(&registry)
        .await
        .map_err(ServerError::Bootstrap)?;

    let addr = SocketAddr::new(args.bind_address, args.https_port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Listen { addr, source })?;
    let client_host = if local.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        local.ip()
    };
    let client_addr = SocketAddr::new(client_host, local.port());
    ensure_kubernetes_service(&registry, advertise_address(local.ip()), local.port())
        .await
        .map_err(ServerError::Bootstrap)?;
    let state = AppState {
        registry,
        inner: Arc::new(Shared {
            server_address: client_addr.to_string(),
        }),
    };
    let app = http::router(state);

    if args.insecure_http {
        let url = format!("http://{client_addr}");
        tracing::info!(%url, datastore = ?datastore, "capstan apiserver ready (plain HTTP, no authentication)");
        on_ready(Ready {
            addr: local,
            url,
            kubeconfig: None,
        });
        let app = app.layer(axum::Extension(crate::tls::Identity::insecure_admin()));
        serve_plain(listener, app, shutdown).await;
        return Ok(());
    }

    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !local.ip().is_unspecified() {
        sans.push(local.ip().to_string());
    }
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        sans.push(h.trim().to_string());
    }
    let tls = crate::tls::TlsAssets::load_or_create(&args.data_dir, &sans)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let url = format!("https://{client_addr}");
    let kubeconfig = args.data_dir.join("kubeconfig.yaml");
    tls.write_kubeconfig(&kubeconfig, &url)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    if let Some(extra) = &args.write_kubeconfig {
        tls.write_kubeconfig(extra, &url)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
    }
    tracing::info!(%url, kubeconfig = %kubeconfig.display(), datastore = ?datastore, "capstan apiserver ready");
    on_ready(Ready {
        addr: local,
        url,
        kubeconfig: Some(kubeconfig),
    });
    let app = app.layer(axum::middleware::from_fn(crate::tls::require_authenticated));
    crate::tls::serve_tls(listener, app, tls.server_config(), shutdown).await;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// A restart finds the Service (and its ClusterIP) in place: nothing is created twice and
    /// the allocated IP is not reported as taken by itself.
    #[tokio::test]
    async fn kubernetes_service_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ds = Datastore::Sqlite(dir.path().join("state.db"));
        let open = || async {
            let store = AnyStore::open(&ds, StoreConfig::default())
                .await
                .expect("open store");
            Registry::new(
                Arc::new(store),
                capstan_store::DEFAULT_PREFIX,
                AllocConfig::default(),
            )
        };
        let reg = open().await;
        ensure_namespaces(&reg).await.expect("namespaces");
        let ip = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)));
        assert!(
            ensure_kubernetes_service(&reg, ip, 6443)
                .await
                .expect("first start")
        );
        let svc_def = resources::lookup("", "v1", "services").expect("services");
        let before = reg
            .get(svc_def, Some("default"), "kubernetes")
            .await
            .expect("get");
        drop(reg);

        let reg = open().await;
        ensure_namespaces(&reg).await.expect("namespaces again");
        assert!(
            !ensure_kubernetes_service(&reg, ip, 6443)
                .await
                .expect("restart")
        );
        let after = reg
            .get(svc_def, Some("default"), "kubernetes")
            .await
            .expect("get");
        assert_eq!(before["spec"]["clusterIP"], after["spec"]["clusterIP"]);
        assert_eq!(
            before["metadata"]["resourceVersion"],
            after["metadata"]["resourceVersion"]
        );
    }
}
