//! Nodes and addresses: `ctdb_sock_addr`, the node map, the vnn map, flag changes and
//! ban state.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bytes::BufMut;

use super::get_vec;
use crate::error::Result;
use crate::wire::{put_zeros, Reader, Wire};

/// `AF_INET` on Linux.
pub const AF_INET: u16 = 2;
/// `AF_INET6` on Linux.
pub const AF_INET6: u16 = 10;

/// `ctdb_sock_addr`: a 28-byte union of `sockaddr_in` and `sockaddr_in6`.
///
/// The family is little-endian (host order), the port big-endian (network order).
/// An IPv4 address fills 16 bytes (`sockaddr_in`, its 8 `sin_zero` bytes included)
/// followed by 12 zero bytes. Anything else (an all-zero address, another family, an
/// IPv4 address with non-zero fill) is kept byte for byte in [`SockAddr::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SockAddr {
    V4(SocketAddrV4),
    V6(SocketAddrV6),
    /// Any other content: the family word and the 26 bytes after it.
    Other {
        family: u16,
        data: [u8; 26],
    },
}

impl SockAddr {
    pub const SIZE: usize = 28;

    /// The all-zero address (family 0), as CTDB sends for "no address".
    pub const fn zero() -> Self {
        SockAddr::Other {
            family: 0,
            data: [0; 26],
        }
    }

    pub fn family(&self) -> u16 {
        match self {
            SockAddr::V4(_) => AF_INET,
            SockAddr::V6(_) => AF_INET6,
            SockAddr::Other { family, .. } => *family,
        }
    }

    /// The address as a `SocketAddr`, if it is IPv4 or IPv6.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match *self {
            SockAddr::V4(a) => Some(SocketAddr::V4(a)),
            SockAddr::V6(a) => Some(SocketAddr::V6(a)),
            SockAddr::Other { .. } => None,
        }
    }
}

impl Default for SockAddr {
    fn default() -> Self {
        SockAddr::zero()
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(a: SocketAddr) -> Self {
        match a {
            SocketAddr::V4(a) => SockAddr::V4(a),
            SocketAddr::V6(a) => SockAddr::V6(a),
        }
    }
}

impl From<SocketAddrV4> for SockAddr {
    fn from(a: SocketAddrV4) -> Self {
        SockAddr::V4(a)
    }
}

impl From<SocketAddrV6> for SockAddr {
    fn from(a: SocketAddrV6) -> Self {
        SockAddr::V6(a)
    }
}

impl Wire for SockAddr {
    fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            SockAddr::V4(a) => {
                out.put_u16_le(AF_INET);
                out.put_u16(a.port());
                out.put_slice(&a.ip().octets());
                put_zeros(out, Self::SIZE - 8);
            }
            SockAddr::V6(a) => {
                out.put_u16_le(AF_INET6);
                out.put_u16(a.port());
                // sin6_flowinfo is copied as the C struct holds it (memcpy).
                out.put_u32_le(a.flowinfo());
                out.put_slice(&a.ip().octets());
                out.put_u32_le(a.scope_id());
            }
            SockAddr::Other { family, data } => {
                out.put_u16_le(*family);
                out.put_slice(data);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let family = r.u16()?;
        let mut data = [0u8; 26];
        data.copy_from_slice(r.bytes(26)?);
        let port = u16::from_be_bytes([data[0], data[1]]);
        Ok(match family {
            AF_INET if data[6..].iter().all(|&b| b == 0) => SockAddr::V4(SocketAddrV4::new(
                Ipv4Addr::new(data[2], data[3], data[4], data[5]),
                port,
            )),
            AF_INET6 => {
                let flowinfo = u32::from_le_bytes([data[2], data[3], data[4], data[5]]);
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&data[6..22]);
                let scope_id = u32::from_le_bytes([data[22], data[23], data[24], data[25]]);
                SockAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(ip),
                    port,
                    flowinfo,
                    scope_id,
                ))
            }
            _ => SockAddr::Other { family, data },
        })
    }
}

/// `ctdb_node_and_flags`: 36 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeAndFlags {
    pub pnn: u32,
    /// `crate::flags::node` bits.
    pub flags: u32,
    pub addr: SockAddr,
}

impl NodeAndFlags {
    pub const SIZE: usize = 36;
}

impl Wire for NodeAndFlags {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.pnn);
        out.put_u32_le(self.flags);
        self.addr.encode(out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            pnn: r.u32()?,
            flags: r.u32()?,
            addr: SockAddr::decode(r)?,
        })
    }
}

/// `ctdb_node_map`: uint32 num, then the nodes (GET_NODEMAP, GET_NODES_FILE).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeMap {
    pub nodes: Vec<NodeAndFlags>,
}

impl Wire for NodeMap {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.nodes.len() as u32);
        for n in &self.nodes {
            n.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let num = r.u32()?;
        Ok(Self {
            nodes: get_vec(r, num, NodeAndFlags::SIZE)?,
        })
    }
}

/// `ctdb_vnn_map`: generation, size, then `size` pnns (GETVNNMAP, SETVNNMAP).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VnnMap {
    pub generation: u32,
    pub map: Vec<u32>,
}

impl Wire for VnnMap {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.generation);
        out.put_u32_le(self.map.len() as u32);
        for pnn in &self.map {
            out.put_u32_le(*pnn);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let generation = r.u32()?;
        let size = r.u32()?;
        Ok(Self {
            generation,
            map: get_vec(r, size, 4)?,
        })
    }
}

/// `ctdb_node_flag_change` (MODIFY_FLAGS): pnn, new_flags, old_flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeFlagChange {
    pub pnn: u32,
    pub new_flags: u32,
    pub old_flags: u32,
}

impl Wire for NodeFlagChange {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.pnn);
        out.put_u32_le(self.new_flags);
        out.put_u32_le(self.old_flags);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            pnn: r.u32()?,
            new_flags: r.u32()?,
            old_flags: r.u32()?,
        })
    }
}

/// `ctdb_ban_state` (SET/GET_BAN_STATE): pnn and ban time in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BanState {
    pub pnn: u32,
    pub time: u32,
}

impl Wire for BanState {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.pnn);
        out.put_u32_le(self.time);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            pnn: r.u32()?,
            time: r.u32()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_sock_addr_is_28_bytes_with_big_endian_port() {
        let a = SockAddr::from("127.0.0.2:4379".parse::<SocketAddr>().unwrap());
        let b = a.to_bytes();
        assert_eq!(b.len(), SockAddr::SIZE);
        assert_eq!(&b[..8], &[2, 0, 0x11, 0x1b, 127, 0, 0, 2]);
        assert!(b[8..].iter().all(|&x| x == 0));
        assert_eq!(SockAddr::from_bytes(&b), Ok(a));
    }

    #[test]
    fn ipv6_and_unknown_addresses_round_trip() {
        let a = SockAddr::V6(SocketAddrV6::new("fd00::1".parse().unwrap(), 445, 7, 3));
        let b = a.to_bytes();
        assert_eq!(b.len(), 28);
        assert_eq!(&b[..4], &[10, 0, 0x01, 0xbd]);
        assert_eq!(SockAddr::from_bytes(&b), Ok(a));

        let zero = [0u8; 28];
        assert_eq!(SockAddr::from_bytes(&zero), Ok(SockAddr::zero()));
        assert_eq!(SockAddr::zero().to_bytes(), zero);

        // IPv4 with junk in the fill stays byte-exact.
        let mut junk = SockAddr::V4("10.0.0.1:1".parse().unwrap()).to_bytes();
        junk[20] = 9;
        let d = SockAddr::from_bytes(&junk).unwrap();
        assert!(matches!(d, SockAddr::Other { family: 2, .. }));
        assert_eq!(d.to_bytes(), junk);
        assert!(SockAddr::from_bytes(&junk[..27]).is_err());
    }

    #[test]
    fn node_and_flags_is_36_bytes_and_node_map_counts() {
        let n = NodeAndFlags {
            pnn: 1,
            flags: crate::flags::node::BANNED,
            addr: SockAddr::V4("127.0.0.2:4379".parse().unwrap()),
        };
        assert_eq!(n.to_bytes().len(), NodeAndFlags::SIZE);
        let map = NodeMap {
            nodes: vec![n, n, n],
        };
        let b = map.to_bytes();
        assert_eq!(b.len(), 4 + 3 * 36);
        assert_eq!(NodeMap::from_bytes(&b), Ok(map));
        // A forged count fails instead of allocating.
        assert!(NodeMap::from_bytes(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn vnn_map_and_small_structs() {
        let v = VnnMap {
            generation: 0x02b99669,
            map: vec![0, 1, 2],
        };
        let b = v.to_bytes();
        assert_eq!(b.len(), 20);
        assert_eq!(VnnMap::from_bytes(&b), Ok(v));
        let f = NodeFlagChange {
            pnn: 0,
            new_flags: 2,
            old_flags: 0,
        };
        assert_eq!(f.to_bytes(), [0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(BanState { pnn: 2, time: 30 }.to_bytes().len(), 8);
    }
}
