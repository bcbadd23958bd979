//! Swagger 2.0 JSON → gnostic's OpenAPI v2 protobuf ([`gnostic::Document`]), the way gnostic's
//! own parser reads a document: `x-` keys become vendor extensions, free-form values become
//! YAML text, a parameter is a `$ref` or one of body/query/formData/header/path, a response
//! schema of type `file` is a `FileSchema`. Keys Swagger 2.0 does not define are skipped (our
//! documents have none; gnostic would reject them).

use prost::Message;
use serde_json::{Map, Value};

use super::gnostic::*;

/// The encoded `Document` for the Swagger 2.0 document `doc`.
pub(super) fn encode(doc: &Value) -> Vec<u8> {
    document(doc).encode_to_vec()
}

pub(super) fn document(v: &Value) -> Document {
    Document {
        swagger: string(v, "swagger"),
        info: v.get("info").map(info),
        host: string(v, "host"),
        base_path: string(v, "basePath"),
        schemes: strings(v, "schemes"),
        consumes: strings(v, "consumes"),
        produces: strings(v, "produces"),
        paths: v.get("paths").map(paths),
        definitions: v.get("definitions").map(properties),
        parameters: v.get("parameters").map(|ps| ParameterDefinitions {
            additional_properties: entries(ps)
                .filter_map(|(name, p)| {
                    parameter(p).map(|value| NamedParameter {
                        name: name.clone(),
                        value: Some(value),
                    })
                })
                .collect(),
        }),
        responses: v.get("responses").map(|rs| ResponseDefinitions {
            additional_properties: entries(rs)
                .map(|(name, r)| NamedResponse {
                    name: name.clone(),
                    value: Some(response(r)),
                })
                .collect(),
        }),
        security: security(v),
        security_definitions: v.get("securityDefinitions").map(security_definitions),
        tags: list(v, "tags").map(tag).collect(),
        external_docs: v.get("externalDocs").map(external_docs),
        vendor_extension: extensions(v),
    }
}

/// A free-form value as gnostic keeps it: YAML text.
fn any(v: &Value) -> Any {
    // Serializing a JSON value to YAML cannot fail; JSON text is valid YAML anyway.
    let yaml = serde_yaml::to_string(v).unwrap_or_else(|_| v.to_string());
    Any { yaml }
}

fn extensions(v: &Value) -> Vec<NamedAny> {
    entries(v)
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn entries(v: &Value) -> impl Iterator<Item = (&String, &Value)> {
    v.as_object().into_iter().flat_map(Map::iter)
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn string(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A string list; a lone string counts as a list of one (as `type` may be).
fn strings(v: &Value, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn boolean(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn double(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn opt_any(v: &Value, key: &str) -> Option<Any> {
    v.get(key).map(any)
}

fn enums(v: &Value) -> Vec<Any> {
    list(v, "enum").map(any).collect()
}

fn info(v: &Value) -> Info {
    Info {
        title: string(v, "title"),
        version: string(v, "version"),
        description: string(v, "description"),
        terms_of_service: string(v, "termsOfService"),
        contact: v.get("contact").map(|c| Contact {
            name: string(c, "name"),
            url: string(c, "url"),
            email: string(c, "email"),
            vendor_extension: extensions(c),
        }),
        license: v.get("license").map(|l| License {
            name: string(l, "name"),
            url: string(l, "url"),
            vendor_extension: extensions(l),
        }),
        vendor_extension: extensions(v),
    }
}

fn external_docs(v: &Value) -> ExternalDocs {
    ExternalDocs {
        description: string(v, "description"),
        url: string(v, "url"),
        vendor_extension: extensions(v),
    }
}

fn tag(v: &Value) -> Tag {
    Tag {
        name: string(v, "name"),
        description: string(v, "description"),
        external_docs: v.get("externalDocs").map(external_docs),
        vendor_extension: extensions(v),
    }
}

fn paths(v: &Value) -> Paths {
    Paths {
        vendor_extension: extensions(v),
        path: entries(v)
            .filter(|(k, _)| !k.starts_with("x-"))
            .map(|(name, item)| NamedPathItem {
                name: name.clone(),
                value: Some(path_item(item)),
            })
            .collect(),
    }
}

fn path_item(v: &Value) -> PathItem {
    let op = |m: &str| v.get(m).map(operation);
    PathItem {
        xref: string(v, "$ref"),
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        options: op("options"),
        head: op("head"),
        patch: op("patch"),
        parameters: parameters_items(v),
        vendor_extension: extensions(v),
    }
}

fn operation(v: &Value) -> Operation {
    Operation {
        tags: strings(v, "tags"),
        summary: string(v, "summary"),
        description: string(v, "description"),
        external_docs: v.get("externalDocs").map(external_docs),
        operation_id: string(v, "operationId"),
        produces: strings(v, "produces"),
        consumes: strings(v, "consumes"),
        parameters: parameters_items(v),
        responses: v.get("responses").map(|rs| Responses {
            response_code: entries(rs)
                .filter(|(k, _)| !k.starts_with("x-"))
                .map(|(code, r)| NamedResponseValue {
                    name: code.clone(),
                    value: Some(ResponseValue {
                        oneof: Some(match r.get("$ref") {
                            Some(_) => ResponseValueOneof::JsonReference(json_reference(r)),
                            None => ResponseValueOneof::Response(response(r)),
                        }),
                    }),
                })
                .collect(),
            vendor_extension: extensions(rs),
        }),
        schemes: strings(v, "schemes"),
        deprecated: boolean(v, "deprecated"),
        security: security(v),
        vendor_extension: extensions(v),
    }
}

fn json_reference(v: &Value) -> JsonReference {
    JsonReference {
        xref: string(v, "$ref"),
        description: string(v, "description"),
    }
}

fn parameters_items(v: &Value) -> Vec<ParametersItem> {
    list(v, "parameters")
        .filter_map(|p| {
            let oneof = match p.get("$ref") {
                Some(_) => ParametersItemOneof::JsonReference(json_reference(p)),
                None => ParametersItemOneof::Parameter(parameter(p)?),
            };
            Some(ParametersItem { oneof: Some(oneof) })
        })
        .collect()
}

/// `None` for a parameter whose `in` is none of Swagger 2.0's five.
fn parameter(v: &Value) -> Option<Parameter> {
    let location = string(v, "in");
    let non_body =
        |oneof| ParameterOneof::NonBodyParameter(NonBodyParameter { oneof: Some(oneof) });
    let oneof = match location.as_str() {
        "body" => ParameterOneof::BodyParameter(BodyParameter {
            description: string(v, "description"),
            name: string(v, "name"),
            r#in: location,
            required: boolean(v, "required"),
            schema: v.get("schema").map(schema),
            vendor_extension: extensions(v),
        }),
        "query" => non_body(NonBodyParameterOneof::QueryParameterSubSchema(
            query_or_form_data(v),
        )),
        "formData" => non_body(NonBodyParameterOneof::FormDataParameterSubSchema(
            query_or_form_data(v),
        )),
        "header" => non_body(NonBodyParameterOneof::HeaderParameterSubSchema(
            header_or_path(v),
        )),
        "path" => non_body(NonBodyParameterOneof::PathParameterSubSchema(
            header_or_path(v),
        )),
        _ => return None,
    };
    Some(Parameter { oneof: Some(oneof) })
}

fn query_or_form_data(v: &Value) -> QueryOrFormDataParameter {
    QueryOrFormDataParameter {
        required: boolean(v, "required"),
        r#in: string(v, "in"),
        description: string(v, "description"),
        name: string(v, "name"),
        allow_empty_value: boolean(v, "allowEmptyValue"),
        r#type: string(v, "type"),
        format: string(v, "format"),
        items: v.get("items").map(|i| Box::new(primitives_items(i))),
        collection_format: string(v, "collectionFormat"),
        default: opt_any(v, "default"),
        maximum: double(v, "maximum"),
        exclusive_maximum: boolean(v, "exclusiveMaximum"),
        minimum: double(v, "minimum"),
        exclusive_minimum: boolean(v, "exclusiveMinimum"),
        max_length: int(v, "maxLength"),
        min_length: int(v, "minLength"),
        pattern: string(v, "pattern"),
        max_items: int(v, "maxItems"),
        min_items: int(v, "minItems"),
        unique_items: boolean(v, "uniqueItems"),
        r#enum: enums(v),
        multiple_of: double(v, "multipleOf"),
        vendor_extension: extensions(v),
    }
}

fn header_or_path(v: &Value) -> HeaderOrPathParameter {
    HeaderOrPathParameter {
        required: boolean(v, "required"),
        r#in: string(v, "in"),
        description: string(v, "description"),
        name: string(v, "name"),
        r#type: string(v, "type"),
        format: string(v, "format"),
        items: v.get("items").map(|i| Box::new(primitives_items(i))),
        collection_format: string(v, "collectionFormat"),
        default: opt_any(v, "default"),
        maximum: double(v, "maximum"),
        exclusive_maximum: boolean(v, "exclusiveMaximum"),
        minimum: double(v, "minimum"),
        exclusive_minimum: boolean(v, "exclusiveMinimum"),
        max_length: int(v, "maxLength"),
        min_length: int(v, "minLength"),
        pattern: string(v, "pattern"),
        max_items: int(v, "maxItems"),
        min_items: int(v, "minItems"),
        unique_items: boolean(v, "uniqueItems"),
        r#enum: enums(v),
        multiple_of: double(v, "multipleOf"),
        vendor_extension: extensions(v),
    }
}

fn primitives_items(v: &Value) -> PrimitivesItems {
    PrimitivesItems {
        r#type: string(v, "type"),
        format: string(v, "format"),
        items: v.get("items").map(|i| Box::new(primitives_items(i))),
        collection_format: string(v, "collectionFormat"),
        default: opt_any(v, "default"),
        maximum: double(v, "maximum"),
        exclusive_maximum: boolean(v, "exclusiveMaximum"),
        minimum: double(v, "minimum"),
        exclusive_minimum: boolean(v, "exclusiveMinimum"),
        max_length: int(v, "maxLength"),
        min_length: int(v, "minLength"),
        pattern: string(v, "pattern"),
        max_items: int(v, "maxItems"),
        min_items: int(v, "minItems"),
        unique_items: boolean(v, "uniqueItems"),
        r#enum: enums(v),
        multiple_of: double(v, "multipleOf"),
        vendor_extension: extensions(v),
    }
}

fn header(v: &Value) -> Header {
    let p = primitives_items(v);
    Header {
        r#type: p.r#type,
        format: p.format,
        items: p.items.map(|i| *i),
        collection_format: p.collection_format,
        default: p.default,
        maximum: p.maximum,
        exclusive_maximum: p.exclusive_maximum,
        minimum: p.minimum,
        exclusive_minimum: p.exclusive_minimum,
        max_length: p.max_length,
        min_length: p.min_length,
        pattern: p.pattern,
        max_items: p.max_items,
        min_items: p.min_items,
        unique_items: p.unique_items,
        r#enum: p.r#enum,
        multiple_of: p.multiple_of,
        description: string(v, "description"),
        vendor_extension: p.vendor_extension,
    }
}

fn response(v: &Value) -> Response {
    Response {
        description: string(v, "description"),
        schema: v.get("schema").map(|s| SchemaItem {
            oneof: Some(match s.get("type").and_then(Value::as_str) {
                Some("file") => SchemaItemOneof::FileSchema(FileSchema {
                    format: string(s, "format"),
                    title: string(s, "title"),
                    description: string(s, "description"),
                    default: opt_any(s, "default"),
                    required: strings(s, "required"),
                    r#type: string(s, "type"),
                    read_only: boolean(s, "readOnly"),
                    external_docs: s.get("externalDocs").map(external_docs),
                    example: opt_any(s, "example"),
                    vendor_extension: extensions(s),
                }),
                _ => SchemaItemOneof::Schema(schema(s)),
            }),
        }),
        headers: v.get("headers").map(|hs| Headers {
            additional_properties: entries(hs)
                .map(|(name, h)| NamedHeader {
                    name: name.clone(),
                    value: Some(header(h)),
                })
                .collect(),
        }),
        examples: v.get("examples").map(|es| AnyMap {
            additional_properties: entries(es)
                .map(|(name, e)| NamedAny {
                    name: name.clone(),
                    value: Some(any(e)),
                })
                .collect(),
        }),
        vendor_extension: extensions(v),
    }
}

fn properties(v: &Value) -> Properties {
    Properties {
        additional_properties: entries(v)
            .map(|(name, s)| NamedSchema {
                name: name.clone(),
                value: Some(schema(s)),
            })
            .collect(),
    }
}

fn schema(v: &Value) -> Schema {
    let types = strings(v, "type");
    Schema {
        xref: string(v, "$ref"),
        format: string(v, "format"),
        title: string(v, "title"),
        description: string(v, "description"),
        default: opt_any(v, "default"),
        multiple_of: double(v, "multipleOf"),
        maximum: double(v, "maximum"),
        exclusive_maximum: boolean(v, "exclusiveMaximum"),
        minimum: double(v, "minimum"),
        exclusive_minimum: boolean(v, "exclusiveMinimum"),
        max_length: int(v, "maxLength"),
        min_length: int(v, "minLength"),
        pattern: string(v, "pattern"),
        max_items: int(v, "maxItems"),
        min_items: int(v, "minItems"),
        unique_items: boolean(v, "uniqueItems"),
        max_properties: int(v, "maxProperties"),
        min_properties: int(v, "minProperties"),
        required: strings(v, "required"),
        r#enum: enums(v),
        additional_properties: match v.get("additionalProperties") {
            Some(Value::Bool(b)) => Some(Box::new(AdditionalPropertiesItem {
                oneof: Some(AdditionalPropertiesOneof::Boolean(*b)),
            })),
            Some(s @ Value::Object(_)) => Some(Box::new(AdditionalPropertiesItem {
                oneof: Some(AdditionalPropertiesOneof::Schema(schema(s))),
            })),
            _ => None,
        },
        r#type: (!types.is_empty()).then_some(StringList { value: types }),
        items: match v.get("items") {
            Some(Value::Array(a)) => Some(ItemsItem {
                schema: a.iter().map(schema).collect(),
            }),
            Some(s @ Value::Object(_)) => Some(ItemsItem {
                schema: vec![schema(s)],
            }),
            _ => None,
        },
        all_of: list(v, "allOf").map(schema).collect(),
        properties: v.get("properties").map(properties),
        discriminator: string(v, "discriminator"),
        read_only: boolean(v, "readOnly"),
        xml: v.get("xml").map(|x| Xml {
            name: string(x, "name"),
            namespace: string(x, "namespace"),
            prefix: string(x, "prefix"),
            attribute: boolean(x, "attribute"),
            wrapped: boolean(x, "wrapped"),
            vendor_extension: extensions(x),
        }),
        external_docs: v.get("externalDocs").map(external_docs),
        example: opt_any(v, "example"),
        vendor_extension: extensions(v),
    }
}

/// `security`: a list of `{scheme: [scopes]}` requirements.
fn security(v: &Value) -> Vec<SecurityRequirement> {
    list(v, "security")
        .map(|req| SecurityRequirement {
            additional_properties: entries(req)
                .map(|(name, scopes)| NamedStringList {
                    name: name.clone(),
                    value: Some(StringList {
                        value: scopes
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect(),
                    }),
                })
                .collect(),
        })
        .collect()
}

/// Basic and API-key schemes; OAuth2 ones are dropped (see [`SecurityDefinitionsItem`]).
fn security_definitions(v: &Value) -> SecurityDefinitions {
    SecurityDefinitions {
        additional_properties: entries(v)
            .filter_map(|(name, d)| {
                let oneof = match d.get("type").and_then(Value::as_str) {
                    Some("basic") => SecurityDefinitionsOneof::BasicAuthenticationSecurity(
                        BasicAuthenticationSecurity {
                            r#type: string(d, "type"),
                            description: string(d, "description"),
                            vendor_extension: extensions(d),
                        },
                    ),
                    Some("apiKey") => SecurityDefinitionsOneof::ApiKeySecurity(ApiKeySecurity {
                        r#type: string(d, "type"),
                        name: string(d, "name"),
                        r#in: string(d, "in"),
                        description: string(d, "description"),
                        vendor_extension: extensions(d),
                    }),
                    _ => return None,
                };
                Some(NamedSecurityDefinitionsItem {
                    name: name.clone(),
                    value: Some(SecurityDefinitionsItem { oneof: Some(oneof) }),
                })
            })
            .collect(),
    }
}
