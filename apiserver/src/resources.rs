//! The table of served resources: one row per (group, version, resource). Discovery, OpenAPI,
//! routing and storage all read this table; adding a kind starts here.

/// A subresource served under a resource (`pods/status`, `deployments/scale`).
#[derive(Debug, PartialEq, Eq)]
pub struct SubresourceDef {
    pub name: &'static str,
    /// The kind the subresource accepts and returns, as (group, version, kind).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// One served (group, version, resource).
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Plural resource name, used in URLs and storage keys.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [SubresourceDef],
    /// The group and version objects are stored in (and converted to and from).
    pub storage_group: &'static str,
    pub storage_version: &'static str,
    /// The storage key segment (usually `plural`; shared across versions and groups that
    /// store the same objects, e.g. both Event APIs store under `events`).
    pub storage_resource: &'static str,
}

impl ResourceDef {
    /// `v1` for the core group, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        api_version(self.group, self.version)
    }

    /// `pods` for the core group, `deployments.apps` otherwise (upstream's qualified resource,
    /// used in error messages).
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Pod` for the core group, `Deployment.apps` otherwise (used in Invalid messages).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// True when objects of this row are stored in another group or version.
    pub fn needs_conversion(&self) -> bool {
        self.group != self.storage_group || self.version != self.storage_version
    }

    pub fn subresource(&self, name: &str) -> Option<&'static SubresourceDef> {
        self.subresources.iter().find(|s| s.name == name)
    }

    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// The row of the storage version of this resource.
    pub fn storage_def(&self) -> &'static ResourceDef {
        lookup(self.storage_group, self.storage_version, self.plural).unwrap_or_else(|| {
            // The table is static and every storage version is itself a row (checked by a test).
            &RESOURCES[0]
        })
    }
}

pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const GPU: &[&str] = &["get", "patch", "update"];

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> SubresourceDef {
    SubresourceDef {
        name: "status",
        group,
        version,
        kind,
        verbs: GPU,
    }
}

const fn scale() -> SubresourceDef {
    SubresourceDef {
        name: "scale",
        group: "autoscaling",
        version: "v1",
        kind: "Scale",
        verbs: GPU,
    }
}

#[allow(clippy::too_many_arguments)]
const fn row(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [SubresourceDef],
) -> ResourceDef {
    ResourceDef {
        group,
        version,
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        categories,
        verbs: ALL_VERBS,
        subresources,
        storage_group: group,
        storage_version: version,
        storage_resource: plural,
    }
}

/// An older version of apps/v1 Deployments, converted to apps/v1 for storage. Only the
/// apps/v1 row carries the `deploy` short name and the `all` category, so kubectl resolves
/// them to apps/v1 without ambiguity warnings and `get all` lists Deployments once. Their scale
/// subresource answers with autoscaling/v1 Scale (upstream served per-version Scale kinds
/// there; kubectl reads them the same way).
const fn old_deployment(
    group: &'static str,
    version: &'static str,
    subresources: &'static [SubresourceDef],
) -> ResourceDef {
    ResourceDef {
        storage_group: "apps",
        storage_version: "v1",
        ..row(
            group,
            version,
            "Deployment",
            "deployments",
            "deployment",
            true,
            &[],
            &[],
            subresources,
        )
    }
}

const APPS_V1BETA2_DEPLOYMENT_SUBRESOURCES: &[SubresourceDef] =
    &[status("apps", "v1beta2", "Deployment"), scale()];
const APPS_V1BETA1_DEPLOYMENT_SUBRESOURCES: &[SubresourceDef] =
    &[status("apps", "v1beta1", "Deployment"), scale()];
const EXTENSIONS_DEPLOYMENT_SUBRESOURCES: &[SubresourceDef] =
    &[status("extensions", "v1beta1", "Deployment"), scale()];

const POD_SUBRESOURCES: &[SubresourceDef] = &[
    status("", "v1", "Pod"),
    SubresourceDef {
        name: "binding",
        group: "",
        version: "v1",
        kind: "Binding",
        verbs: &["create"],
    },
    SubresourceDef {
        name: "eviction",
        group: "policy",
        version: "v1",
        kind: "Eviction",
        verbs: &["create"],
    },
    SubresourceDef {
        name: "log",
        group: "",
        version: "v1",
        kind: "Pod",
        verbs: &["get"],
    },
    SubresourceDef {
        name: "exec",
        group: "",
        version: "v1",
        kind: "PodExecOptions",
        verbs: &["create", "get"],
    },
    SubresourceDef {
        name: "portforward",
        group: "",
        version: "v1",
        kind: "PodPortForwardOptions",
        verbs: &["create", "get"],
    },
];

/// Every served resource, grouped by group-version in discovery preference order (core first,
/// then groups in the order upstream lists them; within a group the preferred version first).
pub static RESOURCES: &[ResourceDef] = &[
    // core/v1
    row(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        &["cm"],
        &[],
        &[],
    ),
    row(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        &["ep"],
        &[],
        &[],
    ),
    row(
        "",
        "v1",
        "Event",
        "events",
        "event",
        true,
        &["ev"],
        &[],
        &[],
    ),
    row(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        &["ns"],
        &[],
        &[status("", "v1", "Namespace")],
    ),
    row(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        false,
        &["no"],
        &[],
        &[status("", "v1", "Node")],
    ),
    row(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        true,
        &["po"],
        &["all"],
        POD_SUBRESOURCES,
    ),
    row("", "v1", "Secret", "secrets", "secret", true, &[], &[], &[]),
    row(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        &[],
        &[],
    ),
    row(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        &["svc"],
        &["all"],
        &[status("", "v1", "Service")],
    ),
    // apps
    row(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
        &["all"],
        &[status("apps", "v1", "Deployment"), scale()],
    ),
    row(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
        &["all"],
        &[status("apps", "v1", "ReplicaSet"), scale()],
    ),
    old_deployment("apps", "v1beta2", APPS_V1BETA2_DEPLOYMENT_SUBRESOURCES),
    old_deployment("apps", "v1beta1", APPS_V1BETA1_DEPLOYMENT_SUBRESOURCES),
    // events.k8s.io: the same objects as core/v1 events, another shape
    ResourceDef {
        storage_group: "",
        storage_version: "v1",
        storage_resource: "events",
        ..row(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            "event",
            true,
            &["ev"],
            &[],
            &[],
        )
    },
    row(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        &[],
        &[],
        &[],
    ),
    row(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        &[],
        &[],
        &[],
    ),
    old_deployment("extensions", "v1beta1", EXTENSIONS_DEPLOYMENT_SUBRESOURCES),
];

/// (group, version, plural) → row: every request looks its resource up several times
/// (routing, metrics labels), and a scan of the table was about a microsecond each.
static BY_PLURAL: std::sync::LazyLock<
    std::collections::HashMap<(&'static str, &'static str, &'static str), &'static ResourceDef>,
> = std::sync::LazyLock::new(|| {
    let mut m = std::collections::HashMap::with_capacity(RESOURCES.len());
    for r in RESOURCES {
        // The first row wins, as the scan it replaces found it.
        m.entry((r.group, r.version, r.plural)).or_insert(r);
    }
    m
});

/// The row for (group, version, plural).
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    let index: &std::collections::HashMap<(&str, &str, &str), &'static ResourceDef> = &BY_PLURAL;
    index.get(&(group, version, plural)).copied()
}

/// The row for (group, version, kind).
pub fn lookup_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Served groups in preference order, each with its versions in preference order.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// Every row of one group-version.
pub fn in_group_version(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceDef> {
    let (group, version) = (group.to_string(), version.to_string());
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storage_version_is_served() {
        for r in RESOURCES {
            let s = lookup(r.storage_group, r.storage_version, r.plural);
            assert!(
                s.is_some(),
                "{}/{} {} has no storage row",
                r.group,
                r.version,
                r.plural
            );
            assert!(!s.is_some_and(|s| s.needs_conversion()));
        }
    }

    #[test]
    fn no_duplicate_rows() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "duplicate {}/{} {}",
                    a.group,
                    a.version,
                    a.plural
                );
            }
        }
    }

    #[test]
    fn groups_keep_preference_order() {
        let g = groups();
        assert_eq!(g[0], ("", vec!["v1"]));
        assert_eq!(g[1], ("apps", vec!["v1", "v1beta2", "v1beta1"]));
        assert!(
            g.iter()
                .any(|(n, v)| *n == "extensions" && v == &vec!["v1beta1"])
        );
    }

    #[test]
    fn qualified_names() {
        let d = lookup("apps", "v1", "deployments")
            .map(|d| (d.qualified_resource(), d.qualified_kind()));
        assert_eq!(
            d,
            Some(("deployments.apps".into(), "Deployment.apps".into()))
        );
        let p = lookup("", "v1", "pods").map(|d| d.qualified_resource());
        assert_eq!(p.as_deref(), Some("pods"));
    }
}
