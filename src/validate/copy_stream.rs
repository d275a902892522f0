//! The copy suite's stream segments (SPC-4 6.4.6): run with real data
//! against a tape LU named in the same run (the copy manager must reach
//! it), and read back through a session of our own to that tape.

use crate::device::{DeviceError, Tape};
use crate::scsi::sense::{Asc, SenseKey};
use crate::scsi::xcopy::{
    CopyAborted, Cscd, DeviceParams, OperatingParameters, ReceiveCopyResults, Segment, SegmentKind,
    SegmentType, XcopyParams,
};
use crate::scsi::{CdbCodec, DeviceType, Lba, Wire};
use crate::transport::Request;

use super::{best_designator, sent, Dyn, Exchange, Finding, Target};

/// The bytes the inline segment writes and the discard segment reads.
const INLINE: usize = 1000;
/// Blocks of this LU the block/stream segments move (one tape block).
const BLOCKS: u16 = 8;

/// What a stream check needs: the claimed types, this LU and the tape as
/// CSCDs (index 0 and 1), a session to the tape, this LU's block size.
pub(super) struct Rig {
    pub cscds: Vec<Cscd>,
    pub tape: Tape<Dyn>,
    pub block_size: u32,
    pub blocks: u64,
}

fn implemented(t: &mut Target) -> Option<OperatingParameters> {
    let cdb = ReceiveCopyResults::operating_parameters().to_cdb();
    let x = t.send(Request::data_in(cdb, 1024)).ok()?;
    OperatingParameters::parse(&x.data).ok()
}

/// The rig for segment types `types`, or why the check cannot run.
fn rig(t: &mut Target, types: &[SegmentType]) -> Result<Result<Rig, Finding>, DeviceError> {
    let not = |why: String| Ok(Err(Finding::unsupported("", "", why)));
    let Some(p) = implemented(t) else {
        return not("no operating parameters: the claimed segment types are unknown".into());
    };
    let missing: Vec<String> = types
        .iter()
        .filter(|s| !p.supports_segment(**s))
        .map(|s| format!("{:02X}h", s.0))
        .collect();
    if !missing.is_empty() {
        return not(format!(
            "segment types {} are not claimed",
            missing.join(", ")
        ));
    }
    let Some(peer) = t
        .others
        .iter()
        .find(|p| p.device_type == DeviceType::TAPE && !p.designators.is_empty())
        .cloned()
    else {
        return not("needs a tape LU the copy manager can reach, named in the same run".into());
    };
    let (Some(own), Some(tape_id)) = (
        best_designator(&t.designators).cloned(),
        best_designator(&peer.designators).cloned(),
    ) else {
        return not("no LU designator to name in a CSCD".into());
    };
    let cap = crate::device::disk::read_capacity(&mut t.scsi)?;
    let stream = DeviceParams::Stream {
        pad: false,
        fixed: false,
        stream_block_len: 0,
    };
    let (Ok(a), Ok(b)) = (
        Cscd::identification(
            &own,
            t.inquiry.device_type,
            DeviceParams::block(cap.block_size.0),
        ),
        Cscd::identification(&tape_id, DeviceType::TAPE, stream),
    ) else {
        return not("the designators do not fit an identification CSCD".into());
    };
    let s = t
        .open(&peer.url, &t.initiator)
        .map_err(|e| DeviceError::Transport {
            device: peer.url.clone(),
            source: e,
        })?;
    let mut tape = Tape::open(s)?;
    tape.set_block_length(0)?;
    tape.rewind()?;
    Ok(Ok(Rig {
        cscds: vec![a, b],
        tape,
        block_size: cap.block_size.0,
        blocks: cap.blocks.0,
    }))
}

fn send(
    t: &mut Target,
    cscds: &[Cscd],
    segments: Vec<Segment>,
    inline: Vec<u8>,
) -> Result<Exchange, DeviceError> {
    let mut params = XcopyParams::new(cscds.to_vec(), segments);
    params.inline_data = inline;
    let list = params.encode().map_err(|e| DeviceError::Protocol {
        device: t.url.clone(),
        message: e.to_string(),
    })?;
    t.send(Request::data_out(params.cdb().to_cdb(), list))
}

fn seg(kind: SegmentKind) -> Segment {
    Segment {
        cat: false,
        dc: false,
        kind,
    }
}

fn inline_bytes() -> Vec<u8> {
    (0..INLINE).map(|i| (i * 13 + 5) as u8).collect()
}

/// What the tape holds next: a block's bytes, or a filemark or end of data.
fn next_on_tape(tape: &mut Tape<Dyn>) -> Result<Option<Vec<u8>>, DeviceError> {
    use crate::device::tape::ReadOutcome;
    match tape.read_block(vec![0; 1 << 17]) {
        Ok((ReadOutcome::Block(n), mut b)) => {
            b.truncate(n);
            Ok(Some(b))
        }
        Ok(_) => Ok(None),
        Err(e) => Err(e),
    }
}

fn aborted_text(x: &Exchange) -> String {
    match CopyAborted::from_sense_bytes(&x.raw_sense) {
        Some(a) if !a.embedded.is_empty() => match crate::scsi::sense::Sense::parse(&a.embedded) {
            Ok(s) => format!("{}; the copy device said: {s}", x.summary()),
            Err(_) => x.summary(),
        },
        _ => x.summary(),
    }
}

pub(super) fn inline_and_filemark(t: &mut Target) -> Result<Finding, DeviceError> {
    let mut r = match rig(
        t,
        &[SegmentType::INLINE_TO_STREAM, SegmentType::WRITE_FILEMARKS],
    )? {
        Ok(r) => r,
        Err(f) => return Ok(f),
    };
    let segs = vec![
        seg(SegmentKind::InlineToStream {
            dst: 1,
            stream_len: INLINE as u32,
            inline_len: INLINE as u32,
            inline_offset: 0,
        }),
        seg(SegmentKind::WriteFilemarks {
            dst: 1,
            wsmk: false,
            immed: false,
            count: 1,
        }),
    ];
    let x = send(t, &r.cscds, segs, inline_bytes())?;
    r.tape.rewind()?;
    let block = next_on_tape(&mut r.tape)?;
    let fm = next_on_tape(&mut r.tape)?;
    let ok = x.good() && block.as_deref() == Some(inline_bytes().as_slice()) && fm.is_none();
    let obs = format!(
        "{}; tape: {}, then {}",
        aborted_text(&x),
        block.map_or("no block".into(), |b| format!(
            "a block of {} bytes{}",
            b.len(),
            if b == inline_bytes() {
                " equal to the inline data"
            } else {
                ""
            }
        )),
        if fm.is_none() {
            "a filemark"
        } else {
            "another block"
        }
    );
    Ok(Finding::judge(
        ok,
        format!(
            "{} (04h: {INLINE} inline bytes to the tape; 10h: 1 filemark); REWIND; READ; READ",
            sent(&x.cdb)
        ),
        obs,
    ))
}

fn read_lu(t: &mut Target, lba: u64, bs: u32) -> Result<Vec<u8>, DeviceError> {
    let cdb = crate::scsi::sbc::Read16::new(Lba(lba), BLOCKS as u32).to_cdb();
    Ok(
        t.send(Request::data_in(cdb, BLOCKS as usize * bs as usize))?
            .data,
    )
}

pub(super) fn block_to_stream(t: &mut Target) -> Result<Finding, DeviceError> {
    let mut r = match rig(t, &[SegmentType::BLOCK_TO_STREAM])? {
        Ok(r) => r,
        Err(f) => return Ok(f),
    };
    let len = BLOCKS as u32 * r.block_size;
    let x = send(
        t,
        &r.cscds,
        vec![seg(SegmentKind::BlockToStream {
            src: 0,
            dst: 1,
            stream_len: len,
            blocks: BLOCKS,
            lba: Lba(0),
        })],
        Vec::new(),
    )?;
    r.tape.rewind()?;
    let on_tape = next_on_tape(&mut r.tape)?;
    let disk = read_lu(t, 0, r.block_size)?;
    let same = on_tape.as_deref() == Some(disk.as_slice());
    let obs = format!(
        "{}; the tape's first block {}",
        aborted_text(&x),
        if same {
            "equals LBA 0-7"
        } else {
            "differs from LBA 0-7"
        }
    );
    Ok(Finding::judge(
        x.good() && same,
        format!(
            "{} (00h: {BLOCKS} blocks from LBA 0 to one {len}-byte tape block); REWIND; READ",
            sent(&x.cdb)
        ),
        obs,
    ))
}

pub(super) fn stream_to_block(t: &mut Target) -> Result<Finding, DeviceError> {
    let mut r = match rig(t, &[SegmentType::STREAM_TO_BLOCK])? {
        Ok(r) => r,
        Err(f) => return Ok(f),
    };
    let len = BLOCKS as u32 * r.block_size;
    let data: Vec<u8> = (0..len as usize).map(|i| (i * 7 + 1) as u8).collect();
    r.tape.write_block(data.clone())?;
    r.tape.write_filemarks(1)?;
    r.tape.rewind()?;
    let dst = r.blocks.saturating_sub(2 * BLOCKS as u64);
    let x = send(
        t,
        &r.cscds,
        vec![seg(SegmentKind::StreamToBlock {
            src: 1,
            dst: 0,
            stream_len: len,
            blocks: BLOCKS,
            lba: Lba(dst),
        })],
        Vec::new(),
    )?;
    let back = read_lu(t, dst, r.block_size)?;
    let same = back == data;
    let obs = format!(
        "{}; LBA {dst}-{}: {}",
        aborted_text(&x),
        dst + BLOCKS as u64 - 1,
        if same {
            "the tape block's bytes"
        } else {
            "different bytes"
        }
    );
    Ok(Finding::judge(
        x.good() && same,
        format!(
            "WRITE(6) one {len}-byte block to the tape; REWIND; {} (01h: that block to LBA {dst})",
            sent(&x.cdb)
        ),
        obs,
    ))
}

pub(super) fn discard_and_space(t: &mut Target) -> Result<Finding, DeviceError> {
    let mut r = match rig(t, &[SegmentType::STREAM_TO_DISCARD, SegmentType::SPACE])? {
        Ok(r) => r,
        Err(f) => return Ok(f),
    };
    for i in 0..3u8 {
        r.tape.write_block(vec![i; INLINE])?;
    }
    r.tape.write_filemarks(1)?;
    r.tape.rewind()?;
    let segs = vec![
        seg(SegmentKind::StreamToDiscard {
            src: 1,
            stream_len: INLINE as u32,
            byte_count: INLINE as u32,
        }),
        seg(SegmentKind::Space {
            dst: 1,
            code: 0,
            count: 1,
        }),
    ];
    let x = send(t, &r.cscds, segs, Vec::new())?;
    let next = next_on_tape(&mut r.tape)?;
    let ok = x.good() && next.as_deref() == Some(vec![2u8; INLINE].as_slice());
    let obs = format!(
        "{}; the next block read is {}",
        aborted_text(&x),
        match next.as_ref().and_then(|b| b.first()) {
            Some(i) => format!("block {i}"),
            None => "a filemark or end of data".into(),
        }
    );
    Ok(Finding::judge(ok, format!("3 blocks and a filemark written; REWIND; {} (06h: discard block 0; 11h: space 1 block); READ", sent(&x.cdb)), obs))
}

pub(super) fn locate(t: &mut Target) -> Result<Finding, DeviceError> {
    let mut r = match rig(t, &[SegmentType::LOCATE])? {
        Ok(r) => r,
        Err(f) => return Ok(f),
    };
    for i in 0..3u8 {
        r.tape.write_block(vec![i; INLINE])?;
    }
    r.tape.write_filemarks(1)?;
    r.tape.rewind()?;
    let x = send(
        t,
        &r.cscds,
        vec![seg(SegmentKind::Locate {
            dst: 1,
            object_id: 2,
        })],
        Vec::new(),
    )?;
    let embedded = CopyAborted::from_sense_bytes(&x.raw_sense)
        .and_then(|a| crate::scsi::sense::Sense::parse(&a.embedded).ok());
    if embedded.is_some_and(|s| s.key == SenseKey::ILLEGAL_REQUEST && s.asc == Asc::INVALID_OPCODE)
    {
        return Ok(Finding::unsupported(
            sent(&x.cdb),
            aborted_text(&x),
            "the tape behind the copy manager has no LOCATE",
        ));
    }
    let next = next_on_tape(&mut r.tape)?;
    let ok = x.good() && next.as_deref() == Some(vec![2u8; INLINE].as_slice());
    Ok(Finding::judge(
        ok,
        format!(
            "3 blocks written; REWIND; {} (12h: locate object 2); READ",
            sent(&x.cdb)
        ),
        format!(
            "{}; next block {:?}",
            aborted_text(&x),
            next.and_then(|b| b.first().copied())
        ),
    ))
}
