//! ruse's `task_embedding_dir`: one `<task>.npy` per task (NumPy's format, versions 1-3), a
//! little-endian float32 or float64 array in C order of any shape, read flat (ruse's `view(-1)`).

use std::path::Path;

use crate::error::{Error, Result};

/// The values of the `.npy` file at `path`, as f32.
pub fn read_npy(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes).map_err(|msg| Error::checkpoint(path, msg))
}

/// [`read_npy`] from bytes.
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<Vec<f32>, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => {
            return Err(format!(
                ".npy format version {v} is not supported (1-3 are)"
            ))
        }
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let field = |key: &str| -> std::result::Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or(format!("the .npy header has no `{key}`"))?;
        let rest = &header[at + key.len() + 2..];
        Ok(rest.trim_start_matches([':', ' ']))
    };
    if !field("fortran_order")?.starts_with("False") {
        return Err("a Fortran-order array is not supported (save it in C order)".into());
    }
    let descr = field("descr")?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        let end = descr.find(',').unwrap_or(descr.len());
        return Err(format!(
            "dtype {} is not supported (little-endian float32 `<f4` or float64 `<f8`)",
            &descr[..end]
        ));
    };
    let shape = field("shape")?;
    let shape = shape
        .find(')')
        .and_then(|end| shape.get(1..end))
        .ok_or("malformed `shape`")?;
    // In bytes, checked: a header may claim more values than any file holds.
    let size = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .try_fold(width, |size: usize, s| {
            let n = s
                .parse::<usize>()
                .map_err(|_| format!("malformed `shape` ({shape})"))?;
            size.checked_mul(n)
                .ok_or_else(|| format!("`shape` ({shape}) is too large"))
        })?;
    let data = &bytes[start + header_len..];
    if data.len() != size {
        return Err(format!(
            "{} data bytes, but the shape ({shape}) needs {size}",
            data.len()
        ));
    }
    Ok(if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn reads_f32_and_f64_of_any_shape() {
        let f32s: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            parse_npy(&npy("<f4", "2,", &f32s)).unwrap(),
            vec![1.5, -2.0]
        );
        let f64s: Vec<u8> = [0.25f64, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            parse_npy(&npy("<f8", "1, 2", &f64s)).unwrap(),
            vec![0.25, 3.0]
        );
    }

    #[test]
    fn bad_files_are_refused_by_reason() {
        let e = parse_npy(&npy("<i8", "2,", &[0; 16])).unwrap_err();
        assert!(e.contains("dtype '<i8' is not supported"), "{e}");
        let e = parse_npy(&npy("<f4", "3,", &[0; 8])).unwrap_err();
        assert!(e.contains("needs 12"), "{e}");
        assert!(parse_npy(b"PK\x03\x04 not numpy")
            .unwrap_err()
            .contains("magic"));
        // Found by fuzzing: a `)` first, and dimensions whose product overflows.
        let mut closed_first = npy("<f4", "2,", &[]);
        let at = closed_first
            .windows(10)
            .position(|w| w == b"'shape': (")
            .unwrap();
        closed_first[at + 9] = b')';
        let e = parse_npy(&closed_first).unwrap_err();
        assert!(e.contains("malformed `shape`"), "{e}");
        let e = parse_npy(&npy("<f8", "4294967296, 4294967296", &[])).unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }
}
