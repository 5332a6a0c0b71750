//! [`Json`]: a JSON value the run model can store without depending on `serde_json`.
//!
//! The root crate converts from and to `serde_json::Value` through serde, which works because
//! [`Json`] (de)serialises exactly as the JSON it holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A JSON object: the parameters of a run.
pub type JsonObject = BTreeMap<String, Json>;

/// A JSON value. It serialises as plain JSON (`{"a": [1, true]}`), not as a tagged enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(untagged)]
pub enum Json {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// A non-negative integer above `i64::MAX`.
    UInt(u64),
    /// Any other number.
    Float(f64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object with keys in sorted order.
    Object(JsonObject),
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Json::String(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Self {
        Json::String(s)
    }
}

impl From<i64> for Json {
    fn from(n: i64) -> Self {
        Json::Int(n)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Json::Bool(b)
    }
}

impl From<f64> for Json {
    fn from(n: f64) -> Self {
        Json::Float(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_serde_json_as_plain_json() {
        let text = r#"{"a":[1,true,null,"x",2.5,18446744073709551615],"b":{"c":-3}}"#;
        let value: Json = serde_json::from_str(text).expect("valid json");
        assert_eq!(serde_json::to_string(&value).expect("serialises"), text);
        let Json::Object(map) = value else {
            panic!("not an object")
        };
        assert_eq!(map["b"], Json::Object([("c".into(), Json::Int(-3))].into()));
    }
}
