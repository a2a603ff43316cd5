//! No code: the tests in `tests/` run several stages in a row through their libraries, so that
//! the stage crates themselves depend only on library crates.
