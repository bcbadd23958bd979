#![allow(clippy::expect_used)]

use std::collections::BTreeSet;

use prost::Message as _;
use serde_json::{Value, json};

use super::*;

fn doc(key: &str) -> Value {
    v3_document(key)
        .map(|d| d.to_value())
        .unwrap_or(Value::Null)
}

fn index_paths() -> Map<String, Value> {
    v3_index().to_value()["paths"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn index_lists_every_group_version_with_its_hash() {
    let paths = index_paths();
    for (group, versions) in resources::groups() {
        for version in versions {
            let key = gv_key(group, version);
            let url = paths[&key]["serverRelativeURL"]
                .as_str()
                .unwrap_or_default();
            let hash = v3_hash(&key).unwrap_or_default();
            assert_eq!(url, format!("/openapi/v3/{key}?hash={hash}"));
            assert_eq!(hash.len(), 32);
            assert!(
                hash.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            );
            let body = v3_document(&key).map(|d| d.body).unwrap_or_default();
            assert_eq!(hash_hex(&body), hash, "{key}");
        }
    }
    assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1beta1"));
    assert_eq!(
        v3_document("/apis/apps/v1").map(|d| d.content_type),
        Some(JSON)
    );
    assert!(v3_document("apis/nope/v1").is_none());
}

#[test]
fn hash_follows_content() {
    let a = hash_hex(br#"{"openapi":"3.0.0"}"#);
    assert_eq!(a, hash_hex(br#"{"openapi":"3.0.0"}"#));
    assert_ne!(a, hash_hex(br#"{"openapi":"3.0.1"}"#));
    assert_ne!(v3_hash("api/v1"), v3_hash("apis/apps/v1"));
}

/// What kubectl's OpenAPI v3 query-param verifier does: the first PATCH operation with the
/// object's GVK must list `fieldValidation`.
fn patch_supports_field_validation(doc: &Value, group: &str, version: &str, kind: &str) -> bool {
    let want = json!({"group": group, "version": version, "kind": kind});
    let Some(paths) = doc["paths"].as_object() else {
        return false;
    };
    paths.values().any(|item| {
        let op = &item["patch"];
        op["x-kubernetes-group-version-kind"] == want
            && op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
    })
}

#[test]
fn every_creatable_kind_has_a_patch_with_field_validation() {
    for r in resources::RESOURCES.iter().filter(|r| r.has_verb("create")) {
        let d = doc(&gv_key(r.group, r.version));
        assert!(
            patch_supports_field_validation(&d, r.group, r.version, r.kind),
            "{}/{} {}",
            r.group,
            r.version,
            r.kind
        );
    }
    let apps = doc("apis/apps/v1");
    let p = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(p["operationId"], "patchAppsV1NamespacedDeployment");
    assert_eq!(p["x-kubernetes-action"], "patch");
    let names: Vec<&str> = p["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["dryRun", "fieldManager", "fieldValidation", "force"]
    );
    assert!(p["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
    let scale =
        &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
    assert_eq!(scale["operationId"], "patchAppsV1NamespacedDeploymentScale");
    assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
    let core = doc("api/v1");
    assert_eq!(
        core["paths"]["/api/v1/pods"]["get"]["operationId"],
        "listCoreV1PodForAllNamespaces"
    );
    assert_eq!(
        core["paths"]["/api/v1/nodes/{name}/status"]["put"]["operationId"],
        "replaceCoreV1NodeStatus"
    );
    assert_eq!(
        core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/exec"]["post"]["operationId"],
        "connectCoreV1PostNamespacedPodExec"
    );
    assert_eq!(
        core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]["operationId"],
        "readCoreV1NamespacedPodLog"
    );
    assert_eq!(
        core["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["delete"]["operationId"],
        "deleteCoreV1CollectionNamespacedConfigMap"
    );
}

fn schema_of<'a>(d: &'a Value, name: &str) -> &'a Value {
    &d["components"]["schemas"][name]
}

/// Follows `allOf: [{$ref}]` / `$ref` inside one document.
fn resolve<'a>(d: &'a Value, s: &'a Value) -> &'a Value {
    let s = s["allOf"].get(0).unwrap_or(s);
    match s["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix(schemas::REF_PREFIX))
    {
        Some(name) => schema_of(d, name),
        None => s,
    }
}

/// A field path under a schema, the way `kubectl explain` walks it; returns the property
/// schema (with its own description) at the end.
fn field<'a>(d: &'a Value, root: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = root;
    let mut prop = root;
    for p in path {
        prop = &resolve(d, cur)["properties"][*p];
        cur = prop;
    }
    prop
}

fn find_by_gvk<'a>(d: &'a Value, group: &str, version: &str, kind: &str) -> Option<&'a Value> {
    let want = json!([{"group": group, "kind": kind, "version": version}]);
    d["components"]["schemas"]
        .as_object()?
        .values()
        .find(|s| s["x-kubernetes-group-version-kind"] == want)
}

#[test]
fn deployment_schema_explains_strategy() {
    for (key, version) in [
        ("apis/apps/v1", "v1"),
        ("apis/apps/v1beta1", "v1beta1"),
        ("apis/apps/v1beta2", "v1beta2"),
    ] {
        let d = doc(key);
        let dep = find_by_gvk(&d, "apps", version, "Deployment").unwrap_or(&Value::Null);
        assert!(
            dep["description"]
                .as_str()
                .is_some_and(|s| s.contains("Deployment")),
            "{key}"
        );
        assert!(
            dep.get("required").is_none(),
            "metadata must not be required"
        );
        let strategy = field(&d, dep, &["spec", "strategy"]);
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        let surge = field(&d, dep, &["spec", "strategy", "rollingUpdate", "maxSurge"]);
        assert!(
            surge["description"]
                .as_str()
                .is_some_and(|s| s.contains("maximum number of pods")),
            "{surge}"
        );
        let surge = resolve(&d, surge);
        assert_eq!(surge["x-kubernetes-int-or-string"], true);
        let containers = field(&d, dep, &["spec", "template", "spec", "containers"]);
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    }
    let ext = doc("apis/extensions/v1beta1");
    assert!(find_by_gvk(&ext, "extensions", "v1beta1", "Deployment").is_some());
    assert!(find_by_gvk(&ext, "extensions", "v1beta1", "DeploymentList").is_some());
}

#[test]
fn every_served_kind_has_a_real_schema_and_refs_resolve() {
    for (key, d) in v3_values(&CATALOGUE) {
        let schemas = d["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut refs = Vec::new();
        schemas::collect_refs(&d, &mut refs);
        for r in refs {
            assert!(schemas.contains_key(&r), "{key}: dangling $ref {r}");
        }
    }
    for r in resources::RESOURCES {
        let d = doc(&gv_key(r.group, r.version));
        let s = find_by_gvk(&d, r.group, r.version, r.kind);
        assert!(s.is_some(), "{} {}", r.api_version(), r.kind);
        let s = s.unwrap_or(&Value::Null);
        assert!(
            s.get("x-kubernetes-preserve-unknown-fields").is_none(),
            "{} has only a placeholder schema",
            r.kind
        );
        assert!(s["properties"]["metadata"].is_object(), "{}", r.kind);
        let list = format!("{}List", r.kind);
        assert!(
            find_by_gvk(&d, r.group, r.version, &list).is_some(),
            "{list}"
        );
    }
    let core = doc("api/v1");
    assert!(find_by_gvk(&core, "policy", "v1", "Eviction").is_some());
    let meta = schema_of(&core, schemas::OBJECT_META);
    assert_eq!(
        meta["properties"]["ownerReferences"]["x-kubernetes-patch-merge-key"],
        "uid"
    );
}

#[test]
fn swagger_v2_uses_definitions() {
    let v2 = v2().to_value();
    assert_eq!(v2["swagger"], "2.0");
    let defs = v2["definitions"].as_object().cloned().unwrap_or_default();
    assert!(defs.contains_key("io.k8s.api.apps.v1.Deployment"));
    assert!(defs.contains_key("io.k8s.api.apps.v1beta1.Deployment"));
    let text = String::from_utf8_lossy(&super::v2().body).to_string();
    assert!(!text.contains("#/components/"));
    let patch = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    let params = patch["parameters"].as_array().cloned().unwrap_or_default();
    assert_eq!(params[0]["in"], "body");
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["type"] == "string")
    );
    assert!(patch["consumes"].as_array().is_some_and(|c| c.len() == 4));
    let mut refs = Vec::new();
    let mut v2_refs = |v: &Value| {
        let s = v.to_string();
        for part in s.split("\"#/definitions/").skip(1) {
            refs.push(part.split('"').next().unwrap_or_default().to_string());
        }
    };
    v2_refs(&v2);
    for r in refs {
        assert!(defs.contains_key(&r), "dangling {r}");
    }
}

// ---------------------------------------------------------------------------------------
// /openapi/v2 as gnostic protobuf

fn decoded() -> gnostic::Document {
    gnostic::Document::decode(v2_protobuf().body).expect("the encoded document decodes")
}

fn yaml_of(exts: &[gnostic::NamedAny], name: &str) -> Option<Value> {
    let e = exts.iter().find(|e| e.name == name)?;
    serde_yaml::from_str(&e.value.as_ref()?.yaml).ok()
}

fn definition<'a>(doc: &'a gnostic::Document, name: &str) -> &'a gnostic::Schema {
    doc.definitions
        .iter()
        .flat_map(|d| &d.additional_properties)
        .find(|d| d.name == name)
        .and_then(|d| d.value.as_ref())
        .unwrap_or_else(|| panic!("definition {name}"))
}

fn property<'a>(s: &'a gnostic::Schema, name: &str) -> &'a gnostic::Schema {
    s.properties
        .iter()
        .flat_map(|p| &p.additional_properties)
        .find(|p| p.name == name)
        .and_then(|p| p.value.as_ref())
        .unwrap_or_else(|| panic!("property {name}"))
}

#[test]
fn protobuf_v2_decodes_to_the_json_document() {
    let doc = decoded();
    assert_eq!(doc.swagger, "2.0");
    let info = doc.info.clone().unwrap_or_default();
    assert_eq!(
        (info.title.as_str(), info.version.as_str()),
        ("Kubernetes", GIT_VERSION)
    );
    // Same document as the JSON: converting it again gives the same message.
    assert_eq!(doc, v2proto::document(&v2().to_value()));
    let json = v2().to_value();
    let n_defs = json["definitions"].as_object().map_or(0, Map::len);
    assert_eq!(
        doc.definitions
            .as_ref()
            .map_or(0, |d| d.additional_properties.len()),
        n_defs
    );
    let n_paths = json["paths"].as_object().map_or(0, Map::len);
    assert_eq!(doc.paths.as_ref().map_or(0, |p| p.path.len()), n_paths);

    let dep = definition(&doc, "io.k8s.api.apps.v1.Deployment");
    assert_eq!(
        dep.r#type.as_ref().map(|t| t.value.clone()),
        Some(vec!["object".to_string()])
    );
    assert_eq!(
        yaml_of(&dep.vendor_extension, "x-kubernetes-group-version-kind"),
        Some(json!([{"group": "apps", "version": "v1", "kind": "Deployment"}]))
    );
    // A reference with a description beside it (allOf unwrapped), as kube-openapi's model needs.
    let spec = property(dep, "spec");
    assert_eq!(spec.xref, "#/definitions/io.k8s.api.apps.v1.DeploymentSpec");
    assert!(spec.all_of.is_empty() && !spec.description.is_empty());
    let strategy = property(
        definition(&doc, "io.k8s.api.apps.v1.DeploymentSpec"),
        "strategy",
    );
    assert_eq!(
        strategy.xref,
        "#/definitions/io.k8s.api.apps.v1.DeploymentStrategy"
    );
    assert_eq!(
        yaml_of(&strategy.vendor_extension, "x-kubernetes-patch-strategy"),
        Some(json!("retainKeys"))
    );

    // Untyped scalars are strings, as in upstream's Swagger document.
    let int_or_string = definition(&doc, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_eq!(
        int_or_string.r#type.as_ref().map(|t| t.value.clone()),
        Some(vec!["string".to_string()])
    );
    assert_eq!(int_or_string.format, "int-or-string");
    let quantity = definition(&doc, "io.k8s.apimachinery.pkg.api.resource.Quantity");
    assert_eq!(
        quantity.r#type.as_ref().map(|t| t.value.clone()),
        Some(vec!["string".to_string()])
    );

    let containers = property(definition(&doc, "io.k8s.api.core.v1.PodSpec"), "containers");
    assert_eq!(
        yaml_of(&containers.vendor_extension, "x-kubernetes-patch-merge-key"),
        Some(json!("name"))
    );
    assert_eq!(
        yaml_of(&containers.vendor_extension, "x-kubernetes-patch-strategy"),
        Some(json!("merge"))
    );
    let items = containers
        .items
        .as_ref()
        .map(|i| i.schema.as_slice())
        .unwrap_or_default();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].xref, "#/definitions/io.k8s.api.core.v1.Container");
}

/// What kubectl ≤ 1.28's OpenAPI v2 query-param verifier reads: the PATCH operation carrying
/// the GVK extension, with a `fieldValidation` query parameter.
#[test]
fn protobuf_v2_patch_operation_has_gvk_and_field_validation() {
    let doc = decoded();
    let item = doc
        .paths
        .iter()
        .flat_map(|p| &p.path)
        .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        .and_then(|p| p.value.clone())
        .expect("deployment path");
    let patch = item.patch.expect("patch operation");
    assert_eq!(patch.operation_id, "patchAppsV1NamespacedDeployment");
    assert_eq!(
        yaml_of(&patch.vendor_extension, "x-kubernetes-group-version-kind"),
        Some(json!({"group": "apps", "version": "v1", "kind": "Deployment"}))
    );
    assert_eq!(
        yaml_of(&patch.vendor_extension, "x-kubernetes-action"),
        Some(json!("patch"))
    );
    use gnostic::{NonBodyParameterOneof as NB, ParameterOneof as P, ParametersItemOneof as I};
    let params: Vec<&P> = patch
        .parameters
        .iter()
        .filter_map(|p| match &p.oneof {
            Some(I::Parameter(p)) => p.oneof.as_ref(),
            _ => None,
        })
        .collect();
    let Some(P::BodyParameter(body)) = params.first() else {
        panic!("first parameter is the body: {params:?}");
    };
    assert_eq!(
        body.schema.as_ref().map(|s| s.xref.as_str()),
        Some("#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch")
    );
    let field_validation = params.iter().find_map(|p| match p {
        P::NonBodyParameter(nb) => match &nb.oneof {
            Some(NB::QueryParameterSubSchema(q)) if q.name == "fieldValidation" => Some(q),
            _ => None,
        },
        _ => None,
    });
    let q = field_validation.expect("fieldValidation query parameter");
    assert_eq!((q.r#in.as_str(), q.r#type.as_str()), ("query", "string"));
    assert!(q.unique_items);
    let responses = patch.responses.unwrap_or_default();
    let ok = responses
        .response_code
        .iter()
        .find(|r| r.name == "200")
        .and_then(|r| r.value.clone());
    let Some(gnostic::ResponseValue {
        oneof: Some(gnostic::ResponseValueOneof::Response(ok)),
    }) = ok
    else {
        panic!("200 response: {ok:?}");
    };
    let Some(gnostic::SchemaItemOneof::Schema(schema)) = ok.schema.and_then(|s| s.oneof) else {
        panic!("200 response schema");
    };
    assert_eq!(schema.xref, "#/definitions/io.k8s.api.apps.v1.Deployment");
}

/// The constraints kube-openapi's v2 model (`NewOpenAPIData`, used by kubectl ≤ 1.28's explain
/// and client-side apply) puts on every definition: a reference points into `#/definitions/`
/// at an existing one and has no type or properties beside it, at most one type, arrays have
/// exactly one item schema, types are the JSON Schema ones.
#[test]
fn protobuf_v2_definitions_satisfy_kube_openapi_model() {
    let doc = decoded();
    let defs = doc
        .definitions
        .clone()
        .unwrap_or_default()
        .additional_properties;
    let names: BTreeSet<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    fn check(s: &gnostic::Schema, at: &str, names: &BTreeSet<&str>) {
        let types = s
            .r#type
            .as_ref()
            .map(|t| t.value.clone())
            .unwrap_or_default();
        if !s.xref.is_empty() {
            let target = s
                .xref
                .strip_prefix("#/definitions/")
                .unwrap_or_else(|| panic!("{at}: reference outside definitions {}", s.xref));
            assert!(names.contains(target), "{at}: dangling {target}");
            assert!(
                types.is_empty() && s.properties.is_none(),
                "{at}: ref with a type"
            );
            return;
        }
        assert!(types.len() <= 1, "{at}: types {types:?}");
        if let Some(t) = types.first() {
            assert!(
                ["object", "array", "string", "integer", "number", "boolean"].contains(&t.as_str()),
                "{at}: type {t}"
            );
        }
        if types.first().map(String::as_str) == Some("array") {
            let items = s
                .items
                .as_ref()
                .map(|i| i.schema.as_slice())
                .unwrap_or_default();
            assert_eq!(items.len(), 1, "{at}: array items");
        }
        assert!(
            s.all_of.len() != 1 || s.all_of[0].xref.is_empty(),
            "{at}: allOf around a lone reference"
        );
        for p in s.properties.iter().flat_map(|p| &p.additional_properties) {
            if let Some(v) = &p.value {
                check(v, &format!("{at}.{}", p.name), names);
            }
        }
        for i in s.items.iter().flat_map(|i| &i.schema) {
            check(i, &format!("{at}[]"), names);
        }
        if let Some(gnostic::AdditionalPropertiesOneof::Schema(a)) = s
            .additional_properties
            .as_ref()
            .and_then(|a| a.oneof.as_ref())
        {
            check(a, &format!("{at}{{}}"), names);
        }
    }
    assert!(names.len() > 100);
    for d in &defs {
        if let Some(s) = &d.value {
            check(s, &d.name, &names);
        }
    }
}

#[test]
fn v2_negotiation_follows_upstream() {
    use V2Format::{Json, Protobuf};
    for (accept, want) in [
        ("", Some(Json)),
        ("*/*", Some(Json)),
        ("application/json", Some(Json)),
        ("application/*", Some(Json)),
        (
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            Some(Protobuf),
        ),
        (
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            Some(Protobuf),
        ),
        (
            "application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            Some(Protobuf),
        ),
        (
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json",
            Some(Protobuf),
        ),
        (
            "*/*, application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            Some(Protobuf),
        ),
        ("application/json;q=0, */*;q=0.1", Some(Json)),
        ("text/html, application/yaml", None),
        ("application/json;q=0", None),
    ] {
        assert_eq!(v2_negotiate(accept), want, "{accept:?}");
    }
}

/// Request headers from (name, value) pairs.
fn header_map(pairs: &[(axum::http::HeaderName, &str)]) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(k.clone(), v.parse().expect("header value"));
    }
    h
}

#[test]
fn v2_response_headers_and_revalidation() {
    use axum::http::{StatusCode, header};
    let get = |pairs: &[(header::HeaderName, &str)]| v2_response(&header_map(pairs));
    let pb = get(&[(
        header::ACCEPT,
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    )]);
    assert_eq!(pb.status(), StatusCode::OK);
    assert_eq!(pb.headers()[header::CONTENT_TYPE], V2_PROTOBUF);
    assert_eq!(pb.headers()[header::VARY], "accept");
    let etag = pb.headers()[header::ETAG]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34,
        "{etag}"
    );
    let json = get(&[]);
    assert_eq!(json.headers()[header::CONTENT_TYPE], JSON);
    assert_eq!(json.headers()[header::ETAG], etag.as_str());
    let cached = get(&[
        (header::ACCEPT, V2_PROTOBUF),
        (header::IF_NONE_MATCH, &format!("\"other\", W/{etag}")),
    ]);
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    let stale = get(&[(header::IF_NONE_MATCH, "\"other\"")]);
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(
        get(&[(header::ACCEPT, "text/html")]).status(),
        StatusCode::NOT_ACCEPTABLE
    );
}

#[test]
fn v3_responses_cache_and_redirect_as_upstream() {
    use axum::http::{StatusCode, header};
    let headers = header_map;
    let current = v3_hash("apis/apps/v1").expect("apps/v1 served");
    let etag = format!("\"{current}\"");

    let plain = v3_response("apis/apps/v1", None, &headers(&[])).expect("served");
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(plain.headers()[header::CONTENT_TYPE], JSON);
    assert_eq!(plain.headers()[header::VARY], "Accept");
    assert_eq!(plain.headers()[header::ETAG], etag.as_str());
    assert!(plain.headers().get(header::CACHE_CONTROL).is_none());

    let pinned = v3_response("apis/apps/v1", Some(current), &headers(&[])).expect("served");
    assert_eq!(pinned.status(), StatusCode::OK);
    assert_eq!(pinned.headers()[header::CACHE_CONTROL], "public, immutable");
    let expires = pinned.headers()[header::EXPIRES]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(expires.ends_with(" GMT"), "{expires}");

    let moved = v3_response("/apis/apps/v1", Some("0BAD"), &headers(&[])).expect("served");
    assert_eq!(moved.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        moved.headers()[header::LOCATION],
        format!("/openapi/v3/apis/apps/v1?hash={current}").as_str()
    );

    let cached = v3_response(
        "apis/apps/v1",
        Some(current),
        &headers(&[(header::IF_NONE_MATCH, &etag)]),
    )
    .expect("served");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(cached.headers()[header::ETAG], etag.as_str());

    let refused = v3_response(
        "api/v1",
        None,
        &headers(&[(
            header::ACCEPT,
            "application/com.github.proto-openapi.spec.v3.v1.0+protobuf",
        )]),
    )
    .expect("served");
    assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE);
    let json_too = v3_response(
        "api/v1",
        None,
        &headers(&[(
            header::ACCEPT,
            "application/com.github.proto-openapi.spec.v3.v1.0+protobuf, application/json;q=0.9",
        )]),
    )
    .expect("served");
    assert_eq!(json_too.status(), StatusCode::OK);
    assert!(v3_response("apis/nope/v1", None, &headers(&[])).is_none());

    let index = v3_index_response(&headers(&[]));
    assert_eq!(index.status(), StatusCode::OK);
    let index_etag = index.headers()[header::ETAG]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(index_etag.len() == 34, "{index_etag}");
    let index_cached = v3_index_response(&headers(&[(header::IF_NONE_MATCH, &index_etag)]));
    assert_eq!(index_cached.status(), StatusCode::NOT_MODIFIED);
}
