//! CSCD (copy source and copy destination) descriptors, SPC-4 6.4.5: the
//! identification descriptor (E4h) decoded in full, every other type kept
//! as raw bytes so a list holding them still parses.

use std::fmt;

use serde::Serialize;

use crate::scsi::spc::{Association, CodeSet, Designator, DesignatorType};
use crate::scsi::{be_uint, need, open_code, put_be, DeviceType, ParseError};

open_code! {
    /// DESCRIPTOR TYPE CODE of a CSCD descriptor (SPC-4 6.4.5.1, table 105).
    CscdType(u8) {
        FC_N_PORT_NAME = 0xe0 => "Fibre Channel N_Port_Name",
        FC_N_PORT_ID = 0xe1 => "Fibre Channel N_Port_ID",
        FC_N_PORT_ID_WITH_NAME = 0xe2 => "Fibre Channel N_Port_ID with N_Port_Name checking",
        PARALLEL_SCSI = 0xe3 => "Parallel Interface T_L",
        IDENTIFICATION = 0xe4 => "Identification descriptor",
        IPV4 = 0xe5 => "IPv4",
        ALIAS = 0xe6 => "Alias",
        RDMA = 0xe7 => "RDMA",
        IEEE_1394 = 0xe8 => "IEEE 1394 EUI-64",
        SAS = 0xe9 => "SAS serial SCSI protocol",
        IPV6 = 0xea => "IPv6",
        IP_COPY_SERVICE = 0xeb => "IP copy service",
        ROD = 0xfe => "ROD",
    }
}

impl CscdType {
    /// The descriptor's size: 64 bytes for IPv6 and IP copy service, 32 for
    /// every other type (SPC-4 6.4.5.1).
    pub fn descriptor_len(self) -> usize {
        match self {
            CscdType::IPV6 | CscdType::IP_COPY_SERVICE => 64,
            _ => 32,
        }
    }
}

/// Longest designator an identification CSCD holds (SPC-4 6.4.5.2:
/// bytes 8..28).
pub const CSCD_DESIGNATOR_MAX: usize = 20;

/// Byte offsets of the fields of a 32-byte CSCD (SPC-4 6.4.5.1, 6.4.5.2)
/// a copy manager points at.
pub mod cscd_field {
    /// Byte 1: NUL and PERIPHERAL DEVICE TYPE.
    pub const DEVICE_TYPE: usize = 1;
    pub const DESIGNATOR_LEN: usize = 7;
    pub const DESIGNATOR: usize = 8;
    /// DEVICE TYPE SPECIFIC PARAMETERS: byte 28 holds PAD and FIXED (bit 0).
    pub const DEVICE_PARAMS: usize = 28;
    /// DISK BLOCK LENGTH / STREAM BLOCK LENGTH, bytes 29..32.
    pub const BLOCK_LEN: usize = 29;
}

/// Largest value of the 24-bit DISK BLOCK LENGTH / STREAM BLOCK LENGTH.
pub const MAX_24: u32 = 0x00ff_ffff;

/// The peripheral device types whose CSCDs carry block device parameters
/// (SPC-4 6.4.5.1: 00h, 04h, 05h, 07h, 0Eh).
pub fn is_block_type(dt: DeviceType) -> bool {
    matches!(dt.0, 0x00 | 0x04 | 0x05 | 0x07 | 0x0e)
}

/// DEVICE TYPE SPECIFIC PARAMETERS, the last 4 bytes of every CSCD
/// (SPC-4 6.4.5.1), chosen by the CSCD's peripheral device type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceParams {
    /// Block devices (SPC-4 table 107): PAD (byte 0 bit 2) and DISK BLOCK
    /// LENGTH (24 bits). 0 is legal on the wire but SCST rejects it and
    /// illumos copies nothing, so this crate never emits 0 through
    /// [`Cscd::check`].
    Block { pad: bool, block_len: u32 },
    /// Sequential-access devices (SPC-4 table 108): PAD, FIXED (byte 0
    /// bit 0) and STREAM BLOCK LENGTH (24 bits).
    Stream {
        pad: bool,
        fixed: bool,
        stream_block_len: u32,
    },
    /// Any other device type: the 4 bytes as sent.
    Raw([u8; 4]),
}

impl DeviceParams {
    /// Block parameters for a disk of `block_len` bytes per block, PAD off.
    pub fn block(block_len: u32) -> Self {
        DeviceParams::Block {
            pad: false,
            block_len,
        }
    }

    fn decode(dt: DeviceType, b: [u8; 4]) -> Self {
        let len = be_uint(&b[1..4]) as u32;
        if is_block_type(dt) {
            DeviceParams::Block {
                pad: b[0] & 0x04 != 0,
                block_len: len,
            }
        } else if dt == DeviceType::TAPE {
            DeviceParams::Stream {
                pad: b[0] & 0x04 != 0,
                fixed: b[0] & 0x01 != 0,
                stream_block_len: len,
            }
        } else {
            DeviceParams::Raw(b)
        }
    }

    fn encode(&self) -> [u8; 4] {
        let (b0, len) = match *self {
            DeviceParams::Block { pad, block_len } => ((pad as u8) << 2, block_len),
            DeviceParams::Stream {
                pad,
                fixed,
                stream_block_len,
            } => ((pad as u8) << 2 | fixed as u8, stream_block_len),
            DeviceParams::Raw(b) => return b,
        };
        let mut b = [b0, 0, 0, 0];
        put_be(&mut b[1..4], (len & MAX_24) as u64);
        b
    }

    /// Whether these parameters are the ones `dt` decodes to, and their
    /// lengths fit (and a block length is not 0).
    fn check(&self, dt: DeviceType) -> Result<(), ParseError> {
        let bad = |r: String| Err(ParseError::invalid(WHAT, r));
        match *self {
            DeviceParams::Block { block_len, .. } => {
                if !is_block_type(dt) {
                    return bad(format!("block parameters for device type {dt}"));
                }
                if block_len == 0 {
                    return bad("DISK BLOCK LENGTH 0 (copy managers disagree on it)".into());
                }
                if block_len > MAX_24 {
                    return bad(format!("DISK BLOCK LENGTH {block_len} exceeds 24 bits"));
                }
            }
            DeviceParams::Stream {
                stream_block_len, ..
            } => {
                if dt != DeviceType::TAPE {
                    return bad(format!("stream parameters for device type {dt}"));
                }
                if stream_block_len > MAX_24 {
                    return bad(format!(
                        "STREAM BLOCK LENGTH {stream_block_len} exceeds 24 bits"
                    ));
                }
            }
            DeviceParams::Raw(_) => {
                if is_block_type(dt) || dt == DeviceType::TAPE {
                    return bad(format!("raw parameters for device type {dt}"));
                }
            }
        }
        Ok(())
    }
}

/// The type-specific part of a CSCD descriptor (bytes 4 up to the device
/// parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CscdBody {
    /// E4h (SPC-4 6.4.5.2): CODE SET, ASSOCIATION, DESIGNATOR TYPE and up
    /// to 20 designator bytes. `protocol_id` and `piv` are always 0/false
    /// (those bits are reserved in a CSCD).
    Identification(Designator),
    /// Any other type: bytes 4..len-4 as sent (24 or 56 of them).
    Raw(#[serde(serialize_with = "crate::scsi::spc::ser_hex")] Vec<u8>),
}

/// One CSCD descriptor (SPC-4 6.4.5.1, table 104).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cscd {
    pub descriptor_type: CscdType,
    /// LU ID TYPE, byte 1 bits 7..6 (obsolete in SPC-4; SCST rejects
    /// anything but 0, LIO ignores it).
    pub lu_id_type: u8,
    /// NUL, byte 1 bit 5: a null device (obsolete in SPC-4).
    pub nul: bool,
    /// PERIPHERAL DEVICE TYPE, byte 1 bits 4..0: picks the meaning of
    /// `device_params`.
    pub device_type: DeviceType,
    /// RELATIVE INITIATOR PORT IDENTIFIER, bytes 2..4: 0 = any port.
    pub relative_initiator_port: u16,
    pub body: CscdBody,
    pub device_params: DeviceParams,
}

const WHAT: &str = "CSCD descriptor";

impl Cscd {
    /// An identification CSCD (E4h) for a logical unit, from a VPD 0x83
    /// designator (the caller picks it, e.g. with
    /// `DeviceIdentification::best_lu_designator`). PROTOCOL IDENTIFIER and
    /// PIV are cleared. Fails for a designator longer than 20 bytes or not
    /// LU-associated, or parameters that do not fit `device_type` (a block
    /// device needs a non-zero block length: see [`DeviceParams::Block`]).
    pub fn identification(
        designator: &Designator,
        device_type: DeviceType,
        params: DeviceParams,
    ) -> Result<Cscd, ParseError> {
        let c = Cscd {
            descriptor_type: CscdType::IDENTIFICATION,
            lu_id_type: 0,
            nul: false,
            device_type,
            relative_initiator_port: 0,
            body: CscdBody::Identification(Designator {
                protocol_id: 0,
                piv: false,
                ..designator.clone()
            }),
            device_params: params,
        };
        c.check()?;
        Ok(c)
    }

    /// The designator of an identification CSCD.
    pub fn designator(&self) -> Option<&Designator> {
        match &self.body {
            CscdBody::Identification(d) => Some(d),
            CscdBody::Raw(_) => None,
        }
    }

    /// Everything [`Cscd::emit`] would otherwise write silently wrong:
    /// field widths, a designator over 20 bytes, a raw body of the wrong
    /// size, parameters that do not match the device type, block length 0.
    pub fn check(&self) -> Result<(), ParseError> {
        if self.lu_id_type > 3 {
            return Err(ParseError::invalid(WHAT, "LU ID TYPE exceeds 2 bits"));
        }
        if self.device_type.0 > 0x1f {
            return Err(ParseError::invalid(WHAT, "device type exceeds 5 bits"));
        }
        match &self.body {
            CscdBody::Identification(d) => {
                if self.descriptor_type != CscdType::IDENTIFICATION {
                    return Err(ParseError::invalid(
                        WHAT,
                        format!(
                            "identification body in a {:#04x} CSCD",
                            self.descriptor_type.0
                        ),
                    ));
                }
                if d.value.len() > CSCD_DESIGNATOR_MAX {
                    return Err(ParseError::invalid(
                        WHAT,
                        format!("designator of {} bytes exceeds 20", d.value.len()),
                    ));
                }
                if d.association != Association::LU {
                    return Err(ParseError::invalid(
                        WHAT,
                        format!("designator association {} is not the LU", d.association),
                    ));
                }
                if d.code_set.0 > 0x0f || d.designator_type.0 > 0x0f || d.protocol_id != 0 || d.piv
                {
                    return Err(ParseError::invalid(WHAT, "designator header out of range"));
                }
            }
            CscdBody::Raw(b) => {
                if self.descriptor_type == CscdType::IDENTIFICATION {
                    return Err(ParseError::invalid(WHAT, "E4h CSCD with a raw body"));
                }
                if b.len() != self.descriptor_type.descriptor_len() - 8 {
                    return Err(ParseError::invalid(
                        WHAT,
                        format!(
                            "raw body of {} bytes, type {:#04x} needs {}",
                            b.len(),
                            self.descriptor_type.0,
                            self.descriptor_type.descriptor_len() - 8
                        ),
                    ));
                }
            }
        }
        self.device_params.check(self.device_type)
    }

    /// 32, or 64 for IPv6 and IP copy service.
    pub fn buffer_len(&self) -> usize {
        self.descriptor_type.descriptor_len()
    }

    /// Write `buffer_len()` bytes. A raw body is cut or zero-padded to fit
    /// and a designator cut at 20 bytes ([`Cscd::check`] reports both).
    /// Panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let n = self.buffer_len();
        let b = &mut buf[..n];
        b.fill(0);
        b[0] = self.descriptor_type.0;
        b[1] = (self.lu_id_type & 3) << 6 | (self.nul as u8) << 5 | (self.device_type.0 & 0x1f);
        put_be(&mut b[2..4], self.relative_initiator_port as u64);
        match &self.body {
            // SPC-4 6.4.5.2, table 106.
            CscdBody::Identification(d) => {
                let len = d.value.len().min(CSCD_DESIGNATOR_MAX);
                b[4] = d.code_set.0 & 0x0f;
                b[5] = (d.association.0 & 3) << 4 | (d.designator_type.0 & 0x0f);
                b[7] = len as u8;
                b[8..8 + len].copy_from_slice(&d.value[..len]);
            }
            CscdBody::Raw(raw) => {
                let len = raw.len().min(n - 8);
                b[4..4 + len].copy_from_slice(&raw[..len]);
            }
        }
        b[n - 4..].copy_from_slice(&self.device_params.encode());
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Decode one CSCD from the front of `buf`; returns it and its length.
    /// Unknown types are kept raw; an E4h whose DESIGNATOR LENGTH exceeds
    /// 20 is invalid.
    pub fn parse(buf: &[u8]) -> Result<(Cscd, usize), ParseError> {
        need(WHAT, buf, 1)?;
        let descriptor_type = CscdType(buf[0]);
        let n = descriptor_type.descriptor_len();
        need(WHAT, buf, n)?;
        let b = &buf[..n];
        let device_type = DeviceType(b[1] & 0x1f);
        let body = if descriptor_type == CscdType::IDENTIFICATION {
            let len = b[7] as usize;
            if len > CSCD_DESIGNATOR_MAX {
                return Err(ParseError::invalid_at(
                    WHAT,
                    format!("E4h DESIGNATOR LENGTH {len} exceeds 20"),
                    cscd_field::DESIGNATOR_LEN,
                    None,
                ));
            }
            CscdBody::Identification(Designator {
                protocol_id: 0,
                code_set: CodeSet(b[4] & 0x0f),
                piv: false,
                association: Association((b[5] >> 4) & 3),
                designator_type: DesignatorType(b[5] & 0x0f),
                value: b[8..8 + len].to_vec(),
            })
        } else {
            CscdBody::Raw(b[4..n - 4].to_vec())
        };
        let params = [b[n - 4], b[n - 3], b[n - 2], b[n - 1]];
        Ok((
            Cscd {
                descriptor_type,
                lu_id_type: b[1] >> 6,
                nul: b[1] & 0x20 != 0,
                device_type,
                relative_initiator_port: be_uint(&b[2..4]) as u16,
                body,
                device_params: DeviceParams::decode(device_type, params),
            },
            n,
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const NAA: [u8; 16] = [
        0x60, 0x01, 0x40, 0x5a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
        0x01,
    ];

    /// An E4h CSCD for a 512-byte-block disk named by a 16-byte NAA, as LIO
    /// wants it.
    pub(crate) fn disk_cscd_bytes() -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&[0xe4, 0x00, 0x00, 0x00, 0x01, 0x03, 0x00, 0x10]);
        b[8..24].copy_from_slice(&NAA);
        b[28..].copy_from_slice(&[0x00, 0x00, 0x02, 0x00]);
        b
    }

    pub(crate) fn disk_cscd() -> Cscd {
        Cscd::identification(
            &Designator::lu_binary(DesignatorType::NAA, NAA.to_vec()),
            DeviceType::DISK,
            DeviceParams::block(512),
        )
        .unwrap()
    }

    #[test]
    fn identification_disk_golden() {
        let c = disk_cscd();
        assert_eq!(c.to_vec(), disk_cscd_bytes());
        assert_eq!(Cscd::parse(&disk_cscd_bytes()).unwrap(), (c.clone(), 32));
        assert_eq!(c.designator().unwrap().value, NAA);
        // Extra bytes after the descriptor are not its business.
        let mut long = disk_cscd_bytes().to_vec();
        long.extend_from_slice(&[0xff; 5]);
        assert_eq!(Cscd::parse(&long).unwrap().1, 32);
        for n in 0..32 {
            assert!(matches!(
                Cscd::parse(&disk_cscd_bytes()[..n]),
                Err(ParseError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn identification_tape_golden() {
        // A tape named by an 8-byte EUI-64, fixed 64 KiB blocks, PAD on,
        // relative initiator port 2, VPD protocol/PIV bits masked away.
        let mut d = Designator::lu_binary(
            DesignatorType::EUI64,
            vec![0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77],
        );
        d.protocol_id = 5;
        d.piv = true;
        let mut c = Cscd::identification(
            &d,
            DeviceType::TAPE,
            DeviceParams::Stream {
                pad: true,
                fixed: true,
                stream_block_len: 0x10000,
            },
        )
        .unwrap();
        c.relative_initiator_port = 2;
        let mut raw = [0u8; 32];
        raw[..16].copy_from_slice(&[
            0xe4, 0x01, 0x00, 0x02, 0x01, 0x02, 0x00, 0x08, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
            0x66, 0x77,
        ]);
        raw[28..].copy_from_slice(&[0x05, 0x01, 0x00, 0x00]);
        assert_eq!(c.to_vec(), raw);
        assert_eq!(Cscd::parse(&raw).unwrap().0, c);
    }

    #[test]
    fn identification_refusals() {
        let naa = Designator::lu_binary(DesignatorType::NAA, NAA.to_vec());
        // Block length 0 is refused for disks.
        assert!(Cscd::identification(&naa, DeviceType::DISK, DeviceParams::block(0)).is_err());
        assert!(
            Cscd::identification(&naa, DeviceType::DISK, DeviceParams::block(1 << 24)).is_err()
        );
        // Parameters of the wrong kind for the device type.
        assert!(Cscd::identification(&naa, DeviceType::TAPE, DeviceParams::block(512)).is_err());
        assert!(Cscd::identification(&naa, DeviceType::DISK, DeviceParams::Raw([0; 4])).is_err());
        assert!(Cscd::identification(
            &naa,
            DeviceType::PROCESSOR,
            DeviceParams::Raw([0x04, 0, 0, 0])
        )
        .is_ok());
        // Too long, or not the LU's.
        let long = Designator::lu_binary(DesignatorType::VENDOR_SPECIFIC, vec![0x41; 21]);
        assert!(Cscd::identification(&long, DeviceType::DISK, DeviceParams::block(512)).is_err());
        let mut port = naa.clone();
        port.association = Association::TARGET_PORT;
        assert!(Cscd::identification(&port, DeviceType::DISK, DeviceParams::block(512)).is_err());
        // A device with DESIGNATOR LENGTH 21 is refused on parse.
        let mut raw = disk_cscd_bytes();
        raw[7] = 21;
        assert!(matches!(Cscd::parse(&raw), Err(ParseError::Invalid { .. })));
        // DBL 0 from a device parses (SPC allows it), but check() says no.
        let mut raw = disk_cscd_bytes();
        raw[30] = 0;
        let (c, _) = Cscd::parse(&raw).unwrap();
        assert_eq!(c.device_params, DeviceParams::block(0));
        assert!(c.check().is_err());
    }

    #[test]
    fn other_types_stay_raw() {
        // E5h IPv4, 32 bytes; EAh IPv6, 64 bytes; an unknown code, 32.
        for (t, n) in [
            (0xe5u8, 32usize),
            (0xea, 64),
            (0xeb, 64),
            (0xe0, 32),
            (0x42, 32),
        ] {
            let mut raw = vec![0u8; n];
            raw[0] = t;
            raw[1] = 0x20; // NUL, disk
            raw[4] = 0xaa;
            raw[n - 5] = 0xbb;
            raw[n - 2] = 0x08; // block length 2048
            let (c, used) = Cscd::parse(&raw).unwrap();
            assert_eq!(used, n);
            assert_eq!(c.descriptor_type, CscdType(t));
            assert!(c.nul);
            assert_eq!(c.device_params, DeviceParams::block(2048));
            let CscdBody::Raw(body) = &c.body else {
                panic!("raw body expected")
            };
            assert_eq!(body.len(), n - 8);
            assert_eq!((body[0], body[n - 9]), (0xaa, 0xbb));
            assert_eq!(c.to_vec(), raw);
            c.check().unwrap();
            assert!(Cscd::parse(&raw[..n - 1]).is_err());
        }
        assert_eq!(CscdType::IPV4.to_string(), "IPv4");
        assert_eq!(CscdType::SAS.0, 0xe9);
        assert_eq!(CscdType::IEEE_1394.0, 0xe8);
    }

    fn cscd_strategy() -> impl Strategy<Value = Cscd> {
        let params = prop_oneof![
            (any::<bool>(), 1..=MAX_24).prop_map(|(pad, block_len)| (
                DeviceType::DISK,
                DeviceParams::Block { pad, block_len }
            )),
            (any::<bool>(), any::<bool>(), 0..=MAX_24).prop_map(|(pad, fixed, len)| (
                DeviceType::TAPE,
                DeviceParams::Stream {
                    pad,
                    fixed,
                    stream_block_len: len
                }
            )),
            any::<[u8; 4]>().prop_map(|b| (DeviceType::MEDIUM_CHANGER, DeviceParams::Raw(b))),
        ];
        let body = prop_oneof![
            (0u8..16, 0u8..16, prop::collection::vec(any::<u8>(), 0..=20)).prop_map(
                |(cs, ty, v)| (
                    CscdType::IDENTIFICATION,
                    CscdBody::Identification(Designator {
                        protocol_id: 0,
                        code_set: CodeSet(cs),
                        piv: false,
                        association: Association::LU,
                        designator_type: DesignatorType(ty),
                        value: v,
                    })
                )
            ),
            prop::collection::vec(any::<u8>(), 24).prop_map(|v| (CscdType::IPV4, CscdBody::Raw(v))),
            prop::collection::vec(any::<u8>(), 56).prop_map(|v| (CscdType::IPV6, CscdBody::Raw(v))),
        ];
        (params, body, 0u8..4, any::<bool>(), any::<u16>()).prop_map(
            |((dt, device_params), (descriptor_type, body), lu_id_type, nul, port)| Cscd {
                descriptor_type,
                lu_id_type,
                nul,
                device_type: dt,
                relative_initiator_port: port,
                body,
                device_params,
            },
        )
    }

    pub(crate) fn any_cscd() -> impl Strategy<Value = Cscd> {
        cscd_strategy()
    }

    proptest! {
        #[test]
        fn cscd_round_trip(c in cscd_strategy()) {
            c.check().unwrap();
            let b = c.to_vec();
            prop_assert_eq!(Cscd::parse(&b).unwrap(), (c, b.len()));
        }

        #[test]
        fn cscd_parse_never_panics(buf in prop::collection::vec(any::<u8>(), 0..80)) {
            if let Ok((c, n)) = Cscd::parse(&buf) {
                prop_assert!(n <= buf.len());
                // Whatever parsed re-emits to bytes that parse the same.
                prop_assert_eq!(Cscd::parse(&c.to_vec()).unwrap().0, c);
            }
        }
    }
}
