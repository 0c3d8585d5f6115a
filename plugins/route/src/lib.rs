//! Sends each record to a topic chosen from a JSON field.
//!
//! Config:
//! - `path`: the field whose value picks the topic, e.g. `region`;
//! - `route.<value>`: the topic for records whose field is `<value>`, e.g.
//!   `route.eu = orders-eu`;
//! - `default`: the topic for any other record (a missing field, a value
//!   with no route, a value that is not JSON); without it, such records go
//!   to the pipeline's output topic.

use plugin_common::{Path, json_value, scalar_text};
use std::collections::HashMap;
use wasmpipe_sdk::{Config, Error, Outputs, Record, Transform};

pub struct Route {
    path: Path,
    routes: HashMap<String, String>,
    default: Option<String>,
}

impl Transform for Route {
    fn init(config: &Config) -> Result<Self, Error> {
        let mut routes = HashMap::new();
        for (key, topic) in config.iter() {
            match key.strip_prefix("route.") {
                Some(value) if !topic.is_empty() => {
                    routes.insert(value.to_owned(), topic.to_owned());
                }
                Some(_) => return Err(Error::msg(format!("'{key}' names no topic"))),
                None if ["path", "default"].contains(&key) => {}
                None => {
                    return Err(Error::msg(format!(
                        "unknown config key '{key}' (known: path, default, route.<value>)"
                    )));
                }
            }
        }
        if routes.is_empty() {
            return Err(Error::msg(
                "add at least one route, e.g. route.eu=orders-eu",
            ));
        }
        Ok(Route {
            path: Path::parse(config.require("path")?)?,
            routes,
            default: config.get("default").map(str::to_owned),
        })
    }

    fn transform(&mut self, record: &Record<'_>, out: &mut Outputs) -> Result<(), Error> {
        let chosen = json_value(record)
            .ok()
            .and_then(|doc| self.path.get(&doc).and_then(scalar_text))
            .and_then(|v| self.routes.get(&v));
        let mut output = record.to_output();
        output.topic = chosen.or(self.default.as_ref()).map(String::as_str);
        out.emit(&output);
        Ok(())
    }
}

wasmpipe_sdk::export!(Route);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmpipe_sdk::testing::{self, TestRecord};

    fn topics(config: &[(&str, &str)], values: &[&str]) -> Vec<Option<String>> {
        let mut p: Route = testing::init(config).unwrap();
        let records: Vec<_> = values.iter().map(|v| TestRecord::new().value(v)).collect();
        testing::run(&mut p, &records)
            .into_iter()
            .map(|r| r.unwrap().remove(0).topic)
            .collect()
    }

    #[test]
    fn routes_by_field_with_a_default() {
        let config = [
            ("path", "r"),
            ("route.eu", "t-eu"),
            ("route.1", "t-one"),
            ("default", "t-other"),
        ];
        let got = topics(
            &config,
            &[r#"{"r":"eu"}"#, r#"{"r":1}"#, r#"{"r":"us"}"#, "{}", "x"],
        );
        let want = ["t-eu", "t-one", "t-other", "t-other", "t-other"];
        assert_eq!(got, want.map(|t| Some(t.to_owned())));
    }

    #[test]
    fn without_default_unrouted_records_keep_the_output_topic() {
        assert_eq!(topics(&[("path", "r"), ("route.eu", "t")], &["{}"]), [None]);
    }

    #[test]
    fn config_errors_name_the_fix() {
        let err = |c: &[(&str, &str)]| testing::init::<Route>(c).err().unwrap().to_string();
        assert!(err(&[("path", "r")]).contains("route.eu=orders-eu"));
        assert!(err(&[("path", "r"), ("routes", "x")]).contains("'routes'"));
        assert_eq!(err(&[("route.a", "t")]), "missing config key 'path'");
    }
}
