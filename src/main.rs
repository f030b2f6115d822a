//! The `consentry` binary.

fn main() {
    println!("consentry {}", env!("CARGO_PKG_VERSION"));
}
