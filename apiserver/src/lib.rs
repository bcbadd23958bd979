//! Capstan's Kubernetes API server.

pub mod convert;
pub mod discovery;
pub mod error;
pub mod fieldcheck;
pub mod fuzzing;
pub mod http;
pub mod http1;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod rawobj;
pub mod registry;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod ssa;
pub mod table;
pub mod tls;
pub mod validation;
