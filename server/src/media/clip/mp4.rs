//! Writing a clip: one progressive MP4, `moov` first, one chunk per track per source segment.

use super::*;

/// Where each track's chunk of each source segment goes: one chunk per (segment, track), in
/// segment order, so audio and video interleave about once a second for progressive playback.
pub(super) struct Chunk {
    pub(super) segment: usize,
    pub(super) kept: usize,
    /// Range within that track's kept samples.
    pub(super) from: usize,
    pub(super) to: usize,
}

pub(super) fn chunks(kept: &[Kept]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let segments = kept
        .iter()
        .flat_map(|k| k.samples.last().map(|s| s.segment))
        .max()
        .unwrap_or(0);
    let mut cursor = vec![0usize; kept.len()];
    for segment in 0..=segments {
        for (k, track) in kept.iter().enumerate() {
            let from = cursor[k];
            let to = from
                + track.samples[from..]
                    .iter()
                    .take_while(|s| s.segment == segment)
                    .count();
            if to > from {
                out.push(Chunk {
                    segment,
                    kept: k,
                    from,
                    to,
                });
                cursor[k] = to;
            }
        }
    }
    out
}

pub(super) fn write_mp4(
    dir: &Path,
    chosen: &[&ListedSegment],
    kept: &[Kept],
    duration_ms: u64,
    out: &Path,
) -> Result<u64, ClipError> {
    let chunks = chunks(kept);
    let mut ftyp = Vec::new();
    bx(&mut ftyp, b"ftyp", |o| {
        o.extend_from_slice(b"isom");
        u32b(o, 0x200);
        for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
            o.extend_from_slice(brand);
        }
    });
    // Chunk offsets depend on the moov's size, which does not depend on their values.
    let probe = moov(kept, &chunks, duration_ms, 0);
    let data_start = (ftyp.len() + probe.len() + 16) as u64;
    let moov = moov(kept, &chunks, duration_ms, data_start);
    let payload: u64 = chunks
        .iter()
        .flat_map(|c| kept[c.kept].samples[c.from..c.to].iter())
        .map(|s| u64::from(s.size))
        .sum();

    let tmp = PathBuf::from(format!("{}.part", out.display()));
    let file = File::create(&tmp).map_err(|e| io("clip file", e))?;
    let mut w = BufWriter::new(file);
    let result = (|| -> std::io::Result<()> {
        w.write_all(&ftyp)?;
        w.write_all(&moov)?;
        // mdat with a 64-bit size: a long clip may pass 4 GiB.
        w.write_all(&1u32.to_be_bytes())?;
        w.write_all(b"mdat")?;
        w.write_all(&(payload + 16).to_be_bytes())?;
        let mut open: Option<(usize, File)> = None;
        let mut buf = Vec::new();
        for c in &chunks {
            if open.as_ref().map(|(i, _)| *i) != Some(c.segment) {
                open = Some((c.segment, File::open(dir.join(&chosen[c.segment].file))?));
            }
            let (_, f) = open.as_mut().expect("opened above");
            for s in &kept[c.kept].samples[c.from..c.to] {
                buf.resize(s.size as usize, 0);
                f.seek(SeekFrom::Start(s.offset))?;
                f.read_exact(&mut buf)?;
                w.write_all(&buf)?;
            }
        }
        w.flush()?;
        w.get_ref().sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("writing the clip", e));
    }
    std::fs::rename(&tmp, out).map_err(|e| io("clip file", e))?;
    Ok((ftyp.len() + moov.len()) as u64 + 16 + payload)
}

/// Patches a version-0 header's 32-bit duration field at `at` (body offset).
pub(super) fn with_duration(body: &[u8], at: usize, duration: u64) -> Vec<u8> {
    let mut b = body.to_vec();
    let d = duration.min(u64::from(u32::MAX)) as u32;
    if let Some(slot) = b.get_mut(at..at + 4) {
        slot.copy_from_slice(&d.to_be_bytes());
    }
    b
}

pub(super) fn moov(kept: &[Kept], chunks: &[Chunk], duration_ms: u64, data_start: u64) -> Vec<u8> {
    // Chunk offsets in file order.
    let mut offsets = vec![Vec::new(); kept.len()];
    let mut at = data_start;
    for c in chunks {
        offsets[c.kept].push((at, c.to - c.from));
        at += kept[c.kept].samples[c.from..c.to]
            .iter()
            .map(|s| u64::from(s.size))
            .sum::<u64>();
    }
    let mut o = Vec::new();
    bx(&mut o, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            u32b(o, 0);
            u32b(o, 0);
            u32b(o, 1000);
            u32b(o, duration_ms as u32);
            u32b(o, 0x0001_0000);
            u16b(o, 0x0100);
            o.extend_from_slice(&[0; 10]);
            MATRIX.iter().for_each(|m| u32b(o, *m));
            o.extend_from_slice(&[0; 24]);
            u32b(o, kept.iter().map(|k| k.track.id).max().unwrap_or(0) + 1);
        });
        for (k, track) in kept.iter().enumerate() {
            trak(o, track, &offsets[k], duration_ms);
        }
    });
    o
}

pub(super) fn trak(o: &mut Vec<u8>, k: &Kept, chunk_offsets: &[(u64, usize)], duration_ms: u64) {
    let t = k.track;
    let media_duration: u64 = k.samples.iter().map(|s| u64::from(s.duration)).sum();
    bx(o, b"trak", |o| {
        // tkhd v0: duration after creation, modification, track id, reserved.
        o.extend_from_slice(&whole(b"tkhd", &with_duration(&t.tkhd, 20, duration_ms)));
        bx(o, b"edts", |o| {
            full(o, b"elst", 0, 0, |o| {
                u32b(o, 1);
                u32b(o, duration_ms as u32);
                u32b(o, k.media_start as u32);
                u32b(o, 0x0001_0000); // rate 1.0
            });
        });
        bx(o, b"mdia", |o| {
            // mdhd v0: duration after creation, modification, timescale.
            o.extend_from_slice(&whole(b"mdhd", &with_duration(&t.mdhd, 16, media_duration)));
            o.extend_from_slice(&t.hdlr);
            bx(o, b"minf", |o| {
                o.extend_from_slice(&t.minf_head);
                bx(o, b"stbl", |o| {
                    o.extend_from_slice(&t.stsd);
                    sample_tables(o, &k.samples, chunk_offsets, t.video);
                });
            });
        });
    });
}

/// (count, value) runs of equal consecutive values, as `stts` and `ctts` store them.
pub(super) fn run_lengths<T: PartialEq>(values: impl Iterator<Item = T>) -> Vec<(u32, T)> {
    let mut runs: Vec<(u32, T)> = Vec::new();
    for v in values {
        match runs.last_mut() {
            Some((n, last)) if *last == v => *n += 1,
            _ => runs.push((1, v)),
        }
    }
    runs
}

pub(super) fn sample_tables(
    o: &mut Vec<u8>,
    samples: &[Sample],
    chunk_offsets: &[(u64, usize)],
    video: bool,
) {
    // stts: runs of equal durations.
    let runs = run_lengths(samples.iter().map(|s| s.duration));
    full(o, b"stts", 0, 0, |o| {
        u32b(o, runs.len() as u32);
        for (n, d) in &runs {
            u32b(o, *n);
            u32b(o, *d);
        }
    });
    // ctts (signed, version 1) only when frames are reordered.
    if samples.iter().any(|s| s.cto != 0) {
        let runs = run_lengths(samples.iter().map(|s| s.cto));
        full(o, b"ctts", 1, 0, |o| {
            u32b(o, runs.len() as u32);
            for (n, c) in &runs {
                u32b(o, *n);
                u32b(o, *c as u32);
            }
        });
    }
    if video && samples.iter().any(|s| !s.keyframe) {
        let sync: Vec<u32> = samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.keyframe)
            .map(|(i, _)| i as u32 + 1)
            .collect();
        full(o, b"stss", 0, 0, |o| {
            u32b(o, sync.len() as u32);
            sync.iter().for_each(|i| u32b(o, *i));
        });
    }
    // stsc: runs of chunks with the same sample count.
    let mut stsc: Vec<(u32, u32)> = Vec::new();
    for (i, (_, n)) in chunk_offsets.iter().enumerate() {
        if stsc.last().map(|(_, m)| *m) != Some(*n as u32) {
            stsc.push((i as u32 + 1, *n as u32));
        }
    }
    full(o, b"stsc", 0, 0, |o| {
        u32b(o, stsc.len() as u32);
        for (first, n) in &stsc {
            u32b(o, *first);
            u32b(o, *n);
            u32b(o, 1);
        }
    });
    full(o, b"stsz", 0, 0, |o| {
        u32b(o, 0);
        u32b(o, samples.len() as u32);
        samples.iter().for_each(|s| u32b(o, s.size));
    });
    full(o, b"co64", 0, 0, |o| {
        u32b(o, chunk_offsets.len() as u32);
        chunk_offsets.iter().for_each(|(at, _)| u64b(o, *at));
    });
}
