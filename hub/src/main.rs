//! `mykey-hub`: the hub's command line.
fn main() {}
