//! The one `bindgen!` of the host: a world of its own that imports what
//! both versions of the `wasmpipe:transform` package offer and exports both
//! versions' typed and flat transforms, so one linker loads a plugin of
//! either version.
//!
//! 0.2.0's types are mapped onto 0.1.0's Rust types (`with`): a batch and
//! its output are the same Rust values whichever version a plugin speaks,
//! and one instance code path serves both.

wasmtime::component::bindgen!({
    path: ["../wit/v0.1.0", "../wit"],
    inline: "
        package wasmpipe:runtime;

        world runtime {
            import wasmpipe:transform/host@0.1.0;
            import wasmpipe:transform/host@0.2.0;
            import wasmpipe:transform/state@0.2.0;
            export wasmpipe:transform/typed-transform@0.1.0;
            export wasmpipe:transform/flat-transform@0.1.0;
            export wasmpipe:transform/typed-transform@0.2.0;
            export wasmpipe:transform/flat-transform@0.2.0;
        }
    ",
    world: "wasmpipe:runtime/runtime",
    // A batch is lent to the guest as it lies in the host's memory: no
    // owned copy to build before the call copies it into the guest.
    ownership: Borrowing {
        duplicate_if_necessary: true
    },
    with: {
        "wasmpipe:transform/types@0.2.0": types_v2,
    },
});

pub use self::wasmpipe::transform0_1_0::host;
pub use self::wasmpipe::transform0_1_0::types;
pub use self::wasmpipe::transform0_2_0::host as host_v2;
pub use self::wasmpipe::transform0_2_0::state;
pub use exports::wasmpipe::transform0_1_0::flat_transform as flat;
pub use exports::wasmpipe::transform0_1_0::typed_transform as typed;
pub use exports::wasmpipe::transform0_2_0::flat_transform as flat_v2;
pub use exports::wasmpipe::transform0_2_0::typed_transform as typed_v2;

/// 0.2.0's `types`, as the Rust types of 0.1.0's: the two versions lay a
/// record, a batch and an output out the same way.
pub mod types_v2 {
    pub use super::flat::{Batch, Output};
    pub use super::types::*;
}

/// The WIT package versions this host runs, newest first.
pub const WIT_VERSIONS: [&str; 2] = ["0.2.0", "0.1.0"];
/// The newest: what new plugins are built against.
pub const WIT_VERSION: &str = WIT_VERSIONS[0];

/// Export names of the worlds a plugin may implement, newest first.
pub const FLAT_EXPORTS: [&str; 2] = [
    "wasmpipe:transform/flat-transform@0.2.0",
    "wasmpipe:transform/flat-transform@0.1.0",
];
pub const TYPED_EXPORTS: [&str; 2] = [
    "wasmpipe:transform/typed-transform@0.2.0",
    "wasmpipe:transform/typed-transform@0.1.0",
];
/// The import of a plugin that keeps state.
pub const STATE_IMPORT: &str = "wasmpipe:transform/state@0.2.0";
