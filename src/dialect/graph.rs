//! Microsoft Graph's batch dialect, all of it in one place.
//!
//! The envelope (Microsoft Learn, "Combine multiple HTTP requests using JSON
//! batching"): `POST {graph}/{v1.0|beta}/$batch` with
//! `{"requests":[{"id","method","url","headers","body"}]}`, at most 20,
//! answered with `{"responses":[{"id","status","headers","body"}]}` in any
//! order. Bodies that are not JSON travel as base64 strings, both ways.
//!
//! The throttling model (Microsoft Learn, "Microsoft Graph service-specific
//! throttling limits"): the identity and access service counts resource units
//! per app and tenant (3,500, 5,000 or 8,000 per 10 seconds by tenant size),
//! says what a request cost in `x-ms-resource-unit` and, from 0.8 of the
//! limit on, the share used in `x-ms-throttle-limit-percentage`; Outlook takes
//! at most four requests at once per app and mailbox.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ItemAnswer, Outgoing};

/// Largest batch the service takes.
pub const MAX_BATCH: usize = 20;
/// Graph's versions; the first is the default.
pub const VERSIONS: [&str; 2] = ["v1.0", "beta"];
/// The body key of a paged answer's link to the next page.
pub const NEXT_LINK: &str = "@odata.nextLink";

/// The header with what a request cost of the app's resource units.
pub(crate) const RESOURCE_UNIT: &str = "x-ms-resource-unit";
/// The header telling how much of the app's throttling limit is used.
pub(crate) const THROTTLE_PERCENT: &str = "x-ms-throttle-limit-percentage";
/// The identity and access limit per app and tenant for the smallest tenants
/// (3,500 units per 10 seconds): units in a full bucket, units added a second.
pub(crate) const UNITS_SEED: (f64, f64) = (3500.0, 350.0);
/// On a 429, which limit throttled: `<Scope>/<Limit>/<ApplicationId>/<TenantId|UserId|ResourceId>`.
pub(crate) const THROTTLE_SCOPE: &str = "x-ms-throttle-scope";
/// On a 429, why: `WriteLimitExceeded`, `ResourceUnitLimitExceeded`, `CPULimitExceeded`, ...
pub(crate) const THROTTLE_INFORMATION: &str = "x-ms-throttle-information";

/// What a throttled answer's headers say of the limit that throttled it:
/// the scope as sent, and the reason. The scope's first two parts say it in
/// words for the message: `Tenant_Application/Write` -> "writes of this app
/// in this tenant".
pub(crate) fn throttle_info(
    header: impl Fn(&str) -> Option<String>,
) -> Option<(Option<String>, Option<String>, String)> {
    let scope = header(THROTTLE_SCOPE).filter(|s| !s.trim().is_empty());
    let reason = header(THROTTLE_INFORMATION).filter(|s| !s.trim().is_empty());
    if scope.is_none() && reason.is_none() {
        return None;
    }
    let mut parts = scope.as_deref().unwrap_or("").split('/');
    let whose = match parts.next().unwrap_or("") {
        "Tenant_Application" => "this app in this tenant",
        "Tenant" => "every app in this tenant",
        "Application" => "this app in every tenant",
        _ => "",
    };
    let what = match parts.next().unwrap_or("") {
        "Read" => "reads",
        "Write" => "writes",
        "ReadWrite" => "requests",
        _ => "",
    };
    let mut words = String::from("Graph throttled");
    if !whose.is_empty() && !what.is_empty() {
        words.push_str(&format!(" the {what} of {whose}"));
    }
    if let Some(r) = &reason {
        words.push_str(&format!(" ({r})"));
    }
    Some((scope, reason, words))
}

/// Graph sends `x-ms-throttle-limit-percentage` only from this fraction of the limit used.
pub(crate) const SIGNAL_FROM: f64 = 0.8;

/// Outlook's limit of requests at once per mailbox (per app), batches included.
pub const OUTLOOK_CONCURRENCY: usize = 4;

/// Outlook's resources under a user: mail, calendar, contacts.
pub const OUTLOOK_SEGMENTS: [&str; 10] = [
    "messages",
    "mailfolders",
    "events",
    "calendar",
    "calendars",
    "calendarview",
    "calendargroups",
    "contacts",
    "contactfolders",
    "outlook",
];

/// Graph's top-level resources: a relative URL that starts with one of these
/// can only be Graph's (v1.0 and beta).
const ROOTS: [&str; 43] = [
    "me",
    "users",
    "groups",
    "applications",
    "servicePrincipals",
    "devices",
    "directoryObjects",
    "directoryRoles",
    "directoryRoleTemplates",
    "organization",
    "domains",
    "contacts",
    "sites",
    "drives",
    "teams",
    "chats",
    "planner",
    "identity",
    "policies",
    "reports",
    "security",
    "deviceManagement",
    "deviceAppManagement",
    "auditLogs",
    "roleManagement",
    "subscribedSkus",
    "invitations",
    "oauth2PermissionGrants",
    "identityGovernance",
    "communications",
    "education",
    "informationProtection",
    "places",
    "print",
    "search",
    "solutions",
    "admin",
    "external",
    "agreements",
    "schemaExtensions",
    "groupSettings",
    "$batch",
    "$metadata",
];

/// Whether a URL's first segment is one of Graph's top-level resources.
pub(crate) fn is_root(first: &str) -> bool {
    ROOTS.iter().any(|r| first.eq_ignore_ascii_case(r))
}

/// The mailbox a Graph path reaches (`/users/{id}/messages`, `/me/events`),
/// lower-cased; none for anything but Outlook's resources.
pub fn mailbox_of(path: &str) -> Option<String> {
    let mut segs = path.trim_start_matches('/').split('/');
    let (first, second, third) = (segs.next()?, segs.next(), segs.next());
    let is_mailbox = |s: Option<&str>| {
        s.is_some_and(|s| OUTLOOK_SEGMENTS.iter().any(|o| s.eq_ignore_ascii_case(o)))
    };
    if first.eq_ignore_ascii_case("me") && is_mailbox(second) {
        Some("me".into())
    } else if first.eq_ignore_ascii_case("users") && is_mailbox(third) {
        second.map(str::to_ascii_lowercase)
    } else {
        None
    }
}

/// A request URL in another Graph version than its run's keeps that version
/// in front (`/beta/users/x`: no Graph resource is named after a version):
/// the version and the URL under it (`/users/x`); none for a URL under the
/// run's own version.
pub fn version_of(url: &str) -> Option<(&'static str, &str)> {
    let rest = url.strip_prefix('/')?;
    let (first, _) = rest.split_once(['/', '?']).unwrap_or((rest, ""));
    let version = VERSIONS.iter().find(|v| first.eq_ignore_ascii_case(v))?;
    Some((version, &url[1 + first.len()..]))
}

/// `url` under its version: without a version in front, if it has one.
pub(crate) fn under_its_version(url: &str) -> &str {
    match version_of(url) {
        Some((_, "")) => "/",
        Some((_, rest)) => rest,
        None => url,
    }
}

/// SharePoint and OneDrive ("Avoid getting throttled or blocked in
/// SharePoint Online"): each app in a tenant has resource units a minute,
/// 1,250 for the smallest tenants (0 to 1,000 licenses; more for larger
/// ones), shared by its Graph, CSOM and REST calls; a Graph call costs 1 (one
/// item, a download, a delta with a token), 2 (many items, a delta without a
/// token, a create, update, delete or upload) or 5 (permissions, also
/// `$expand=permissions`). Past 80% of the minute's units the answers carry
/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
pub(crate) const SHAREPOINT: &str = "sharepoint";

/// The smallest tenants' units a minute, the seed of [`SHAREPOINT`]'s bucket.
const SHAREPOINT_UNITS_A_MINUTE: f64 = 1250.0;

/// The units SharePoint has left of the app's minute.
pub(crate) const RATE_LIMIT_REMAINING: &str = "RateLimit-Remaining";

/// Whether a path (under its version) is SharePoint's or OneDrive's: sites,
/// drives, shares, and a user's or group's drive.
pub fn is_sharepoint(path: &str) -> bool {
    let mut segs = under_its_version(path)
        .trim_start_matches('/')
        .split(['/', '?']);
    let (first, second, third) = (segs.next(), segs.next(), segs.next());
    let is = |s: Option<&str>, names: &[&str]| {
        s.is_some_and(|s| names.iter().any(|n| s.eq_ignore_ascii_case(n)))
    };
    is(first, &["sites", "drives", "shares"])
        || (is(first, &["me"]) && is(second, &["drive", "drives"]))
        || (is(first, &["users", "groups"]) && is(third, &["drive", "drives"]))
}

/// What a SharePoint call costs of the app's units, as documented; none for
/// a call that is not SharePoint's.
pub fn sharepoint_cost(method: &str, url: &str) -> Option<f64> {
    if !is_sharepoint(url) {
        return None;
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let lower = path.to_ascii_lowercase();
    let permissions =
        lower.contains("/permissions") || query.to_ascii_lowercase().contains("expand=permissions");
    if permissions {
        return Some(5.0);
    }
    if !matches!(method, "GET" | "HEAD") {
        return Some(2.0);
    }
    let last = lower.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let token = query.to_ascii_lowercase().contains("token=");
    let many = matches!(
        last,
        "children" | "items" | "lists" | "sites" | "drives" | "columns" | "versions"
    ) || (last.starts_with("delta") && !token);
    Some(if many { 2.0 } else { 1.0 })
}

/// The scope of a call: `mailbox/{user}` for Outlook's resources,
/// [`PROTECTION`] for identity protection and Conditional Access, `app` (the
/// app's resource units) for everything else.
pub(crate) fn scope(path: &str) -> String {
    let path = under_its_version(path);
    if is_protection(path) {
        return PROTECTION.to_string();
    }
    if is_sharepoint(path) {
        return SHAREPOINT.to_string();
    }
    match mailbox_of(path) {
        Some(m) => format!("mailbox/{m}"),
        None => APP.to_string(),
    }
}

/// Identity protection and Conditional Access: "1 request per second" per
/// tenant for all apps, and their 429s carry no `Retry-After` ("Microsoft
/// Graph service-specific throttling limits"). Their resources: riskDetection,
/// riskyUser (and its history), namedLocation, conditionalAccessPolicy.
pub(crate) const PROTECTION: &str = "tenant-identity-protection";

/// Whether a Graph path is identity protection's or Conditional Access's
/// (the emulator throttles them as the service does).
pub fn is_protection(path: &str) -> bool {
    let p = path.trim_start_matches('/').to_ascii_lowercase();
    [
        "identityprotection/",
        "identity/conditionalaccess/",
        "riskdetections",
        "riskyusers",
    ]
    .iter()
    .any(|head| p.starts_with(head) || p == head.trim_end_matches('/'))
}

/// The documented bucket of a Graph scope other than the app's units, if it
/// has one: units in a full bucket, units added a second.
pub(crate) fn seed(key: &str) -> Option<(f64, f64)> {
    // Each a little under its documented rate ([`UNDER`]).
    match key {
        PROTECTION => Some((1.0, 1.0 * UNDER)),
        SHAREPOINT => Some((
            SHAREPOINT_UNITS_A_MINUTE,
            SHAREPOINT_UNITS_A_MINUTE / 60.0 * UNDER,
        )),
        _ => None,
    }
}

/// The scope of every Graph call but a mailbox's.
pub(crate) const APP: &str = "app";

/// Graph's own limits beside the app's resource units, as policies of a
/// count of requests refilled evenly over a period, per app and tenant
/// ("Microsoft Graph service-specific throttling limits"): identity and
/// access writes, 3,000 per 2 minutes 30 seconds; Intune devices, POST, PUT,
/// DELETE and PATCH 200 per 20 seconds and any request 2,000 per 20 seconds.
/// Each is `(name, (requests in a full bucket, requests a second))`, paced
/// a little under the documented rate ([`UNDER`]).
const IDENTITY_WRITES: Policy = ("graph/identity-writes", (3000.0, 3000.0 / 150.0 * UNDER));
const INTUNE_WRITES: Policy = ("graph/intune-writes", (200.0, 200.0 / 20.0 * UNDER));
const INTUNE: Policy = ("graph/intune", (2000.0, 2000.0 / 20.0 * UNDER));

/// The share of a documented rate a limit is paced at: requests reach the
/// service milliseconds apart from when they left, and a bucket refilled at
/// exactly the rate refuses one that comes a little early.
const UNDER: f64 = 0.98;

/// A documented policy: its name, and (requests in a full bucket, requests
/// a second).
pub(crate) type Policy = (&'static str, (f64, f64));

/// The operations those limits tell apart, and the policies each meets.
const OPERATIONS: [(&str, &[Policy]); 3] = [
    ("graph identity writes", &[IDENTITY_WRITES]),
    ("graph intune writes", &[INTUNE_WRITES, INTUNE]),
    ("graph intune reads", &[INTUNE]),
];

/// The operation a Graph call is, as its service's own limits see it:
/// Intune's reads and writes (`/deviceManagement/...`, paced at Intune
/// devices' limits, the largest of Intune's; a smaller one is learned from
/// the 429s that name it), and writes to the identity and access resources;
/// none for reads of the directory (the resource units' alone), other
/// services' calls,
/// a mailbox's calls (Outlook's scope) and identity protection's (its own).
pub(crate) fn operation(method: &str, path: &str) -> Option<&'static str> {
    let path = under_its_version(path.split('?').next().unwrap_or(""));
    if is_protection(path) || mailbox_of(path).is_some() {
        return None;
    }
    let write = !matches!(method, "GET" | "HEAD");
    let root = path
        .trim_start_matches('/')
        .split(['/', '('])
        .next()
        .unwrap_or("");
    let intune = root.eq_ignore_ascii_case("deviceManagement");
    let identity = IDENTITY_ROOTS.iter().any(|r| r.eq_ignore_ascii_case(root));
    let name = match (intune, identity, write) {
        (true, _, true) => "graph intune writes",
        (true, _, false) => "graph intune reads",
        (false, true, true) => "graph identity writes",
        _ => return None,
    };
    Some(name)
}

/// The roots of the identity and access resources the write quota covers
/// (the limits page's list: users, groups, applications, service
/// principals, devices, directory objects and roles, domains, contacts,
/// policies, organization, subscribed SKUs, permission grants, contracts).
const IDENTITY_ROOTS: [&str; 18] = [
    "me",
    "users",
    "groups",
    "applications",
    "servicePrincipals",
    "devices",
    "directory",
    "directoryObjects",
    "directoryRoles",
    "directoryRoleTemplates",
    "domains",
    "groupSettings",
    "groupSettingTemplates",
    "contacts",
    "oauth2PermissionGrants",
    "organization",
    "policies",
    "contracts",
];

/// The documented policies operation `op` meets (none for an operation
/// that is not Graph's).
pub(crate) fn policies(op: &str) -> &'static [Policy] {
    OPERATIONS
        .iter()
        .find(|(name, _)| *name == op)
        .map_or(&[], |(_, p)| p)
}

/// The policy of `op` a 429 says is spent, told by `x-ms-throttle-information`
/// (`WriteLimitExceeded`) or `x-ms-throttle-scope` (`.../Write/...`): the
/// operation's write policy; another limit named, its policy for any call;
/// else its first. None when the answer names no limit (the app's units, or
/// a service that says nothing).
pub(crate) fn spent_policy(
    op: &str,
    header: impl Fn(&str) -> Option<String>,
) -> Option<&'static str> {
    let info = header(THROTTLE_INFORMATION).unwrap_or_default();
    let scope = header(THROTTLE_SCOPE).unwrap_or_default();
    if info.is_empty() && scope.is_empty() {
        return None;
    }
    let write = info.to_ascii_lowercase().contains("write")
        || scope
            .split('/')
            .nth(1)
            .is_some_and(|k| k.eq_ignore_ascii_case("write"));
    let mine = policies(op);
    mine.iter()
        .find(|(name, _)| name.ends_with("writes") == write)
        .or(mine.first())
        .map(|(name, _)| *name)
}

/// Items can carry headers; a body gets the `Content-Type` Graph requires.
pub(crate) fn item_headers(
    mut given: Vec<(String, String)>,
    has_body: bool,
    base64: bool,
) -> Vec<(String, String)> {
    if has_body
        && !given
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        let ct = if base64 {
            "application/octet-stream"
        } else {
            "application/json"
        };
        given.push(("Content-Type".into(), ct.into()));
    }
    given
}

#[derive(Serialize)]
struct Envelope<'a> {
    requests: Vec<Item<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    id: &'a str,
    method: &'a str,
    url: &'a str,
    #[serde(skip_serializing_if = "Map::is_empty")]
    headers: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a Value>,
}

/// The JSON body of a batch request.
pub fn encode(items: &[Outgoing<'_>]) -> Vec<u8> {
    let env = Envelope {
        requests: items
            .iter()
            .map(|o| Item {
                id: o.name,
                method: o.method,
                // Relative to the batch's version root.
                url: under_its_version(o.url),
                headers: o
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
                body: o.body,
            })
            .collect(),
    };
    serde_json::to_vec(&env).expect("a batch envelope always serializes")
}

#[derive(Deserialize)]
struct Answer {
    responses: Vec<AnswerItem>,
}

#[derive(Deserialize)]
struct AnswerItem {
    id: Option<String>,
    status: u16,
    #[serde(default)]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    body: Value,
}

/// Whether a Content-Type is JSON (Graph sends other bodies as base64).
pub fn is_json_type(content_type: &str) -> bool {
    let t = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    t == "application/json" || t.ends_with("+json")
}

/// Reads a batch answer. Items without an id cannot be matched and are dropped
/// here; the engine notices the request they belonged to is unanswered.
pub fn decode(body: &[u8]) -> Result<Vec<ItemAnswer>, String> {
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| format!("batch answer is not valid: {e}"))?;
    Ok(a.responses
        .into_iter()
        .filter_map(|i| {
            let headers = i.headers.unwrap_or_default();
            let content_type = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .and_then(|(_, v)| v.as_str());
            let base64 = i.body.is_string() && content_type.is_some_and(|t| !is_json_type(t));
            Some(ItemAnswer {
                name: i.id?,
                status: i.status,
                headers,
                body: i.body,
                base64,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_own_limits_by_operation() {
        assert_eq!(
            operation("PATCH", "/users/u1"),
            Some("graph identity writes")
        );
        assert_eq!(operation("GET", "/users/u1"), None, "the units' alone");
        assert_eq!(
            operation("POST", "/groups/g1/members/$ref"),
            Some("graph identity writes")
        );
        assert_eq!(
            operation("POST", "/teams/t1/channels"),
            None,
            "not an identity resource"
        );
        assert_eq!(operation("POST", "/users/u1/messages"), None, "Outlook's");
        assert_eq!(
            operation("GET", "/identity/conditionalAccess/policies"),
            None
        );
        assert_eq!(
            operation("DELETE", "/deviceManagement/managedDevices/d1?x=1"),
            Some("graph intune writes")
        );
        assert_eq!(
            operation("GET", "/devicemanagement/managedDevices"),
            Some("graph intune reads")
        );
        let names: Vec<_> = policies("graph intune writes")
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(names, ["graph/intune-writes", "graph/intune"]);
        assert!(policies("microsoft.compute/virtualmachines reads").is_empty());
        // A 429 names its limit by its headers; none named, none taught.
        let headers = |info: &'static str, scope: &'static str| {
            move |k: &str| match k {
                THROTTLE_INFORMATION if !info.is_empty() => Some(info.to_string()),
                THROTTLE_SCOPE if !scope.is_empty() => Some(scope.to_string()),
                _ => None,
            }
        };
        let op = "graph intune writes";
        assert_eq!(
            spent_policy(op, headers("WriteLimitExceeded", "")),
            Some("graph/intune-writes")
        );
        assert_eq!(
            spent_policy(op, headers("", "Tenant_Application/ReadWrite/a/t")),
            Some("graph/intune")
        );
        assert_eq!(
            spent_policy(
                "graph intune reads",
                headers("", "Tenant_Application/ReadWrite/a/t")
            ),
            Some("graph/intune")
        );
        assert_eq!(spent_policy(op, headers("", "")), None);
    }

    #[test]
    fn throttle_headers_are_read_into_words() {
        let h = |scope: Option<&'static str>, info: Option<&'static str>| {
            move |k: &str| match k {
                THROTTLE_SCOPE => scope.map(str::to_string),
                THROTTLE_INFORMATION => info.map(str::to_string),
                _ => None,
            }
        };
        let scope = "Tenant_Application/Write/9a3d526c-b3c1-4479-ba74-197b5c5751ae/0785ef7c-2d7a-4542-b048-95bcab406e0b";
        let (s, r, words) = throttle_info(h(Some(scope), Some("WriteLimitExceeded"))).unwrap();
        assert_eq!(
            (s.as_deref(), r.as_deref()),
            (Some(scope), Some("WriteLimitExceeded"))
        );
        assert_eq!(
            words,
            "Graph throttled the writes of this app in this tenant (WriteLimitExceeded)"
        );
        let (_, _, words) = throttle_info(h(None, Some("CPULimitExceeded"))).unwrap();
        assert_eq!(words, "Graph throttled (CPULimitExceeded)");
        assert!(throttle_info(h(None, None)).is_none());
        assert!(throttle_info(h(Some(" "), None)).is_none());
    }
    use serde_json::json;

    #[test]
    fn encodes_graph_items() {
        let city = json!({"city": "Oslo"});
        let headers = [("Content-Type".to_string(), "application/json".to_string())];
        let body = encode(&[
            Outgoing {
                name: "3",
                method: "PATCH",
                url: "/users/1",
                headers: &headers,
                body: Some(&city),
                header_details: None,
            },
            Outgoing {
                name: "4",
                method: "GET",
                url: "/me",
                headers: &[],
                body: None,
                header_details: None,
            },
        ]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"requests":[
                {"id":"3","method":"PATCH","url":"/users/1","headers":{"Content-Type":"application/json"},"body":{"city":"Oslo"}},
                {"id":"4","method":"GET","url":"/me"}
            ]})
        );
    }

    #[test]
    fn decodes_answers_and_spots_base64() {
        let body = json!({"responses":[
            {"id":"2","status":200,"headers":{"Content-Type":"image/jpeg"},"body":"/9j/4AAQ"},
            {"id":"1","status":201,"headers":{"content-type":"application/json; odata.metadata=minimal"},"body":{"id":"x"}},
            {"id":"3","status":204,"body":null}
        ]});
        let got = decode(body.to_string().as_bytes()).unwrap();
        assert_eq!((got[0].name.as_str(), got[0].base64), ("2", true));
        assert_eq!((got[1].status, got[1].base64), (201, false));
        assert!(!got[2].base64);
        assert!(decode(b"{\"value\":[]}").is_err());
    }
}
