//! A direct-access block device (SBC).

use crate::scsi::sbc::{
    Capacity10, Capacity16, Read16, ReadCapacity10, ReadCapacity16, SynchronizeCache16, Write16,
};
use crate::scsi::spc::StandardInquiry;
use crate::scsi::{BlockCount, BlockSize, CdbCodec, DeviceType, Lba, Wire};
use crate::transport::{Request, Transport};

use super::{DeviceError, Scsi};

/// Size of a disk LU, from READ CAPACITY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Capacity {
    pub blocks: BlockCount,
    pub block_size: BlockSize,
    /// True when READ CAPACITY(16) answered (it carries more fields).
    pub from_16: bool,
}

impl Capacity {
    pub fn bytes(&self) -> u64 {
        self.blocks.0.saturating_mul(self.block_size.0 as u64)
    }
}

/// A disk LU.
#[derive(Debug)]
pub struct Disk<T: Transport> {
    pub scsi: Scsi<T>,
    pub inquiry: StandardInquiry,
}

impl<T: Transport> Disk<T> {
    /// Open a disk: INQUIRY must say direct access.
    pub fn open(t: T) -> Result<Self, DeviceError> {
        let mut scsi = Scsi::new(t);
        let inquiry = scsi.expect_type(DeviceType::DISK)?;
        Ok(Disk { scsi, inquiry })
    }

    /// READ CAPACITY(10), and (16) when the LU is too big for (10) or when
    /// (10) is refused (SBC-4 5.20.1).
    pub fn capacity(&mut self) -> Result<Capacity, DeviceError> {
        read_capacity(&mut self.scsi)
    }

    pub fn read(&mut self, lba: Lba, blocks: u32, bs: BlockSize) -> Result<Vec<u8>, DeviceError> {
        let len = blocks as usize * bs.0 as usize;
        let cdb = Read16 {
            lba,
            blocks,
            dpo: false,
            fua: false,
        }
        .to_cdb();
        let resp = self.scsi.run(Request::data_in(cdb, len))?;
        if resp.transferred() != len {
            return Err(DeviceError::Protocol {
                device: self.scsi.name().to_string(),
                message: format!(
                    "READ(16) at {lba}: {} of {len} bytes arrived",
                    resp.transferred()
                ),
            });
        }
        Ok(resp.buf)
    }

    pub fn write(&mut self, lba: Lba, bs: BlockSize, data: Vec<u8>) -> Result<(), DeviceError> {
        if bs.0 == 0 || data.len() % bs.0 as usize != 0 {
            return Err(DeviceError::Protocol {
                device: self.scsi.name().to_string(),
                message: format!(
                    "write of {} bytes is not a whole number of {}-byte blocks",
                    data.len(),
                    bs.0
                ),
            });
        }
        let cdb = Write16 {
            lba,
            blocks: (data.len() / bs.0 as usize) as u32,
            dpo: false,
            fua: false,
        }
        .to_cdb();
        self.scsi.run(Request::data_out(cdb, data)).map(|_| ())
    }

    pub fn synchronize_cache(&mut self) -> Result<(), DeviceError> {
        let cdb = SynchronizeCache16 {
            lba: Lba(0),
            blocks: 0,
            immed: false,
        }
        .to_cdb();
        self.scsi.run(Request::none(cdb)).map(|_| ())
    }
}

/// READ CAPACITY on any LU that answers it.
pub fn read_capacity<T: Transport>(scsi: &mut Scsi<T>) -> Result<Capacity, DeviceError> {
    let c10 = match scsi.data_in(ReadCapacity10.to_cdb(), 8) {
        Ok(buf) => Some(Capacity10::parse(&buf).map_err(|e| scsi.perr("READ CAPACITY(10)", e))?),
        Err(e) if e.is_unsupported_command() => None,
        Err(e) => return Err(e),
    };
    match c10 {
        Some(c) if c.last_lba != u32::MAX => Ok(Capacity {
            blocks: c.blocks(),
            block_size: c.block_size(),
            from_16: false,
        }),
        _ => {
            let buf = scsi.data_in(ReadCapacity16 { alloc_len: 32 }.to_cdb(), 32)?;
            let c = Capacity16::parse(&buf).map_err(|e| scsi.perr("READ CAPACITY(16)", e))?;
            Ok(Capacity {
                blocks: c.blocks(),
                block_size: c.block_size(),
                from_16: true,
            })
        }
    }
}
