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
use crate::service::{split_url, Service};

pub fn router(svc: Arc<Service>) -> Router {
    Router::new()
        .route("/batch", post(arm_batch))
        .route("/batchOperations/{id}", get(arm_poll))
        .fallback(direct)
        .with_state(svc)
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
    let Some(expected) = &svc.config.token else {
        return Ok(());
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match given.strip_prefix("Bearer ") {
        Some(t) if t == expected => Ok(()),
        Some(_) => Err(Answer::error(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        )),
        None => Err(Answer::error(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
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

/// Any other call goes straight to the model, as ARM calls outside a batch do.
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
    let body = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                return Answer::error(
                    400,
                    "InvalidRequestContent",
                    &format!("The request content was invalid: {e}"),
                )
                .into_response()
            }
        }
    };
    let url = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let r = svc
        .execute(method.as_str(), url, body.as_ref(), &base(&headers), false)
        .await;
    Answer::Json {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
    .into_response()
}
