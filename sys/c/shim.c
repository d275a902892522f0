/*
 * Accessors for libiscsi struct fields, compiled against the installed
 * headers so that Rust never mirrors a struct layout.
 *
 * Why: struct scsi_sense grew in libiscsi 1.20 (info_valid + information),
 * which moved every struct scsi_task field after `sense` (datain is at
 * offset 64 in 1.19 and 72 in 1.20). Reading fields here keeps the Rust
 * side correct for whichever release the build found.
 */
#include <stddef.h>
#include <stdint.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

/* Bumped when the shim's own function set changes. */
#define SANMOVER_SHIM_ABI 1

int sanmover_shim_abi(void)
{
	return SANMOVER_SHIM_ABI;
}

/* LIBISCSI_API_VERSION of the headers the shim was compiled with. */
long sanmover_shim_api_version(void)
{
#ifdef LIBISCSI_API_VERSION
	return (long)LIBISCSI_API_VERSION;
#else
	return 0;
#endif
}

size_t sanmover_sizeof_scsi_task(void)
{
	return sizeof(struct scsi_task);
}

size_t sanmover_sizeof_scsi_sense(void)
{
	return sizeof(struct scsi_sense);
}

int sanmover_task_status(const struct scsi_task *task)
{
	return task->status;
}

int sanmover_task_cdb_size(const struct scsi_task *task)
{
	return task->cdb_size;
}

/* Copies up to `len` CDB bytes into `out`; returns the CDB size. */
int sanmover_task_cdb(const struct scsi_task *task, unsigned char *out, int len)
{
	int n = task->cdb_size;
	int i;

	if (n > SCSI_CDB_MAX_SIZE)
		n = SCSI_CDB_MAX_SIZE;
	for (i = 0; i < n && i < len; i++)
		out[i] = task->cdb[i];
	return task->cdb_size;
}

int sanmover_task_xfer_dir(const struct scsi_task *task)
{
	return task->xfer_dir;
}

int sanmover_task_expxferlen(const struct scsi_task *task)
{
	return task->expxferlen;
}

/* Residual kind (enum scsi_residual) and amount in bytes. */
void sanmover_task_residual(const struct scsi_task *task, int *kind,
			    uint64_t *amount)
{
	*kind = (int)task->residual_status;
	*amount = (uint64_t)task->residual;
}

/*
 * task->datain: on CHECK CONDITION this is the raw SCSI Response data
 * segment (2-byte big-endian SenseLength, then the sense bytes).
 */
void sanmover_task_datain(const struct scsi_task *task,
			  const unsigned char **data, int *size)
{
	*data = task->datain.data;
	*size = task->datain.size;
}

uint32_t sanmover_task_itt(const struct scsi_task *task)
{
	return task->itt;
}

uint32_t sanmover_task_cmdsn(const struct scsi_task *task)
{
	return task->cmdsn;
}

uint32_t sanmover_task_lun(const struct scsi_task *task)
{
	return task->lun;
}

/* The sense key and ASC/ASCQ as libiscsi parsed them (cross-checks only). */
void sanmover_task_sense(const struct scsi_task *task, int *key, int *ascq)
{
	*key = (int)task->sense.key;
	*ascq = task->sense.ascq;
}

/*
 * The layouts this shim has been checked against (x86_64, gcc): 1.19 has a
 * 16-byte scsi_sense and a 176-byte scsi_task, 1.20+ has 24 and 184. A
 * different size means a release nobody has looked at yet: fail the build
 * rather than guess.
 */
#if defined(__x86_64__) || defined(__aarch64__)
_Static_assert(sizeof(struct scsi_sense) == 16 || sizeof(struct scsi_sense) == 24,
	       "unknown struct scsi_sense layout");
_Static_assert(sizeof(struct scsi_task) == sizeof(struct scsi_sense) + 160,
	       "unknown struct scsi_task layout");
#endif
