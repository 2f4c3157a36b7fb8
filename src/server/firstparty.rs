//! First-party mode: public_url with a path (https://shop.example/stats). Requests that
//! still carry the prefix (a proxy that keeps it) are routed without it, and every root-relative
//! link in the HTML the server serves (href="/…", src="/…", action="/…") gets the prefix,
//! so the pages, the demo and the dashboard work under it. Redirects and the opt-out cookie's
//! Path follow base_path where they are made (server::visitor).

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use http::uri::{PathAndQuery, Uri};
use http::Request;
use http_body_util::Full;
use hyper::body::{Body, Incoming};

use super::response::Resp;

/// First-party mode behind a proxy that keeps the prefix: /stats/collect is /collect.
/// Requests without the prefix (a proxy that strips it, or a direct call) are served as they are.
pub fn strip_base_path(base: &str, req: &mut Request<Incoming>) {
    if base.is_empty() {
        return;
    }
    let Some(rest) = req.uri().path_and_query().and_then(|pq| pq.as_str().strip_prefix(base)) else {
        return;
    };
    let rest = match rest.as_bytes().first() {
        None | Some(b'?') => format!("/{rest}"),
        Some(b'/') => rest.to_owned(),
        Some(_) => return, // /statsfoo is not under /stats
    };
    let Ok(pq) = PathAndQuery::try_from(rest) else { return };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(pq);
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// Puts base in front of every root-relative link of an HTML response.
pub fn rebase_html(base: &str, resp: Resp) -> Resp {
    let is_html = resp.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if base.is_empty() || !is_html {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Some(bytes) = full_bytes(body) else {
        return Resp::from_parts(parts, Full::new(Bytes::new()));
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Resp::from_parts(parts, Full::new(bytes));
    };
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    while let Some(at) = ATTRS.iter().filter_map(|a| rest.find(a).map(|i| i + a.len())).min() {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        // "/x", but not "//host" (protocol-relative), absolute URLs, or links already under
        // the base.
        let under_base = rest.strip_prefix(base).is_some_and(|r| r.starts_with(['/', '"', '?', '#']));
        if rest.starts_with('/') && !rest.starts_with("//") && !under_base {
            out.push_str(base);
        }
    }
    out.push_str(rest);
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(ETAG); // the validator was computed for the body without the prefix
    Resp::from_parts(parts, Full::new(Bytes::from(out)))
}

const ATTRS: [&str; 3] = ["href=\"", "src=\"", "action=\""];

/// The bytes of a Full body (always available at once).
fn full_bytes(body: Full<Bytes>) -> Option<Bytes> {
    let mut body = std::pin::pin!(body);
    let waker = std::task::Waker::noop();
    match body.as_mut().poll_frame(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().ok(),
        std::task::Poll::Ready(None) => Some(Bytes::new()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::response::with_body;
    use http::StatusCode;

    fn body(r: Resp) -> String {
        String::from_utf8(full_bytes(r.into_body()).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn root_relative_links_get_the_prefix_once() {
        let html = r##"<a href="/disable">x</a><script src="/hushtale.js"></script><form action="/enable"></form><a href="//cdn.example/x"></a><a href="/stats/enable"></a><a href="https://a.example/"><a href="/statsx">"##;
        let r = rebase_html("/stats", with_body(StatusCode::OK, "text/html; charset=utf-8", Bytes::from(html)));
        assert_eq!(
            body(r),
            r##"<a href="/stats/disable">x</a><script src="/stats/hushtale.js"></script><form action="/stats/enable"></form><a href="//cdn.example/x"></a><a href="/stats/enable"></a><a href="https://a.example/"><a href="/stats/statsx">"##
        );
        let json = r#"{"a":"href=\"/x"}"#;
        assert_eq!(body(rebase_html("/stats", with_body(StatusCode::OK, "application/json", Bytes::from(json)))), json);
        let html = r#"<a href="/x">"#;
        assert_eq!(body(rebase_html("", with_body(StatusCode::OK, "text/html", Bytes::from(html)))), html);
    }
}
