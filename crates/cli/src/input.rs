//! Reading requests for `azbatch run`: a JSON array, or one JSON request per
//! line. Errors say which line (and which request) is at fault.

use serde_json::Value;

/// One request as read, with where it came from.
#[derive(Debug)]
pub struct Read {
    /// 1-based line of the input where it starts.
    pub line: usize,
    /// The request's JSON.
    pub json: Value,
}

/// Parses the whole input.
pub fn parse(text: &str) -> Result<Vec<Read>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return parse_array(text);
    }
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let json: Value = serde_json::from_str(line)
            .map_err(|e| format!("line {line_no}: not valid JSON: {e}"))?;
        if !json.is_object() && !json.is_string() {
            return Err(format!(
                "line {line_no}: a request must be a JSON object (or a URL string)"
            ));
        }
        out.push(Read {
            line: line_no,
            json,
        });
    }
    Ok(out)
}

fn parse_array(text: &str) -> Result<Vec<Read>, String> {
    let items: Vec<Value> = serde_json::from_str(text)
        .map_err(|e| format!("line {}: not a valid JSON array: {e}", e.line()))?;
    // Where each element starts, for messages: count lines up to each top-level element.
    let starts = element_lines(text);
    items
        .into_iter()
        .enumerate()
        .map(|(i, json)| {
            let line = starts.get(i).copied().unwrap_or(1);
            if !json.is_object() && !json.is_string() {
                return Err(format!(
                    "line {line}: request[{i}] must be a JSON object (or a URL string)"
                ));
            }
            Ok(Read { line, json })
        })
        .collect()
}

/// The line each top-level element of a JSON array starts on.
fn element_lines(text: &str) -> Vec<usize> {
    let (mut depth, mut line, mut in_string, mut escaped) = (0i32, 1usize, false, false);
    let mut starts = vec![];
    let mut expecting = false;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if depth == 1 && expecting && !c.is_whitespace() && c != ']' {
            starts.push(line);
            expecting = false;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                if depth == 1 {
                    expecting = true;
                }
            }
            ']' | '}' => depth -= 1,
            ',' if depth == 1 => expecting = true,
            _ => {}
        }
    }
    starts
}

/// A plain string is a GET of that URL.
pub fn normalize(json: Value) -> Value {
    match json {
        Value::String(url) => serde_json::json!({ "url": url }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_arrays() {
        let r = parse("{\"url\":\"/a\"}\n\n\"/b\"\n").unwrap();
        assert_eq!(r.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 3]);
        let r = parse("[\n  {\"url\": \"/a,[]\"},\n  {\"url\": \"/b\"}\n]").unwrap();
        assert_eq!(r.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(
            parse("{\"url\":\"/a\"}\n{oops\n")
                .unwrap_err()
                .split(':')
                .next(),
            Some("line 2")
        );
        assert!(parse("[\n1\n]")
            .unwrap_err()
            .starts_with("line 2: request[0]"));
        assert!(parse("[{\"url\":1},")
            .unwrap_err()
            .starts_with("line 1: not a valid JSON array"));
    }
}
