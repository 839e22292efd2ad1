//! How keys, values and records are shown: text for people, JSON for scripts.
//!
//! Keys and values are bytes. Text output shows them with non-printable bytes escaped
//! (`\xff`). JSON output gives `"key"`/`"value"` as strings when they are UTF-8, and
//! `"key_hex"`/`"value_hex"` otherwise, so nothing is lost.

use regatta_proto::mvcc::v1::KeyValue;
use serde_json::{Map, Value, json};

/// Bytes as text, escaping what is not printable ASCII.
pub fn text(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Inserts `name` (UTF-8) or `name_hex` (anything else) into a JSON object.
pub fn put_bytes(object: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => object.insert(name.to_string(), Value::from(s)),
        Err(_) => object.insert(format!("{name}_hex"), Value::from(hex::encode(bytes))),
    };
}

/// One key-value pair as JSON; the value is left out when `with_value` is false.
pub fn kv_json(kv: &KeyValue, with_value: bool) -> Value {
    let mut object = Map::new();
    put_bytes(&mut object, "key", &kv.key);
    if with_value {
        put_bytes(&mut object, "value", &kv.value);
    }
    object.insert("create_revision".into(), json!(kv.create_revision));
    object.insert("mod_revision".into(), json!(kv.mod_revision));
    if kv.expires_at_millis != 0 {
        object.insert("expires_at_millis".into(), json!(kv.expires_at_millis));
    }
    Value::Object(object)
}

/// Prints a JSON document on one line.
pub fn print_json(value: &Value) {
    crate::outln!("{value}");
}

/// Parses a user-supplied key or value: `hex:0aff…` for raw bytes, otherwise the text as is.
pub fn parse_bytes(arg: &str) -> Result<Vec<u8>, String> {
    match arg.strip_prefix("hex:") {
        Some(digits) => {
            if digits.len() % 2 != 0 {
                return Err(format!("{arg:?}: hex needs an even number of digits"));
            }
            (0..digits.len())
                .step_by(2)
                .map(|i| {
                    u8::from_str_radix(&digits[i..i + 2], 16)
                        .map_err(|_| format!("{arg:?}: not a hex digit pair at {i}"))
                })
                .collect()
        }
        None => Ok(arg.as_bytes().to_vec()),
    }
}

/// The smallest key greater than every key starting with `prefix` (empty: no upper bound,
/// which the API spells `"\0"`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_be() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn bytes_parse_as_text_or_hex() {
        assert_eq!(parse_bytes("abc"), Ok(b"abc".to_vec()));
        assert_eq!(parse_bytes("hex:00ff"), Ok(vec![0, 255]));
        assert!(parse_bytes("hex:0").is_err());
        assert!(parse_bytes("hex:zz").is_err());
    }

    #[test]
    fn json_keeps_non_utf8_bytes() {
        let kv = KeyValue {
            key: b"k".to_vec().into(),
            value: vec![0xff].into(),
            create_revision: 1,
            mod_revision: 2,
            expires_at_millis: 0,
        };
        assert_eq!(
            kv_json(&kv, true),
            json!({"key": "k", "value_hex": "ff", "create_revision": 1, "mod_revision": 2})
        );
    }
}
