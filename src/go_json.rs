//! JSON as Go's `encoding/json` writes it. Go marshals a nil slice or map as
//! `null`, not `[]` or `{}`, and most of what sizeguard reads comes from Go
//! tooling: Docker 25's `index.json` can say `"manifests": null`, a config
//! `"history": null`, the kubelet's summary `"pods": null`. Read strictly,
//! each of those fails a whole document over an empty list.
//!
//! [`from_slice`] reads a document the way Go would read it back: `null`
//! where a sequence or a map is expected is an empty one; `null` where an
//! `Option` is expected stays `None`. It holds at every depth and for types
//! this crate does not own (oci-spec's `ImageIndex`, whose `manifests` is a
//! required list), which per-field attributes could not reach.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{DeserializeOwned, IntoDeserializer, Visitor};
use serde::{Deserializer, forward_to_deserialize_any};
use serde_json::Value;

/// Parses a document, reading Go's `null` for an empty slice or map.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    from_value(serde_json::from_slice(bytes)?)
}

/// [`from_slice`] over a document already parsed.
pub fn from_value<T: DeserializeOwned>(value: Value) -> serde_json::Result<T> {
    T::deserialize(GoValue(value))
}

/// A JSON value read with Go's meaning of `null`.
struct GoValue(Value);

impl<'de> IntoDeserializer<'de, serde_json::Error> for GoValue {
    type Deserializer = GoValue;

    fn into_deserializer(self) -> GoValue {
        self
    }
}

fn empty_seq() -> SeqDeserializer<std::iter::Empty<GoValue>, serde_json::Error> {
    SeqDeserializer::new(std::iter::empty())
}

fn empty_map() -> MapDeserializer<'static, std::iter::Empty<(String, GoValue)>, serde_json::Error> {
    MapDeserializer::new(std::iter::empty())
}

impl<'de> Deserializer<'de> for GoValue {
    type Error = serde_json::Error;

    /// Arrays and objects hand their members on wrapped, so that Go's
    /// `null` is read the same way at every depth.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(GoValue));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(members) => {
                let mut map =
                    MapDeserializer::new(members.into_iter().map(|(k, v)| (k, GoValue(v))));
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_seq(empty_seq()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_map(empty_map()),
            _ => self.deserialize_any(visitor),
        }
    }

    /// A nil pointer to a struct is `null` too: its fields are then all
    /// missing, and the ones that are required say so.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    /// Enums keep serde_json's reading (a string, or an object of one
    /// key); their payloads are not Go lists in any document read here.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Doc {
        list: Vec<u32>,
        map: HashMap<String, String>,
        maybe: Option<Vec<u32>>,
        nested: Vec<Inner>,
        #[serde(default)]
        absent: Vec<u32>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Inner {
        names: Vec<String>,
    }

    #[test]
    fn null_is_an_empty_list_or_map_at_every_depth() {
        let doc: Doc = from_slice(
            br#"{"list":null,"map":null,"maybe":null,"nested":[{"names":null},{"names":["a"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            doc,
            Doc {
                list: vec![],
                map: HashMap::new(),
                maybe: None,
                nested: vec![
                    Inner { names: vec![] },
                    Inner {
                        names: vec!["a".into()]
                    }
                ],
                absent: vec![],
            }
        );
    }

    #[test]
    fn types_it_does_not_own_read_go_nulls_too() {
        let index: oci_spec::image::ImageIndex =
            from_slice(br#"{"schemaVersion":2,"manifests":null}"#).unwrap();
        assert!(index.manifests().is_empty());
        // Strictly read, the same document is refused.
        assert!(
            serde_json::from_slice::<oci_spec::image::ImageIndex>(
                br#"{"schemaVersion":2,"manifests":null}"#
            )
            .is_err()
        );
    }

    #[test]
    fn what_is_wrong_stays_wrong() {
        assert!(from_slice::<Doc>(br#"{"list":"x","map":null,"nested":[]}"#).is_err());
        assert!(
            from_slice::<Inner>(b"null").is_err(),
            "a required field is missing"
        );
        assert!(from_slice::<Vec<u32>>(b"[1,-2]").is_err());
        assert!(from_slice::<Doc>(b"{").is_err());
        let v: Value = from_slice(br#"{"a":[null,1.5,"x",{"b":null}]}"#).unwrap();
        assert_eq!(v, serde_json::json!({"a":[null,1.5,"x",{"b":null}]}));
    }
}
