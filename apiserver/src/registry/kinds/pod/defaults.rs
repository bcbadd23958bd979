//! Pod and pod template defaulting: upstream's `SetDefaults_PodSpec`, `SetDefaults_Container`,
//! probe/handler/volume defaults, `SetDefaults_Pod` (pods only), and the admission plugins that
//! fill pods on create (ServiceAccount, Priority, DefaultTolerationSeconds), plus the QoS class.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::quantity;

type Obj = Map<String, Value>;

fn set_default(m: &mut Obj, key: &str, v: Value) {
    let missing = match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    };
    if missing {
        m.insert(key.to_string(), v);
    }
}

fn each_obj<'a>(m: &'a mut Obj, key: &str) -> impl Iterator<Item = &'a mut Obj> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// The pull policy upstream picks for an image: `Always` for `:latest` or no tag (and no
/// digest), `IfNotPresent` otherwise, including references that do not parse.
pub fn pull_policy_for(image: &str) -> &'static str {
    let (name, has_digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo_last, tag) = match last.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (last, None),
    };
    let repo_end = name.len() - last.len() + repo_last.len();
    let repo = name.get(..repo_end).unwrap_or(name);
    // Upstream's reference parser rejects these; its error leaves the tag empty.
    let path = repo.split_once('/').map_or(repo, |(host, rest)| {
        if host.contains('.') || host.contains(':') || host == "localhost" {
            rest
        } else {
            repo
        }
    });
    let valid = !path.is_empty()
        && path.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/')
        });
    if !valid {
        return "IfNotPresent";
    }
    match tag {
        Some("latest") => "Always",
        Some(_) => "IfNotPresent",
        None if has_digest => "IfNotPresent",
        None => "Always",
    }
}

fn default_http_get(handler: &mut Obj) {
    if let Some(h) = handler.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default(h, "path", json!("/"));
        set_default(h, "scheme", json!("HTTP"));
    }
}

fn default_probe(probe: &mut Obj) {
    for (k, v) in [
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ] {
        if probe.get(k).and_then(Value::as_i64).unwrap_or(0) == 0 {
            probe.insert(k.to_string(), json!(v));
        }
    }
    default_http_get(probe);
}

/// Canonicalize every parsable quantity of a resource list (upstream rounds to milli scale
/// and serves the canonical form). Unparsable values are left for validation to report.
fn canonical_resource_list(list: &mut Obj) {
    for v in list.values_mut() {
        if let Ok(q) = quantity::parse_value(v) {
            *v = Value::String(q.canonical());
        }
    }
}

fn default_container(c: &mut Obj) {
    if c.get("imagePullPolicy")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = pull_policy_for(image);
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    // Upstream always serializes `resources` (a struct, not a pointer).
    let resources = c.entry("resources").or_insert_with(|| json!({}));
    if resources.is_null() {
        *resources = json!({});
    }
    if let Some(r) = resources.as_object_mut() {
        for key in ["limits", "requests"] {
            if let Some(list) = r.get_mut(key).and_then(Value::as_object_mut) {
                canonical_resource_list(list);
            }
        }
    }
    for p in each_obj(c, "ports") {
        set_default(p, "protocol", json!("TCP"));
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(key).and_then(Value::as_object_mut) {
            default_probe(p);
        }
    }
    if let Some(l) = c.get_mut("lifecycle").and_then(Value::as_object_mut) {
        for key in ["postStart", "preStop"] {
            if let Some(h) = l.get_mut(key).and_then(Value::as_object_mut) {
                default_http_get(h);
            }
        }
    }
    for e in each_obj(c, "env") {
        if let Some(fr) = e
            .get_mut("valueFrom")
            .and_then(Value::as_object_mut)
            .and_then(|vf| vf.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            set_default(fr, "apiVersion", json!("v1"));
        }
    }
}

/// Every volume source key upstream knows.
pub const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn default_volume(v: &mut Obj) {
    let has_source = VOLUME_SOURCES
        .iter()
        .any(|k| v.get(*k).is_some_and(|s| !s.is_null()));
    if !has_source {
        v.insert("emptyDir".into(), json!({}));
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(key).and_then(Value::as_object_mut) {
            set_default(s, "defaultMode", json!(420));
        }
    }
    if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
        set_default(h, "type", json!(""));
    }
    if let Some(p) = v.get_mut("projected").and_then(Value::as_object_mut) {
        for src in each_obj(p, "sources") {
            if let Some(t) = src
                .get_mut("serviceAccountToken")
                .and_then(Value::as_object_mut)
            {
                set_default(t, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(img) = v.get_mut("image").and_then(Value::as_object_mut)
        && img
            .get("pullPolicy")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        let r = img.get("reference").and_then(Value::as_str).unwrap_or("");
        let tag_latest = pull_policy_for(r) == "Always" && r.contains(":latest");
        img.insert(
            "pullPolicy".into(),
            json!(if tag_latest { "Always" } else { "IfNotPresent" }),
        );
    }
}

/// `SetDefaults_PodSpec` and the defaults of everything a pod spec holds; the part shared by
/// pods and pod templates.
pub fn default_pod_spec(spec: &mut Obj) {
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "restartPolicy", json!("Always"));
    if spec.get("securityContext").is_none_or(Value::is_null) {
        spec.insert("securityContext".into(), json!({}));
    }
    if spec
        .get("terminationGracePeriodSeconds")
        .is_none_or(Value::is_null)
    {
        spec.insert("terminationGracePeriodSeconds".into(), json!(30));
    }
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in each_obj(spec, key) {
            default_container(c);
        }
    }
    for v in each_obj(spec, "volumes") {
        default_volume(v);
    }
    // The v1 conversion keeps the deprecated serviceAccount in step with serviceAccountName.
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            spec.get("serviceAccount")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .map(str::to_string);
    if let Some(sa) = sa {
        spec.insert("serviceAccountName".into(), json!(sa));
        spec.insert("serviceAccount".into(), json!(sa));
    }
}

/// Requests default to limits where only limits are given (`SetDefaults_Pod`).
fn requests_from_limits(c: &mut Obj) {
    let Some(r) = c.get_mut("resources").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(limits) = r.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let requests = r.entry("requests").or_insert_with(|| json!({}));
    if requests.is_null() {
        *requests = json!({});
    }
    if let Some(req) = requests.as_object_mut() {
        for (k, v) in limits {
            req.entry(k).or_insert(v);
        }
    }
}

fn tolerates(tols: &[Value], key: &str) -> bool {
    tols.iter().any(|t| {
        let k = t.get("key").and_then(Value::as_str).unwrap_or("");
        let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
        (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
    })
}

/// Everything a Pod (not a template) gets: the rest of `SetDefaults_Pod`, and what the
/// ServiceAccount, Priority and DefaultTolerationSeconds admission plugins set.
pub fn default_pod_only(spec: &mut Obj) {
    for key in ["containers", "initContainers"] {
        for c in each_obj(spec, key) {
            requests_from_limits(c);
        }
    }
    if spec.get("enableServiceLinks").is_none_or(Value::is_null) {
        spec.insert("enableServiceLinks".into(), json!(true));
    }
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for c in each_obj(spec, key) {
                for p in each_obj(c, "ports") {
                    if p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0
                        && let Some(cp) = p.get("containerPort").cloned()
                    {
                        p.insert("hostPort".into(), cp);
                    }
                }
            }
        }
    }
    // ServiceAccount admission.
    if spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        spec.insert("serviceAccountName".into(), json!("default"));
        spec.insert("serviceAccount".into(), json!("default"));
    }
    // Priority admission: the built-in classes, else the global default of 0.
    let priority = match spec.get("priorityClassName").and_then(Value::as_str) {
        Some("system-node-critical") => 2_000_001_000,
        Some("system-cluster-critical") => 2_000_000_000,
        _ => 0,
    };
    if spec.get("priority").is_none_or(Value::is_null) {
        spec.insert("priority".into(), json!(priority));
    }
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    // DefaultTolerationSeconds admission.
    let empty = Vec::new();
    let tols = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let missing: Vec<&str> = [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    .into_iter()
    .filter(|key| !tolerates(tols, key))
    .collect();
    if !missing.is_empty() {
        let mut added = tols.clone();
        for key in missing {
            added.push(json!({
                "key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300
            }));
        }
        spec.insert("tolerations".into(), Value::Array(added));
    }
}

/// Upstream's `ComputePodQOS` (pod-level resources off, as in 1.33 by default).
pub fn qos_class(spec: &Obj) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"].into_iter().flat_map(|k| {
        spec.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
    });
    for c in containers {
        let res = c.get("resources");
        let list = |k: &str| {
            res.and_then(|r| r.get(k))
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter(|(name, _)| *name == "cpu" || *name == "memory")
                .filter_map(|(name, v)| {
                    quantity::parse_value(v)
                        .ok()
                        .filter(|q| q.milli > 0)
                        .map(|q| (name.as_str(), q.milli))
                })
                .collect::<Vec<_>>()
        };
        for (name, v) in list("requests") {
            *requests.entry(name).or_insert(0) += v;
        }
        let lims = list("limits");
        let has = |n: &str| lims.iter().any(|(k, _)| *k == n);
        if !(has("cpu") && has("memory")) {
            guaranteed = false;
        }
        for (name, v) in lims {
            *limits.entry(name).or_insert(0) += v;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (name, req) in &requests {
            if limits.get(name) != Some(req) {
                guaranteed = false;
                break;
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// All of a Pod's defaults; the QoS class is computed when status has none (on create, and
/// for status writes that leave it out).
pub fn default_pod(obj: &mut Obj) {
    let spec = obj.entry("spec").or_insert_with(|| json!({}));
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    default_pod_spec(spec);
    default_pod_only(spec);
    let qos = qos_class(spec);
    let status = obj.entry("status").or_insert_with(|| json!({}));
    if let Some(st) = status.as_object_mut() {
        set_default(st, "qosClass", json!(qos));
    }
}
