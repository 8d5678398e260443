//! Reference models for the property suite, written from the contract, independently of the
//! core's transition code.

pub mod connection;
pub mod listener;
