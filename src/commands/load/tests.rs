//! Unit tests of the load decisions, against the fake engine (src/engine/fake.rs).
