//! `mailroom-plugin-sdk`: what Mailroom provider plugins share, whatever
//! service they speak to. For now: JSON over HTTPS through `wasi:http`
//! ([`http`]). It holds no contract types: each plugin maps these failures
//! to the contract's typed errors in the words of its service.

pub mod http;
