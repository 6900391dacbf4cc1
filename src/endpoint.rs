//! The endpoint rules: which URLs AzBatch accepts as a service endpoint, which
//! URLs count as the endpoint's own (the only place a token goes and a link is
//! followed), and how a request's URL becomes a path relative to the API's
//! root. Checked when options and requests are parsed, and again at run time
//! for `Location`, `nextLink` and filled-in reference URLs.

use url::Url;

use crate::dialect::{graph, Api};
use crate::error::Error;

/// Parses an endpoint: `https://` anywhere, `http://` only on a loopback host
/// (the emulator), no query, fragment or credentials; no trailing slash.
pub fn parse_endpoint(text: &str) -> Result<Url, Error> {
    let bad = |why: String| Error::InvalidOptions(format!("endpoint \"{text}\": {why}"));
    let mut url = Url::parse(text.trim()).map_err(|e| bad(e.to_string()))?;
    let host = url.host_str().ok_or_else(|| bad("has no host".into()))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => return Err(bad("http:// is allowed only for loopback hosts".into())),
        s => return Err(bad(format!("scheme {s} is not supported"))),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials".into()));
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Whether `url` is on `endpoint`'s scheme, host and port.
pub fn is_same_origin(endpoint: &Url, url: &Url) -> bool {
    url.scheme() == endpoint.scheme()
        && url.host_str().map(str::to_ascii_lowercase)
            == endpoint.host_str().map(str::to_ascii_lowercase)
        && url.port_or_known_default() == endpoint.port_or_known_default()
}

/// Where request URLs of one run point: the API, the endpoint, and the path
/// request URLs are relative to (the endpoint's own for ARM, `{path}/{version}`
/// for Graph).
#[derive(Debug, Clone, Copy)]
pub struct Root<'a> {
    /// The dialect.
    pub api: Api,
    /// The endpoint.
    pub endpoint: &'a Url,
    /// The path request URLs are relative to.
    pub path: &'a str,
}

/// Turns a request URL into a path and query relative to `root`. Absolute URLs
/// must be on the endpoint's origin (and, for Graph, under the run's version):
/// anything else would send the token to another host. A URL that starts with
/// a reference (`{{rg.body.id}}?...`) is checked once filled in.
pub fn relative_url(text: &str, root: Root<'_>) -> Result<String, String> {
    relative_url_as_given(text, root).map(|u| encode_url(&u))
}

/// What a URL needs escaped before it travels inside a batch: control
/// characters, spaces and (always, as UTF-8) every non-ASCII character.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ');

/// `url` with non-ASCII characters (as UTF-8), spaces and control characters
/// percent-encoded, in path and query alike; `%XX` escapes already there and
/// everything else stay as they are, so encoding twice changes nothing.
pub fn encode_url(url: &str) -> String {
    percent_encoding::utf8_percent_encode(url, ESCAPED).to_string()
}

fn relative_url_as_given(text: &str, root: Root<'_>) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty".into());
    }
    if text.starts_with("{{") {
        return Ok(text.to_string());
    }
    if !text.contains("://") {
        let path = relative_path(text, root.api)?;
        return match root.api {
            Api::Graph => Ok(under_version(&path, root)),
            Api::Arm => Ok(path),
        };
    }
    let url = Url::parse(text).map_err(|e| format!("\"{text}\" is not a valid URL ({e})"))?;
    if !is_same_origin(root.endpoint, &url) {
        return Err(format!(
            "\"{}\" is not on the endpoint {}; only the endpoint's own host is called",
            url.origin().ascii_serialization(),
            root.endpoint.origin().ascii_serialization()
        ));
    }
    let path = match root.api {
        Api::Graph => {
            // Under the endpoint's own path, then the version.
            let (base, _) = graph_root(root);
            match url.path().strip_prefix(base) {
                Some(p) if p.starts_with('/') => under_version(p, root),
                _ => {
                    return Err(format!(
                        "\"{text}\" is not under {}, the Graph version of this run",
                        root.path
                    ))
                }
            }
        }
        Api::Arm => match url.path().strip_prefix(root.path) {
            Some(p) if p.is_empty() || p.starts_with('/') => p.to_string(),
            _ => url.path().to_string(),
        },
    };
    Ok(match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    })
}

/// A Graph root's endpoint path and version (`{path}/{version}`).
fn graph_root(root: Root<'_>) -> (&str, &str) {
    root.path.rsplit_once('/').unwrap_or(("", root.path))
}

/// A Graph path as Invoke-MgGraphRequest takes it (`v1.0/users/x`,
/// `/beta/me`, `/users/x`), relative to the run's version: the run's own
/// version goes; another stays in front (`/beta/me`), and the request
/// travels in a batch of that version ([`crate::dialect::graph::version_of`]).
fn under_version(path: &str, root: Root<'_>) -> String {
    let (_, run) = graph_root(root);
    match graph::version_of(path) {
        Some((asked, rest)) if asked.eq_ignore_ascii_case(run) => match rest {
            "" => "/".to_string(),
            r if r.starts_with('?') => format!("/{r}"),
            r => r.to_string(),
        },
        Some((asked, rest)) => format!("/{asked}{rest}"),
        None => path.to_string(),
    }
}

fn relative_path(text: &str, api: Api) -> Result<String, String> {
    if text.starts_with("//") {
        return Err(format!("\"{text}\" is neither a path nor an absolute URL"));
    }
    if text.starts_with('/') {
        return Ok(text.to_string());
    }
    if api == Api::Graph {
        return Ok(format!("/{text}"));
    }
    Err(format!(
        "\"{text}\" is neither a path starting with '/' nor an absolute URL"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_is_percent_encoded_once() {
        assert_eq!(
            encode_url("/users/josé@contoso.com?$filter=city eq 'Zürich'"),
            "/users/jos%C3%A9@contoso.com?$filter=city%20eq%20'Z%C3%BCrich'"
        );
        assert_eq!(
            encode_url("/a%20b/%E2%82%AC?x=%25"),
            "/a%20b/%E2%82%AC?x=%25"
        );
        let once = encode_url("/sites/€/π");
        assert_eq!(
            (once.as_str(), encode_url(&once)),
            ("/sites/%E2%82%AC/%CF%80", once.clone())
        );
        let root = Root {
            api: Api::Graph,
            endpoint: &Url::parse("https://g.test").unwrap(),
            path: "/v1.0",
        };
        assert_eq!(
            relative_url("users/Ærø", root).unwrap(),
            "/users/%C3%86r%C3%B8"
        );
    }

    #[test]
    fn http_only_on_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9/",
            "https://example.com/",
        ] {
            parse_endpoint(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "https://h/?a=b",
            "https://u:p@h",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            parse_endpoint("http://127.0.0.1:8/").unwrap().as_str(),
            "http://127.0.0.1:8/"
        );
    }

    #[test]
    fn same_origin_checks_scheme_host_and_port() {
        let e = parse_endpoint("http://127.0.0.1:8080").unwrap();
        let same = |u: &str| is_same_origin(&e, &Url::parse(u).unwrap());
        assert!(same("http://127.0.0.1:8080/subscriptions?a=1"));
        assert!(!same("http://127.0.0.1:8081/x"));
        assert!(!same("https://127.0.0.1:8080/x"));
        assert!(!same("http://evil.example/x"));
    }

    #[test]
    fn relative_urls() {
        let e = parse_endpoint("https://graph.microsoft.com").unwrap();
        let g = Root {
            api: Api::Graph,
            endpoint: &e,
            path: "/v1.0",
        };
        let a = Root {
            api: Api::Arm,
            endpoint: &e,
            path: "",
        };
        let table: [(Root, &str, Result<&str, &str>); 15] = [
            (g, "me/messages", Ok("/me/messages")),
            (g, "v1.0/users/x", Ok("/users/x")),
            (g, "/V1.0/users/x?$select=id", Ok("/users/x?$select=id")),
            // Another version stays in front: its batch goes to that version.
            (g, "/beta/users/x", Ok("/beta/users/x")),
            (g, "BETA/me?$select=id", Ok("/beta/me?$select=id")),
            (g, "/v1.0?$x=1", Ok("/?$x=1")),
            (g, "/users/beta", Ok("/users/beta")),
            (
                g,
                "https://graph.microsoft.com/v1.0/users/x",
                Ok("/users/x"),
            ),
            (
                g,
                "https://graph.microsoft.com/v1.0/users?$top=1",
                Ok("/users?$top=1"),
            ),
            (g, "https://graph.microsoft.com/beta/me", Ok("/beta/me")),
            (
                g,
                "https://evil.example/v1.0/me",
                Err("not on the endpoint"),
            ),
            (a, "relative", Err("neither a path starting with '/'")),
            (a, "//host/x", Err("neither a path nor")),
            (
                a,
                "{{rg.body.id}}?api-version=1",
                Ok("{{rg.body.id}}?api-version=1"),
            ),
            (a, " ", Err("is empty")),
        ];
        for (root, text, want) in table {
            match (relative_url(text, root), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{text}"),
                (Err(got), Err(w)) => assert!(got.contains(w), "{text}: {got}"),
                (got, w) => panic!("{text}: got {got:?}, want {w:?}"),
            }
        }
    }
}
