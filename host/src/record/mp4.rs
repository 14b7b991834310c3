//! One recording segment as MP4. While recording it is written fragmented
//! to a hidden `.NAME.rec` beside its final name: a moof + mdat each second
//! or two, synced, so a crash loses at most the fragment being gathered.
//! When the segment ends it is rewritten as an ordinary MP4 with the moov
//! (sample tables) first, so a browser can seek in it at once, and renamed
//! into place: the library only ever lists whole files.

use anyhow::{Context, Result, bail, ensure};
use mp4_atom::{
    Avc1, Avcc, Co64, Decode, Hvc1, Dinf, Dref, Encode, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mvex, Mvhd, Stbl, Stsc,
    StscEntry, Stsd, Stss, Stsz, StszSamples, Stts, SttsEntry, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry,
    TrunSamples, Url, Visual, Vmhd,
};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Media time units per second: RTP's video clock, so camera timestamps
/// go in unchanged.
pub const TIMESCALE: u32 = 90_000;
/// A fragment is written once it holds this much video, at the next
/// keyframe, and at twice this in any case.
const FRAGMENT: u64 = TIMESCALE as u64;
/// The last sample's duration when nothing follows it (1/30 s).
const LAST_DURATION: u32 = TIMESCALE / 30;

/// Sample flags (ISO 14496-12 8.8.3.1): a keyframe depends on nothing; any
/// other sample depends on others and is not a sync sample.
const KEY_FLAGS: u32 = 0x0200_0000;
const DELTA_FLAGS: u32 = 0x0101_0000;

/// The video track: its size and codec configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    pub width: u16,
    pub height: u16,
    pub codec: Codec,
}

/// A track's codec and what a decoder needs to start.
#[derive(Clone, Debug, PartialEq)]
pub enum Codec {
    /// H.264, from its parameter sets.
    Avc { sps: Vec<u8>, pps: Vec<u8> },
    /// H.265, from its decoder configuration record (`hvcC`).
    Hevc(Box<mp4_atom::Hvcc>),
}

impl Codec {
    /// H.265 from an `HEVCDecoderConfigurationRecord`, as a camera's RTSP
    /// session gives it.
    pub fn hevc(record: &[u8]) -> Result<Codec> {
        let boxed = [&(record.len() as u32 + 8).to_be_bytes()[..], b"hvcC", record].concat();
        let hvcc = mp4_atom::Hvcc::decode(&mut &boxed[..]).map_err(|e| anyhow::anyhow!("H.265 configuration: {e}"))?;
        Ok(Codec::Hevc(Box::new(hvcc)))
    }
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    size: u32,
    duration: u32,
    key: bool,
}

/// One fragment's samples: where their bytes start in the `.rec` file.
#[derive(Clone, Copy, Debug)]
struct Run {
    offset: u64,
    count: u32,
    bytes: u64,
}

/// A segment being recorded.
pub struct Segment {
    path: PathBuf,
    rec: PathBuf,
    file: File,
    track: Track,
    samples: Vec<Sample>,
    runs: Vec<Run>,
    /// Gathered for the next fragment: (sample, its data length-prefixed, pts).
    pending: Vec<(Sample, Vec<u8>, u64)>,
    first_pts: Option<u64>,
    /// Media time at the start of the next fragment.
    decode_time: u64,
    sequence: u32,
    /// Bytes in the `.rec` file so far.
    written: u64,
}

/// The hidden file a segment is written to until it is finished.
pub fn rec_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.rec"))
}

/// The final name of a `.NAME.rec` file, if it is one.
pub fn final_path(rec: &Path) -> Option<PathBuf> {
    let name = rec.file_name()?.to_str()?;
    let inner = name.strip_prefix('.')?.strip_suffix(".rec")?;
    Some(rec.with_file_name(inner))
}

fn ftyp(fragmented: bool) -> Ftyp {
    let brands: &[&[u8; 4]] = if fragmented { &[b"iso6", b"avc1", b"mp41"] } else { &[b"isom", b"iso2", b"avc1", b"mp41"] };
    Ftyp {
        major_brand: if fragmented { b"iso6".into() } else { b"isom".into() },
        minor_version: 512,
        compatible_brands: brands.iter().map(|b| (*b).into()).collect(),
    }
}

/// The moov: empty tables and an mvex while fragmented, the full tables
/// when finished.
fn moov(track: &Track, duration: u64, stbl_tables: Option<Stbl>, fragmented: bool) -> Result<Moov> {
    let mut stbl = stbl_tables.unwrap_or_default();
    let visual = Visual {
        data_reference_index: 1,
        width: track.width,
        height: track.height,
        horizresolution: 72.into(),
        vertresolution: 72.into(),
        frame_count: 1,
        compressor: "".into(),
        depth: 24,
    };
    let entry = match &track.codec {
        Codec::Avc { sps, pps } => {
            Avc1 { visual, avcc: Avcc::new(sps, pps).context("H.264 parameter sets")?, ..Default::default() }.into()
        }
        Codec::Hevc(hvcc) => Hvc1 { visual, hvcc: (**hvcc).clone(), ..Default::default() }.into(),
    };
    stbl.stsd = Stsd { codecs: vec![entry] };
    let movie_duration = duration * 1000 / TIMESCALE as u64;
    Ok(Moov {
        mvhd: Mvhd { timescale: 1000, duration: movie_duration, next_track_id: 2, ..Default::default() },
        mvex: fragmented.then(|| Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id: 1,
                default_sample_description_index: 1,
                default_sample_duration: 0,
                default_sample_size: 0,
                default_sample_flags: 0,
            }],
        }),
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: 1,
                duration: movie_duration,
                enabled: true,
                in_movie: true,
                width: track.width.into(),
                height: track.height.into(),
                ..Default::default()
            },
            mdia: Mdia {
                mdhd: Mdhd { timescale: TIMESCALE, duration, language: "und".into(), ..Default::default() },
                hdlr: Hdlr { handler: b"vide".into(), name: "framewire".into() },
                minf: Minf {
                    vmhd: Some(Vmhd::default()),
                    dinf: Dinf { dref: Dref { entries: vec![Url::default().into()] } },
                    stbl,
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn encode(atom: &impl Encode) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    atom.encode(&mut out).map_err(|e| anyhow::anyhow!("MP4 encoding: {e}"))?;
    Ok(out)
}

fn mdat_header(len: u64) -> Vec<u8> {
    match u32::try_from(len + 8) {
        Ok(size) => [&size.to_be_bytes()[..], b"mdat"].concat(),
        Err(_) => [&1u32.to_be_bytes()[..], b"mdat", &(len + 16).to_be_bytes()].concat(),
    }
}

impl Segment {
    /// Start a segment that will be `path` when finished.
    pub fn create(path: &Path, track: Track) -> Result<Segment> {
        let rec = rec_path(path);
        let mut file = File::create(&rec).with_context(|| format!("cannot create {}", rec.display()))?;
        let head = [encode(&ftyp(true))?, encode(&moov(&track, 0, None, true)?)?].concat();
        file.write_all(&head).with_context(|| format!("cannot write {}", rec.display()))?;
        Ok(Segment {
            path: path.to_path_buf(),
            rec,
            file,
            track,
            samples: Vec::new(),
            runs: Vec::new(),
            pending: Vec::new(),
            first_pts: None,
            decode_time: 0,
            sequence: 0,
            written: head.len() as u64,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn track(&self) -> &Track {
        &self.track
    }

    /// Media time from the segment's first sample to `pts`.
    pub fn elapsed(&self, pts: u64) -> u64 {
        self.first_pts.map_or(0, |f| pts.saturating_sub(f))
    }

    /// Add one access unit, length-prefixed NAL units, at `pts` (in
    /// [`TIMESCALE`] units, never less than the last).
    pub fn push(&mut self, data: Vec<u8>, pts: u64, key: bool) -> Result<()> {
        if self.first_pts.is_none() {
            self.first_pts = Some(pts);
        }
        if let Some((last, _, last_pts)) = self.pending.last_mut() {
            last.duration = u32::try_from(pts.saturating_sub(*last_pts)).unwrap_or(u32::MAX).max(1);
            let span = pts.saturating_sub(self.pending[0].2);
            if span >= 2 * FRAGMENT || (span >= FRAGMENT && key) {
                self.flush()?;
            }
        }
        let sample = Sample { size: u32::try_from(data.len()).context("access unit over 4 GiB")?, duration: 0, key };
        self.pending.push((sample, data, pts));
        Ok(())
    }

    /// Write the gathered samples as one fragment, and sync it.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let entries = self
            .pending
            .iter()
            .map(|(s, _, _)| TrunEntry {
                duration: Some(s.duration),
                size: Some(s.size),
                flags: Some(if s.key { KEY_FLAGS } else { DELTA_FLAGS }),
                cts: None,
            })
            .collect();
        self.sequence += 1;
        let mut moof = Moof {
            mfhd: Mfhd { sequence_number: self.sequence },
            traf: vec![Traf {
                tfhd: Tfhd { track_id: 1, default_base_is_moof: true, ..Default::default() },
                tfdt: Some(Tfdt { base_media_decode_time: self.decode_time }),
                trun: vec![Trun { data_offset: Some(0), samples: TrunSamples::Explicit(entries) }],
                ..Default::default()
            }],
        };
        // The data starts after the moof and the mdat's header: the moof's
        // size does not depend on the offset's value.
        let moof_len = encode(&moof)?.len();
        let data_len: u64 = self.pending.iter().map(|(s, _, _)| s.size as u64).sum();
        let mdat = mdat_header(data_len);
        moof.traf[0].trun[0].data_offset = Some(i32::try_from(moof_len + mdat.len()).context("fragment header too big")?);
        let mut out = encode(&moof)?;
        out.extend_from_slice(&mdat);
        let offset = self.written + out.len() as u64;
        for (_, data, _) in &self.pending {
            out.extend_from_slice(data);
        }
        self.file.write_all(&out).with_context(|| format!("cannot write {}", self.rec.display()))?;
        self.file.sync_data().with_context(|| format!("cannot sync {}", self.rec.display()))?;
        self.written += out.len() as u64;
        self.runs.push(Run { offset, count: self.pending.len() as u32, bytes: data_len });
        for (s, _, _) in self.pending.drain(..) {
            self.decode_time += s.duration as u64;
            self.samples.push(s);
        }
        Ok(())
    }

    /// End the segment: the last fragment written, then the file rewritten
    /// with its moov first and renamed to its final name. Returns that name
    /// and the segment's duration in [`TIMESCALE`] units.
    pub fn finish(mut self) -> Result<(PathBuf, u64)> {
        // The last frame lasts as long as the one before it.
        let n = self.pending.len();
        let before = match n {
            0 => None,
            1 => Some(self.samples.last().map_or(LAST_DURATION, |s| s.duration)),
            _ => Some(self.pending[n - 2].0.duration),
        };
        if let (Some(d), Some((last, _, _))) = (before, self.pending.last_mut()) {
            last.duration = d;
        }
        self.flush()?;
        let Segment { path, rec, file, track, samples, runs, .. } = self;
        drop(file);
        let duration = write_faststart(&path, &rec, &track, &samples, &runs)?;
        std::fs::remove_file(&rec).with_context(|| format!("cannot remove {}", rec.display()))?;
        Ok((path, duration))
    }

    /// Give up on the segment (the disk is full, say): the `.rec` file stays,
    /// to be finished by [`recover`] on the next start.
    pub fn abandon(self) {}
}

/// Write `path` from the fragments in `rec`: ftyp, moov with the sample
/// tables (a chunk per fragment), then one mdat. Written to a temporary
/// name and renamed, so no reader sees half a file.
fn write_faststart(path: &Path, rec: &Path, track: &Track, samples: &[Sample], runs: &[Run]) -> Result<u64> {
    ensure!(!samples.is_empty(), "no frames were recorded");
    let duration: u64 = samples.iter().map(|s| s.duration as u64).sum();
    let mut stts: Vec<SttsEntry> = Vec::new();
    for s in samples {
        match stts.last_mut() {
            Some(e) if e.sample_delta == s.duration => e.sample_count += 1,
            _ => stts.push(SttsEntry { sample_count: 1, sample_delta: s.duration }),
        }
    }
    let mut stsc: Vec<StscEntry> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        if stsc.last().is_none_or(|e| e.samples_per_chunk != r.count) {
            stsc.push(StscEntry { first_chunk: i as u32 + 1, samples_per_chunk: r.count, sample_description_index: 1 });
        }
    }
    let data_len: u64 = runs.iter().map(|r| r.bytes).sum();
    let mut tables = Stbl {
        stts: Stts { entries: stts },
        stss: Some(Stss { entries: (1..).zip(samples).filter(|(_, s)| s.key).map(|(n, _)| n).collect() }),
        stsc: Stsc { entries: stsc },
        stsz: Stsz { samples: StszSamples::Different { sizes: samples.iter().map(|s| s.size).collect() } },
        co64: Some(Co64 { entries: vec![0; runs.len()] }),
        ..Default::default()
    };
    let head_len = encode(&ftyp(false))?.len() + encode(&moov(track, duration, Some(tables.clone()), false)?)?.len();
    let mdat = mdat_header(data_len);
    let mut offset = (head_len + mdat.len()) as u64;
    let mut offsets = Vec::with_capacity(runs.len());
    for r in runs {
        offsets.push(offset);
        offset += r.bytes;
    }
    tables.co64 = Some(Co64 { entries: offsets });
    let head = [encode(&ftyp(false))?, encode(&moov(track, duration, Some(tables), false)?)?, mdat].concat();
    ensure!(head.len() == head_len + mdat_header(data_len).len(), "MP4 header changed size");

    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap_or_default().to_string_lossy()));
    let result = (|| -> Result<()> {
        let mut out = File::create(&tmp)?;
        out.write_all(&head)?;
        let mut src = File::open(rec)?;
        for r in runs {
            src.seek(SeekFrom::Start(r.offset))?;
            let copied = std::io::copy(&mut (&mut src).take(r.bytes), &mut out)?;
            ensure!(copied == r.bytes, "{} ends inside a fragment", rec.display());
        }
        out.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", path.display())));
    }
    Ok(duration)
}

/// Read one box header at the file's position: (type, header length, whole
/// length). None at the end of the file.
fn box_header(f: &mut File, file_len: u64) -> Result<Option<([u8; 4], u64, u64)>> {
    let at = f.stream_position()?;
    if at + 8 > file_len {
        return Ok(None);
    }
    let mut h = [0u8; 8];
    f.read_exact(&mut h)?;
    let kind = [h[4], h[5], h[6], h[7]];
    let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64;
    let (header, size) = match size {
        1 => {
            let mut l = [0u8; 8];
            f.read_exact(&mut l)?;
            (16, u64::from_be_bytes(l))
        }
        0 => (8, file_len - at),
        n => (8, n),
    };
    if size < header {
        bail!("box {} at {at} has a bad size", String::from_utf8_lossy(&kind));
    }
    Ok(Some((kind, header, size)))
}

/// Finish a `.rec` file left by a crash or a full disk: every whole
/// fragment in it goes into the finished MP4; a fragment cut short is lost.
/// Returns the final path and the duration recovered.
pub fn recover(rec: &Path) -> Result<(PathBuf, u64)> {
    let path = final_path(rec).with_context(|| format!("{} is not a recording being written", rec.display()))?;
    let mut f = File::open(rec).with_context(|| format!("cannot open {}", rec.display()))?;
    let file_len = f.metadata()?.len();
    let mut track = None;
    let mut samples = Vec::new();
    let mut runs = Vec::new();
    let mut fragment: Option<Vec<Sample>> = None;
    while let Some((kind, header, size)) = box_header(&mut f, file_len)? {
        let at = f.stream_position()? - header;
        if at + size > file_len {
            break; // cut short
        }
        match &kind {
            b"moov" | b"moof" => {
                let mut buf = vec![0u8; size as usize];
                f.seek(SeekFrom::Start(at))?;
                f.read_exact(&mut buf)?;
                if &kind == b"moov" {
                    let moov = Moov::decode(&mut &buf[..]).map_err(|e| anyhow::anyhow!("moov: {e}"))?;
                    track = Some(track_of(&moov)?);
                } else {
                    let moof = Moof::decode(&mut &buf[..]).map_err(|e| anyhow::anyhow!("moof: {e}"))?;
                    let mut list = Vec::new();
                    for trun in moof.traf.iter().flat_map(|t| &t.trun) {
                        for i in 0..trun.samples.len() {
                            let e = trun.samples.get(i).expect("index in range");
                            list.push(Sample {
                                size: e.size.unwrap_or(0),
                                duration: e.duration.unwrap_or(LAST_DURATION),
                                key: e.flags.is_some_and(|f| f & 0x0001_0000 == 0),
                            });
                        }
                    }
                    fragment = Some(list);
                }
            }
            b"mdat" => {
                if let Some(list) = fragment.take() {
                    let bytes: u64 = list.iter().map(|s| s.size as u64).sum();
                    if bytes <= size - header {
                        runs.push(Run { offset: at + header, count: list.len() as u32, bytes });
                        samples.extend(list);
                    }
                }
            }
            _ => {}
        }
        f.seek(SeekFrom::Start(at + size))?;
    }
    let track = track.with_context(|| format!("{} has no moov", rec.display()))?;
    drop(f);
    let duration = write_faststart(&path, rec, &track, &samples, &runs)?;
    std::fs::remove_file(rec)?;
    Ok((path, duration))
}

fn track_of(moov: &Moov) -> Result<Track> {
    let trak = moov.trak.first().context("no track")?;
    Ok(match trak.mdia.minf.stbl.stsd.codecs.first() {
        Some(mp4_atom::Codec::Avc1(avc1)) => Track {
            width: avc1.visual.width,
            height: avc1.visual.height,
            codec: Codec::Avc {
                sps: avc1.avcc.sequence_parameter_sets.first().cloned().context("no SPS")?,
                pps: avc1.avcc.picture_parameter_sets.first().cloned().context("no PPS")?,
            },
        },
        Some(mp4_atom::Codec::Hvc1(hvc1)) => {
            Track { width: hvc1.visual.width, height: hvc1.visual.height, codec: Codec::Hevc(Box::new(hvc1.hvcc.clone())) }
        }
        _ => bail!("not an H.264 or H.265 track"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::h264::JpegToH264;

    /// `n` frames 1/10 s apart, a keyframe every 10, as (data, pts, key).
    fn frames(n: usize) -> (Track, Vec<(Vec<u8>, u64, bool)>) {
        let calls = std::sync::atomic::AtomicU64::new(0);
        let mut enc = JpegToH264::new(10.0);
        let mut track = None;
        let mut out = Vec::new();
        for i in 0..n {
            let rgb: Vec<u8> = (0..64 * 48 * 3).map(|p| ((p + i * 7) % 251) as u8).collect();
            let jpeg = crate::encode::rgb_to_jpeg(&rgb, 64, 48, 80, &calls).unwrap();
            let (_, au) = enc.encode(&jpeg, i % 10 == 0).unwrap().unwrap();
            if track.is_none() {
                let codec = Codec::Avc { sps: au.sps.clone().unwrap(), pps: au.pps.clone().unwrap() };
                track = Some(Track { width: 64, height: 48, codec });
            }
            out.push((au.data, 1_000_000 + i as u64 * 9000, au.key));
        }
        (track.unwrap(), out)
    }

    /// The top-level boxes' types and offsets.
    fn boxes_at(file: &[u8]) -> Vec<(String, usize)> {
        let mut at = 0;
        let mut out = Vec::new();
        while at + 8 <= file.len() {
            let size = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
            out.push((String::from_utf8_lossy(&file[at + 4..at + 8]).into_owned(), at));
            at += size;
        }
        out
    }

    fn boxes(file: &[u8]) -> Vec<String> {
        boxes_at(file).into_iter().map(|(kind, _)| kind).collect()
    }

    #[test]
    fn finished_segment_has_moov_first_and_every_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("12-00-00.mp4");
        let (track, frames) = frames(35);
        let mut seg = Segment::create(&path, track).unwrap();
        let rec = rec_path(&path);
        for (data, pts, key) in frames.clone() {
            seg.push(data, pts, key).unwrap();
        }
        assert_eq!(boxes(&std::fs::read(&rec).unwrap())[..4], ["ftyp", "moov", "moof", "mdat"], "fragments while recording");
        let (done, duration) = seg.finish().unwrap();
        assert_eq!(done, path);
        assert!(!rec.exists());
        assert_eq!(duration, 35 * 9000, "35 frames of 1/10 s");
        let file = std::fs::read(&path).unwrap();
        assert_eq!(boxes(&file), ["ftyp", "moov", "mdat"]);
        let moov = Moov::decode(&mut &file[boxes_at(&file)[1].1..]).unwrap();
        let stbl = &moov.trak[0].mdia.minf.stbl;
        assert_eq!(stbl.stss.as_ref().unwrap().entries, [1, 11, 21, 31]);
        let StszSamples::Different { sizes } = &stbl.stsz.samples else { panic!() };
        assert_eq!(sizes.len(), 35);
        // Every frame's bytes where the tables say.
        let chunks = &stbl.co64.as_ref().unwrap().entries;
        let mut sample = 0;
        for (chunk, offset) in chunks.iter().enumerate() {
            let per = stbl.stsc.entries.iter().rev().find(|e| e.first_chunk as usize <= chunk + 1).unwrap().samples_per_chunk;
            let mut at = *offset as usize;
            for _ in 0..per {
                assert_eq!(&file[at..at + sizes[sample] as usize], &frames[sample].0[..], "frame {sample}");
                at += sizes[sample] as usize;
                sample += 1;
            }
        }
        assert_eq!(sample, 35);
        assert_eq!(moov.mvhd.duration, 3500);
    }

    #[test]
    fn recovers_the_whole_fragments_of_an_abandoned_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("12-00-00.mp4");
        let (track, frames) = frames(25);
        let mut seg = Segment::create(&path, track).unwrap();
        for (data, pts, key) in frames {
            seg.push(data, pts, key).unwrap();
        }
        // Fragments were written at frames 10 and 20; 20..25 were still gathering.
        seg.abandon();
        let rec = rec_path(&path);
        // And a crash in the middle of writing the next fragment.
        let mut f = std::fs::OpenOptions::new().append(true).open(&rec).unwrap();
        f.write_all(&[0, 0, 1, 0, b'm', b'o', b'o', b'f', 1, 2, 3]).unwrap();
        let (done, duration) = recover(&rec).unwrap();
        assert_eq!((done, duration), (path.clone(), 20 * 9000));
        assert!(!rec.exists());
        assert_eq!(boxes(&std::fs::read(&path).unwrap()), ["ftyp", "moov", "mdat"]);
        assert!(recover(&dir.path().join("x.mp4")).is_err());
    }
}
