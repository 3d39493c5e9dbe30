#![no_main]

libfuzzer_sys::fuzz_target!(
    // `T5Tokenizer::from_bytes` turns the tokenizers crate's panics into errors.
    init: t5_fuzz::input::unwind_panics_of("/tokenizers-"),
    |data: &[u8]| {
        let _ = t5_fuzz::tokenizer_json(data);
    }
);
