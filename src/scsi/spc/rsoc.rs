//! REPORT SUPPORTED OPERATION CODES (SPC-4 6.35): MAINTENANCE IN (0xA3)
//! service action 0x0C.

use serde::Serialize;

use super::{check_cdb, ser_hex};
use crate::scsi::{be_uint, need, put_be, Cdb, CdbCodec, Opcode, ParseError, Wire};

/// The MAINTENANCE IN service action of REPORT SUPPORTED OPERATION CODES.
pub const RSOC_SERVICE_ACTION: u8 = 0x0c;

/// REPORTING OPTIONS values (SPC-4 6.35.1).
pub mod reporting_options {
    /// Every command, in the all-commands form.
    pub const ALL: u8 = 0;
    /// One command without a service action.
    pub const ONE: u8 = 1;
    /// One command with a service action.
    pub const ONE_WITH_SA: u8 = 2;
    /// One command, service action or not (SPC-4 r37 and later).
    pub const ONE_ANY: u8 = 3;
}

/// SUPPORT values of the one-command form (SPC-4 6.35.3).
pub mod support {
    /// Data about the command is not available now.
    pub const NOT_AVAILABLE: u8 = 0;
    pub const NOT_SUPPORTED: u8 = 1;
    /// Supported as the standard says.
    pub const STANDARD: u8 = 3;
    /// Supported in a vendor-specific way.
    pub const VENDOR: u8 = 5;
}

/// REPORT SUPPORTED OPERATION CODES (SPC-4 6.35.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportSupportedOpcodes {
    /// RCTD: include command timeouts descriptors.
    pub rctd: bool,
    /// REPORTING OPTIONS, 3 bits: see [`reporting_options`].
    pub options: u8,
    /// REQUESTED OPERATION CODE (one-command forms).
    pub opcode: Opcode,
    /// REQUESTED SERVICE ACTION (one-command forms).
    pub service_action: u16,
    pub alloc_len: u32,
}

impl ReportSupportedOpcodes {
    /// The all-commands form.
    pub fn all(alloc_len: u32) -> Self {
        ReportSupportedOpcodes {
            rctd: false,
            options: reporting_options::ALL,
            opcode: Opcode(0),
            service_action: 0,
            alloc_len,
        }
    }

    /// One command, with or without a service action.
    pub fn one(opcode: Opcode, service_action: Option<u16>, alloc_len: u32) -> Self {
        ReportSupportedOpcodes {
            rctd: false,
            options: match service_action {
                Some(_) => reporting_options::ONE_WITH_SA,
                None => reporting_options::ONE,
            },
            opcode,
            service_action: service_action.unwrap_or(0),
            alloc_len,
        }
    }
}

impl CdbCodec for ReportSupportedOpcodes {
    fn to_cdb(&self) -> Cdb {
        let mut c = Cdb::zeroed(Opcode::MAINTENANCE_IN, 12);
        let b = c.as_mut_bytes();
        b[1] = RSOC_SERVICE_ACTION;
        b[2] = (self.rctd as u8) << 7 | (self.options & 7);
        b[3] = self.opcode.0;
        put_be(&mut b[4..6], self.service_action as u64);
        put_be(&mut b[6..10], self.alloc_len as u64);
        c
    }

    fn parse(cdb: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "REPORT SUPPORTED OPERATION CODES";
        check_cdb(W, cdb, Opcode::MAINTENANCE_IN, 12)?;
        if cdb[1] & 0x1f != RSOC_SERVICE_ACTION {
            return Err(ParseError::invalid(
                W,
                format!("service action {:#04x}", cdb[1] & 0x1f),
            ));
        }
        Ok(ReportSupportedOpcodes {
            rctd: cdb[2] & 0x80 != 0,
            options: cdb[2] & 7,
            opcode: Opcode(cdb[3]),
            service_action: be_uint(&cdb[4..6]) as u16,
            alloc_len: be_uint(&cdb[6..10]) as u32,
        })
    }
}

/// The command timeouts descriptor that follows a command descriptor when
/// CTDP is set (SPC-4 6.35.4): a 2-byte length (0x0A) and 10 bytes.
const TIMEOUTS_LEN: usize = 12;

/// One entry of the all-commands list (SPC-4 6.35.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CommandDescriptor {
    pub opcode: Opcode,
    /// Some when SERVACTV is set.
    pub service_action: Option<u16>,
    /// CDB LENGTH.
    pub cdb_len: u16,
}

/// All-commands parameter data (SPC-4 6.35.2). Command timeouts
/// descriptors are skipped on parse and never emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupportedOpcodes {
    pub commands: Vec<CommandDescriptor>,
}

impl SupportedOpcodes {
    const DESC_LEN: usize = 8;

    /// The length the device wants (COMMAND DATA LENGTH + 4).
    pub fn full_len(buf: &[u8]) -> Option<usize> {
        buf.get(..4).map(|b| be_uint(b) as usize + 4)
    }

    /// Whether `opcode` (with that service action, if given) is listed.
    pub fn supports(&self, opcode: Opcode, service_action: Option<u16>) -> bool {
        self.commands
            .iter()
            .any(|c| c.opcode == opcode && c.service_action == service_action)
    }
}

impl Wire for SupportedOpcodes {
    /// Descriptors that the buffer cut off are dropped.
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        need("supported operation codes", buf, 4)?;
        let end = buf
            .len()
            .min(4usize.saturating_add(be_uint(&buf[0..4]) as usize));
        let mut commands = Vec::new();
        let mut off = 4;
        while off + Self::DESC_LEN <= end {
            let d = &buf[off..off + Self::DESC_LEN];
            let ctdp = d[5] & 0x02 != 0;
            commands.push(CommandDescriptor {
                opcode: Opcode(d[0]),
                service_action: (d[5] & 0x01 != 0).then(|| be_uint(&d[2..4]) as u16),
                cdb_len: be_uint(&d[6..8]) as u16,
            });
            off += Self::DESC_LEN + if ctdp { TIMEOUTS_LEN } else { 0 };
        }
        Ok(SupportedOpcodes { commands })
    }

    fn buffer_len(&self) -> usize {
        4 + Self::DESC_LEN * self.commands.len()
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..self.buffer_len()];
        b.fill(0);
        put_be(&mut b[0..4], (Self::DESC_LEN * self.commands.len()) as u64);
        for (d, c) in b[4..].chunks_exact_mut(Self::DESC_LEN).zip(&self.commands) {
            d[0] = c.opcode.0;
            if let Some(sa) = c.service_action {
                put_be(&mut d[2..4], sa as u64);
                d[5] = 0x01; // SERVACTV
            }
            put_be(&mut d[6..8], c.cdb_len as u64);
        }
    }
}

impl SupportedOpcodes {
    /// The all-commands data with a command timeouts descriptor after each
    /// command descriptor (CTDP set), as RCTD asks (SPC-4 6.35.2, 6.35.4).
    /// The timeouts are 0: not specified.
    pub fn emit_with_timeouts(&self) -> Vec<u8> {
        let per = Self::DESC_LEN + TIMEOUTS_LEN;
        let mut b = vec![0u8; 4 + per * self.commands.len()];
        put_be(&mut b[0..4], (per * self.commands.len()) as u64);
        for (d, c) in b[4..].chunks_exact_mut(per).zip(&self.commands) {
            d[0] = c.opcode.0;
            if let Some(sa) = c.service_action {
                put_be(&mut d[2..4], sa as u64);
                d[5] = 0x01; // SERVACTV
            }
            d[5] |= 0x02; // CTDP
            put_be(&mut d[6..8], c.cdb_len as u64);
            put_be(&mut d[8..10], (TIMEOUTS_LEN - 2) as u64);
        }
        b
    }
}

/// One-command parameter data (SPC-4 6.35.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OneCommand {
    /// SUPPORT, 3 bits: see [`support`].
    pub support: u8,
    /// CDB USAGE DATA: the opcode, then a mask of the bits the device
    /// looks at; its length is the CDB size.
    #[serde(serialize_with = "ser_hex")]
    pub cdb_usage: Vec<u8>,
}

impl OneCommand {
    /// Whether SUPPORT says the command is there (standard or vendor way).
    pub fn is_supported(&self) -> bool {
        matches!(self.support, support::STANDARD | support::VENDOR)
    }
}

impl Wire for OneCommand {
    /// The whole CDB USAGE DATA must fit: a cut mask is not a usable one.
    fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        const W: &str = "one-command supported operation code data";
        need(W, buf, 4)?;
        let n = be_uint(&buf[2..4]) as usize;
        need(W, buf, 4 + n)?;
        Ok(OneCommand {
            support: buf[1] & 7,
            cdb_usage: buf[4..4 + n].to_vec(),
        })
    }

    fn buffer_len(&self) -> usize {
        4 + self.cdb_usage.len()
    }

    fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..self.buffer_len()];
        b[0] = 0;
        b[1] = self.support & 7;
        put_be(&mut b[2..4], self.cdb_usage.len() as u64);
        b[4..].copy_from_slice(&self.cdb_usage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rsoc_cdb_golden() {
        let all = ReportSupportedOpcodes::all(0x2000);
        let bytes = [0xa3, 0x0c, 0x00, 0, 0, 0, 0x00, 0x00, 0x20, 0x00, 0, 0];
        assert_eq!(all.to_cdb().as_bytes(), &bytes);
        assert_eq!(ReportSupportedOpcodes::parse(&bytes), Ok(all));

        let one = ReportSupportedOpcodes {
            rctd: true,
            ..ReportSupportedOpcodes::one(Opcode::SERVICE_ACTION_IN_16, Some(0x10), 64)
        };
        let bytes1 = [0xa3, 0x0c, 0x82, 0x9e, 0x00, 0x10, 0, 0, 0, 64, 0, 0];
        assert_eq!(one.to_cdb().as_bytes(), &bytes1);
        assert_eq!(ReportSupportedOpcodes::parse(&bytes1), Ok(one));
        assert_eq!(
            ReportSupportedOpcodes::one(Opcode::INQUIRY, None, 64).options,
            reporting_options::ONE
        );
        assert!(ReportSupportedOpcodes::parse(&bytes[..11]).is_err());
        // MAINTENANCE IN with another service action (REPORT TARGET PORT GROUPS).
        let mut rtpg = bytes;
        rtpg[1] = 0x0a;
        assert!(ReportSupportedOpcodes::parse(&rtpg).is_err());
    }

    #[test]
    fn supported_opcodes_golden() {
        let bytes = [
            0, 0, 0, 24, // command data length
            0x12, 0, 0x00, 0x00, 0, 0x00, 0x00, 0x06, // INQUIRY
            0x9e, 0, 0x00, 0x10, 0, 0x01, 0x00, 0x10, // READ CAPACITY(16)
            0x83, 0, 0x00, 0x00, 0, 0x01, 0x00, 0x10, // EXTENDED COPY LID1
        ];
        let s = SupportedOpcodes {
            commands: vec![
                CommandDescriptor {
                    opcode: Opcode::INQUIRY,
                    service_action: None,
                    cdb_len: 6,
                },
                CommandDescriptor {
                    opcode: Opcode::SERVICE_ACTION_IN_16,
                    service_action: Some(0x10),
                    cdb_len: 16,
                },
                CommandDescriptor {
                    opcode: Opcode::EXTENDED_COPY,
                    service_action: Some(0),
                    cdb_len: 16,
                },
            ],
        };
        assert_eq!(s.to_vec(), bytes);
        assert_eq!(SupportedOpcodes::parse(&bytes), Ok(s.clone()));
        assert!(s.supports(Opcode::EXTENDED_COPY, Some(0)));
        assert!(!s.supports(Opcode::EXTENDED_COPY, None));
        assert_eq!(SupportedOpcodes::full_len(&bytes), Some(28));
        assert_eq!(
            SupportedOpcodes::parse(&bytes[..19])
                .unwrap()
                .commands
                .len(),
            1
        );
        assert!(SupportedOpcodes::parse(&bytes[..3]).is_err());
    }

    #[test]
    fn supported_opcodes_with_timeouts() {
        let bytes = [
            0, 0, 0, 28, //
            0x00, 0, 0, 0, 0, 0x02, 0x00, 0x06, // TUR, CTDP
            0x00, 0x0a, 0, 0, 0, 0, 0, 30, 0, 0, 0, 60, // timeouts
            0x03, 0, 0, 0, 0, 0x00, 0x00, 0x06, // REQUEST SENSE
        ];
        let s = SupportedOpcodes::parse(&bytes).unwrap();
        assert_eq!(
            s.commands.iter().map(|c| c.opcode).collect::<Vec<_>>(),
            [Opcode::TEST_UNIT_READY, Opcode::REQUEST_SENSE]
        );
        // Emitted with timeouts: every descriptor has CTDP and a 0Ah-long
        // timeouts descriptor with unspecified (0) timeouts.
        let one = SupportedOpcodes {
            commands: vec![CommandDescriptor {
                opcode: Opcode::RECEIVE_COPY_RESULTS,
                service_action: Some(3),
                cdb_len: 16,
            }],
        };
        assert_eq!(
            one.emit_with_timeouts(),
            [
                0, 0, 0, 20, //
                0x84, 0, 0x00, 0x03, 0, 0x03, 0x00, 0x10, //
                0x00, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]
        );
        assert_eq!(
            SupportedOpcodes::parse(&one.emit_with_timeouts()).unwrap(),
            one
        );
    }

    #[test]
    fn one_command_golden() {
        // READ(10) supported, usage mask as SBC devices commonly report it.
        let bytes = [
            0, 0x03, 0, 10, 0x28, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07,
        ];
        let o = OneCommand {
            support: support::STANDARD,
            cdb_usage: vec![0x28, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x07],
        };
        assert_eq!(o.to_vec(), bytes);
        assert_eq!(OneCommand::parse(&bytes), Ok(o.clone()));
        assert!(o.is_supported());
        assert!(OneCommand::parse(&bytes[..13]).is_err());
        assert!(OneCommand::parse(&bytes[..3]).is_err());
        let not = OneCommand::parse(&[0, 0x01, 0, 0]).unwrap();
        assert!(!not.is_supported());
        assert!(not.cdb_usage.is_empty());
    }

    proptest! {
        #[test]
        fn rsoc_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ReportSupportedOpcodes::parse(&b);
            let _ = SupportedOpcodes::parse(&b);
            let _ = OneCommand::parse(&b);
        }

        #[test]
        fn rsoc_round_trips(
            cmds in proptest::collection::vec((any::<u8>(), proptest::option::of(any::<u16>()), any::<u16>()), 0..30),
            support in 0u8..8,
            usage in proptest::collection::vec(any::<u8>(), 0..32),
            rctd: bool, options in 0u8..8, op: u8, sa: u16, alloc_len: u32,
        ) {
            let s = SupportedOpcodes {
                commands: cmds.into_iter().map(|(o, sa, l)| CommandDescriptor {
                    opcode: Opcode(o), service_action: sa, cdb_len: l,
                }).collect(),
            };
            prop_assert_eq!(SupportedOpcodes::parse(&s.to_vec()), Ok(s));
            let o = OneCommand { support, cdb_usage: usage };
            prop_assert_eq!(OneCommand::parse(&o.to_vec()), Ok(o));
            let c = ReportSupportedOpcodes { rctd, options, opcode: Opcode(op), service_action: sa, alloc_len };
            prop_assert_eq!(ReportSupportedOpcodes::parse(c.to_cdb().as_bytes()), Ok(c));
        }
    }
}
