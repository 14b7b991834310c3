//! Checks and repairs for the JPEG frames that UVC webcams hand over in
//! MJPEG mode, which framewire passes through without re-encoding.
//!
//! Written from the JPEG standard, ITU-T T.81 | ISO/IEC 10918-1:
//! - [`check`] walks a frame's marker segments (B.1.1, B.2, B.3) and its
//!   entropy-coded data, and says why a frame is unusable: truncated by a
//!   dropped USB packet, cut short, or not a JPEG at all;
//! - [`with_huffman_tables`] gives a frame that lacks Huffman tables (as
//!   MJPEG frames usually do: UVC cameras, like Motion-JPEG AVI files, leave
//!   out the DHT segment and code with the tables of Annex K.3) the standard
//!   tables, so that ordinary decoders such as browsers can show it.
//!
//! Both run in time linear in the frame's size, allocate nothing but the
//! repaired copy, and never panic, whatever the input.

use std::fmt;

/// Frames shorter than this are rejected at once as [`Broken::TooSmall`].
///
/// 97 bytes is the smallest self-contained JPEG that a camera can send
/// without Huffman tables: SOI (2) + one DQT segment of 8-bit precision
/// (2 + 2 + 1 + 64 = 69) + SOF0 for one component (2 + 8 + 3 = 13) + SOS
/// for one component (2 + 6 + 2 = 10) + at least one byte of entropy-coded
/// data (one 8x8 block) + EOI (2). Anything shorter cannot be decoded, and
/// a larger floor would risk rejecting a real (tiny, flat) frame; every
/// other fault is caught by the walk itself. (The oft-quoted 125 bytes is
/// the smallest JPEG *with* a DHT segment, which UVC frames usually lack.)
pub const MIN_FRAME_BYTES: usize = 97;

/// What [`check`] learnt about a well-formed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Width in pixels, from the SOF segment (never 0).
    pub width: u16,
    /// Height in pixels, from the SOF segment (never 0).
    pub height: u16,
    /// Number of colour components (1 for grey, 3 for YCbCr).
    pub components: u8,
    /// The frame is progressive (SOF2) rather than sequential (SOF0/SOF1).
    pub progressive: bool,
    /// A DHT segment precedes the first SOS. When false, the frame relies
    /// on the decoder knowing the standard tables: see
    /// [`with_huffman_tables`].
    pub has_huffman_tables: bool,
    /// Offset of the first SOS marker (its 0xFF byte).
    pub sos_offset: usize,
    /// Length of the frame proper, up to and including its EOI marker; any
    /// bytes after it are 0x00 padding, which `&jpeg[..info.len]` drops.
    pub len: usize,
}

/// Why [`check`] rejected a frame. Offsets count bytes from the start of
/// the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// Shorter than [`MIN_FRAME_BYTES`].
    TooSmall { len: usize },
    /// Does not start with the SOI marker (0xFFD8).
    NoSoi,
    /// A marker segment or entropy-coded scan that starts at `offset` runs
    /// past the end of the data, so the frame ends without an EOI marker.
    Truncated { offset: usize },
    /// An SOS or the EOI marker came before any SOF (frame header).
    NoSof,
    /// The EOI marker came before any SOS (scan header): no image data.
    NoSos,
    /// A segment's length field is below 2, or does not match what the
    /// segment says it holds (SOF and SOS count their components).
    BadLength {
        offset: usize,
        marker: u8,
        length: u16,
    },
    /// The SOF gives a width or height of 0. (T.81 allows height 0 with a
    /// later DNL segment; no webcam uses that and browsers refuse it.)
    ZeroSize { width: u16, height: u16 },
    /// A frame type other than baseline, extended sequential or progressive
    /// Huffman (SOF0/1/2): lossless, arithmetic-coded or hierarchical.
    Unsupported { offset: usize, marker: u8 },
    /// A marker where it may not be: a second SOI, a second SOF, or 0xFF00
    /// outside entropy-coded data.
    UnexpectedMarker { offset: usize, marker: u8 },
    /// A byte other than 0xFF where a marker must start.
    NotAMarker { offset: usize },
    /// Bytes other than 0x00 padding after the EOI marker.
    TrailingData { offset: usize },
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Broken::TooSmall { len } => write!(
                f,
                "JPEG frame too small: {len} bytes, below the {MIN_FRAME_BYTES} of the smallest possible frame"
            ),
            Broken::NoSoi => write!(f, "not a JPEG frame: it does not start with an SOI marker"),
            Broken::Truncated { offset } => write!(
                f,
                "truncated JPEG frame: the segment or scan at byte {offset} runs past the end, and no EOI marker follows"
            ),
            Broken::NoSof => write!(
                f,
                "JPEG frame has no SOF (frame header) before its scan or end"
            ),
            Broken::NoSos => write!(
                f,
                "JPEG frame has no SOS (scan header): it holds no image data"
            ),
            Broken::BadLength {
                offset,
                marker,
                length,
            } => write!(
                f,
                "JPEG {} segment at byte {offset} has a bad length ({length})",
                marker_name(marker)
            ),
            Broken::ZeroSize { width, height } => {
                write!(f, "JPEG frame has a zero dimension: {width}x{height}")
            }
            Broken::Unsupported { offset, marker } => write!(
                f,
                "unsupported JPEG frame type {} at byte {offset}: only baseline, extended and progressive Huffman coding",
                marker_name(marker)
            ),
            Broken::UnexpectedMarker { offset, marker } => write!(
                f,
                "unexpected JPEG marker {} at byte {offset}",
                marker_name(marker)
            ),
            Broken::NotAMarker { offset } => {
                write!(
                    f,
                    "JPEG frame has no marker at byte {offset}, where one must start"
                )
            }
            Broken::TrailingData { offset } => write!(
                f,
                "JPEG frame has data after its EOI marker, from byte {offset}"
            ),
        }
    }
}

impl std::error::Error for Broken {}

/// The marker's name as T.81 Table B.1 gives it, e.g. "SOF0" or "0xFFC8".
fn marker_name(marker: u8) -> String {
    match marker {
        0xC4 => "DHT".into(),
        0xCC => "DAC".into(),
        0xC0..=0xCF if marker != 0xC8 => format!("SOF{}", marker - 0xC0),
        0xD0..=0xD7 => format!("RST{}", marker - 0xD0),
        SOI => "SOI".into(),
        EOI => "EOI".into(),
        SOS => "SOS".into(),
        0xDB => "DQT".into(),
        0xDC => "DNL".into(),
        0xDD => "DRI".into(),
        0xE0..=0xEF => format!("APP{}", marker - 0xE0),
        0xFE => "COM".into(),
        _ => format!("0xFF{marker:02X}"),
    }
}

// Marker codes (the byte after 0xFF), T.81 Table B.1.
const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DHT: u8 = 0xC4;
const TEM: u8 = 0x01;

/// Checks that `jpeg` is one whole, well-formed JPEG frame of a kind that
/// browsers decode, and returns its size and layout.
///
/// It walks the marker segments by their lengths from the SOI: the SOF0/1/2
/// gives the size; DHT, DQT, DRI, APPn, COM and others are skipped; each
/// SOS is followed by entropy-coded data, scanned up to the next marker
/// (byte stuffing 0xFF00 and RST0-7 belong to the data; a progressive frame
/// has several scans); the frame must end with EOI, after which only 0x00
/// padding may follow (some UVC drivers leave it in the buffer). It does
/// not decode the image data.
pub fn check(jpeg: &[u8]) -> Result<Info, Broken> {
    whole(jpeg, Tail::Zeros)
}

/// Like [`check`] for a frame at the start of a capture buffer that may
/// hold anything after the frame's EOI (nokhwa 0.10 hands over whole V4L2
/// buffers, not their `bytesused`, so what follows is an older frame's
/// leftovers). The frame is `&buf[..info.len]`. A frame cut short and
/// followed by such leftovers may pass, if they end in an EOI.
pub fn check_in_buffer(buf: &[u8]) -> Result<Info, Broken> {
    whole(buf, Tail::Anything)
}

/// What may follow a frame's EOI.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tail {
    Zeros,
    Anything,
}

fn whole(jpeg: &[u8], tail: Tail) -> Result<Info, Broken> {
    match walk(jpeg, false, tail)? {
        Walk::Whole(info) => Ok(info),
        // Not reached: a whole walk only ends at EOI.
        Walk::Headers { .. } => Err(Broken::Truncated { offset: jpeg.len() }),
    }
}

/// Returns a copy of `jpeg` with the standard Huffman tables of T.81 Annex
/// K.3 (luminance and chrominance, DC and AC) inserted as one DHT segment
/// just before the first SOS, when no DHT segment precedes that SOS; None
/// when one does (any DHT counts, even one holding fewer tables), so the
/// caller sends the original bytes untouched.
///
/// Only the headers up to the first SOS are walked, so the cost is that of
/// the copy; None also when that walk fails (see [`check`] for why). A
/// progressive frame without tables gets them too: its scans use the same
/// DC and AC table slots.
pub fn with_huffman_tables(jpeg: &[u8]) -> Option<Vec<u8>> {
    let sos_offset = match walk(jpeg, true, Tail::Anything).ok()? {
        Walk::Headers {
            has_huffman_tables: false,
            sos_offset,
        } => sos_offset,
        _ => return None,
    };
    let mut out = Vec::with_capacity(jpeg.len() + STANDARD_DHT.len());
    out.extend_from_slice(&jpeg[..sos_offset]);
    out.extend_from_slice(&STANDARD_DHT);
    out.extend_from_slice(&jpeg[sos_offset..]);
    Some(out)
}

enum Walk {
    Whole(Info),
    Headers {
        has_huffman_tables: bool,
        sos_offset: usize,
    },
}

struct Frame {
    width: u16,
    height: u16,
    components: u8,
    progressive: bool,
}

/// The walk behind [`check`] and, stopping at the first SOS, behind
/// [`with_huffman_tables`]. Every step moves forward, every byte is looked
/// at a bounded number of times: linear time.
fn walk(jpeg: &[u8], stop_at_first_sos: bool, tail: Tail) -> Result<Walk, Broken> {
    if jpeg.len() < MIN_FRAME_BYTES {
        return Err(Broken::TooSmall { len: jpeg.len() });
    }
    if jpeg[..2] != [0xFF, SOI] {
        return Err(Broken::NoSoi);
    }
    let mut pos = 2;
    let mut frame: Option<Frame> = None;
    let mut has_huffman_tables = false;
    let mut first_sos: Option<usize> = None;
    loop {
        let (at, marker) = next_marker(jpeg, pos)?;
        pos = at + 2;
        match marker {
            EOI => {
                let Some(frame) = frame else {
                    return Err(Broken::NoSof);
                };
                let Some(sos_offset) = first_sos else {
                    return Err(Broken::NoSos);
                };
                if tail == Tail::Zeros
                    && let Some(i) = jpeg[pos..].iter().position(|&b| b != 0)
                {
                    return Err(Broken::TrailingData { offset: pos + i });
                }
                return Ok(Walk::Whole(Info {
                    width: frame.width,
                    height: frame.height,
                    components: frame.components,
                    progressive: frame.progressive,
                    has_huffman_tables,
                    sos_offset,
                    len: pos,
                }));
            }
            // Parameterless markers (B.1.1.3); decoders skip a stray RSTn
            // or TEM between segments, and so do we.
            0xD0..=0xD7 | TEM => continue,
            SOI | 0x00 => return Err(Broken::UnexpectedMarker { offset: at, marker }),
            _ => {}
        }
        // Every other marker starts a segment whose 2-byte length counts
        // itself and the parameters that follow (B.1.1.4).
        let (Some(&hi), Some(&lo)) = (jpeg.get(pos), jpeg.get(pos + 1)) else {
            return Err(Broken::Truncated { offset: at });
        };
        let length = u16::from_be_bytes([hi, lo]);
        let bad_length = Broken::BadLength {
            offset: at,
            marker,
            length,
        };
        if length < 2 {
            return Err(bad_length);
        }
        let end = pos + usize::from(length);
        let Some(params) = jpeg.get(pos + 2..end) else {
            return Err(Broken::Truncated { offset: at });
        };
        pos = end;
        match marker {
            // SOF0/1/2 (B.2.2): P, Y, X, Nf, then 3 bytes per component.
            0xC0..=0xC2 => {
                if frame.is_some() {
                    return Err(Broken::UnexpectedMarker { offset: at, marker });
                }
                let [_precision, y1, y0, x1, x0, nf, ..] = *params else {
                    return Err(bad_length);
                };
                if nf == 0 || params.len() != 6 + 3 * usize::from(nf) {
                    return Err(bad_length);
                }
                let (width, height) = (u16::from_be_bytes([x1, x0]), u16::from_be_bytes([y1, y0]));
                if width == 0 || height == 0 {
                    return Err(Broken::ZeroSize { width, height });
                }
                frame = Some(Frame {
                    width,
                    height,
                    components: nf,
                    progressive: marker == 0xC2,
                });
            }
            // The other SOFn: lossless, arithmetic, hierarchical (Table B.1).
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(Broken::Unsupported { offset: at, marker });
            }
            DHT if first_sos.is_none() => has_huffman_tables = true,
            // SOS (B.2.3): Ns, 2 bytes per component, Ss, Se, Ah/Al; then
            // the scan's entropy-coded data.
            SOS => {
                if frame.is_none() {
                    return Err(Broken::NoSof);
                }
                let ns = params.first().copied().unwrap_or(0);
                if !(1..=4).contains(&ns) || params.len() != 4 + 2 * usize::from(ns) {
                    return Err(bad_length);
                }
                if first_sos.is_none() {
                    if stop_at_first_sos {
                        return Ok(Walk::Headers {
                            has_huffman_tables,
                            sos_offset: at,
                        });
                    }
                    first_sos = Some(at);
                }
                pos = end_of_entropy_data(jpeg, pos).ok_or(Broken::Truncated { offset: at })?;
            }
            _ => {}
        }
    }
}

/// The marker at `pos`, after any 0xFF fill bytes (B.1.1.2): the offset of
/// its own 0xFF and its code.
fn next_marker(jpeg: &[u8], pos: usize) -> Result<(usize, u8), Broken> {
    match jpeg.get(pos) {
        None => return Err(Broken::Truncated { offset: pos }),
        Some(0xFF) => {}
        Some(_) => return Err(Broken::NotAMarker { offset: pos }),
    }
    let mut at = pos;
    loop {
        match jpeg.get(at + 1) {
            None => return Err(Broken::Truncated { offset: pos }),
            Some(0xFF) => at += 1,
            Some(&code) => return Ok((at, code)),
        }
    }
}

/// Scans entropy-coded data from `pos` to the marker that ends it and
/// returns the marker's offset (of its 0xFF, or of fill bytes before it).
/// Inside the data, 0xFF is always followed by 0x00 (stuffing, F.1.2.3) or
/// is an RSTn marker (B.1.1.3 allows them within a scan). None when the
/// data runs to the end.
fn end_of_entropy_data(jpeg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let ff = pos + jpeg.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        match *jpeg.get(ff + 1)? {
            0x00 | 0xD0..=0xD7 => pos = ff + 2,
            _ => return Some(ff),
        }
    }
}

/// One Huffman table of T.81 Annex K.3: BITS (the number of codes of each
/// length 1 to 16) and HUFFVAL (the symbols in order of code length).
struct Table {
    /// Tc (0 DC, 1 AC) in the high nibble, Th (destination) in the low.
    class_and_id: u8,
    bits: [u8; 16],
    values: &'static [u8],
}

/// DC symbols are magnitude categories 0-11, the same order in both tables.
const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// Table K.3 (Annex K.3.3.1): luminance DC.
const LUMINANCE_DC: Table = Table {
    class_and_id: 0x00,
    bits: [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
    values: &DC_VALUES,
};

/// Table K.4 (Annex K.3.3.1): chrominance DC.
const CHROMINANCE_DC: Table = Table {
    class_and_id: 0x01,
    bits: [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
    values: &DC_VALUES,
};

/// Table K.5 (Annex K.3.3.2): luminance AC. Symbols are run/size pairs
/// (0x00 EOB, 0xF0 ZRL); one row per code length.
const LUMINANCE_AC: Table = Table {
    class_and_id: 0x10,
    bits: [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D],
    values: &[
        0x01, 0x02, // 2 bits
        0x03, // 3
        0x00, 0x04, 0x11, // 4
        0x05, 0x12, 0x21, // 5
        0x31, 0x41, // 6
        0x06, 0x13, 0x51, 0x61, // 7
        0x07, 0x22, 0x71, // 8
        0x14, 0x32, 0x81, 0x91, 0xA1, // 9
        0x08, 0x23, 0x42, 0xB1, 0xC1, // 10
        0x15, 0x52, 0xD1, 0xF0, // 11
        0x24, 0x33, 0x62, 0x72, // 12
        0x82, // 15
        // 16 bits: the other 125 symbols.
        0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35,
        0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54,
        0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73,
        0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
        0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
        0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4,
        0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
        0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5,
        0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ],
};

/// Table K.6 (Annex K.3.3.2): chrominance AC; one row per code length.
const CHROMINANCE_AC: Table = Table {
    class_and_id: 0x11,
    bits: [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
    values: &[
        0x00, 0x01, // 2 bits
        0x02, // 3
        0x03, 0x11, // 4
        0x04, 0x05, 0x21, 0x31, // 5
        0x06, 0x12, 0x41, 0x51, // 6
        0x07, 0x61, 0x71, // 7
        0x13, 0x22, 0x32, 0x81, // 8
        0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, // 9
        0x09, 0x23, 0x33, 0x52, 0xF0, // 10
        0x15, 0x62, 0x72, 0xD1, // 11
        0x0A, 0x16, 0x24, 0x34, // 12
        0xE1, // 14
        0x25, 0xF1, // 15
        // 16 bits: the other 119 symbols.
        0x17, 0x18, 0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A,
        0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
        0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78,
        0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95,
        0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2,
        0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8,
        0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5,
        0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ],
};

const STANDARD_TABLES: [Table; 4] = [LUMINANCE_DC, CHROMINANCE_DC, LUMINANCE_AC, CHROMINANCE_AC];

/// Bytes of the DHT segment: marker, length, then per table Tc/Th, BITS and
/// HUFFVAL (B.2.4.2): 2 + 2 + 4 * (1 + 16) + 12 + 12 + 162 + 162.
const STANDARD_DHT_LEN: usize = 420;

/// The DHT segment holding the four standard tables, built at compile time;
/// a table whose BITS do not sum to its number of values fails the build.
const STANDARD_DHT: [u8; STANDARD_DHT_LEN] = standard_dht();

const fn standard_dht() -> [u8; STANDARD_DHT_LEN] {
    let mut out = [0u8; STANDARD_DHT_LEN];
    let length = (STANDARD_DHT_LEN - 2) as u16;
    out[0] = 0xFF;
    out[1] = DHT;
    out[2] = (length >> 8) as u8;
    out[3] = length as u8;
    let mut n = 4;
    let mut t = 0;
    while t < STANDARD_TABLES.len() {
        let table = &STANDARD_TABLES[t];
        out[n] = table.class_and_id;
        n += 1;
        let mut sum = 0;
        let mut i = 0;
        while i < 16 {
            out[n] = table.bits[i];
            sum += table.bits[i] as usize;
            n += 1;
            i += 1;
        }
        assert!(
            sum == table.values.len(),
            "BITS must count the table's values"
        );
        let mut i = 0;
        while i < table.values.len() {
            out[n] = table.values[i];
            n += 1;
            i += 1;
        }
        t += 1;
    }
    assert!(
        n == STANDARD_DHT_LEN,
        "the DHT segment must fill its array exactly"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

    /// A test picture with detail everywhere (gradients and a pseudo-random
    /// texture), so every table gets a workout.
    fn picture(width: u16, height: u16) -> Vec<u8> {
        let mut seed = 0x2545_F491_u32;
        let mut rgb = Vec::with_capacity(usize::from(width) * usize::from(height) * 3);
        for y in 0..u32::from(height) {
            for x in 0..u32::from(width) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let noise = (seed % 64) as u8;
                rgb.push((x * 255 / u32::from(width)) as u8 ^ noise);
                rgb.push((y * 255 / u32::from(height)) as u8);
                rgb.push(((x + y) * 4) as u8 ^ (noise << 1));
            }
        }
        rgb
    }

    fn encode(width: u16, height: u16, setup: impl FnOnce(&mut Encoder<&mut Vec<u8>>)) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = Encoder::new(&mut out, 85);
        setup(&mut encoder);
        encoder
            .encode(&picture(width, height), width, height, ColorType::Rgb)
            .unwrap();
        out
    }

    fn baseline() -> Vec<u8> {
        encode(48, 32, |_| {})
    }

    /// The segments before the first SOS, as (offset, marker, whole segment).
    fn header_segments(jpeg: &[u8]) -> Vec<(usize, u8, &[u8])> {
        let mut segments = Vec::new();
        let mut pos = 2;
        while jpeg[pos + 1] != SOS {
            assert_eq!(jpeg[pos], 0xFF);
            let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            segments.push((pos, jpeg[pos + 1], &jpeg[pos..pos + 2 + len]));
            pos += 2 + len;
        }
        segments
    }

    /// `jpeg` without its DHT segments before the first SOS, as UVC sends it.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let segments = header_segments(jpeg);
        let sos = segments.last().map_or(2, |(at, _, s)| at + s.len());
        let mut out = jpeg[..2].to_vec();
        for (_, marker, segment) in segments {
            if marker != DHT {
                out.extend_from_slice(segment);
            }
        }
        out.extend_from_slice(&jpeg[sos..]);
        out
    }

    /// The Huffman tables of the DHT segments before the first SOS, keyed
    /// by Tc/Th, as their (BITS, HUFFVAL) bytes.
    fn tables(jpeg: &[u8]) -> std::collections::BTreeMap<u8, Vec<u8>> {
        let mut tables = std::collections::BTreeMap::new();
        for (_, marker, segment) in header_segments(jpeg) {
            if marker != DHT {
                continue;
            }
            let mut p = &segment[4..];
            while !p.is_empty() {
                let count: usize = p[1..17].iter().map(|&b| usize::from(b)).sum();
                tables.insert(p[0], p[1..17 + count].to_vec());
                p = &p[17 + count..];
            }
        }
        tables
    }

    fn decode(jpeg: &[u8]) -> Result<Vec<u8>, String> {
        zune_jpeg::JpegDecoder::new(jpeg)
            .decode()
            .map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn standard_tables_are_well_formed() {
        let all_ac: Vec<u8> = std::iter::once(0x00)
            .chain(std::iter::once(0xF0))
            .chain((0..16u8).flat_map(|run| (1..=10u8).map(move |size| run << 4 | size)))
            .collect();
        for table in &STANDARD_TABLES {
            let total: usize = table.bits.iter().map(|&b| usize::from(b)).sum();
            assert_eq!(total, table.values.len());
            let mut sorted = table.values.to_vec();
            sorted.sort_unstable();
            if table.class_and_id >> 4 == 0 {
                assert_eq!(
                    sorted, DC_VALUES,
                    "DC symbols are categories 0-11, once each"
                );
            } else {
                let mut expected = all_ac.clone();
                expected.sort_unstable();
                assert_eq!(
                    sorted, expected,
                    "AC symbols are EOB, ZRL and run/size 0-15/1-10, once each"
                );
            }
            // A prefix code that leaves the all-ones codeword unused (C.2,
            // Annex K): the Kraft sum stays below 1.
            let kraft: u32 = table
                .bits
                .iter()
                .enumerate()
                .map(|(i, &n)| u32::from(n) << (15 - i))
                .sum();
            assert!(
                kraft < 1 << 16,
                "table {:#04x} over-subscribed",
                table.class_and_id
            );
        }
        assert_eq!(LUMINANCE_DC.values.len() + CHROMINANCE_DC.values.len(), 24);
        assert_eq!(LUMINANCE_AC.values.len(), 162);
        assert_eq!(CHROMINANCE_AC.values.len(), 162);
        assert_eq!(&STANDARD_DHT[..4], &[0xFF, 0xC4, 0x01, 0xA2]);
    }

    #[test]
    fn a_baseline_frame_checks_out() {
        let jpeg = baseline();
        let info = check(&jpeg).unwrap();
        assert_eq!((info.width, info.height, info.components), (48, 32, 3));
        assert!(info.has_huffman_tables);
        assert!(!info.progressive);
        assert_eq!(&jpeg[info.sos_offset..info.sos_offset + 2], &[0xFF, SOS]);
        assert_eq!(info.len, jpeg.len());
        assert_eq!(
            with_huffman_tables(&jpeg),
            None,
            "tables already there: left alone"
        );
    }

    #[test]
    fn repairs_a_frame_without_tables() {
        for (name, jpeg) in [
            ("4:2:0", baseline()),
            (
                "4:4:4 with restart markers",
                encode(40, 24, |e| {
                    e.set_sampling_factor(SamplingFactor::F_1_1);
                    e.set_restart_interval(2);
                }),
            ),
            ("odd size", encode(37, 19, |_| {})),
        ] {
            let original = decode(&jpeg).unwrap();
            let stripped = strip_dht(&jpeg);
            assert!(stripped.len() < jpeg.len(), "{name}: had DHT segments");
            let info = check(&stripped).unwrap();
            assert!(!info.has_huffman_tables, "{name}");
            assert!(decode(&stripped).is_err(), "{name}: no tables, no decoding");

            let repaired = with_huffman_tables(&stripped).expect(name);
            assert_eq!(repaired.len(), stripped.len() + STANDARD_DHT.len());
            assert_eq!(
                &repaired[info.sos_offset..][..STANDARD_DHT.len()],
                &STANDARD_DHT
            );
            let after = check(&repaired).unwrap();
            assert!(after.has_huffman_tables, "{name}");
            assert_eq!(after.sos_offset, info.sos_offset + STANDARD_DHT.len());
            assert_eq!((after.width, after.height), (info.width, info.height));
            assert_eq!(
                with_huffman_tables(&repaired),
                None,
                "{name}: repaired once only"
            );
            // The encoder codes with the Annex K tables: ours must be the
            // very same, and decode to the very same pixels.
            assert_eq!(
                tables(&jpeg).len(),
                4,
                "{name}: the encoder's own four tables"
            );
            assert_eq!(tables(&repaired), tables(&jpeg), "{name}");
            assert_eq!(decode(&repaired).unwrap(), original, "{name}");
        }
    }

    #[test]
    fn grey_and_progressive_frames() {
        let mut grey = Vec::new();
        let luma: Vec<u8> = picture(24, 16).iter().step_by(3).copied().collect();
        Encoder::new(&mut grey, 90)
            .encode(&luma, 24, 16, ColorType::Luma)
            .unwrap();
        let info = check(&grey).unwrap();
        assert_eq!((info.width, info.height, info.components), (24, 16, 1));
        let stripped = strip_dht(&grey);
        let repaired = with_huffman_tables(&stripped).unwrap();
        assert_eq!(decode(&repaired).unwrap(), decode(&grey).unwrap());

        let progressive = encode(64, 48, |e| e.set_progressive(true));
        let info = check(&progressive).unwrap();
        assert!(info.progressive);
        assert_eq!((info.width, info.height), (64, 48));
        let scans = progressive.windows(2).filter(|w| w == &[0xFF, SOS]).count();
        assert!(scans > 1, "several scans, all walked");
    }

    #[test]
    fn trailing_zero_padding_is_allowed_but_nothing_else() {
        let mut jpeg = baseline();
        let len = jpeg.len();
        jpeg.extend_from_slice(&[0; 300]);
        let info = check(&jpeg).unwrap();
        assert_eq!(info.len, len);
        jpeg.push(0x01);
        assert_eq!(
            check(&jpeg),
            Err(Broken::TrailingData { offset: len + 300 })
        );
        let mut twice = baseline();
        twice.extend_from_slice(&baseline());
        assert_eq!(check(&twice), Err(Broken::TrailingData { offset: len }));
        // In a capture buffer, whatever follows the EOI is an older frame's.
        assert_eq!(check_in_buffer(&twice).map(|i| i.len), Ok(len));
        let mut cut = jpeg[..len - 40].to_vec();
        cut.extend_from_slice(&[0; 300]);
        assert!(matches!(check_in_buffer(&cut), Err(Broken::Truncated { .. })));
    }

    #[test]
    fn broken_frames_say_why() {
        let jpeg = baseline();
        let info = check(&jpeg).unwrap();
        let n = jpeg.len();

        assert_eq!(check(&[]), Err(Broken::TooSmall { len: 0 }));
        assert_eq!(
            check(&jpeg[..MIN_FRAME_BYTES - 1]),
            Err(Broken::TooSmall {
                len: MIN_FRAME_BYTES - 1
            })
        );
        assert_eq!(check(&[0u8; 4096]), Err(Broken::NoSoi));
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(check(&garbage), Err(Broken::NoSoi));

        // No EOI: cut anywhere in the scan, or just the last byte.
        assert_eq!(
            check(&jpeg[..n - 2]),
            Err(Broken::Truncated {
                offset: info.sos_offset
            })
        );
        assert_eq!(
            check(&jpeg[..n - 1]),
            Err(Broken::Truncated {
                offset: info.sos_offset
            })
        );
        assert_eq!(
            check(&jpeg[..(info.sos_offset + n) / 2]),
            Err(Broken::Truncated {
                offset: info.sos_offset
            })
        );
        // A cut within the headers: the segment runs past the end.
        let (at, _, segment) = *header_segments(&jpeg).last().unwrap();
        assert!(at > MIN_FRAME_BYTES);
        assert_eq!(
            check(&jpeg[..at + segment.len() / 2]),
            Err(Broken::Truncated { offset: at })
        );
        assert_eq!(
            check(&jpeg[..at + 3]),
            Err(Broken::Truncated { offset: at })
        );
        // A zero-filled tail, as when a USB transfer is lost mid-frame.
        let mut zeroed = jpeg.clone();
        zeroed[n * 3 / 4..].fill(0);
        assert_eq!(
            check(&zeroed),
            Err(Broken::Truncated {
                offset: info.sos_offset
            })
        );

        // Headers only, then EOI: no scan. EOI before the SOF: no frame.
        let mut no_sos = jpeg[..info.sos_offset].to_vec();
        no_sos.extend_from_slice(&[0xFF, EOI]);
        assert_eq!(check(&no_sos), Err(Broken::NoSos));
        assert_eq!(with_huffman_tables(&no_sos), None);
        let sof = header_segments(&jpeg)
            .into_iter()
            .find(|s| s.1 == 0xC0)
            .unwrap();
        let without_sof: Vec<u8> = [&jpeg[..sof.0], &jpeg[sof.0 + sof.2.len()..]].concat();
        assert_eq!(check(&without_sof), Err(Broken::NoSof));

        // Zero size, bad lengths, an unsupported frame type.
        let mut zero = jpeg.clone();
        zero[sof.0 + 7..sof.0 + 9].fill(0);
        assert_eq!(
            check(&zero),
            Err(Broken::ZeroSize {
                width: 0,
                height: 32
            })
        );
        let mut short = jpeg.clone();
        short[sof.0 + 2..sof.0 + 4].copy_from_slice(&[0, 1]);
        assert_eq!(
            check(&short),
            Err(Broken::BadLength {
                offset: sof.0,
                marker: 0xC0,
                length: 1
            })
        );
        let mut miscounted = jpeg.clone();
        miscounted[sof.0 + 9] = 2; // Nf = 2, but three components' bytes
        assert_eq!(
            check(&miscounted),
            Err(Broken::BadLength {
                offset: sof.0,
                marker: 0xC0,
                length: 17
            })
        );
        let mut arithmetic = jpeg.clone();
        arithmetic[sof.0 + 1] = 0xC9;
        assert_eq!(
            check(&arithmetic),
            Err(Broken::Unsupported {
                offset: sof.0,
                marker: 0xC9
            })
        );

        // Garbage where a marker must be; a second SOI.
        let mut not_marker = jpeg.clone();
        not_marker[2] = 0x12;
        assert_eq!(check(&not_marker), Err(Broken::NotAMarker { offset: 2 }));
        let mut soi = jpeg.clone();
        soi[3] = SOI;
        assert_eq!(
            check(&soi),
            Err(Broken::UnexpectedMarker {
                offset: 2,
                marker: SOI
            })
        );

        // Every message reads as a sentence.
        for broken in [
            Broken::NoSoi,
            Broken::Truncated { offset: 7 },
            Broken::TooSmall { len: 3 },
        ] {
            assert!(broken.to_string().len() > 20, "{broken}");
        }
        assert_eq!(
            Broken::BadLength {
                offset: 2,
                marker: 0xDB,
                length: 1
            }
            .to_string(),
            "JPEG DQT segment at byte 2 has a bad length (1)"
        );
    }

    #[test]
    fn fill_bytes_and_markers_in_odd_places() {
        let jpeg = baseline();
        let info = check(&jpeg).unwrap();
        // Fill bytes before a marker (B.1.1.2), a COM segment, an APP15.
        let mut odd = jpeg[..2].to_vec();
        odd.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFE, 0x00, 0x05, b'h', b'i', b'!']);
        odd.extend_from_slice(&[0xFF, 0xEF, 0x00, 0x02]);
        odd.extend_from_slice(&jpeg[2..info.sos_offset]);
        odd.extend_from_slice(&[0xFF, 0xFF]);
        odd.extend_from_slice(&jpeg[info.sos_offset..jpeg.len() - 2]);
        odd.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xD9]);
        let odd_info = check(&odd).unwrap();
        assert_eq!(odd_info.sos_offset, info.sos_offset + 15);
        assert_eq!(odd_info.len, odd.len());
        // Fill bytes before the SOS: tables go between them and the SOS.
        let stripped = strip_dht(&jpeg);
        let sos = check(&stripped).unwrap().sos_offset;
        let filled: Vec<u8> = [&stripped[..sos], &[0xFF, 0xFF][..], &stripped[sos..]].concat();
        let repaired = with_huffman_tables(&filled).unwrap();
        assert_eq!(decode(&repaired).unwrap(), decode(&jpeg).unwrap());
    }

    /// xorshift64*: a deterministic stream for the mutation test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn mutations_and_truncations_never_panic() {
        let seeds = [
            baseline(),
            strip_dht(&baseline()),
            encode(32, 32, |e| e.set_progressive(true)),
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let interesting = [
            0x00, 0x01, 0x02, 0xFF, 0xD8, 0xD9, 0xDA, 0xC0, 0xC2, 0xC4, 0xD0,
        ];
        // Header bytes (lengths, sizes and counts live there), up to and
        // including the first SOS segment.
        let header = check(&seeds[0]).unwrap().sos_offset + 14;
        let (mut ok, mut broken) = (0, 0);
        for round in 0..20_000 {
            let mut jpeg = seeds[round % seeds.len()].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(jpeg.len());
                match rng.below(6) {
                    0 => jpeg.truncate(at),
                    1 => jpeg[at] = rng.next() as u8,
                    2 => jpeg[at] = interesting[rng.below(interesting.len())],
                    3 => {
                        let end = (at + 1 + rng.below(64)).min(jpeg.len());
                        jpeg.drain(at..end);
                    }
                    4 => jpeg.insert(at, interesting[rng.below(interesting.len())]),
                    _ => {
                        let at = rng.below(header.min(jpeg.len()));
                        if let Some(b) = jpeg.get_mut(at) {
                            *b = rng.next() as u8;
                        }
                    }
                }
                if jpeg.is_empty() {
                    break;
                }
            }
            match check(&jpeg) {
                Ok(info) => {
                    ok += 1;
                    assert!(info.width > 0 && info.height > 0);
                    assert!(info.sos_offset < info.len && info.len <= jpeg.len());
                }
                Err(e) => {
                    broken += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
            if let Some(repaired) = with_huffman_tables(&jpeg) {
                assert_eq!(repaired.len(), jpeg.len() + STANDARD_DHT.len());
            }
        }
        assert!(
            ok > 0 && broken > 0,
            "both outcomes seen: {ok} ok, {broken} broken"
        );
    }

    #[test]
    fn pathological_inputs_stay_linear() {
        // Megabytes of fill bytes, of stuffed 0xFF00 and of restart markers:
        // each is one pass, not a quadratic rescan.
        let jpeg = baseline();
        let sos = check(&jpeg).unwrap().sos_offset;
        let mut fill = jpeg[..sos].to_vec();
        fill.resize(fill.len() + (4 << 20), 0xFF);
        assert_eq!(check(&fill), Err(Broken::Truncated { offset: sos }));
        for filler in [[0xFF, 0x00], [0xFF, 0xD3]] {
            let mut scan = jpeg[..jpeg.len() - 2].to_vec();
            for _ in 0..(2 << 20) {
                scan.extend_from_slice(&filler);
            }
            assert_eq!(check(&scan), Err(Broken::Truncated { offset: sos }));
            scan.extend_from_slice(&[0xFF, EOI]);
            assert!(check(&scan).is_ok());
        }
        // Many tiny segments.
        let mut segments = jpeg[..2].to_vec();
        for _ in 0..(1 << 20) {
            segments.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x02]);
        }
        segments.extend_from_slice(&jpeg[2..]);
        assert!(check(&segments).is_ok());
    }
}
