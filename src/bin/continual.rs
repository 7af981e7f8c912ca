//! The `continual` command-line tool.

fn main() {
    println!("continual {}", env!("CARGO_PKG_VERSION"));
}
