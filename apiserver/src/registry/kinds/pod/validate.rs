//! Pod spec validation (upstream `ValidatePodSpec` and what it calls), the pod update rule
//! (`ValidatePodUpdate`) and the pod status rules. Field paths and messages are upstream's.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::defaults::VOLUME_SOURCES;
use super::quantity;
use crate::error::Cause;
use crate::validation::{dns1123_label_errors, dns1123_subdomain_errors, qualified_name_errors};

type Obj = Map<String, Value>;

pub const NEGATIVE: &str = "must be greater than or equal to 0";
const MAX_INT32: i64 = 2_147_483_647;

fn str_of<'a>(m: &'a Obj, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

fn int(m: &Obj, k: &str) -> Option<i64> {
    m.get(k).and_then(Value::as_i64)
}

fn objs<'a>(m: &'a Obj, k: &str) -> impl Iterator<Item = (usize, &'a Obj)> {
    m.get(k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| v.as_object().map(|o| (i, o)))
}

fn present(m: &Obj, k: &str) -> bool {
    m.get(k).is_some_and(|v| !v.is_null())
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

pub fn required_detail(path: impl Into<String>, detail: &str) -> Cause {
    Cause::new(
        "FieldValueRequired",
        path,
        format!("Required value: {detail}"),
    )
}

pub fn not_found(path: impl Into<String>, value: &str) -> Cause {
    Cause::new("FieldValueNotFound", path, format!("Not found: {value:?}"))
}

/// `ValidateNonnegativeField`.
pub fn nonneg(out: &mut Vec<Cause>, path: String, v: Option<i64>) {
    if let Some(v) = v
        && v < 0
    {
        out.push(Cause::invalid(path, &json!(v), NEGATIVE));
    }
}

fn label_value_errors(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let b = v.as_bytes();
    let ok = match (b.first(), b.last()) {
        (None, _) | (_, None) => true,
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
    };
    if !ok {
        errs.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string());
    }
    errs
}

/// `unversionedvalidation.ValidateLabels`: keys and values of a label map at `path`.
pub fn validate_labels(map: Option<&Value>, path: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(map) = map.and_then(Value::as_object) else {
        return out;
    };
    for (k, v) in map {
        for e in qualified_name_errors(k) {
            out.push(Cause::invalid(path, &s(k), &e));
        }
        let v = v.as_str().unwrap_or("");
        for e in label_value_errors(v) {
            out.push(Cause::invalid(path, &s(v), &e));
        }
    }
    out
}

fn dns_label(out: &mut Vec<Cause>, path: String, v: &str) {
    for e in dns1123_label_errors(v) {
        out.push(Cause::invalid(path.clone(), &s(v), &e));
    }
}

pub(super) fn dns_subdomain(out: &mut Vec<Cause>, path: String, v: &str) {
    for e in dns1123_subdomain_errors(v) {
        out.push(Cause::invalid(path.clone(), &s(v), &e));
    }
}

/// `IsValidPortNum`.
fn port_num_errors(p: i64) -> Vec<String> {
    if (1..=65535).contains(&p) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive".to_string()]
    }
}

/// `IsValidPortName` (IANA_SVC_NAME).
pub fn port_name_errors(p: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if p.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    if p.is_empty()
        || !p
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !p.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if p.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if p.starts_with('-') || p.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// `ValidatePortNumOrName` on an int-or-string.
fn port_num_or_name(out: &mut Vec<Cause>, path: String, v: Option<&Value>) {
    match v {
        Some(Value::String(name)) => {
            for e in port_name_errors(name) {
                out.push(Cause::invalid(path.clone(), &s(name), &e));
            }
        }
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            for e in port_num_errors(n) {
                out.push(Cause::invalid(path.clone(), &json!(n), &e));
            }
        }
        _ => {
            for e in port_num_errors(0) {
                out.push(Cause::invalid(path.clone(), &json!(0), &e));
            }
        }
    }
}

/// Validated volumes: name → the volume.
type Volumes<'a> = std::collections::BTreeMap<String, &'a Obj>;

fn validate_volumes<'a>(spec: &'a Obj, path: &str, out: &mut Vec<Cause>) -> Volumes<'a> {
    let mut names = Volumes::new();
    for (i, vol) in objs(spec, "volumes") {
        let idx = format!("{path}[{i}]");
        let mut el = Vec::new();
        let sources: Vec<&str> = VOLUME_SOURCES
            .iter()
            .copied()
            .filter(|k| present(vol, k))
            .collect();
        match sources.as_slice() {
            [] => el.push(required_detail(idx.clone(), "must specify a volume type")),
            [_] => {}
            [_, rest @ ..] => {
                for k in rest {
                    el.push(Cause::forbidden(
                        format!("{idx}.{k}"),
                        "may not specify more than 1 volume type",
                    ));
                }
            }
        }
        let name = str_of(vol, "name");
        if name.is_empty() {
            el.push(Cause::required(format!("{idx}.name")));
        } else {
            dns_label(&mut el, format!("{idx}.name"), name);
        }
        if names.contains_key(name) {
            el.push(Cause::duplicate(format!("{idx}.name"), &s(name)));
        }
        if el.is_empty() {
            names.insert(name.to_string(), vol);
        } else {
            out.extend(el);
        }
    }
    names
}

fn validate_ports(c: &Obj, path: &str, out: &mut Vec<Cause>) {
    let mut names = BTreeSet::new();
    for (i, p) in objs(c, "ports") {
        // Rendered only when something is reported.
        let idx = || format!("{path}[{i}]");
        let name = str_of(p, "name");
        if !name.is_empty() {
            let errs = port_name_errors(name);
            if !errs.is_empty() {
                for e in errs {
                    out.push(Cause::invalid(format!("{}.name", idx()), &s(name), &e));
                }
            } else if !names.insert(name) {
                out.push(Cause::duplicate(format!("{}.name", idx()), &s(name)));
            }
        }
        match int(p, "containerPort").unwrap_or(0) {
            0 => out.push(Cause::required(format!("{}.containerPort", idx()))),
            cp => {
                for e in port_num_errors(cp) {
                    out.push(Cause::invalid(
                        format!("{}.containerPort", idx()),
                        &json!(cp),
                        &e,
                    ));
                }
            }
        }
        let hp = int(p, "hostPort").unwrap_or(0);
        if hp != 0 {
            for e in port_num_errors(hp) {
                out.push(Cause::invalid(
                    format!("{}.hostPort", idx()),
                    &json!(hp),
                    &e,
                ));
            }
        }
        match str_of(p, "protocol") {
            "" => out.push(Cause::required(format!("{}.protocol", idx()))),
            "TCP" | "UDP" | "SCTP" => {}
            other => out.push(Cause::not_supported(
                format!("{}.protocol", idx()),
                &s(other),
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
}

/// Env var names under upstream's RelaxedEnvironmentVariableValidation (on by default).
fn env_name_errors(name: &str) -> Vec<String> {
    if name.bytes().all(|c| (0x20..0x7f).contains(&c) && c != b'=') {
        Vec::new()
    } else {
        vec!["a valid environment variable name must consist only of printable ASCII characters other than '='".into()]
    }
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const ENV_RESOURCES: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn key_selector(out: &mut Vec<Cause>, path: &str, sel: &Obj) {
    let name = str_of(sel, "name");
    if !name.is_empty() {
        dns_subdomain(out, format!("{path}.name"), name);
    }
    let key = str_of(sel, "key");
    if key.is_empty() {
        out.push(Cause::required(format!("{path}.key")));
    } else if !key
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        || key.len() > 253
    {
        out.push(Cause::invalid(format!("{path}.key"), &s(key), "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
    }
}

fn validate_env(c: &Obj, path: &str, out: &mut Vec<Cause>) {
    for (i, ev) in objs(c, "env") {
        // Rendered only when something is reported or a valueFrom is checked.
        let idx = || format!("{path}[{i}]");
        let name = str_of(ev, "name");
        if name.is_empty() {
            out.push(Cause::required(format!("{}.name", idx())));
        } else {
            for e in env_name_errors(name) {
                out.push(Cause::invalid(format!("{}.name", idx()), &s(name), &e));
            }
        }
        let Some(vf) = ev.get("valueFrom").and_then(Value::as_object) else {
            continue;
        };
        let vpath = format!("{}.valueFrom", idx());
        let mut n = 0;
        if let Some(fr) = vf.get("fieldRef").and_then(Value::as_object) {
            n += 1;
            let p = format!("{vpath}.fieldRef");
            let fp = str_of(fr, "fieldPath");
            if str_of(fr, "apiVersion").is_empty() {
                out.push(Cause::required(format!("{p}.apiVersion")));
            } else if fp.is_empty() {
                out.push(Cause::required(format!("{p}.fieldPath")));
            } else if let Some((base, sub)) = fp
                .split_once('[')
                .and_then(|(b, rest)| rest.strip_suffix(']').map(|r| (b, r)))
            {
                let sub = sub.trim_matches('\'');
                match base {
                    "metadata.annotations" => {
                        for e in qualified_name_errors(&sub.to_lowercase()) {
                            out.push(Cause::invalid(p.clone(), &s(sub), &e));
                        }
                    }
                    "metadata.labels" => {
                        for e in qualified_name_errors(sub) {
                            out.push(Cause::invalid(p.clone(), &s(sub), &e));
                        }
                    }
                    _ => out.push(Cause::invalid(
                        p.clone(),
                        &s(base),
                        "does not support subscript",
                    )),
                }
            } else if !ENV_FIELD_PATHS.contains(&fp)
                && !matches!(fp, "metadata.labels" | "metadata.annotations")
            {
                out.push(Cause::not_supported(
                    format!("{p}.fieldPath"),
                    &s(fp),
                    ENV_FIELD_PATHS,
                ));
            }
        }
        if let Some(rr) = vf.get("resourceFieldRef").and_then(Value::as_object) {
            n += 1;
            let p = format!("{vpath}.resourceFieldRef");
            let r = str_of(rr, "resource");
            if r.is_empty() {
                out.push(Cause::required(format!("{p}.resource")));
            } else if !ENV_RESOURCES.contains(&r)
                && !r.starts_with("requests.hugepages-")
                && !r.starts_with("limits.hugepages-")
            {
                out.push(Cause::not_supported(
                    format!("{p}.resource"),
                    &s(r),
                    ENV_RESOURCES,
                ));
            }
        }
        for key in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(sel) = vf.get(key).and_then(Value::as_object) {
                n += 1;
                key_selector(out, &format!("{vpath}.{key}"), sel);
            }
        }
        if n == 0 {
            out.push(Cause::invalid(vpath, &s(""), "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
        } else if !str_of(ev, "value").is_empty() {
            out.push(Cause::invalid(
                vpath,
                &s(""),
                "may not be specified when `value` is not empty",
            ));
        } else if n > 1 {
            out.push(Cause::invalid(
                vpath,
                &s(""),
                "may not have more than one field specified at a time",
            ));
        }
    }
    for (i, ef) in objs(c, "envFrom") {
        let idx = format!("{}From[{i}]", path);
        let prefix = str_of(ef, "prefix");
        for e in env_name_errors(prefix) {
            out.push(Cause::invalid(format!("{idx}.prefix"), &s(prefix), &e));
        }
        let mut n = 0;
        for key in ["configMapRef", "secretRef"] {
            if let Some(r) = ef.get(key).and_then(Value::as_object) {
                n += 1;
                let name = str_of(r, "name");
                if name.is_empty() {
                    out.push(Cause::required(format!("{idx}.{key}.name")));
                } else {
                    dns_subdomain(out, format!("{idx}.{key}.name"), name);
                }
            }
        }
        let list = format!("{path}From");
        if n == 0 {
            out.push(Cause::invalid(
                list,
                &s(""),
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            out.push(Cause::invalid(
                list,
                &s(""),
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn validate_mounts(c: &Obj, path: &str, volumes: &Volumes<'_>, out: &mut Vec<Cause>) {
    let mut points = BTreeSet::new();
    for (i, m) in objs(c, "volumeMounts") {
        let idx = format!("{path}[{i}]");
        let name = str_of(m, "name");
        if name.is_empty() {
            out.push(Cause::required(format!("{idx}.name")));
        }
        if !volumes.contains_key(name) {
            out.push(not_found(format!("{idx}.name"), name));
        }
        let mp = str_of(m, "mountPath");
        if mp.is_empty() {
            out.push(Cause::required(format!("{idx}.mountPath")));
        }
        if !points.insert(mp) {
            out.push(Cause::invalid(
                format!("{idx}.mountPath"),
                &s(mp),
                "must be unique",
            ));
        }
        for key in ["subPath", "subPathExpr"] {
            let sp = str_of(m, key);
            if sp.starts_with('/') {
                out.push(Cause::invalid(
                    format!("{path}.{key}"),
                    &s(sp),
                    "must be a relative path",
                ));
            }
            if sp.split('/').any(|seg| seg == "..") {
                out.push(Cause::invalid(
                    format!("{path}.{key}"),
                    &s(sp),
                    "must not contain '..'",
                ));
            }
        }
    }
}

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_extended_resource(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && qualified_name_errors(&format!("requests.{name}")).is_empty()
}

fn overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !name.starts_with("hugepages-")
}

fn validate_resources(c: &Obj, path: &str, out: &mut Vec<Cause>) {
    let Some(res) = c.get("resources").and_then(Value::as_object) else {
        return;
    };
    let list = |k: &str| {
        res.get(k)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
    };
    // `p` renders the entry's path, only when something is reported.
    let check = |out: &mut Vec<Cause>,
                 p: &dyn Fn() -> String,
                 name: &str,
                 v: &Value|
     -> Option<quantity::Quantity> {
        for e in qualified_name_errors(name) {
            out.push(Cause::invalid(p(), &s(name), &e));
        }
        if !name.contains('/') {
            if !matches!(name, "cpu" | "memory" | "ephemeral-storage")
                && !name.starts_with("hugepages-")
            {
                out.push(Cause::invalid(
                    p(),
                    &s(name),
                    "must be a standard resource for containers",
                ));
            }
        } else if !is_native_resource(name) && !is_extended_resource(name) {
            out.push(Cause::invalid(
                p(),
                &s(name),
                "doesn't follow extended resource name standard",
            ));
        }
        match quantity::parse_value(v) {
            Ok(q) => {
                if q.milli < 0 {
                    out.push(Cause::invalid(p(), &s(&q.canonical()), NEGATIVE));
                }
                if is_extended_resource(name) && q.milli % 1000 != 0 {
                    out.push(Cause::invalid(
                        p(),
                        &s(&q.canonical()),
                        "must be an integer",
                    ));
                }
                Some(q)
            }
            Err(e) => {
                out.push(Cause::invalid(p(), v, e));
                None
            }
        }
    };
    let lim_path = format!("{path}.limits");
    let req_path = format!("{path}.requests");
    let mut limits = std::collections::BTreeMap::new();
    for (name, v) in list("limits") {
        if let Some(q) = check(out, &|| format!("{lim_path}[{name}]"), name, v) {
            limits.insert(name.as_str(), q);
        }
    }
    for (name, v) in list("requests") {
        let Some(q) = check(out, &|| format!("{req_path}[{name}]"), name, v) else {
            continue;
        };
        match limits.get(name.as_str()) {
            Some(l) if q.milli != l.milli && !overcommit_allowed(name) => {
                out.push(Cause::invalid(
                    req_path.clone(),
                    &s(&q.canonical()),
                    &format!("must be equal to {name} limit of {}", l.canonical()),
                ));
            }
            Some(l) if q.milli > l.milli => {
                out.push(Cause::invalid(
                    req_path.clone(),
                    &s(&q.canonical()),
                    &format!(
                        "must be less than or equal to {name} limit of {}",
                        l.canonical()
                    ),
                ));
            }
            Some(_) => {}
            None if !overcommit_allowed(name) => {
                out.push(required_detail(
                    lim_path.clone(),
                    "Limit must be set for non overcommitable resources",
                ));
            }
            None => {}
        }
    }
}

/// `validateHandler`: exactly one handler type, each validated.
fn validate_handler(h: &Obj, path: &str, grace: Option<i64>, kinds: &[&str], out: &mut Vec<Cause>) {
    let mut n = 0;
    for kind in kinds {
        let Some(a) = h.get(*kind).and_then(Value::as_object) else {
            continue;
        };
        let p = format!("{path}.{kind}");
        if n > 0 {
            out.push(Cause::forbidden(
                p,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        n += 1;
        match *kind {
            "exec"
                if a.get("command")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty) =>
            {
                out.push(Cause::required(format!("{p}.command")));
            }
            "httpGet" => {
                if str_of(a, "path").is_empty() {
                    out.push(Cause::required(format!("{p}.path")));
                }
                port_num_or_name(out, format!("{p}.port"), a.get("port"));
                let scheme = str_of(a, "scheme");
                if !matches!(scheme, "HTTP" | "HTTPS") {
                    out.push(Cause::not_supported(
                        format!("{p}.scheme"),
                        &s(scheme),
                        &["HTTP", "HTTPS"],
                    ));
                }
                for (_, hdr) in objs(a, "httpHeaders") {
                    let name = str_of(hdr, "name");
                    if name.is_empty()
                        || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                    {
                        out.push(Cause::invalid(format!("{p}.httpHeaders"), &s(name), "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')"));
                    }
                }
            }
            "tcpSocket" => port_num_or_name(out, format!("{p}.port"), a.get("port")),
            "grpc" => {
                let port = int(a, "port").unwrap_or(0);
                for e in port_num_errors(port) {
                    out.push(Cause::invalid(format!("{p}.port"), &json!(port), &e));
                }
            }
            "sleep" => {
                let secs = int(a, "seconds").unwrap_or(0);
                if let Some(g) = grace
                    && (secs < 0 || secs > g)
                {
                    out.push(Cause::invalid(
                        p,
                        &json!(secs),
                        &format!(
                            "must be non-negative and less than terminationGracePeriodSeconds ({g})"
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    if n == 0 {
        out.push(required_detail(path, "must specify a handler type"));
    }
}

const PROBE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc"];
const LIFECYCLE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "sleep"];

fn validate_probe(c: &Obj, key: &str, path: &str, grace: Option<i64>, out: &mut Vec<Cause>) {
    let Some(p) = c.get(key).and_then(Value::as_object) else {
        return;
    };
    let pp = format!("{path}.{key}");
    validate_handler(p, &pp, grace, PROBE_HANDLERS, out);
    for f in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonneg(out, format!("{pp}.{f}"), int(p, f));
    }
    if let Some(t) = int(p, "terminationGracePeriodSeconds")
        && t <= 0
    {
        out.push(Cause::invalid(
            format!("{pp}.terminationGracePeriodSeconds"),
            &json!(t),
            "must be greater than 0",
        ));
    }
    match key {
        "livenessProbe" | "startupProbe" => {
            let st = int(p, "successThreshold").unwrap_or(0);
            if st != 1 {
                out.push(Cause::invalid(
                    format!("{pp}.successThreshold"),
                    &json!(st),
                    "must be 1",
                ));
            }
        }
        _ => {
            if present(p, "terminationGracePeriodSeconds") {
                out.push(Cause::invalid(
                    format!("{pp}.terminationGracePeriodSeconds"),
                    p.get("terminationGracePeriodSeconds")
                        .unwrap_or(&Value::Null),
                    "must not be set for readinessProbes",
                ));
            }
        }
    }
}

fn validate_lifecycle(c: &Obj, path: &str, grace: Option<i64>, out: &mut Vec<Cause>) {
    if let Some(l) = c.get("lifecycle").and_then(Value::as_object) {
        for key in ["postStart", "preStop"] {
            if let Some(h) = l.get(key).and_then(Value::as_object) {
                validate_handler(
                    h,
                    &format!("{path}.lifecycle.{key}"),
                    grace,
                    LIFECYCLE_HANDLERS,
                    out,
                );
            }
        }
    }
}

/// `validateContainerCommon`.
fn validate_container_common(c: &Obj, path: &str, volumes: &Volumes<'_>, out: &mut Vec<Cause>) {
    let name = str_of(c, "name");
    if name.is_empty() {
        out.push(Cause::required(format!("{path}.name")));
    } else {
        dns_label(out, format!("{path}.name"), name);
    }
    if str_of(c, "image").is_empty() {
        out.push(Cause::required(format!("{path}.image")));
    }
    match str_of(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => out.push(Cause::required(format!("{path}.terminationMessagePolicy"))),
        other => out.push(Cause::not_supported(
            format!("{path}.terminationMessagePolicy"),
            &s(other),
            &["File", "FallbackToLogsOnError"],
        )),
    }
    validate_ports(c, &format!("{path}.ports"), out);
    validate_env(c, &format!("{path}.env"), out);
    validate_mounts(c, &format!("{path}.volumeMounts"), volumes, out);
    match str_of(c, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => out.push(Cause::required(format!("{path}.imagePullPolicy"))),
        other => out.push(Cause::not_supported(
            format!("{path}.imagePullPolicy"),
            &s(other),
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    validate_resources(c, &format!("{path}.resources"), out);
}

fn host_port_conflicts<'a>(
    containers: impl Iterator<Item = (usize, &'a Obj)>,
    path: &str,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Cause>,
) {
    for (ci, c) in containers {
        for (pi, p) in objs(c, "ports") {
            let hp = int(p, "hostPort").unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{hp}", str_of(p, "protocol"), str_of(p, "hostIP"));
            if !seen.insert(key.clone()) {
                out.push(Cause::duplicate(
                    format!("{path}[{ci}].ports[{pi}].hostPort"),
                    &s(&key),
                ));
            }
        }
    }
}

fn validate_containers(
    spec: &Obj,
    path: &str,
    volumes: &Volumes<'_>,
    grace: Option<i64>,
    out: &mut Vec<Cause>,
) {
    let cpath = format!("{path}.containers");
    if objs(spec, "containers").next().is_none() {
        out.push(Cause::required(cpath));
        return;
    }
    let mut names = BTreeSet::new();
    for (i, c) in objs(spec, "containers") {
        let p = format!("{cpath}[{i}]");
        validate_container_common(c, &p, volumes, out);
        let name = str_of(c, "name");
        if !names.insert(name) {
            out.push(Cause::duplicate(format!("{p}.name"), &s(name)));
        }
        validate_lifecycle(c, &p, grace, out);
        for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
            validate_probe(c, key, &p, grace, out);
        }
        if present(c, "restartPolicy") {
            out.push(Cause::forbidden(
                format!("{p}.restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    host_port_conflicts(objs(spec, "containers"), &cpath, &mut BTreeSet::new(), out);
    // Init containers: names unique across both lists.
    let ipath = format!("{path}.initContainers");
    for (i, c) in objs(spec, "initContainers") {
        let p = format!("{ipath}[{i}]");
        validate_container_common(c, &p, volumes, out);
        let mut restart_always = false;
        if let Some(rp) = c.get("restartPolicy").filter(|v| !v.is_null()) {
            if rp.as_str() == Some("Always") {
                restart_always = true;
            } else {
                out.push(Cause::not_supported(
                    format!("{p}.restartPolicy"),
                    rp,
                    &["Always"],
                ));
            }
        }
        let name = str_of(c, "name");
        if names.contains(name) {
            out.push(Cause::duplicate(format!("{p}.name"), &s(name)));
        } else if !name.is_empty() {
            names.insert(name);
        }
        host_port_conflicts(std::iter::once((i, c)), &ipath, &mut BTreeSet::new(), out);
        if restart_always {
            validate_lifecycle(c, &p, grace, out);
            for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
                validate_probe(c, key, &p, grace, out);
            }
        } else {
            for key in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if present(c, key) {
                    out.push(Cause::forbidden(
                        format!("{p}.{key}"),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
}

/// `ValidateTolerations`.
pub fn validate_tolerations(spec: &Obj, path: &str, out: &mut Vec<Cause>) {
    for (i, t) in objs(spec, "tolerations") {
        let idx = format!("{path}[{i}]");
        let key = str_of(t, "key");
        if !key.is_empty() {
            for e in qualified_name_errors(key) {
                out.push(Cause::invalid(format!("{idx}.key"), &s(key), &e));
            }
        }
        let op = str_of(t, "operator");
        if key.is_empty() && op != "Exists" {
            out.push(Cause::invalid(format!("{idx}.operator"), &s(op), "operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
        }
        let effect = str_of(t, "effect");
        if present(t, "tolerationSeconds") && effect != "NoExecute" {
            out.push(Cause::invalid(
                format!("{idx}.effect"),
                &s(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = str_of(t, "value");
        match op {
            "Equal" | "" => {
                let errs = label_value_errors(value);
                if !errs.is_empty() {
                    out.push(Cause::invalid(
                        format!("{idx}.operator"),
                        &s(value),
                        &errs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    out.push(Cause::invalid(
                        format!("{idx}.operator"),
                        &s(value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => out.push(Cause::not_supported(
                format!("{idx}.operator"),
                &s(other),
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            out.push(Cause::not_supported(
                format!("{idx}.effect"),
                &s(effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

/// `ValidatePodSpec` at `path` (`spec` for pods, `spec.template.spec` for workloads).
/// `is_pod` adds the checks upstream makes only for pods (not templates).
pub fn validate_pod_spec(spec: &Obj, path: &str, is_pod: bool) -> Vec<Cause> {
    let mut out = Vec::new();
    if !present(spec, "terminationGracePeriodSeconds") {
        out.push(Cause::required(format!(
            "{path}.terminationGracePeriodSeconds"
        )));
    }
    let grace = int(spec, "terminationGracePeriodSeconds");
    let volumes = validate_volumes(spec, &format!("{path}.volumes"), &mut out);
    validate_containers(spec, path, &volumes, grace, &mut out);
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for (i, c) in objs(spec, "containers") {
            for (j, p) in objs(c, "ports") {
                let hp = int(p, "hostPort").unwrap_or(0);
                let cp = int(p, "containerPort").unwrap_or(0);
                if (is_pod || hp != 0) && hp != cp {
                    out.push(Cause::invalid(
                        format!("{path}.containers[{i}].ports[{j}].hostPort"),
                        &json!(hp),
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    match str_of(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => out.push(Cause::required(format!("{path}.restartPolicy"))),
        other => out.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            &s(other),
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dns = str_of(spec, "dnsPolicy");
    match dns {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => out.push(Cause::required(format!("{path}.dnsPolicy"))),
        other => out.push(Cause::not_supported(
            format!("{path}.dnsPolicy"),
            &s(other),
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    out.extend(validate_labels(
        spec.get("nodeSelector"),
        &format!("{path}.nodeSelector"),
    ));
    if dns == "None" {
        match spec.get("dnsConfig").and_then(Value::as_object) {
            None => out.push(required_detail(
                format!("{path}.dnsConfig"),
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )),
            Some(c) if objs_or_strs_empty(c, "nameservers") => out.push(required_detail(
                format!("{path}.dnsConfig.nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            )),
            Some(_) => {}
        }
    }
    for (key, subdomain) in [
        ("serviceAccountName", true),
        ("nodeName", true),
        ("priorityClassName", true),
    ] {
        let v = str_of(spec, key);
        if !v.is_empty() && subdomain {
            dns_subdomain(&mut out, format!("{path}.{key}"), v);
        }
    }
    if let Some(ads) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64)
        && !(1..=MAX_INT32).contains(&ads)
    {
        out.push(Cause::invalid(
            format!("{path}.activeDeadlineSeconds"),
            &json!(ads),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for key in ["hostname", "subdomain"] {
        let v = str_of(spec, key);
        if !v.is_empty() {
            dns_label(&mut out, format!("{path}.{key}"), v);
        }
    }
    validate_tolerations(spec, &format!("{path}.tolerations"), &mut out);
    if let Some(pp) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        match pp {
            "PreemptLowerPriority" | "Never" => {}
            "" => out.push(Cause::required(format!("{path}.preemptionPolicy"))),
            other => out.push(Cause::not_supported(
                format!("{path}.preemptionPolicy"),
                &s(other),
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if is_pod {
        for key in ["containers", "initContainers"] {
            for (i, c) in objs(spec, key) {
                let image = str_of(c, "image");
                if image.trim() != image {
                    out.push(Cause::invalid(
                        format!("{path}.{key}[{i}].image"),
                        &s(image),
                        "must not have leading or trailing whitespace",
                    ));
                }
            }
        }
    }
    out
}

fn objs_or_strs_empty(m: &Obj, k: &str) -> bool {
    m.get(k).and_then(Value::as_array).is_none_or(Vec::is_empty)
}
