//! Parts every `mykey-hub` command shares: naming things as listings print
//! them ([`names`]), printing a list, one thing or JSON ([`output`]), and
//! each noun's `list` / `show` read-out ([`lists`]).

pub mod lists;
pub mod names;
pub mod output;
