//! Compressed segments: the codecs, their file names, and streaming
//! encoders and decoders.
//!
//! A sealed segment `app.<start>.<seq>.log` compressed with zstd becomes
//! `app.<start>.<seq>.log.zst` (gzip: `.log.gz`). While it is written, the
//! compressed file is `app.<start>.<seq>.log.zst.tmp`; a `.tmp` file is
//! never a segment, and the next start of an appender removes it.
//!
//! Encoding and decoding need the cargo feature of the codec (`gzip`,
//! `zstd`); without it they fail with an error saying which feature is
//! missing, and everything else (names, the manifest) still works.

use std::io::{self, Read, Write};

/// A compression format of sealed segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// gzip (RFC 1952), file suffix `.gz`.
    Gzip,
    /// Zstandard, file suffix `.zst`.
    Zstd,
}

/// Every codec, in the order a reader looks for compressed files.
pub const CODECS: [Codec; 2] = [Codec::Zstd, Codec::Gzip];

/// The suffix of a compressed file that is still being written.
pub const TMP_SUFFIX: &str = ".tmp";

impl Codec {
    /// The file-name suffix, with its dot: `.gz` or `.zst`.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Gzip => ".gz",
            Codec::Zstd => ".zst",
        }
    }

    /// The name of the codec: `gzip` or `zstd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        }
    }

    /// The compressed file's name for sealed file `file`.
    pub fn compressed_name(self, file: &str) -> String {
        format!("{file}{}", self.extension())
    }

    /// The name of the temporary file that becomes `compressed_name(file)`.
    pub fn tmp_name(self, file: &str) -> String {
        format!("{file}{}{TMP_SUFFIX}", self.extension())
    }

    /// Splits a compressed file name into the sealed file's name and the
    /// codec; `None` if `file` is not one (a `.tmp` file is not).
    pub fn split(file: &str) -> Option<(&str, Codec)> {
        CODECS.into_iter().find_map(|c| {
            file.strip_suffix(c.extension())
                .filter(|base| base.ends_with(".log"))
                .map(|base| (base, c))
        })
    }

    /// Splits a temporary compressed file name into the sealed file's name
    /// and the codec.
    pub fn split_tmp(file: &str) -> Option<(&str, Codec)> {
        Codec::split(file.strip_suffix(TMP_SUFFIX)?)
    }

    /// Returns true if and only if this build can encode and decode the
    /// codec (its cargo feature is enabled).
    pub fn is_supported(self) -> bool {
        match self {
            Codec::Gzip => cfg!(feature = "gzip"),
            Codec::Zstd => cfg!(feature = "zstd"),
        }
    }

    fn unsupported(self) -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{} support is not built in; enable the cargo feature `{}`",
                self.as_str(),
                self.as_str()
            ),
        )
    }

    /// Compresses everything `input` yields into `output` at `level`
    /// (gzip: 0 to 9; zstd: -7 to 22). Returns the bytes read and the
    /// CRC-32 of what was read, so a caller can check that it compressed
    /// what it meant to.
    pub fn encode(
        self,
        level: i32,
        input: impl Read,
        output: impl Write,
    ) -> io::Result<(u32, u64)> {
        match self {
            #[cfg(feature = "gzip")]
            Codec::Gzip => {
                let level = u32::try_from(level).unwrap_or(0).min(9);
                let mut enc =
                    flate2::write::GzEncoder::new(output, flate2::Compression::new(level));
                let sum = copy_with_crc(input, &mut enc)?;
                enc.finish()?.flush()?;
                Ok(sum)
            }
            #[cfg(feature = "zstd")]
            Codec::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(output, level)?;
                let sum = copy_with_crc(input, &mut enc)?;
                enc.finish()?.flush()?;
                Ok(sum)
            }
            #[allow(unreachable_patterns)]
            _ => {
                let _ = (level, input, output);
                Err(self.unsupported())
            }
        }
    }

    /// A reader of the decompressed contents of `input`. A truncated or
    /// altered stream makes a read fail (or, for an alteration the format
    /// cannot see, yields other bytes: compare a checksum).
    pub fn decoder<'a>(self, input: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        match self {
            #[cfg(feature = "gzip")]
            Codec::Gzip => Ok(Box::new(flate2::read::GzDecoder::new(input))),
            #[cfg(feature = "zstd")]
            Codec::Zstd => Ok(Box::new(zstd::stream::read::Decoder::new(input)?)),
            #[allow(unreachable_patterns)]
            _ => {
                let _ = input;
                Err(self.unsupported())
            }
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(any(feature = "gzip", feature = "zstd"))]
fn copy_with_crc(mut input: impl Read, out: &mut impl Write) -> io::Result<(u32, u64)> {
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 128 * 1024];
    let mut len = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        len += n as u64;
    }
    Ok((h.finalize(), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let f = "app.2026-11-24T10-00-00.000Z.000042.log";
        assert_eq!(Codec::Zstd.compressed_name(f), format!("{f}.zst"));
        assert_eq!(Codec::Gzip.tmp_name(f), format!("{f}.gz.tmp"));
        assert_eq!(Codec::split(&format!("{f}.zst")), Some((f, Codec::Zstd)));
        assert_eq!(Codec::split(&format!("{f}.gz")), Some((f, Codec::Gzip)));
        assert_eq!(Codec::split(&format!("{f}.zst.tmp")), None);
        assert_eq!(Codec::split("app.manifest.zst"), None);
        assert_eq!(
            Codec::split_tmp(&format!("{f}.zst.tmp")),
            Some((f, Codec::Zstd))
        );
    }

    #[cfg(all(feature = "gzip", feature = "zstd"))]
    #[test]
    fn round_trip_and_corruption() {
        let text: Vec<u8> = (0..5000)
            .flat_map(|i| format!("line {i} GET /api/orders 200\n").into_bytes())
            .collect();
        for c in CODECS {
            let mut packed = Vec::new();
            let (crc, n) = c.encode(3, &text[..], &mut packed).unwrap();
            assert_eq!((crc, n), (crc32fast::hash(&text), text.len() as u64));
            assert!(packed.len() < text.len() / 4, "{c}");
            let mut back = Vec::new();
            c.decoder(&packed[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, text, "{c}");
            // Truncated: the stream ends early.
            let short = &packed[..packed.len() / 2];
            let mut out = Vec::new();
            let res = c.decoder(short).and_then(|mut d| d.read_to_end(&mut out));
            assert!(res.is_err() || out != text, "{c}");
        }
    }
}
