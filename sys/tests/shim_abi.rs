//! The C shim and the linked libiscsi must agree: a task made by the
//! library is read back field by field through the shim.

use std::ptr;

use libiscsi_sys::*;

#[test]
fn shim_abi_and_sizes() {
    // SAFETY: argument-less functions of the shim, no state.
    let (abi, api, task, sense) = unsafe {
        (
            sanmover_shim_abi(),
            sanmover_shim_api_version(),
            sanmover_sizeof_scsi_task(),
            sanmover_sizeof_scsi_sense(),
        )
    };
    assert_eq!(abi, SHIM_ABI);
    assert!(api >= LIBISCSI_API_VERSION_1_19, "API version {api}");
    let known = [
        (SIZEOF_SCSI_TASK_1_19, SIZEOF_SCSI_SENSE_1_19),
        (SIZEOF_SCSI_TASK_1_20, SIZEOF_SCSI_SENSE_1_20),
    ];
    assert!(
        known.contains(&(task, sense)),
        "sizeof scsi_task {task} / scsi_sense {sense} is not a known layout"
    );
    if LIBISCSI_PKG_VERSION.starts_with("1.19") {
        assert_eq!((task, sense), known[0]);
    }
}

#[test]
fn task_fields_read_back_through_shim() {
    let mut cdb = [0x88u8, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 8, 0, 0];
    // SAFETY: cdb holds 16 bytes and cdb_size is 16; the task is freed below.
    let task = unsafe { scsi_create_task(16, cdb.as_mut_ptr(), SCSI_XFER_READ, 4096) };
    assert!(!task.is_null());
    let mut out = [0u8; 16];
    let (mut kind, mut amount) = (-1, u64::MAX);
    let (mut data, mut size) = (ptr::null(), -1);
    // SAFETY: task is a live task from scsi_create_task; out has 16 bytes;
    // the out-pointers point at locals.
    let (status, cdb_size, dir, exp, n) = unsafe {
        sanmover_task_residual(task, &mut kind, &mut amount);
        sanmover_task_datain(task, &mut data, &mut size);
        (
            sanmover_task_status(task),
            sanmover_task_cdb_size(task),
            sanmover_task_xfer_dir(task),
            sanmover_task_expxferlen(task),
            sanmover_task_cdb(task, out.as_mut_ptr(), 16),
        )
    };
    assert_eq!(status, SCSI_STATUS_GOOD);
    assert_eq!(cdb_size, 16);
    assert_eq!(n, 16);
    assert_eq!(dir, SCSI_XFER_READ);
    assert_eq!(exp, 4096);
    assert_eq!(out, cdb);
    assert_eq!((kind, amount), (SCSI_RESIDUAL_NO_RESIDUAL, 0));
    assert!(data.is_null());
    assert_eq!(size, 0);

    // A user data-in buffer must not touch libiscsi's own datain.
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf outlives the task (freed before buf is dropped).
    let rc = unsafe { scsi_task_add_data_in_buffer(task, 4096, buf.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: as above.
    unsafe { sanmover_task_datain(task, &mut data, &mut size) };
    assert!(data.is_null());
    // SAFETY: task is live and no longer used after this.
    unsafe { scsi_free_scsi_task(task) };
    drop(buf);
}

#[test]
fn short_cdb_and_write_direction() {
    let mut cdb = [0x0au8, 0, 0, 0x02, 0, 0];
    // SAFETY: six bytes, cdb_size 6.
    let task = unsafe { scsi_create_task(6, cdb.as_mut_ptr(), SCSI_XFER_WRITE, 512) };
    assert!(!task.is_null());
    let mut out = [0xffu8; 16];
    // SAFETY: live task, out has 16 bytes.
    let (n, dir, exp, lun) = unsafe {
        (
            sanmover_task_cdb(task, out.as_mut_ptr(), 16),
            sanmover_task_xfer_dir(task),
            sanmover_task_expxferlen(task),
            sanmover_task_lun(task),
        )
    };
    assert_eq!(n, 6);
    assert_eq!(&out[..6], &cdb);
    assert_eq!(out[6], 0xff, "the shim copied past cdb_size");
    assert_eq!(dir, SCSI_XFER_WRITE);
    assert_eq!(exp, 512);
    assert_eq!(lun, 0);
    // SAFETY: live task, freed once.
    unsafe { scsi_free_scsi_task(task) };
}

#[test]
fn context_create_set_destroy() {
    let name = c"iqn.2024-01.org.sanmover:sys-test";
    // SAFETY: NUL-terminated name; the context is destroyed below.
    let ctx = unsafe { iscsi_create_context(name.as_ptr()) };
    assert!(!ctx.is_null());
    // SAFETY: ctx is a live context used by this thread only.
    unsafe {
        assert_eq!(iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL), 0);
        assert_eq!(
            iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C),
            0
        );
        assert_eq!(iscsi_set_targetname(ctx, c"iqn.x:y".as_ptr()), 0);
        assert_eq!(iscsi_set_timeout(ctx, 5), 0);
        iscsi_set_noautoreconnect(ctx, 1);
        iscsi_set_tcp_syncnt(ctx, 1);
        assert_eq!(iscsi_is_logged_in(ctx), 0);
        // Not connected: submission must be refused, not crash.
        let mut cdb = [0u8; 6];
        let task = scsi_create_task(6, cdb.as_mut_ptr(), SCSI_XFER_NONE, 0);
        let rc = iscsi_scsi_command_async(ctx, 0, task, None, ptr::null_mut(), ptr::null_mut());
        assert!(rc < 0);
        scsi_free_scsi_task(task);
        assert!(!iscsi_get_error(ctx).is_null());
        assert_eq!(iscsi_destroy_context(ctx), 0);
    }
}

#[test]
fn an_empty_initiator_name_is_refused() {
    // SAFETY: NUL-terminated (empty) name.
    let ctx = unsafe { iscsi_create_context(c"".as_ptr()) };
    assert!(ctx.is_null());
}
