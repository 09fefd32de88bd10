//! Reading a whole file that may be hostile (an image list, `status.json`): never more than a
//! stated bound into memory, and, where the file is the size its status says, in two reads
//! (growing the buffer from nothing took ten for a 20 KiB file).

use std::fs::File;
use std::io::{self, Read};

/// All of `file`, or an `InvalidData` error if it holds more than `max` bytes.
pub fn read(file: &File, max: u64) -> io::Result<Vec<u8>> {
    // Only a hint: the file may grow or shrink while it is read, and `take` is the bound.
    let size = file.metadata().map_or(0, |m| m.len()).min(max);
    // One byte more, so that the read that finds the end needs no room of its own.
    let mut data = Vec::with_capacity(size as usize + 1);
    file.take(max + 1).read_to_end(&mut data)?;
    match data.len() as u64 > max {
        true => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than {max} bytes"),
        )),
        false => Ok(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(tag: &str, data: &[u8]) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("cl-bounded-{tag}-{}", std::process::id()));
        File::create(&path).unwrap().write_all(data).unwrap();
        let file = File::open(&path).unwrap();
        (path, file)
    }

    #[test]
    fn a_file_within_the_bound_is_read_whole() {
        let (path, file) = file_of("within", b"0123456789");
        assert_eq!(read(&file, 10).unwrap(), b"0123456789");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_file_over_the_bound_is_refused_as_invalid_data() {
        let (path, file) = file_of("over", b"0123456789");
        let e = read(&file, 9).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), "more than 9 bytes");
        std::fs::remove_file(path).unwrap();
    }
}
