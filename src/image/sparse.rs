//! Writing an image into a thin LV so the pool allocates only real data.
//!
//! A fresh thin LV reads as zeros without owning any pool chunk; writing
//! zeros into it would allocate chunks for nothing. So all-zero blocks are
//! skipped, and a delta write into a snapshot of the previous base writes
//! only the blocks that changed, keeping every other chunk shared.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use super::ImageError;

/// The unit of comparison and writing: the default (and smallest common)
/// thin-pool chunk size, so a skipped block is usually a whole chunk saved.
pub const BLOCK: usize = 64 * 1024;

/// What a copy did, in bytes.
///
/// `bytes_in` counts the source; the others split it (plus, for a delta
/// write, the cleared tail beyond a shorter source) by what happened to
/// each block: `written` to the target, skipped because all zero
/// (`zero_skipped`) or equal to what the target already held
/// (`same_skipped`), or freed with the discard callback (`discarded`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WriteStats {
    pub bytes_in: u64,
    pub written: u64,
    pub zero_skipped: u64,
    pub same_skipped: u64,
    pub discarded: u64,
}

/// Whether a block is all zero, compared 16 bytes at a time.
pub(crate) fn is_zero(buf: &[u8]) -> bool {
    let mut words = buf.chunks_exact(16);
    words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
        && words.remainder().iter().all(|&b| b == 0)
}

/// Read until `buf` is full or the stream ends (pipes and decompressors
/// return short reads); returns how much was read.
fn fill(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Like `read_exact_at`, but the part beyond the end of a (regular) file
/// reads as zeros, as it would on a device of the full size.
fn read_at_or_zero(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[n..].fill(0);
    Ok(())
}

fn write_at(dst: &File, buf: &[u8], offset: u64) -> Result<(), ImageError> {
    dst.write_all_at(buf, offset)
        .map_err(|source| ImageError::Write { offset, source })
}

fn too_large(size: u64, limit: u64, exact: bool) -> ImageError {
    ImageError::TooLarge { size, limit, exact }
}

/// Flush the target to stable storage, and give a regular-file target the
/// full length (trailing zero blocks were skipped, not written).
fn finish(dst: &File, len: u64) -> Result<(), ImageError> {
    let meta = dst.metadata().map_err(|source| ImageError::Write {
        offset: len,
        source,
    })?;
    if meta.is_file() && meta.len() < len {
        dst.set_len(len).map_err(|source| ImageError::Write {
            offset: len,
            source,
        })?;
    }
    dst.sync_data().map_err(|source| ImageError::Write {
        offset: len,
        source,
    })
}

/// Copy `src` (a stream, e.g. a decompressor or a pipe) into `dst` at
/// offset 0, skipping all-zero blocks (dst is a fresh thin LV that reads as
/// zeros). Fails with an error naming the sizes if src holds more than
/// `limit` bytes; nothing is ever written at or past `limit`.
/// progress(bytes_in) is called once per block.
///
/// A regular-file `dst` shorter than the source is extended to its length
/// at the end. Blocks until `src` ends.
pub fn copy_sparse(
    src: &mut dyn Read,
    dst: &File,
    limit: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<WriteStats, ImageError> {
    let mut stats = WriteStats::default();
    let mut buf = vec![0u8; BLOCK];
    loop {
        let offset = stats.bytes_in;
        let n = fill(src, &mut buf).map_err(|source| ImageError::Read { offset, source })?;
        if n == 0 {
            break;
        }
        if offset + n as u64 > limit {
            return Err(too_large(offset + n as u64, limit, false));
        }
        let block = &buf[..n];
        if is_zero(block) {
            stats.zero_skipped += n as u64;
        } else {
            write_at(dst, block, offset)?;
            stats.written += n as u64;
        }
        stats.bytes_in += n as u64;
        progress(stats.bytes_in);
    }
    finish(dst, stats.bytes_in)?;
    Ok(stats)
}

/// Same as [`copy_sparse`], but if `src` is a regular file, its holes are
/// found with SEEK_DATA/SEEK_HOLE and skipped without reading them, and a
/// source larger than `limit` is refused before anything is written. Falls
/// back to `copy_sparse` for anything else (pipes, devices).
pub fn copy_file_sparse(
    src: &File,
    dst: &File,
    limit: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<WriteStats, ImageError> {
    let meta = src
        .metadata()
        .map_err(|source| ImageError::Read { offset: 0, source })?;
    if !meta.is_file() {
        let mut reader = src;
        return copy_sparse(&mut reader, dst, limit, progress);
    }
    let len = meta.len();
    if len > limit {
        return Err(too_large(len, limit, true));
    }
    let mut stats = WriteStats::default();
    let mut buf = vec![0u8; BLOCK];
    let mut pos = 0u64;
    while pos < len {
        let (data, hole) = next_data(src, pos, len)?;
        stats.zero_skipped += data - pos;
        let mut off = data;
        while off < hole {
            // Keep blocks aligned to BLOCK so they match pool chunks.
            let end = hole.min((off / BLOCK as u64 + 1) * BLOCK as u64);
            let block = &mut buf[..(end - off) as usize];
            src.read_exact_at(block, off)
                .map_err(|source| ImageError::Read {
                    offset: off,
                    source,
                })?;
            if is_zero(block) {
                stats.zero_skipped += block.len() as u64;
            } else {
                write_at(dst, block, off)?;
                stats.written += block.len() as u64;
            }
            off = end;
            progress(off);
        }
        pos = hole;
    }
    stats.bytes_in = len;
    progress(len);
    finish(dst, len)?;
    Ok(stats)
}

/// The next data extent `[data, hole)` at or after `pos` of a file of
/// length `len`; `(len, len)` when only a hole remains. A filesystem
/// without SEEK_DATA support reports the whole rest as data.
pub(crate) fn next_data(src: &File, pos: u64, len: u64) -> Result<(u64, u64), ImageError> {
    let seek_err = |source: Errno| ImageError::Read {
        offset: pos,
        source: source.into(),
    };
    let data = match rustix::fs::seek(src, SeekFrom::Data(pos)) {
        Ok(d) => d,
        Err(Errno::NXIO) => return Ok((len, len)),
        Err(Errno::INVAL | Errno::OPNOTSUPP) => return Ok((pos, len)),
        Err(e) => return Err(seek_err(e)),
    };
    let hole = match rustix::fs::seek(src, SeekFrom::Hole(data)) {
        Ok(h) => h,
        Err(Errno::NXIO) => len,
        Err(e) => return Err(seek_err(e)),
    };
    // The file may have changed size since it was measured.
    Ok((data.min(len), hole.min(len)))
}

/// Delta write: `dst` already holds an older version (a thin snapshot of
/// the previous base). For each block, dst's block at the same offset is
/// read and only blocks that differ are written. A source block that is all
/// zero where dst is not is handed to `discard(offset, len)` (adjacent ones
/// merged into one call, so whole pool chunks can be freed); if that fails,
/// zeros are written. Blocks beyond the end of src up to `old_len` (the old
/// image's length, capped at `limit`) that are non-zero in dst are cleared
/// the same way, because the new image is shorter.
///
/// A discard need not zero what it covers (dm-thin leaves a partly covered
/// chunk as it was), so every discarded range is read back and any block
/// still not zero is written with zeros: `discarded` counts only bytes that
/// then read as zero without a write.
pub fn copy_delta(
    src: &mut dyn Read,
    dst: &File,
    limit: u64,
    old_len: u64,
    discard: &mut dyn FnMut(u64, u64) -> io::Result<()>,
    progress: &mut dyn FnMut(u64),
) -> Result<WriteStats, ImageError> {
    let mut stats = WriteStats::default();
    let mut new = vec![0u8; BLOCK];
    let mut old = vec![0u8; BLOCK];
    let mut clear = Clearing::default();
    loop {
        let offset = stats.bytes_in;
        let n = fill(src, &mut new).map_err(|source| ImageError::Read { offset, source })?;
        if n == 0 {
            break;
        }
        if offset + n as u64 > limit {
            return Err(too_large(offset + n as u64, limit, false));
        }
        let (new, old) = (&new[..n], &mut old[..n]);
        read_at_or_zero(dst, old, offset).map_err(|source| ImageError::Read { offset, source })?;
        if new == &old[..] {
            if is_zero(new) {
                stats.zero_skipped += n as u64;
            } else {
                stats.same_skipped += n as u64;
            }
        } else if is_zero(new) {
            clear.add(dst, offset, n as u64, discard, &mut stats)?;
        } else {
            clear.flush(dst, discard, &mut stats)?;
            write_at(dst, new, offset)?;
            stats.written += n as u64;
        }
        stats.bytes_in += n as u64;
        progress(stats.bytes_in);
    }
    // The tail the shorter new image no longer covers; its first piece
    // ends at a BLOCK boundary so later ones stay aligned.
    let tail_end = old_len.min(limit);
    let mut off = stats.bytes_in;
    while off < tail_end {
        let end = tail_end.min((off / BLOCK as u64 + 1) * BLOCK as u64);
        let block = &mut old[..(end - off) as usize];
        read_at_or_zero(dst, block, off).map_err(|source| ImageError::Read {
            offset: off,
            source,
        })?;
        if !is_zero(block) {
            clear.add(dst, off, end - off, discard, &mut stats)?;
        }
        off = end;
    }
    clear.flush(dst, discard, &mut stats)?;
    finish(dst, stats.bytes_in)?;
    Ok(stats)
}

/// A run of adjacent ranges to clear with one discard.
#[derive(Default)]
struct Clearing {
    start: u64,
    len: u64,
}

impl Clearing {
    fn add(
        &mut self,
        dst: &File,
        offset: u64,
        len: u64,
        discard: &mut dyn FnMut(u64, u64) -> io::Result<()>,
        stats: &mut WriteStats,
    ) -> Result<(), ImageError> {
        if self.len > 0 && self.start + self.len != offset {
            self.flush(dst, discard, stats)?;
        }
        if self.len == 0 {
            self.start = offset;
        }
        self.len += len;
        Ok(())
    }

    /// Discard the pending run, then make sure it reads as zeros.
    fn flush(
        &mut self,
        dst: &File,
        discard: &mut dyn FnMut(u64, u64) -> io::Result<()>,
        stats: &mut WriteStats,
    ) -> Result<(), ImageError> {
        if self.len == 0 {
            return Ok(());
        }
        let (start, end) = (self.start, self.start + self.len);
        self.len = 0;
        let discarded = discard(start, end - start).is_ok();
        let mut buf = vec![0u8; BLOCK];
        let zeros = vec![0u8; BLOCK];
        let mut off = start;
        while off < end {
            let stop = end.min((off / BLOCK as u64 + 1) * BLOCK as u64);
            let n = (stop - off) as usize;
            let still_zero = discarded && {
                read_at_or_zero(dst, &mut buf[..n], off).map_err(|source| ImageError::Read {
                    offset: off,
                    source,
                })?;
                is_zero(&buf[..n])
            };
            if still_zero {
                stats.discarded += n as u64;
            } else {
                write_at(dst, &zeros[..n], off)?;
                stats.written += n as u64;
            }
            off = stop;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::FallocateFlags;
    use std::io::Write;

    const MIB: usize = 1 << 20;

    /// A stream that hands out at most 1000 bytes per read, like a pipe.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1000).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// 4 MiB of zeros with data at a few offsets (one write straddles two
    /// blocks).
    fn sample() -> Vec<u8> {
        let mut v = vec![0u8; 4 * MIB];
        v[0..5].copy_from_slice(b"hello");
        v[MIB + 100] = 1;
        v[3 * MIB + BLOCK - 1] = 2;
        v[3 * MIB + BLOCK] = 3;
        *v.last_mut().unwrap() = 4;
        v
    }

    fn nonzero_bytes_by_block(v: &[u8]) -> u64 {
        v.chunks(BLOCK)
            .filter(|b| !is_zero(b))
            .map(|b| b.len() as u64)
            .sum()
    }

    fn read_all(f: &File) -> Vec<u8> {
        let mut v = Vec::new();
        let mut r = f;
        std::io::Seek::rewind(&mut r).unwrap();
        r.read_to_end(&mut v).unwrap();
        v
    }

    fn punch_hole(f: &File) -> impl FnMut(u64, u64) -> io::Result<()> + '_ {
        move |off, len| {
            rustix::fs::fallocate(
                f,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                off,
                len,
            )
            .map_err(io::Error::from)
        }
    }

    #[test]
    fn zero_check() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 100]));
        for i in 0..100 {
            let mut v = [0u8; 100];
            v[i] = 1;
            assert!(!is_zero(&v), "{i}");
        }
    }

    #[test]
    fn stream_copy_skips_zero_blocks() {
        let src = sample();
        let dst = tempfile::tempfile().unwrap();
        let mut last = 0;
        let stats = copy_sparse(&mut Trickle(&src), &dst, 8 * MIB as u64, &mut |n| {
            assert!(n > last);
            last = n;
        })
        .unwrap();
        assert_eq!(read_all(&dst), src);
        assert_eq!(last, src.len() as u64);
        assert_eq!(stats.bytes_in, src.len() as u64);
        assert_eq!(stats.written, 5 * BLOCK as u64);
        assert_eq!(stats.written, nonzero_bytes_by_block(&src));
        assert_eq!(stats.zero_skipped, stats.bytes_in - stats.written);
        assert_eq!((stats.same_skipped, stats.discarded), (0, 0));
    }

    #[test]
    fn stream_copy_writes_a_final_partial_block_and_pads_files() {
        let mut src = vec![0u8; 3 * BLOCK + 10];
        src[3 * BLOCK + 9] = 9;
        let dst = tempfile::tempfile().unwrap();
        let stats = copy_sparse(&mut &src[..], &dst, u64::MAX, &mut |_| {}).unwrap();
        assert_eq!(stats.written, 10);
        assert_eq!(read_all(&dst), src);

        // Trailing zeros are not written, but a file target gets the length.
        let src = vec![0u8; 2 * BLOCK];
        let dst = tempfile::tempfile().unwrap();
        let stats = copy_sparse(&mut &src[..], &dst, u64::MAX, &mut |_| {}).unwrap();
        assert_eq!(stats.written, 0);
        assert_eq!(read_all(&dst), src);
    }

    #[test]
    fn stream_larger_than_limit_is_refused_without_writing_past_it() {
        let src = vec![0xaau8; 4 * MIB];
        let dst = tempfile::tempfile().unwrap();
        let limit = MIB as u64 + 10;
        let e = copy_sparse(&mut Trickle(&src), &dst, limit, &mut |_| {}).unwrap_err();
        assert!(
            matches!(e, ImageError::TooLarge { limit: l, exact: false, .. } if l == limit),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains(&limit.to_string()), "{msg}");
        assert!(dst.metadata().unwrap().len() <= limit);
    }

    fn sparse_file(data: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.set_len(data.len() as u64).unwrap();
        for (i, block) in data.chunks(BLOCK).enumerate() {
            if !is_zero(block) {
                f.write_all_at(block, (i * BLOCK) as u64).unwrap();
            }
        }
        f.flush().unwrap();
        f
    }

    #[test]
    fn file_copy_skips_holes_without_reading_them() {
        let src = sample();
        let file = sparse_file(&src);
        // The filesystem must really have holes for this test to mean much.
        let (data, hole) = next_data(&file, 0, src.len() as u64).unwrap();
        assert_eq!((data, hole), (0, BLOCK as u64), "tmp has no SEEK_HOLE?");

        let dst = tempfile::tempfile().unwrap();
        let mut calls = 0;
        let stats = copy_file_sparse(&file, &dst, 4 * MIB as u64, &mut |_| calls += 1).unwrap();
        assert_eq!(read_all(&dst), src);
        assert_eq!(stats.bytes_in, src.len() as u64);
        assert_eq!(stats.written, 5 * BLOCK as u64);
        assert_eq!(stats.zero_skipped, stats.bytes_in - stats.written);
        // One progress call per data block read plus the final one: the
        // 59 blocks of holes were never read.
        assert!(calls <= 6, "{calls} progress calls");
    }

    #[test]
    fn file_copy_of_a_dense_file_with_zero_blocks() {
        let src = sample();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&src).unwrap();
        let dst = tempfile::tempfile().unwrap();
        let stats = copy_file_sparse(&file, &dst, u64::MAX, &mut |_| {}).unwrap();
        assert_eq!(read_all(&dst), src);
        assert_eq!(stats.written, 5 * BLOCK as u64);
    }

    #[test]
    fn file_copy_refuses_a_file_larger_than_limit_up_front() {
        let file = sparse_file(&sample());
        let dst = tempfile::tempfile().unwrap();
        let e = copy_file_sparse(&file, &dst, MIB as u64, &mut |_| {}).unwrap_err();
        assert!(
            matches!(e, ImageError::TooLarge { exact: true, .. }),
            "{e:?}"
        );
        assert_eq!(dst.metadata().unwrap().len(), 0);
    }

    #[test]
    fn file_copy_falls_back_to_streaming_for_pipes() {
        let src = sample();
        let (reader, mut writer) = io::pipe().unwrap();
        let feeder = {
            let src = src.clone();
            std::thread::spawn(move || writer.write_all(&src).unwrap())
        };
        let reader = File::from(std::os::fd::OwnedFd::from(reader));
        let dst = tempfile::tempfile().unwrap();
        let stats = copy_file_sparse(&reader, &dst, u64::MAX, &mut |_| {}).unwrap();
        feeder.join().unwrap();
        assert_eq!(read_all(&dst), src);
        assert_eq!(stats.written, 5 * BLOCK as u64);
    }

    /// Old image: 20 blocks of data, with a zero block at 18. New image: 3
    /// blocks changed, block 5 zeroed, and shorter (16 blocks + 1000 bytes,
    /// the partial block equal to the old one's start).
    fn old_and_new() -> (Vec<u8>, Vec<u8>) {
        let mut old: Vec<u8> = (0..20 * BLOCK).map(|i| (i % 251) as u8 + 1).collect();
        old[18 * BLOCK..19 * BLOCK].fill(0);
        let mut new = old[..16 * BLOCK + 1000].to_vec();
        for b in [1, 7, 15] {
            new[b * BLOCK + 42] ^= 0xff;
        }
        new[5 * BLOCK..6 * BLOCK].fill(0);
        (old, new)
    }

    fn dst_holding(old: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(old).unwrap();
        f
    }

    fn assert_holds_new(dst: &File, old: &[u8], new: &[u8]) {
        let got = read_all(dst);
        assert_eq!(got.len(), old.len());
        assert!(got[..new.len()] == *new, "the new image differs");
        assert!(is_zero(&got[new.len()..]), "the tail was not cleared");
    }

    #[test]
    fn delta_writes_only_changed_blocks_and_clears_the_tail() {
        let (old, new) = old_and_new();
        let dst = dst_holding(&old);
        let mut ranges = Vec::new();
        let mut punch = punch_hole(&dst);
        let mut discard = |off, len| {
            ranges.push((off, len));
            punch(off, len)
        };
        let stats = copy_delta(
            &mut Trickle(&new),
            &dst,
            u64::MAX,
            old.len() as u64,
            &mut discard,
            &mut |_| {},
        )
        .unwrap();
        assert_holds_new(&dst, &old, &new);
        let b = BLOCK as u64;
        assert_eq!(stats.bytes_in, new.len() as u64);
        assert_eq!(stats.written, 3 * b);
        assert_eq!(stats.same_skipped, 12 * b + 1000);
        assert_eq!(stats.zero_skipped, 0);
        // Block 5, then the tail: the rest of block 16, blocks 17 and 19
        // (18 was already zero).
        assert_eq!(
            ranges,
            vec![(5 * b, b), (16 * b + 1000, 2 * b - 1000), (19 * b, b)]
        );
        assert_eq!(stats.discarded, 4 * b - 1000);
    }

    #[test]
    fn delta_writes_zeros_when_discard_fails_or_does_nothing() {
        let (old, new) = old_and_new();
        type Discard = Box<dyn FnMut(u64, u64) -> io::Result<()>>;
        let refuse: Discard = Box::new(|_, _| Err(io::ErrorKind::Unsupported.into()));
        let pretend: Discard = Box::new(|_, _| Ok(()));
        for mut discard in [refuse, pretend] {
            let dst = dst_holding(&old);
            let stats = copy_delta(
                &mut &new[..],
                &dst,
                u64::MAX,
                old.len() as u64,
                &mut discard,
                &mut |_| {},
            )
            .unwrap();
            assert_holds_new(&dst, &old, &new);
            assert_eq!(stats.discarded, 0);
            assert_eq!(stats.written, 3 * BLOCK as u64 + 4 * BLOCK as u64 - 1000);
        }
    }

    #[test]
    fn delta_onto_zeros_is_a_sparse_copy() {
        let src = sample();
        let dst = tempfile::tempfile().unwrap();
        let mut discard = |_, _| -> io::Result<()> { panic!("nothing to discard") };
        let stats =
            copy_delta(&mut &src[..], &dst, u64::MAX, 0, &mut discard, &mut |_| {}).unwrap();
        assert_eq!(read_all(&dst), src);
        assert_eq!(stats.written, 5 * BLOCK as u64);
        assert_eq!(stats.zero_skipped, stats.bytes_in - stats.written);
    }

    #[test]
    fn delta_larger_than_limit_is_refused() {
        let (old, _) = old_and_new();
        let dst = dst_holding(&old[..BLOCK]);
        let e = copy_delta(
            &mut &old[..],
            &dst,
            BLOCK as u64,
            BLOCK as u64,
            &mut |_, _| Ok(()),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(e, ImageError::TooLarge { .. }), "{e:?}");
        assert_eq!(dst.metadata().unwrap().len(), BLOCK as u64);
    }
}
