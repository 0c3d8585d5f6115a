//! The glue between the generated component bindings and [`Transform`].
//! Only compiled for wasm; plugin authors never name anything here.

use crate::{Config, Level, Transform};
use std::any::Any;
use std::cell::RefCell;

pub use wit_bindgen;

#[cfg(not(feature = "typed"))]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "flat-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_bindings",
        default_bindings_module: "wasmpipe_sdk::__private::bindings",
        runtime_path: "wasmpipe_sdk::__private::wit_bindgen::rt",
    });
}

#[cfg(feature = "typed")]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "typed-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_bindings",
        default_bindings_module: "wasmpipe_sdk::__private::bindings",
        runtime_path: "wasmpipe_sdk::__private::wit_bindgen::rt",
    });
}

use bindings::wasmpipe::transform::host;

thread_local! {
    static PLUGIN: RefCell<Option<Box<dyn Any>>> = RefCell::new(None);
}

pub fn init<T: Transform>(config: Vec<(String, String)>) -> Result<(), String> {
    let plugin = T::init(&Config::new(config)).map_err(|e| e.message)?;
    PLUGIN.with(|p| *p.borrow_mut() = Some(Box::new(plugin)));
    Ok(())
}

fn with_plugin<T: Transform, R>(f: impl FnOnce(&mut T) -> R) -> R {
    PLUGIN.with(|p| {
        let mut slot = p.borrow_mut();
        // The host always calls `init` first; a panic here becomes a trap
        // that names the mistake.
        let plugin = slot
            .as_mut()
            .and_then(|p| p.downcast_mut::<T>())
            .expect("wasmpipe: transform called before a successful init");
        f(plugin)
    })
}

pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let level = match level {
        Level::Trace => host::Level::Trace,
        Level::Debug => host::Level::Debug,
        Level::Info => host::Level::Info,
        Level::Warn => host::Level::Warn,
        Level::Error => host::Level::Error,
    };
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    host::log(level, message, &fields);
}

#[cfg(not(feature = "typed"))]
mod world {
    use super::*;
    use bindings::wasmpipe::transform::types as abi;

    pub use abi::{Batch, Output};

    pub fn transform<T: Transform>(batch: Batch) -> Output {
        let batch = wasmpipe_abi::Batch::from_wire(
            batch.data,
            &batch.records,
            &batch.positions,
            &batch.headers,
            batch.topics,
        )
        // A trap with this message is the right answer to a broken host.
        .unwrap_or_else(|e| panic!("wasmpipe: the host sent a malformed batch: {e}"));
        let out = with_plugin::<T, _>(|p| crate::run_batch(p, &batch));
        let mut wire = Output {
            data: Vec::new(),
            records: Vec::new(),
            timestamps: Vec::new(),
            headers: Vec::new(),
            topics: Vec::new(),
            errors: Vec::new(),
        };
        out.encode_index(&mut wire.records, &mut wire.timestamps, &mut wire.headers);
        let (data, topics, errors) = out.into_parts();
        wire.data = data;
        wire.topics = topics;
        wire.errors = errors
            .into_iter()
            .map(|e| abi::RecordError {
                source: e.source,
                message: e.message,
            })
            .collect();
        wire
    }
}

#[cfg(feature = "typed")]
mod world {
    use super::*;
    use bindings::wasmpipe::transform::types as wit;
    use wasmpipe_abi::{RecordParts, TimestampType};

    fn timestamp_type(t: wit::TimestampType) -> TimestampType {
        match t {
            wit::TimestampType::NotAvailable => TimestampType::NotAvailable,
            wit::TimestampType::CreateTime => TimestampType::CreateTime,
            wit::TimestampType::LogAppendTime => TimestampType::LogAppendTime,
        }
    }

    pub type Batch = Vec<wit::Record>;
    pub type Output = Vec<Result<Vec<wit::OutputRecord>, String>>;

    pub fn transform<T: Transform>(records: Batch) -> Output {
        let mut batch = wasmpipe_abi::Batch::default();
        let mut results: Output = vec![Ok(Vec::new()); records.len()];
        for r in &records {
            let parts = RecordParts {
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                timestamp: r.timestamp,
                timestamp_type: timestamp_type(r.timestamp_type),
                topic: &r.topic,
                partition: r.partition,
                offset: r.offset,
            };
            let headers = r
                .headers
                .iter()
                .map(|h| (h.name.as_str(), h.value.as_deref()));
            // A wasm32 guest cannot hold the 4 GiB that would overflow a span.
            batch
                .push_parts(parts, headers)
                .expect("a batch in guest memory fits the flat layout");
        }
        let out = with_plugin::<T, _>(|p| crate::run_batch(p, &batch));
        for o in out.records(&batch) {
            if let Some(Ok(list)) = results.get_mut(o.source as usize) {
                list.push(wit::OutputRecord {
                    key: o.key.map(<[u8]>::to_vec),
                    value: o.value.map(<[u8]>::to_vec),
                    headers: o
                        .headers
                        .iter()
                        .map(|(name, value)| wit::Header {
                            name: name.to_owned(),
                            value: value.map(<[u8]>::to_vec),
                        })
                        .collect(),
                    timestamp: o.timestamp,
                    topic: o.topic.map(str::to_owned),
                });
            }
        }
        for e in out.errors() {
            if let Some(slot) = results.get_mut(e.source as usize) {
                *slot = Err(e.message.clone());
            }
        }
        results
    }
}

pub use world::{Batch, Output, transform};

/// Implements the world's `Guest` trait for `$name` by calling `$plugin`.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_guest {
    ($plugin:ty, $name:ident) => {
        impl $crate::__private::GuestImpl for $name {
            fn init(
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__private::init::<$plugin>(config)
            }

            fn transform(batch: $crate::__private::Batch) -> $crate::__private::Output {
                $crate::__private::transform::<$plugin>(batch)
            }
        }
        $crate::__private::bindings::__export_bindings!($name with_types_in $crate::__private::bindings);
    };
}

#[cfg(not(feature = "typed"))]
pub use bindings::exports::wasmpipe::transform::flat_transform::Guest as GuestImpl;
#[cfg(feature = "typed")]
pub use bindings::exports::wasmpipe::transform::typed_transform::Guest as GuestImpl;
