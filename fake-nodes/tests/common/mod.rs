//! An in-process API server for component tests (SQLite in a temp dir, plain HTTP on a port
//! from the OS), the TestServer pattern of apiserver/tests/common, plus object helpers.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use capstan_apiserver::server::{self, Args};
use capstan_store::{AnyStore, Datastore, StoreConfig};
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
