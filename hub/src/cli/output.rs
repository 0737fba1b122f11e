//! How `mykey-hub`'s read commands print: a [`Record`] per thing, shown as
//! a table (lists), as `field: value` lines (one thing), or as JSON
//! (`--json`) from the same record, so text and JSON never disagree.
//! Times go in through [`Record::time`] and come out in JST ISO form
//! ([`iso_jst`]), never as epoch milliseconds.

use crate::economy::calendar::iso_jst;
use mykey_sync_proto::UnixMillis;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// One thing's fields, in the order a table shows them, and its nested
/// lists (a `show`'s cards, facilities, statements).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record(Vec<(&'static str, Value)>, Vec<(&'static str, Vec<Record>)>);

impl Record {
    /// An empty record.
    pub fn new() -> Record {
        Record::default()
    }

    /// Adds a field.
    pub fn field(mut self, name: &'static str, value: impl Into<Value>) -> Record {
        self.0.push((name, value.into()));
        self
    }

    /// Adds a time, in JST ISO form.
    pub fn time(self, name: &'static str, t: UnixMillis) -> Record {
        self.field(name, iso_jst(t))
    }

    /// Adds a time that may be absent (`null` in JSON, `-` in a table).
    pub fn opt_time(self, name: &'static str, t: Option<UnixMillis>) -> Record {
        self.field(name, t.map(iso_jst))
    }

    /// Adds a list of records (a `show`'s cards, facilities, statements).
    pub fn list(mut self, name: &'static str, items: Vec<Record>) -> Record {
        self.1.push((name, items));
        self
    }

    /// The record as a JSON object.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.0 {
            m.insert((*k).to_owned(), v.clone());
        }
        for (k, items) in &self.1 {
            let items = items.iter().map(Record::to_json).collect();
            m.insert((*k).to_owned(), Value::Array(items));
        }
        Value::Object(m)
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// A value as a table cell: strings bare, `null` as `-`, lists comma-joined.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Records as a table: a header line of field names, then one line per
/// record, columns padded to their widest cell (nested lists left out).
pub fn table(records: &[Record]) -> String {
    let Some(first) = records.first() else {
        return String::new();
    };
    let names: Vec<&str> = first.0.iter().map(|(k, _)| *k).collect();
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            names
                .iter()
                .map(|n| r.get(n).map_or_else(|| "-".to_owned(), cell))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([n.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(c.chars().count());
                let _ = write!(l, "{c}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(names.clone());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// One record as `field: value` lines; nested lists follow as indented tables.
pub fn detail(record: &Record) -> String {
    let width = record.0.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in &record.0 {
        let _ = writeln!(out, "{k:<width$}  {}", cell(v));
    }
    for (k, items) in &record.1 {
        if items.is_empty() {
            let _ = writeln!(out, "{k}: none");
            continue;
        }
        let _ = writeln!(out, "{k}:");
        for l in table(items).lines() {
            let _ = writeln!(out, "  {l}");
        }
    }
    out
}

/// Prints a list: a JSON array with `json`, else a table, or `empty` when
/// there is nothing (so a person learns what to do next).
pub fn print_list(json: bool, records: &[Record], empty: &str) {
    if json {
        let items: Vec<Value> = records.iter().map(Record::to_json).collect();
        println!("{}", pretty(&Value::Array(items)));
    } else if records.is_empty() {
        println!("{empty}");
    } else {
        print!("{}", table(records));
    }
}

/// Prints one thing: a JSON object with `json`, else its fields.
pub fn print_one(json: bool, record: &Record) {
    if json {
        println!("{}", pretty(&record.to_json()));
    } else {
        print!("{}", detail(record));
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_pads_columns_and_json_shares_the_fields() {
        let rows = vec![
            Record::new()
                .field("id", "A1")
                .field("points", 5)
                .time("created_at", UnixMillis(0)),
            Record::new()
                .field("id", "A12")
                .field("points", Value::Null)
                .opt_time("created_at", None),
        ];
        assert_eq!(
            table(&rows),
            "id   points  created_at\n\
             A1   5       1970-01-01T09:00:00+09:00\n\
             A12  -       -\n"
        );
        assert_eq!(
            rows[0].to_json(),
            serde_json::json!({"id": "A1", "points": 5, "created_at": "1970-01-01T09:00:00+09:00"})
        );
        let one = rows[0]
            .clone()
            .list("cards", vec![Record::new().field("card", "ab12cd34")]);
        assert_eq!(one.to_json()["cards"][0]["card"], "ab12cd34");
        let text = detail(&one);
        assert!(text.starts_with("id          A1\n"), "{text}");
        assert!(text.contains("cards:\n  card\n  ab12cd34\n"), "{text}");
        assert_eq!(table(&[]), "");
    }
}
