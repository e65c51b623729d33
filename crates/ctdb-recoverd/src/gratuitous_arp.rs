//! Gratuitous ARP: after this node takes a public address over (and when asked with
//! SEND_GRATUITOUS_ARP, `ctdb gratarp <ip> <iface>`), it tells the segment that the
//! address now lives at its interface's MAC, so switches and clients stop sending to
//! the node that had it. As Samba's, each announcement is an ARP request and an ARP
//! reply, both with the address as sender and target, broadcast; repeated [`REPEAT`]
//! times [`INTERVAL`] apart. An IPv6 address gets unsolicited neighbour advertisements
//! (override flag, the MAC as target link-layer address) to all nodes instead.
//!
//! IPv4 frames go out on a raw packet socket addressed with the interface's own link
//! address (from `getifaddrs`), so no unsafe code builds a `sockaddr_ll`; that needs
//! CAP_NET_RAW, which a node that moves addresses has.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{self, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType};

/// Announcements per address (Samba's CTDB_ARP_REPEAT).
pub const REPEAT: usize = 3;
/// Between announcements (Samba's CTDB_ARP_INTERVAL).
pub const INTERVAL: Duration = Duration::from_secs(1);

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const ARPOP_REQUEST: u16 = 1;
const ARPOP_REPLY: u16 = 2;
/// The shortest Ethernet frame without its checksum.
const MIN_FRAME: usize = 60;

/// The two frames of one IPv4 announcement from `mac`: request, then reply.
pub fn arp_frames(addr: Ipv4Addr, mac: [u8; 6]) -> [Vec<u8>; 2] {
    let frame = |op: u16, target_mac: [u8; 6]| {
        let mut f = Vec::with_capacity(MIN_FRAME);
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
        f.extend_from_slice(&1u16.to_be_bytes()); // Ethernet
        f.extend_from_slice(&ETH_P_IP.to_be_bytes());
        f.extend_from_slice(&[6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&mac);
        f.extend_from_slice(&addr.octets());
        f.extend_from_slice(&target_mac);
        f.extend_from_slice(&addr.octets());
        f.resize(MIN_FRAME, 0);
        f
    };
    [frame(ARPOP_REQUEST, [0; 6]), frame(ARPOP_REPLY, mac)]
}

/// An unsolicited neighbour advertisement of `addr` at `mac` (checksum left to the
/// kernel, which fills it for ICMPv6 raw sockets).
pub fn neighbour_advertisement(addr: Ipv6Addr, mac: [u8; 6]) -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(&[136, 0, 0, 0]); // type, code, checksum
    m.extend_from_slice(&0x2000_0000u32.to_be_bytes()); // override
    m.extend_from_slice(&addr.octets());
    m.extend_from_slice(&[2, 1]); // target link-layer address, 8 bytes
    m.extend_from_slice(&mac);
    m
}

/// The interface's link address (its index and MAC).
fn link_of(iface: &str) -> io::Result<LinkAddr> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(io::Error::from)?;
    for a in addrs {
        if a.interface_name != iface {
            continue;
        }
        if let Some(link) = a.address.as_ref().and_then(|s| s.as_link_addr()) {
            return Ok(*link);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no interface {iface}"),
    ))
}

/// One announcement of `addr` on `iface`.
pub fn send(addr: IpAddr, iface: &str) -> io::Result<()> {
    let link = link_of(iface)?;
    let mac = link.addr().unwrap_or_default();
    match addr {
        IpAddr::V4(v4) => {
            let fd = socket::socket(
                AddressFamily::Packet,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(io::Error::from)?;
            for frame in arp_frames(v4, mac) {
                socket::sendto(fd.as_raw_fd(), &frame, &link, MsgFlags::empty())
                    .map_err(io::Error::from)?;
            }
            Ok(())
        }
        IpAddr::V6(v6) => {
            use socket2::{Domain, Protocol, Socket, Type};
            let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
            s.bind_device(Some(iface.as_bytes()))?;
            s.set_multicast_hops_v6(255)?;
            s.set_multicast_if_v6(link.ifindex() as u32)?;
            let all_nodes = SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, 0);
            s.send_to(&neighbour_advertisement(v6, mac), &all_nodes.into())?;
            Ok(())
        }
    }
}

/// [`REPEAT`] announcements of `addr` on `iface`, [`INTERVAL`] apart; failures are
/// logged (an interface that is not there, no CAP_NET_RAW) and end the run.
pub async fn announce(addr: IpAddr, iface: String) {
    for round in 0..REPEAT {
        if round > 0 {
            tokio::time::sleep(INTERVAL).await;
        }
        if let Err(e) = send(addr, &iface) {
            tracing::info!(%addr, %iface, "gratuitous ARP not sent: {e}");
            return;
        }
    }
    tracing::info!(%addr, %iface, rounds = REPEAT, "gratuitous ARPs sent");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_frames_name_the_address_as_sender_and_target() {
        let mac = [0x02, 0, 0, 0, 0, 0x07];
        let [request, reply] = arp_frames(Ipv4Addr::new(10, 81, 0, 7), mac);
        for (f, op, tha) in [(&request, 1u8, [0u8; 6]), (&reply, 2, mac)] {
            assert_eq!(f.len(), 60);
            assert_eq!(&f[0..6], &[0xff; 6], "broadcast");
            assert_eq!(&f[6..12], &mac);
            assert_eq!(&f[12..14], &[0x08, 0x06]);
            assert_eq!(&f[14..22], &[0, 1, 0x08, 0, 6, 4, 0, op]);
            assert_eq!(&f[22..28], &mac, "sender MAC");
            assert_eq!(&f[28..32], &[10, 81, 0, 7], "sender address");
            assert_eq!(&f[32..38], &tha, "target MAC");
            assert_eq!(&f[38..42], &[10, 81, 0, 7], "target address");
        }
    }

    #[test]
    fn neighbour_advertisement_overrides_with_the_mac() {
        let addr: Ipv6Addr = "fd00::7".parse().expect("address");
        let na = neighbour_advertisement(addr, [2, 0, 0, 0, 0, 7]);
        assert_eq!(na.len(), 32);
        assert_eq!(na[0], 136);
        assert_eq!(&na[4..8], &[0x20, 0, 0, 0]);
        assert_eq!(&na[8..24], &addr.octets());
        assert_eq!(&na[24..32], &[2, 1, 2, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn a_missing_interface_is_an_error() {
        let e = send("10.81.0.7".parse().expect("address"), "nosuchif0").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
