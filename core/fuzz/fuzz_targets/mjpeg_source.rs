#![no_main]
//! The tolerant reader of network cameras' streams: any bytes, cut
//! anywhere, give the same answer as the bytes whole (the same parts, or an
//! error both ways), and no part is ever over the limit.

use framewire_core::mjpeg_source::SourceParser;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 64;

fn parse(chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, ()> {
    let mut p = SourceParser::new("cam", LIMIT).unwrap();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(p.feed(c).map_err(|_| ())?);
    }
    Ok(out)
}

fuzz_target!(|input: (&[u8], u16)| {
    let (bytes, cut) = input;
    let cut = usize::from(cut).min(bytes.len());
    let whole = parse(&[bytes]);
    let split = parse(&[&bytes[..cut], &bytes[cut..]]);
    assert_eq!(whole, split, "cut at {cut}");
    if let Ok(parts) = whole {
        assert!(parts.iter().all(|p| p.len() <= LIMIT));
    }
});
