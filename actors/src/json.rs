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

/// Integers that always fit in `i64`.
macro_rules! from_small_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Json {
            fn from(n: $t) -> Self {
                Json::Int(i64::from(n))
            }
        }
    )*};
}
from_small_int!(i8, i16, i32, u8, u16, u32);

impl From<u64> for Json {
    /// `Int` when it fits in `i64`, else `UInt`.
    fn from(n: u64) -> Self {
        i64::try_from(n).map_or(Json::UInt(n), Json::Int)
    }
}

impl From<usize> for Json {
    fn from(n: usize) -> Self {
        Json::from(n as u64)
    }
}

impl From<isize> for Json {
    fn from(n: isize) -> Self {
        Json::Int(n as i64)
    }
}

impl From<f32> for Json {
    fn from(n: f32) -> Self {
        Json::Float(f64::from(n))
    }
}

impl From<&String> for Json {
    fn from(s: &String) -> Self {
        Json::String(s.clone())
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    /// `None` is `null`.
    fn from(v: Option<T>) -> Self {
        v.map_or(Json::Null, Into::into)
    }
}

impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Self {
        Json::Array(v.into_iter().map(Into::into).collect())
    }
}

impl From<JsonObject> for Json {
    fn from(o: JsonObject) -> Self {
        Json::Object(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_integer_type_and_common_containers_convert() {
        let i: usize = 7;
        let spec = crate::RunSpec::new("x")
            .param("usize", i)
            .param("u32", 3u32)
            .param("i32", -3i32)
            .param("u8", 255u8)
            .param("literal", 640)
            .param("huge", u64::MAX)
            .param("float", 1.5f32)
            .param("none", None::<u32>)
            .param("list", vec![1u16, 2]);
        let p = &spec.params;
        assert_eq!(p["usize"], Json::Int(7));
        assert_eq!(p["u32"], Json::Int(3));
        assert_eq!(p["i32"], Json::Int(-3));
        assert_eq!(p["u8"], Json::Int(255));
        assert_eq!(p["literal"], Json::Int(640));
        assert_eq!(p["huge"], Json::UInt(u64::MAX));
        assert_eq!(p["float"], Json::Float(1.5));
        assert_eq!(p["none"], Json::Null);
        assert_eq!(p["list"], Json::Array(vec![Json::Int(1), Json::Int(2)]));
    }

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
