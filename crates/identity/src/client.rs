//! The client end of a request's connection, as the listener saw it: its address
//! (`aws:SourceIp`) and whether the connection is TLS (`aws:SecureTransport`). The server puts
//! one in every request's extensions; every gate reads its condition keys from there.

use std::net::IpAddr;

use latchkey_policy::RequestContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConnection {
    pub ip: IpAddr,
    /// Over TLS terminated by this server.
    pub secure: bool,
}

impl ClientConnection {
    /// Adds `aws:SourceIp` and `aws:SecureTransport`.
    pub fn insert_keys(&self, context: &mut RequestContext) {
        context.insert("aws:SourceIp", self.ip.to_string());
        context.insert("aws:SecureTransport", if self.secure { "true" } else { "false" });
    }
}
