//! The Avro record the format benches use: 9 fields (a long, strings, a
//! nullable string, a double, a boolean, an enum, a map and a timestamp),
//! about 110 B framed.

pub const USER: &str = r#"{"type":"record","name":"User","namespace":"bench","fields":[
  {"name":"id","type":"long"},{"name":"name","type":"string"},
  {"name":"email","type":["null","string"]},{"name":"country","type":"string"},
  {"name":"amount","type":"double"},{"name":"active","type":"boolean"},
  {"name":"tier","type":{"type":"enum","name":"Tier","symbols":["FREE","PRO"]}},
  {"name":"tags","type":{"type":"map","values":"string"}},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
