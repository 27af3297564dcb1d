//! The front end, embedded in the binary: one page, its script and style,
//! the world map (Natural Earth 1:110m countries from the `world-atlas` npm
//! package, public domain, vendored in `assets/`) and the OpenAPI document.
//! Each is served with an ETag (its SHA-256) so a browser revalidates
//! cheaply.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");
const WORLD: &str = include_str!("../assets/countries-110m.json");
const OPENAPI: &str = include_str!("../assets/openapi.json");

fn etag(body: &'static str, cell: &'static OnceLock<String>) -> &'static str {
    cell.get_or_init(|| {
        let d = sha2::Sha256::digest(body.as_bytes());
        format!(
            "\"{}\"",
            d[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    })
}

fn serve(
    headers: &HeaderMap,
    body: &'static str,
    kind: &'static str,
    cell: &'static OnceLock<String>,
) -> Response {
    let tag = etag(body, cell);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == tag);
    let common = [
        (header::ETAG, tag),
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, kind)], body).into_response()
}

macro_rules! asset {
    ($name:ident, $body:expr, $kind:expr) => {
        pub(crate) async fn $name(headers: HeaderMap) -> Response {
            static CELL: OnceLock<String> = OnceLock::new();
            let mut r = serve(&headers, $body, $kind, &CELL);
            if $kind.starts_with("text/html") {
                // Everything the page loads is its own: no inline script,
                // no other origin.
                r.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
                        .parse()
                        .unwrap(),
                );
            }
            r
        }
    };
}

asset!(index, INDEX, "text/html; charset=utf-8");
asset!(script, SCRIPT, "text/javascript; charset=utf-8");
asset!(style, STYLE, "text/css; charset=utf-8");
asset!(world, WORLD, "application/json");
asset!(openapi, OPENAPI, "application/json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_and_the_map_are_json() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let world: serde_json::Value = serde_json::from_str(WORLD).unwrap();
        assert_eq!(world["type"], "Topology");
        assert!(
            world["objects"]["countries"]["geometries"]
                .as_array()
                .unwrap()
                .len()
                > 170
        );
    }
}
