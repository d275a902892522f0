//! The EXTENDED COPY(LID1) parameter list (SPC-4 6.4.3): a 16-byte header,
//! the CSCD descriptors, the segment descriptors, then inline data.

use serde::Serialize;

use super::{Cscd, ExtendedCopy, Segment};
use crate::scsi::{be_uint, need, put_be, ParseError, Wire};

/// LIST ID USAGE values, header byte 1 bits 4..3 (SPC-4 6.4.3, table 100).
pub mod list_id_usage {
    /// 00b: keep status and held data for RECEIVE COPY RESULTS.
    pub const HOLD: u8 = 0b00;
    /// 10b: the list ID is unique but nothing is kept (SPC-3's NRCR).
    pub const DISCARD: u8 = 0b10;
    /// 11b: no list ID; LIST IDENTIFIER must be 0 and the copy manager
    /// must report SNLID. tcmu-runner and illumos accept only this.
    pub const DISABLE: u8 = 0b11;
}

/// Length of the parameter list header.
pub const XCOPY_HEADER_LEN: usize = 16;

const WHAT: &str = "EXTENDED COPY parameter list";

/// An EXTENDED COPY(LID1) parameter list (SPC-4 6.4.3, table 99).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XcopyParams {
    /// LIST IDENTIFIER, byte 0.
    pub list_id: u8,
    /// STR, byte 1 bit 5: sequential striped.
    pub str_: bool,
    /// LIST ID USAGE, byte 1 bits 4..3 (see [`list_id_usage`]).
    pub list_id_usage: u8,
    /// PRIORITY, byte 1 bits 2..0.
    pub priority: u8,
    pub cscds: Vec<Cscd>,
    pub segments: Vec<Segment>,
    pub inline_data: Vec<u8>,
}

impl XcopyParams {
    /// A list with LIST ID USAGE 11b (no list ID), priority 0 and no
    /// inline data: what every known copy manager (LIO, SCST, FreeBSD CTL) accepts.
    pub fn new(cscds: Vec<Cscd>, segments: Vec<Segment>) -> Self {
        XcopyParams {
            list_id: 0,
            str_: false,
            list_id_usage: list_id_usage::DISABLE,
            priority: 0,
            cscds,
            segments,
            inline_data: Vec::new(),
        }
    }

    /// NRCR, SPC-3's name for byte 1 bit 4 ("no receive copy results"):
    /// the high bit of SPC-4's LIST ID USAGE.
    pub fn nrcr(&self) -> bool {
        self.list_id_usage & 0b10 != 0
    }

    /// Set or clear NRCR (byte 1 bit 4), leaving bit 3 alone.
    pub fn set_nrcr(&mut self, on: bool) {
        self.list_id_usage = (self.list_id_usage & 0b01) | (on as u8) << 1;
    }

    /// CSCD DESCRIPTOR LIST LENGTH, bytes 2..4.
    pub fn cscd_list_len(&self) -> usize {
        self.cscds.iter().map(Cscd::buffer_len).sum()
    }

    /// SEGMENT DESCRIPTOR LIST LENGTH, bytes 8..12.
    pub fn segment_list_len(&self) -> usize {
        self.segments.iter().map(Segment::buffer_len).sum()
    }

    /// The CDB that sends this list.
    pub fn cdb(&self) -> ExtendedCopy {
        ExtendedCopy {
            param_len: self.buffer_len() as u32,
        }
    }

    /// Everything that would make the emitted list wrong or rejected for
    /// a reason this side can see: field widths, lengths that overflow
    /// their fields, LIST ID USAGE 11b with a non-zero list ID, any
    /// [`Cscd::check`] or [`Segment::check`] failure, a segment naming a
    /// CSCD index past the list.
    pub fn check(&self) -> Result<(), ParseError> {
        let bad = |r: String| Err(ParseError::invalid(WHAT, r));
        if self.list_id_usage > 3 {
            return bad(format!(
                "LIST ID USAGE {} exceeds 2 bits",
                self.list_id_usage
            ));
        }
        if self.list_id_usage == 0b01 {
            return bad("LIST ID USAGE 01b is reserved".into());
        }
        if self.priority > 7 {
            return bad(format!("PRIORITY {} exceeds 3 bits", self.priority));
        }
        // SPC-4 6.4.3: no list ID means list ID 0.
        if self.list_id_usage == list_id_usage::DISABLE && self.list_id != 0 {
            return bad(format!(
                "LIST ID USAGE 11b needs LIST IDENTIFIER 0, not {}",
                self.list_id
            ));
        }
        if self.cscd_list_len() > 0xffff {
            return bad(format!(
                "CSCD descriptor list of {} bytes exceeds 65535",
                self.cscd_list_len()
            ));
        }
        if self.buffer_len() > u32::MAX as usize {
            return bad("parameter list exceeds 4 GiB".into());
        }
        for c in &self.cscds {
            c.check()?;
        }
        for (i, s) in self.segments.iter().enumerate() {
            s.check()?;
            let (src, dst) = s.cscd_indexes();
            for idx in [src, dst].into_iter().flatten() {
                if idx as usize >= self.cscds.len() {
                    return bad(format!(
                        "segment {i} names CSCD {idx}, the list has {}",
                        self.cscds.len()
                    ));
                }
            }
        }
        Ok(())
    }

    /// [`XcopyParams::check`], then the bytes: the way an issuer should
    /// build a list.
    pub fn encode(&self) -> Result<Vec<u8>, ParseError> {
        self.check()?;
        Ok(self.to_vec())
    }
}

/// The 16-byte header of a parameter list (SPC-4 6.4.3, table 99): what
/// a copy manager checks against its limits before decoding the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XcopyHeader {
    pub list_id: u8,
    pub str_: bool,
    pub list_id_usage: u8,
    pub priority: u8,
    /// CSCD DESCRIPTOR LIST LENGTH, bytes 2..4.
    pub cscd_list_len: usize,
    /// SEGMENT DESCRIPTOR LIST LENGTH, bytes 8..12.
    pub segment_list_len: usize,
    /// INLINE DATA LENGTH, bytes 12..16.
    pub inline_len: usize,
}

/// Byte offsets of the header fields a copy manager points at.
pub mod header_field {
    pub const LIST_ID: usize = 0;
    /// STR, LIST ID USAGE (bits 4..3) and PRIORITY.
    pub const FLAGS: usize = 1;
    pub const LIST_ID_USAGE_BIT: u8 = 4;
    pub const CSCD_LIST_LEN: usize = 2;
    pub const SEGMENT_LIST_LEN: usize = 8;
    pub const INLINE_LEN: usize = 12;
}

impl XcopyHeader {
    /// Decode the header from the front of a list.
    pub fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need(WHAT, buf, XCOPY_HEADER_LEN)?;
        Ok(XcopyHeader {
            list_id: buf[0],
            str_: buf[1] & 0x20 != 0,
            list_id_usage: (buf[1] >> 3) & 3,
            priority: buf[1] & 7,
            cscd_list_len: be_uint(&buf[2..4]) as usize,
            segment_list_len: be_uint(&buf[8..12]) as usize,
            inline_len: be_uint(&buf[12..16]) as usize,
        })
    }

    /// Where the CSCD list starts.
    pub fn cscd_start(&self) -> usize {
        XCOPY_HEADER_LEN
    }

    /// Where the segment list starts.
    pub fn segment_start(&self) -> usize {
        XCOPY_HEADER_LEN + self.cscd_list_len
    }

    /// Where the inline data starts.
    pub fn inline_start(&self) -> usize {
        self.segment_start() + self.segment_list_len
    }

    /// The whole list's length as the header gives it.
    pub fn total_len(&self) -> usize {
        self.inline_start() + self.inline_len
    }
}

/// Where each descriptor of a decoded list starts, in bytes from the
/// list's start: what a copy manager's field pointers count from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListLayout {
    pub cscds: Vec<usize>,
    pub segments: Vec<usize>,
}

impl XcopyParams {
    /// Decode a whole list, and say where each descriptor starts. Errors
    /// carry the offset of the bad field from the list's start
    /// ([`ParseError::at`]). A descriptor cut by its list's end, like a list
    /// shorter than its header's lengths, is [`ParseError::Truncated`]:
    /// SPC-4 6.4.3 answers both with PARAMETER LIST LENGTH ERROR.
    pub fn parse_located(buf: &[u8]) -> Result<(Self, ListLayout), ParseError> {
        let h = XcopyHeader::parse(buf)?;
        need(WHAT, buf, h.total_len())?;
        let mut layout = ListLayout::default();
        let cscds = walk(
            buf,
            h.cscd_start(),
            h.segment_start(),
            &mut layout.cscds,
            Cscd::parse,
        )?;
        let segments = walk(
            buf,
            h.segment_start(),
            h.inline_start(),
            &mut layout.segments,
            Segment::parse,
        )?;
        let p = XcopyParams {
            list_id: h.list_id,
            str_: h.str_,
            list_id_usage: h.list_id_usage,
            priority: h.priority,
            cscds,
            segments,
            inline_data: buf[h.inline_start()..h.total_len()].to_vec(),
        };
        Ok((p, layout))
    }
}

/// Decode the descriptors of `buf[start..end]` with `parse`, noting where
/// each starts; errors are shifted to count from the list's start.
fn walk<T>(
    buf: &[u8],
    start: usize,
    end: usize,
    offsets: &mut Vec<usize>,
    parse: impl Fn(&[u8]) -> Result<(T, usize), ParseError>,
) -> Result<Vec<T>, ParseError> {
    let mut out = Vec::new();
    let mut off = start;
    while off < end {
        let (d, n) = parse(&buf[off..end]).map_err(|e| match e {
            ParseError::Truncated { need, .. } => ParseError::Truncated {
                what: WHAT,
                need: off + need,
                have: end,
            },
            other => other.shifted(off),
        })?;
        offsets.push(off);
        out.push(d);
        off += n;
    }
    Ok(out)
}

impl Wire for XcopyParams {
    /// Decode a whole list (see [`XcopyParams::parse_located`]). Unlike a
    /// response, a parameter list is never cut by an allocation length,
    /// so a list shorter than its header's lengths fails.
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        Self::parse_located(buf).map(|(p, _)| p)
    }

    fn buffer_len(&self) -> usize {
        XCOPY_HEADER_LEN + self.cscd_list_len() + self.segment_list_len() + self.inline_data.len()
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..self.buffer_len()];
        b[..XCOPY_HEADER_LEN].fill(0);
        b[0] = self.list_id;
        b[1] = (self.str_ as u8) << 5 | (self.list_id_usage & 3) << 3 | (self.priority & 7);
        put_be(&mut b[2..4], self.cscd_list_len() as u64);
        put_be(&mut b[8..12], self.segment_list_len() as u64);
        put_be(&mut b[12..16], self.inline_data.len() as u64);
        let mut off = XCOPY_HEADER_LEN;
        for c in &self.cscds {
            c.emit(&mut b[off..]);
            off += c.buffer_len();
        }
        for s in &self.segments {
            s.emit(&mut b[off..]);
            off += s.buffer_len();
        }
        b[off..].copy_from_slice(&self.inline_data);
    }
}

#[cfg(test)]
mod tests {
    use super::super::cscd::tests::{any_cscd, disk_cscd, disk_cscd_bytes};
    use super::super::segment::tests::{any_segment, B2B};
    use super::*;
    use crate::scsi::CdbCodec;
    use crate::scsi::Lba;
    use proptest::prelude::*;

    /// Two E4h CSCDs (the same NAA, as libiscsi's in-place tests do) and
    /// one 02h segment: the most LIO 6.1 accepts.
    fn lio_list() -> Vec<u8> {
        let mut v = vec![
            0x00, 0x18, 0x00, 0x40, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00,
        ];
        v.extend_from_slice(&disk_cscd_bytes());
        v.extend_from_slice(&disk_cscd_bytes());
        v.extend_from_slice(&B2B);
        v
    }

    #[test]
    fn lio_shaped_list_golden() {
        let p = XcopyParams::new(
            vec![disk_cscd(), disk_cscd()],
            vec![Segment::block_to_block(0, 1, 2048, Lba(0), Lba(0x1000))],
        );
        let raw = lio_list();
        assert_eq!(raw.len(), 108);
        assert_eq!(p.encode().unwrap(), raw);
        assert_eq!(XcopyParams::parse(&raw).unwrap(), p);
        assert_eq!(p.cdb().to_cdb().as_bytes()[10..14], [0, 0, 0, 108]);
        assert!(p.nrcr());
        for n in 0..raw.len() {
            assert!(XcopyParams::parse(&raw[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn header_bits_and_inline_data() {
        let mut p = XcopyParams::new(vec![], vec![]);
        p.list_id = 0x2a;
        p.str_ = true;
        p.list_id_usage = list_id_usage::HOLD;
        p.priority = 5;
        p.inline_data = vec![1, 2, 3, 4];
        let raw = [
            0x2a, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4,
        ];
        assert_eq!(p.encode().unwrap(), raw);
        assert_eq!(XcopyParams::parse(&raw).unwrap(), p);
        assert!(!p.nrcr());
        p.set_nrcr(true);
        assert_eq!(p.list_id_usage, list_id_usage::DISCARD);
        assert_eq!(p.to_vec()[1], 0x35);
        // Extra bytes past the declared lengths are ignored.
        let mut long = raw.to_vec();
        long.push(0xee);
        assert_eq!(XcopyParams::parse(&long).unwrap().inline_data, [1, 2, 3, 4]);
    }

    #[test]
    fn check_refusals() {
        let ok = XcopyParams::new(
            vec![disk_cscd()],
            vec![Segment::block_to_block(0, 0, 1, Lba(0), Lba(1))],
        );
        ok.check().unwrap();
        let mut p = ok.clone();
        p.list_id = 1; // with usage 11b
        assert!(p.encode().is_err());
        let mut p = ok.clone();
        p.list_id_usage = 0b01;
        assert!(p.check().is_err());
        let mut p = ok.clone();
        p.priority = 8;
        assert!(p.check().is_err());
        let mut p = ok.clone();
        p.segments = vec![Segment::block_to_block(0, 1, 1, Lba(0), Lba(1))];
        assert!(p.check().is_err());
        let mut p = ok;
        p.cscds[0].device_params = super::super::DeviceParams::block(0);
        assert!(p.check().is_err());
    }

    #[test]
    fn lists_with_unknown_descriptors_parse() {
        // An E0h CSCD and a 0Ah segment between the known ones.
        let mut fc = [0u8; 32];
        fc[0] = 0xe0;
        fc[30] = 0x02;
        let mut seg0a = vec![0x0a, 0, 0, 0x1c];
        seg0a.extend_from_slice(&[0; 28]);
        let mut v = vec![0, 0x18, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 0];
        v.extend_from_slice(&fc);
        v.extend_from_slice(&disk_cscd_bytes());
        v.extend_from_slice(&seg0a);
        v.extend_from_slice(&B2B);
        let p = XcopyParams::parse(&v).unwrap();
        assert_eq!(p.cscds.len(), 2);
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.to_vec(), v);
    }

    #[test]
    fn descriptors_overrunning_their_list_are_truncated() {
        // CSCD list length 40: the second CSCD is cut (SPC-4 6.4.3:
        // PARAMETER LIST LENGTH ERROR, as LIO answers a CSCD list length
        // that is not a multiple of 32).
        let mut v = lio_list();
        v[3] = 40;
        v[11] = 28 + 24;
        assert!(matches!(
            XcopyParams::parse(&v),
            Err(ParseError::Truncated {
                need: 80,
                have: 56,
                ..
            })
        ));
        // Segment list length 20: the 02h segment is cut.
        let mut v = lio_list();
        v[11] = 20;
        assert!(matches!(
            XcopyParams::parse(&v),
            Err(ParseError::Truncated { .. })
        ));
        // Lengths beyond the buffer are truncation.
        let mut v = lio_list();
        v[15] = 1;
        assert!(matches!(
            XcopyParams::parse(&v),
            Err(ParseError::Truncated { .. })
        ));
        let mut v = lio_list();
        v[12..16].copy_from_slice(&[0xff; 4]);
        assert!(XcopyParams::parse(&v).is_err());
    }

    pub(crate) fn any_params() -> impl Strategy<Value = XcopyParams> {
        (
            any::<u8>(),
            any::<bool>(),
            prop_oneof![Just(0u8), Just(2), Just(3)],
            0u8..8,
            prop::collection::vec(any_cscd(), 0..4),
            prop::collection::vec(any_segment(), 0..4),
            prop::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(
                |(list_id, str_, usage, priority, cscds, segments, inline_data)| XcopyParams {
                    list_id,
                    str_,
                    list_id_usage: usage,
                    priority,
                    cscds,
                    segments,
                    inline_data,
                },
            )
    }

    proptest! {
        #[test]
        fn params_round_trip(p in any_params()) {
            let b = p.to_vec();
            prop_assert_eq!(b.len(), p.buffer_len());
            prop_assert_eq!(XcopyParams::parse(&b).unwrap(), p);
        }

        #[test]
        fn params_parse_never_panics(buf in prop::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = XcopyParams::parse(&buf) {
                prop_assert_eq!(XcopyParams::parse(&p.to_vec()).unwrap(), p);
            }
        }

        #[test]
        fn params_parse_never_panics_on_list_like_bytes(
            cscds in prop::collection::vec(any::<u8>(), 0..100),
            segs in prop::collection::vec(any::<u8>(), 0..100),
            b1 in any::<u8>(),
        ) {
            let mut v = vec![0, b1, 0, cscds.len() as u8, 0, 0, 0, 0, 0, 0, 0, segs.len() as u8, 0, 0, 0, 0];
            v.extend_from_slice(&cscds);
            v.extend_from_slice(&segs);
            let _ = XcopyParams::parse(&v);
        }
    }
}
