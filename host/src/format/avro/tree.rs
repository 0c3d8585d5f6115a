//! A plugin's JSON as read for encoding: a tree that borrows its strings
//! from the text where it can and keeps an object's members in order, in a
//! list. serde_json reads it (its nesting limit, its errors); the tree
//! only spares the per-member hashing and copying of `serde_json::Value`,
//! which an output's fields are looked up in once each.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, PartialEq)]
pub enum Tree<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Tree<'a>>),
    /// Members in the order written; a name written twice keeps both, the
    /// last one counting (as serde_json reads it).
    Object(Vec<(Cow<'a, str>, Tree<'a>)>),
}

impl<'a> Tree<'a> {
    /// `text` read as JSON.
    pub fn parse(text: &'a [u8]) -> Result<Tree<'a>, serde_json::Error> {
        serde_json::from_slice(text)
    }

    /// A member of an object (the last of that name), or `None`.
    pub fn get(&self, name: &str) -> Option<&Tree<'a>> {
        match self {
            Tree::Object(members) => members.iter().rev().find(|(k, _)| k == name).map(|m| &m.1),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Tree::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Tree::Int(i) => Some(i),
            Tree::Uint(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Tree::Int(i) => u64::try_from(i).ok(),
            Tree::Uint(u) => Some(u),
            _ => None,
        }
    }

    /// A number as a float, and whether it was written as an integer.
    pub fn as_number(&self) -> Option<(f64, bool)> {
        match *self {
            Tree::Int(i) => Some((i as f64, true)),
            Tree::Uint(u) => Some((u as f64, true)),
            Tree::Float(f) => Some((f, false)),
            _ => None,
        }
    }

    /// A field default from a schema (serde_json's value) as a tree.
    pub fn of(json: &'a Json) -> Tree<'a> {
        match json {
            Json::Null => Tree::Null,
            Json::Bool(b) => Tree::Bool(*b),
            Json::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Tree::Int(i),
                (None, Some(u)) => Tree::Uint(u),
                _ => Tree::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => Tree::Str(Cow::Borrowed(s)),
            Json::Array(items) => Tree::Array(items.iter().map(Tree::of).collect()),
            Json::Object(m) => Tree::Object(
                m.iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Tree::of(v)))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Tree<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E>(self) -> Result<Tree<'de>, E> {
        Ok(Tree::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Tree<'de>, E> {
        Ok(Tree::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Tree<'de>, E> {
        Ok(Tree::Int(i))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Tree<'de>, E> {
        Ok(match i64::try_from(u) {
            Ok(i) => Tree::Int(i),
            Err(_) => Tree::Uint(u),
        })
    }

    fn visit_f64<E>(self, f: f64) -> Result<Tree<'de>, E> {
        Ok(Tree::Float(f))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Tree<'de>, E> {
        Ok(Tree::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Tree<'de>, E> {
        Ok(Tree::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Tree<'de>, E> {
        Ok(Tree::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(Name(name)) = map.next_key()? {
            members.push((name, map.next_value()?));
        }
        Ok(Tree::Object(members))
    }
}

/// A member's name, borrowed from the text unless it has escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

/// Written back as JSON (for error messages).
impl Serialize for Tree<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tree::Null => s.serialize_unit(),
            Tree::Bool(b) => s.serialize_bool(*b),
            Tree::Int(i) => s.serialize_i64(*i),
            Tree::Uint(u) => s.serialize_u64(*u),
            Tree::Float(f) => s.serialize_f64(*f),
            Tree::Str(t) => s.serialize_str(t),
            Tree::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Tree::Object(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_borrowed_unless_escaped_and_the_last_member_counts() {
        let text =
            br#"{"a":"plain","b":"esc\"aped","a":[1,-2,18446744073709551615,0.5,true,null]}"#;
        let tree = Tree::parse(text).unwrap();
        let Tree::Object(members) = &tree else {
            panic!("{tree:?}")
        };
        assert!(matches!(&members[0].1, Tree::Str(Cow::Borrowed("plain"))));
        assert!(matches!(&members[1].1, Tree::Str(Cow::Owned(s)) if s == "esc\"aped"));
        assert_eq!(
            tree.get("a"),
            Some(&Tree::Array(vec![
                Tree::Int(1),
                Tree::Int(-2),
                Tree::Uint(u64::MAX),
                Tree::Float(0.5),
                Tree::Bool(true),
                Tree::Null
            ]))
        );
        assert_eq!(
            serde_json::to_string(&tree).unwrap(),
            std::str::from_utf8(text).unwrap()
        );
    }

    #[test]
    fn nesting_past_serde_jsons_limit_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        let e = Tree::parse(deep.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("recursion limit"), "{e}");
    }
}
