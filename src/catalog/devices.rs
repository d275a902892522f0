//! Where each volume was last seen: the device address that held it.

use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::{Catalog, CatalogError};

impl Catalog {
    /// Remember that volume `id` is in `device` (an address without
    /// secrets), and no other volume is. The volume must be in the catalog.
    pub fn set_volume_device(&self, id: Uuid, device: &str) -> Result<(), CatalogError> {
        self.conn.execute(
            "UPDATE volumes SET device = NULL WHERE device = ?1 AND id != ?2",
            params![device, id.to_string()],
        )?;
        let n = self.conn.execute(
            "UPDATE volumes SET device = ?1 WHERE id = ?2",
            params![device, id.to_string()],
        )?;
        if n == 0 {
            return Err(CatalogError::NotFound(format!("volume {id}")));
        }
        Ok(())
    }

    /// The volume last seen in `device`, if any.
    pub fn volume_in_device(&self, device: &str) -> Result<Option<Uuid>, CatalogError> {
        let id = self
            .conn
            .query_row(
                "SELECT id FROM volumes WHERE device = ?1",
                params![device],
                |r| r.get::<_, String>(0),
            )
            .optional()?;
        id.map(|s| {
            Uuid::parse_str(&s)
                .map_err(|e| CatalogError::Invalid(format!("volume id {s:?} in the catalog: {e}")))
        })
        .transpose()
    }

    /// The device volume `id` was last seen in, if known.
    pub fn volume_device(&self, id: Uuid) -> Result<Option<String>, CatalogError> {
        Ok(self
            .conn
            .query_row(
                "SELECT device FROM volumes WHERE id = ?1",
                params![id.to_string()],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::VolumeRow;

    #[test]
    fn device_round_trip_and_unknown_volume() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("c.db")).unwrap();
        let id = Uuid::new_v4();
        assert!(c.set_volume_device(id, "iscsi://x/y/1").is_err());
        c.upsert_volume(&VolumeRow {
            id,
            name: "V".into(),
            created: 1,
            last_file: None,
        })
        .unwrap();
        assert_eq!(c.volume_device(id).unwrap(), None);
        c.set_volume_device(id, "iscsi://x/y/1").unwrap();
        assert_eq!(
            c.volume_device(id).unwrap().as_deref(),
            Some("iscsi://x/y/1")
        );
        assert_eq!(c.volume_device(Uuid::new_v4()).unwrap(), None);
        assert_eq!(c.volume_in_device("iscsi://x/y/1").unwrap(), Some(id));
        assert_eq!(c.volume_in_device("iscsi://x/y/2").unwrap(), None);
        // A second volume loaded into the same drive takes its place.
        let other = Uuid::new_v4();
        c.upsert_volume(&VolumeRow {
            id: other,
            name: "W".into(),
            created: 2,
            last_file: None,
        })
        .unwrap();
        c.set_volume_device(other, "iscsi://x/y/1").unwrap();
        assert_eq!(c.volume_in_device("iscsi://x/y/1").unwrap(), Some(other));
        assert_eq!(c.volume_device(id).unwrap(), None);
    }
}
