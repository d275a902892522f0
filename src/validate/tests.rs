//! Unit tests of the validate suites against the in-memory disk and tape.
