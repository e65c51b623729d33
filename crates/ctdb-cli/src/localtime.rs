//! The local time zone, as C's `localtime()` sees it (the `TZ` variable, else
//! `/etc/localtime`), so that times print exactly as Samba's `ctime()` calls print them.

/// Seconds east of UTC of local time at UNIX time `t` (0 if the C library can't tell).
#[allow(unsafe_code)]
pub fn offset(t: i64) -> i64 {
    let tt = t as libc::time_t;
    // SAFETY: `tm` is a plain C struct for which all-zero bytes are a valid value, and
    // localtime_r only writes into the struct we own; both pointers are valid for the
    // duration of the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&tt, &mut tm) };
    if r.is_null() {
        0
    } else {
        #[allow(clippy::useless_conversion)] // c_long is i32 on 32-bit targets
        i64::from(tm.tm_gmtoff)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn offset_is_sane() {
        // Whatever the zone, it is within a day of UTC.
        assert!(super::offset(1_795_574_877).abs() < 86_400);
    }
}
