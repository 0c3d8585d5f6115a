//! The one `bindgen!` of the host: the `runtime` world of `wit/`, which
//! imports `host` and exports both the typed and the flat transform.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "runtime",
    // A batch is lent to the guest as it lies in the host's memory: no
    // owned copy to build before the call copies it into the guest.
    ownership: Borrowing {
        duplicate_if_necessary: true
    },
});

pub use self::wasmpipe::transform::host;
pub use self::wasmpipe::transform::types;
pub use exports::wasmpipe::transform::flat_transform as flat;
pub use exports::wasmpipe::transform::typed_transform as typed;

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.0";
/// Export names of the two worlds a plugin may implement.
pub const FLAT_EXPORT: &str = "wasmpipe:transform/flat-transform@0.1.0";
pub const TYPED_EXPORT: &str = "wasmpipe:transform/typed-transform@0.1.0";
