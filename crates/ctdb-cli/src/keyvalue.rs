//! Keys and values as Samba's tool reads them: from command arguments (`0x` and hex
//! digits for binary, else the text as is), and from the `"key" "value"` lines of
//! `ptrans`.

/// The bytes of a key or value argument: `0x` then hex digits, else the text itself.
/// `Err` carries the digits when their number is odd.
pub fn str_to_data(s: &[u8]) -> Result<Vec<u8>, &[u8]> {
    match s.strip_prefix(b"0x") {
        Some(digits) => hex_to_data(digits).ok_or(digits),
        None => Ok(s.to_vec()),
    }
}

/// Samba's message for an odd number of hex digits (`digits` as C prints the rest of
/// its string).
pub fn odd_hex_message(digits: &[u8]) -> String {
    format!(
        "Key ({}) contains odd number of hex digits\n",
        String::from_utf8_lossy(digits)
    )
}

/// One hex digit as Samba reads it. Other characters are not refused but give
/// what C's `c - '0'` gives; upper-case letters are read correctly here (Samba's
/// tool computes them from `'f'` and corrupts the byte).
fn hex_digit(c: u8) -> i32 {
    match c {
        b'a'..=b'f' => i32::from(c - b'a') + 10,
        b'A'..=b'F' => i32::from(c - b'A') + 10,
        _ => i32::from(c) - i32::from(b'0'),
    }
}

fn hex_to_data(digits: &[u8]) -> Option<Vec<u8>> {
    if digits.len() % 2 != 0 {
        return None;
    }
    Some(
        digits
            .chunks_exact(2)
            // As C stores an int into a byte: the low 8 bits.
            .map(|p| ((hex_digit(p[0]) << 4) | hex_digit(p[1])) as u8)
            .collect(),
    )
}

/// The pieces `fgets()` with Samba's 1024-byte buffer makes of `input`: lines, a line
/// longer than 1023 bytes cut into several.
pub fn ptrans_lines(input: &[u8]) -> Vec<&[u8]> {
    const MAX: usize = 1023;
    let mut lines = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .take(MAX)
            .position(|&b| b == b'\n')
            .map_or(rest.len().min(MAX), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        lines.push(line);
        rest = tail;
    }
    lines
}

/// One quoted string at the start of `s` (after blanks): its bytes (`None` for `""`)
/// and what follows the closing quote; `Err` with the message Samba prints.
fn quoted(s: &[u8]) -> Result<(Option<Vec<u8>>, &[u8]), String> {
    let blanks = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let t = &s[blanks..];
    let Some(inner) = t.strip_prefix(b"\"") else {
        return Err(format!(
            "Unsupported input format in {}\n",
            String::from_utf8_lossy(s)
        ));
    };
    let Some(n) = inner.iter().position(|&b| b == b'"') else {
        return Err(format!(
            "Unmatched \" in input {}\n",
            String::from_utf8_lossy(s)
        ));
    };
    let data = if n == 0 {
        None
    } else {
        // A hex error shows the rest of the line, as C prints an unterminated piece.
        let data = str_to_data(&inner[..n]).map_err(|_| odd_hex_message(&inner[2..]))?;
        Some(data)
    };
    Ok((data, &inner[n + 1..]))
}

/// A key and the value to store under it.
pub type Pair = (Vec<u8>, Vec<u8>);

/// What one `ptrans` line says: a key and value to store (`None` when the line is
/// ignored), and what Samba prints on stderr about it.
pub fn ptrans_line(line: &[u8]) -> (Option<Pair>, String) {
    // The line is a C string: it ends at a NUL.
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let (key, rest) = match quoted(line) {
        Ok((Some(key), rest)) => (key, rest),
        Ok((None, _)) => return (None, String::new()),
        Err(msg) => return (None, msg),
    };
    let value = match quoted(rest) {
        Ok((value, _)) => value.unwrap_or_default(),
        Err(msg) => return (None, msg),
    };
    // Samba stores only keys that are not empty (`"0x"` is one).
    if key.is_empty() {
        return (None, String::new());
    }
    (Some((key, value)), String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert_eq!(str_to_data(b"pkey1"), Ok(b"pkey1".to_vec()));
        assert_eq!(str_to_data(b"0x616263"), Ok(b"abc".to_vec()));
        assert_eq!(str_to_data(b"0x00ff"), Ok(vec![0, 0xff]));
        assert_eq!(str_to_data(b"0xABcd"), Ok(vec![0xab, 0xcd]));
        assert_eq!(str_to_data(b"0x"), Ok(vec![]));
        assert_eq!(str_to_data(b"0x123"), Err(&b"123"[..]));
        assert_eq!(
            odd_hex_message(b"123"),
            "Key (123) contains odd number of hex digits\n"
        );
        // "0X" is not the hex prefix; neither is a later "0x".
        assert_eq!(str_to_data(b"0X41"), Ok(b"0X41".to_vec()));
        assert_eq!(str_to_data(b"a0x41"), Ok(b"a0x41".to_vec()));
        // Non-hex characters give what C computes.
        assert_eq!(str_to_data(b"0x0g"), Ok(vec![0x37]));
    }

    #[test]
    fn ptrans_pairs() {
        let input = b"\"pkey2\" \"pvalue2\"\n\"pkey3\" \"pvalue3\"\n";
        let lines = ptrans_lines(input);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            ptrans_line(lines[0]),
            (
                Some((b"pkey2".to_vec(), b"pvalue2".to_vec())),
                String::new()
            )
        );
        assert_eq!(
            ptrans_line(b"\t \"k\"\t\"v w\" trailing junk"),
            (Some((b"k".to_vec(), b"v w".to_vec())), String::new())
        );
        // No blank needed between them; hex on either side.
        assert_eq!(
            ptrans_line(b"\"0x6b00\"\"0x0102\"\n"),
            (Some((b"k\0".to_vec(), vec![1, 2])), String::new())
        );
        // An empty value stores empty data (a delete).
        assert_eq!(
            ptrans_line(b"\"k\" \"\"\n"),
            (Some((b"k".to_vec(), vec![])), String::new())
        );
        // A missing value is not an empty one: the line is ignored.
        assert_eq!(
            ptrans_line(b"\"k\"\n"),
            (None, "Unsupported input format in \n\n".to_string())
        );
    }

    #[test]
    fn ptrans_ignored_lines_and_messages() {
        assert_eq!(
            ptrans_line(b"\n"),
            (None, "Unsupported input format in \n\n".into())
        );
        assert_eq!(
            ptrans_line(b""),
            (None, "Unsupported input format in \n".into())
        );
        assert_eq!(
            ptrans_line(b"key value\n"),
            (None, "Unsupported input format in key value\n\n".into())
        );
        assert_eq!(
            ptrans_line(b"  \"key \"value\"\n"),
            (None, "Unsupported input format in value\"\n\n".into())
        );
        assert_eq!(
            ptrans_line(b"\"key\" \"value\n"),
            (None, "Unmatched \" in input  \"value\n\n".into())
        );
        assert_eq!(
            ptrans_line(b"\"unterminated\n"),
            (None, "Unmatched \" in input \"unterminated\n\n".into())
        );
        // Empty keys are skipped silently.
        assert_eq!(ptrans_line(b"\"\" \"v\"\n"), (None, String::new()));
        assert_eq!(ptrans_line(b"\"0x\" \"v\"\n"), (None, String::new()));
        // Odd hex: C prints the rest of the line.
        assert_eq!(
            ptrans_line(b"\"0x123\" \"v\"\n"),
            (
                None,
                "Key (123\" \"v\"\n) contains odd number of hex digits\n".into()
            )
        );
        // A NUL ends the line.
        assert_eq!(
            ptrans_line(b"\"k\" \"v\0\"\n"),
            (None, "Unmatched \" in input  \"v\n".into())
        );
    }

    #[test]
    fn long_lines_are_cut_as_fgets_cuts_them() {
        let mut input = vec![b'a'; 2000];
        input.push(b'\n');
        input.extend_from_slice(b"x");
        let lines = ptrans_lines(&input);
        assert_eq!(
            lines.iter().map(|l| l.len()).collect::<Vec<_>>(),
            [1023, 978, 1]
        );
        assert!(ptrans_lines(b"").is_empty());
        let exact = [b'b'; 1023];
        assert_eq!(ptrans_lines(&exact).len(), 1);
    }
}
