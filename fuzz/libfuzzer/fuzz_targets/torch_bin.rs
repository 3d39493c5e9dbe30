#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = t5_fuzz::torch_bin(data);
});
