//! A thin layer over SQLite's own file layer (its VFS) that gathers a commit's appends to the WAL
//! into a few large writes.
//!
//! SQLite writes each WAL frame with two `pwrite`s, its 24-byte header and then its page; an event
//! stored or delivered changes four or five pages, so a batch of commits' frames cost hundreds of
//! system calls on the writer thread. Here the appends to a WAL file are kept in memory and written
//! at once — before the file's sync (which SQLite calls before a commit returns, `synchronous =
//! FULL`), before anything else is asked of the file (a read, its size, a truncation, a control),
//! and whenever [`MAX_GATHERED`] bytes wait. So what a returned commit wrote is on disk exactly as
//! before; a process killed earlier loses only frames of a commit that had not returned, which
//! SQLite ignores anyway (no commit frame with a valid checksum follows them).
//!
//! Every other file (the database, its shared memory) passes straight through.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections open the store's file with.
pub(super) const VFS_NAME: &CStr = c"drsf-wal-appends";

/// Gathered bytes are written once this many wait (bytes): about 60 frames of 4 KiB pages.
const MAX_GATHERED: usize = 256 * 1024;
/// The most one write beneath passes (bytes): the unix VFS writes at most 128 KiB − 1 a call.
const MAX_WRITE: usize = 64 * 1024;

/// What SQLite allocates for a file opened here: this header, then the file of the VFS beneath.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// The appends waiting to be written; null for a file that is not a WAL.
    gathered: *mut Gathered,
}

struct Gathered {
    /// Where the first waiting byte goes in the file.
    offset: i64,
    bytes: Vec<u8>,
}

/// Registers the layer (once per process) over the default VFS; not made the default.
pub(super) fn register() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<c_int> = OnceLock::new();
    let rc = *REGISTERED.get_or_init(|| {
        // SAFETY: `sqlite3_vfs_find` returns the registered default VFS, which lives as long as
        // the process; the copy made from it is leaked, as SQLite keeps the pointer it is given.
        unsafe {
            let root = ffi::sqlite3_vfs_find(ptr::null());
            if root.is_null() {
                return ffi::SQLITE_ERROR;
            }
            let mut vfs = *root;
            vfs.iVersion = vfs.iVersion.min(3);
            // `File` is three pointers.
            vfs.szOsFile = std::mem::size_of::<File>() as c_int + (*root).szOsFile;
            vfs.pNext = ptr::null_mut();
            vfs.zName = VFS_NAME.as_ptr();
            vfs.pAppData = root.cast();
            vfs.xOpen = Some(open);
            vfs.xDelete = Some(delete);
            vfs.xAccess = Some(access);
            vfs.xFullPathname = Some(full_pathname);
            ffi::sqlite3_vfs_register(Box::leak(Box::new(vfs)), 0)
        }
    });
    anyhow::ensure!(rc == ffi::SQLITE_OK, "registering SQLite's VFS layer failed ({rc})");
    Ok(())
}

unsafe fn root(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    unsafe { (*vfs).pAppData.cast() }
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    unsafe {
        let root = root(vfs);
        let shim = file.cast::<File>();
        let inner = file
            .cast::<u8>()
            .add(std::mem::size_of::<File>())
            .cast::<ffi::sqlite3_file>();
        (*inner).pMethods = ptr::null();
        let Some(root_open) = (*root).xOpen else {
            return ffi::SQLITE_ERROR;
        };
        let rc = root_open(root, name, inner, flags, out_flags);
        if (*inner).pMethods.is_null() {
            (*shim).base.pMethods = ptr::null();
            return rc;
        }
        (*shim).inner = inner;
        (*shim).gathered = if flags & ffi::SQLITE_OPEN_WAL != 0 {
            Box::into_raw(Box::new(Gathered {
                offset: 0,
                bytes: Vec::new(),
            }))
        } else {
            ptr::null_mut()
        };
        (*shim).base.pMethods = &METHODS;
        rc
    }
}

unsafe extern "C" fn delete(vfs: *mut ffi::sqlite3_vfs, name: *const c_char, sync_dir: c_int) -> c_int {
    unsafe {
        let root = root(vfs);
        (*root).xDelete.map_or(ffi::SQLITE_ERROR, |f| f(root, name, sync_dir))
    }
}

unsafe extern "C" fn access(vfs: *mut ffi::sqlite3_vfs, name: *const c_char, flags: c_int, out: *mut c_int) -> c_int {
    unsafe {
        let root = root(vfs);
        (*root).xAccess.map_or(ffi::SQLITE_ERROR, |f| f(root, name, flags, out))
    }
}

unsafe extern "C" fn full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    unsafe {
        let root = root(vfs);
        (*root)
            .xFullPathname
            .map_or(ffi::SQLITE_ERROR, |f| f(root, name, n, out))
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// The file beneath and its methods.
unsafe fn inner(file: *mut ffi::sqlite3_file) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    unsafe {
        let inner = (*file.cast::<File>()).inner;
        (inner, &*(*inner).pMethods)
    }
}

#[cfg(test)]
thread_local! {
    /// The writes this thread made to WAL files beneath the layer.
    pub(super) static WAL_WRITES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Writes what waits, if anything; called before every method but an append.
unsafe fn write_gathered(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let Some(gathered) = (*file.cast::<File>()).gathered.as_mut() else {
            return ffi::SQLITE_OK;
        };
        let (inner, methods) = inner(file);
        gathered.write_to(inner, methods)
    }
}

impl Gathered {
    /// Writes the waiting bytes to `inner`, at most [`MAX_WRITE`] a call, and forgets them.
    unsafe fn write_to(&mut self, inner: *mut ffi::sqlite3_file, methods: &ffi::sqlite3_io_methods) -> c_int {
        if self.bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        let Some(write) = methods.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut offset = self.offset;
        let mut rc = ffi::SQLITE_OK;
        for chunk in self.bytes.chunks(MAX_WRITE) {
            #[cfg(test)]
            WAL_WRITES.with(|count| count.set(count.get() + 1));
            // SAFETY: `inner` is the open file beneath, and `chunk` lives through the call;
            // `MAX_WRITE` fits a `c_int`.
            rc = unsafe { write(inner, chunk.as_ptr().cast(), chunk.len() as c_int, offset) };
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += chunk.len() as i64;
        }
        self.bytes.clear();
        rc
    }
}

unsafe extern "C" fn write(file: *mut ffi::sqlite3_file, data: *const c_void, amount: c_int, offset: i64) -> c_int {
    unsafe {
        let Some(gathered) = (*file.cast::<File>()).gathered.as_mut() else {
            let (inner, methods) = inner(file);
            return methods
                .xWrite
                .map_or(ffi::SQLITE_IOERR_WRITE, |f| f(inner, data, amount, offset));
        };
        let (inner, methods) = inner(file);
        let end = gathered.offset + gathered.bytes.len() as i64;
        if !gathered.bytes.is_empty() && offset != end {
            // Not an append to what waits (a frame written again): what waits goes first.
            let rc = gathered.write_to(inner, methods);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if gathered.bytes.is_empty() {
            gathered.offset = offset;
        }
        let Ok(len) = usize::try_from(amount) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        gathered
            .bytes
            .extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len));
        if gathered.bytes.len() >= MAX_GATHERED {
            gathered.write_to(inner, methods)
        } else {
            ffi::SQLITE_OK
        }
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let written = write_gathered(file);
        let shim = file.cast::<File>();
        if !(*shim).gathered.is_null() {
            drop(Box::from_raw((*shim).gathered));
            (*shim).gathered = ptr::null_mut();
        }
        let (inner, methods) = inner(file);
        let closed = methods.xClose.map_or(ffi::SQLITE_OK, |f| f(inner));
        if written != ffi::SQLITE_OK { written } else { closed }
    }
}

/// A method that passes through once what waits is written.
macro_rules! after_gathered {
    ($name:ident, $method:ident, $fail:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            unsafe {
                let rc = write_gathered(file);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let (inner, methods) = inner(file);
                methods.$method.map_or($fail, |f| f(inner $(, $arg)*))
            }
        }
    };
}

/// A method that passes straight through.
macro_rules! through {
    ($name:ident, $method:ident, $fail:expr, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            unsafe {
                let (inner, methods) = inner(file);
                methods.$method.map_or($fail, |f| f(inner $(, $arg)*))
            }
        }
    };
}

after_gathered!(read, xRead, ffi::SQLITE_IOERR_READ, (data: *mut c_void, amount: c_int, offset: i64) -> c_int);
after_gathered!(truncate, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, (size: i64) -> c_int);
after_gathered!(sync, xSync, ffi::SQLITE_IOERR_FSYNC, (flags: c_int) -> c_int);
after_gathered!(file_size, xFileSize, ffi::SQLITE_IOERR_FSTAT, (size: *mut i64) -> c_int);
after_gathered!(file_control, xFileControl, ffi::SQLITE_NOTFOUND, (op: c_int, arg: *mut c_void) -> c_int);
after_gathered!(fetch, xFetch, ffi::SQLITE_OK, (offset: i64, amount: c_int, out: *mut *mut c_void) -> c_int);
through!(lock, xLock, ffi::SQLITE_IOERR_LOCK, (level: c_int) -> c_int);
through!(unlock, xUnlock, ffi::SQLITE_IOERR_UNLOCK, (level: c_int) -> c_int);
through!(check_reserved_lock, xCheckReservedLock, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, (out: *mut c_int) -> c_int);
through!(sector_size, xSectorSize, 4096, () -> c_int);
through!(device_characteristics, xDeviceCharacteristics, 0, () -> c_int);
through!(shm_map, xShmMap, ffi::SQLITE_IOERR_SHMMAP, (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int);
through!(shm_lock, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, (offset: c_int, n: c_int, flags: c_int) -> c_int);
through!(shm_unmap, xShmUnmap, ffi::SQLITE_OK, (delete: c_int) -> c_int);
through!(unfetch, xUnfetch, ffi::SQLITE_OK, (offset: i64, page: *mut c_void) -> c_int);

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    unsafe {
        let (inner, methods) = inner(file);
        if let Some(f) = methods.xShmBarrier {
            f(inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, OpenFlags, params};

    use super::{VFS_NAME, WAL_WRITES, register};

    const FRAME: u64 = 24 + 4096;

    fn open_through_the_layer(path: &std::path::Path) -> Connection {
        register().unwrap();
        let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), VFS_NAME.to_str().unwrap()).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        conn
    }

    fn wal_frames(path: &std::path::Path) -> u64 {
        let wal = path.with_extension("db-wal");
        (std::fs::metadata(wal).unwrap().len() - 32) / FRAME
    }

    /// A table `t` in a file of its own, opened through the layer, with `rows` rows of `size`
    /// bytes inserted in an open transaction; `setup` runs first.
    fn rows_in_a_transaction(setup: &str, rows: i64, size: usize) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_through_the_layer(&dir.path().join("store.db"));
        conn.execute_batch(setup).unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for n in 0..rows {
            conn.execute("INSERT INTO t VALUES (?1, ?2)", params![n, vec![1u8; size]])
                .unwrap();
        }
        (dir, conn)
    }

    fn two_numbers(conn: &Connection, sql: &str, values: impl rusqlite::Params) -> (i64, i64) {
        conn.query_row(sql, values, |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
    }

    #[test]
    fn a_commits_frames_reach_the_wal_in_a_few_writes_and_read_back_whole() {
        let (dir, conn) = rows_in_a_transaction("", 300, 1000);
        let path = dir.path().join("store.db");
        let frames_before = wal_frames(&path);
        WAL_WRITES.with(|count| count.set(0));
        conn.execute_batch("COMMIT").unwrap();

        let frames = wal_frames(&path) - frames_before;
        let writes = WAL_WRITES.with(std::cell::Cell::get);
        assert!(frames >= 60, "the commit wrote {frames} frames");
        assert!(
            (1..=8).contains(&writes),
            "{frames} frames took {writes} writes beneath the layer"
        );

        let plain = Connection::open(&path).unwrap();
        let read_back = two_numbers(&plain, "SELECT count(*), sum(length(body)) FROM t", []);
        assert_eq!(read_back, (300, 300_000));
    }

    #[test]
    fn frames_written_again_within_a_transaction_and_read_back_stay_right() {
        // A tiny page cache spills the transaction's pages to the WAL before the commit; a larger
        // one then keeps every tenth page changed again until the commit, which writes them over
        // their spilled frames, each away from the one before.
        let (dir, conn) = rows_in_a_transaction("PRAGMA cache_size = 4", 500, 700);
        let path = dir.path().join("store.db");
        conn.execute_batch("PRAGMA cache_size = 1000").unwrap();
        conn.execute("UPDATE t SET body = ?1 WHERE n % 50 = 0", params![vec![2u8; 700]])
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
        drop(conn);

        let plain = Connection::open(&path).unwrap();
        let check: String = plain.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        let (changed, rows) = two_numbers(
            &plain,
            "SELECT sum(body = ?1), count(*) FROM t",
            params![vec![2u8; 700]],
        );
        assert_eq!((check.as_str(), changed, rows), ("ok", 10, 500));
    }

    #[test]
    fn the_stores_writer_opens_its_file_through_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_for_writing(&dir.path().join("store.db")).unwrap();
        let mut vfs: *mut rusqlite::ffi::sqlite3_vfs = std::ptr::null_mut();
        // SAFETY: the handle is the open connection's; the pointer SQLite writes is its VFS,
        // registered for the life of the process.
        let name = unsafe {
            let rc = rusqlite::ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                rusqlite::ffi::SQLITE_FCNTL_VFS_POINTER,
                (&raw mut vfs).cast(),
            );
            assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
            std::ffi::CStr::from_ptr((*vfs).zName).to_owned()
        };
        assert_eq!(name.as_c_str(), VFS_NAME);
    }
}
