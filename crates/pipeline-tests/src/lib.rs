//! No code: the tests in `tests/` run several stages in a row through their libraries, so that
//! the stage crates themselves depend only on library crates; `tests/tidy.rs` checks the
//! workspace's own sources (no crate's modules import each other in a circle).
