//! AFL++ entry point for the `server_request` target (see `voxide_fuzz::server_request`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        voxide_fuzz::server_request(data);
    });
}
