//! `tfetch` and `tstore`: one record of a TDB file, read or written in place through
//! libtdb (crates/ctdb-tdb), its CTDB record header included.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ctdb_protocol::ltdb::split_record;
use ctdb_protocol::{LtdbHeader, Wire};
use ctdb_tdb::Tdb;

use super::records::parse_arg;
use super::{usage_fail, CmdResult, Fail};
use crate::format::records as fmt;
use crate::messages::{c_atoi, smb_strtoul};
use crate::{err, out};

/// What every TDB file starts with (libtdb's `TDB_MAGIC_FOOD`).
const TDB_MAGIC: &[u8] = b"TDB file\n";

/// Opens an existing TDB file for reading and writing. Samba's tool opens without
/// O_CREAT; the binding always creates, so a path that is not already a TDB file is
/// refused here rather than made into one.
fn open_existing(path: &str) -> Result<Tdb, Fail> {
    let fail = || Fail::new(format!("Failed to open TDB file {path}"), 1);
    let mut magic = [0u8; 9];
    let is_tdb = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == TDB_MAGIC;
    if !is_tdb {
        return Err(fail());
    }
    Tdb::open(Path::new(path), 0, 0).map_err(|_| fail())
}

/// `ctdb tfetch <tdb-file> <key> [<file>]`: prints the record's header and data;
/// with `<file>`, also writes the whole record (header first) there.
pub(super) fn tfetch(args: &[String]) -> CmdResult {
    if !(2..=3).contains(&args.len()) {
        return Err(usage_fail("tfetch"));
    }
    let tdb = open_existing(&args[0])?;
    let key = parse_arg(&args[1], "key")?;
    let record = match tdb.fetch(&key) {
        Ok(Some(r)) => r,
        _ => return Err(Fail::new(format!("No record for key {}", args[1]), 1)),
    };
    drop(tdb);
    let Ok((header, data)) = split_record(&record) else {
        return Err(Fail::new(format!("Invalid record for key {}", args[1]), 1));
    };
    if let Some(file) = args.get(2) {
        match std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(file)
        {
            Ok(mut f) => {
                if f.write_all(&record).is_err() {
                    err("Failed to write record to file\n");
                }
            }
            Err(_) => err(&format!("Failed to open output file {file}\n")),
        }
    }
    out(&fmt::ltdb_header(&header));
    out(&fmt::tdb_data("data", data));
    Ok(0)
}

/// `ctdb tstore <tdb-file> <key> <data> [<rsn> <dmaster> <flags>]`: replaces the
/// record, behind a header with the given rsn and dmaster. As in Samba, at most five
/// arguments are taken, so the flags can never be given and stay 0.
pub(super) fn tstore(args: &[String]) -> CmdResult {
    if !(3..=5).contains(&args.len()) {
        return Err(usage_fail("tstore"));
    }
    let tdb = open_existing(&args[0])?;
    let key = parse_arg(&args[1], "key")?;
    let value = parse_arg(&args[2], "value")?;
    // An rsn that is no number ends the command with the parser's error, silently.
    let rsn = match args.get(3) {
        Some(s) => smb_strtoul(s).map_err(Fail::quiet)?,
        None => 0,
    };
    let header = LtdbHeader {
        rsn,
        dmaster: args.get(4).map_or(0, |s| c_atoi(s) as u32),
        ..Default::default()
    };
    let mut record = header.to_bytes();
    record.extend_from_slice(&value);
    tdb.store(&key, &record).map_err(|_| {
        Fail::new(
            format!("Failed to write record {} to file {}", args[1], args[0]),
            1,
        )
    })?;
    Ok(0)
}
