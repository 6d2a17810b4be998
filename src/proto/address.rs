//! Socket addresses as the roles compare them: an IPv4 address and its IPv4-mapped IPv6 form
//! (what a dual-stack socket reports) are one endpoint, and a datagram claiming to come from
//! our own socket is a forgery.
//!
//! [`OwnAddress`] owns the check every front door makes first: answering a datagram forged
//! with our own address would make a role talk to itself forever (and two roles fed each
//! other's forgeries would loop). It does not own what happens to such a datagram (the
//! roles drop it and log it through their log gate).

use std::net::SocketAddr;

/// `addr` in its canonical form: an IPv4-mapped IPv6 address becomes the IPv4 address.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether two socket addresses are the same endpoint, whichever form each is in.
pub fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    canonical(a) == canonical(b)
}

/// The address a role's socket is bound to, once the binary has said so.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnAddress {
    local: Option<SocketAddr>,
}

impl OwnAddress {
    /// The socket is bound to `local`.
    pub fn set(&mut self, local: SocketAddr) {
        self.local = Some(canonical(local));
    }

    /// Our socket's port, once it is known.
    pub fn port(&self) -> Option<u16> {
        self.local.map(|local| local.port())
    }

    /// Whether `from` is our own socket's address (or, for a wildcard bind, our port on a
    /// loopback address): a datagram claiming it is forged, and a member said to live there
    /// is a lie. Nothing is, before [`OwnAddress::set`].
    pub fn is_own(&self, from: SocketAddr) -> bool {
        let Some(local) = self.local else {
            return false;
        };
        let from = canonical(from);
        from.port() == local.port()
            && (from.ip() == local.ip() || (local.ip().is_unspecified() && from.ip().is_loopback()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn a_mapped_address_is_the_same_endpoint() {
        assert!(same_endpoint(
            addr("192.0.2.1:4000"),
            addr("[::ffff:192.0.2.1]:4000")
        ));
        assert!(!same_endpoint(
            addr("192.0.2.1:4000"),
            addr("192.0.2.1:4001")
        ));
        assert_eq!(canonical(addr("[::ffff:10.0.0.1]:9")), addr("10.0.0.1:9"));
        assert_eq!(canonical(addr("[2001:db8::1]:9")), addr("[2001:db8::1]:9"));
    }

    #[test]
    fn nothing_is_own_before_the_address_is_known() {
        assert!(!OwnAddress::default().is_own(addr("127.0.0.1:4000")));
    }

    #[test]
    fn a_bound_address_is_own_in_either_form() {
        let mut own = OwnAddress::default();
        own.set(addr("192.0.2.1:4000"));
        assert!(own.is_own(addr("192.0.2.1:4000")));
        assert!(own.is_own(addr("[::ffff:192.0.2.1]:4000")));
        assert!(!own.is_own(addr("192.0.2.1:4001")));
        assert!(!own.is_own(addr("127.0.0.1:4000")));
    }

    #[test]
    fn a_wildcard_bind_owns_its_port_on_loopback() {
        let mut own = OwnAddress::default();
        own.set(addr("0.0.0.0:4000"));
        assert!(own.is_own(addr("127.0.0.1:4000")));
        assert!(own.is_own(addr("[::1]:4000")));
        assert!(!own.is_own(addr("192.0.2.1:4000")));
        assert!(!own.is_own(addr("127.0.0.1:4001")));
    }
}
