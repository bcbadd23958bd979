//! Request bodies: the framing decoder (`Content-Length`, `chunked`) the connection runs over its
//! read buffer, and [`RequestBody`], what the handler polls.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::sync::{mpsc, oneshot};

use super::Http1Error;

/// One step of a body as the connection passes it on: data and whether it is the last.
pub(crate) type BodyMsg = Result<(Bytes, bool), Http1Error>;

/// A request body, streamed from the connection as the handler polls it. The first poll sends
/// `100 Continue` when the client asked for it. Ending early is fine: dropping it tells the
/// connection, which drains a little of the rest or closes after the response.
#[derive(Debug)]
pub struct RequestBody {
    rx: mpsc::Receiver<BodyMsg>,
    /// Fired on the first poll: the connection answers `Expect: 100-continue` then.
    want: Option<oneshot::Sender<()>>,
    /// Bytes still to come, when the request said (`Content-Length`).
    remaining: Option<u64>,
    done: bool,
}

impl RequestBody {
    pub(crate) fn new(
        rx: mpsc::Receiver<BodyMsg>,
        want: Option<oneshot::Sender<()>>,
        length: Option<u64>,
    ) -> Self {
        RequestBody {
            rx,
            want,
            remaining: length,
            done: false,
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = Http1Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Http1Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(want) = this.want.take() {
            let _ = want.send(());
        }
        loop {
            match ready!(this.rx.poll_recv(cx)) {
                Some(Ok((data, last))) => {
                    if last {
                        this.done = true;
                    }
                    if let Some(r) = &mut this.remaining {
                        *r = r.saturating_sub(data.len() as u64);
                    }
                    if !data.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if last {
                        return Poll::Ready(None);
                    }
                }
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                // The connection stopped without saying the body ended.
                None => {
                    this.done = true;
                    return Poll::Ready(Some(Err(Http1Error::BodyAbandoned)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// The longest chunk-size line (size, extensions) or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// The most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 64 * 1024;

/// What [`Decoder::decode`] found in the buffer.
#[derive(Debug, PartialEq)]
pub(crate) enum Decoded {
    Data(Bytes),
    /// The buffer holds no more of the body; read more.
    NeedMore,
    /// The body has ended.
    Done,
}

/// Where a chunked body is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Chunk {
    /// In the hex size: its value so far and how many digits.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size, in extensions, until CR; `line` counts the line's bytes.
    Ext {
        size: u64,
        line: usize,
    },
    /// CR of the size line seen, LF expected.
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// After the last chunk, at the start of a trailer line (or the final CRLF).
    TrailerStart {
        total: usize,
    },
    /// In a trailer field line.
    Trailer {
        total: usize,
        line: usize,
    },
    /// CR of a trailer line seen, LF expected.
    TrailerLf {
        total: usize,
    },
    /// CR of the final empty line seen, LF expected.
    EndLf,
}

/// Takes a request body's framing off the connection's read buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Decoder {
    Length(u64),
    Chunked(Chunk),
    Done,
}

impl Decoder {
    pub(crate) fn length(n: u64) -> Self {
        if n == 0 {
            Decoder::Done
        } else {
            Decoder::Length(n)
        }
    }

    pub(crate) fn chunked() -> Self {
        Decoder::Chunked(Chunk::Size { size: 0, digits: 0 })
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Decoder::Done)
    }

    /// Bytes of the body still to come, when known.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Done => Some(0),
            Decoder::Chunked(_) => None,
        }
    }

    /// The next piece of body data in `buf` (split off it, no copy), or what is missing.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, Http1Error> {
        match self {
            Decoder::Done => Ok(Decoded::Done),
            Decoder::Length(left) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                *left -= n as u64;
                if *left == 0 {
                    *self = Decoder::Done;
                }
                Ok(Decoded::Data(buf.split_to(n).freeze()))
            }
            Decoder::Chunked(state) => {
                let result = decode_chunked(state, buf);
                if matches!(result, Ok(Decoded::Done)) {
                    *self = Decoder::Done;
                }
                result
            }
        }
    }
}

fn decode_chunked(state: &mut Chunk, buf: &mut BytesMut) -> Result<Decoded, Http1Error> {
    loop {
        if let Chunk::Data { left } = *state {
            if buf.is_empty() {
                return Ok(Decoded::NeedMore);
            }
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let left = left - n as u64;
            *state = if left == 0 {
                Chunk::DataCr
            } else {
                Chunk::Data { left }
            };
            return Ok(Decoded::Data(buf.split_to(n).freeze()));
        }
        let Some(&b) = buf.first() else {
            return Ok(Decoded::NeedMore);
        };
        buf.advance(1);
        *state = match *state {
            Chunk::Size { size, digits } => match hex_value(b) {
                Some(v) => {
                    if digits >= 16 || size > u64::MAX >> 4 {
                        return Err(Http1Error::Chunked("chunk size overflows"));
                    }
                    Chunk::Size {
                        size: (size << 4) | u64::from(v),
                        digits: digits + 1,
                    }
                }
                None if digits == 0 => return Err(Http1Error::Chunked("missing chunk size")),
                None => size_line_byte(size, digits as usize, b)?,
            },
            Chunk::Ext { size, line } => {
                if line >= MAX_CHUNK_LINE {
                    return Err(Http1Error::Chunked("chunk extensions too long"));
                }
                size_line_byte(size, line, b)?
            }
            Chunk::SizeLf { size } => {
                if b != b'\n' {
                    return Err(Http1Error::Chunked("chunk size line not ended by CRLF"));
                }
                if size == 0 {
                    Chunk::TrailerStart { total: 0 }
                } else {
                    Chunk::Data { left: size }
                }
            }
            Chunk::DataCr if b == b'\r' => Chunk::DataLf,
            Chunk::DataLf if b == b'\n' => Chunk::Size { size: 0, digits: 0 },
            Chunk::DataCr | Chunk::DataLf => {
                return Err(Http1Error::Chunked("chunk data not followed by CRLF"));
            }
            Chunk::TrailerStart { total } => match b {
                b'\r' => Chunk::EndLf,
                b'\n' => return Err(Http1Error::Chunked("bare LF after the last chunk")),
                _ => Chunk::Trailer {
                    total: total + 1,
                    line: 1,
                },
            },
            Chunk::Trailer { total, line } => {
                if total >= MAX_TRAILERS || line >= MAX_CHUNK_LINE {
                    return Err(Http1Error::Chunked("trailers too long"));
                }
                match b {
                    b'\r' => Chunk::TrailerLf { total: total + 1 },
                    b'\n' => return Err(Http1Error::Chunked("bare LF in trailers")),
                    _ => Chunk::Trailer {
                        total: total + 1,
                        line: line + 1,
                    },
                }
            }
            Chunk::TrailerLf { total } if b == b'\n' => Chunk::TrailerStart { total: total + 1 },
            Chunk::EndLf if b == b'\n' => return Ok(Decoded::Done),
            Chunk::TrailerLf { .. } | Chunk::EndLf => {
                return Err(Http1Error::Chunked("trailer line not ended by CRLF"));
            }
            Chunk::Data { .. } => return Err(Http1Error::Chunked("unreachable data state")),
        };
    }
}

/// A byte of a chunk-size line after the size: CR ends it, anything but a control byte
/// (extensions, whose content is ignored) carries on.
fn size_line_byte(size: u64, line: usize, b: u8) -> Result<Chunk, Http1Error> {
    match b {
        b'\r' => Ok(Chunk::SizeLf { size }),
        b'\t' | b' '..=0x7e | 0x80..=0xff => Ok(Chunk::Ext {
            size,
            line: line + 1,
        }),
        _ => Err(Http1Error::Chunked("invalid byte in a chunk size line")),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
