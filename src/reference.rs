//! References: `{{id.body.path}}` in a request's url, header values or body
//! strings, filled in from the answer of a request it depends on once that
//! request has succeeded.
//!
//! A reference names the request's id, then `body` (with an optional path of
//! keys and array indexes: `{{newUser.body.id}}`, `{{list.body.value.0.id}}`),
//! `status`, or `headers.<name>`. A body string that is exactly one reference
//! takes the referenced JSON value as it is (a number stays a number); anywhere
//! else the value is put in as text.

use serde_json::{Map, Value};

/// One `{{...}}` found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The text between the braces, for messages.
    pub text: String,
    /// The id of the request it reads from.
    pub id: String,
    /// `body`, `status` or `headers`, then the path inside it.
    pub path: Vec<String>,
}

/// Every reference in `s`, or an error naming a malformed one.
pub fn find(s: &str) -> Result<Vec<Reference>, String> {
    let mut out = vec![];
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("\"{{{{\" without \"}}}}\" in \"{s}\""))?;
        out.push(parse(after[..end].trim())?);
        rest = &after[end + 2..];
    }
    Ok(out)
}

fn parse(text: &str) -> Result<Reference, String> {
    // The id may itself contain dots: it ends where `.body`, `.status` or `.headers` starts.
    for part in ["body", "status", "headers"] {
        let marker = format!(".{part}");
        let mut from = 0;
        while let Some(i) = text[from..].find(&marker).map(|i| i + from) {
            let tail = &text[i + marker.len()..];
            if tail.is_empty() || tail.starts_with('.') {
                let id = &text[..i];
                if id.is_empty() {
                    break;
                }
                let mut path = vec![part.to_string()];
                path.extend(
                    tail.split('.')
                        .filter(|p| !p.is_empty())
                        .map(str::to_string),
                );
                if part == "headers" && path.len() != 2 {
                    return Err(format!("reference {{{{{text}}}}}: name one header, as in {{{{{id}.headers.Location}}}}"));
                }
                if part == "status" && path.len() != 1 {
                    return Err(format!("reference {{{{{text}}}}}: status has no parts"));
                }
                return Ok(Reference {
                    text: text.to_string(),
                    id: id.to_string(),
                    path,
                });
            }
            from = i + 1;
        }
    }
    Err(format!("reference {{{{{text}}}}} must look like {{{{id.body.path}}}}, {{{{id.status}}}} or {{{{id.headers.Name}}}}"))
}

/// Every reference anywhere in a JSON body's strings.
pub fn find_in_json(v: &Value) -> Result<Vec<Reference>, String> {
    let mut out = vec![];
    walk(v, &mut |s| {
        out.extend(find(s)?);
        Ok(())
    })?;
    Ok(out)
}

fn walk(v: &Value, f: &mut impl FnMut(&str) -> Result<(), String>) -> Result<(), String> {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().try_for_each(|x| walk(x, f)),
        Value::Object(o) => o.iter().try_for_each(|(_, x)| walk(x, f)),
        _ => Ok(()),
    }
}

/// The answer of a finished request, as references see it.
pub struct Answer<'a> {
    /// Its status.
    pub status: u16,
    /// Its headers.
    pub headers: &'a Map<String, Value>,
    /// Its body.
    pub body: &'a Value,
}

/// Looks a reference up; `answer_of` finds a finished request by id.
pub fn value<'a>(
    r: &Reference,
    answer_of: &impl Fn(&str) -> Option<Answer<'a>>,
) -> Result<Value, String> {
    let missing = || format!("reference {{{{{}}}}} has no value", r.text);
    let a = answer_of(&r.id).ok_or_else(missing)?;
    match r.path[0].as_str() {
        "status" => Ok(Value::from(a.status)),
        "headers" => a
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&r.path[1]))
            .map(|(_, v)| v.clone())
            .ok_or_else(missing),
        _ => {
            let mut cur = a.body;
            for key in &r.path[1..] {
                cur = match cur {
                    Value::Object(o) => o.get(key),
                    Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                    _ => None,
                }
                .ok_or_else(missing)?;
            }
            if cur.is_null() {
                return Err(missing());
            }
            Ok(cur.clone())
        }
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `s` with every reference replaced by its value as text.
pub fn fill_text<'a>(
    s: &str,
    answer_of: &impl Fn(&str) -> Option<Answer<'a>>,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("unclosed reference")?;
        out.push_str(&as_text(&value(&parse(after[..end].trim())?, answer_of)?));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A JSON body with every reference filled in. A string that is exactly one
/// reference becomes the referenced value itself.
pub fn fill_json<'a>(
    v: &Value,
    answer_of: &impl Fn(&str) -> Option<Answer<'a>>,
) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => {
            let t = s.trim();
            let whole =
                t.starts_with("{{") && t.ends_with("}}") && t[2..t.len() - 2].find("{{").is_none();
            if whole {
                value(&parse(t[2..t.len() - 2].trim())?, answer_of)?
            } else {
                Value::String(fill_text(s, answer_of)?)
            }
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| fill_json(x, answer_of))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), fill_json(x, answer_of)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_references() {
        let r = find("/users/{{newUser.body.id}}/x?y={{a.b.status}}").unwrap();
        assert_eq!(r[0].id, "newUser");
        assert_eq!(r[0].path, ["body", "id"]);
        assert_eq!(
            (r[1].id.as_str(), r[1].path.clone()),
            ("a.b", vec!["status".to_string()])
        );
        assert!(find("{{x}}").unwrap_err().contains("must look like"));
        assert!(find("{{x.body").unwrap_err().contains("without"));
        assert!(find("no refs here").unwrap().is_empty());
        let j = find_in_json(&json!({"a": ["{{u.body.id}}", {"b": "{{g.headers.Location}}"}]}))
            .unwrap();
        assert_eq!(j.len(), 2);
    }

    #[test]
    fn fills_text_and_json() {
        let headers: Map<String, Value> = [("Location".to_string(), json!("/x/1"))]
            .into_iter()
            .collect();
        let body = json!({"id": "u-1", "n": 3, "value": [{"id": "first"}]});
        let lookup = |id: &str| {
            (id == "u").then_some(Answer {
                status: 201,
                headers: &headers,
                body: &body,
            })
        };
        assert_eq!(
            fill_text("/users/{{u.body.id}}/{{u.status}}", &lookup).unwrap(),
            "/users/u-1/201"
        );
        assert_eq!(
            fill_text("{{u.headers.location}}", &lookup).unwrap(),
            "/x/1"
        );
        let filled = fill_json(
            &json!({"count": "{{u.body.n}}", "s": "n={{u.body.n}}", "f": "{{u.body.value.0.id}}"}),
            &lookup,
        )
        .unwrap();
        assert_eq!(filled, json!({"count": 3, "s": "n=3", "f": "first"}));
        let e = fill_text("{{u.body.missing}}", &lookup).unwrap_err();
        assert!(e.contains("{{u.body.missing}} has no value"), "{e}");
        assert!(fill_text("{{other.body.id}}", &lookup).is_err());
    }
}
