//! Output shared by every scenario: a human table, then one JSON object as the last line.

use serde_json::{Map, Value};

/// Collects a scenario's figures in order, prints them as a table and as a JSON line.
#[derive(Debug)]
pub struct Report {
    fields: Map<String, Value>,
}

impl Report {
    pub fn new(scenario: &str) -> Self {
        let mut fields = Map::new();
        fields.insert("scenario".into(), Value::from(scenario));
        Self { fields }
    }

    /// Adds one figure; later calls with the same name replace earlier ones.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// Prints the aligned table and then the JSON line.
    pub fn print(&self) {
        let width = self.fields.keys().map(String::len).max().unwrap_or(0);
        for (name, value) in &self.fields {
            println!("{name:<width$}  {value}");
        }
        println!("{}", Value::Object(self.fields.clone()));
    }
}

/// Percentile (0–100) of an ascending-sorted slice; 0 for an empty one.
pub fn percentile(sorted: &[u64], pct: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((pct / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
