//! The Third-party Copy VPD page, 8Fh (SPC-4 7.8.17): the copy manager's
//! limits for a copy manager that refuses RECEIVE COPY RESULTS.
//!
//! The page is a list of third-party copy descriptors, each a 2-byte type
//! and a 2-byte length of what follows. Two carry the LID1 limits:
//! 0004h Parameter Data and 8001h General Copy Operations. Every other
//! descriptor is kept by type only.

use serde::Serialize;

use crate::scsi::{be_uint, need, put_be, DeviceType, ParseError};

/// Supported Commands descriptor (0001h).
pub const DESC_SUPPORTED_COMMANDS: u16 = 0x0001;
/// Supported Descriptors descriptor (0008h).
pub const DESC_SUPPORTED_DESCRIPTORS: u16 = 0x0008;
/// Supported CSCD Descriptor IDs descriptor (000Ch).
pub const DESC_SUPPORTED_CSCD_IDS: u16 = 0x000c;
/// Parameter Data descriptor (0004h).
pub const DESC_PARAMETER_DATA: u16 = 0x0004;
/// General Copy Operations descriptor (8001h).
pub const DESC_GENERAL_COPY_OPERATIONS: u16 = 0x8001;

const WHAT: &str = "third-party copy VPD page";

/// What the page says about LID1 limits. Fields the page lacks are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ThirdPartyCopyVpd {
    pub max_cscd_count: Option<u16>,
    pub max_segment_count: Option<u16>,
    pub max_descriptor_list_len: Option<u32>,
    pub max_inline_data_len: Option<u32>,
    pub total_concurrent_copies: Option<u32>,
    pub max_identified_concurrent_copies: Option<u32>,
    /// Bytes per segment.
    pub max_segment_len: Option<u32>,
    /// log2 bytes.
    pub data_segment_granularity: Option<u8>,
    /// Every descriptor type found, in page order.
    pub descriptor_types: Vec<u16>,
}

impl ThirdPartyCopyVpd {
    /// Decode the page (header included). Descriptors that run past the
    /// page are an error; a page cut short by the allocation length is
    /// read as far as it goes.
    pub fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need(WHAT, buf, 4)?;
        if buf[1] != 0x8f {
            return Err(ParseError::invalid(
                WHAT,
                format!("page code {:#04x}, expected 0x8f", buf[1]),
            ));
        }
        let page_end = (4 + be_uint(&buf[2..4]) as usize).min(buf.len());
        let mut v = ThirdPartyCopyVpd::default();
        let mut off = 4;
        while off + 4 <= page_end {
            let ty = be_uint(&buf[off..off + 2]) as u16;
            let len = be_uint(&buf[off + 2..off + 4]) as usize;
            let end = off + 4 + len;
            if end > page_end {
                if page_end < 4 + be_uint(&buf[2..4]) as usize {
                    break; // cut by the allocation length
                }
                return Err(ParseError::invalid(
                    WHAT,
                    format!("descriptor {ty:#06x} at byte {off} runs past the page"),
                ));
            }
            let d = &buf[off..end];
            v.descriptor_types.push(ty);
            match ty {
                // SPC-4 table 552: counts at bytes 8, 10; lengths at 12, 16.
                DESC_PARAMETER_DATA if d.len() >= 20 => {
                    v.max_cscd_count = Some(be_uint(&d[8..10]) as u16);
                    v.max_segment_count = Some(be_uint(&d[10..12]) as u16);
                    v.max_descriptor_list_len = Some(be_uint(&d[12..16]) as u32);
                    v.max_inline_data_len = Some(be_uint(&d[16..20]) as u32);
                }
                // SPC-4 table 558: copies at 4 and 8, segment length at
                // 12, granularity at 16.
                DESC_GENERAL_COPY_OPERATIONS if d.len() >= 17 => {
                    v.total_concurrent_copies = Some(be_uint(&d[4..8]) as u32);
                    v.max_identified_concurrent_copies = Some(be_uint(&d[8..12]) as u32);
                    v.max_segment_len = Some(be_uint(&d[12..16]) as u32);
                    v.data_segment_granularity = Some(d[16]);
                }
                _ => {}
            }
            off = end;
        }
        Ok(v)
    }
}

/// Append one third-party copy descriptor: TYPE, LENGTH, then `body`
/// zero-padded to a multiple of 4 bytes (SPC-4 7.8.17.1).
fn push_descriptor(page: &mut Vec<u8>, ty: u16, body: &[u8]) {
    let len = body.len().div_ceil(4) * 4;
    page.extend_from_slice(&ty.to_be_bytes());
    page.extend_from_slice(&(len as u16).to_be_bytes());
    page.extend_from_slice(body);
    page.resize(page.len() + len - body.len(), 0);
}

impl ThirdPartyCopyVpd {
    /// The page a copy manager sends for these limits (the target side):
    /// Supported Commands (`commands`: opcode and its service actions),
    /// Parameter Data, Supported Descriptors (`descriptor_codes`: segment
    /// and CSCD type codes), Supported CSCD Descriptor IDs (none) and
    /// General Copy Operations, in that order. Missing limits are 0;
    /// TOTAL and MAXIMUM IDENTIFIED CONCURRENT COPIES, MAXIMUM SEGMENT
    /// LENGTH and the granularity come from their fields.
    pub fn emit_page(
        &self,
        device_type: DeviceType,
        commands: &[(u8, &[u8])],
        descriptor_codes: &[u8],
    ) -> Vec<u8> {
        let mut page = vec![device_type.0 & 0x1f, 0x8f, 0, 0];
        // SPC-4 table 550: COMMANDS SUPPORTED LIST LENGTH, then per
        // command OPERATION CODE, SERVICE ACTION LIST LENGTH, the actions.
        let mut list = Vec::new();
        for (op, sas) in commands {
            list.push(*op);
            list.push(sas.len() as u8);
            list.extend_from_slice(sas);
        }
        let mut body = vec![list.len() as u8];
        body.extend_from_slice(&list);
        push_descriptor(&mut page, DESC_SUPPORTED_COMMANDS, &body);
        // SPC-4 table 552.
        let mut body = [0u8; 28];
        put_be(&mut body[4..6], self.max_cscd_count.unwrap_or(0) as u64);
        put_be(&mut body[6..8], self.max_segment_count.unwrap_or(0) as u64);
        put_be(
            &mut body[8..12],
            self.max_descriptor_list_len.unwrap_or(0) as u64,
        );
        put_be(
            &mut body[12..16],
            self.max_inline_data_len.unwrap_or(0) as u64,
        );
        push_descriptor(&mut page, DESC_PARAMETER_DATA, &body);
        // SPC-4 table 553: LIST LENGTH, then the codes.
        let mut body = vec![descriptor_codes.len() as u8];
        body.extend_from_slice(descriptor_codes);
        push_descriptor(&mut page, DESC_SUPPORTED_DESCRIPTORS, &body);
        // SPC-4 table 554: no CSCD descriptor IDs (no ROD, no null).
        push_descriptor(&mut page, DESC_SUPPORTED_CSCD_IDS, &[0, 0]);
        // SPC-4 table 558.
        let mut body = [0u8; 32];
        put_be(
            &mut body[0..4],
            self.total_concurrent_copies.unwrap_or(0) as u64,
        );
        put_be(
            &mut body[4..8],
            self.max_identified_concurrent_copies.unwrap_or(0) as u64,
        );
        put_be(&mut body[8..12], self.max_segment_len.unwrap_or(0) as u64);
        body[12] = self.data_segment_granularity.unwrap_or(0);
        push_descriptor(&mut page, DESC_GENERAL_COPY_OPERATIONS, &body);
        let n = page.len() - 4;
        put_be(&mut page[2..4], n as u64);
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A page as LIO with third-party copy VPD support answers it
    /// (published sg_inq output): Supported Commands, Parameter Data,
    /// Supported Descriptors, Supported CSCD IDs, General Copy Operations.
    const LIO_8F: &str = "008f0060 00010008 06830100 84010300 0004001c 00000000 00020001 00000400 \
                          00000000 00000000 00000000 00000000 00080004 0202e400 000c0004 00000000 \
                          80010020 00000001 00000001 10000000 09000000 00000000 00000000 00000000 \
                          00000000";

    fn bytes(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn golden_lio_page() {
        let v = ThirdPartyCopyVpd::parse(&bytes(LIO_8F)).unwrap();
        assert_eq!(v.max_cscd_count, Some(2));
        assert_eq!(v.max_segment_count, Some(1));
        assert_eq!(v.max_descriptor_list_len, Some(1024));
        assert_eq!(v.max_inline_data_len, Some(0));
        assert_eq!(v.total_concurrent_copies, Some(1));
        assert_eq!(v.max_segment_len, Some(268_435_456));
        assert_eq!(v.data_segment_granularity, Some(9));
        assert_eq!(
            v.descriptor_types,
            vec![0x0001, 0x0004, 0x0008, 0x000c, 0x8001]
        );
    }

    #[test]
    fn emit_reproduces_the_lio_page() {
        let v = ThirdPartyCopyVpd::parse(&bytes(LIO_8F)).unwrap();
        let page = v.emit_page(
            DeviceType::DISK,
            &[(0x83, &[0x00]), (0x84, &[0x03])],
            &[0x02, 0xe4],
        );
        assert_eq!(page, bytes(LIO_8F));
        let back = ThirdPartyCopyVpd::parse(&page).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn truncated_wrong_page_and_overrun() {
        let b = bytes(LIO_8F);
        assert!(ThirdPartyCopyVpd::parse(&b[..3]).is_err());
        // Cut by the allocation length: what fits is read.
        let cut = ThirdPartyCopyVpd::parse(&b[..48]).unwrap();
        assert_eq!(cut.max_segment_count, Some(1));
        assert_eq!(cut.max_segment_len, None);
        let mut wrong = b.clone();
        wrong[1] = 0x83;
        assert!(ThirdPartyCopyVpd::parse(&wrong).is_err());
        // A descriptor longer than the whole page says.
        let mut over = b.clone();
        over[7] = 0xff;
        assert!(ThirdPartyCopyVpd::parse(&over).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ThirdPartyCopyVpd::parse(&data);
        }

        #[test]
        fn parse_never_panics_on_8f_pages(mut data in proptest::collection::vec(any::<u8>(), 4..300)) {
            data[1] = 0x8f;
            let _ = ThirdPartyCopyVpd::parse(&data);
        }
    }
}
