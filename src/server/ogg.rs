//! An Ogg page writer (RFC 3533): one packet per page, for Ogg Opus.

/// CRC-32 of Ogg: polynomial 0x04c11db7, not reflected, initial 0.
fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
            }
            *e = r;
        }
        t
    });
    data.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ t[((crc >> 24) as u8 ^ b) as usize]
    })
}

/// One logical stream's pages.
pub struct OggWriter {
    serial: u32,
    seq: u32,
}

impl OggWriter {
    /// A stream with this serial number.
    pub fn new(serial: u32) -> OggWriter {
        OggWriter { serial, seq: 0 }
    }

    /// A page holding one whole packet (under 65025 bytes).
    pub fn page(&mut self, packet: &[u8], granule: u64, bos: bool, eos: bool) -> Vec<u8> {
        let mut lacing = vec![255u8; packet.len() / 255];
        lacing.push((packet.len() % 255) as u8);
        let mut p = Vec::with_capacity(27 + lacing.len() + packet.len());
        p.extend_from_slice(b"OggS");
        p.push(0);
        p.push((u8::from(bos) * 2) | (u8::from(eos) * 4));
        p.extend_from_slice(&granule.to_le_bytes());
        p.extend_from_slice(&self.serial.to_le_bytes());
        p.extend_from_slice(&self.seq.to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        p.push(lacing.len() as u8);
        p.extend_from_slice(&lacing);
        p.extend_from_slice(packet);
        let crc = crc32(&p);
        p[22..26].copy_from_slice(&crc.to_le_bytes());
        self.seq += 1;
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_layout_and_crc() {
        // The CRC of "OggS" pages: a known vector of this polynomial.
        assert_eq!(crc32(b"123456789"), 0x89a1_897f);
        let mut w = OggWriter::new(7);
        let p = w.page(&[1u8; 300], 960, true, false);
        assert_eq!(&p[..4], b"OggS");
        assert_eq!(p[5], 2);
        assert_eq!(p[26], 2);
        assert_eq!(&p[27..29], &[255, 45]);
        assert_eq!(p.len(), 27 + 2 + 300);
        assert_eq!(w.page(&[], 0, false, true)[18..22], 1u32.to_le_bytes());
    }
}
