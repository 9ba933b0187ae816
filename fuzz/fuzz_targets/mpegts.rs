#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| liveproc::fuzzing::mpegts(data));
