//! The in-memory ARM tenant: subscriptions, PIM eligibility, Batch accounts,
//! resource groups with real state, and Cost Management queries. Pure and
//! synchronous: throttling, latency and logging wrap it in `service`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::reply::object;

pub use crate::reply::Reply;

/// ARM's error body.
pub fn cloud_error(status: u16, code: &str, message: &str) -> Reply {
    crate::reply::error(status, code, message)
}

/// The tenant.
pub struct ArmModel {
    subscriptions: usize,
    subscriptions_page: usize,
    batch_accounts_page: usize,
    /// (subscription, lower-case name) → resource group.
    groups: HashMap<(String, String), Value>,
}

/// The id of subscription number `i`.
pub fn subscription_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn subscription_index(id: &str) -> Option<usize> {
    let i: usize = id.strip_prefix("00000000-0000-4000-8000-")?.parse().ok()?;
    Some(i)
}

impl ArmModel {
    /// A tenant with `subscriptions` subscriptions and no resource groups.
    pub fn new(
        subscriptions: usize,
        subscriptions_page: usize,
        batch_accounts_page: usize,
    ) -> ArmModel {
        ArmModel {
            subscriptions,
            subscriptions_page: subscriptions_page.max(1),
            batch_accounts_page: batch_accounts_page.max(1),
            groups: HashMap::new(),
        }
    }

    /// Runs one call. `path` has no query; `query` is decoded; `base` is the
    /// scheme and host that `nextLink`s point at.
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        query: &BTreeMap<String, String>,
        body: Option<&Value>,
        base: &str,
    ) -> Reply {
        if !query.contains_key("api-version") {
            return cloud_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        let l: Vec<&str> = lower.iter().map(String::as_str).collect();
        let skip = query
            .get("$skiptoken")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0usize);
        match (method, l.as_slice()) {
            ("GET", ["subscriptions"]) => self.list_subscriptions(skip, base, query),
            (_, ["subscriptions", sub, rest @ ..]) => {
                let Some(i) = subscription_index(sub).filter(|i| *i < self.subscriptions) else {
                    return cloud_error(
                        404,
                        "SubscriptionNotFound",
                        &format!("The subscription '{}' could not be found.", segs[1]),
                    );
                };
                let sub = subscription_id(i);
                match (method, rest) {
                    ("GET", []) => Reply::json(200, subscription(i)),
                    (
                        "GET",
                        ["providers", "microsoft.authorization", "roleeligibilityscheduleinstances"],
                    ) => Reply::json(200, object([("value", Value::Array(eligibility(i)))])),
                    ("GET", ["providers", "microsoft.batch", "batchaccounts"]) => {
                        self.batch_accounts(i, skip, base, query)
                    }
                    ("POST", ["providers", "microsoft.costmanagement", "query"]) => {
                        cost_query(i, body)
                    }
                    ("GET", ["resourcegroups"]) => {
                        let mut v: Vec<&Value> = self
                            .groups
                            .iter()
                            .filter(|((s, _), _)| *s == sub)
                            .map(|(_, g)| g)
                            .collect();
                        v.sort_by_key(|g| g["name"].as_str().map(str::to_ascii_lowercase));
                        Reply::json(200, object([("value", v.into_iter().cloned().collect())]))
                    }
                    (_, ["resourcegroups", _]) => self.resource_group(method, &sub, segs[3], body),
                    ("POST", ["resourcegroups", _, "exporttemplate"]) => {
                        self.export_template(&sub, segs[3])
                    }
                    _ => not_found(path),
                }
            }
            _ => not_found(path),
        }
    }

    fn list_subscriptions(
        &self,
        skip: usize,
        base: &str,
        query: &BTreeMap<String, String>,
    ) -> Reply {
        let end = (skip + self.subscriptions_page).min(self.subscriptions);
        let value: Vec<Value> = (skip.min(end)..end).map(subscription).collect();
        let mut body = object([
            ("value", Value::Array(value)),
            (
                "count",
                json!({"type": "Total", "value": self.subscriptions}),
            ),
        ]);
        if end < self.subscriptions {
            body["nextLink"] = json!(format!(
                "{base}/subscriptions?api-version={}&$skiptoken={end}",
                query["api-version"]
            ));
        }
        Reply::json(200, body)
    }

    fn batch_accounts(
        &self,
        i: usize,
        skip: usize,
        base: &str,
        query: &BTreeMap<String, String>,
    ) -> Reply {
        let total = batch_account_count(i);
        let end = (skip + self.batch_accounts_page).min(total);
        let value: Vec<Value> = (skip.min(end)..end).map(|k| batch_account(i, k)).collect();
        let mut body = object([("value", Value::Array(value))]);
        if end < total {
            body["nextLink"] = json!(format!(
                "{base}/subscriptions/{}/providers/Microsoft.Batch/batchAccounts?api-version={}&$skiptoken={end}",
                subscription_id(i),
                query["api-version"]
            ));
        }
        Reply::json(200, body)
    }

    /// `POST .../resourcegroups/{rg}/exportTemplate`: the group as a template
    /// (an action: a POST that changes nothing, which a client still may not
    /// send twice unasked).
    fn export_template(&self, sub: &str, name: &str) -> Reply {
        match self
            .groups
            .get(&(sub.to_string(), name.to_ascii_lowercase()))
        {
            Some(g) => Reply::json(
                200,
                json!({"template": {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", "resources": [g]}}),
            ),
            None => cloud_error(
                404,
                "ResourceGroupNotFound",
                &format!("Resource group '{name}' could not be found."),
            ),
        }
    }

    fn resource_group(
        &mut self,
        method: &str,
        sub: &str,
        name: &str,
        body: Option<&Value>,
    ) -> Reply {
        let key = (sub.to_string(), name.to_ascii_lowercase());
        let missing = || {
            cloud_error(
                404,
                "ResourceGroupNotFound",
                &format!("Resource group '{name}' could not be found."),
            )
        };
        match method {
            "GET" | "HEAD" => match self.groups.get(&key) {
                Some(g) => Reply::json(200, g.clone()),
                None => missing(),
            },
            "PUT" => {
                let Some(location) = body.and_then(|b| b.get("location")).and_then(Value::as_str)
                else {
                    return cloud_error(
                        400,
                        "LocationRequired",
                        "The location property is required for this definition.",
                    );
                };
                let existed = self.groups.contains_key(&key);
                let name = self
                    .groups
                    .get(&key)
                    .and_then(|g| g["name"].as_str().map(str::to_string))
                    .unwrap_or(name.to_string());
                let g = json!({
                    "id": format!("/subscriptions/{sub}/resourceGroups/{name}"),
                    "name": name,
                    "type": "Microsoft.Resources/resourceGroups",
                    "location": location,
                    "tags": body.and_then(|b| b.get("tags")).cloned().unwrap_or(json!({})),
                    "properties": {"provisioningState": "Succeeded"},
                });
                self.groups.insert(key, g.clone());
                Reply::json(if existed { 200 } else { 201 }, g)
            }
            "PATCH" => match self.groups.get_mut(&key) {
                Some(g) => {
                    if let Some(tags) = body.and_then(|b| b.get("tags")) {
                        g["tags"] = tags.clone();
                    }
                    Reply::json(200, g.clone())
                }
                None => missing(),
            },
            "DELETE" => match self.groups.remove(&key) {
                Some(_) => Reply {
                    status: 202,
                    body: Value::Null,
                    bytes: None,
                    headers: vec![(
                        "Location".into(),
                        format!("/subscriptions/{sub}/operationresults/delete-{}", key.1),
                    )],
                },
                None => missing(),
            },
            _ => cloud_error(
                405,
                "MethodNotAllowed",
                &format!("The method {method} is not allowed on a resource group."),
            ),
        }
    }
}

fn not_found(path: &str) -> Reply {
    cloud_error(
        404,
        "NotFound",
        &format!("The path '{path}' is not known to the emulator."),
    )
}

fn subscription(i: usize) -> Value {
    let id = subscription_id(i);
    json!({
        "id": format!("/subscriptions/{id}"),
        "subscriptionId": id,
        "tenantId": "72f988bf-0000-4000-8000-000000000000",
        "displayName": format!("Subscription {i}"),
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
        "authorizationSource": "RoleBased",
    })
}

/// PIM eligibility instances of subscription `i`: 1 to 3 of them.
pub fn eligibility_count(i: usize) -> usize {
    1 + i % 3
}

fn eligibility(i: usize) -> Vec<Value> {
    let sub = subscription_id(i);
    (0..eligibility_count(i))
        .map(|k| {
            let name = format!("{:08x}-{:04x}-4000-8000-{:012x}", i, k, i * 10 + k);
            json!({
                "id": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances/{name}"),
                "name": name,
                "type": "Microsoft.Authorization/roleEligibilityScheduleInstances",
                "properties": {
                    "scope": format!("/subscriptions/{sub}"),
                    "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"),
                    "principalId": format!("a1b2c3d4-0000-4000-8000-{:012}", k),
                    "principalType": "User",
                    "roleEligibilityScheduleId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleEligibilitySchedules/{name}"),
                    "status": "Provisioned",
                    "startDateTime": "2026-01-01T00:00:00Z",
                    "endDateTime": "2027-01-01T00:00:00Z",
                    "memberType": "Direct",
                    "createdOn": "2026-01-01T00:00:00Z",
                },
            })
        })
        .collect()
}

/// Batch accounts of subscription `i`: 0 to 5 of them.
pub fn batch_account_count(i: usize) -> usize {
    i % 6
}

fn batch_account(i: usize, k: usize) -> Value {
    let sub = subscription_id(i);
    let name = format!("batch{i}x{k}");
    let location = ["westus", "westeurope", "eastus2"][(i + k) % 3];
    json!({
        "id": format!("/subscriptions/{sub}/resourceGroups/rg-batch-{i}/providers/Microsoft.Batch/batchAccounts/{name}"),
        "name": name,
        "type": "Microsoft.Batch/batchAccounts",
        "location": location,
        "identity": {"type": "None"},
        "properties": {
            "accountEndpoint": format!("{name}.{location}.batch.azure.com"),
            "nodeManagementEndpoint": format!("{name}.{location}.service.batch.azure.com"),
            "provisioningState": "Succeeded",
            "poolAllocationMode": "BatchService",
            "dedicatedCoreQuotaPerVMFamilyEnforced": false,
            "dedicatedCoreQuota": 20,
            "lowPriorityCoreQuota": 20,
            "poolQuota": 20,
            "activeJobAndJobScheduleQuota": 20,
            "autoStorage": {
                "storageAccountId": format!("/subscriptions/{sub}/resourceGroups/rg-batch-{i}/providers/Microsoft.Storage/storageAccounts/st{name}"),
                "lastKeySync": "2026-03-10T23:48:38.9878479Z",
                "authenticationMode": "StorageKeys",
            },
            "publicNetworkAccess": "Enabled",
            "allowedAuthenticationModes": ["SharedKey", "AAD", "TaskAuthenticationToken"],
        },
    })
}

fn cost_query(i: usize, body: Option<&Value>) -> Reply {
    let Some(kind) = body.and_then(|b| b.get("type")).and_then(Value::as_str) else {
        return cloud_error(
            400,
            "BadRequest",
            "Invalid query definition: the property 'type' is required.",
        );
    };
    let sub = subscription_id(i);
    let cost = ((i * 7919) % 100_000) as f64 / 100.0;
    let body = json!({
        "id": format!("/subscriptions/{sub}/providers/Microsoft.CostManagement/query/{}", kind.to_ascii_lowercase()),
        "name": format!("query-{i}"),
        "type": "Microsoft.CostManagement/query",
        "properties": {
            "nextLink": null,
            "columns": [{"name": "Cost", "type": "Number"}, {"name": "Currency", "type": "String"}],
            "rows": [[cost, "USD"]],
        },
    });
    Reply::json(200, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: &str) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("api-version".into(), v.into());
        m
    }

    #[test]
    fn resource_group_lifecycle() {
        let mut m = ArmModel::new(2, 50, 2);
        let s = subscription_id(1);
        let p = format!("/subscriptions/{s}/resourceGroups/Demo");
        let body = json!({"location": "westeurope", "tags": {"a": "1"}});
        assert_eq!(m.handle("GET", &p, &q("2021-04-01"), None, "").status, 404);
        assert_eq!(
            m.handle("PUT", &p, &q("2021-04-01"), Some(&body), "")
                .status,
            201
        );
        assert_eq!(
            m.handle("PUT", &p.to_lowercase(), &q("2021-04-01"), Some(&body), "")
                .status,
            200
        );
        let patched = m.handle(
            "PATCH",
            &p,
            &q("2021-04-01"),
            Some(&json!({"tags": {"b": "2"}})),
            "",
        );
        assert_eq!(
            (patched.status, &patched.body["tags"]),
            (200, &json!({"b": "2"}))
        );
        assert_eq!(
            patched.body["name"], "Demo",
            "the name keeps its first spelling"
        );
        let list = m.handle(
            "GET",
            &format!("/subscriptions/{s}/resourcegroups"),
            &q("2021-04-01"),
            None,
            "",
        );
        assert_eq!(list.body["value"].as_array().unwrap().len(), 1);
        assert_eq!(
            m.handle("DELETE", &p, &q("2021-04-01"), None, "").status,
            202
        );
        assert_eq!(
            m.handle("DELETE", &p, &q("2021-04-01"), None, "").status,
            404
        );
        assert_eq!(
            m.handle("PUT", &p, &q("2021-04-01"), Some(&json!({})), "")
                .body["error"]["code"],
            "LocationRequired"
        );
    }

    #[test]
    fn errors_like_arm() {
        let mut m = ArmModel::new(2, 50, 2);
        assert_eq!(
            m.handle("GET", "/subscriptions", &BTreeMap::new(), None, "")
                .body["error"]["code"],
            "MissingApiVersionParameter"
        );
        assert_eq!(
            m.handle("GET", "/nothing/here", &q("1"), None, "").status,
            404
        );
        let r = m.handle(
            "GET",
            &format!("/subscriptions/{}", subscription_id(7)),
            &q("1"),
            None,
            "",
        );
        assert_eq!(r.body["error"]["code"], "SubscriptionNotFound");
    }

    #[test]
    fn pages_link_to_the_rest() {
        let mut m = ArmModel::new(5, 2, 2);
        let r = m.handle("GET", "/subscriptions", &q("2022-12-01"), None, "http://h");
        assert_eq!(r.body["value"].as_array().unwrap().len(), 2);
        assert_eq!(
            r.body["nextLink"],
            "http://h/subscriptions?api-version=2022-12-01&$skiptoken=2"
        );
        let mut q2 = q("2022-12-01");
        q2.insert("$skiptoken".into(), "4".into());
        let r = m.handle("GET", "/subscriptions", &q2, None, "http://h");
        assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
        assert!(r.body.get("nextLink").is_none());
    }
}
