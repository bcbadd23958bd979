//! The HTTP front: routing of the Kubernetes URL space, content negotiation, and the
//! handlers for each verb. Handlers speak the client's version; the registry the storage one.

mod apply;
mod handlers;
pub mod metrics;
mod patching;
pub mod request;
mod response;
mod subresources;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::registry::Registry;
use crate::{discovery, openapi};
use request::{Query, parse_target};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    pub inner: Arc<Shared>,
}

/// Long-lived, read-mostly server facts.
pub struct Shared {
    /// `host:port` clients should use, for discovery's serverAddressByClientCIDRs.
    pub server_address: String,
}

/// The whole API as one router: one handler, which times and counts every request
/// (`metrics::track`) around `dispatch`; TLS and authentication wrap it in `server`.
pub fn router(state: AppState) -> Router {
    let metrics = Arc::new(metrics::Metrics::default());
    Router::new()
        .fallback(move |state: State<AppState>, req: Request| {
            metrics::track(metrics.clone(), req, move |req| dispatch(state, req))
        })
        .with_state(state)
        .layer(compression())
}

/// Upstream's response compression (feature APIResponseCompression, on by default): gzip at
/// level 1 (`defaultGzipContentEncodingLevel`) when the client accepts it and the answer is at
/// least 128 KiB (`defaultGzipThresholdBytes`) or streamed (an unlimited LIST longer than one
/// store page, always far above that); `Content-Encoding: gzip` and `Vary: Accept-Encoding`.
/// Go clients (kubectl, client-go) ask for gzip on every request and decompress transparently.
/// Watches are never compressed ([`Uncompressed`]).
fn compression() -> tower_http::compression::CompressionLayer<
    tower_http::compression::predicate::And<
        tower_http::compression::predicate::SizeAbove,
        NotMarkedUncompressed,
    >,
> {
    use tower_http::compression::predicate::{Predicate as _, SizeAbove};
    tower_http::compression::CompressionLayer::new()
        .quality(tower_http::CompressionLevel::Fastest)
        .compress_when(SizeAbove::new(GZIP_THRESHOLD_BYTES).and(NotMarkedUncompressed))
}

/// Upstream's `defaultGzipThresholdBytes`.
pub const GZIP_THRESHOLD_BYTES: u64 = 128 * 1024;

/// A response extension: never compress this answer (a watch stream).
#[derive(Clone, Copy, Debug)]
pub struct Uncompressed;

/// The compression predicate that honours [`Uncompressed`].
#[derive(Clone, Copy, Debug)]
pub struct NotMarkedUncompressed;

impl tower_http::compression::Predicate for NotMarkedUncompressed {
    fn should_compress<B>(&self, response: &axum::http::Response<B>) -> bool
    where
        B: axum::body::HttpBody,
    {
        response.extensions().get::<Uncompressed>().is_none()
    }
}

async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let accept = req
        .headers()
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let is_get = req.method() == Method::GET;
    let result = match segs.as_slice() {
        ["version"] if is_get => Ok(rendered(discovery::version())),
        ["api"] if is_get => Ok(rendered(discovery::api(
            &accept,
            &state.inner.server_address,
        ))),
        ["apis"] if is_get => Ok(rendered(discovery::apis(&accept))),
        ["api", "v1"] if is_get => discovery::api_resource_list("", "v1")
            .map(rendered)
            .ok_or(ApiError::NoRoute),
        ["apis", group] if is_get => discovery::api_group(group)
            .map(rendered)
            .ok_or(ApiError::NoRoute),
        ["apis", group, version] if is_get => discovery::api_resource_list(group, version)
            .map(rendered)
            .ok_or(ApiError::NoRoute),
        ["openapi", "v2"] if is_get => Ok(openapi::v2_response(req.headers())),
        ["openapi", "v3"] if is_get => Ok(openapi::v3_index_response(req.headers())),
        ["openapi", "v3", rest @ ..] if is_get => {
            let hash = openapi_hash(req.uri().query());
            openapi::v3_response(&rest.join("/"), hash.as_deref(), req.headers())
                .ok_or(ApiError::NoRoute)
        }
        ["metrics"] if is_get => Ok(metrics::response(
            req.extensions().get::<Arc<metrics::Metrics>>(),
        )),
        ["healthz"] | ["livez"] | ["readyz"] => health(&state).await,
        ["healthz" | "livez" | "readyz", _check] => health(&state).await,
        ["api", "v1", rest @ ..] if !rest.is_empty() => resource(&state, "", "v1", rest, req).await,
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            resource(&state, group, version, rest, req).await
        }
        _ => Err(ApiError::NoRoute),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The `hash` query parameter of an `/openapi/v3/...` request.
fn openapi_hash(query: Option<&str>) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query?)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == "hash").then_some(v))
}

fn rendered(r: discovery::Rendered) -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, r.content_type)],
        r.body,
    )
        .into_response()
}

async fn health(state: &AppState) -> Result<Response, ApiError> {
    use capstan_store::Store;
    match state.registry.store().health().await {
        Ok(()) => Ok((
            StatusCode::OK,
            [("content-type", "text/plain; charset=utf-8")],
            "ok",
        )
            .into_response()),
        Err(e) => Ok((
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain; charset=utf-8")],
            format!("[-]etcd failed: {e}\nhealthz check failed"),
        )
            .into_response()),
    }
}

async fn resource(
    state: &AppState,
    group: &str,
    version: &str,
    segs: &[&str],
    req: Request,
) -> Result<Response, ApiError> {
    let target = parse_target(group, version, segs)?;
    let query = Query::parse(req.uri().query())?;
    let (parts, body) = req.into_parts();
    let ctx = handlers::Ctx {
        state,
        target: &target,
        query: &query,
        headers: &parts.headers,
    };
    match (
        parts.method,
        target.name.is_some(),
        target.subresource.as_deref(),
    ) {
        (Method::GET, false, None) if query.bool("watch")? => watch::watch(&ctx).await,
        (Method::GET, false, None) => handlers::list(&ctx).await,
        (Method::POST, false, None) => handlers::create(&ctx, read_body(body).await?).await,
        (Method::DELETE, false, None) => {
            handlers::delete_collection(&ctx, read_body(body).await?).await
        }
        (Method::GET, true, None | Some("status")) => handlers::get(&ctx).await,
        (Method::PUT, true, None) => {
            handlers::update(&ctx, read_body(body).await?, crate::registry::Part::Main).await
        }
        (Method::PUT, true, Some("status")) => {
            handlers::update(&ctx, read_body(body).await?, crate::registry::Part::Status).await
        }
        (Method::PATCH, true, None) => {
            handlers::patch(&ctx, read_body(body).await?, crate::registry::Part::Main).await
        }
        (Method::PATCH, true, Some("status")) => {
            handlers::patch(&ctx, read_body(body).await?, crate::registry::Part::Status).await
        }
        (Method::DELETE, true, None) => handlers::delete(&ctx, read_body(body).await?).await,
        (method, true, Some(sub)) => subresources::handle(&ctx, &method, sub, body).await,
        (method, _, _) => Err(ApiError::method_not_allowed(
            target.def,
            &verb_name(&method),
        )),
    }
}

fn verb_name(m: &Method) -> String {
    match *m {
        Method::GET => "get".into(),
        Method::POST => "create".into(),
        Method::PUT => "update".into(),
        Method::PATCH => "patch".into(),
        Method::DELETE => "delete".into(),
        ref other => other.as_str().to_ascii_lowercase(),
    }
}

/// Read a request body, refusing more than upstream's 3 MiB with 413.
pub(crate) async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, request::MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            if too_large {
                request::too_large()
            } else {
                ApiError::BadRequest(format!("reading the request body: {e}"))
            }
        })
}
