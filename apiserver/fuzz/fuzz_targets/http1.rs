//! The HTTP/1.1 connection loop (request heads, bodies, pipelining, upgrades) must never
//! panic and must end once its client has closed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    capstan_apiserver::fuzzing::fuzz_http1(data);
});
