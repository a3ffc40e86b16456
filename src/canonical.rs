//! Canonical JSON: object keys sorted, no insignificant whitespace in the compact form, two-space
//! indentation and a trailing newline in the pretty form. Digests of configs, manifests and lock
//! entries are computed over the compact form, so they depend on content only.

use serde::Serialize;
use serde_json::{Map, Value};

/// `value` with every object's keys sorted.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Value {
    sort(serde_json::to_value(value).expect("galley's types serialize to JSON"))
}

fn sort(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort).collect()),
        other => other,
    }
}

/// Compact canonical bytes, for hashing and for OCI blobs.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(&to_value(value)).expect("a JSON value serializes")
}

/// Pretty canonical text without a trailing newline.
pub fn to_string_pretty<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string_pretty(&to_value(value)).expect("a JSON value serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_depth() {
        let v = serde_json::json!({"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": null}});
        assert_eq!(String::from_utf8(to_vec(&v)).unwrap(), r#"{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}"#);
    }
}
