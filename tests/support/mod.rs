//! Shared test helpers.

#![allow(dead_code)]

pub mod aws_model;
pub mod http;
pub mod moto;
pub mod prism;
pub mod run;
