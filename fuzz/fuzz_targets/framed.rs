#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| container_loader_fuzz::checks::framed(data));
