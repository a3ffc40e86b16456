//! The canonical text of a lock: sorted keys, two-space indentation, LF, trailing newline, and a
//! blank line between the entries of `images` and `sandboxes` so that git merges changes to
//! different entries without conflict.

use serde_json::Value;

use super::Lock;

pub fn to_text(lock: &Lock) -> String {
    let value = crate::canonical::to_value(lock);
    let mut out = String::new();
    write(&value, 0, false, &mut out);
    out.push('\n');
    out
}

fn write(value: &Value, depth: usize, spaced: bool, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            let n = map.len();
            for (i, (k, v)) in map.iter().enumerate() {
                indent(depth + 1, out);
                out.push_str(&serde_json::to_string(k).expect("a string serializes"));
                out.push_str(": ");
                let spaced_child = depth == 0 && (k == "images" || k == "sandboxes");
                write(v, depth + 1, spaced_child, out);
                if i + 1 < n {
                    out.push(',');
                }
                out.push('\n');
                if spaced && i + 1 < n {
                    out.push('\n');
                }
            }
            indent(depth, out);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            // Short arrays of scalars stay on one line; the rest get one element per line.
            let scalars = items.iter().all(|v| !v.is_object() && !v.is_array());
            let parts: Vec<String> =
                items.iter().map(|v| serde_json::to_string(v).expect("a value serializes")).collect();
            let inline = format!("[{}]", parts.join(", "));
            if scalars && inline.len() <= 80 {
                out.push_str(&inline);
                return;
            }
            out.push_str("[\n");
            let n = items.len();
            for (i, v) in items.iter().enumerate() {
                indent(depth + 1, out);
                write(v, depth + 1, false, out);
                if i + 1 < n {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(depth, out);
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).expect("a value serializes")),
    }
}

fn indent(depth: usize, out: &mut String) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}
