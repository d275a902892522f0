//! Arbitrary CDBs and EXTENDED COPY parameter lists sent to the copy
//! manager LU (no backends: its own small disk only), with copy rights
//! configured as a user would: it must answer every one with a status and
//! never panic. The first byte picks the command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanmover::router::{
    Backends, CopyAcl, CopyManager, CopyManagerConfig, CopyRights, LuEntry, Role, RuleEntry,
};
use sanmover::lu::LogicalUnit;

fuzz_target!(|data: &[u8]| {
    let rule = RuleEntry {
        initiators: vec!["iqn.2026-01.org.sanmover.fuzz:backup".into()],
        lus: vec![LuEntry {
            designator: Some("6001405a00000000".into()),
            target: None,
            lun: None,
            role: Role::Both,
        }],
    };
    let acl = CopyAcl::new(&[rule], &Default::default()).expect("fuzz ACL");
    let mut cm = CopyManager::new(
        CopyManagerConfig {
            own_blocks: 64,
            rights: CopyRights::Acl(acl),
            ..CopyManagerConfig::default()
        },
        Backends::new(),
    );
    let mut data_in = vec![0u8; 4096];
    match data.split_first() {
        // EXTENDED COPY(LID1) with the rest as its parameter list.
        Some((0, list)) => {
            let mut cdb = [0u8; 16];
            cdb[0] = 0x83;
            cdb[10..14].copy_from_slice(&(list.len() as u32).to_be_bytes());
            let _ = cm.execute(&cdb, list, &mut data_in);
        }
        // Any CDB of up to 16 bytes, the rest as data-out.
        Some((n, rest)) => {
            let len = (*n as usize % 16 + 1).min(rest.len());
            if len > 0 {
                let _ = cm.execute(&rest[..len], &rest[len..], &mut data_in);
            }
        }
        None => {}
    }
});
