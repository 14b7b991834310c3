#![no_main]
//! The strict multipart parser the tests and benchmarks read streams with:
//! any bytes, cut anywhere, give the same answer as the bytes whole; and
//! any frames framewire writes parse back to themselves.

use framewire_core::mjpeg::{BOUNDARY, Parser, part_header, part_trailer, preamble};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], u16, Vec<Vec<u8>>)| {
    let (bytes, cut, frames) = input;
    let whole = Parser::new(BOUNDARY).feed(bytes).map(|p| p.into_iter().map(|p| p.body).collect::<Vec<_>>());
    let cut = usize::from(cut).min(bytes.len());
    let mut parser = Parser::new(BOUNDARY);
    let split = parser.feed(&bytes[..cut]).and_then(|mut first| {
        first.extend(parser.feed(&bytes[cut..])?);
        Ok(first.into_iter().map(|p| p.body).collect::<Vec<_>>())
    });
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("cut at {cut}: whole {whole:?}, cut {split:?}"),
    }

    let mut stream = preamble().into_bytes();
    for (i, f) in frames.iter().enumerate() {
        stream.extend(part_header(f.len(), 1_600_000_000_000_000, i as u64 + 1).bytes());
        stream.extend(f);
        stream.extend(part_trailer().bytes());
    }
    let parts = Parser::new(BOUNDARY).feed(&stream).expect("framewire's own framing parses");
    assert_eq!(parts.into_iter().map(|p| p.body).collect::<Vec<_>>(), frames);
});
