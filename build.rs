//! With the `blas` feature, ndarray calls CBLAS for f32/f64 matrix products;
//! link the system OpenBLAS (Debian: `libopenblas-dev`) that provides it.
//! (`openblas-src` would do the same but, even in its `system` mode, compiles a
//! TLS stack for downloading OpenBLAS sources.)

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_BLAS").is_some() {
        println!("cargo:rustc-link-lib=openblas");
    }
}
