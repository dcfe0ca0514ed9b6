//! etcd's answer to a message over the gRPC receive limit (`--max-request-bytes` + 512 KiB).
//!
//! grpc-go refuses it with ResourceExhausted "grpc: received message larger than max (N vs.
//! M)"; tonic refuses it with OutOfRange "Error, decoded message length too large: found N
//! bytes, the limit is: M bytes" — and OutOfRange is the code clients read as "revision
//! compacted or in the future". This response map turns tonic's answer into grpc-go's. Tonic
//! answers a unary request it could not decode with a trailers-only response, so the status is
//! in the response headers, where this looks. `grpc-message` is percent-encoded (tonic encodes
//! spaces too), so it is decoded to be read and encoded the same way when replaced.

use tonic::codegen::http::{HeaderValue, Response};

const TONIC_PREFIX: &str = "Error, decoded message length too large: found ";
/// gRPC's status code numbers.
const OUT_OF_RANGE: &[u8] = b"11";
const RESOURCE_EXHAUSTED: &str = "8";

/// grpc-go's message for tonic's, if `msg` is tonic's "too large" message.
pub fn etcd_message(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix(TONIC_PREFIX)?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    let (found, limit): (u64, u64) = (found.parse().ok()?, limit.parse().ok()?);
    Some(format!(
        "grpc: received message larger than max ({found} vs. {limit})"
    ))
}

/// Rewrites a response refusing an oversized message (see the module docs); leaves every
/// other response alone.
pub fn rewrite<B>(mut resp: Response<B>) -> Response<B> {
    let headers = resp.headers_mut();
    if headers.get("grpc-status").map(HeaderValue::as_bytes) != Some(OUT_OF_RANGE) {
        return resp;
    }
    let Some(msg) = headers
        .get("grpc-message")
        .map(|v| percent_decode(v.as_bytes()))
        .and_then(|m| etcd_message(&m))
    else {
        return resp;
    };
    if let Ok(v) = HeaderValue::from_str(&msg.replace(' ', "%20")) {
        headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
        headers.insert("grpc-message", v);
    }
    resp
}

/// Decodes `%XX` escapes (a malformed escape is kept as it is); also the HTTP endpoints'
/// query decoder.
pub(crate) fn percent_decode(b: &[u8]) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonic_message_becomes_grpc_gos() {
        assert_eq!(
            etcd_message(
                "Error, decoded message length too large: found 534296 bytes, the limit is: 534288 bytes"
            )
            .as_deref(),
            Some("grpc: received message larger than max (534296 vs. 534288)")
        );
        assert_eq!(
            etcd_message("etcdserver: mvcc: required revision has been compacted"),
            None
        );
        let resp = Response::builder()
            .header("grpc-status", "11")
            .header(
                "grpc-message",
                "Error,%20decoded%20message%20length%20too%20large:%20found%209%20bytes,%20the%20limit%20is:%208%20bytes",
            )
            .body(())
            .unwrap_or_default();
        let resp = rewrite(resp);
        assert_eq!(resp.headers()["grpc-status"], "8");
        assert_eq!(
            resp.headers()["grpc-message"],
            "grpc:%20received%20message%20larger%20than%20max%20(9%20vs.%208)"
        );
    }
}
