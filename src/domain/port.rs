//! A published port: a host address (parsed by `std::net`, so `127.0.0.1` and `::1` compare as
//! addresses, not as text), a host port, a port inside the sandbox and a protocol.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::Invalid;
use crate::diagnostic::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortBinding {
    pub container: u16,
    pub host: u16,
    /// Host address the port is published on.
    #[serde(deserialize_with = "address")]
    pub address: IpAddr,
    pub protocol: Protocol,
}

impl PortBinding {
    /// `address:host`, with an IPv6 address in brackets (the form podman's `--publish` reads).
    pub fn host_socket(&self) -> String {
        match self.address {
            IpAddr::V4(a) => format!("{a}:{}", self.host),
            IpAddr::V6(a) => format!("[{a}]:{}", self.host),
        }
    }
}

/// Parse an address as the schema's `Address` contract reports it.
pub fn parse_address(a: &str) -> Result<IpAddr, Invalid> {
    a.parse().map_err(|_| {
        Invalid::new(Code::InvalidAddress, format!("invalid IP address \"{a}\"")).help("write an address such as \"127.0.0.1\" or \"::1\"")
    })
}

fn address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    parse_address(&String::deserialize(d)?).map_err(Invalid::into_de)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_are_parsed_and_serialize_as_written() {
        let written = json!({ "container": 80, "host": 8080, "address": "::1", "protocol": "tcp" });
        let port: PortBinding = serde_json::from_value(written.clone()).unwrap();
        assert!(port.address.is_loopback());
        assert_eq!(port.host_socket(), "[::1]:8080");
        assert_eq!(serde_json::to_value(&port).unwrap(), written);
        let bad = json!({ "container": 80, "host": 8080, "address": "localhost", "protocol": "tcp" });
        let e = serde_json::from_value::<PortBinding>(bad).unwrap_err().to_string();
        assert_eq!(Invalid::decode(&e).map(|i| i.code), Some(Code::InvalidAddress), "{e}");
    }
}
