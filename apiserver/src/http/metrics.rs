//! `/metrics` in the Prometheus text format, with upstream's request metrics:
//!
//! - `apiserver_request_total{verb,dry_run,group,version,resource,subresource,scope,component,code}`
//! - `apiserver_request_duration_seconds{verb,dry_run,group,version,resource,subresource,scope,component}`
//!   (a histogram with upstream's buckets; WATCH is observed when the watch ends, as upstream
//!   observes it when its handler returns)
//! - `apiserver_longrunning_requests{verb,group,version,resource,subresource,scope,component}`
//!   (a gauge of open watches)
//!
//! Label values follow upstream's `metrics.MonitorRequest`: the verb is the HTTP method made
//! canonical (`GET` on a collection is `LIST`, `watch=true` is `WATCH`, a PATCH with the apply
//! content type is `APPLY`, so POST stays `POST` and PUT `PUT`); scope is `resource` for a
//! named object or a create, `namespace` for a namespaced collection, `cluster` otherwise;
//! non-resource requests (`/healthz`, `/version`, discovery, `/metrics`) carry their path as
//! `subresource` and empty resource labels. Paths that name nothing are counted under
//! `subresource="other"` so label cardinality stays bounded.
//!
//! Written by hand (about 250 lines) rather than with a metrics crate: two metric families with
//! fixed label sets need only a map under a mutex and the text format's escaping.
//!
//! Every request also runs inside one `request` tracing span (method, path, code, duration).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::request::parse_target;

/// Upstream's `apiserver_request_duration_seconds` buckets.
pub const DURATION_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

const COMPONENT: &str = "apiserver";

/// The labels of one request series (without `code`). Resource requests borrow every label
/// from the resource table, so classifying one allocates nothing.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    pub verb: &'static str,
    pub dry_run: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: Cow<'static, str>,
    pub scope: &'static str,
}

#[derive(Default)]
struct Series {
    codes: BTreeMap<u16, u64>,
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Series {
    fn observe(&mut self, seconds: f64) {
        let slot = DURATION_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Default)]
struct Inner {
    series: HashMap<RequestLabels, Series>,
    longrunning: HashMap<RequestLabels, i64>,
}

/// The request metrics of one server.
#[derive(Default)]
pub struct Metrics {
    state: Mutex<Inner>,
}

impl Metrics {
    /// The series of `labels`, created on first use (the labels are cloned only then).
    fn series<'a>(inner: &'a mut Inner, labels: &RequestLabels) -> Option<&'a mut Series> {
        if !inner.series.contains_key(labels) {
            inner.series.insert(labels.clone(), Series::default());
        }
        inner.series.get_mut(labels)
    }

    fn observe(&self, labels: &RequestLabels, seconds: f64) {
        if let Ok(mut s) = self.state.lock()
            && let Some(series) = Self::series(&mut s, labels)
        {
            series.observe(seconds);
        }
    }

    /// A request's code, and its duration when it is not a watch (a watch is observed when
    /// it ends): one lock per request.
    fn finish(&self, labels: &RequestLabels, code: u16, seconds: Option<f64>) {
        if let Ok(mut s) = self.state.lock()
            && let Some(series) = Self::series(&mut s, labels)
        {
            *series.codes.entry(code).or_default() += 1;
            if let Some(seconds) = seconds {
                series.observe(seconds);
            }
        }
    }

    fn longrunning(&self, labels: &RequestLabels, delta: i64) {
        if let Ok(mut s) = self.state.lock() {
            *s.longrunning.entry(labels.clone()).or_default() += delta;
        }
    }

    /// The exposition, in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let Ok(s) = self.state.lock() else {
            return String::new();
        };
        let mut sorted: Vec<(&RequestLabels, &Series)> = s.series.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = String::with_capacity(4096 + sorted.len() * 2048);
        out.push_str(
            "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n\
             # TYPE apiserver_request_total counter\n",
        );
        for (l, series) in &sorted {
            for (code, n) in &series.codes {
                let _ = writeln!(
                    out,
                    "apiserver_request_total{{{},code=\"{code}\"}} {n}",
                    label_text(l)
                );
            }
        }
        out.push_str(
            "# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n\
             # TYPE apiserver_request_duration_seconds histogram\n",
        );
        for (l, series) in &sorted {
            if series.count == 0 {
                continue;
            }
            let labels = label_text(l);
            let mut cumulative = 0;
            for (i, b) in DURATION_BUCKETS.iter().enumerate() {
                cumulative += series.buckets[i];
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cumulative}"
                );
            }
            cumulative += series.buckets[DURATION_BUCKETS.len()];
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{{labels}}} {}",
                series.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{{labels}}} {}",
                series.count
            );
        }
        out.push_str(
            "# HELP apiserver_longrunning_requests Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.\n\
             # TYPE apiserver_longrunning_requests gauge\n",
        );
        let mut lr: Vec<_> = s.longrunning.iter().collect();
        lr.sort_by(|a, b| a.0.cmp(b.0));
        for (l, n) in lr {
            let _ = writeln!(
                out,
                "apiserver_longrunning_requests{{verb=\"{}\",group=\"{}\",version=\"{}\",resource=\"{}\",subresource=\"{}\",scope=\"{}\",component=\"{COMPONENT}\"}} {n}",
                l.verb,
                escape(l.group),
                escape(l.version),
                escape(l.resource),
                escape(&l.subresource),
                l.scope,
            );
        }
        out
    }
}

fn label_text(l: &RequestLabels) -> String {
    format!(
        "verb=\"{}\",dry_run=\"{}\",group=\"{}\",version=\"{}\",resource=\"{}\",subresource=\"{}\",scope=\"{}\",component=\"{COMPONENT}\"",
        l.verb,
        l.dry_run,
        escape(l.group),
        escape(l.version),
        escape(l.resource),
        escape(&l.subresource),
        l.scope,
    )
}

/// Label value escaping of the text format: backslash, double quote, newline.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn query_flag(query: Option<&str>, key: &str, want: impl Fn(&str) -> bool) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            k == key && want(v)
        })
    })
}

/// Upstream's labels for a request, from its method, path, query and content type.
pub fn classify(
    method: &Method,
    path: &str,
    query: Option<&str>,
    content_type: &str,
) -> RequestLabels {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let resource_part = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => Some(("", "v1", rest)),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => Some((*g, *v, rest)),
        _ => None,
    };
    let target = resource_part.and_then(|(g, v, rest)| parse_target(g, v, rest).ok());
    let dry_run = if query_flag(query, "dryRun", |v| v == "All") {
        "All"
    } else {
        ""
    };
    let Some(t) = target else {
        let known = matches!(
            segs.as_slice(),
            ["version" | "api" | "apis" | "metrics" | "healthz" | "livez" | "readyz"]
                | ["healthz" | "livez" | "readyz", _]
                | ["api", "v1"]
                | ["apis", _]
                | ["apis", _, _]
                | ["openapi", ..]
        );
        let subresource = match segs.as_slice() {
            // The discovery and OpenAPI documents of a group name only served groups.
            ["apis", g, ..] if known && !crate::resources::groups().iter().any(|(n, _)| n == g) => {
                Cow::Borrowed("other")
            }
            ["openapi", "v3", ..] => Cow::Borrowed("/openapi/v3"),
            _ if known => Cow::Owned(format!("/{}", segs.join("/"))),
            _ => Cow::Borrowed("other"),
        };
        return RequestLabels {
            verb: plain_verb(method),
            dry_run,
            subresource,
            ..RequestLabels::default()
        };
    };
    let scope = if t.name.is_some() || *method == Method::POST && t.subresource.is_none() {
        "resource"
    } else if t.namespace.is_some() {
        "namespace"
    } else {
        "cluster"
    };
    let verb = match *method {
        Method::GET | Method::HEAD if scope != "resource" => {
            if query_flag(query, "watch", |v| {
                matches!(v, "" | "1" | "t" | "T" | "true" | "TRUE" | "True")
            }) {
                "WATCH"
            } else {
                "LIST"
            }
        }
        Method::PATCH if content_type.starts_with("application/apply-patch") => "APPLY",
        ref m => plain_verb(m),
    };
    // `parse_target` only accepts the row's own subresources and a namespace's `finalize`.
    let subresource = match t.subresource.as_deref() {
        None => "",
        Some(sub) => t.def.subresource(sub).map_or("finalize", |s| s.name),
    };
    RequestLabels {
        verb,
        dry_run,
        group: t.def.group,
        version: t.def.version,
        resource: t.def.plural,
        subresource: Cow::Borrowed(subresource),
        scope,
    }
}

fn plain_verb(m: &Method) -> &'static str {
    match *m {
        Method::GET | Method::HEAD => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The `/metrics` response.
pub fn response(metrics: Option<&Arc<Metrics>>) -> Response {
    let body = metrics.map(|m| m.render()).unwrap_or_default();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Decrements the long-running gauge and observes the duration when a watch body is dropped.
struct WatchDone {
    metrics: Arc<Metrics>,
    labels: RequestLabels,
    start: Instant,
}

impl Drop for WatchDone {
    fn drop(&mut self) {
        self.metrics.longrunning(&self.labels, -1);
        self.metrics
            .observe(&self.labels, self.start.elapsed().as_secs_f64());
    }
}

/// Around every request (`next` serves it): one tracing span, counted and timed. `Metrics` is
/// also put in the request's extensions for the `/metrics` route. Called by the router's one
/// handler rather than as an axum `from_fn` layer, which boxed and cloned the inner service
/// per request.
pub async fn track<F, Fut>(metrics: Arc<Metrics>, mut req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let start = Instant::now();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let labels = classify(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        &content_type,
    );
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        verb = labels.verb,
        code = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    req.extensions_mut().insert(metrics.clone());
    let resp = next(req).instrument(span.clone()).await;
    let code = resp.status().as_u16();
    let elapsed = start.elapsed().as_secs_f64();
    span.record("code", code);
    span.record("duration_ms", elapsed * 1e3);
    let watch = labels.verb == "WATCH" && resp.status().is_success();
    if watch {
        metrics.finish(&labels, code, None);
        metrics.longrunning(&labels, 1);
        let done = WatchDone {
            metrics,
            labels,
            start,
        };
        return resp.map(|body| Body::new(Guarded { body, _guard: done }));
    }
    if resp.body().size_hint().exact().is_some() {
        metrics.finish(&labels, code, Some(elapsed));
        return resp;
    }
    // A streamed answer (a LIST written while it is read): timed until its last byte is
    // handed to the connection, or it is dropped, as upstream times a request to the end
    // of its response.
    let done = StreamDone {
        metrics,
        labels,
        code,
        start,
    };
    resp.map(|body| Body::new(Guarded { body, _guard: done }))
}

/// Counts and times a streamed (non-watch) answer when its body ends or is dropped.
struct StreamDone {
    metrics: Arc<Metrics>,
    labels: RequestLabels,
    code: u16,
    start: Instant,
}

impl Drop for StreamDone {
    fn drop(&mut self) {
        self.metrics.finish(
            &self.labels,
            self.code,
            Some(self.start.elapsed().as_secs_f64()),
        );
    }
}

/// A response body that holds `_guard` until the connection drops the body (after its last
/// frame, or early when the client goes away). Frames and size hints pass through unchanged.
struct Guarded<G> {
    body: Body,
    _guard: G,
}

impl<G: Unpin> HttpBody for Guarded<G> {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(m: Method, p: &str, q: Option<&str>, ct: &str) -> (String, String, String, String) {
        let l = classify(&m, p, q, ct);
        (
            l.verb.to_string(),
            l.resource.to_string(),
            l.subresource.into_owned(),
            l.scope.to_string(),
        )
    }

    fn s(a: &str, b: &str, c: &str, d: &str) -> (String, String, String, String) {
        (a.into(), b.into(), c.into(), d.into())
    }

    /// The `apiserver_request_duration_seconds_sum` line of `verb` in `rendered`.
    fn duration_sum(rendered: &str, verb: &str) -> Option<f64> {
        rendered
            .lines()
            .find(|l| {
                l.starts_with("apiserver_request_duration_seconds_sum")
                    && l.contains(&format!("verb=\"{verb}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// A streamed answer is counted once its body is done, and timed to its end.
    #[allow(clippy::expect_used)]
    #[tokio::test]
    async fn streamed_answers_are_timed_to_their_end() {
        use futures::StreamExt as _;
        use tower_service::Service as _;
        let metrics = Arc::new(Metrics::default());
        let m = metrics.clone();
        let mut app = axum::Router::new().fallback(move |req: Request| {
            track(m.clone(), req, |_req| async {
                let slow = futures::stream::iter(0..3).then(|i| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    Ok::<_, std::io::Error>(bytes::Bytes::from(format!("part {i}\n")))
                });
                Body::from_stream(slow).into_response()
            })
        });
        let req = Request::builder()
            .uri("/api/v1/namespaces/d/configmaps")
            .body(Body::empty())
            .expect("request");
        let resp = app.call(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            duration_sum(&metrics.render(), "LIST"),
            None,
            "not counted before the body is done"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        assert_eq!(&body[..], b"part 0\npart 1\npart 2\n");
        let sum = duration_sum(&metrics.render(), "LIST").expect("LIST timed");
        assert!(sum >= 0.3, "timed to the last part: {sum}");
    }

    #[test]
    fn verbs_and_scopes_as_upstream() {
        let pods = "/api/v1/namespaces/d/pods";
        assert_eq!(
            c(Method::GET, pods, None, ""),
            s("LIST", "pods", "", "namespace")
        );
        assert_eq!(
            c(Method::GET, pods, Some("watch=true"), ""),
            s("WATCH", "pods", "", "namespace")
        );
        assert_eq!(
            c(Method::GET, "/api/v1/pods", Some("watch=1"), ""),
            s("WATCH", "pods", "", "cluster")
        );
        assert_eq!(
            c(Method::POST, pods, None, ""),
            s("POST", "pods", "", "resource")
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/d/pods/p", None, ""),
            s("GET", "pods", "", "resource")
        );
        assert_eq!(
            c(Method::PUT, "/api/v1/namespaces/d/pods/p/status", None, ""),
            s("PUT", "pods", "status", "resource")
        );
        assert_eq!(
            c(
                Method::PATCH,
                "/apis/apps/v1/namespaces/d/deployments/x",
                None,
                "application/apply-patch+yaml"
            ),
            s("APPLY", "deployments", "", "resource")
        );
        assert_eq!(
            c(Method::DELETE, pods, None, ""),
            s("DELETE", "pods", "", "namespace")
        );
        assert_eq!(
            c(Method::GET, "/api/v1/nodes", None, ""),
            s("LIST", "nodes", "", "cluster")
        );
        assert_eq!(
            c(Method::GET, "/healthz", None, ""),
            s("GET", "", "/healthz", "")
        );
        assert_eq!(
            c(Method::GET, "/nope/x", None, ""),
            s("GET", "", "other", "")
        );
        assert_eq!(
            c(Method::GET, "/api/v1/bogus", None, ""),
            s("GET", "", "other", "")
        );
        assert_eq!(
            c(Method::GET, "/apis/evil.example/v1", None, ""),
            s("GET", "", "other", "")
        );
    }

    #[test]
    fn exposition() {
        let m = Metrics::default();
        let l = classify(&Method::GET, "/api/v1/namespaces/d/pods", None, "");
        m.finish(&l, 200, Some(0.01));
        m.finish(&l, 200, Some(100.0));
        let text = m.render();
        assert!(text.contains(
            "apiserver_request_total{verb=\"LIST\",dry_run=\"\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\",scope=\"namespace\",component=\"apiserver\",code=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 0"));
        assert!(text.contains("le=\"0.025\"} 1"));
        assert!(text.contains("le=\"60\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains("apiserver_request_duration_seconds_count{"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
