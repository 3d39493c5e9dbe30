#![no_main]

libfuzzer_sys::fuzz_target!(
    // `T5Tokenizer` turns the panics of the tokenizers crate (and of its charsmap parser) into
    // errors.
    init: t5_fuzz::input::unwind_panics_of(&["/tokenizers-", "/spm_precompiled-"]),
    |data: &[u8]| {
        let _ = t5_fuzz::tokenizer_json(data);
    }
);
