//! The verb handlers for main resources: get, list, create, update, patch, delete,
//! deletecollection.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::request::{self, Query, Target};
use super::response::{self, Format};
use crate::convert;
use crate::error::{ApiError, Status};
use crate::object::{self, Object};
use crate::registry::{
    DeleteOutcome, DeleteParams, FieldValidation, ListParams, Listing, Part, Propagation,
    WriteParams,
};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::table::IncludeObject;

use super::AppState;

pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub target: &'a Target,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
}

impl Ctx<'_> {
    pub fn ns(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }
    pub fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or("")
    }
    pub fn format(&self) -> Format {
        response::negotiate(self.headers)
    }
    pub fn include_object(&self) -> Result<IncludeObject, ApiError> {
        IncludeObject::from_query(self.query.get("includeObject")).map_err(ApiError::BadRequest)
    }

    pub fn write_params(&self) -> Result<WriteParams, ApiError> {
        Ok(WriteParams {
            dry_run: dry_run(self.query)?,
            field_manager: Some(self.field_manager()),
            apply: false,
        })
    }

    /// The field manager of a write, as upstream's `managerOrUserAgent`: `fieldManager`, or
    /// the User-Agent up to its first `/` (printable characters, at most 128 bytes), so
    /// `kubectl-edit/v1.33.0 (linux/amd64) ...` writes as `kubectl-edit`.
    pub fn field_manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        let agent = self
            .headers
            .get(axum::http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let mut out = String::new();
        for c in agent.split('/').next().unwrap_or("").chars() {
            if c.is_control() {
                continue;
            }
            if out.len() + c.len_utf8() > 128 {
                break;
            }
            out.push(c);
        }
        out
    }

    pub fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.query.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation parameter unsupported: {other:?}; must be one of Ignore, Warn, Strict"
            ))),
        }
    }

    pub fn list_params(&self) -> Result<ListParams, ApiError> {
        let labels = LabelSelector::parse(self.query.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(self.query.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::BadRequest)?;
        let limit = match self.query.int("limit")? {
            Some(l) if l < 0 => {
                return Err(ApiError::BadRequest(format!("invalid limit: {l}")));
            }
            other => other.map(|l| l as u64),
        };
        Ok(ListParams {
            labels,
            fields,
            limit,
            continue_token: self.query.get("continue").map(str::to_string),
            resource_version: self.query.get("resourceVersion").map(str::to_string),
            resource_version_match: self.query.get("resourceVersionMatch").map(str::to_string),
        })
    }

    pub fn verb_allowed(&self, verb: &str) -> Result<(), ApiError> {
        if self.target.def.has_verb(verb) {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(self.target.def, verb))
        }
    }
}

fn dry_run(q: &Query) -> Result<bool, ApiError> {
    let mut dry = false;
    for v in q.all("dryRun") {
        match v {
            "All" => dry = true,
            "" => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unsupported dry run value: {other:?}; supported values: \"All\""
                )));
            }
        }
    }
    Ok(dry)
}

/// Decode and check a body for the target, converted to storage, with the unknown-field
/// report for `fieldValidation`.
pub(crate) fn decode_object(ctx: &Ctx<'_>, body: &[u8]) -> Result<(Object, Vec<String>), ApiError> {
    let media = request::content_type(ctx.headers);
    let def = ctx.target.def;
    let value = match media.as_str() {
        "" | "application/json" | "application/yaml" | "text/yaml" | "*/*" => {
            request::decode_body(body, &media)?
        }
        crate::protobuf::MEDIA_TYPE => {
            if body.len() > request::MAX_BODY_BYTES {
                return Err(request::too_large());
            }
            crate::protobuf::decode(body, def.group, def.version, def.kind).map_err(
                |e| match e {
                    crate::protobuf::ProtobufError::UnsupportedKind => {
                        ApiError::UnsupportedMediaType(e.to_string())
                    }
                    crate::protobuf::ProtobufError::Decode(e) => {
                        ApiError::BadRequest(e.to_string())
                    }
                },
            )?
        }
        other => {
            let protobuf = if crate::protobuf::supports(def.group, def.version, def.kind) {
                ", application/vnd.kubernetes.protobuf"
            } else {
                ""
            };
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml{protobuf} (got {other})"
            )));
        }
    };
    let obj = request::check_object(ctx.target, value)?;
    check_fields(ctx, obj)
}

/// Apply `fieldValidation` to an object in the client's version, then convert it to storage.
pub(crate) fn check_fields(
    ctx: &Ctx<'_>,
    mut obj: Object,
) -> Result<(Object, Vec<String>), ApiError> {
    let mode = ctx.field_validation()?;
    let report = crate::fieldcheck::check(ctx.target.def, &mut obj);
    if !report.invalid.is_empty() {
        return Err(ApiError::BadRequest(report.invalid.join(", ")));
    }
    let warnings = match mode {
        FieldValidation::Strict if !report.unknown.is_empty() => {
            return Err(ApiError::BadRequest(format!(
                "strict decoding error: {}",
                report.unknown.join(", ")
            )));
        }
        FieldValidation::Warn => report.unknown,
        _ => Vec::new(),
    };
    Ok((convert::to_storage(ctx.target.def, obj), warnings))
}

pub async fn get(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    ctx.verb_allowed("get")?;
    let obj = ctx
        .state
        .registry
        .get(ctx.target.def, ctx.ns(), ctx.name())
        .await?;
    Ok(response::object(
        StatusCode::OK,
        ctx.target.def,
        obj,
        ctx.format(),
        ctx.include_object()?,
        &[],
    ))
}

pub async fn list(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    ctx.verb_allowed("list")?;
    let params = ctx.list_params()?;
    let (def, format, include_object) = (ctx.target.def, ctx.format(), ctx.include_object()?);
    let registry = &ctx.state.registry;
    if format != Format::Json {
        let list = registry.list_raw(def, ctx.ns(), &params).await?;
        return response::raw_list(def, list, format, include_object);
    }
    match registry.list_paged(def, ctx.ns(), &params).await? {
        Listing::Whole(list) => response::raw_list(def, list, format, include_object),
        Listing::Paged(cursor) => Ok(response::stream_list(def, cursor)),
    }
}

pub async fn create(ctx: &Ctx<'_>, body: bytes::Bytes) -> Result<Response, ApiError> {
    ctx.verb_allowed("create")?;
    let params = ctx.write_params()?;
    let (obj, warnings) = decode_object(ctx, &body)?;
    let (format, include_object) = (ctx.format(), ctx.include_object()?);
    // JSON of an object stored as served: answered from the bytes stored, with the
    // resourceVersion spliced in (no second encoding), so the object itself is not kept.
    let from_bytes = format == Format::Json && !ctx.target.def.needs_conversion();
    let created = ctx
        .state
        .registry
        .create_stored(ctx.target.def, obj, &params, !from_bytes)
        .await?;
    if format == Format::Json
        && let Some((stored, rv)) = &created.stored
        && let Some(resp) =
            response::stored_object(StatusCode::CREATED, ctx.target.def, stored, *rv, &warnings)
    {
        return Ok(resp);
    }
    Ok(response::object(
        StatusCode::CREATED,
        ctx.target.def,
        created.into_object()?,
        format,
        include_object,
        &warnings,
    ))
}

pub async fn update(ctx: &Ctx<'_>, body: bytes::Bytes, part: Part) -> Result<Response, ApiError> {
    ctx.verb_allowed("update")?;
    let params = ctx.write_params()?;
    let (obj, warnings) = decode_object(ctx, &body)?;
    let updated = ctx
        .state
        .registry
        .update(ctx.target.def, ctx.ns(), ctx.name(), obj, part, &params)
        .await?;
    Ok(response::object(
        StatusCode::OK,
        ctx.target.def,
        updated,
        ctx.format(),
        ctx.include_object()?,
        &warnings,
    ))
}

pub async fn patch(ctx: &Ctx<'_>, body: bytes::Bytes, part: Part) -> Result<Response, ApiError> {
    ctx.verb_allowed("patch")?;
    super::patching::patch(ctx, body, part).await
}

fn delete_params(ctx: &Ctx<'_>, body: &[u8]) -> Result<DeleteParams, ApiError> {
    let mut params = DeleteParams {
        dry_run: dry_run(ctx.query)?,
        ..DeleteParams::default()
    };
    // DeleteOptions may come in the body and in the query; the query wins where both speak.
    if !body.iter().all(u8::is_ascii_whitespace) {
        let opts: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?;
        if let Some(p) = opts.get("propagationPolicy").and_then(Value::as_str) {
            params.propagation = Some(propagation(p)?);
        }
        if opts.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            params.propagation = Some(Propagation::Orphan);
        }
        if let Some(g) = opts.get("gracePeriodSeconds").and_then(Value::as_i64) {
            params.grace_period_seconds = Some(g);
        }
        if let Some(pre) = opts.get("preconditions") {
            params.precondition_uid = pre.get("uid").and_then(Value::as_str).map(str::to_string);
            params.precondition_rv = pre
                .get("resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if opts
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"))
        {
            params.dry_run = true;
        }
    }
    if let Some(p) = ctx.query.get("propagationPolicy") {
        params.propagation = Some(propagation(p)?);
    }
    if ctx
        .query
        .get("orphanDependents")
        .is_some_and(|v| request::parse_bool(v) == Some(true))
    {
        params.propagation = Some(Propagation::Orphan);
    }
    if let Some(g) = ctx.query.int("gracePeriodSeconds")? {
        params.grace_period_seconds = Some(g);
    }
    Ok(params)
}

fn propagation(p: &str) -> Result<Propagation, ApiError> {
    match p {
        "Orphan" => Ok(Propagation::Orphan),
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        other => Err(ApiError::BadRequest(format!(
            "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    }
}

pub async fn delete(ctx: &Ctx<'_>, body: bytes::Bytes) -> Result<Response, ApiError> {
    ctx.verb_allowed("delete")?;
    let params = delete_params(ctx, &body)?;
    let def = ctx.target.def;
    let outcome = ctx
        .state
        .registry
        .delete(def, ctx.ns(), ctx.name(), &params)
        .await?;
    Ok(match outcome {
        DeleteOutcome::Pending(obj) => response::object(
            StatusCode::OK,
            def,
            obj,
            Format::Json,
            IncludeObject::Metadata,
            &[],
        ),
        // Pods answer with the deleted object, as upstream's pod store does; the rest with
        // a Success status naming what was deleted.
        DeleteOutcome::Deleted(obj) if def.kind == "Pod" && def.group.is_empty() => {
            response::object(
                StatusCode::OK,
                def,
                obj,
                Format::Json,
                IncludeObject::Metadata,
                &[],
            )
        }
        DeleteOutcome::Deleted(obj) => {
            let status = Status::success(ctx.name(), def.group, def.plural, object::uid(&obj));
            response::encode(StatusCode::OK, Format::Json, &status.to_value(), &[])
        }
    })
}

pub async fn delete_collection(ctx: &Ctx<'_>, body: bytes::Bytes) -> Result<Response, ApiError> {
    ctx.verb_allowed("deletecollection")?;
    let params = delete_params(ctx, &body)?;
    let list_params = ctx.list_params()?;
    let def = ctx.target.def;
    let list = ctx.state.registry.list(def, ctx.ns(), &list_params).await?;
    let mut deleted = Vec::new();
    for obj in list.items {
        let name = object::name(&obj).unwrap_or("").to_string();
        let ns = object::namespace(&obj).map(str::to_string);
        match ctx
            .state
            .registry
            .delete(def, ns.as_deref(), &name, &params)
            .await
        {
            Ok(DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o)) => {
                deleted.push(Value::Object(convert::from_storage(def, o)));
            }
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let v = serde_json::json!({
        "kind": format!("{}List", def.kind),
        "apiVersion": def.api_version(),
        "metadata": {"resourceVersion": list.resource_version.to_string()},
        "items": deleted,
    });
    Ok(response::encode(StatusCode::OK, Format::Json, &v, &[]))
}
