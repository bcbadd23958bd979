//! Subresources other than status: `scale` (autoscaling/v1 Scale over Deployments and
//! ReplicaSets), `pods/binding`, `pods/eviction`, `namespaces/finalize`, and the node-proxied
//! ones (`log`, `exec`, `portforward`), which need a kubelet.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::handlers::Ctx;
use super::patching::patched_object;
use super::request;
use super::response::{self, Format};
use crate::error::{ApiError, Status};
use crate::object::{self, Object};
use crate::registry::{DeleteParams, Part};

pub async fn handle(
    ctx: &Ctx<'_>,
    method: &Method,
    sub: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let def = ctx.target.def;
    match (sub, method) {
        ("scale", &Method::GET) => get_scale(ctx).await,
        ("scale", &Method::PUT | &Method::PATCH) => {
            let body = super::read_body(body).await?;
            set_scale(ctx, method, &body).await
        }
        ("binding", &Method::POST) => bind(ctx, &super::read_body(body).await?).await,
        ("eviction", &Method::POST) => evict(ctx, &super::read_body(body).await?).await,
        ("finalize", &Method::PUT) => finalize(ctx, &super::read_body(body).await?).await,
        ("log" | "exec" | "portforward" | "attach", _) => node_proxy(ctx, sub).await,
        _ => Err(ApiError::method_not_allowed(
            def,
            &method.as_str().to_ascii_lowercase(),
        )),
    }
}

fn scale_of(obj: &Object) -> Value {
    let meta = object::meta(obj).cloned().unwrap_or_default();
    let selector = object::path(obj, "spec.selector")
        .map(selector_string)
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": object::path(obj, "spec.replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": object::path(obj, "status.replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// A label selector object as its string form (`app=web,tier in (a,b)`).
fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

async fn get_scale(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let obj = ctx
        .state
        .registry
        .get(ctx.target.def, ctx.ns(), ctx.name())
        .await?;
    let scale = scale_of(&obj);
    Ok(response::encode(
        StatusCode::OK,
        ctx.format().json_only(),
        &scale,
        &[],
    ))
}

async fn set_scale(ctx: &Ctx<'_>, method: &Method, body: &[u8]) -> Result<Response, ApiError> {
    let def = ctx.target.def;
    let params = ctx.write_params()?;
    let media = request::content_type(ctx.headers);
    let doc = request::decode_body(body, &media)?;
    let is_put = method == Method::PUT;
    let updated = ctx
        .state
        .registry
        .guaranteed_update(def, ctx.ns(), ctx.name(), Part::Main, &params, |mut cur| {
            let current = scale_of(&cur);
            let wanted = if is_put {
                match &doc {
                    Value::Object(o) => o.clone(),
                    _ => return Err(ApiError::BadRequest("a Scale object is required".into())),
                }
            } else {
                patched_object(&media, &current, &doc, "autoscaling/Scale")?
            };
            if let Some(rv) = object::resource_version(&wanted)
                && Some(rv) != object::resource_version(&cur)
            {
                return Err(ApiError::conflict(def, ctx.name()));
            }
            let replicas = object::path(&wanted, "spec.replicas");
            let replicas = match replicas {
                None | Some(Value::Null) => 0,
                Some(v) => v
                    .as_i64()
                    .filter(|r| *r >= 0 && *r <= i64::from(i32::MAX))
                    .ok_or_else(|| ApiError::Invalid {
                        group: "autoscaling".into(),
                        kind: "Scale".into(),
                        qualified_kind: "Scale.autoscaling".into(),
                        name: ctx.name().to_string(),
                        causes: vec![crate::error::Cause::invalid(
                            "spec.replicas",
                            v,
                            "must be greater than or equal to 0",
                        )],
                    })?,
            };
            if let Some(spec) = cur.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".into(), json!(replicas));
            } else {
                cur.insert("spec".into(), json!({"replicas": replicas}));
            }
            Ok(cur)
        })
        .await?;
    Ok(response::encode(
        StatusCode::OK,
        Format::Json,
        &scale_of(&updated),
        &[],
    ))
}

async fn bind(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let def = ctx.target.def;
    let params = ctx.write_params()?;
    let binding = request::decode_body(body, &request::content_type(ctx.headers))?;
    let node = binding
        .get("target")
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::Invalid {
            group: String::new(),
            kind: "Binding".into(),
            qualified_kind: "Binding".into(),
            name: ctx.name().to_string(),
            causes: vec![crate::error::Cause::required("target.name")],
        })?
        .to_string();
    ctx.state
        .registry
        .guaranteed_update(
            def,
            ctx.ns(),
            ctx.name(),
            Part::Binding,
            &params,
            |mut pod| {
                if object::is_deleting(&pod) {
                    return Err(ApiError::Conflict {
                        group: String::new(),
                        resource: "pods".into(),
                        name: ctx.name().to_string(),
                        detail: format!(
                            "pod {} is being deleted, cannot be assigned to a host",
                            ctx.name()
                        ),
                        causes: Vec::new(),
                    });
                }
                if let Some(cur) = object::path(&pod, "spec.nodeName")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                {
                    return Err(ApiError::Conflict {
                        group: String::new(),
                        resource: "pods".into(),
                        name: ctx.name().to_string(),
                        detail: format!("pod {} is already assigned to node {cur:?}", ctx.name()),
                        causes: Vec::new(),
                    });
                }
                if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("nodeName".into(), json!(node));
                }
                Ok(pod)
            },
        )
        .await?;
    let status = Status {
        code: 201,
        ..Status::success("", "", "", "")
    };
    let mut v = status.to_value();
    if let Some(m) = v.as_object_mut() {
        m.remove("details");
    }
    Ok(response::encode(StatusCode::CREATED, Format::Json, &v, &[]))
}

async fn evict(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let mut params = DeleteParams::default();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let ev = request::decode_body(body, &request::content_type(ctx.headers))?;
        if let Some(g) = ev
            .get("deleteOptions")
            .and_then(|o| o.get("gracePeriodSeconds"))
            .and_then(Value::as_i64)
        {
            params.grace_period_seconds = Some(g);
        }
    }
    ctx.state
        .registry
        .delete(ctx.target.def, ctx.ns(), ctx.name(), &params)
        .await?;
    let status = Status {
        code: 201,
        ..Status::success("", "", "", "")
    };
    let mut v = status.to_value();
    if let Some(m) = v.as_object_mut() {
        m.remove("details");
    }
    Ok(response::encode(StatusCode::CREATED, Format::Json, &v, &[]))
}

/// `PUT /api/v1/namespaces/{name}/finalize`: only `spec.finalizers` changes; when it becomes
/// empty on a terminating namespace, the namespace is removed.
async fn finalize(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let def = ctx.target.def;
    let params = ctx.write_params()?;
    let doc = request::decode_body(body, &request::content_type(ctx.headers))?;
    let finalizers = doc
        .get("spec")
        .and_then(|s| s.get("finalizers"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    let key = ctx.state.registry.key(def, None, ctx.name());
    let obj = ctx
        .state
        .registry
        .guaranteed_update(def, None, ctx.name(), Part::Main, &params, |mut ns| {
            if let Some(spec) = ns.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("finalizers".into(), finalizers.clone());
            } else {
                ns.insert("spec".into(), json!({"finalizers": finalizers.clone()}));
            }
            Ok(ns)
        })
        .await?;
    let empty = object::path(&obj, "spec.finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if empty && object::is_deleting(&obj) && object::finalizers(&obj).is_empty() && !params.dry_run
    {
        use capstan_store::Store;
        let rv = object::resource_version(&obj).and_then(|r| r.parse::<i64>().ok());
        match ctx.state.registry.store().delete(&key, rv).await {
            Ok(d) => ctx
                .state
                .registry
                .namespace_deleted(def, ctx.name(), d.revision),
            Err(capstan_store::StoreError::NotFound { .. }) => {}
            Err(e) => return Err(crate::registry::store_error(def, ctx.name(), e)),
        }
    }
    Ok(response::object(
        StatusCode::OK,
        def,
        obj,
        Format::Json,
        crate::table::IncludeObject::Metadata,
        &[],
    ))
}

/// Logs, exec and port-forward are served by the node's kubelet; until a node registers a
/// kubelet endpoint there is nowhere to send them. As upstream's LogLocation/streamLocation:
/// the container is checked first; logs of a pod with no node yet are empty (200), the
/// streaming subresources refuse such a pod.
async fn node_proxy(ctx: &Ctx<'_>, sub: &str) -> Result<Response, ApiError> {
    let pod = ctx
        .state
        .registry
        .get(ctx.target.def, ctx.ns(), ctx.name())
        .await?;
    if sub != "portforward" {
        check_container(&pod, ctx.name(), ctx.query.get("container").unwrap_or(""))?;
    }
    match object::path(&pod, "spec.nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        None if sub == "log" => Ok((
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "text/plain")],
            "",
        )
            .into_response()),
        None => Err(ApiError::BadRequest(format!(
            "pod {} does not have a host assigned",
            ctx.name()
        ))),
        Some(node) => Err(ApiError::ServiceUnavailable(format!(
            "{sub} for pod {} is served by the kubelet on node {node:?}, and no kubelet endpoint is registered for it",
            ctx.name()
        ))),
    }
}

/// Upstream's validateContainer: a named container must exist (in any container list); with
/// none named, the pod must have exactly one.
fn check_container(pod: &Object, name: &str, container: &str) -> Result<(), ApiError> {
    let names = |list: &str| -> Vec<String> {
        object::path(pod, list)
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let main = names("spec.containers");
    if container.is_empty() {
        return match main.len() {
            1 => Ok(()),
            0 => Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {name}"
            ))),
            _ => {
                let mut all = names("spec.initContainers");
                all.extend(main);
                all.extend(names("spec.ephemeralContainers"));
                Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    all.join(" ")
                )))
            }
        };
    }
    let known = [
        "spec.containers",
        "spec.initContainers",
        "spec.ephemeralContainers",
    ]
    .iter()
    .any(|l| names(l).iter().any(|n| n == container));
    if known {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "container {container} is not valid for pod {name}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_print_like_upstream() {
        let s = json!({"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["a","b"]},{"key":"x","operator":"DoesNotExist"}]});
        assert_eq!(selector_string(&s), "app=web,tier in (a,b),!x");
    }
}
