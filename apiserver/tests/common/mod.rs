//! An in-process API server for component tests: SQLite in a temp dir, or a real etcd
//! member started by testkit; plain HTTP on a port from the OS; a kube::Client for it.

#![allow(dead_code)]

use std::time::Duration;

use std::sync::Arc;

use capstan_apiserver::server::{self, Args};
use capstan_store::{AnyStore, Datastore, StoreConfig};
use capstan_testkit::EtcdCluster;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Etcd,
}

pub struct TestServer {
    pub url: String,
    /// The server's own store, for tests that compact or inspect it.
    pub store: Arc<AnyStore>,
    pub client: kube::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), server::ServerError>>>,
    _dir: tempfile::TempDir,
    _etcd: Option<EtcdCluster>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut args = Args::for_tests(dir.path().to_path_buf());
        let etcd = match backend {
            Backend::Sqlite => None,
            Backend::Etcd => {
                let cluster = EtcdCluster::start(1)?;
                let eps: Vec<String> = cluster
                    .endpoints()
                    .iter()
                    .map(|e| e.trim_start_matches("http://").to_string())
                    .collect();
                args.datastore = format!("etcd://{}", eps.join(","));
                Some(cluster)
            }
        };
        let datastore = Datastore::parse(&args.datastore, &args.data_dir)?;
        let config = StoreConfig {
            compaction_interval: None,
            ..StoreConfig::default()
        };
        let store = Arc::new(AnyStore::open(&datastore, config).await?);
        let shutdown = CancellationToken::new();
        let (ready, task) = tokio::time::timeout(
            Duration::from_secs(30),
            server::spawn_with_store(args, store.clone(), shutdown.clone()),
        )
        .await??;
        let config = kube::Config::new(ready.url.parse()?);
        let client = kube::Client::try_from(config)?;
        Ok(TestServer {
            url: ready.url,
            store,
            client,
            shutdown,
            task: Some(task),
            _dir: dir,
            _etcd: etcd,
        })
    }

    /// A raw request over a plain HTTP client (kube's client retries 5xx answers, which would
    /// hide them); returns (status, body).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, String)> {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        let resp = client
            .request(req.body(http_body_util::Full::new(bytes::Bytes::from(body)))?)
            .await?;
        let status = resp.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// A GET over a plain HTTP client with extra request headers; returns the status, the
    /// response headers and the body bytes as sent (no decoding of any content encoding).
    pub async fn get_with_headers(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, http::HeaderMap, bytes::Bytes)> {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let mut req = http::Request::builder().uri(format!("{}{path}", self.url));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = client
            .request(req.body(http_body_util::Full::new(bytes::Bytes::new()))?)
            .await?;
        let status = resp.status().as_u16();
        let head = resp.headers().clone();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await?
            .to_bytes();
        Ok((status, head, bytes))
    }

    pub async fn raw_with_accept(
        &self,
        path: &str,
        accept: &str,
    ) -> anyhow::Result<(u16, String, String)> {
        let req = http::Request::builder()
            .method("GET")
            .uri(path)
            .header("accept", accept)
            .body(Vec::new().into())?;
        let resp = self.client.send(req).await?;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await?
            .to_bytes();
        Ok((status, ct, String::from_utf8_lossy(&bytes).into_owned()))
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
