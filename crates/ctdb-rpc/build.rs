// Compiles proto/ with a vendored protoc, so a fresh machine needs no system protoc.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let files =
        ["component.proto", "transport.proto", "eventd.proto"].map(|f| format!("{dir}/{f}"));
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    // Packets are `Bytes`: a frame read from a socket reaches the next socket without
    // a copy.
    tonic_prost_build::configure()
        .bytes(".ctdb.v1.Envelope.packet")
        .compile_protos(&files, &[dir.to_string()])?;
    Ok(())
}
