//! Request heads in (parsed with `httparse`), response heads out, and the plain-text answers
//! written when a head cannot be served.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Uri, Version};

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
}

/// Why a head is refused; each becomes a plain-text answer, then the connection closes.
#[derive(Debug, PartialEq)]
pub(crate) enum Refusal {
    /// Malformed; the text, if any, says why (Go's `400 Bad Request: <why>`).
    BadRequest(Option<&'static str>),
    TooLarge,
    UnsupportedTransferEncoding,
    ExpectationFailed,
}

impl Refusal {
    /// The whole answer, in the form of Go's `net/http` server.
    pub(crate) fn response(&self) -> Vec<u8> {
        const HEADERS: &str =
            "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n";
        let text = match self {
            Refusal::BadRequest(None) => "400 Bad Request".to_string(),
            Refusal::BadRequest(Some(why)) => format!("400 Bad Request: {why}"),
            Refusal::TooLarge => "431 Request Header Fields Too Large".to_string(),
            Refusal::UnsupportedTransferEncoding => {
                return format!(
                    "HTTP/1.1 501 Not Implemented{HEADERS}Unsupported transfer encoding"
                )
                .into_bytes();
            }
            Refusal::ExpectationFailed => {
                return "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .as_bytes()
                    .to_vec();
            }
        };
        format!("HTTP/1.1 {text}{HEADERS}{text}").into_bytes()
    }
}

/// The result of looking at the buffered bytes for a head (short-lived, on the stack).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// A head of this many bytes.
    Complete(Head, usize),
    Partial,
}

/// Header slots tried first (on the stack), then, for a head with more, on the heap.
const FEW_HEADERS: usize = 64;
const MANY_HEADERS: usize = 4096;

/// Parse a request head at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Result<Parsed, Refusal> {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    match parse_with(buf, &mut few) {
        Err(Refusal::TooLarge) => {}
        other => return other,
    }
    let mut many = vec![httparse::EMPTY_HEADER; MANY_HEADERS];
    parse_with(buf, &mut many)
}

fn parse_with<'b>(buf: &'b [u8], slots: &mut [httparse::Header<'b>]) -> Result<Parsed, Refusal> {
    let mut req = httparse::Request::new(slots);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        Err(_) => return Err(Refusal::BadRequest(None)),
    };
    let method = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(Refusal::BadRequest(None))?;
    let uri = req
        .path
        .and_then(|p| p.parse::<Uri>().ok())
        .ok_or(Refusal::BadRequest(None))?;
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(Refusal::BadRequest(None)),
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| Refusal::BadRequest(None))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| Refusal::BadRequest(Some("invalid header value")))?;
        headers.append(name, value);
    }
    // As Go: HTTP/1.1 needs exactly one Host (CONNECT aside).
    let hosts = headers.get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err(Refusal::BadRequest(Some("too many Host headers")));
    }
    if hosts == 0 && version == Version::HTTP_11 && method != Method::CONNECT {
        return Err(Refusal::BadRequest(Some("missing required Host header")));
    }
    Ok(Parsed::Complete(
        Head {
            method,
            uri,
            version,
            headers,
        },
        n,
    ))
}

/// How a request's body is framed.
#[derive(Debug, PartialEq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
}

/// The framing of a request body from its headers: `chunked` (the only transfer coding taken,
/// HTTP/1.1 only), else `Content-Length` (repeated values must agree), else none. Both at once,
/// or a bad length, are refused.
pub(crate) fn request_framing(head: &Head) -> Result<Framing, Refusal> {
    let te: Vec<&HeaderValue> = head
        .headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .collect();
    let has_length = head.headers.contains_key(header::CONTENT_LENGTH);
    if !te.is_empty() && head.version == Version::HTTP_11 {
        if has_length {
            return Err(Refusal::BadRequest(Some(
                "both Transfer-Encoding and Content-Length",
            )));
        }
        return match te.as_slice() {
            [one] if one.as_bytes().eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            _ => Err(Refusal::UnsupportedTransferEncoding),
        };
    }
    let mut length: Option<u64> = None;
    for value in head.headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let n =
                parse_length(trim(part)).ok_or(Refusal::BadRequest(Some("bad Content-Length")))?;
            if length.is_some_and(|l| l != n) {
                return Err(Refusal::BadRequest(Some("conflicting Content-Length")));
            }
            length = Some(n);
        }
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}

/// A decimal length: digits only, no overflow.
pub(crate) fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// Whether any of the headers' comma-separated values is `token` (case-insensitive).
pub(crate) fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// The response head: status line and headers.
pub(crate) fn encode_response_head(
    version: Version,
    status: StatusCode,
    headers: &HeaderMap,
) -> Vec<u8> {
    let size: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(size + 48);
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The `date` header value, formatted once per second.
pub(crate) fn date() -> HeaderValue {
    static CACHE: Mutex<Option<(u64, HeaderValue)>> = Mutex::new(None);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((at, value)) = &*cache
        && *at == now
    {
        return value.clone();
    }
    let text = i64::try_from(now)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let value = HeaderValue::from_str(&text)
        .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
    *cache = Some((now, value.clone()));
    value
}
