//! COPY ABORTED sense (SPC-4 6.4.3.x, 4.5.2.4.5): which segment failed,
//! which byte of the list was wrong, and the sense data a copy source or
//! destination sent back.

use serde::Serialize;

use crate::scsi::sense::{Sense, SenseKey, SenseKeySpecific};

/// The forwarded sense data descriptor type (SPC-4 4.5.2.x, 0Ch): sense
/// from a copy source or destination, carried in descriptor format.
pub const FORWARDED_SENSE_DESCRIPTOR: u8 = 0x0c;

/// Which end of the copy an embedded sense came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyEnd {
    Source,
    Destination,
    /// A forwarded sense descriptor whose SENSE DATA SOURCE was 0 or
    /// another value this crate does not name.
    Unknown(u8),
}

/// The SEGMENT POINTER sense-key-specific field (SPC-4 4.5.2.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SegmentPointer {
    /// SD: `field` counts from the start of the failing segment
    /// descriptor; otherwise from the start of the parameter list.
    pub sd: bool,
    /// BIT POINTER, when BPV was set.
    pub bit: Option<u8>,
    /// FIELD POINTER: the byte in error.
    pub field: u16,
}

/// What a COPY ABORTED sense says about a failed EXTENDED COPY.
///
/// LIO fills none of this (no segment, pointer or embedded sense: a
/// failed XCOPY there is "unknown amount written"); SCST and FreeBSD CTL
/// fill all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyAborted {
    /// The segment being processed, from COMMAND-SPECIFIC INFORMATION: in
    /// fixed format its bytes 10..12 (bytes 8 and 9 are the sense offsets).
    /// `None` when absent; fixed-format sense cannot tell "segment 0 and
    /// no embedded sense" from "not reported", so treat `None` as
    /// "unknown, maybe 0".
    pub segment: Option<u32>,
    pub field_pointer: Option<SegmentPointer>,
    /// Sense data from the copy source or destination: a forwarded sense
    /// descriptor (descriptor format), or the bytes at the source or
    /// destination sense data offset (fixed format, only through
    /// [`CopyAborted::from_sense_bytes`]). Empty when none.
    #[serde(serialize_with = "crate::scsi::spc::ser_hex")]
    pub embedded: Vec<u8>,
    /// Where `embedded` came from, when there is one.
    pub embedded_from: Option<CopyEnd>,
    /// The SCSI status the failing device returned, when forwarded.
    pub embedded_status: Option<u8>,
}

impl CopyAborted {
    /// Decode the COPY ABORTED parts of `sense`; `None` unless its sense
    /// key is COPY ABORTED. Fixed-format embedded sense lies beyond the
    /// 18 bytes [`Sense`] keeps: use [`CopyAborted::from_sense_bytes`].
    pub fn from_sense(sense: &Sense) -> Option<CopyAborted> {
        if sense.key != SenseKey::COPY_ABORTED {
            return None;
        }
        let segment = match sense.command_specific {
            // SPC-4 4.5.3: bytes 10..12 of the fixed-format field.
            Some(cs) if !sense.descriptor_format => Some((cs & 0xffff) as u32),
            Some(cs) => u32::try_from(cs).ok(),
            None => None,
        };
        let field_pointer = match sense.sense_key_specific {
            Some(SenseKeySpecific::SegmentPointer {
                sd,
                bpv,
                bit,
                field,
            }) => Some(SegmentPointer {
                sd,
                bit: bpv.then_some(bit),
                field,
            }),
            _ => None,
        };
        let mut a = CopyAborted {
            segment,
            field_pointer,
            embedded: Vec::new(),
            embedded_from: None,
            embedded_status: None,
        };
        // SPC-4 4.5.2.x: byte 2 FSDT (7) and SENSE DATA SOURCE (3..0),
        // byte 3 the forwarded status, then the sense data.
        if let Some(d) = sense
            .descriptors
            .iter()
            .find(|d| d.descriptor_type == FORWARDED_SENSE_DESCRIPTOR && d.data.len() >= 2)
        {
            a.embedded_from = Some(match d.data[0] & 0x0f {
                1 => CopyEnd::Source,
                2 => CopyEnd::Destination,
                x => CopyEnd::Unknown(x),
            });
            a.embedded_status = Some(d.data[1]);
            a.embedded = d.data[2..].to_vec();
        }
        Some(a)
    }

    /// Like [`CopyAborted::from_sense`], from the raw sense bytes, which
    /// also finds fixed-format embedded sense: byte 8 is the SOURCE SENSE
    /// DATA OFFSET, byte 9 the DESTINATION one (SPC-4 6.4.3.x); the
    /// embedded sense runs from there to the end of the sense data.
    pub fn from_sense_bytes(raw: &[u8]) -> Option<CopyAborted> {
        let sense = Sense::parse(raw).ok()?;
        let mut a = Self::from_sense(&sense)?;
        if !sense.descriptor_format && raw.len() > 9 {
            let end = raw.len().min(8 + raw[7] as usize);
            let pick = [(raw[8], CopyEnd::Source), (raw[9], CopyEnd::Destination)]
                .into_iter()
                .find(|&(off, _)| off >= 18 && (off as usize) < end);
            if let Some((off, from)) = pick {
                a.embedded = raw[off as usize..end].to_vec();
                a.embedded_from = Some(from);
            }
        }
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::sense::{Asc, SenseDescriptor};
    use proptest::prelude::*;

    #[test]
    fn lio_style_has_nothing() {
        // COPY ABORTED 0D/02, nothing else (LIO).
        let raw = [
            0x70, 0, 0x0a, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x0d, 0x02, 0, 0, 0, 0,
        ];
        let a = CopyAborted::from_sense_bytes(&raw).unwrap();
        assert_eq!(
            a,
            CopyAborted {
                segment: None,
                field_pointer: None,
                embedded: vec![],
                embedded_from: None,
                embedded_status: None,
            }
        );
        // Not COPY ABORTED: None.
        let mut ill = raw;
        ill[2] = 0x05;
        assert_eq!(CopyAborted::from_sense_bytes(&ill), None);
        assert_eq!(CopyAborted::from_sense_bytes(&[]), None);
    }

    #[test]
    fn scst_style_fixed_with_pointer_and_embedded() {
        // Segment 3, segment pointer to byte 29 of the parameter list, and
        // the destination's MEDIUM ERROR sense at offset 18.
        let mut raw = vec![
            0x70, 0, 0x0a, 0, 0, 0, 0, 0, 0x00, 18, 0x00, 0x03, 0x0d, 0x01, 0, 0x80, 0x00, 29,
        ];
        let inner = [0x70, 0, 0x03, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x11, 0x00];
        raw.extend_from_slice(&inner);
        raw[7] = (raw.len() - 8) as u8;
        let a = CopyAborted::from_sense_bytes(&raw).unwrap();
        assert_eq!(a.segment, Some(3));
        assert_eq!(
            a.field_pointer,
            Some(SegmentPointer {
                sd: false,
                bit: None,
                field: 29
            })
        );
        assert_eq!(a.embedded, inner);
        assert_eq!(a.embedded_from, Some(CopyEnd::Destination));
        let inner_sense = Sense::parse(&a.embedded).unwrap();
        assert_eq!(inner_sense.key, SenseKey::MEDIUM_ERROR);
        // Through &Sense the fixed embedded part is out of reach.
        let s = Sense::parse(&raw).unwrap();
        let b = CopyAborted::from_sense(&s).unwrap();
        assert_eq!(b.segment, Some(3));
        assert!(b.embedded.is_empty());
        // ADDITIONAL SENSE LENGTH bounds the embedded part.
        raw[7] = 10;
        assert!(CopyAborted::from_sense_bytes(&raw)
            .unwrap()
            .embedded
            .is_empty());
    }

    #[test]
    fn ctl_style_descriptor_with_forwarded_sense() {
        let mut s = Sense::new(SenseKey::COPY_ABORTED, Asc::new(0x0d, 0x01))
            .with_command_specific(7)
            .with_sks(SenseKeySpecific::SegmentPointer {
                sd: true,
                bpv: true,
                bit: 4,
                field: 10,
            });
        s.descriptor_format = true;
        s.response_code = 0x72;
        s.descriptors.push(SenseDescriptor {
            descriptor_type: FORWARDED_SENSE_DESCRIPTOR,
            data: vec![0x01, 0x02, 0x72, 0x03, 0x11, 0x00, 0, 0, 0, 0],
        });
        let raw = s.to_descriptor();
        let a = CopyAborted::from_sense_bytes(&raw).unwrap();
        assert_eq!(a.segment, Some(7));
        assert_eq!(
            a.field_pointer,
            Some(SegmentPointer {
                sd: true,
                bit: Some(4),
                field: 10
            })
        );
        assert_eq!(a.embedded_from, Some(CopyEnd::Source));
        assert_eq!(a.embedded_status, Some(0x02));
        assert_eq!(a.embedded, [0x72, 0x03, 0x11, 0x00, 0, 0, 0, 0]);
        assert_eq!(
            CopyAborted::from_sense(&Sense::parse(&raw).unwrap()),
            Some(a)
        );
    }

    proptest! {
        #[test]
        fn copy_aborted_never_panics(buf in prop::collection::vec(any::<u8>(), 0..120)) {
            let _ = CopyAborted::from_sense_bytes(&buf);
            let mut b = buf.clone();
            if b.len() > 2 {
                b[0] = 0x70;
                b[2] = 0x0a;
                prop_assert!(CopyAborted::from_sense_bytes(&b).is_some());
            }
        }
    }
}
