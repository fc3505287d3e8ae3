// Tells rustc where libcgcore_capi.so is: $CGCORE_LIB_DIR if set (and an
// rpath to it, so the program runs without LD_LIBRARY_PATH), else the
// system's library paths.
use std::env;

fn main() {
    println!("cargo:rerun-if-env-changed=CGCORE_LIB_DIR");
    if let Ok(dir) = env::var("CGCORE_LIB_DIR") {
        if !dir.is_empty() {
            println!("cargo:rustc-link-search=native={}", dir);
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
        }
    }
    println!("cargo:rustc-link-lib=dylib=cgcore_capi");
}
