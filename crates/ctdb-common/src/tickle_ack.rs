//! Tickle ACKs: after a node takes a public address over, its recovery daemon sends
//! each client connection the address's tickle list names (`ctdb_recoverd::tickles`),
//! and `ctdb tickle` sends one connection, a bare TCP ACK
//! from the address, sequence and acknowledgement numbers 0 (window 1234, as
//! Samba's). The client's stack answers with an ACK of its own, which reaches this
//! node; no socket here knows the connection, so the kernel resets it, and the client
//! reconnects at once instead of waiting for its retransmissions to time out.
//!
//! The segment goes on a raw socket bound to the public address (the kernel writes
//! the IP header); that needs CAP_NET_RAW, which a node that moves addresses has.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Bytes of a TCP header without options.
const TCP_HEADER: usize = 20;

/// The window Samba's tickles carry.
const WINDOW: u16 = 1234;

/// The TCP segment of a tickle ACK from `from` (the public address and the server's
/// port) to `to` (the client), checksum included.
pub fn segment(from: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let mut tcp = vec![0u8; TCP_HEADER];
    tcp[0..2].copy_from_slice(&from.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&to.port().to_be_bytes());
    // Sequence and acknowledgement numbers stay 0.
    tcp[12] = (TCP_HEADER as u8 / 4) << 4;
    tcp[13] = 0x10; // ACK
    tcp[14..16].copy_from_slice(&WINDOW.to_be_bytes());
    let sum = checksum(from.ip(), to.ip(), &tcp);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    tcp
}

/// The TCP checksum of `tcp` between `src` and `dst` (the pseudo-header of IPv4 or
/// IPv6, then the segment).
pub fn checksum(src: IpAddr, dst: IpAddr, tcp: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        }
        _ => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            pseudo.extend_from_slice(&v6(src).octets());
            pseudo.extend_from_slice(&v6(dst).octets());
            pseudo.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 6]);
        }
    }
    let mut sum: u32 = 0;
    for chunk in pseudo.chunks(2).chain(tcp.chunks(2)) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends one tickle ACK from `from` to `to`.
pub fn send(from: SocketAddr, to: SocketAddr) -> io::Result<()> {
    let domain = if from.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::RAW, Some(Protocol::TCP))?;
    socket.bind(&SocketAddr::new(from.ip(), 0).into())?;
    socket.send_to(&segment(from, to), &SocketAddr::new(to.ip(), 0).into())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tickle_is_a_bare_ack_with_a_valid_checksum() {
        let from: SocketAddr = "10.0.0.1:445".parse().unwrap();
        let to: SocketAddr = "192.168.1.5:40000".parse().unwrap();
        let tcp = segment(from, to);
        assert_eq!(tcp.len(), 20);
        assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), 445);
        assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), 40000);
        assert_eq!(&tcp[4..12], &[0; 8], "seq and ack 0");
        assert_eq!((tcp[12], tcp[13]), (0x50, 0x10));
        assert_eq!(u16::from_be_bytes([tcp[14], tcp[15]]), 1234);
        // Summing with the checksum in place gives 0 (all ones, complemented).
        assert_eq!(checksum(from.ip(), to.ip(), &tcp), 0);
        let from6: SocketAddr = "[fd00::1]:445".parse().unwrap();
        let to6: SocketAddr = "[fd00::5]:40000".parse().unwrap();
        let tcp6 = segment(from6, to6);
        assert_eq!(checksum(from6.ip(), to6.ip(), &tcp6), 0);
    }

    #[test]
    fn a_known_checksum() {
        // Worked by hand: the pseudo-header and header words of 10.0.0.1:445 ->
        // 10.0.0.2:1000, ACK, window 1234, sum to 0x6EA4 before the complement.
        let tcp = segment(
            "10.0.0.1:445".parse().unwrap(),
            "10.0.0.2:1000".parse().unwrap(),
        );
        assert_eq!(u16::from_be_bytes([tcp[16], tcp[17]]), !0x6EA4);
    }
}
