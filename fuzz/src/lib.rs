//! Helpers shared by the fuzz targets: structure-aware generators of JSON and text from the bytes
//! libFuzzer hands a target, biased towards the names and values our parsers look for.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Number, Value};

/// A string: one of `pool` most of the time, else arbitrary text (short, any Unicode).
pub fn pick_string(u: &mut Unstructured<'_>, pool: &[&str]) -> Result<String> {
    if !pool.is_empty() && u.ratio(3, 4)? {
        let base = *u.choose(pool)?;
        // Sometimes glue something onto a known value, to walk past prefix/suffix checks.
        if u.ratio(1, 8)? {
            let tail: String = u.arbitrary()?;
            return Ok(format!("{base}{tail}"));
        }
        return Ok(base.to_string());
    }
    let s: String = u.arbitrary()?;
    Ok(s.chars().take(40).collect())
}

/// What [`json_value`] draws from.
pub struct JsonShape<'a> {
    /// Object member names to prefer.
    pub keys: &'a [&'a str],
    /// String values to prefer.
    pub strings: &'a [&'a str],
    /// Deepest nesting generated (objects and arrays).
    pub max_depth: u32,
}

/// An arbitrary JSON value shaped by `shape`, never deeper than `shape.max_depth`.
pub fn json_value(u: &mut Unstructured<'_>, shape: &JsonShape<'_>, depth: u32) -> Result<Value> {
    let leaf_only = depth >= shape.max_depth;
    let choice = if leaf_only { u.int_in_range(0..=5)? } else { u.int_in_range(0..=7)? };
    Ok(match choice {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(match u.int_in_range(0..=3)? {
            0 => Number::from(u.arbitrary::<i32>()?),
            1 => Number::from(u.arbitrary::<i64>()?),
            2 => Number::from(u.arbitrary::<u64>()?),
            _ => Number::from_f64(u.arbitrary::<f64>()?).unwrap_or_else(|| Number::from(0)),
        }),
        3 | 4 | 5 => Value::String(pick_string(u, shape.strings)?),
        6 => {
            let n = u.int_in_range(0..=4)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(json_value(u, shape, depth + 1)?);
            }
            Value::Array(items)
        }
        _ => Value::Object(json_object(u, shape, depth + 1)?),
    })
}

/// An arbitrary JSON object shaped by `shape`.
pub fn json_object(u: &mut Unstructured<'_>, shape: &JsonShape<'_>, depth: u32) -> Result<Map<String, Value>> {
    let n = u.int_in_range(0..=6)?;
    let mut map = Map::new();
    for _ in 0..n {
        let key = pick_string(u, shape.keys)?;
        let value = json_value(u, shape, depth)?;
        map.insert(key, value);
    }
    Ok(map)
}

/// The rest of the input as bytes.
pub fn rest(u: Unstructured<'_>) -> Vec<u8> {
    u.take_rest().to_vec()
}
