//! Azure Resource Manager's batch dialect, all of it in one place.
//!
//! The envelope: `POST {arm}/batch?api-version=2020-06-01` with
//! `{"requests":[{"httpMethod","name","url","content"}]}`, answered with
//! `{"responses":[{"name","httpStatusCode","headers","content","contentLength"}]}`
//! (a polled answer of an asynchronous batch may say `value` instead of `responses`).
//!
//! The throttling model (Microsoft Learn, "Understand how Azure Resource
//! Manager throttles requests", 2024 regional throttling): token buckets per
//! subscription (or tenant, for calls outside one), per principal and kind of
//! call; reads 250 tokens refilled at 25 a second, writes and deletes 200 at
//! 10; each answer tells what is left in `x-ms-ratelimit-remaining-*`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ItemAnswer, Outgoing};

/// Largest batch the service takes.
pub const MAX_BATCH: usize = 500;
/// The service takes at most this many items in a batch once any of them has content.
pub const MAX_ITEMS_WITH_BODY: usize = 20;
/// The API versions the batch endpoint accepts; the first is the default.
pub const BATCH_API_VERSIONS: [&str; 2] = ["2020-06-01", "2015-11-01"];
/// The body key of a paged answer's link to the next page.
pub const NEXT_LINK: &str = "nextLink";

/// ARM's top-level path segments.
const ROOTS: [&str; 5] = [
    "subscriptions",
    "providers",
    "tenants",
    "resources",
    "locations",
];

/// Whether a URL's first segment is one of ARM's roots.
pub(crate) fn is_root(first: &str) -> bool {
    ROOTS.iter().any(|r| first.eq_ignore_ascii_case(r))
}

/// Whether a URL carries ARM's `api-version`.
pub(crate) fn has_api_version(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|p| p.to_ascii_lowercase().starts_with("api-version="))
    })
}

/// A URL that can only be ARM's. Graph has `/subscriptions` too (change
/// notifications), never with an `api-version`, providers or resource groups.
pub(crate) fn is_surely_arm(url: &str) -> bool {
    let path = url.split('?').next().unwrap_or("").to_ascii_lowercase();
    super::first_segment(url).eq_ignore_ascii_case("subscriptions")
        && (url.contains("api-version=")
            || path.contains("/providers/")
            || path.contains("/resourcegroups"))
}

/// ARM items carry no headers: a JSON Content-Type is accepted and implied.
pub(crate) fn item_headers(given: Vec<(String, String)>) -> Result<Vec<(String, String)>, String> {
    for (name, value) in &given {
        let json = name.eq_ignore_ascii_case("content-type")
            && value.to_ascii_lowercase().starts_with("application/json");
        if !json {
            return Err(format!("ARM batch items cannot carry the header \"{name}\" (only Content-Type: application/json)"));
        }
    }
    Ok(vec![])
}

/// The error code of a 429 that is not throttling: ARM documents that "some
/// resource providers return 429 to report a temporary problem", such as the
/// network provider's `RetryableErrorDueToAnotherOperation` when another
/// operation holds the resource, and that the error details tell it from
/// throttling ("Understand how Azure Resource Manager throttles requests").
/// Its `RetryableError` answers name the cause in `details`.
pub(crate) fn contention(body: &Value) -> Option<String> {
    let error = body.get("error").unwrap_or(body);
    let code = |e: &Value| e.get("code").and_then(Value::as_str).map(str::to_string);
    let details = error.get("details").and_then(Value::as_array);
    std::iter::once(error)
        .chain(details.into_iter().flatten())
        .filter_map(code)
        .find(|c| c.starts_with("RetryableError") || c == "AnotherOperationInProgress")
}

/// What an ARM call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Reads,
    Writes,
    Deletes,
}

impl Kind {
    /// The kind of an HTTP method.
    pub fn of(method: &str) -> Kind {
        match method {
            "GET" | "HEAD" => Kind::Reads,
            "DELETE" => Kind::Deletes,
            _ => Kind::Writes,
        }
    }

    /// The word scopes and headers use for it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Reads => "reads",
            Kind::Writes => "writes",
            Kind::Deletes => "deletes",
        }
    }

    /// Tokens in a full bucket, and tokens added a second, as documented
    /// for `model`.
    pub fn seed(self, model: Model) -> (f64, f64) {
        let hourly = |n: f64| (n, n / 3600.0);
        match (model, self) {
            (Model::TokenBucket, Kind::Reads) => (250.0, 25.0),
            (Model::TokenBucket, Kind::Writes | Kind::Deletes) => (200.0, 10.0),
            (Model::Hourly, Kind::Reads) => hourly(12_000.0),
            (Model::Hourly, Kind::Writes) => hourly(1_200.0),
            (Model::Hourly, Kind::Deletes) => hourly(15_000.0),
        }
    }
}

/// How a cloud's ARM counts calls, as its documentation says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Model {
    /// The regional token buckets of 2024 (learn.microsoft.com, "Understand
    /// how Azure Resource Manager throttles requests"): reads 250 refilled at
    /// 25 a second, writes and deletes 200 at 10, per subscription (or tenant)
    /// and principal; a global subscription bucket 15 times that for all
    /// principals.
    #[default]
    TokenBucket,
    /// Counts per hour (docs.azure.cn, the same page for Azure operated by
    /// 21Vianet): reads 12,000, deletes 15,000, writes 1,200 an hour per
    /// subscription (or tenant) and principal; modelled as buckets of an
    /// hour's count refilled evenly over the hour.
    Hourly,
}

/// The scope of a call: `subscription-{kind}/{id}` inside a subscription,
/// `tenant-{kind}` outside one. The part before `/` names the
/// `x-ms-ratelimit-remaining-*` header that tells its bucket's tokens.
pub(crate) fn scope(method: &str, path: &str) -> String {
    let kind = Kind::of(method).name();
    let mut segs = path.trim_start_matches('/').split('/');
    match (segs.next(), segs.next()) {
        (Some(s), Some(id)) if s.eq_ignore_ascii_case("subscriptions") && !id.is_empty() => {
            format!("{}/{}", subscription_scope(method), id.to_ascii_lowercase())
        }
        _ => format!("tenant-{kind}"),
    }
}

/// The head of the throttle scope of a `method` call inside a subscription:
/// `subscription-reads` (then `/{subscriptionId}`).
pub fn subscription_scope(method: &str) -> String {
    format!("subscription-{}", Kind::of(method).name())
}

/// What a resource provider has left of each of its own throttling policies
/// that the request met, beside ARM's buckets ("Troubleshooting API
/// throttling errors", Azure Compute): `<provider>/<policy>;<count>`, one
/// per policy, as several header lines or joined by commas, e.g.
/// `Microsoft.Compute/HighCostGet3Min;159,Microsoft.Compute/HighCostGet30Min;795`.
pub(crate) const REMAINING_RESOURCE: &str = "x-ms-ratelimit-remaining-resource";

/// The policies named in a [`REMAINING_RESOURCE`] value and what each has
/// left; what does not read as `name;count` is skipped.
pub(crate) fn provider_policies(value: &str) -> Vec<(String, f64)> {
    value
        .split(',')
        .filter_map(|p| {
            let (name, count) = p.trim().rsplit_once(';')?;
            let count = count.trim().parse::<f64>().ok()?;
            let name = name.trim();
            (name.contains('/') && count.is_finite() && count >= 0.0)
                .then(|| (name.to_ascii_lowercase(), count))
        })
        .collect()
}

/// The period a provider policy counts over, as its name tells it
/// (`HighCostGet3Min`, `DeleteVMScaleSet30Min`); otherwise a minute, as
/// Compute's policies count "per minute" ("Compute throttling limits": a
/// bucket per limit, refilled every minute).
pub(crate) fn policy_period(name: &str) -> std::time::Duration {
    let minutes = name
        .strip_suffix("min")
        .map(|head| {
            let digits = head.len() - head.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            &head[head.len() - digits..]
        })
        .and_then(|d| d.parse::<u64>().ok())
        .filter(|m| *m > 0)
        .unwrap_or(1);
    std::time::Duration::from_secs(minutes * 60)
}

/// The operation a request is, as a provider's policies see it: the provider
/// and resource type its path names last (`microsoft.compute/virtualmachines`
/// for `.../providers/Microsoft.Compute/virtualMachines/vm1/start`) and the
/// kind of call. Requests of one operation meet the same policies.
pub(crate) fn operation(method: &str, url: &str) -> Option<String> {
    let path = url.split('?').next()?.to_ascii_lowercase();
    let (_, tail) = path.rsplit_once("/providers/")?;
    let mut segs = tail.split('/').filter(|s| !s.is_empty());
    let (provider, kind) = (segs.next()?, segs.next()?);
    Some(format!("{provider}/{kind} {}", Kind::of(method).name()))
}

/// How many times a principal's bucket the global subscription bucket holds,
/// shared by every principal (the regional model's documentation).
const GLOBAL_FACTOR: f64 = 15.0;

impl Kind {
    /// The subscription's global bucket for this kind, shared by every
    /// principal, where `model` documents one.
    pub fn global_seed(self, model: Model) -> Option<(f64, f64)> {
        let (capacity, refill) = self.seed(model);
        (model == Model::TokenBucket).then_some((capacity * GLOBAL_FACTOR, refill * GLOBAL_FACTOR))
    }
}

/// ARM's buckets by the head of a scope's key: their kind, the header that
/// tells how many calls the principal has left, and for a subscription the
/// header of the global bucket every principal shares.
const BUCKETS: [(&str, Kind, &str, Option<&str>); 6] = [
    (
        "subscription-reads",
        Kind::Reads,
        "x-ms-ratelimit-remaining-subscription-reads",
        Some("x-ms-ratelimit-remaining-subscription-global-reads"),
    ),
    (
        "subscription-writes",
        Kind::Writes,
        "x-ms-ratelimit-remaining-subscription-writes",
        Some("x-ms-ratelimit-remaining-subscription-global-writes"),
    ),
    (
        "subscription-deletes",
        Kind::Deletes,
        "x-ms-ratelimit-remaining-subscription-deletes",
        Some("x-ms-ratelimit-remaining-subscription-global-deletes"),
    ),
    (
        "tenant-reads",
        Kind::Reads,
        "x-ms-ratelimit-remaining-tenant-reads",
        None,
    ),
    (
        "tenant-writes",
        Kind::Writes,
        "x-ms-ratelimit-remaining-tenant-writes",
        None,
    ),
    (
        "tenant-deletes",
        Kind::Deletes,
        "x-ms-ratelimit-remaining-tenant-deletes",
        None,
    ),
];

/// The bucket behind an ARM scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArmBucket {
    /// What its calls count against.
    pub kind: Kind,
    /// The header with the principal's calls left.
    pub remaining: &'static str,
    /// The header with the calls left in the subscription's global bucket,
    /// shared by every principal (subscriptions only).
    pub global: Option<&'static str>,
}

/// The bucket behind scope `key`, if it is ARM's.
pub(crate) fn bucket(key: &str) -> Option<ArmBucket> {
    let head = key.split('/').next()?;
    BUCKETS
        .iter()
        .find(|(h, ..)| *h == head)
        .map(|&(_, kind, remaining, global)| ArmBucket {
            kind,
            remaining,
            global,
        })
}

#[derive(Serialize)]
struct Envelope<'a> {
    requests: Vec<Item<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    http_method: &'a str,
    name: &'a str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_header_details: Option<&'a Value>,
}

/// The JSON body of a batch request.
pub fn encode(items: &[Outgoing<'_>]) -> Vec<u8> {
    let env = Envelope {
        requests: items
            .iter()
            .map(|o| Item {
                http_method: o.method,
                name: o.name,
                url: o.url,
                content: o.body,
                request_header_details: o.header_details,
            })
            .collect(),
    };
    serde_json::to_vec(&env).expect("a batch envelope always serializes")
}

#[derive(Deserialize)]
struct Answer {
    responses: Option<Vec<AnswerItem>>,
    value: Option<Vec<AnswerItem>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerItem {
    name: Option<String>,
    http_status_code: u16,
    #[serde(default)]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    content: Value,
}

/// Reads a final batch answer. Items without a name cannot be matched and are
/// dropped here; the engine notices the request they belonged to is unanswered.
pub fn decode(body: &[u8]) -> Result<Vec<ItemAnswer>, String> {
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| format!("batch answer is not valid: {e}"))?;
    let items = a
        .responses
        .or(a.value)
        .ok_or_else(|| "batch answer has neither \"responses\" nor \"value\"".to_string())?;
    Ok(items
        .into_iter()
        .filter_map(|i| {
            Some(ItemAnswer {
                name: i.name?,
                status: i.http_status_code,
                headers: i.headers.unwrap_or_default(),
                body: i.content,
                base64: false,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_arm_items() {
        let url = "/subscriptions/s/resourcegroups/rg?api-version=2021-04-01";
        let (content, details) = (
            json!({"location":"westeurope"}),
            json!({"commandName":"test"}),
        );
        let body = encode(&[Outgoing {
            name: "7",
            method: "PUT",
            url,
            headers: &[],
            body: Some(&content),
            header_details: Some(&details),
        }]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"requests":[{"httpMethod":"PUT","name":"7","url":url,
                "content":{"location":"westeurope"},"requestHeaderDetails":{"commandName":"test"}}]})
        );
    }

    #[test]
    fn a_429_of_another_operation_is_told_from_throttling() {
        let locked = serde_json::json!({"error": {"code": "RetryableError", "message": "A retryable error occurred.",
            "details": [{"code": "RetryableErrorDueToAnotherOperation", "message": "Operation PutPublicIpAddressOperation is updating resource lb-ip. The call can be retried in 14 seconds."}]}});
        assert_eq!(contention(&locked).as_deref(), Some("RetryableError"));
        let direct = serde_json::json!({"error": {"code": "RetryableErrorDueToAnotherOperation"}});
        assert_eq!(
            contention(&direct).as_deref(),
            Some("RetryableErrorDueToAnotherOperation")
        );
        let throttled = serde_json::json!({"error": {"code": "SubscriptionRequestsThrottled", "message": "Number of requests exceeded"}});
        assert_eq!(contention(&throttled), None);
        assert_eq!(contention(&Value::Null), None);
    }

    #[test]
    fn reads_what_a_provider_has_left_of_its_policies() {
        assert_eq!(
            provider_policies(
                "Microsoft.Compute/HighCostGet3Min;159, Microsoft.Compute/HighCostGet30Min;795,junk,x;y"
            ),
            vec![
                ("microsoft.compute/highcostget3min".to_string(), 159.0),
                ("microsoft.compute/highcostget30min".to_string(), 795.0)
            ]
        );
        assert_eq!(
            policy_period("microsoft.compute/highcostget3min").as_secs(),
            180
        );
        assert_eq!(
            policy_period("microsoft.compute/deletevmscaleset30min").as_secs(),
            1800
        );
        assert_eq!(
            policy_period("microsoft.compute/vmssqueuedvmoperations").as_secs(),
            60
        );
        assert_eq!(
            operation(
                "POST",
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1/start?api-version=2024-03-01"
            )
            .as_deref(),
            Some("microsoft.compute/virtualmachines writes")
        );
        assert_eq!(
            operation("GET", "/subscriptions/s/resourcegroups?api-version=1"),
            None
        );
    }

    #[test]
    fn each_bucket_names_its_remaining_header() {
        assert_eq!(
            bucket("subscription-deletes/abc"),
            Some(ArmBucket {
                kind: Kind::Deletes,
                remaining: "x-ms-ratelimit-remaining-subscription-deletes",
                global: Some("x-ms-ratelimit-remaining-subscription-global-deletes"),
            })
        );
        let tenant = bucket("tenant-reads").unwrap();
        assert_eq!(tenant.remaining, "x-ms-ratelimit-remaining-tenant-reads");
        assert_eq!(tenant.global, None, "the global bucket is a subscription's");
        assert_eq!(
            Kind::Reads.global_seed(Model::TokenBucket),
            Some((3750.0, 375.0)),
            "15 times a principal's"
        );
        assert_eq!(Kind::Reads.global_seed(Model::Hourly), None);
        assert_eq!(bucket("mailbox/1"), None);
        assert_eq!(bucket("app"), None);
    }

    #[test]
    fn decodes_responses_or_value() {
        for key in ["responses", "value"] {
            let body = json!({key: [
                {"name":"b","httpStatusCode":404,"headers":{"x":"1"},"content":{"error":{"code":"NotFound"}},"contentLength":30},
                {"name":"a","httpStatusCode":200,"content":{"ok":true}}
            ]});
            let got = decode(body.to_string().as_bytes()).unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!((got[0].name.as_str(), got[0].status), ("b", 404));
            assert_eq!(got[0].header("X").as_deref(), Some("1"));
            assert_eq!(got[1].body, json!({"ok":true}));
        }
        assert!(decode(b"{}").unwrap_err().contains("neither"));
        assert!(decode(b"{\"responses\":[").is_err());
    }
}
