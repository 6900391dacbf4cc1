//! The subscription fan-out: one request template, sent once in every
//! subscription the token can see. A template is a request whose URL holds
//! `{subscriptionId}` and that says `"forEachSubscription": true`; when its
//! job starts, the job lists the subscriptions (every page, in the same run,
//! so cancelling stops it too) and puts one request per subscription in the
//! template's place. The command line's `azbatch subscriptions` and the
//! module's `-ForEachSubscription` both come here.

use serde_json::Value;

use crate::dialect::Api;
use crate::error::Error;
use crate::options::Options;
use crate::request::{At, RequestList, RequestSpec};
use crate::result::{codes, ErrorInfo, ItemResult, SubscriptionInfo};

/// Where each subscription's id goes in a template's URL.
pub const PLACEHOLDER: &str = "{subscriptionId}";

/// The listing of every subscription the token can see (ARM, paged).
pub const LISTING_URL: &str = "/subscriptions?api-version=2022-12-01";

/// What a run's templates became once the subscriptions are listed.
#[derive(Debug, Default)]
pub struct Expanded {
    /// The subscription each added request goes to, by its index in the list.
    pub subscriptions: std::collections::HashMap<usize, Box<SubscriptionInfo>>,
    /// What could not become a request: the template's (or the request's)
    /// id, why, and the listing when the listing itself failed.
    pub refused: Vec<(String, ErrorInfo, Option<ItemResult>)>,
}

/// Puts each template's requests, one in every subscription of `listing`,
/// into `list`: every template is refused with the listing's error when the
/// listing failed, and a request that does not check is refused alone.
pub fn expand_into(
    list: &mut RequestList,
    templates: &[RequestSpec],
    listing: &ItemResult,
    options: &Options,
) -> Expanded {
    let mut out = Expanded::default();
    let subs = subscriptions(listing);
    for t in templates {
        if !listing.is_success() {
            let e = listing
                .error
                .clone()
                .unwrap_or_else(|| ErrorInfo::new(codes::HTTP_ERROR, ""));
            let why = format!("listing the subscriptions failed: {}", e.message);
            out.refused.push((
                template_id(t),
                ErrorInfo::new(&e.code, why),
                Some(listing.clone()),
            ));
            continue;
        }
        for (spec, s) in expand(t, &subs).into_iter().zip(&subs) {
            let id = template_id(&spec);
            match list.add(spec, options) {
                Ok(_) => {
                    out.subscriptions.insert(list.len() - 1, Box::new(s.info()));
                }
                Err(e) => out.refused.push((
                    id,
                    ErrorInfo::new(codes::INVALID_REQUEST, e.to_string()),
                    None,
                )),
            }
        }
    }
    out
}

/// One subscription of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its id (a GUID).
    pub id: String,
    /// Its display name (empty when the listing has none).
    pub name: String,
    /// Its tenant (empty when the listing has none).
    pub tenant_id: String,
}

impl Subscription {
    /// What its requests' results say about it.
    pub fn info(&self) -> SubscriptionInfo {
        SubscriptionInfo {
            subscription_id: self.id.clone(),
            subscription_name: self.name.clone(),
            tenant_id: self.tenant_id.clone(),
        }
    }
}

/// The subscriptions a successful listing names, in its order.
pub fn subscriptions(listing: &ItemResult) -> Vec<Subscription> {
    let text = |s: &Value, k: &str| s[k].as_str().unwrap_or_default().to_string();
    listing.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some(Subscription {
                id: s["subscriptionId"].as_str()?.to_string(),
                name: text(s, "displayName"),
                tenant_id: text(s, "tenantId"),
            })
        })
        .collect()
}

/// What a template may not hold, checked before it is accepted: the URL must
/// name the placeholder, and nothing can depend on a request that does not
/// exist until the run.
pub fn check(spec: &RequestSpec) -> Result<(), (&'static str, String)> {
    match spec.url.as_deref() {
        Some(u) if u.contains(PLACEHOLDER) => {}
        _ => {
            return Err((
                "url",
                format!("with forEachSubscription must contain {PLACEHOLDER}, as in '/subscriptions/{PLACEHOLDER}/resourceGroups?api-version=2021-04-01'"),
            ))
        }
    }
    if spec.depends_on.as_ref().is_some_and(|d| !d.is_empty()) {
        return Err((
            "dependsOn",
            "cannot be used with forEachSubscription".into(),
        ));
    }
    Ok(())
}

/// Checks a template as each of its requests will be checked (with a
/// stand-in subscription), for request number `index`; returns its id.
pub fn check_template(
    spec: &RequestSpec,
    index: usize,
    options: &Options,
) -> Result<String, Error> {
    let id = template_id(spec);
    let at = At::new(index, Some(&id));
    if options.api != Api::Arm {
        return Err(at.bad("forEachSubscription", "works with api \"arm\" only"));
    }
    check(spec).map_err(|(field, why)| at.bad(field, why))?;
    let stand_in = Subscription {
        id: "00000000-0000-0000-0000-000000000000".into(),
        name: String::new(),
        tenant_id: String::new(),
    };
    let probe = expand(spec, &[stand_in]).remove(0);
    RequestList::default()
        .add(probe, options)
        .map_err(|e| match e {
            Error::InvalidRequest(m) => Error::InvalidRequest(
                m.replacen(
                    "request[0] (id \"00000000-0000-0000-0000-000000000000\")",
                    &at.text,
                    1,
                )
                .replacen("request[0]", &at.text, 1),
            ),
            other => other,
        })?;
    Ok(id)
}

/// The template's id in results: the one given, or `subscriptions`.
pub fn template_id(spec: &RequestSpec) -> String {
    match spec.id.as_ref().or(spec.name.as_ref()) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "subscriptions".into(),
    }
}

/// One request per subscription: the template with the subscription's id in
/// its URL. Each is named after the subscription, or `{template id}/{subscription}`
/// when the template has an id of its own.
pub fn expand(template: &RequestSpec, subs: &[Subscription]) -> Vec<RequestSpec> {
    let own = template.id.is_some() || template.name.is_some();
    let prefix = template_id(template);
    subs.iter()
        .map(|s| RequestSpec {
            id: Some(Value::String(if own {
                format!("{prefix}/{}", s.id)
            } else {
                s.id.clone()
            })),
            name: None,
            url: template.url.as_ref().map(|u| u.replace(PLACEHOLDER, &s.id)),
            for_each_subscription: None,
            ..template.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expands_a_template_per_subscription() {
        let listing = ItemResult {
            body: json!({"value":[{"subscriptionId":"a"},{"displayName":"no id"},{"subscriptionId":"b"}]}),
            ..ItemResult::no_answer(0, "x", 1, crate::result::ErrorInfo::new("c", "m"))
        };
        let subs = subscriptions(&listing);
        assert_eq!(
            subs.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let t = RequestSpec {
            method: Some("POST".into()),
            body: Some(json!({"q": 1})),
            for_each_subscription: Some(true),
            ..RequestSpec::get("/subscriptions/{subscriptionId}/x?api-version=1")
        };
        let got = expand(&t, &subs);
        assert_eq!(
            got[1].url.as_deref(),
            Some("/subscriptions/b/x?api-version=1")
        );
        assert_eq!(
            (got[0].id.clone(), got[0].body.clone()),
            (Some(json!("a")), Some(json!({"q": 1})))
        );
        assert_eq!(got[0].for_each_subscription, None);
        let named = RequestSpec {
            id: Some(json!("cost")),
            ..t.clone()
        };
        assert_eq!(expand(&named, &subs)[0].id, Some(json!("cost/a")));
        assert_eq!(
            (template_id(&t), template_id(&named)),
            ("subscriptions".into(), "cost".into())
        );
    }

    #[test]
    fn refuses_templates_without_the_placeholder_or_with_dependencies() {
        assert_eq!(
            check(&RequestSpec::get("/subscriptions/x")).unwrap_err().0,
            "url"
        );
        let t = RequestSpec {
            depends_on: Some(vec![json!("a")]),
            ..RequestSpec::get("/subscriptions/{subscriptionId}")
        };
        assert_eq!(check(&t).unwrap_err().0, "dependsOn");
        check(&RequestSpec::get("/subscriptions/{subscriptionId}/y")).unwrap();
    }
}
