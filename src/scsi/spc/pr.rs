//! Reservations: PERSISTENT RESERVE IN / OUT (SPC-4 r37 6.15, 6.16) and the
//! older RESERVE(6) / RELEASE(6) (SPC-2 7.21, 7.17; obsolete since SPC-3).

use std::fmt;

use serde::Serialize;

use super::check_cdb;
use crate::scsi::{be_uint, need, open_code, put_be, Cdb, CdbCodec, Opcode, ParseError, Wire};

open_code! {
    /// PERSISTENT RESERVE IN service action (SPC-4 6.15.1).
    PrInAction(u8) {
        READ_KEYS = 0 => "READ KEYS",
        READ_RESERVATION = 1 => "READ RESERVATION",
        REPORT_CAPABILITIES = 2 => "REPORT CAPABILITIES",
        READ_FULL_STATUS = 3 => "READ FULL STATUS",
    }
}

open_code! {
    /// PERSISTENT RESERVE OUT service action (SPC-4 6.16.2).
    PrOutAction(u8) {
        REGISTER = 0 => "REGISTER",
        RESERVE = 1 => "RESERVE",
        RELEASE = 2 => "RELEASE",
        CLEAR = 3 => "CLEAR",
        PREEMPT = 4 => "PREEMPT",
        PREEMPT_AND_ABORT = 5 => "PREEMPT AND ABORT",
        REGISTER_AND_IGNORE = 6 => "REGISTER AND IGNORE EXISTING KEY",
        REGISTER_AND_MOVE = 7 => "REGISTER AND MOVE",
        REPLACE_LOST_RESERVATION = 8 => "REPLACE LOST RESERVATION",
    }
}

open_code! {
    /// Persistent reservation TYPE (SPC-4 6.15.3.4).
    PrType(u8) {
        WRITE_EXCLUSIVE = 1 => "Write Exclusive",
        EXCLUSIVE_ACCESS = 3 => "Exclusive Access",
        WE_REGISTRANTS_ONLY = 5 => "Write Exclusive - Registrants Only",
        EA_REGISTRANTS_ONLY = 6 => "Exclusive Access - Registrants Only",
        WE_ALL_REGISTRANTS = 7 => "Write Exclusive - All Registrants",
        EA_ALL_REGISTRANTS = 8 => "Exclusive Access - All Registrants",
    }
}

/// SCOPE 0h: the whole logical unit, the only scope left in SPC-4.
pub const LU_SCOPE: u8 = 0;

/// PERSISTENT RESERVE IN (SPC-4 6.15.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistentReserveIn {
    pub action: PrInAction,
    pub alloc_len: u16,
}

impl CdbCodec for PersistentReserveIn {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::PERSISTENT_RESERVE_IN, 10);
        let b = c.as_mut_bytes();
        b[1] = self.action.0 & 0x1f;
        put_be(&mut b[7..9], self.alloc_len as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb(
            "PERSISTENT RESERVE IN",
            cdb,
            Opcode::PERSISTENT_RESERVE_IN,
            10,
        )?;
        Ok(PersistentReserveIn {
            action: PrInAction(cdb[1] & 0x1f),
            alloc_len: be_uint(&cdb[7..9]) as u16,
        })
    }
}

/// The length a PERSISTENT RESERVE IN response wants (ADDITIONAL LENGTH + 8)
/// from its first 8 bytes: re-issue with this allocation to get it all.
pub fn pr_in_full_len(buf: &[u8]) -> Option<usize> {
    buf.get(4..8).map(|b| be_uint(b) as usize + 8)
}

/// READ KEYS parameter data (SPC-4 6.15.2): the generation and the
/// registered reservation keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrKeys {
    /// PRGENERATION.
    pub generation: u32,
    /// The keys that fitted in the buffer (see [`pr_in_full_len`]).
    pub keys: Vec<u64>,
}

impl Wire for PrKeys {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need("READ KEYS data", buf, 8)?;
        let end = buf
            .len()
            .min(8usize.saturating_add(be_uint(&buf[4..8]) as usize));
        Ok(PrKeys {
            generation: be_uint(&buf[0..4]) as u32,
            keys: buf[8..end].chunks_exact(8).map(be_uint).collect(),
        })
    }

    fn buffer_len(&self) -> usize {
        8 + 8 * self.keys.len()
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..self.buffer_len()];
        put_be(&mut b[0..4], self.generation as u64);
        put_be(&mut b[4..8], 8 * self.keys.len() as u64);
        for (c, k) in b[8..].chunks_exact_mut(8).zip(&self.keys) {
            put_be(c, *k);
        }
    }
}

/// The persistent reservation holder's key, scope and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PrHolder {
    pub key: u64,
    /// 4 bits; [`LU_SCOPE`].
    pub scope: u8,
    pub pr_type: PrType,
}

/// READ RESERVATION parameter data (SPC-4 6.15.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrReservation {
    pub generation: u32,
    /// None when no persistent reservation is held (ADDITIONAL LENGTH 0).
    pub reservation: Option<PrHolder>,
}

impl Wire for PrReservation {
    /// A buffer that the ADDITIONAL LENGTH says should hold a reservation
    /// but is too short for one is an error, not "no reservation".
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "READ RESERVATION data";
        need(W, buf, 8)?;
        let generation = be_uint(&buf[0..4]) as u32;
        let reservation = match be_uint(&buf[4..8]) {
            0 => None,
            n if n < 16 => {
                return Err(ParseError::invalid(W, format!("additional length {n}")));
            }
            _ => {
                need(W, buf, 24)?;
                Some(PrHolder {
                    key: be_uint(&buf[8..16]),
                    scope: buf[21] >> 4,
                    pr_type: PrType(buf[21] & 0x0f),
                })
            }
        };
        Ok(PrReservation {
            generation,
            reservation,
        })
    }

    fn buffer_len(&self) -> usize {
        if self.reservation.is_some() {
            24
        } else {
            8
        }
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..self.buffer_len()];
        b.fill(0);
        put_be(&mut b[0..4], self.generation as u64);
        if let Some(h) = &self.reservation {
            put_be(&mut b[4..8], 16);
            put_be(&mut b[8..16], h.key);
            // Bytes 16..19 (scope-specific address) are obsolete: zero.
            b[21] = (h.scope & 0x0f) << 4 | (h.pr_type.0 & 0x0f);
        }
    }
}

/// PERSISTENT RESERVE OUT (SPC-4 6.16.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistentReserveOut {
    pub action: PrOutAction,
    /// 4 bits; [`LU_SCOPE`].
    pub scope: u8,
    /// Ignored by the device for REGISTER, REGISTER AND IGNORE and CLEAR.
    pub pr_type: PrType,
    /// 24 for the basic parameter list ([`PrOutParameters`]).
    pub param_len: u32,
}

impl PersistentReserveOut {
    /// The usual case: LU scope, the basic 24-byte parameter list.
    pub fn new(action: PrOutAction, pr_type: PrType) -> Self {
        PersistentReserveOut {
            action,
            scope: LU_SCOPE,
            pr_type,
            param_len: PrOutParameters::LEN as u32,
        }
    }
}

impl CdbCodec for PersistentReserveOut {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::PERSISTENT_RESERVE_OUT, 10);
        let b = c.as_mut_bytes();
        b[1] = self.action.0 & 0x1f;
        b[2] = (self.scope & 0x0f) << 4 | (self.pr_type.0 & 0x0f);
        put_be(&mut b[5..9], self.param_len as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb(
            "PERSISTENT RESERVE OUT",
            cdb,
            Opcode::PERSISTENT_RESERVE_OUT,
            10,
        )?;
        Ok(PersistentReserveOut {
            action: PrOutAction(cdb[1] & 0x1f),
            scope: cdb[2] >> 4,
            pr_type: PrType(cdb[2] & 0x0f),
            param_len: be_uint(&cdb[5..9]) as u32,
        })
    }
}

/// The basic PERSISTENT RESERVE OUT parameter list (SPC-4 6.16.3), 24
/// bytes; transport IDs after it (SPEC_I_PT) are not carried here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PrOutParameters {
    /// RESERVATION KEY: the sender's current key (0 when not registered).
    pub key: u64,
    /// SERVICE ACTION RESERVATION KEY: the new key (REGISTER) or the key
    /// to preempt (PREEMPT).
    pub service_action_key: u64,
    pub spec_i_pt: bool,
    pub all_tg_pt: bool,
    /// APTPL: keep the reservation across power loss.
    pub aptpl: bool,
}

bitflags::bitflags! {
    /// Byte 20 of the PERSISTENT RESERVE OUT parameter list (SPC-4 6.16.3).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct PrOutFlags: u8 {
        const SPEC_I_PT = 0x08;
        const ALL_TG_PT = 0x04;
        const APTPL = 0x01;
    }
}

impl PrOutParameters {
    pub const LEN: usize = 24;

    fn flags(&self) -> PrOutFlags {
        let mut f = PrOutFlags::empty();
        f.set(PrOutFlags::SPEC_I_PT, self.spec_i_pt);
        f.set(PrOutFlags::ALL_TG_PT, self.all_tg_pt);
        f.set(PrOutFlags::APTPL, self.aptpl);
        f
    }
}

impl Wire for PrOutParameters {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need("PERSISTENT RESERVE OUT parameters", buf, Self::LEN)?;
        let f = PrOutFlags::from_bits_truncate(buf[20]);
        Ok(PrOutParameters {
            key: be_uint(&buf[0..8]),
            service_action_key: be_uint(&buf[8..16]),
            spec_i_pt: f.contains(PrOutFlags::SPEC_I_PT),
            all_tg_pt: f.contains(PrOutFlags::ALL_TG_PT),
            aptpl: f.contains(PrOutFlags::APTPL),
        })
    }

    fn buffer_len(&self) -> usize {
        Self::LEN
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..Self::LEN];
        b.fill(0);
        put_be(&mut b[0..8], self.key);
        put_be(&mut b[8..16], self.service_action_key);
        b[20] = self.flags().bits();
    }
}

/// RESERVE(6) (SPC-2 7.21): the whole logical unit; the third-party and
/// extent fields are obsolete and sent as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reserve6;

/// RELEASE(6) (SPC-2 7.17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Release6;

impl CdbCodec for Reserve6 {
    fn to_cdb(&self) -> Cdb {
        Cdb::zeroed(Opcode::RESERVE_6, 6)
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("RESERVE(6)", cdb, Opcode::RESERVE_6, 6)?;
        Ok(Reserve6)
    }
}

impl CdbCodec for Release6 {
    fn to_cdb(&self) -> Cdb {
        Cdb::zeroed(Opcode::RELEASE_6, 6)
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("RELEASE(6)", cdb, Opcode::RELEASE_6, 6)?;
        Ok(Release6)
    }
}

/// RESERVE(10) (SPC-2 7.22): the whole logical unit; third-party and
/// long-ID reservations (byte 1) are not carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reserve10 {
    /// Byte 1: 3RDPTY (bit 4) and LONGID (bit 1); kept so a target can
    /// refuse what it does not do.
    pub flags: u8,
}

/// RELEASE(10) (SPC-2 7.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Release10 {
    /// Byte 1, as for [`Reserve10`].
    pub flags: u8,
}

impl Reserve10 {
    /// 3RDPTY: reserve for another initiator (SPC-2 7.22.2).
    pub const THIRD_PARTY: u8 = 0x10;
}

impl CdbCodec for Reserve10 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::RESERVE_10, 10);
        c.as_mut_bytes()[1] = self.flags;
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("RESERVE(10)", cdb, Opcode::RESERVE_10, 10)?;
        Ok(Reserve10 { flags: cdb[1] })
    }
}

impl CdbCodec for Release10 {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::RELEASE_10, 10);
        c.as_mut_bytes()[1] = self.flags;
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        check_cdb("RELEASE(10)", cdb, Opcode::RELEASE_10, 10)?;
        Ok(Release10 { flags: cdb[1] })
    }
}

bitflags::bitflags! {
    /// PERSISTENT RESERVATION TYPE MASK of REPORT CAPABILITIES (SPC-4
    /// 6.15.4), bytes 4..6 read as one big-endian u16.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct PrTypeMask: u16 {
        const WR_EX_AR = 0x8000;
        const EX_AC_RO = 0x4000;
        const WR_EX_RO = 0x2000;
        const EX_AC = 0x0800;
        const WR_EX = 0x0200;
        const EX_AC_AR = 0x0001;
    }
}

impl PrTypeMask {
    /// The bit of a reservation type; empty for a type SPC-4 does not name.
    pub fn of(t: PrType) -> PrTypeMask {
        match t {
            PrType::WRITE_EXCLUSIVE => PrTypeMask::WR_EX,
            PrType::EXCLUSIVE_ACCESS => PrTypeMask::EX_AC,
            PrType::WE_REGISTRANTS_ONLY => PrTypeMask::WR_EX_RO,
            PrType::EA_REGISTRANTS_ONLY => PrTypeMask::EX_AC_RO,
            PrType::WE_ALL_REGISTRANTS => PrTypeMask::WR_EX_AR,
            PrType::EA_ALL_REGISTRANTS => PrTypeMask::EX_AC_AR,
            _ => PrTypeMask::empty(),
        }
    }
}

bitflags::bitflags! {
    /// Byte 2 of REPORT CAPABILITIES (SPC-4 6.15.4).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct PrCapFlags: u8 {
        /// Replace Lost Reservation capable.
        const RLR_C = 0x80;
        /// Compatible Reservation Handling (SPC-4 5.13.3).
        const CRH = 0x10;
        /// Specify Initiator Ports capable.
        const SIP_C = 0x08;
        /// All Target Ports capable.
        const ATP_C = 0x04;
        /// Persist Through Power Loss capable.
        const PTPL_C = 0x01;
    }
}

/// REPORT CAPABILITIES parameter data (SPC-4 6.15.4), 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrCapabilities {
    pub flags: PrCapFlags,
    /// TMV: the type mask is valid.
    pub type_mask_valid: bool,
    /// ALLOW COMMANDS (3 bits): 001b says TEST UNIT READY passes WE and
    /// EA reservations.
    pub allow_commands: u8,
    /// PTPL_A: persist through power loss is on now.
    pub ptpl_active: bool,
    pub type_mask: PrTypeMask,
}

impl Wire for PrCapabilities {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "REPORT CAPABILITIES data";
        need(W, buf, 8)?;
        let len = be_uint(&buf[0..2]);
        if len < 8 {
            return Err(ParseError::invalid_at(W, format!("length {len}"), 0, None));
        }
        Ok(PrCapabilities {
            flags: PrCapFlags::from_bits_truncate(buf[2]),
            type_mask_valid: buf[3] & 0x80 != 0,
            allow_commands: (buf[3] >> 4) & 0x07,
            ptpl_active: buf[3] & 0x01 != 0,
            type_mask: PrTypeMask::from_bits_truncate(be_uint(&buf[4..6]) as u16),
        })
    }

    fn buffer_len(&self) -> usize {
        8
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..8];
        b.fill(0);
        put_be(&mut b[0..2], 8);
        b[2] = self.flags.bits();
        b[3] = (self.type_mask_valid as u8) << 7
            | (self.allow_commands & 0x07) << 4
            | self.ptpl_active as u8;
        put_be(&mut b[4..6], self.type_mask.bits() as u64);
    }
}

/// An iSCSI TransportID (SPC-4 7.6.4.6): the initiator's iSCSI name, and
/// with format 01b the ISID of its session ("NAME,i,0xISID").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IscsiTransportId {
    pub name: String,
    /// 48 bits; present in format 01b.
    pub isid: Option<u64>,
}

/// PROTOCOL IDENTIFIER of iSCSI (SPC-4 7.6.1).
pub const ISCSI_PROTOCOL_ID: u8 = 0x5;

impl IscsiTransportId {
    fn text(&self) -> String {
        match self.isid {
            Some(i) => format!("{},i,0x{:012x}", self.name, i & 0xffff_ffff_ffff),
            None => self.name.clone(),
        }
    }
}

impl Wire for IscsiTransportId {
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "iSCSI TransportID";
        need(W, buf, 4)?;
        if buf[0] & 0x0f != ISCSI_PROTOCOL_ID {
            let why = format!("protocol identifier {:#x}", buf[0] & 0x0f);
            return Err(ParseError::invalid_at(W, why, 0, Some(0)));
        }
        let len = be_uint(&buf[2..4]) as usize;
        need(W, buf, 4 + len)?;
        let body = &buf[4..4 + len];
        let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
        let text = String::from_utf8_lossy(&body[..end]).into_owned();
        if buf[0] >> 6 == 0 {
            return Ok(IscsiTransportId {
                name: text,
                isid: None,
            });
        }
        let bad = || ParseError::invalid_at(W, "no \",i,0x\" ISID", 4, None);
        let (name, isid) = text.split_once(",i,0x").ok_or_else(bad)?;
        let isid = u64::from_str_radix(isid, 16).map_err(|_| bad())?;
        Ok(IscsiTransportId {
            name: name.to_string(),
            isid: Some(isid),
        })
    }

    /// NUL-terminated, padded to a multiple of four, at least 20 bytes
    /// in all (SPC-4 7.6.4.6).
    fn buffer_len(&self) -> usize {
        let body = (self.text().len() + 1).next_multiple_of(4);
        4 + body.max(16)
    }

    fn emit(&self, buf: &mut [u8]) {
        let n = self.buffer_len();
        let b = &mut buf[..n];
        b.fill(0);
        let format = if self.isid.is_some() { 0x40 } else { 0 };
        b[0] = format | ISCSI_PROTOCOL_ID;
        put_be(&mut b[2..4], (n - 4) as u64);
        let t = self.text();
        b[4..4 + t.len()].copy_from_slice(t.as_bytes());
    }
}

/// One registration in READ FULL STATUS (SPC-4 6.15.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrStatusDescriptor {
    pub key: u64,
    pub all_tg_pt: bool,
    /// R_HOLDER: this I_T nexus holds the reservation.
    pub holder: bool,
    pub scope: u8,
    /// Meaningful when `holder`.
    pub pr_type: PrType,
    pub relative_target_port: u16,
    /// The initiator's TransportID, raw ([`IscsiTransportId`] decodes
    /// iSCSI's).
    #[serde(serialize_with = "super::ser_hex")]
    pub transport_id: Vec<u8>,
}

/// READ FULL STATUS parameter data (SPC-4 6.15.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrFullStatus {
    pub generation: u32,
    pub descriptors: Vec<PrStatusDescriptor>,
}

impl PrStatusDescriptor {
    fn parse_at(buf: &[u8]) -> Result<(Self, usize), ParseError> {
        const W: &str = "READ FULL STATUS descriptor";
        need(W, buf, 24)?;
        let tid_len = be_uint(&buf[20..24]) as usize;
        need(W, buf, 24 + tid_len)?;
        let d = PrStatusDescriptor {
            key: be_uint(&buf[0..8]),
            all_tg_pt: buf[12] & 0x02 != 0,
            holder: buf[12] & 0x01 != 0,
            scope: buf[13] >> 4,
            pr_type: PrType(buf[13] & 0x0f),
            relative_target_port: be_uint(&buf[18..20]) as u16,
            transport_id: buf[24..24 + tid_len].to_vec(),
        };
        Ok((d, 24 + tid_len))
    }

    fn emit_at(&self, b: &mut [u8]) -> usize {
        let n = 24 + self.transport_id.len();
        let b = &mut b[..n];
        b.fill(0);
        put_be(&mut b[0..8], self.key);
        b[12] = (self.all_tg_pt as u8) << 1 | self.holder as u8;
        b[13] = (self.scope & 0x0f) << 4 | (self.pr_type.0 & 0x0f);
        put_be(&mut b[18..20], self.relative_target_port as u64);
        put_be(&mut b[20..24], self.transport_id.len() as u64);
        b[24..].copy_from_slice(&self.transport_id);
        n
    }
}

impl Wire for PrFullStatus {
    /// Descriptors that the allocation cut off are left out; one that the
    /// ADDITIONAL LENGTH holds but that overruns it is an error.
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need("READ FULL STATUS data", buf, 8)?;
        let declared = 8usize.saturating_add(be_uint(&buf[4..8]) as usize);
        let end = buf.len().min(declared);
        let mut descriptors = Vec::new();
        let mut at = 8;
        while at < end {
            match PrStatusDescriptor::parse_at(&buf[at..end]) {
                Ok((d, n)) => {
                    descriptors.push(d);
                    at += n;
                }
                // Cut by the allocation length: keep what arrived whole.
                Err(ParseError::Truncated { .. }) if end < declared => break,
                Err(e) => return Err(e.shifted(at)),
            }
        }
        Ok(PrFullStatus {
            generation: be_uint(&buf[0..4]) as u32,
            descriptors,
        })
    }

    fn buffer_len(&self) -> usize {
        8 + self
            .descriptors
            .iter()
            .map(|d| 24 + d.transport_id.len())
            .sum::<usize>()
    }

    fn emit(&self, buf: &mut [u8]) {
        let n = self.buffer_len();
        let b = &mut buf[..n];
        put_be(&mut b[0..4], self.generation as u64);
        put_be(&mut b[4..8], (n - 8) as u64);
        let mut at = 8;
        for d in &self.descriptors {
            at += d.emit_at(&mut b[at..]);
        }
    }
}

impl fmt::Display for PrHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {:#018x}, {}", self.key, self.pr_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pr_in_cdb_golden() {
        let c = PersistentReserveIn {
            action: PrInAction::READ_RESERVATION,
            alloc_len: 0x2000,
        };
        let bytes = [0x5e, 0x01, 0, 0, 0, 0, 0, 0x20, 0x00, 0];
        assert_eq!(c.to_cdb().as_bytes(), &bytes);
        assert_eq!(PersistentReserveIn::parse(&bytes), Ok(c));
        assert!(PersistentReserveIn::parse(&bytes[..9]).is_err());
    }

    #[test]
    fn pr_out_cdb_golden() {
        let c = PersistentReserveOut::new(PrOutAction::RESERVE, PrType::WE_REGISTRANTS_ONLY);
        let bytes = [0x5f, 0x01, 0x05, 0, 0, 0, 0, 0, 24, 0];
        assert_eq!(c.to_cdb().as_bytes(), &bytes);
        assert_eq!(PersistentReserveOut::parse(&bytes), Ok(c));
        assert!(PersistentReserveOut::parse(&bytes[..9]).is_err());
        assert!(PersistentReserveOut::parse(&[0x5e, 1, 5, 0, 0, 0, 0, 0, 24, 0]).is_err());
        // Every action the brief names encodes in byte 1.
        for (a, v) in [
            (PrOutAction::REGISTER, 0),
            (PrOutAction::RELEASE, 2),
            (PrOutAction::CLEAR, 3),
            (PrOutAction::PREEMPT, 4),
            (PrOutAction::REGISTER_AND_IGNORE, 6),
        ] {
            let c = PersistentReserveOut::new(a, PrType::EXCLUSIVE_ACCESS);
            assert_eq!(c.to_cdb().as_bytes()[1], v);
            assert_eq!(c.to_cdb().as_bytes()[2], 0x03);
        }
    }

    #[test]
    fn pr_keys_golden() {
        let bytes = [
            0, 0, 0, 7, 0, 0, 0, 16, // generation 7, two keys
            0, 0, 0, 0, 0, 0, 0xab, 0xcd, // key 1
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // key 2
        ];
        let k = PrKeys {
            generation: 7,
            keys: vec![0xabcd, 0x1122_3344_5566_7788],
        };
        assert_eq!(k.to_vec(), bytes);
        assert_eq!(PrKeys::parse(&bytes), Ok(k));
        assert_eq!(pr_in_full_len(&bytes), Some(24));
        // Allocation cut after one and a half keys.
        assert_eq!(PrKeys::parse(&bytes[..20]).unwrap().keys, vec![0xabcd]);
        assert!(PrKeys::parse(&bytes[..7]).is_err());
    }

    #[test]
    fn pr_reservation_golden() {
        let bytes = [
            0, 0, 0, 9, 0, 0, 0, 16, // generation 9, one holder
            0, 0, 0, 0, 0, 0, 0xab, 0xcd, // key
            0, 0, 0, 0, 0, 0x03, 0, 0, // LU scope, exclusive access
        ];
        let r = PrReservation {
            generation: 9,
            reservation: Some(PrHolder {
                key: 0xabcd,
                scope: LU_SCOPE,
                pr_type: PrType::EXCLUSIVE_ACCESS,
            }),
        };
        assert_eq!(r.to_vec(), bytes);
        assert_eq!(PrReservation::parse(&bytes), Ok(r));
        assert!(PrReservation::parse(&bytes[..23]).is_err());
        assert!(PrReservation::parse(&bytes[..7]).is_err());

        let none = [0, 0, 0, 9, 0, 0, 0, 0];
        let n = PrReservation {
            generation: 9,
            reservation: None,
        };
        assert_eq!(n.to_vec(), none);
        assert_eq!(PrReservation::parse(&none), Ok(n));
        assert!(PrReservation::parse(&[0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn pr_out_parameters_golden() {
        // REGISTER a new key 0x1234 with APTPL and ALL_TG_PT.
        let bytes = [
            0, 0, 0, 0, 0, 0, 0, 0, // current key: none
            0, 0, 0, 0, 0, 0, 0x12, 0x34, // new key
            0, 0, 0, 0, 0x05, 0, 0, 0,
        ];
        let p = PrOutParameters {
            key: 0,
            service_action_key: 0x1234,
            spec_i_pt: false,
            all_tg_pt: true,
            aptpl: true,
        };
        assert_eq!(p.to_vec(), bytes);
        assert_eq!(PrOutParameters::parse(&bytes), Ok(p));
        assert!(PrOutParameters::parse(&bytes[..23]).is_err());
        let mut s = bytes;
        s[20] = 0x08;
        assert!(PrOutParameters::parse(&s).unwrap().spec_i_pt);
    }

    #[test]
    fn reserve_release_golden() {
        assert_eq!(Reserve6.to_cdb().as_bytes(), &[0x16, 0, 0, 0, 0, 0]);
        assert_eq!(Release6.to_cdb().as_bytes(), &[0x17, 0, 0, 0, 0, 0]);
        assert_eq!(Reserve6::parse(&[0x16, 0, 0, 0, 0, 0]), Ok(Reserve6));
        assert_eq!(Release6::parse(&[0x17, 0, 0, 0, 0, 0]), Ok(Release6));
        assert!(Reserve6::parse(&[0x17, 0, 0, 0, 0, 0]).is_err());
        assert!(Release6::parse(&[0x17, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn reserve_release_10_golden() {
        let r = Reserve10::default();
        assert_eq!(r.to_cdb().as_bytes(), &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Reserve10::parse(r.to_cdb().as_bytes()), Ok(r));
        let t = Reserve10 {
            flags: Reserve10::THIRD_PARTY,
        };
        assert_eq!(t.to_cdb().as_bytes()[1], 0x10);
        let l = Release10::default();
        assert_eq!(l.to_cdb().as_bytes(), &[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Release10::parse(l.to_cdb().as_bytes()), Ok(l));
        assert!(Release10::parse(&[0x57, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(Reserve10::parse(&[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn report_capabilities_golden() {
        let bytes = [0, 8, 0x10, 0x91, 0xea, 0x01, 0, 0];
        let c = PrCapabilities {
            flags: PrCapFlags::CRH,
            type_mask_valid: true,
            allow_commands: 1,
            ptpl_active: true,
            type_mask: PrTypeMask::all(),
        };
        assert_eq!(c.to_vec(), bytes);
        assert_eq!(PrCapabilities::parse(&bytes), Ok(c));
        assert!(PrCapabilities::parse(&bytes[..7]).is_err());
        assert!(PrCapabilities::parse(&[0, 7, 0, 0, 0, 0, 0, 0]).is_err());
        assert_eq!(PrTypeMask::of(PrType::WRITE_EXCLUSIVE), PrTypeMask::WR_EX);
        assert_eq!(PrTypeMask::of(PrType(2)), PrTypeMask::empty());
    }

    #[test]
    fn iscsi_transport_id_golden() {
        // Format 01b: "iqn.x,i,0x" + 12 hex digits, NUL, padded to 4.
        let t = IscsiTransportId {
            name: "iqn.x".into(),
            isid: Some(0x2300_0000_0001),
        };
        let text = b"iqn.x,i,0x230000000001";
        assert_eq!(t.buffer_len(), 4 + 24);
        let v = t.to_vec();
        assert_eq!(&v[..4], &[0x45, 0, 0, 24]);
        assert_eq!(&v[4..4 + text.len()], text);
        assert!(v[4 + text.len()..].iter().all(|&b| b == 0));
        assert_eq!(IscsiTransportId::parse(&v), Ok(t));
        // Format 00b, padded to the 20-byte minimum.
        let n = IscsiTransportId {
            name: "iqn.a".into(),
            isid: None,
        };
        assert_eq!(n.to_vec()[..4], [0x05, 0, 0, 16]);
        assert_eq!(n.buffer_len(), 20);
        assert_eq!(IscsiTransportId::parse(&n.to_vec()), Ok(n));
        assert!(IscsiTransportId::parse(&v[..20]).is_err());
        let mut fc = v.clone();
        fc[0] = 0x40;
        assert!(IscsiTransportId::parse(&fc).is_err());
    }

    #[test]
    fn full_status_golden() {
        let tid = IscsiTransportId {
            name: "iqn.a".into(),
            isid: None,
        }
        .to_vec();
        let s = PrFullStatus {
            generation: 3,
            descriptors: vec![PrStatusDescriptor {
                key: 0xabcd,
                all_tg_pt: false,
                holder: true,
                scope: LU_SCOPE,
                pr_type: PrType::WRITE_EXCLUSIVE,
                relative_target_port: 1,
                transport_id: tid.clone(),
            }],
        };
        let mut bytes = vec![0, 0, 0, 3, 0, 0, 0, 44];
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0x01, 0x01, 0, 0, 0, 0, 0, 1, 0, 0, 0, 20]);
        bytes.extend_from_slice(&tid);
        assert_eq!(s.to_vec(), bytes);
        assert_eq!(PrFullStatus::parse(&bytes), Ok(s));
        // Cut by the allocation: the descriptor is left out, no error.
        assert_eq!(
            PrFullStatus::parse(&bytes[..40]).unwrap().descriptors,
            vec![]
        );
        // A descriptor overrunning the ADDITIONAL LENGTH is an error.
        let mut bad = bytes.clone();
        bad[7] = 40;
        assert!(PrFullStatus::parse(&bad).is_err());
        assert!(PrFullStatus::parse(&bytes[..7]).is_err());
    }

    proptest! {
        #[test]
        fn pr_never_panics(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = PersistentReserveIn::parse(&b);
            let _ = PersistentReserveOut::parse(&b);
            let _ = PrKeys::parse(&b);
            let _ = PrReservation::parse(&b);
            let _ = PrOutParameters::parse(&b);
            let _ = Reserve6::parse(&b);
            let _ = Release6::parse(&b);
            let _ = Reserve10::parse(&b);
            let _ = Release10::parse(&b);
            let _ = PrCapabilities::parse(&b);
            let _ = PrFullStatus::parse(&b);
            let _ = IscsiTransportId::parse(&b);
        }

        #[test]
        fn pr_round_trips(
            gen: u32, keys in proptest::collection::vec(any::<u64>(), 0..10),
            key: u64, sak: u64, f1: bool, f2: bool, f3: bool,
            scope in 0u8..16, t in 0u8..16, a in 0u8..32, len: u32,
        ) {
            let k = PrKeys { generation: gen, keys };
            prop_assert_eq!(PrKeys::parse(&k.to_vec()), Ok(k));
            let h = PrHolder { key, scope, pr_type: PrType(t) };
            let r = PrReservation { generation: gen, reservation: f1.then_some(h) };
            prop_assert_eq!(PrReservation::parse(&r.to_vec()), Ok(r));
            let p = PrOutParameters { key, service_action_key: sak, spec_i_pt: f1, all_tg_pt: f2, aptpl: f3 };
            prop_assert_eq!(PrOutParameters::parse(&p.to_vec()), Ok(p));
            let o = PersistentReserveOut { action: PrOutAction(a), scope, pr_type: PrType(t), param_len: len };
            prop_assert_eq!(PersistentReserveOut::parse(o.to_cdb().as_bytes()), Ok(o));
            let i = PersistentReserveIn { action: PrInAction(a), alloc_len: len as u16 };
            prop_assert_eq!(PersistentReserveIn::parse(i.to_cdb().as_bytes()), Ok(i));
        }
    }
}
