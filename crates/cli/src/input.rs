//! Reading requests for `azbatch run`: one JSON request per line, handed on
//! as each line is read (so a run starts before its input ends), or a JSON
//! array, read whole. Errors say which line (and which request) is at fault.

use std::io::BufRead;

use serde_json::Value;

/// One request as read, with where it came from.
#[derive(Debug)]
pub struct Read {
    /// 1-based line of the input where it starts.
    pub line: usize,
    /// The request's JSON.
    pub json: Value,
}

/// Reads requests from `reader` and hands each to `each` as soon as it is
/// read; stops at the first error (the input's or the one `each` returns).
/// Returns how many were handed on.
pub fn read_each(
    mut reader: impl BufRead,
    mut each: impl FnMut(Read) -> Result<(), String>,
) -> Result<usize, String> {
    skip_byte_order_mark(&mut reader)?;
    let (mut line, mut line_no, mut count) = (String::new(), 0, 0);
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("line {}: cannot read: {e}", line_no + 1))?;
        if n == 0 {
            return Ok(count);
        }
        line_no += 1;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if count == 0 && t.starts_with('[') {
            // An array: read whole; the lines before it keep the numbering.
            let mut text = "\n".repeat(line_no - 1) + &line;
            reader
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read: {e}"))?;
            for r in parse_array(&text)? {
                each(r)?;
                count += 1;
            }
            return Ok(count);
        }
        let json: Value = serde_json::from_str(t).map_err(|e| not_json(line_no, t, &e))?;
        if !json.is_object() && !json.is_string() {
            return Err(format!(
                "line {line_no}: a request must be a JSON object (or a URL string)"
            ));
        }
        each(Read {
            line: line_no,
            json,
        })?;
        count += 1;
    }
}

/// Line `line_no` (`text`) is not JSON: one position (the column; the line
/// is the input's), and for what looks like a bare URL, the fix.
fn not_json(line_no: usize, text: &str, e: &serde_json::Error) -> String {
    let e = e.to_string();
    let why = match e.rsplit_once(" at line 1 column ") {
        Some((head, column)) => format!("{head} (column {column})"),
        None => e,
    };
    let hint = if text.starts_with('/') || text.starts_with("http") {
        format!("; each line is a JSON object with a \"url\", or a JSON string: \"{text}\"")
    } else {
        String::new()
    };
    format!("line {line_no}: not valid JSON: {why}{hint}")
}

/// Skips a UTF-8 byte order mark (Windows PowerShell 5.1's `Out-File` and
/// `Set-Content -Encoding UTF8` write one); refuses UTF-16, saying how to
/// convert it.
fn skip_byte_order_mark(reader: &mut impl BufRead) -> Result<(), String> {
    let head = reader
        .fill_buf()
        .map_err(|e| format!("line 1: cannot read: {e}"))?;
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        reader.consume(3);
    } else if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err(
            "the input is UTF-16; AzBatch reads UTF-8 (in PowerShell: Out-File -Encoding utf8, \
                    or iconv -f UTF-16 -t UTF-8)"
                .into(),
        );
    }
    Ok(())
}

/// Parses the whole input.
#[cfg(test)]
fn parse(text: &str) -> Result<Vec<Read>, String> {
    let mut out = vec![];
    read_each(text.as_bytes(), |r| {
        out.push(r);
        Ok(())
    })?;
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
        let r = parse("\n\n[\"/a\",\n\"/b\"]").unwrap();
        assert_eq!(r.iter().map(|r| r.line).collect::<Vec<_>>(), [3, 4]);
    }

    #[test]
    fn a_utf8_byte_order_mark_is_skipped_and_utf16_is_named() {
        let r = parse("\u{feff}{\"url\":\"/a\"}\n\"/b\"\n").unwrap();
        assert_eq!(r.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(r[0].json["url"], "/a");
        let r = parse("\u{feff}[\"/a\"]").unwrap();
        assert_eq!(r.len(), 1, "an array after the mark too");
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("\"/a\"".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let e = read_each(&utf16[..], |_| Ok(())).unwrap_err();
        assert!(e.contains("UTF-16") && e.contains("-Encoding utf8"), "{e}");
    }

    #[test]
    fn lines_are_handed_on_as_they_are_read() {
        // A reader that fails after two lines: both were handed on before.
        struct TwoLines(usize);
        impl std::io::Read for TwoLines {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.0 += 1;
                match self.0 {
                    1 => Ok(std::io::Read::read(&mut &b"\"/a\"\n"[..], buf)?),
                    2 => Ok(std::io::Read::read(&mut &b"{\"url\":\"/b\"}\n"[..], buf)?),
                    _ => Err(std::io::Error::other("the pipe broke")),
                }
            }
        }
        let mut seen = vec![];
        let e = read_each(std::io::BufReader::new(TwoLines(0)), |r| {
            seen.push(r.line);
            Ok(())
        })
        .unwrap_err();
        assert_eq!(seen, [1, 2]);
        assert!(e.starts_with("line 3: cannot read: the pipe broke"), "{e}");
        let stop = read_each("\"/a\"\n\"/b\"\n".as_bytes(), |r| {
            Err(format!("no {}", r.line))
        });
        assert_eq!(
            stop,
            Err("no 1".to_string()),
            "an error from the receiver stops the reading"
        );
    }
}
