#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| liveproc::fuzzing::h264_access_unit(data));
