//! Event script status: the seed's `ctdb_script_wire` and `ctdb_scripts_wire`
//! (GET_EVENT_SCRIPT_STATUS; Samba 4.17 moved script status out of ctdbd).

use bytes::BufMut;

use super::get_vec;
use crate::control::stats::Timeval;
use crate::error::Result;
use crate::wire::{get_fixed_str, put_fixed_str, put_zeros, Reader, Wire};

/// `MAX_SCRIPT_NAME + 1`.
pub const SCRIPT_NAME_SIZE: usize = 32;
/// `MAX_SCRIPT_OUTPUT + 1`.
pub const SCRIPT_OUTPUT_SIZE: usize = 512;

/// `ctdb_script_wire`: name `char[32]`, start and finished timevals, int32 status,
/// output `char[512]`, then 4 bytes of tail padding (the struct is 8-aligned):
/// 584 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    pub name: String,
    pub start: Timeval,
    pub finished: Timeval,
    /// 0 = OK; otherwise the script's exit status or a negative errno.
    pub status: i32,
    pub output: String,
}

impl Script {
    pub const SIZE: usize = 584;
}

impl Wire for Script {
    fn encode<B: BufMut>(&self, out: &mut B) {
        put_fixed_str(out, &self.name, SCRIPT_NAME_SIZE);
        self.start.encode(out);
        self.finished.encode(out);
        out.put_i32_le(self.status);
        put_fixed_str(out, &self.output, SCRIPT_OUTPUT_SIZE);
        put_zeros(out, 4);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let s = Self {
            name: get_fixed_str(r, SCRIPT_NAME_SIZE)?,
            start: Timeval::decode(r)?,
            finished: Timeval::decode(r)?,
            status: r.i32()?,
            output: get_fixed_str(r, SCRIPT_OUTPUT_SIZE)?,
        };
        r.skip(4)?;
        Ok(s)
    }
}

/// `ctdb_scripts_wire`: uint32 num_scripts, 4 bytes of padding (the array is
/// 8-aligned), then the scripts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScriptList {
    pub scripts: Vec<Script>,
}

impl Wire for ScriptList {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.scripts.len() as u32);
        put_zeros(out, 4);
        for s in &self.scripts {
            s.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let num = r.u32()?;
        r.skip(4)?;
        Ok(Self {
            scripts: get_vec(r, num, Script::SIZE)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_wire_has_c_sizes() {
        let s = Script {
            name: "10.interface".into(),
            start: Timeval { sec: 1, usec: 2 },
            finished: Timeval { sec: 3, usec: 4 },
            status: -62,
            output: "timed out".into(),
        };
        let b = s.to_bytes();
        assert_eq!(b.len(), Script::SIZE);
        assert_eq!(b[32], 1); // start at offset 32
        assert_eq!(&b[64..68], &(-62i32).to_le_bytes());
        assert_eq!(&b[68..77], b"timed out");
        assert_eq!(Script::from_bytes(&b), Ok(s.clone()));
        let l = ScriptList {
            scripts: vec![s.clone(), s],
        };
        assert_eq!(l.to_bytes().len(), 8 + 2 * 584);
        assert_eq!(ScriptList::from_bytes(&l.to_bytes()), Ok(l));
    }
}
