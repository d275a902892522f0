//! RECEIVE COPY RESULTS parameter data, LID1 service actions (SPC-4
//! 6.18.2-6.18.5). Every form starts with a 4-byte AVAILABLE DATA (the
//! bytes that follow it); parsers take what fits in the buffer and keep
//! the device's AVAILABLE DATA so a caller can re-issue with a bigger
//! allocation length.

use std::fmt;

use serde::Serialize;

use super::{CscdType, SegmentType};
use crate::scsi::{be_uint, need, open_code, put_be, ParseError, Status, Wire};

open_code! {
    /// COPY MANAGER STATUS, COPY STATUS byte 4 bits 6..0 (SPC-4 6.18.2).
    CopyManagerStatus(u8) {
        IN_PROGRESS = 0x00 => "in progress",
        COMPLETED_GOOD = 0x01 => "completed, good",
        COMPLETED_ERRORS = 0x02 => "completed with errors",
    }
}

open_code! {
    /// TRANSFER COUNT UNITS, COPY STATUS byte 7 (SPC-4 6.18.2, table 364):
    /// a power of 1024.
    TransferCountUnits(u8) {
        BYTES = 0x00 => "bytes",
        KIB = 0x01 => "KiB",
        MIB = 0x02 => "MiB",
        GIB = 0x03 => "GiB",
        TIB = 0x04 => "TiB",
        PIB = 0x05 => "PiB",
        EIB = 0x06 => "EiB",
    }
}

/// COPY STATUS data, service action 00h (SPC-4 6.18.2, table 363): 12
/// bytes, AVAILABLE DATA 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CopyStatus {
    /// HDD, byte 4 bit 7: held data was discarded.
    pub hdd: bool,
    pub status: CopyManagerStatus,
    /// SEGMENTS PROCESSED, bytes 5..7.
    pub segments_processed: u16,
    pub units: TransferCountUnits,
    /// TRANSFER COUNT, bytes 8..12, in `units`.
    pub transfer_count: u32,
}

impl CopyStatus {
    pub const LEN: usize = 12;

    /// The transfer count in bytes, when it fits in a `u64`.
    pub fn transfer_bytes(&self) -> Option<u64> {
        let shift = 10u32.checked_mul(self.units.0 as u32)?;
        1u64.checked_shl(shift)?
            .checked_mul(self.transfer_count as u64)
            .filter(|_| shift < 64)
    }
}

impl Wire for CopyStatus {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need("COPY STATUS data", buf, Self::LEN)?;
        Ok(CopyStatus {
            hdd: buf[4] & 0x80 != 0,
            status: CopyManagerStatus(buf[4] & 0x7f),
            segments_processed: be_uint(&buf[5..7]) as u16,
            units: TransferCountUnits(buf[7]),
            transfer_count: be_uint(&buf[8..12]) as u32,
        })
    }

    fn buffer_len(&self) -> usize {
        Self::LEN
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..Self::LEN];
        put_be(&mut b[0..4], (Self::LEN - 4) as u64);
        b[4] = (self.hdd as u8) << 7 | (self.status.0 & 0x7f);
        put_be(&mut b[5..7], self.segments_processed as u64);
        b[7] = self.units.0;
        put_be(&mut b[8..12], self.transfer_count as u64);
    }
}

/// RECEIVE DATA, service action 01h (SPC-4 6.18.3): the held data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiveData {
    /// AVAILABLE DATA as the device sent it: can exceed `data.len()`.
    pub available_data: u32,
    /// The held data that fitted.
    #[serde(serialize_with = "crate::scsi::spc::ser_hex")]
    pub data: Vec<u8>,
}

impl ReceiveData {
    pub fn new(data: Vec<u8>) -> Self {
        ReceiveData {
            available_data: data.len() as u32,
            data,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.data.len() as u64 >= self.available_data as u64
    }

    /// Held data that is a list of CRC32Cs, one big-endian u32 per stream
    /// block written: the sanmover router's extension (README, FORMAT.md).
    pub fn from_crcs(crcs: &[u32]) -> Self {
        Self::new(crcs.iter().flat_map(|c| c.to_be_bytes()).collect())
    }

    /// The CRC32Cs of [`ReceiveData::from_crcs`] held data; the bytes
    /// that arrived must be whole u32s.
    pub fn crcs(&self) -> Result<Vec<u32>, ParseError> {
        if self.data.len() % 4 != 0 {
            return Err(ParseError::invalid(
                "RECEIVE DATA CRC list",
                format!("{} bytes is not a whole number of CRC32Cs", self.data.len()),
            ));
        }
        Ok(self
            .data
            .chunks_exact(4)
            .map(|c| be_uint(c) as u32)
            .collect())
    }
}

impl Wire for ReceiveData {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need("RECEIVE DATA", buf, 4)?;
        let available_data = be_uint(&buf[0..4]) as u32;
        let end = buf
            .len()
            .min(4usize.saturating_add(available_data as usize));
        Ok(ReceiveData {
            available_data,
            data: buf[4..end].to_vec(),
        })
    }

    fn buffer_len(&self) -> usize {
        4 + self.data.len()
    }

    fn emit(&self, buf: &mut [u8]) {
        put_be(&mut buf[0..4], self.data.len() as u64);
        buf[4..4 + self.data.len()].copy_from_slice(&self.data);
    }
}

/// OPERATING PARAMETERS, service action 03h (SPC-4 6.18.4, table 366).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatingParameters {
    /// AVAILABLE DATA as the device sent it (40 + the implemented list).
    pub available_data: u32,
    /// SNLID, byte 4 bit 0: LIST ID USAGE 11b is supported.
    pub snlid: bool,
    /// MAXIMUM CSCD DESCRIPTOR COUNT, bytes 8..10.
    pub max_cscd_count: u16,
    /// MAXIMUM SEGMENT DESCRIPTOR COUNT, bytes 10..12.
    pub max_segment_count: u16,
    /// MAXIMUM DESCRIPTOR LIST LENGTH, bytes 12..16 (CSCD + segment lists).
    pub max_descriptor_list_len: u32,
    /// MAXIMUM SEGMENT LENGTH, bytes 16..20, in bytes (0: no limit).
    pub max_segment_len: u32,
    /// MAXIMUM INLINE DATA LENGTH, bytes 20..24.
    pub max_inline_data_len: u32,
    /// HELD DATA LIMIT, bytes 24..28.
    pub held_data_limit: u32,
    /// MAXIMUM STREAM DEVICE TRANSFER SIZE, bytes 28..32.
    pub max_stream_transfer_size: u32,
    /// TOTAL CONCURRENT COPIES, bytes 34..36.
    pub total_concurrent_copies: u16,
    /// MAXIMUM CONCURRENT COPIES, byte 36.
    pub max_concurrent_copies: u8,
    /// DATA SEGMENT GRANULARITY, byte 37 (log2 bytes).
    pub data_segment_granularity: u8,
    /// INLINE DATA GRANULARITY, byte 38 (log2 bytes).
    pub inline_data_granularity: u8,
    /// HELD DATA GRANULARITY, byte 39 (log2 bytes).
    pub held_data_granularity: u8,
    /// The implemented descriptor type codes that fitted (byte 43 says how
    /// many there are): segment types (00h-BFh) and CSCD types (E0h-FFh).
    #[serde(serialize_with = "crate::scsi::spc::ser_hex")]
    pub implemented: Vec<u8>,
}

impl OperatingParameters {
    /// Bytes before the implemented descriptor type codes.
    pub const HEADER_LEN: usize = 44;

    pub fn supports_segment(&self, t: SegmentType) -> bool {
        self.implemented.contains(&t.0)
    }

    pub fn supports_cscd(&self, t: CscdType) -> bool {
        self.implemented.contains(&t.0)
    }

    /// Whether every implemented type code was in the buffer.
    pub fn is_complete(&self) -> bool {
        (Self::HEADER_LEN - 4 + self.implemented.len()) as u64 >= self.available_data as u64
    }

    /// 2^DATA SEGMENT GRANULARITY bytes, when that fits in a `u64`.
    pub fn data_segment_granularity_bytes(&self) -> Option<u64> {
        1u64.checked_shl(self.data_segment_granularity as u32)
    }
}

impl Wire for OperatingParameters {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need("OPERATING PARAMETERS data", buf, Self::HEADER_LEN)?;
        let u = |r: std::ops::Range<usize>| be_uint(&buf[r]);
        let available_data = u(0..4) as u32;
        let k = buf[43] as usize;
        // The list ends where the buffer, AVAILABLE DATA or byte 43 says,
        // whichever is first.
        let end = buf
            .len()
            .min(4usize.saturating_add(available_data as usize))
            .min(Self::HEADER_LEN + k)
            .max(Self::HEADER_LEN);
        Ok(OperatingParameters {
            available_data,
            snlid: buf[4] & 0x01 != 0,
            max_cscd_count: u(8..10) as u16,
            max_segment_count: u(10..12) as u16,
            max_descriptor_list_len: u(12..16) as u32,
            max_segment_len: u(16..20) as u32,
            max_inline_data_len: u(20..24) as u32,
            held_data_limit: u(24..28) as u32,
            max_stream_transfer_size: u(28..32) as u32,
            total_concurrent_copies: u(34..36) as u16,
            max_concurrent_copies: buf[36],
            data_segment_granularity: buf[37],
            inline_data_granularity: buf[38],
            held_data_granularity: buf[39],
            implemented: buf[Self::HEADER_LEN..end].to_vec(),
        })
    }

    fn buffer_len(&self) -> usize {
        Self::HEADER_LEN + self.implemented.len().min(255)
    }

    /// AVAILABLE DATA is written from the list, not from `available_data`.
    fn emit(&self, buf: &mut [u8]) {
        let n = self.buffer_len();
        let k = n - Self::HEADER_LEN;
        let b = &mut buf[..n];
        b[..Self::HEADER_LEN].fill(0);
        put_be(&mut b[0..4], (n - 4) as u64);
        b[4] = self.snlid as u8;
        put_be(&mut b[8..10], self.max_cscd_count as u64);
        put_be(&mut b[10..12], self.max_segment_count as u64);
        put_be(&mut b[12..16], self.max_descriptor_list_len as u64);
        put_be(&mut b[16..20], self.max_segment_len as u64);
        put_be(&mut b[20..24], self.max_inline_data_len as u64);
        put_be(&mut b[24..28], self.held_data_limit as u64);
        put_be(&mut b[28..32], self.max_stream_transfer_size as u64);
        put_be(&mut b[34..36], self.total_concurrent_copies as u64);
        b[36] = self.max_concurrent_copies;
        b[37] = self.data_segment_granularity;
        b[38] = self.inline_data_granularity;
        b[39] = self.held_data_granularity;
        b[43] = k as u8;
        b[Self::HEADER_LEN..].copy_from_slice(&self.implemented[..k]);
    }
}

/// FAILED SEGMENT DETAILS, service action 04h (SPC-4 6.18.5, table 367).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedSegmentDetails {
    /// AVAILABLE DATA as the device sent it; 0 means no details are held.
    pub available_data: u32,
    /// The details, when AVAILABLE DATA is not 0.
    pub failed: Option<FailedSegment>,
}

/// The body of [`FailedSegmentDetails`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedSegment {
    /// EXTENDED COPY COMMAND STATUS, byte 56.
    pub status: Status,
    /// SENSE DATA LENGTH, bytes 58..60, as sent.
    pub sense_len: u16,
    /// The sense data that fitted (see `CopyAborted` for decoding it; the
    /// segment number is its COMMAND-SPECIFIC INFORMATION).
    #[serde(serialize_with = "crate::scsi::spc::ser_hex")]
    pub sense: Vec<u8>,
}

impl FailedSegmentDetails {
    /// Bytes before the sense data.
    pub const HEADER_LEN: usize = 60;

    /// Details for a failed EXTENDED COPY.
    pub fn new(status: Status, sense: Vec<u8>) -> Self {
        let sense_len = sense.len().min(0xffff) as u16;
        FailedSegmentDetails {
            available_data: (Self::HEADER_LEN - 4 + sense_len as usize) as u32,
            failed: Some(FailedSegment {
                status,
                sense_len,
                sense,
            }),
        }
    }

    /// No details held: AVAILABLE DATA 0.
    pub fn none() -> Self {
        FailedSegmentDetails {
            available_data: 0,
            failed: None,
        }
    }

    pub fn is_complete(&self) -> bool {
        match &self.failed {
            None => true,
            Some(f) => f.sense.len() >= f.sense_len as usize,
        }
    }
}

impl Wire for FailedSegmentDetails {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "FAILED SEGMENT DETAILS data";
        need(W, buf, 4)?;
        let available_data = be_uint(&buf[0..4]) as u32;
        if available_data == 0 {
            return Ok(Self::none());
        }
        need(W, buf, Self::HEADER_LEN)?;
        let sense_len = be_uint(&buf[58..60]) as u16;
        let end = buf
            .len()
            .min(Self::HEADER_LEN + sense_len as usize)
            .min(4usize.saturating_add(available_data as usize))
            .max(Self::HEADER_LEN);
        Ok(FailedSegmentDetails {
            available_data,
            failed: Some(FailedSegment {
                status: Status(buf[56]),
                sense_len,
                sense: buf[Self::HEADER_LEN..end].to_vec(),
            }),
        })
    }

    fn buffer_len(&self) -> usize {
        match &self.failed {
            None => 4,
            Some(f) => Self::HEADER_LEN + f.sense.len().min(0xffff),
        }
    }

    /// AVAILABLE DATA and SENSE DATA LENGTH are written from the sense
    /// bytes held.
    fn emit(&self, buf: &mut [u8]) {
        let n = self.buffer_len();
        let b = &mut buf[..n];
        b.fill(0);
        if let Some(f) = &self.failed {
            let k = n - Self::HEADER_LEN;
            put_be(&mut b[0..4], (n - 4) as u64);
            b[56] = f.status.0;
            put_be(&mut b[58..60], k as u64);
            b[Self::HEADER_LEN..].copy_from_slice(&f.sense[..k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// LIO 6.1's OPERATING PARAMETERS (seen in the LIO rig):
    /// 2 CSCDs, 1 segment, 1024-byte lists, 256 MiB segments, nothing
    /// inline or held, 1 copy at a time, 512-byte granularity, and the
    /// implemented codes 02h and E4h.
    const LIO_OP_PARAMS: [u8; 46] = [
        0x00, 0x00, 0x00, 0x2a, // AVAILABLE DATA 42
        0x00, 0, 0, 0, // SNLID 0
        0x00, 0x02, 0x00, 0x01, // 2 CSCDs, 1 segment
        0x00, 0x00, 0x04, 0x00, // descriptor list 1024
        0x10, 0x00, 0x00, 0x00, // segment 256 MiB
        0, 0, 0, 0, // inline
        0, 0, 0, 0, // held
        0, 0, 0, 0, // stream transfer
        0, 0, 0x00, 0x01, // total concurrent 1
        0x01, 0x09, 0x09, 0x09, // max concurrent 1, granularities 2^9
        0, 0, 0, 0x02, // 2 implemented codes
        0x02, 0xe4,
    ];

    fn lio() -> OperatingParameters {
        OperatingParameters {
            available_data: 42,
            snlid: false,
            max_cscd_count: 2,
            max_segment_count: 1,
            max_descriptor_list_len: 1024,
            max_segment_len: 256 << 20,
            max_inline_data_len: 0,
            held_data_limit: 0,
            max_stream_transfer_size: 0,
            total_concurrent_copies: 1,
            max_concurrent_copies: 1,
            data_segment_granularity: 9,
            inline_data_granularity: 9,
            held_data_granularity: 9,
            implemented: vec![0x02, 0xe4],
        }
    }

    #[test]
    fn operating_parameters_lio_golden() {
        let p = lio();
        assert_eq!(p.to_vec(), LIO_OP_PARAMS);
        let back = OperatingParameters::parse(&LIO_OP_PARAMS).unwrap();
        assert_eq!(back, p);
        assert!(back.is_complete());
        assert!(back.supports_segment(SegmentType::BLOCK_TO_BLOCK));
        assert!(!back.supports_segment(SegmentType::BLOCK_TO_STREAM));
        assert!(back.supports_cscd(CscdType::IDENTIFICATION));
        assert_eq!(back.data_segment_granularity_bytes(), Some(512));
        // Cut inside the list: the codes that fit, and not complete.
        let cut = OperatingParameters::parse(&LIO_OP_PARAMS[..45]).unwrap();
        assert_eq!(cut.implemented, [0x02]);
        assert!(!cut.is_complete());
        assert!(matches!(
            OperatingParameters::parse(&LIO_OP_PARAMS[..43]),
            Err(ParseError::Truncated { need: 44, .. })
        ));
        // Extra bytes past the list (LIO pads to the allocation) ignored.
        let mut padded = LIO_OP_PARAMS.to_vec();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(OperatingParameters::parse(&padded).unwrap(), p);
    }

    #[test]
    fn copy_status_golden() {
        let raw = [
            0x00, 0x00, 0x00, 0x08, 0x82, 0x00, 0x03, 0x02, 0x00, 0x00, 0x01, 0x00,
        ];
        let s = CopyStatus {
            hdd: true,
            status: CopyManagerStatus::COMPLETED_ERRORS,
            segments_processed: 3,
            units: TransferCountUnits::MIB,
            transfer_count: 256,
        };
        assert_eq!(s.to_vec(), raw);
        assert_eq!(CopyStatus::parse(&raw).unwrap(), s);
        assert_eq!(s.transfer_bytes(), Some(256 << 20));
        assert!(CopyStatus::parse(&raw[..11]).is_err());
        let huge = CopyStatus {
            units: TransferCountUnits::EIB,
            transfer_count: 16,
            ..s
        };
        assert_eq!(huge.transfer_bytes(), None);
        let odd = CopyStatus {
            units: TransferCountUnits(0xff),
            ..s
        };
        assert_eq!(odd.transfer_bytes(), None);
    }

    #[test]
    fn receive_data_golden() {
        let raw = [0x00, 0x00, 0x00, 0x03, 0xaa, 0xbb, 0xcc];
        let r = ReceiveData::new(vec![0xaa, 0xbb, 0xcc]);
        assert_eq!(r.to_vec(), raw);
        assert_eq!(ReceiveData::parse(&raw).unwrap(), r);
        let cut = ReceiveData::parse(&raw[..5]).unwrap();
        assert_eq!((cut.available_data, cut.data.len()), (3, 1));
        assert!(!cut.is_complete());
        assert!(ReceiveData::parse(&raw[..3]).is_err());
    }

    #[test]
    fn receive_data_crc_list_golden() {
        let r = ReceiveData::from_crcs(&[0xe306_9283, 1]);
        let raw = [0, 0, 0, 8, 0xe3, 0x06, 0x92, 0x83, 0, 0, 0, 1];
        assert_eq!(r.to_vec(), raw);
        assert_eq!(
            ReceiveData::parse(&raw).unwrap().crcs().unwrap(),
            vec![0xe306_9283, 1]
        );
        // A cut CRC is an error, not a shorter list.
        assert!(ReceiveData::parse(&raw[..10]).unwrap().crcs().is_err());
    }

    #[test]
    fn failed_segment_details_golden() {
        // CHECK CONDITION with 18 bytes of COPY ABORTED sense.
        let sense = vec![
            0x70, 0, 0x0a, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0x01, 0x0d, 0x02, 0, 0, 0, 0,
        ];
        let mut raw = vec![0x00, 0x00, 0x00, 0x4a];
        raw.extend_from_slice(&[0; 52]);
        raw.extend_from_slice(&[0x02, 0x00, 0x00, 0x12]);
        raw.extend_from_slice(&sense);
        let d = FailedSegmentDetails::new(Status::CHECK_CONDITION, sense.clone());
        assert_eq!(d.to_vec(), raw);
        assert_eq!(FailedSegmentDetails::parse(&raw).unwrap(), d);
        let cut = FailedSegmentDetails::parse(&raw[..70]).unwrap();
        assert_eq!(cut.failed.as_ref().unwrap().sense, sense[..10]);
        assert!(!cut.is_complete());
        assert!(FailedSegmentDetails::parse(&raw[..59]).is_err());
        // Nothing held.
        let none = FailedSegmentDetails::none();
        assert_eq!(none.to_vec(), [0, 0, 0, 0]);
        assert_eq!(FailedSegmentDetails::parse(&[0, 0, 0, 0]).unwrap(), none);
        assert!(FailedSegmentDetails::parse(&[0, 0, 0]).is_err());
    }

    proptest! {
        #[test]
        fn results_parse_never_panic(buf in prop::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(p) = OperatingParameters::parse(&buf) {
                let again = OperatingParameters::parse(&p.to_vec()).unwrap();
                prop_assert_eq!(again.implemented, p.implemented);
            }
            if let Ok(s) = CopyStatus::parse(&buf) {
                let _ = s.transfer_bytes();
            }
            let _ = ReceiveData::parse(&buf);
            if let Ok(f) = FailedSegmentDetails::parse(&buf) {
                let again = FailedSegmentDetails::parse(&f.to_vec()).unwrap();
                prop_assert_eq!(again.failed.map(|x| x.sense), f.failed.map(|x| x.sense));
            }
        }

        #[test]
        fn operating_parameters_round_trip(
            v in any::<(bool, u16, u16, u32, u32, u32, u32, u32)>(),
            w in any::<(u16, u8, u8, u8, u8)>(),
            implemented in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let p = OperatingParameters {
                available_data: 40 + implemented.len() as u32,
                snlid: v.0,
                max_cscd_count: v.1,
                max_segment_count: v.2,
                max_descriptor_list_len: v.3,
                max_segment_len: v.4,
                max_inline_data_len: v.5,
                held_data_limit: v.6,
                max_stream_transfer_size: v.7,
                total_concurrent_copies: w.0,
                max_concurrent_copies: w.1,
                data_segment_granularity: w.2,
                inline_data_granularity: w.3,
                held_data_granularity: w.4,
                implemented,
            };
            prop_assert_eq!(OperatingParameters::parse(&p.to_vec()).unwrap(), p);
        }

        #[test]
        fn copy_status_round_trip(v in any::<(bool, u16, u8, u32)>(), st in 0u8..0x80) {
            let s = CopyStatus {
                hdd: v.0,
                status: CopyManagerStatus(st),
                segments_processed: v.1,
                units: TransferCountUnits(v.2),
                transfer_count: v.3,
            };
            prop_assert_eq!(CopyStatus::parse(&s.to_vec()).unwrap(), s);
        }

        #[test]
        fn details_round_trip(st in any::<u8>(), sense in prop::collection::vec(any::<u8>(), 0..100)) {
            let d = FailedSegmentDetails::new(Status(st), sense);
            prop_assert_eq!(FailedSegmentDetails::parse(&d.to_vec()).unwrap(), d.clone());
            let r = ReceiveData::new(d.to_vec());
            prop_assert_eq!(ReceiveData::parse(&r.to_vec()).unwrap(), r);
        }
    }
}
