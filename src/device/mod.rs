//! Disks and tapes: SCSI verbs over a transport (being written).
