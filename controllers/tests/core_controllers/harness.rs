//! An in-process API server (SQLite in a temp dir, plain HTTP on a port from the OS) and
//! helpers to start one controller against it and poll for an outcome.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_apiserver::server::{self, Args};
use capstan_store::{AnyStore, Datastore, StoreConfig};
use kube::api::{Api, PostParams};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

pub struct TestServer {
    pub client: kube::Client,
    /// Cancelled when the server stops; controllers started with [`TestServer::spawn`] stop too.
    pub shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), server::ServerError>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> anyhow::Result<Self> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
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
        let client = kube::Client::try_from(kube::Config::new(ready.url.parse()?))?;
        Ok(TestServer {
            client,
            shutdown,
            task: Some(task),
            _dir: dir,
        })
    }

    /// Run a controller until the server stops.
    pub fn spawn<F, Fut>(&self, f: F)
    where
        F: FnOnce(kube::Client, CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(f(self.client.clone(), self.shutdown.child_token()));
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

/// Poll `f` every 20 ms until it yields `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if start.elapsed() > limit {
            anyhow::bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Create an object from JSON.
pub async fn create<K>(api: &Api<K>, v: serde_json::Value) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(v)?;
    Ok(api.create(&PostParams::default(), &obj).await?)
}

/// True when `get` answers 404.
pub async fn gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    matches!(api.get_opt(name).await, Ok(None))
}
