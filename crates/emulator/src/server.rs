//! HTTP wiring: routes, the bearer-token check, and the handle tests hold.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::answer::Answer;
use crate::arm;
use crate::graph;
use crate::identity::Verdict;
use crate::service::{split_url, Service};

/// Graph's version roots.
use azbatch::dialect::graph::VERSIONS as GRAPH_VERSIONS;

pub fn router(svc: Arc<Service>) -> Router {
    Router::new()
        .route("/batch", post(arm_batch))
        .route("/batchOperations/{id}", get(arm_poll))
        .route("/v1.0/$batch", post(graph_batch_v1))
        .route("/beta/$batch", post(graph_batch_beta))
        .route("/msi/token", get(msi_token))
        .route("/metadata/identity/oauth2/token", get(imds_token))
        .route("/{tenant}/oauth2/v2.0/token", post(entra_token))
        .fallback(direct)
        .with_state(svc)
}

async fn graph_batch(
    svc: Arc<Service>,
    version: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(a) = authorized(&svc, &headers) {
        return a.into_response();
    }
    let root = format!("{}/{version}", base(&headers));
    graph::batch::post(svc, &body, &root).await.into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn msi_token(State(svc): State<Arc<Service>>, headers: HeaderMap, uri: Uri) -> Response {
    svc.issuer
        .app_service(
            &svc.config,
            header(&headers, "x-identity-header"),
            &query(&uri),
        )
        .into_response()
}

async fn imds_token(State(svc): State<Arc<Service>>, headers: HeaderMap, uri: Uri) -> Response {
    svc.issuer
        .imds(&svc.config, header(&headers, "metadata"), &query(&uri))
        .into_response()
}

async fn entra_token(State(svc): State<Arc<Service>>, body: Bytes) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    svc.issuer
        .client_credentials(&svc.config, &form)
        .into_response()
}

async fn graph_batch_v1(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    graph_batch(svc, "v1.0", headers, body).await
}

async fn graph_batch_beta(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    graph_batch(svc, "beta", headers, body).await
}

/// Scheme and host the request was sent to, for `Location`s and `nextLink`s.
fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn authorized(svc: &Service, headers: &HeaderMap) -> Result<(), Answer> {
    if svc.config.token.is_none() {
        return Ok(());
    }
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = given.strip_prefix("Bearer ") else {
        return Err(Answer::error(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    match svc.issuer.verdict(&svc.config, token) {
        Verdict::Valid => Ok(()),
        Verdict::Expired => Err(Answer::error(
            401,
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
        )),
        Verdict::Invalid => Err(Answer::error(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        )),
    }
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    split_url(&uri.to_string()).1
}

async fn arm_batch(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Err(a) = authorized(&svc, &headers) {
        return a.into_response();
    }
    arm::batch::post(svc, &query(&uri), &body, &base(&headers))
        .await
        .into_response()
}

async fn arm_poll(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(a) = authorized(&svc, &headers) {
        return a.into_response();
    }
    arm::batch::poll(&svc, &id, &query(&uri), &base(&headers)).into_response()
}
/// Any other call goes straight to a model, as calls outside a batch do:
/// paths under a Graph version root to the directory, the rest to ARM.
async fn direct(
    State(svc): State<Arc<Service>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Err(a) = authorized(&svc, &headers) {
        return a.into_response();
    }
    let url = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let content_type = headers
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let json = content_type.is_empty()
        || content_type
            .to_ascii_lowercase()
            .starts_with("application/json");
    let parsed: Option<serde_json::Value> = if body.is_empty() || !json {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                let message = format!("The request content was invalid: {e}");
                return Answer::error(400, "InvalidRequestContent", &message).into_response();
            }
        }
    };
    let graph_version = GRAPH_VERSIONS
        .into_iter()
        .find(|v| uri.path().starts_with(&format!("/{v}/")));
    let r = match graph_version {
        Some(v) => {
            let bytes = (!json && !body.is_empty()).then_some(&body[..]);
            let root = format!("{}/{v}", base(&headers));
            svc.execute_graph(
                method.as_str(),
                &url[v.len() + 1..],
                parsed.as_ref(),
                bytes,
                &root,
                false,
            )
            .await
        }
        None => {
            svc.execute(
                method.as_str(),
                url,
                parsed.as_ref(),
                &base(&headers),
                false,
            )
            .await
        }
    };
    if let Some((bytes, content_type)) = r.bytes {
        let mut resp = (
            axum::http::StatusCode::from_u16(r.status).unwrap_or_default(),
            bytes,
        )
            .into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&content_type) {
            resp.headers_mut()
                .insert(axum::http::header::CONTENT_TYPE, v);
        }
        return resp;
    }
    Answer::Json {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
    .into_response()
}
