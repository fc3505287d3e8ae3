//! cgcore's C API from Rust: the declarations of <cgcore/cgcore.h> this
//! program uses, a thin safe wrapper (errors as `Err(errno)` with the
//! library's message), and the walk of the C example: a pids limit, a
//! refused fork, a migration, the invariant checker. Exits 0 when every step
//! behaved as expected.
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::process::exit;
use std::ptr;

/// The C API, as declared in <cgcore/cgcore.h> (0.x: only ever grows).
mod ffi {
    use super::*;

    #[repr(C)]
    pub struct Engine {
        _opaque: [u8; 0],
    }
    #[repr(C)]
    pub struct Fs {
        _opaque: [u8; 0],
    }
    /// struct cgcore_engine_options (size-versioned: `size` first).
    #[repr(C)]
    pub struct EngineOptions {
        pub size: usize,
        pub nr_cpus: u32,
        pub nr_nodes: u32,
    }
    /// struct cgcore_caller; a null pointer is root.
    #[repr(C)]
    pub struct Caller {
        pub size: usize,
        pub uid: u32,
        pub gid: u32,
        pub pid: i32,
        pub flags: u32,
    }

    extern "C" {
        pub fn cgcore_version() -> *const c_char;
        pub fn cgcore_last_error() -> *const c_char;
        pub fn cgcore_strerror(err: c_int) -> *const c_char;
        pub fn cgcore_free(ptr: *mut c_void);
        pub fn cgcore_engine_create(options: *const EngineOptions, out: *mut *mut Engine) -> c_int;
        pub fn cgcore_engine_destroy(engine: *mut Engine) -> c_int;
        pub fn cgcore_mount(
            engine: *mut Engine,
            controllers: *const c_char,
            name: *const c_char,
            id: *mut c_int,
        ) -> c_int;
        pub fn cgcore_mkdir(engine: *mut Engine, hierarchy: c_int, path: *const c_char, id: *mut u64) -> c_int;
        pub fn cgcore_spawn(engine: *mut Engine, pid: i32, out: *mut i32) -> c_int;
        pub fn cgcore_fork(engine: *mut Engine, parent: i32, child: i32, flags: c_uint, out: *mut i32) -> c_int;
        pub fn cgcore_migrate_process(engine: *mut Engine, pid: i32, hierarchy: c_int, path: *const c_char) -> c_int;
        pub fn cgcore_task_cgroup(engine: *mut Engine, tid: i32, hierarchy: c_int, path: *mut *mut c_char) -> c_int;
        pub fn cgcore_check_invariants(engine: *mut Engine, message: *mut *mut c_char) -> c_int;
        pub fn cgcore_fs_create(engine: *mut Engine, layout: *const c_char, out: *mut *mut Fs) -> c_int;
        pub fn cgcore_fs_destroy(fs: *mut Fs);
        pub fn cgcore_fs_read(
            fs: *mut Fs,
            path: *const c_char,
            caller: *const Caller,
            data: *mut *mut c_char,
            size: *mut usize,
        ) -> c_int;
        pub fn cgcore_fs_write(
            fs: *mut Fs,
            path: *const c_char,
            data: *const c_char,
            size: usize,
            caller: *const Caller,
        ) -> c_int;
    }
}

/// A failed call: the negative errno and the library's message.
#[derive(Debug)]
struct Error {
    rc: i32,
    message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let name = unsafe { CStr::from_ptr(ffi::cgcore_strerror(self.rc)) };
        write!(f, "{}: {}", name.to_string_lossy(), self.message)
    }
}

/// 0 or the error of the call that just returned `rc` on this thread.
fn check(rc: c_int) -> Result<(), Error> {
    if rc == 0 {
        return Ok(());
    }
    let message = unsafe { CStr::from_ptr(ffi::cgcore_last_error()) };
    Err(Error { rc, message: message.to_string_lossy().into_owned() })
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL inside")
}

/// Takes a string the library allocated, freeing it with cgcore_free.
unsafe fn take_string(p: *mut c_char) -> String {
    let s = CStr::from_ptr(p).to_string_lossy().into_owned();
    ffi::cgcore_free(p as *mut c_void);
    s
}

/// An engine with the built-in controllers; destroyed when dropped (after
/// any Fs over it, which borrows it).
struct Engine(*mut ffi::Engine);

impl Engine {
    fn new(nr_cpus: u32) -> Result<Engine, Error> {
        let options = ffi::EngineOptions {
            size: std::mem::size_of::<ffi::EngineOptions>(),
            nr_cpus,
            nr_nodes: 1,
        };
        let mut e = ptr::null_mut();
        check(unsafe { ffi::cgcore_engine_create(&options, &mut e) })?;
        Ok(Engine(e))
    }
    fn mount(&self, controllers: &str) -> Result<i32, Error> {
        let mut id: c_int = -1;
        check(unsafe { ffi::cgcore_mount(self.0, cstr(controllers).as_ptr(), ptr::null(), &mut id) })?;
        Ok(id)
    }
    fn mkdir(&self, hierarchy: i32, path: &str) -> Result<(), Error> {
        check(unsafe { ffi::cgcore_mkdir(self.0, hierarchy, cstr(path).as_ptr(), ptr::null_mut()) })
    }
    fn spawn(&self) -> Result<i32, Error> {
        let mut pid = 0;
        check(unsafe { ffi::cgcore_spawn(self.0, 0, &mut pid) })?;
        Ok(pid)
    }
    fn fork(&self, parent: i32) -> Result<i32, Error> {
        let mut pid = 0;
        check(unsafe { ffi::cgcore_fork(self.0, parent, 0, 0, &mut pid) })?;
        Ok(pid)
    }
    fn migrate_process(&self, pid: i32, hierarchy: i32, path: &str) -> Result<(), Error> {
        check(unsafe { ffi::cgcore_migrate_process(self.0, pid, hierarchy, cstr(path).as_ptr()) })
    }
    fn task_cgroup(&self, tid: i32, hierarchy: i32) -> Result<String, Error> {
        let mut p = ptr::null_mut();
        check(unsafe { ffi::cgcore_task_cgroup(self.0, tid, hierarchy, &mut p) })?;
        Ok(unsafe { take_string(p) })
    }
    fn check_invariants(&self) -> Result<(), Error> {
        let mut message = ptr::null_mut();
        let rc = unsafe { ffi::cgcore_check_invariants(self.0, &mut message) };
        if !message.is_null() {
            let text = unsafe { take_string(message) };
            return Err(Error { rc, message: text });
        }
        check(rc)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        unsafe { ffi::cgcore_engine_destroy(self.0) };
    }
}

/// The cgroupfs files of an engine, read and written as root.
struct Fs<'a> {
    fs: *mut ffi::Fs,
    _engine: &'a Engine,
}

impl<'a> Fs<'a> {
    fn new(engine: &'a Engine, layout: &str) -> Result<Fs<'a>, Error> {
        let mut fs = ptr::null_mut();
        check(unsafe { ffi::cgcore_fs_create(engine.0, cstr(layout).as_ptr(), &mut fs) })?;
        Ok(Fs { fs, _engine: engine })
    }
    fn read(&self, path: &str) -> Result<String, Error> {
        let mut data = ptr::null_mut();
        let mut size = 0usize;
        check(unsafe { ffi::cgcore_fs_read(self.fs, cstr(path).as_ptr(), ptr::null(), &mut data, &mut size) })?;
        Ok(unsafe { take_string(data) })
    }
    fn write(&self, path: &str, text: &str) -> Result<(), Error> {
        check(unsafe {
            ffi::cgcore_fs_write(self.fs, cstr(path).as_ptr(), text.as_ptr() as *const c_char, text.len(), ptr::null())
        })
    }
}

impl<'a> Drop for Fs<'a> {
    fn drop(&mut self) {
        unsafe { ffi::cgcore_fs_destroy(self.fs) };
    }
}

fn run() -> Result<(), Error> {
    let version = unsafe { CStr::from_ptr(ffi::cgcore_version()) };
    println!("cgcore {} from Rust", version.to_string_lossy());

    let engine = Engine::new(2)?;
    let pids = engine.mount("pids")?;
    engine.mkdir(pids, "/web")?;
    {
        let fs = Fs::new(&engine, "pids")?; // one v1 hierarchy at /pids
        fs.write("/pids/web/pids.max", "2")?;
        let shell = engine.spawn()?;
        engine.migrate_process(shell, pids, "/web")?;
        let worker = engine.fork(shell)?;
        match engine.fork(shell) {
            Err(e) if e.rc == -libc_eagain() => println!("third fork refused: {}", e),
            Err(e) => return Err(e),
            Ok(pid) => {
                return Err(Error { rc: 0, message: format!("fork past pids.max gave pid {}", pid) })
            }
        }
        print!("pids.current: {}", fs.read("/pids/web/pids.current")?);
        println!("worker {} is in {}", worker, engine.task_cgroup(worker, pids)?);
    }
    engine.check_invariants()?;
    println!("rust example: ok");
    Ok(())
}

/// EAGAIN on Linux (no libc crate here).
fn libc_eagain() -> i32 {
    11
}

fn main() {
    if let Err(e) = run() {
        eprintln!("rust example: {}", e);
        exit(1);
    }
}
