//! LIST: selectors, `limit`/`continue` pagination at one consistent revision, and
//! resourceVersion semantics (unset/"0": current; `Exact`: that revision; `NotOlderThan`:
//! current, but not older than asked).

use base64::Engine;
use capstan_store::{KeyValue, ListOptions, Revision, Store, StoreError};
use serde::{Deserialize, Serialize};

use super::{Registry, decode_kv, storage, strategy};
use crate::error::ApiError;
use crate::object::{self, Object};
use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};

#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<u64>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

#[derive(Debug)]
pub struct ObjectList {
    pub items: Vec<Object>,
    pub resource_version: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

/// A list as the store returned it: the selected key-values, not decoded (their values lack
/// `resourceVersion`; [`decode_kv`] or `rawobj::served` add it).
#[derive(Debug)]
pub struct RawList {
    pub items: Vec<KeyValue>,
    pub resource_version: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

impl RawList {
    /// Decode every item.
    pub fn decode(self) -> Result<ObjectList, ApiError> {
        Ok(ObjectList {
            items: self.items.iter().map(decode_kv).collect::<Result<_, _>>()?,
            resource_version: self.resource_version,
            continue_token: self.continue_token,
            remaining: self.remaining,
        })
    }
}

/// The continue token: the revision of the first page and the last key returned.
#[derive(Serialize, Deserialize)]
struct Token {
    v: String,
    rv: Revision,
    start: String,
}

const TOKEN_VERSION: &str = "capstan.io/v1";

fn encode_token(rv: Revision, after: &str) -> String {
    let t = Token {
        v: TOKEN_VERSION.into(),
        rv,
        start: after.into(),
    };
    let json = serde_json::to_vec(&t).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_token(s: &str, prefix: &str) -> Result<Token, ApiError> {
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {s}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| bad())?;
    let t: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if t.v != TOKEN_VERSION || !t.start.starts_with(prefix) || t.rv <= 0 {
        return Err(bad());
    }
    Ok(t)
}

pub fn parse_rv(s: &str) -> Result<Revision, ApiError> {
    s.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid resource version: {s:?}")))
}

impl Registry {
    /// Does `obj` pass the selectors? Unknown field-selector fields are an error.
    pub(crate) fn selected(
        def: &ResourceDef,
        obj: &Object,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Result<bool, ApiError> {
        if !labels.matches(|k| object::label(obj, k)) {
            return Ok(false);
        }
        for req in &fields.0 {
            let Some(v) = strategy::field_value(def, obj, &req.field) else {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {}",
                    req.field
                )));
            };
            if (v == req.value) != req.equal {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Does the stored `kv` pass the selectors? Label selectors alone read only the stored
    /// labels; field selectors decode the object.
    fn selected_kv(
        def: &ResourceDef,
        kv: &KeyValue,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Result<bool, ApiError> {
        if fields.is_empty() {
            if labels.is_empty() {
                return Ok(true);
            }
            match crate::rawobj::labels(&kv.value) {
                Some(None) => return Ok(labels.matches(|_| None)),
                Some(Some(raw)) => {
                    if let Ok(map) = serde_json::from_slice::<object::Object>(raw) {
                        return Ok(labels.matches(|k| map.get(k).and_then(|v| v.as_str())));
                    }
                }
                None => {}
            }
        }
        Self::selected(def, &decode_kv(kv)?, labels, fields)
    }

    pub async fn list(
        &self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList, ApiError> {
        self.list_raw(def, ns, params).await?.decode()
    }

    /// LIST without decoding: the selected items as stored.
    pub async fn list_raw(
        &self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        params: &ListParams,
    ) -> Result<RawList, ApiError> {
        let def = storage(def);
        // Reject unknown field selectors up front, even on an empty collection.
        for req in &params.fields.0 {
            if strategy::field_value(def, &Object::new(), &req.field).is_none() {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {}",
                    req.field
                )));
            }
        }
        let prefix = self.collection_prefix(def, ns);
        let (mut revision, mut after) = (None, None);
        if let Some(token) = params.continue_token.as_deref().filter(|t| !t.is_empty()) {
            if params
                .resource_version
                .as_deref()
                .is_some_and(|rv| !rv.is_empty() && rv != "0")
            {
                return Err(ApiError::BadRequest(
                    "specifying resource version is not allowed when using continue".into(),
                ));
            }
            let t = decode_token(token, &prefix)?;
            revision = Some(t.rv);
            after = Some(t.start);
        } else if let Some(rv) = params.resource_version.as_deref().filter(|r| !r.is_empty()) {
            let rv = parse_rv(rv)?;
            match params.resource_version_match.as_deref() {
                Some("Exact") => revision = Some(rv),
                Some("NotOlderThan") | None | Some("") => {
                    let current = self
                        .store
                        .current_revision()
                        .await
                        .map_err(ApiError::from)?;
                    if rv > current {
                        return Err(ApiError::TooLargeResourceVersion(format!(
                            "Too large resource version: {rv}, current: {current}"
                        )));
                    }
                }
                Some(other) => {
                    return Err(ApiError::BadRequest(format!(
                        "unknown resourceVersionMatch: {other:?}"
                    )));
                }
            }
        }
        // metadata.name=X narrows the scan to one key.
        let pinned = params
            .fields
            .pinned("metadata.name")
            .map(str::to_string)
            .filter(|_| ns.is_some() || !def.namespaced);
        let limit = params.limit.filter(|l| *l > 0);
        let page = limit.map(|l| l.clamp(64, 10_000));
        let mut items = Vec::new();
        let mut read_at = revision;
        let mut next_after: Option<String> = None;
        loop {
            let opts = ListOptions {
                revision: read_at,
                limit: if pinned.is_some() { None } else { page },
                start_after: after.clone(),
            };
            let list_prefix = match &pinned {
                Some(name) => self.key(def, ns, name),
                None => prefix.clone(),
            };
            let res = self.store.list(&list_prefix, opts).await.map_err(|e| match e {
                StoreError::Compacted { .. } if params.continue_token.is_some() => ApiError::Expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".into(),
                ),
                StoreError::Compacted { .. } => ApiError::Expired("The resourceVersion for the provided list is too old.".into()),
                other => ApiError::from(other),
            })?;
            read_at = Some(res.revision);
            let page_last = res.items.last().map(|kv| kv.key.clone());
            for kv in res.items {
                // An exact-name read must not match a longer key with the same prefix.
                if let Some(name) = &pinned
                    && kv.key != self.key(def, ns, name)
                {
                    continue;
                }
                if Self::selected_kv(def, &kv, &params.labels, &params.fields)? {
                    let key = kv.key.clone();
                    items.push(kv);
                    if limit.is_some_and(|l| items.len() as u64 >= l) {
                        next_after = Some(key);
                        break;
                    }
                }
            }
            if next_after.is_some() {
                // Only hand out a token when something may follow.
                let more_in_page = next_after != page_last || res.more;
                if !more_in_page {
                    next_after = None;
                }
                break;
            }
            if !res.more {
                break;
            }
            after = page_last;
        }
        let resource_version = read_at.unwrap_or(0);
        Ok(RawList {
            items,
            resource_version,
            continue_token: next_after.map(|k| encode_token(resource_version, &k)),
            remaining: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = encode_token(42, "/registry/pods/default/b");
        let d = decode_token(&t, "/registry/pods/default/");
        assert!(matches!(d, Ok(Token { rv: 42, .. })));
        assert!(decode_token(&t, "/registry/secrets/").is_err());
        assert!(decode_token("!!!", "/registry/").is_err());
        assert!(decode_token("e30", "/registry/").is_err());
    }

    #[test]
    fn resource_versions() {
        assert_eq!(parse_rv("12").ok(), Some(12));
        assert!(parse_rv("-1").is_err());
        assert!(parse_rv("abc").is_err());
    }
}
