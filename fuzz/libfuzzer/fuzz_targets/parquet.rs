#![no_main]

libfuzzer_sys::fuzz_target!(
    // `read_parquet` turns the parquet crate's panics into errors.
    init: t5_fuzz::input::unwind_panics_of(&["/parquet-"]),
    |data: &[u8]| {
        let _ = t5_fuzz::parquet(data);
    }
);
