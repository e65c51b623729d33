//! Public IPs, interfaces and TCP connections.

use bytes::BufMut;

use super::get_vec;
use crate::control::node::SockAddr;
use crate::error::{DecodeError, Result};
use crate::wire::{get_cstring, get_fixed_str, put_cstring, put_fixed_str, Reader, Wire};

/// `ctdb_public_ip` (TAKEOVER_IP, RELEASE_IP): pnn and address (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublicIp {
    pub pnn: u32,
    pub addr: SockAddr,
}

impl PublicIp {
    pub const SIZE: usize = 32;
}

impl Wire for PublicIp {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.pnn);
        self.addr.encode(out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            pnn: r.u32()?,
            addr: SockAddr::decode(r)?,
        })
    }
}

/// `ctdb_public_ip_list` / the seed's `ctdb_all_public_ips` (GET_PUBLIC_IPS reply).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicIpList {
    pub ips: Vec<PublicIp>,
}

impl Wire for PublicIpList {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.ips.len() as u32);
        for ip in &self.ips {
            ip.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let num = r.u32()?;
        Ok(Self {
            ips: get_vec(r, num, PublicIp::SIZE)?,
        })
    }
}

/// `CTDB_IFACE_SIZE` (IFNAMSIZ): the name field is two bytes longer.
pub const IFACE_SIZE: usize = 16;

/// `ctdb_iface` (GET_IFACES, SET_IFACE_LINK_STATE): `char name[18]`, uint16
/// link_state, uint32 references (24 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Iface {
    pub name: String,
    /// 1 = up, 0 = down.
    pub link_state: u16,
    pub references: u32,
}

impl Iface {
    pub const SIZE: usize = 24;
}

impl Wire for Iface {
    fn encode<B: BufMut>(&self, out: &mut B) {
        put_fixed_str(out, &self.name, IFACE_SIZE + 2);
        out.put_u16_le(self.link_state);
        out.put_u32_le(self.references);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            name: get_fixed_str(r, IFACE_SIZE + 2)?,
            link_state: r.u16()?,
            references: r.u32()?,
        })
    }
}

/// `ctdb_iface_list` (GET_IFACES reply): uint32 num, then the interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IfaceList {
    pub ifaces: Vec<Iface>,
}

impl Wire for IfaceList {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.ifaces.len() as u32);
        for i in &self.ifaces {
            i.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let num = r.u32()?;
        Ok(Self {
            ifaces: get_vec(r, num, Iface::SIZE)?,
        })
    }
}

/// `ctdb_public_ip_info` (GET_PUBLIC_IP_INFO reply): the public IP, the index of the
/// active interface, then an interface list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicIpInfo {
    pub ip: PublicIp,
    pub active_idx: u32,
    pub ifaces: Vec<Iface>,
}

impl Wire for PublicIpInfo {
    fn encode<B: BufMut>(&self, out: &mut B) {
        self.ip.encode(out);
        out.put_u32_le(self.active_idx);
        out.put_u32_le(self.ifaces.len() as u32);
        for i in &self.ifaces {
            i.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let ip = PublicIp::decode(r)?;
        let active_idx = r.u32()?;
        let num = r.u32()?;
        Ok(Self {
            ip,
            active_idx,
            ifaces: get_vec(r, num, Iface::SIZE)?,
        })
    }
}

/// `ctdb_connection` / the seed's `ctdb_tcp_connection`: source and destination
/// addresses (56 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Connection {
    pub src: SockAddr,
    pub dst: SockAddr,
}

impl Connection {
    pub const SIZE: usize = 56;
}

impl Wire for Connection {
    fn encode<B: BufMut>(&self, out: &mut B) {
        self.src.encode(out);
        self.dst.encode(out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            src: SockAddr::decode(r)?,
            dst: SockAddr::decode(r)?,
        })
    }
}

/// `ctdb_tickle_list` (GET/SET_TCP_TICKLE_LIST): the public address, uint32 num, then
/// the connections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TickleList {
    pub addr: SockAddr,
    pub connections: Vec<Connection>,
}

impl Wire for TickleList {
    fn encode<B: BufMut>(&self, out: &mut B) {
        self.addr.encode(out);
        out.put_u32_le(self.connections.len() as u32);
        for c in &self.connections {
            c.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let addr = SockAddr::decode(r)?;
        let num = r.u32()?;
        Ok(Self {
            addr,
            connections: get_vec(r, num, Connection::SIZE)?,
        })
    }
}

/// `ctdb_addr_info` (ADD_PUBLIC_IP, DEL_PUBLIC_IP, SEND_GRATIOUS_ARP): address, mask
/// bits, uint32 length of the interface name with its NUL (0 = none), the name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddrInfo {
    pub addr: SockAddr,
    /// Netmask bits. Samba's `gratarp` leaves it uninitialised; it is kept as sent.
    pub mask: u32,
    pub iface: Option<String>,
}

impl Wire for AddrInfo {
    fn encode<B: BufMut>(&self, out: &mut B) {
        self.addr.encode(out);
        out.put_u32_le(self.mask);
        match &self.iface {
            Some(name) => {
                out.put_u32_le(name.len() as u32 + 1);
                put_cstring(out, name);
            }
            None => out.put_u32_le(0),
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let addr = SockAddr::decode(r)?;
        let mask = r.u32()?;
        let len = r.u32()? as usize;
        let iface = match len {
            0 => None,
            n => Some(get_cstring(r, n)?),
        };
        Ok(Self { addr, mask, iface })
    }
}

/// The seed's obsolete IPv4-only public IP (`ctdb_public_ipv4`: pnn and a 16-byte
/// `sockaddr_in`), kept for completeness; Samba 4.17 refuses the controls using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicIpV4 {
    pub pnn: u32,
    pub addr: std::net::SocketAddrV4,
}

impl Wire for PublicIpV4 {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.pnn);
        out.put_u16_le(crate::control::node::AF_INET);
        out.put_u16(self.addr.port());
        out.put_slice(&self.addr.ip().octets());
        crate::wire::put_zeros(out, 8);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let pnn = r.u32()?;
        let family = r.u16()?;
        if family != crate::control::node::AF_INET {
            return Err(DecodeError::InvalidValue {
                what: "sockaddr_in family",
                value: family.into(),
            });
        }
        let port = r.u16_be()?;
        let ip = r.bytes(4)?;
        let ip = std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
        r.skip(8)?;
        Ok(Self {
            pnn,
            addr: std::net::SocketAddrV4::new(ip, port),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> SockAddr {
        SockAddr::V4(s.parse().unwrap())
    }

    #[test]
    fn connection_is_56_bytes() {
        let c = Connection {
            src: v4("10.250.0.1:445"),
            dst: v4("127.0.0.5:40000"),
        };
        let b = c.to_bytes();
        assert_eq!(b.len(), Connection::SIZE);
        assert_eq!(Connection::from_bytes(&b), Ok(c));
        let t = TickleList {
            addr: v4("10.250.0.1:0"),
            connections: vec![c, c],
        };
        assert_eq!(t.to_bytes().len(), 28 + 4 + 2 * 56);
        assert_eq!(TickleList::from_bytes(&t.to_bytes()), Ok(t));
    }

    #[test]
    fn iface_is_24_bytes() {
        let i = Iface {
            name: "lo".into(),
            link_state: 1,
            references: 3,
        };
        let b = i.to_bytes();
        assert_eq!(b.len(), Iface::SIZE);
        assert_eq!(&b[18..20], &[1, 0]);
        assert_eq!(Iface::from_bytes(&b), Ok(i.clone()));
        let info = PublicIpInfo {
            ip: PublicIp {
                pnn: u32::MAX,
                addr: v4("10.250.0.1:0"),
            },
            active_idx: u32::MAX,
            ifaces: vec![i],
        };
        assert_eq!(info.to_bytes().len(), 64);
        assert_eq!(PublicIpInfo::from_bytes(&info.to_bytes()), Ok(info));
    }

    #[test]
    fn addr_info_with_and_without_iface() {
        let a = AddrInfo {
            addr: v4("10.250.0.1:0"),
            mask: 24,
            iface: Some("lo".into()),
        };
        assert_eq!(a.to_bytes().len(), 39);
        assert_eq!(AddrInfo::from_bytes(&a.to_bytes()), Ok(a));
        let n = AddrInfo {
            iface: None,
            ..Default::default()
        };
        assert_eq!(n.to_bytes().len(), 36);
        assert_eq!(AddrInfo::from_bytes(&n.to_bytes()), Ok(n));
    }

    #[test]
    fn public_ipv4_is_20_bytes() {
        let p = PublicIpV4 {
            pnn: 1,
            addr: "10.0.0.1:0".parse().unwrap(),
        };
        assert_eq!(p.to_bytes().len(), 20);
        assert_eq!(PublicIpV4::from_bytes(&p.to_bytes()), Ok(p));
    }
}
