//! The request shapes of the commands AzBatch users come from, so that a loop
//! becomes a pipeline by renaming its command:
//!
//! - **Invoke-AzRestMethod** (Az.Accounts, `InvokeAzRestMethodCommand.cs`):
//!   `Path` (the path and query on Resource Manager), `Method`, `Payload` (JSON
//!   text); or the path by parts: `SubscriptionId`, `ResourceGroupName`,
//!   `ResourceProviderName`, `ResourceType` and `Name` (lists, a child type
//!   after its parent, the last name optional) and `ApiVersion`, joined as
//!   `/subscriptions/{s}/resourceGroups/{g}/providers/{p}/{type}/{name}/...?api-version={v}`.
//! - **Invoke-MgGraphRequest** (`Microsoft.Graph.Authentication`): `Uri`,
//!   `Method`, `Body`, `Headers`, `ContentType`.
//!
//! Keys are read in any case (`ConvertTo-Json` keeps PowerShell's spelling).
//! Here they are brought to the request's own fields ([`RequestSpec`]).

use serde_json::{Map, Value};

use crate::request::RequestSpec;

/// Every key a request takes, in its own spelling (the fields of
/// [`RequestSpec`], as serde names them); other spellings of the same letters
/// are brought to these.
fn keys() -> &'static [&'static str] {
    static KEYS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KEYS.get_or_init(fields::of::<RequestSpec>)
}

/// Invoke-MgGraphRequest's `Uri` is the request's `url`.
const SYNONYMS: [(&str, &str); 1] = [("uri", "url")];

/// ARM's spellings of a field: the key, and the field the check reads it as
/// (they are fields of [`RequestSpec`] of their own, refused beside the other).
const ARM_SPELLINGS: [(&str, &str); 3] = [
    ("name", "id"),
    ("httpMethod", "method"),
    ("content", "body"),
];

/// The keys only the peers' shapes have: a request that gives one of them
/// is turned into the library's own fields by [`resolve`].
const PEER_KEYS: [&str; 9] = [
    "path",
    "payload",
    "subscriptionId",
    "resourceGroupName",
    "resourceProviderName",
    "resourceType",
    "resourceName",
    "apiVersion",
    "contentType",
];

/// A key a request object takes, read in any case: the field it fills, and
/// whether it belongs to a peer's shape (what the PowerShell module reads
/// from `batch_info` instead of keeping its own list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct RequestKey {
    pub(crate) key: &'static str,
    pub(crate) field: &'static str,
    pub(crate) peer: bool,
}

/// Every key a request takes: its own fields, ARM's spellings and the peers'.
pub(crate) fn request_keys() -> Vec<RequestKey> {
    let field = |key: &'static str| {
        ARM_SPELLINGS
            .iter()
            .chain(SYNONYMS.iter())
            .find(|(k, _)| *k == key)
            .map_or(key, |(_, f)| *f)
    };
    keys()
        .iter()
        .chain(SYNONYMS.iter().map(|(k, _)| k))
        .map(|&key| RequestKey {
            key,
            field: field(key),
            peer: PEER_KEYS.contains(&key),
        })
        .collect()
}

/// Brings a request object's keys to their own spelling, in place: `Path` to
/// `path`, `Uri` to `url`, and `Name` beside a `ResourceType` to
/// `resourceName` (Invoke-AzRestMethod's resource name; elsewhere `name` is
/// ARM's spelling of the id). Keys it does not know stay as they are, for
/// the request's own check to name.
pub(crate) fn canonical_keys(object: &mut Map<String, Value>) {
    let by_parts = object
        .keys()
        .any(|k| k.eq_ignore_ascii_case("resourceType"));
    let given: Vec<String> = object.keys().cloned().collect();
    for key in given {
        let own = if by_parts && key.eq_ignore_ascii_case("name") {
            Some("resourceName")
        } else {
            SYNONYMS
                .iter()
                .find(|(s, _)| key.eq_ignore_ascii_case(s))
                .map(|(_, own)| *own)
                .or_else(|| keys().iter().copied().find(|k| key.eq_ignore_ascii_case(k)))
        };
        if let Some(own) = own.filter(|own| *own != key) {
            if object.contains_key(own) {
                // Both spellings given: left for the check to refuse.
                continue;
            }
            let v = object.remove(&key).expect("listed");
            object.insert(own.to_string(), v);
        }
    }
}

/// The peers' forms of a request turned into its own: `path` or the parts into
/// `url`, `payload` into `body`, `contentType` into a header. Errors name the
/// field and say what to give instead.
pub(crate) fn resolve(spec: &mut RequestSpec) -> Result<(), (&'static str, String)> {
    let parts = [
        &spec.subscription_id,
        &spec.resource_group_name,
        &spec.resource_provider_name,
        &spec.api_version,
    ]
    .iter()
    .any(|p| p.is_some())
        || spec.resource_type.is_some()
        || spec.resource_name.is_some();
    let given = [spec.url.is_some(), spec.path.is_some(), parts];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err((
            "url",
            "give one of url (or Uri), path, or the resource's parts (SubscriptionId, ResourceGroupName, ResourceProviderName, ResourceType, Name, ApiVersion)".into(),
        ));
    }
    if let Some(path) = spec.path.take() {
        spec.url = Some(path);
    } else if parts {
        spec.url = Some(path_by_parts(spec)?);
        spec.subscription_id = None;
        spec.resource_group_name = None;
        spec.resource_provider_name = None;
        spec.resource_type = None;
        spec.resource_name = None;
        spec.api_version = None;
    }
    if let Some(payload) = spec.payload.take() {
        if spec.body.is_some() || spec.content.is_some() {
            return Err(("payload", "give payload or body, not both".into()));
        }
        spec.body = Some(match payload {
            Value::String(text) if text.trim().is_empty() => Value::Null,
            Value::String(text) => serde_json::from_str(&text).map_err(|e| {
                (
                    "payload",
                    format!("is not JSON text ({e}); Invoke-AzRestMethod's Payload is JSON"),
                )
            })?,
            other => other,
        });
    }
    if let Some(ct) = spec.content_type.take() {
        let headers = spec.headers.get_or_insert_with(Map::new);
        if headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
        {
            return Err((
                "contentType",
                "give contentType or a Content-Type header, not both".into(),
            ));
        }
        headers.insert("Content-Type".into(), Value::String(ct));
    }
    Ok(())
}

/// Invoke-AzRestMethod's path from its parts (`ConstructPath`), with the
/// `api-version` query.
fn path_by_parts(spec: &RequestSpec) -> Result<String, (&'static str, String)> {
    let list =
        |field: &'static str, v: &Option<Value>| -> Result<Vec<String>, (&'static str, String)> {
            let bad = || (field, "must be text or a list of text".to_string());
            let items: Vec<String> = match v {
                None => vec![],
                Some(Value::String(s)) => s.split('/').map(str::to_string).collect(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(bad()),
            };
            let items: Vec<String> = items
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            Ok(items)
        };
    let types = list("resourceType", &spec.resource_type)?;
    let names = list("name", &spec.resource_name)?;
    // Invoke-AzRestMethod's ValidateParameters: a name for each type, or for
    // each but the last (which then lists that type).
    if !names.is_empty() && types.is_empty() {
        return Err((
            "name",
            "needs ResourceType: a name names a resource of a type".into(),
        ));
    }
    if names.len() > types.len() || types.len() - names.len() > 1 {
        return Err((
            "resourceType",
            format!(
                "{} types and {} names: give a name for each type, or for each but the last",
                types.len(),
                names.len()
            ),
        ));
    }
    let text = |field: &'static str,
                v: &Option<String>|
     -> Result<Option<String>, (&'static str, String)> {
        match v.as_deref().map(str::trim) {
            Some("") => Err((field, "is empty".into())),
            other => Ok(other.map(str::to_string)),
        }
    };
    let sub = text("subscriptionId", &spec.subscription_id)?.ok_or((
        "subscriptionId",
        "is required with the resource's parts (Invoke-AzRestMethod takes it from the Az context; AzBatch needs it on the request)".to_string(),
    ))?;
    let version = text("apiVersion", &spec.api_version)?.ok_or((
        "apiVersion",
        "is required with the resource's parts".to_string(),
    ))?;
    let mut path = format!("/subscriptions/{sub}");
    if let Some(rg) = text("resourceGroupName", &spec.resource_group_name)? {
        path.push_str(&format!("/resourceGroups/{rg}"));
    }
    if let Some(rp) = text("resourceProviderName", &spec.resource_provider_name)? {
        path.push_str(&format!("/providers/{rp}"));
    }
    for (i, t) in types.iter().enumerate() {
        path.push('/');
        path.push_str(t);
        if let Some(n) = names.get(i) {
            path.push('/');
            path.push_str(n);
        }
    }
    Ok(format!("{path}?api-version={version}"))
}

/// A struct's field names as serde reads them: a deserializer that asks
/// for nothing but the list serde hands `deserialize_struct`.
mod fields {
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    struct Names(Option<&'static [&'static str]>);

    #[derive(Debug)]
    struct Stop;

    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names read")
        }
    }

    impl std::error::Error for Stop {}

    impl de::Error for Stop {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Stop
        }
    }

    impl<'de> Deserializer<'de> for &mut Names {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    /// The field names of `T`, a struct that derives `Deserialize`.
    pub(super) fn of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        let mut names = Names(None);
        let _ = T::deserialize(&mut names);
        names.0.unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolved(v: Value) -> Result<RequestSpec, (&'static str, String)> {
        let mut v = v;
        canonical_keys(v.as_object_mut().unwrap());
        let mut spec: RequestSpec =
            serde_json::from_value(v).map_err(|e| ("json", e.to_string()))?;
        resolve(&mut spec)?;
        Ok(spec)
    }

    #[test]
    fn invoke_az_rest_method_by_path_and_payload() {
        let s = resolved(json!({
            "Path": "/subscriptions/s1/resourcegroups/rg1?api-version=2021-04-01",
            "Method": "PUT",
            "Payload": "{\"location\": \"westeurope\"}"
        }))
        .unwrap();
        assert_eq!(
            s.url.as_deref(),
            Some("/subscriptions/s1/resourcegroups/rg1?api-version=2021-04-01")
        );
        assert_eq!(s.method.as_deref(), Some("PUT"));
        assert_eq!(s.body, Some(json!({"location": "westeurope"})));
        let e =
            resolved(json!({"Path": "/x", "Method": "PUT", "Payload": "{not json"})).unwrap_err();
        assert_eq!(e.0, "payload");
    }

    #[test]
    fn invoke_az_rest_method_by_parts() {
        let s = resolved(json!({
            "SubscriptionId": "s1",
            "ResourceGroupName": "rg1",
            "ResourceProviderName": "Microsoft.Compute",
            "ResourceType": ["virtualMachines", "extensions"],
            "Name": ["vm1", "ext1"],
            "ApiVersion": "2024-03-01"
        }))
        .unwrap();
        assert_eq!(
            s.url.as_deref(),
            Some("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1/extensions/ext1?api-version=2024-03-01")
        );
        assert!(
            s.name.is_none() && s.id.is_none(),
            "Name is the resource's, not the id"
        );
        let again = serde_json::from_value::<RequestSpec>(s.to_json()).unwrap();
        let mut again = again;
        resolve(&mut again).expect("the resolved form resolves to itself");
        assert_eq!(again.url, s.url);
        // A child type as one text, the last name left out: the list.
        let s = resolved(json!({
            "subscriptionId": "s1", "resourceGroupName": "rg1",
            "resourceProviderName": "Microsoft.Compute",
            "resourceType": "virtualMachines/extensions", "name": "vm1",
            "apiVersion": "2024-03-01"
        }))
        .unwrap();
        assert_eq!(
            s.url.as_deref(),
            Some("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1/extensions?api-version=2024-03-01")
        );
        let s = resolved(json!({"SubscriptionId": "s1", "ApiVersion": "2022-12-01"})).unwrap();
        assert_eq!(
            s.url.as_deref(),
            Some("/subscriptions/s1?api-version=2022-12-01")
        );
        for (bad, field) in [
            (
                json!({"SubscriptionId": "s1", "ResourceType": ["a", "b", "c"], "Name": ["x"], "ApiVersion": "1"}),
                "resourceType",
            ),
            (
                json!({"SubscriptionId": "s1", "ApiVersion": "1", "ResourceName": "x"}),
                "name",
            ),
            (
                json!({"ResourceGroupName": "g", "ApiVersion": "1"}),
                "subscriptionId",
            ),
            (json!({"SubscriptionId": "s1"}), "apiVersion"),
            (
                json!({"SubscriptionId": "s1", "ApiVersion": "1", "Path": "/x"}),
                "url",
            ),
        ] {
            assert_eq!(resolved(bad.clone()).unwrap_err().0, field, "{bad}");
        }
    }

    #[test]
    fn the_keys_are_the_request_fields() {
        let keys = keys();
        assert!(keys.contains(&"dependsOn") && keys.contains(&"resourceGroupName"));
        assert_eq!(keys.len(), 21, "{keys:?}");
    }

    /// The peer keys are exactly those [`resolve`] turns into other fields:
    /// each one alone changes what resolve makes of a request, no other key
    /// does.
    #[test]
    fn the_peer_keys_are_what_resolve_reads() {
        let sample = |key: &str| match key {
            "resourceType" | "resourceName" | "payload" => json!("x"),
            "headers" => json!({"a": "b"}),
            "dependsOn" => json!(["a"]),
            "forEachSubscription" => json!(true),
            _ => json!("{}"),
        };
        for k in request_keys() {
            let mut object = json!({ k.key: sample(k.key) });
            canonical_keys(object.as_object_mut().unwrap());
            let mut spec: RequestSpec =
                serde_json::from_value(object).unwrap_or_else(|e| panic!("{}: {e}", k.key));
            let before = spec.to_json();
            let changed = match resolve(&mut spec) {
                Err(_) => true,
                Ok(()) => spec.to_json() != before,
            };
            assert_eq!(changed, k.peer, "{k:?}");
            assert!(keys().contains(&k.field), "{k:?} fills a field");
        }
        let fields: Vec<_> = request_keys().iter().map(|k| (k.key, k.field)).collect();
        assert!(fields.contains(&("uri", "url")) && fields.contains(&("name", "id")));
    }

    #[test]
    fn keys_in_any_case_and_the_graph_uri() {
        let s = resolved(json!({
            "URI": "v1.0/users/x", "METHOD": "patch", "BODY": {"a": 1},
            "ContentType": "application/json", "DependsOn": ["a"], "Id": "b"
        }))
        .unwrap();
        assert_eq!(s.url.as_deref(), Some("v1.0/users/x"));
        assert_eq!(s.id, Some(json!("b")));
        assert_eq!(
            s.headers.unwrap()["Content-Type"],
            json!("application/json")
        );
        // Name without ResourceType is still ARM's spelling of the id.
        let s = resolved(json!({"Name": "n1", "Url": "/x"})).unwrap();
        assert_eq!(s.name, Some(json!("n1")));
    }
}
