//! Finds libiscsi (>= 1.19) with pkg-config, links it dynamically, and
//! compiles the field-accessor shim against the same headers.

fn main() {
    println!("cargo:rerun-if-changed=c/shim.c");
    println!("cargo:rerun-if-changed=build.rs");

    // Dynamic link only: the Debian libiscsi.a needs ibverbs/rdmacm/libnl,
    // and its .pc file has no Libs.private to say so.
    let lib = match pkg_config::Config::new()
        .atleast_version("1.19")
        .statik(false)
        .probe("libiscsi")
    {
        Ok(lib) => lib,
        Err(e) => panic!(
            "libiscsi >= 1.19 not found via pkg-config ({e}); \
             install it, e.g. `apt-get install libiscsi-dev`"
        ),
    };

    let mut build = cc::Build::new();
    build.file("c/shim.c").warnings(true).extra_warnings(true);
    for dir in &lib.include_paths {
        build.include(dir);
    }
    build.compile("sanmover_iscsi_shim");

    // Lets dependents (and the tests here) see which release was found.
    println!("cargo:rustc-env=LIBISCSI_PKG_VERSION={}", lib.version);
    // Reaches dependents' build scripts as DEP_ISCSI_VERSION.
    println!("cargo:version={}", lib.version);
}
