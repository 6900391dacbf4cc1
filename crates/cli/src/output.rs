//! How `azbatch run` and `azbatch subscriptions` print results: JSON lines
//! (the default, one result per line as each finishes: for pipes, `jq` and
//! scripts), one JSON array, CSV for spreadsheets, or a table for people; and
//! `--select` to keep some fields (`id,status,body.value`: dotted paths, array
//! indexes as numbers). JSON lines stay the default on a terminal too, so a
//! command behaves the same whether or not its output is piped; the table
//! waits for every result (it sizes its columns), the other forms stream.

use azbatch::ItemResult;
use serde_json::Value;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON result per line, as each finishes.
    Jsonl,
    /// One JSON array of every result.
    Json,
    /// CSV with a header row.
    Csv,
    /// An aligned table (printed at the end).
    Table,
}

/// The columns of CSV and table output when `--select` names none.
const DEFAULT_COLUMNS: [&str; 7] = [
    "id",
    "method",
    "url",
    "status",
    "error.code",
    "attempts",
    "error.message",
];

/// Turns results into output bytes, in the chosen form.
pub struct Output {
    format: Format,
    select: Option<Vec<String>>,
    written: usize,
    rows: Vec<Vec<String>>,
}

impl Output {
    /// Output in `format`, keeping the fields `select` names (comma-separated).
    pub fn new(format: Format, select: Option<&str>) -> Output {
        let select = select.map(|s| {
            s.split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect::<Vec<_>>()
        });
        Output {
            format,
            select,
            written: 0,
            rows: vec![],
        }
    }

    fn columns(&self) -> Vec<String> {
        self.select
            .clone()
            .unwrap_or_else(|| DEFAULT_COLUMNS.iter().map(|c| c.to_string()).collect())
    }

    /// What to print for one more result (nothing yet for a table).
    pub fn result(&mut self, r: &ItemResult) -> Vec<u8> {
        let mut out = vec![];
        if self.written == 0 {
            out.extend(self.start());
        }
        self.written += 1;
        match self.format {
            Format::Jsonl | Format::Json => {
                if self.format == Format::Json && self.written > 1 {
                    out.extend(b",\n");
                }
                match &self.select {
                    None => serde_json::to_writer(&mut out, r).expect("results serialize"),
                    Some(fields) => {
                        // In the order asked for (a JSON map would sort them).
                        let v = serde_json::to_value(r).expect("results serialize");
                        out.push(b'{');
                        for (k, f) in fields.iter().enumerate() {
                            if k > 0 {
                                out.push(b',');
                            }
                            serde_json::to_writer(&mut out, f).expect("JSON serializes");
                            out.push(b':');
                            let value = pick(&v, f).unwrap_or(&Value::Null);
                            serde_json::to_writer(&mut out, value).expect("JSON serializes");
                        }
                        out.push(b'}');
                    }
                }
                if self.format == Format::Jsonl {
                    out.push(b'\n');
                }
            }
            Format::Csv => {
                let row = self.cells(r);
                let mut w = csv::Writer::from_writer(&mut out);
                w.write_record(&row).expect("CSV to memory");
                w.flush().expect("CSV to memory");
            }
            Format::Table => self.rows.push(self.cells(r)),
        }
        out
    }

    /// What to print after the last result.
    pub fn end(&mut self) -> Vec<u8> {
        let mut out = vec![];
        if self.written == 0 {
            out.extend(self.start());
        }
        match self.format {
            Format::Json => out.extend(b"\n]\n"),
            Format::Table => {
                let mut t = comfy_table::Table::new();
                t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
                    .set_header(self.columns());
                for row in self.rows.drain(..) {
                    t.add_row(row);
                }
                out.extend(format!("{t}\n").into_bytes());
            }
            Format::Jsonl | Format::Csv => {}
        }
        out
    }

    fn start(&self) -> Vec<u8> {
        match self.format {
            Format::Json => b"[\n".to_vec(),
            Format::Csv => {
                let mut out = vec![];
                let mut w = csv::Writer::from_writer(&mut out);
                w.write_record(self.columns()).expect("CSV to memory");
                w.flush().expect("CSV to memory");
                drop(w);
                out
            }
            Format::Jsonl | Format::Table => vec![],
        }
    }

    /// One cell per column: text as it is, anything else as compact JSON.
    fn cells(&self, r: &ItemResult) -> Vec<String> {
        let v = serde_json::to_value(r).expect("results serialize");
        self.columns()
            .iter()
            .map(|c| match pick(&v, c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            })
            .collect()
    }
}

/// The value at a dotted path (`body.value.0.id`).
fn pick<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |at, key| match at {
        Value::Array(a) => a.get(key.parse::<usize>().ok()?),
        Value::Object(m) => m.get(key),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(id: &str, status: u16, body: Value) -> ItemResult {
        let mut r = ItemResult::no_answer(0, id, 1, azbatch::ErrorInfo::new("x", "y"));
        (r.status, r.error, r.body) = (status, None, body);
        r
    }

    fn text(o: &mut Output, rs: &[ItemResult]) -> String {
        let mut out: Vec<u8> = rs.iter().flat_map(|r| o.result(r)).collect();
        out.extend(o.end());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_and_table_show_the_same_cells() {
        let rs = [
            result(
                "a",
                200,
                json!({"name": "Ada, \"the\" first", "tags": ["x", 2]}),
            ),
            result("b", 404, json!({})),
        ];
        let select = Some("id,status,body.name,body.tags.1,missing");
        let csv = text(&mut Output::new(Format::Csv, select), &rs);
        assert_eq!(csv, "id,status,body.name,body.tags.1,missing\na,200,\"Ada, \"\"the\"\" first\",2,\nb,404,,,\n");
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        let table = text(&mut Output::new(Format::Table, select), &rs);
        for cell in rows.iter().flatten().filter(|c| !c.is_empty()) {
            assert!(table.contains(cell.as_str()), "{cell} in\n{table}");
        }
        assert!(table.lines().next().unwrap().starts_with('┌'), "{table}");
    }

    #[test]
    fn json_forms_and_selection() {
        let rs = [
            result("a", 200, json!({"v": 1})),
            result("b", 201, json!({"v": 2})),
        ];
        let all: Value =
            serde_json::from_str(&text(&mut Output::new(Format::Json, None), &rs)).unwrap();
        assert_eq!(
            (all[0]["id"].as_str(), all[1]["status"].as_u64()),
            (Some("a"), Some(201))
        );
        let empty: Value =
            serde_json::from_str(&text(&mut Output::new(Format::Json, None), &[])).unwrap();
        assert_eq!(empty, json!([]));
        let lines = text(&mut Output::new(Format::Jsonl, Some("id,body.v")), &rs);
        assert_eq!(
            lines, "{\"id\":\"a\",\"body.v\":1}\n{\"id\":\"b\",\"body.v\":2}\n",
            "in the order asked for"
        );
    }
}
