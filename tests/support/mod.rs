//! Shared test helpers.

#![allow(dead_code)]

pub mod moto;
pub mod prism;
