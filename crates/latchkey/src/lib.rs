//! The `latchkey` command's library half: how it finds credentials like the AWS CLI and how it
//! talks to the signed share API, for the command itself and for the benchmarks.

pub mod api;
pub mod aws_env;
