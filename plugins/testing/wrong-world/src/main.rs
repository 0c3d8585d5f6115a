//! A WASI command component (`wasi:cli/run`): what a user gets when they
//! build a `bin` crate instead of a plugin. The host must refuse it by name.

fn main() {
    println!("hello from a command, not a transform");
}
