//! The in-memory Graph tenant: users (with photos, licences, events and
//! calendar permissions) and groups with members. Pure and synchronous;
//! throttling, latency and logging wrap it in `service`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use crate::reply::{error, Reply};

/// A tiny JPEG (its magic bytes and a little more) served as every photo.
pub const PHOTO: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0xFF, 0xD9,
];
/// The licence SKU the tenant owns.
pub const SKU: &str = "c7df2760-2c81-4ef7-b578-5b5392b571df";
/// Largest `$top` Graph accepts for users.
const MAX_TOP: usize = 999;
const DEFAULT_TOP: usize = 100;

/// The id of pre-made user `i`.
pub fn user_id(i: usize) -> String {
    format!("{i:08x}-0000-4000-9000-{i:012}")
}

/// The id of pre-made group `i`.
pub fn group_id(i: usize) -> String {
    format!("{i:08x}-0000-4000-a000-{i:012}")
}

struct Group {
    body: Value,
    members: BTreeSet<String>,
}

/// The directory.
pub struct GraphModel {
    users: BTreeMap<String, Value>,
    groups: BTreeMap<String, Group>,
    licenses: HashMap<String, BTreeSet<String>>,
    events: HashMap<String, Vec<Value>>,
    permissions: HashMap<String, Vec<Value>>,
    photos: HashMap<String, Vec<u8>>,
    next: u64,
}

fn not_found(what: &str, id: &str) -> Reply {
    error(404, "Request_ResourceNotFound", &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present. ({what})"))
}

fn bad(message: &str) -> Reply {
    error(400, "Request_BadRequest", message)
}

impl GraphModel {
    /// A directory with `users` users and `groups` groups.
    pub fn new(users: usize, groups: usize) -> GraphModel {
        let mut m = GraphModel {
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            licenses: HashMap::new(),
            events: HashMap::new(),
            permissions: HashMap::new(),
            photos: HashMap::new(),
            next: 1,
        };
        for i in 0..users {
            let id = user_id(i);
            let u = user_body(
                &id,
                &format!("User {i}"),
                &format!("user{i}@contoso.example"),
                &json!({}),
            );
            m.users.insert(id, u);
        }
        for i in 0..groups {
            let id = group_id(i);
            let body = json!({"id": id, "displayName": format!("Group {i}"), "mailEnabled": false, "securityEnabled": true, "mailNickname": format!("group{i}")});
            m.groups.insert(
                id,
                Group {
                    body,
                    members: BTreeSet::new(),
                },
            );
        }
        m
    }

    fn new_id(&mut self, kind: &str) -> String {
        self.next += 1;
        let tag = if kind == "user" { "b000" } else { "c000" };
        format!("{:08x}-1111-4000-{tag}-{:012}", self.next, self.next)
    }

    /// Members of group `id`, for tests.
    pub fn members(&self, id: &str) -> Option<Vec<String>> {
        self.groups
            .get(id)
            .map(|g| g.members.iter().cloned().collect())
    }

    /// A user by id, for tests.
    pub fn user(&self, id: &str) -> Option<Value> {
        self.users.get(id).cloned()
    }

    /// Licences of user `id`, for tests.
    pub fn licenses(&self, id: &str) -> Vec<String> {
        self.licenses
            .get(id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn find_user(&self, key: &str) -> Option<String> {
        if self.users.contains_key(key) {
            return Some(key.to_string());
        }
        let k = key.to_ascii_lowercase();
        self.users
            .iter()
            .find(|(_, u)| {
                u["userPrincipalName"]
                    .as_str()
                    .is_some_and(|p| p.to_ascii_lowercase() == k)
            })
            .map(|(id, _)| id.clone())
    }

    /// Runs one call. `path` is relative to the version root; `query` is
    /// decoded; `body` is JSON or the raw bytes of a non-JSON body; `root` is
    /// the absolute version root that `@odata.nextLink`s start with.
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        query: &BTreeMap<String, String>,
        body: Option<&Value>,
        bytes: Option<&[u8]>,
        root: &str,
    ) -> Reply {
        let segs: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        let l: Vec<&str> = lower.iter().map(String::as_str).collect();
        if crate::service::is_sharepoint(path) {
            return sharepoint(method, &segs);
        }
        match (method, l.as_slice()) {
            ("GET", ["users"]) => self.list_users(query, root),
            ("POST", ["users"]) => self.create_user(body),
            (_, ["users", _, rest @ ..]) => {
                let Some(id) = self.find_user(segs[1]) else {
                    return not_found("user", segs[1]);
                };
                self.user_call(method, &id, rest, query, body, bytes)
            }
            ("GET", ["groups"]) => Reply::json(
                200,
                json!({"value": self.groups.values().map(|g| g.body.clone()).collect::<Vec<_>>()}),
            ),
            ("POST", ["groups"]) => {
                let Some(name) = body.and_then(|b| b["displayName"].as_str()) else {
                    return bad("Property 'displayName' is required.");
                };
                let id = self.new_id("group");
                let g = json!({"id": id, "displayName": name, "mailEnabled": false, "securityEnabled": true, "mailNickname": body.and_then(|b| b["mailNickname"].as_str()).unwrap_or(name)});
                self.groups.insert(
                    id,
                    Group {
                        body: g.clone(),
                        members: BTreeSet::new(),
                    },
                );
                Reply::json(201, g)
            }
            (_, ["groups", _, rest @ ..]) => {
                let gid = segs[1].to_string();
                if !self.groups.contains_key(&gid) {
                    return not_found("group", &gid);
                }
                self.group_call(method, &gid, rest, &segs, body)
            }
            _ => error(
                400,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    segs.first().unwrap_or(&"")
                ),
            ),
        }
    }

    fn list_users(&self, query: &BTreeMap<String, String>, root: &str) -> Reply {
        let top = match query.get("$top").map(|t| t.parse::<usize>()) {
            None => DEFAULT_TOP,
            Some(Ok(t)) if (1..=MAX_TOP).contains(&t) => t,
            Some(_) => {
                return bad(&format!(
                    "Invalid page size specified: '{}'. Must be between 1 and {MAX_TOP} inclusive.",
                    query["$top"]
                ))
            }
        };
        let skip: usize = query
            .get("$skiptoken")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let select = query.get("$select");
        let value: Vec<Value> = self
            .users
            .values()
            .skip(skip)
            .take(top)
            .map(|u| selected(u, select))
            .collect();
        let mut body = json!({"@odata.context": format!("{root}/$metadata#users"), "value": value});
        if skip + top < self.users.len() {
            let mut q = format!("$top={top}&$skiptoken={}", skip + top);
            if let Some(s) = select {
                q.push_str(&format!("&$select={s}"));
            }
            body["@odata.nextLink"] = json!(format!("{root}/users?{q}"));
        }
        Reply::json(200, body)
    }

    fn create_user(&mut self, body: Option<&Value>) -> Reply {
        let b = body.cloned().unwrap_or(json!({}));
        let (Some(name), Some(upn)) = (b["displayName"].as_str(), b["userPrincipalName"].as_str())
        else {
            return bad("Invalid value specified for property 'displayName' or 'userPrincipalName' of resource 'User'.");
        };
        if self.find_user(upn).is_some() {
            return bad(
                "Another object with the same value for property userPrincipalName already exists.",
            );
        }
        let id = self.new_id("user");
        let u = user_body(&id, name, upn, &b);
        self.users.insert(id, u.clone());
        Reply::json(201, u)
    }

    fn user_call(
        &mut self,
        method: &str,
        id: &str,
        rest: &[&str],
        query: &BTreeMap<String, String>,
        body: Option<&Value>,
        bytes: Option<&[u8]>,
    ) -> Reply {
        match (method, rest) {
            ("GET", []) => Reply::json(200, selected(&self.users[id], query.get("$select"))),
            ("PATCH", []) => self.patch_user(id, body),
            ("DELETE", []) => {
                self.users.remove(id);
                for g in self.groups.values_mut() {
                    g.members.remove(id);
                }
                Reply::empty(204)
            }
            ("GET", ["photo", "$value"]) => {
                let photo = self
                    .photos
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| PHOTO.to_vec());
                Reply {
                    bytes: Some((photo, "image/jpeg".into())),
                    ..Reply::empty(200)
                }
            }
            ("PUT", ["photo", "$value"]) => match bytes {
                Some(b) if !b.is_empty() => {
                    self.photos.insert(id.to_string(), b.to_vec());
                    Reply::empty(204)
                }
                _ => bad("The photo must be sent as image bytes."),
            },
            ("POST", ["assignlicense"]) => self.assign_license(id, body),
            ("POST", ["events"]) => self.add_event(id, body),
            ("GET", ["events"]) => Reply::json(
                200,
                json!({"value": self.events.get(id).cloned().unwrap_or_default()}),
            ),
            ("POST", ["calendar", "calendarpermissions"]) => self.add_calendar_permission(id, body),
            ("GET", ["calendar", "calendarpermissions"]) => Reply::json(
                200,
                json!({"value": self.permissions.get(id).cloned().unwrap_or_default()}),
            ),
            _ => error(
                400,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    rest.first().unwrap_or(&"")
                ),
            ),
        }
    }

    fn patch_user(&mut self, id: &str, body: Option<&Value>) -> Reply {
        let Some(Value::Object(changes)) = body else {
            return bad("A request body with the properties to change is required.");
        };
        let u = self.users.get_mut(id).expect("found above");
        for (k, v) in changes {
            if k == "id" {
                return bad("Property 'id' is read-only and cannot be set.");
            }
            u[k] = v.clone();
        }
        Reply::empty(204)
    }

    fn assign_license(&mut self, id: &str, body: Option<&Value>) -> Reply {
        let b = body.cloned().unwrap_or(json!({}));
        let (Some(add), Some(remove)) =
            (b["addLicenses"].as_array(), b["removeLicenses"].as_array())
        else {
            return bad("Properties 'addLicenses' and 'removeLicenses' are required.");
        };
        let set = self.licenses.entry(id.to_string()).or_default();
        for l in add {
            match l["skuId"].as_str() {
                Some(SKU) => {
                    set.insert(SKU.to_string());
                }
                _ => return bad("License assignment failed because service plans are not available for this SKU."),
            }
        }
        for r in remove.iter().filter_map(Value::as_str) {
            set.remove(r);
        }
        let mut u = self.users[id].clone();
        u["assignedLicenses"] = json!(set
            .iter()
            .map(|s| json!({"skuId": s, "disabledPlans": []}))
            .collect::<Vec<_>>());
        Reply::json(200, u)
    }

    fn add_event(&mut self, id: &str, body: Option<&Value>) -> Reply {
        let Some(subject) = body.and_then(|b| b["subject"].as_str()) else {
            return bad("The event needs a subject.");
        };
        let eid = format!("AAMkAG{}", self.next_u64());
        let mut e = body.cloned().unwrap_or(json!({}));
        e["id"] = json!(eid);
        e["subject"] = json!(subject);
        self.events
            .entry(id.to_string())
            .or_default()
            .push(e.clone());
        Reply::json(201, e)
    }

    fn add_calendar_permission(&mut self, id: &str, body: Option<&Value>) -> Reply {
        let b = body.cloned().unwrap_or(json!({}));
        let (Some(address), Some(role)) =
            (b["emailAddress"]["address"].as_str(), b["role"].as_str())
        else {
            return bad("Properties 'emailAddress' and 'role' are required.");
        };
        let p = json!({"id": format!("RgAAAA{}", self.next_u64()), "emailAddress": {"address": address, "name": b["emailAddress"]["name"]}, "role": role, "isRemovable": true, "isInsideOrganization": true});
        self.permissions
            .entry(id.to_string())
            .or_default()
            .push(p.clone());
        Reply::json(201, p)
    }

    fn group_call(
        &mut self,
        method: &str,
        gid: &str,
        rest: &[&str],
        segs: &[&str],
        body: Option<&Value>,
    ) -> Reply {
        match (method, rest) {
            ("GET", []) => Reply::json(200, self.groups[gid].body.clone()),
            ("GET", ["members"]) => {
                let members: Vec<Value> = self.groups[gid]
                    .members
                    .iter()
                    .filter_map(|m| self.users.get(m))
                    .map(|u| {
                        let mut u = selected(u, None);
                        u["@odata.type"] = json!("#microsoft.graph.user");
                        u
                    })
                    .collect();
                Reply::json(200, json!({"value": members}))
            }
            ("POST", ["members", "$ref"]) => {
                let Some(reference) = body.and_then(|b| b["@odata.id"].as_str()) else {
                    return bad("Property '@odata.id' is required.");
                };
                let uid = reference.rsplit('/').next().unwrap_or("").to_string();
                if !self.users.contains_key(&uid) {
                    return not_found("directoryObject", &uid);
                }
                if !self
                    .groups
                    .get_mut(gid)
                    .expect("checked")
                    .members
                    .insert(uid)
                {
                    return bad("One or more added object references already exist for the following modified properties: 'members'.");
                }
                Reply::empty(204)
            }
            ("DELETE", ["members", _, "$ref"]) => {
                if self
                    .groups
                    .get_mut(gid)
                    .expect("checked")
                    .members
                    .remove(segs[3])
                {
                    Reply::empty(204)
                } else {
                    not_found("member", segs[3])
                }
            }
            _ => error(
                400,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    rest.first().unwrap_or(&"")
                ),
            ),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

fn user_body(id: &str, name: &str, upn: &str, given: &Value) -> Value {
    json!({
        "id": id,
        "displayName": name,
        "userPrincipalName": upn,
        "mail": upn,
        "accountEnabled": given.get("accountEnabled").cloned().unwrap_or(json!(true)),
        "mailNickname": given.get("mailNickname").cloned().unwrap_or(json!(upn.split('@').next().unwrap_or(upn))),
        "department": given.get("department").cloned().unwrap_or(Value::Null),
        "jobTitle": given.get("jobTitle").cloned().unwrap_or(Value::Null),
        "usageLocation": given.get("usageLocation").cloned().unwrap_or(json!("NO")),
    })
}

/// The user with only the `$select`ed properties (and always `id`).
fn selected(u: &Value, select: Option<&String>) -> Value {
    let Some(select) = select else {
        return u.clone();
    };
    let mut out = Map::new();
    out.insert("id".into(), u["id"].clone());
    for p in select.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((k, v)) = u
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(p)))
        {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// SharePoint and OneDrive, as far as the emulator serves them: sites,
/// drives and items exist whatever their id; a listing is empty.
fn sharepoint(method: &str, segs: &[&str]) -> Reply {
    let last = segs.last().copied().unwrap_or("");
    let listing = matches!(
        last.to_ascii_lowercase().as_str(),
        "children"
            | "items"
            | "lists"
            | "sites"
            | "drives"
            | "columns"
            | "versions"
            | "permissions"
    );
    match method {
        "DELETE" => Reply::empty(204),
        "GET" if listing => Reply::json(200, json!({"value": []})),
        _ => Reply::json(200, json!({"id": last})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn users_page_and_select() {
        let mut m = GraphModel::new(5, 0);
        let r = m.handle(
            "GET",
            "/users",
            &q(&[("$top", "2"), ("$select", "displayName")]),
            None,
            None,
            "http://h/v1.0",
        );
        assert_eq!(r.body["value"].as_array().unwrap().len(), 2);
        assert_eq!(
            r.body["value"][0],
            json!({"id": user_id(0), "displayName": "User 0"})
        );
        assert_eq!(
            r.body["@odata.nextLink"],
            "http://h/v1.0/users?$top=2&$skiptoken=2&$select=displayName"
        );
        let last = m.handle(
            "GET",
            "/users",
            &q(&[("$top", "2"), ("$skiptoken", "4")]),
            None,
            None,
            "http://h/v1.0",
        );
        assert!(last.body.get("@odata.nextLink").is_none());
        assert_eq!(
            m.handle("GET", "/users", &q(&[("$top", "1000")]), None, None, "")
                .status,
            400
        );
    }

    #[test]
    fn onboarding_flow() {
        let mut m = GraphModel::new(1, 2);
        let u = m.handle(
            "POST",
            "/users",
            &q(&[]),
            Some(&json!({"displayName": "Ada", "userPrincipalName": "ada@contoso.example"})),
            None,
            "",
        );
        assert_eq!(u.status, 201);
        let id = u.body["id"].as_str().unwrap().to_string();
        let dup = m.handle(
            "POST",
            "/users",
            &q(&[]),
            Some(&json!({"displayName": "Ada", "userPrincipalName": "ADA@contoso.example"})),
            None,
            "",
        );
        assert_eq!(dup.status, 400);
        let lic = m.handle(
            "POST",
            &format!("/users/{id}/assignLicense"),
            &q(&[]),
            Some(&json!({"addLicenses": [{"skuId": SKU}], "removeLicenses": []})),
            None,
            "",
        );
        assert_eq!((lic.status, m.licenses(&id)), (200, vec![SKU.to_string()]));
        let r =
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});
        let path = format!("/groups/{}/members/$ref", group_id(1));
        assert_eq!(
            m.handle("POST", &path, &q(&[]), Some(&r), None, "").status,
            204
        );
        assert_eq!(
            m.handle("POST", &path, &q(&[]), Some(&r), None, "").status,
            400,
            "already a member"
        );
        assert_eq!(m.members(&group_id(1)).unwrap(), vec![id.clone()]);
        let photo = m.handle(
            "GET",
            &format!("/users/{id}/photo/$value"),
            &q(&[]),
            None,
            None,
            "",
        );
        assert_eq!(photo.bytes.unwrap().1, "image/jpeg");
        assert_eq!(
            m.handle(
                "PATCH",
                "/users/ada@contoso.example",
                &q(&[]),
                Some(&json!({"department": "R&D"})),
                None,
                ""
            )
            .status,
            204
        );
        assert_eq!(m.user(&id).unwrap()["department"], "R&D");
        assert_eq!(
            m.handle("GET", "/users/nobody", &q(&[]), None, None, "")
                .status,
            404
        );
        assert_eq!(
            m.handle("GET", "/nothing", &q(&[]), None, None, "").status,
            400
        );
    }
}
