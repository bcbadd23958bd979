//! Component tests: the API server in-process on a port from the OS, driven by kube::Client
//! (the client our own scheduler and controllers use), over both stores.

mod common;

use std::time::Duration;

use common::{Backend, TestServer};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};

fn pod(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}
    }))
    .unwrap_or_default()
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}
            }
        }
    }))
    .unwrap_or_default()
}

fn api_err(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => (0, other.to_string()),
    }
}

async fn system_namespaces_exist(s: &TestServer) -> anyhow::Result<()> {
    let ns: Api<Namespace> = Api::all(s.client.clone());
    let names: Vec<String> = ns
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for want in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        anyhow::ensure!(
            names.iter().any(|n| n == want),
            "missing namespace {want}: {names:?}"
        );
    }
    Ok(())
}

async fn crud_and_metadata(s: &TestServer) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), "default");
    let created = pods
        .create(&PostParams::default(), &pod("a", json!({"app":"web"})))
        .await?;
    let meta = &created.metadata;
    anyhow::ensure!(
        meta.uid.as_deref().is_some_and(|u| u.len() == 36),
        "uid {:?}",
        meta.uid
    );
    anyhow::ensure!(meta.creation_timestamp.is_some());
    anyhow::ensure!(meta.generation == Some(1));
    let rv1: i64 = meta.resource_version.as_deref().unwrap_or("").parse()?;
    // AlreadyExists
    let e = pods
        .create(&PostParams::default(), &pod("a", json!({})))
        .await
        .err()
        .map(api_err);
    anyhow::ensure!(e == Some((409, "AlreadyExists".into())), "{e:?}");
    // get
    let got = pods.get("a").await?;
    anyhow::ensure!(got.metadata.resource_version == created.metadata.resource_version);
    // update with a stale resourceVersion conflicts
    let mut stale = got.clone();
    let mut fresh = got.clone();
    fresh.metadata.labels = Some([("app".to_string(), "web2".to_string())].into());
    let updated = pods.replace("a", &PostParams::default(), &fresh).await?;
    let rv2: i64 = updated
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or("")
        .parse()?;
    anyhow::ensure!(rv2 > rv1);
    anyhow::ensure!(
        updated.metadata.generation == Some(1),
        "labels must not bump generation"
    );
    stale.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let e = pods
        .replace("a", &PostParams::default(), &stale)
        .await
        .err()
        .map(api_err);
    anyhow::ensure!(e == Some((409, "Conflict".into())), "{e:?}");
    // generateName
    let mut g = pod("", json!({}));
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let gen_pod = pods.create(&PostParams::default(), &g).await?;
    anyhow::ensure!(
        gen_pod
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("gen-") && n.len() == 9)
    );
    // delete: unbound pods go at once
    pods.delete("a", &DeleteParams::default()).await?;
    let e = pods.get("a").await.err().map(api_err);
    anyhow::ensure!(e == Some((404, "NotFound".into())), "{e:?}");
    Ok(())
}

async fn lists_select_and_page(s: &TestServer) -> anyhow::Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    for i in 0..25 {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("cm-{i:02}"), "labels": {"parity": if i % 2 == 0 {"even"} else {"odd"}}},
            "data": {"i": i.to_string()}
        }))?;
        cms.create(&PostParams::default(), &cm).await?;
    }
    let even = cms
        .list(&ListParams::default().labels("parity=even"))
        .await?;
    anyhow::ensure!(even.items.len() == 13, "even: {}", even.items.len());
    let notin = cms
        .list(&ListParams::default().labels("parity notin (even)"))
        .await?;
    anyhow::ensure!(notin.items.len() == 12);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=cm-07"))
        .await?;
    anyhow::ensure!(by_name.items.len() == 1);
    // pages of 10 at one revision
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(10);
    let mut first_rv = None;
    loop {
        let page = cms.list(&lp).await?;
        first_rv.get_or_insert(page.metadata.resource_version.clone());
        seen.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => {
                // A write between pages must not show up in this listing.
                if seen.len() == 10 {
                    let extra: ConfigMap =
                        serde_json::from_value(json!({"metadata": {"name": "cm-zz"}}))?;
                    cms.create(&PostParams::default(), &extra).await?;
                }
                lp = ListParams::default().limit(10).continue_token(&c);
            }
            None => break,
        }
    }
    anyhow::ensure!(seen.len() == 25, "paged {} items", seen.len());
    let mut sorted = seen.clone();
    sorted.sort();
    anyhow::ensure!(sorted == seen, "pages out of order");
    // unknown field selector
    let e = cms
        .list(&ListParams::default().fields("spec.bogus=1"))
        .await
        .err()
        .map(api_err);
    anyhow::ensure!(e.as_ref().is_some_and(|(c, _)| *c == 400), "{e:?}");
    Ok(())
}

/// The LIST body a client gets for `items` (GET bodies, newline-trimmed) with the list's own
/// resourceVersion and continue token: upstream's envelope order, each item the GET bytes.
fn expected_list(
    kind: &str,
    api_version: &str,
    list: &str,
    items: &[String],
) -> anyhow::Result<String> {
    let v: Value = serde_json::from_str(list)?;
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    let cont = match v["metadata"]["continue"].as_str() {
        Some(c) => format!(",\"continue\":{}", serde_json::to_string(c)?),
        None => String::new(),
    };
    let remaining = match v["metadata"]["remainingItemCount"].as_i64() {
        Some(n) => format!(",\"remainingItemCount\":{n}"),
        None => String::new(),
    };
    Ok(format!(
        "{{\"kind\":\"{kind}List\",\"apiVersion\":\"{api_version}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"{cont}{remaining}}},\"items\":[{}]}}\n",
        items.join(",")
    ))
}

/// Every LIST item is byte for byte what GET answers for that object, also for a version
/// that needs converting, with label and field selectors and across pages.
async fn list_items_are_get_bytes(s: &TestServer) -> anyhow::Result<()> {
    let get = |path: String| async move {
        let (code, text) = s.raw("GET", &path, "", vec![]).await?;
        anyhow::ensure!(code == 200, "GET {path}: {code} {text}");
        Ok(text.trim_end_matches('\n').to_string())
    };
    let list = |path: String| async move {
        let (code, text) = s.raw("GET", &path, "", vec![]).await?;
        anyhow::ensure!(code == 200, "LIST {path}: {code} {text}");
        Ok::<_, anyhow::Error>(text)
    };
    let pods = "/api/v1/namespaces/default/pods";
    let mut names = Vec::new();
    for (i, app) in ["web", "db", "web"].iter().enumerate() {
        let name = format!("p{i}");
        let body = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": app},
                         "annotations": {"note": "quote \" backslash \\ brace } é \u{1}"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "nodeName": if i == 1 {"n1"} else {""}}});
        let (code, text) = s
            .raw("POST", pods, "application/json", serde_json::to_vec(&body)?)
            .await?;
        anyhow::ensure!(code == 201, "{code} {text}");
        names.push(name);
    }
    let mut gets = Vec::new();
    for n in &names {
        gets.push(get(format!("{pods}/{n}")).await?);
    }
    let all = list(pods.to_string()).await?;
    anyhow::ensure!(all == expected_list("Pod", "v1", &all, &gets)?, "{all}");
    let web = list(format!("{pods}?labelSelector=app%3Dweb")).await?;
    let want = [gets[0].clone(), gets[2].clone()];
    anyhow::ensure!(web == expected_list("Pod", "v1", &web, &want)?, "{web}");
    let on_n1 = list(format!("{pods}?fieldSelector=spec.nodeName%3Dn1")).await?;
    anyhow::ensure!(
        on_n1 == expected_list("Pod", "v1", &on_n1, &gets[1..2])?,
        "{on_n1}"
    );
    let page = list(format!("{pods}?limit=2")).await?;
    anyhow::ensure!(
        page == expected_list("Pod", "v1", &page, &gets[..2])?,
        "{page}"
    );
    anyhow::ensure!(page.contains("\"continue\":"), "{page}");
    // remainingItemCount: what follows the page, set only while nothing filters the list and
    // something follows (upstream's ListMeta rules).
    let want_remaining = gets.len() as i64 - 2;
    anyhow::ensure!(
        page.contains(&format!("\"remainingItemCount\":{want_remaining}}}")),
        "{page}"
    );
    let cont = serde_json::from_str::<Value>(&page)?["metadata"]["continue"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rest = list(format!("{pods}?limit=2&continue={cont}")).await?;
    anyhow::ensure!(!rest.contains("remainingItemCount"), "{rest}");
    let filtered = list(format!("{pods}?limit=1&labelSelector=app%3Dweb")).await?;
    anyhow::ensure!(
        filtered.contains("\"continue\":") && !filtered.contains("remainingItemCount"),
        "{filtered}"
    );
    // Deployments are stored as apps/v1; the old versions are converted item by item.
    let body = json!({"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "conv"},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "conv"}},
                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let deps = "/apis/apps/v1beta1/namespaces/default/deployments";
    let (code, text) = s
        .raw("POST", deps, "application/json", serde_json::to_vec(&body)?)
        .await?;
    anyhow::ensure!(code == 201, "{code} {text}");
    for api_version in ["apps/v1beta1", "apps/v1", "extensions/v1beta1"] {
        let path = format!("/apis/{api_version}/namespaces/default/deployments");
        let one = get(format!("{path}/conv")).await?;
        anyhow::ensure!(
            one.contains(&format!("\"apiVersion\":\"{api_version}\"")),
            "{one}"
        );
        let l = list(path).await?;
        anyhow::ensure!(
            l == expected_list("Deployment", api_version, &l, &[one])?,
            "{l}"
        );
    }
    Ok(())
}

/// An unlimited LIST of more than one store page is read page by page while it is written;
/// its body is the same as the one-read answer (a limit above the count), selectors included.
async fn long_lists_stream_the_same_bytes(s: &TestServer) -> anyhow::Result<()> {
    let cms = "/api/v1/namespaces/default/configmaps";
    // More than one page, and not a multiple of it.
    let n = usize::try_from(capstan_apiserver::registry::STREAM_PAGE)? + 234;
    for i in 0..n {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:05}"), "labels": {"third": (i % 3 == 0).to_string()}},
            "data": {"i": i.to_string()}});
        let (code, text) = s
            .raw("POST", cms, "application/json", serde_json::to_vec(&body)?)
            .await?;
        anyhow::ensure!(code == 201, "{code} {text}");
    }
    for (selector, want) in [("", n), ("&labelSelector=third%3Dtrue", n.div_ceil(3))] {
        let (code, streamed) = s
            .raw("GET", &format!("{cms}?{selector}"), "", vec![])
            .await?;
        anyhow::ensure!(code == 200, "{code} {streamed}");
        let (code, whole) = s
            .raw("GET", &format!("{cms}?limit=100000{selector}"), "", vec![])
            .await?;
        anyhow::ensure!(code == 200, "{code} {whole}");
        anyhow::ensure!(
            streamed == whole,
            "{selector}: streamed and one-read answers differ"
        );
        let v: Value = serde_json::from_str(&streamed)?;
        let items = v["items"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(items == want, "{selector}: {items} items, want {want}");
        // Asked for gzip (as every Go client does), both answers (far above 128 KiB) come
        // compressed, and decompress to the same bytes.
        for (path, plain) in [
            (format!("{cms}?{selector}"), &streamed),
            (format!("{cms}?limit=100000{selector}"), &whole),
        ] {
            let (code, head, body) = s
                .get_with_headers(&path, &[("accept-encoding", "gzip")])
                .await?;
            anyhow::ensure!(code == 200, "{path}: {code}");
            anyhow::ensure!(
                head.get("content-encoding").is_some_and(|v| v == "gzip"),
                "{path}: {head:?}"
            );
            anyhow::ensure!(
                head.get_all("vary").iter().any(|v| v
                    .to_str()
                    .is_ok_and(|v| v.to_ascii_lowercase().contains("accept-encoding"))),
                "{path}: {head:?}"
            );
            anyhow::ensure!(body.len() < plain.len() / 4, "{path}: {} bytes", body.len());
            let mut unzipped = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(&body[..]),
                &mut unzipped,
            )?;
            anyhow::ensure!(&unzipped == plain, "{path}: gzip answer differs");
        }
    }
    // Small answers and watches are never compressed.
    let (code, head, _) = s
        .get_with_headers(&format!("{cms}/cm-00001"), &[("accept-encoding", "gzip")])
        .await?;
    anyhow::ensure!(
        code == 200 && head.get("content-encoding").is_none(),
        "{head:?}"
    );
    let (code, head, body) = s
        .get_with_headers(
            &format!("{cms}?watch=true&timeoutSeconds=1"),
            &[("accept-encoding", "gzip")],
        )
        .await?;
    anyhow::ensure!(
        code == 200 && head.get("content-encoding").is_none(),
        "{head:?}"
    );
    anyhow::ensure!(
        body.starts_with(b"{\"type\":\"ADDED\""),
        "{}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    Ok(())
}

async fn watch_from_revision(s: &TestServer) -> anyhow::Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let start = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), &start)
        .await?
        .boxed();
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "w1"}, "data": {"a": "1"}}))?;
    cms.create(&PostParams::default(), &cm).await?;
    cms.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await?;
    cms.delete("w1", &DeleteParams::default()).await?;
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await??;
        match ev {
            Some(WatchEvent::Added(c)) => {
                kinds.push(("ADDED", c.data.and_then(|d| d.get("a").cloned())))
            }
            Some(WatchEvent::Modified(c)) => {
                kinds.push(("MODIFIED", c.data.and_then(|d| d.get("a").cloned())))
            }
            Some(WatchEvent::Deleted(c)) => {
                kinds.push(("DELETED", c.data.and_then(|d| d.get("a").cloned())))
            }
            Some(WatchEvent::Bookmark(_)) => {}
            Some(WatchEvent::Error(e)) => anyhow::bail!("watch error {e:?}"),
            None => anyhow::bail!("watch ended early after {kinds:?}"),
        }
    }
    anyhow::ensure!(
        kinds
            == vec![
                ("ADDED", Some("1".to_string())),
                ("MODIFIED", Some("2".to_string())),
                ("DELETED", Some("2".to_string()))
            ],
        "{kinds:?}"
    );
    Ok(())
}

async fn patches(s: &TestServer) -> anyhow::Result<()> {
    let deps: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    deps.create(&PostParams::default(), &deployment("web", 2))
        .await?;
    // strategic merge: containers merge by name
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}});
    let d = deps
        .patch("web", &PatchParams::default(), &Patch::Strategic(smp))
        .await?;
    let c = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.clone())
        .unwrap_or_default();
    anyhow::ensure!(c.len() == 1 && c[0].image.as_deref() == Some("nginx:1.26"));
    anyhow::ensure!(
        c[0].ports.as_ref().is_some_and(|p| p.len() == 1),
        "ports kept by SMP"
    );
    anyhow::ensure!(
        d.metadata.generation == Some(2),
        "spec change bumps generation: {:?}",
        d.metadata.generation
    );
    // JSON patch
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]))?;
    let d = deps
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await?;
    anyhow::ensure!(d.spec.as_ref().and_then(|s| s.replicas) == Some(4));
    // scale subresource
    let scale = deps.get_scale("web").await?;
    anyhow::ensure!(scale.spec.and_then(|s| s.replicas) == Some(4));
    deps.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await?;
    anyhow::ensure!(deps.get("web").await?.spec.and_then(|s| s.replicas) == Some(1));
    // status subresource: spec is untouched by a status write, status by a spec write
    deps.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 1, "spec": "ignored"}})),
    )
    .await?;
    let d = deps.get("web").await?;
    anyhow::ensure!(d.status.as_ref().and_then(|s| s.replicas) == Some(1));
    deps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 7}})),
    )
    .await?;
    anyhow::ensure!(deps.get("web").await?.status.and_then(|s| s.replicas) == Some(1));
    // server-side apply: create when missing, 409 on another manager's field
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ssa"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "ssa"}},
                 "template": {"metadata": {"labels": {"app": "ssa"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}});
    let d = deps
        .patch(
            "ssa",
            &PatchParams::apply("alice"),
            &Patch::Apply(applied.clone()),
        )
        .await?;
    anyhow::ensure!(
        d.metadata
            .managed_fields
            .as_ref()
            .is_some_and(|m| m.iter().any(|f| f.manager.as_deref() == Some("alice")))
    );
    let mut bob = applied.clone();
    bob["spec"]["replicas"] = json!(3);
    let e = deps
        .patch(
            "ssa",
            &PatchParams::apply("bob"),
            &Patch::Apply(bob.clone()),
        )
        .await
        .err()
        .map(api_err);
    anyhow::ensure!(e == Some((409, "Conflict".into())), "{e:?}");
    let d = deps
        .patch(
            "ssa",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(bob),
        )
        .await?;
    anyhow::ensure!(d.spec.and_then(|s| s.replicas) == Some(3));
    Ok(())
}

async fn old_deployment_versions(s: &TestServer) -> anyhow::Result<()> {
    let body = json!({"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "old"},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "old"}},
                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let (code, text) = s
        .raw(
            "POST",
            "/apis/apps/v1beta1/namespaces/default/deployments",
            "application/json",
            serde_json::to_vec(&body)?,
        )
        .await?;
    anyhow::ensure!(code == 201, "{code} {text}");
    let created: Value = serde_json::from_str(&text)?;
    anyhow::ensure!(created["apiVersion"] == "apps/v1beta1");
    let deps: Api<Deployment> = Api::namespaced(s.client.clone(), "default");
    let v1 = deps.get("old").await?;
    let spec = v1.spec.unwrap_or_default();
    anyhow::ensure!(
        spec.selector.match_labels == Some([("app".to_string(), "old".to_string())].into())
    );
    anyhow::ensure!(spec.revision_history_limit == Some(2));
    let (code, text) = s
        .raw(
            "GET",
            "/apis/extensions/v1beta1/namespaces/default/deployments/old",
            "",
            vec![],
        )
        .await?;
    anyhow::ensure!(
        code == 200 && text.contains("\"apiVersion\":\"extensions/v1beta1\""),
        "{code} {text}"
    );
    Ok(())
}

async fn bad_input_is_a_4xx_status(s: &TestServer) -> anyhow::Result<()> {
    let cases: Vec<(&str, &str, &str, Vec<u8>, u16)> = vec![
        ("POST", "/api/v1/namespaces/default/pods", "application/json", b"{not json".to_vec(), 400),
        ("POST", "/api/v1/namespaces/default/pods", "application/yaml", b"a: [".to_vec(), 400),
        ("POST", "/api/v1/namespaces/default/pods", "application/json", br#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"}}"#.to_vec(), 400),
        ("POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict", "application/json",
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"bogus":1,"containers":[{"name":"c","image":"i"}]}}"#.to_vec(), 400),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/json", br#"{"metadata":{"name":"Bad_Name"}}"#.to_vec(), 422),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/json", vec![b' '; 3 * 1024 * 1024 + 10], 413),
        ("POST", "/api/v1/namespaces/missing/configmaps", "application/json", br#"{"metadata":{"name":"a"}}"#.to_vec(), 404),
        ("GET", "/api/v1/namespaces/default/bogus", "", vec![], 404),
        ("PUT", "/api/v1/namespaces/default/configmaps", "application/json", b"{}".to_vec(), 405),
    ];
    for (method, path, ct, body, want) in cases {
        let (code, text) = s.raw(method, path, ct, body).await?;
        anyhow::ensure!(
            code == want,
            "{method} {path}: got {code}, want {want}: {text}"
        );
        let status: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{method} {path}: not JSON ({e}): {text}"))?;
        anyhow::ensure!(
            status["kind"] == "Status" && status["code"] == want,
            "{method} {path}: {text}"
        );
    }
    // The server is still fine.
    let (code, _) = s
        .raw("GET", "/api/v1/namespaces/default/pods", "", vec![])
        .await?;
    anyhow::ensure!(code == 200);
    Ok(())
}

async fn dry_run_persists_nothing(s: &TestServer) -> anyhow::Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dry"}}))?;
    cms.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &cm,
    )
    .await?;
    let e = cms.get("dry").await.err().map(api_err);
    anyhow::ensure!(e == Some((404, "NotFound".into())), "{e:?}");
    Ok(())
}

async fn finalizers_hold_deletion(s: &TestServer) -> anyhow::Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "fin", "finalizers": ["example.com/hold"]}}),
    )?;
    cms.create(&PostParams::default(), &cm).await?;
    cms.delete("fin", &DeleteParams::default()).await?;
    let held = cms.get("fin").await?;
    anyhow::ensure!(held.metadata.deletion_timestamp.is_some());
    cms.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    let e = cms.get("fin").await.err().map(api_err);
    anyhow::ensure!(e == Some((404, "NotFound".into())), "{e:?}");
    Ok(())
}

async fn terminating_namespace_refuses_new_objects(s: &TestServer) -> anyhow::Result<()> {
    let nss: Api<Namespace> = Api::all(s.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "doomed"}}))?;
    nss.create(&PostParams::default(), &ns).await?;
    nss.delete("doomed", &DeleteParams::default()).await?;
    let n = nss.get("doomed").await?;
    anyhow::ensure!(n.status.and_then(|s| s.phase).as_deref() == Some("Terminating"));
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "doomed");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "late"}}))?;
    let e = cms
        .create(&PostParams::default(), &cm)
        .await
        .err()
        .map(api_err);
    anyhow::ensure!(e == Some((403, "Forbidden".into())), "{e:?}");
    Ok(())
}

async fn discovery_and_tables(s: &TestServer) -> anyhow::Result<()> {
    let (code, text) = s.raw("GET", "/version", "", vec![]).await?;
    anyhow::ensure!(code == 200 && text.contains("\"minor\":\"33\""), "{text}");
    let (code, ct, _) = s
        .raw_with_accept(
            "/apis",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .await?;
    anyhow::ensure!(code == 200 && ct.contains("apidiscovery.k8s.io"), "{ct}");
    let (code, _, text) = s
        .raw_with_accept(
            "/api/v1/namespaces",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .await?;
    let t: Value = serde_json::from_str(&text)?;
    anyhow::ensure!(
        code == 200 && t["kind"] == "Table" && t["rows"].as_array().is_some_and(|r| r.len() >= 4),
        "{text}"
    );
    Ok(())
}

async fn watch_from_compacted_or_future_revisions(s: &TestServer) -> anyhow::Result<()> {
    use capstan_store::Store as _;
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let mut first_rv = String::new();
    for i in 0..3 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("exp-{i}")}}))?;
        let c = cms.create(&PostParams::default(), &cm).await?;
        if i == 0 {
            first_rv = c.metadata.resource_version.unwrap_or_default();
        }
    }
    let current = s.store.current_revision().await?;
    s.store.compact(current).await?;
    // Too old: 200 and one ERROR event with a 410 Expired Status, then the stream ends.
    let path =
        format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={first_rv}");
    let (code, text) = s.raw("GET", &path, "", vec![]).await?;
    anyhow::ensure!(code == 200, "{code} {text}");
    let ev: Value = serde_json::from_str(text.lines().next().unwrap_or(""))?;
    anyhow::ensure!(
        ev["type"] == "ERROR" && ev["object"]["code"] == 410 && ev["object"]["reason"] == "Expired",
        "{text}"
    );
    // kube's watcher (what our controllers use) relists and carries on from there.
    let mut w =
        kube::runtime::watcher(cms.clone(), kube::runtime::watcher::Config::default()).boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), w.try_next()).await??;
    anyhow::ensure!(first.is_some());
    drop(w);
    // From the future (list and watch): 504 with cause ResourceVersionTooLarge.
    for q in [
        "watch=true&resourceVersion=999999999",
        "resourceVersion=999999999",
    ] {
        let (code, text) = s
            .raw(
                "GET",
                &format!("/api/v1/namespaces/default/configmaps?{q}"),
                "",
                vec![],
            )
            .await?;
        anyhow::ensure!(
            code == 504 && text.contains("ResourceVersionTooLarge"),
            "{q}: {code} {text}"
        );
    }
    Ok(())
}

/// A burst of events (served from the shared feed's backlog, so they are all ready at once and
/// written together) still arrives as one JSON event per line, in order; objects entering and
/// leaving the label selector are ADDED and DELETED; Table watches send headers once.
async fn watch_lines_and_selector_transitions(s: &TestServer) -> anyhow::Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let start = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let cm = |name: &str, app: &str| -> anyhow::Result<ConfigMap> {
        Ok(serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"app": app}}}),
        )?)
    };
    let relabel = |app: &str| Patch::Merge(json!({"metadata": {"labels": {"app": app}}}));
    let pp = PostParams::default();
    let mut want: Vec<(&str, String)> = Vec::new();
    cms.create(&pp, &cm("sel-a", "in")?).await?;
    want.push(("ADDED", "sel-a".into()));
    cms.create(&pp, &cm("sel-b", "out")?).await?;
    cms.patch("sel-a", &PatchParams::default(), &relabel("out"))
        .await?;
    want.push(("DELETED", "sel-a".into()));
    cms.patch("sel-b", &PatchParams::default(), &relabel("in"))
        .await?;
    want.push(("ADDED", "sel-b".into()));
    cms.patch(
        "sel-b",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await?;
    want.push(("MODIFIED", "sel-b".into()));
    cms.delete("sel-a", &DeleteParams::default()).await?;
    for i in 0..40 {
        let name = format!("sel-n{i:02}");
        cms.create(&pp, &cm(&name, "in")?).await?;
        want.push(("ADDED", name));
    }
    cms.delete("sel-b", &DeleteParams::default()).await?;
    want.push(("DELETED", "sel-b".into()));

    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&labelSelector=app%3Din&resourceVersion={start}&timeoutSeconds=2"
    );
    let (code, text) = s.raw("GET", &path, "", vec![]).await?;
    anyhow::ensure!(code == 200, "{code} {text}");
    let mut got = Vec::new();
    let mut last_rv = 0u64;
    for line in text.lines() {
        let ev: Value = serde_json::from_str(line)?;
        let rv: u64 = ev["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .parse()?;
        anyhow::ensure!(rv > last_rv, "resourceVersion {rv} after {last_rv}");
        last_rv = rv;
        got.push((
            ev["type"].as_str().unwrap_or("").to_string(),
            ev["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        ));
    }
    let want: Vec<(String, String)> = want.into_iter().map(|(t, n)| (t.into(), n)).collect();
    anyhow::ensure!(got == want, "got {got:?}");

    let (code, _, text) = s
        .raw_with_accept(&path, "application/json;as=Table;v=v1;g=meta.k8s.io")
        .await?;
    anyhow::ensure!(code == 200, "{code} {text}");
    let tables: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(tables.len() == want.len(), "{} lines", tables.len());
    for (i, t) in tables.iter().enumerate() {
        let headers = t["object"]["columnDefinitions"]
            .as_array()
            .is_some_and(|c| !c.is_empty());
        anyhow::ensure!(
            t["object"]["kind"] == "Table" && headers == (i == 0),
            "line {i}: {t}"
        );
    }
    Ok(())
}

macro_rules! api_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let s = TestServer::start(Backend::Sqlite).await?;
                    super::$name(&s).await?;
                    s.stop().await;
                    Ok(())
                }
            )*
        }
        mod etcd {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let s = TestServer::start(Backend::Etcd).await?;
                    super::$name(&s).await?;
                    s.stop().await;
                    Ok(())
                }
            )*
        }
    };
}

api_suite!(
    system_namespaces_exist,
    crud_and_metadata,
    lists_select_and_page,
    list_items_are_get_bytes,
    long_lists_stream_the_same_bytes,
    watch_from_revision,
    patches,
    old_deployment_versions,
    bad_input_is_a_4xx_status,
    dry_run_persists_nothing,
    finalizers_hold_deletion,
    terminating_namespace_refuses_new_objects,
    discovery_and_tables,
    watch_from_compacted_or_future_revisions,
    watch_lines_and_selector_transitions,
);
