//! The frame layout `pack` writes: where frames start, what the index and seek table say.

use std::path::Path;

use container_loader_testkit::{append_file, tar_of};
use zstd_safe::DCtx;

use super::frames::{Settings, Trailer, INDEX_MAGIC, SEEKABLE_MAGIC, SEEK_TABLE_MAGIC};
use super::members::HEAD_AFTER;
use super::{pack, PackError};

/// A small chunk, so that a member of a few KiB is split.
const CHUNK: usize = 4096;

fn packed(tar: &[u8]) -> (Vec<u8>, Trailer) {
    let mut out = Vec::new();
    let settings = Settings {
        level: 3,
        threads: 2,
    };
    let trailer = pack(tar, &mut out, settings, CHUNK, Path::new("out")).unwrap();
    (out, trailer)
}

/// Each data frame's content, in order, decoded one frame at a time.
fn frame_contents(archive: &[u8], trailer: &Trailer) -> Vec<Vec<u8>> {
    let mut at = 0;
    let mut contents = Vec::new();
    for &(compressed, size, _) in &trailer.frames {
        let frame = &archive[at..at + compressed as usize];
        let mut content = Vec::with_capacity(size as usize);
        DCtx::create().decompress(&mut content, frame).unwrap();
        assert_eq!(content.len(), size as usize);
        contents.push(content);
        at += compressed as usize;
    }
    contents
}

/// The tar offset at which each data frame starts.
fn frame_starts(trailer: &Trailer) -> Vec<u64> {
    let mut starts = vec![0];
    for &(_, size, _) in &trailer.frames {
        starts.push(starts.last().unwrap() + u64::from(size));
    }
    starts.pop();
    starts
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

#[test]
fn a_frame_starts_at_each_member_and_at_the_end_of_the_tar() {
    let tar = tar_of(&[("manifest.json", b"[]"), ("blobs/sha256/aa", &[7; 100])]);
    let (_, trailer) = packed(&tar);
    let starts = frame_starts(&trailer);
    assert_eq!(trailer.members.len(), 2);
    assert_eq!(starts[..2], [0, 1024]);
    assert_eq!(trailer.members[1].header, 1024);
    assert_eq!(trailer.members[1].frame, 1);
    assert_eq!(starts.len(), 3, "the zero blocks are a frame of their own");
    assert_eq!(starts[2], 2048);
}

#[test]
fn a_member_larger_than_a_chunk_is_split_into_several_frames() {
    let layer = vec![1u8; 3 * CHUNK];
    let tar = tar_of(&[("blobs/sha256/aa", &layer), ("index.json", b"{}")]);
    let (archive, trailer) = packed(&tar);
    let layer_entry = &trailer.members[0];
    assert_eq!(
        layer_entry.frames, 4,
        "512 header bytes spill into a fourth"
    );
    assert_eq!(layer_entry.size, layer.len() as u64);
    assert!(frame_contents(&archive, &trailer)
        .iter()
        .all(|c| c.len() <= CHUNK));
    assert_eq!(trailer.members[1].frame, 4);
}

#[test]
fn a_layer_has_its_header_and_first_block_in_a_frame_of_their_own() {
    let layer: Vec<u8> = (0..HEAD_AFTER as usize + 1).map(|i| i as u8).collect();
    let tar = tar_of(&[("blobs/sha256/aa", &layer), ("index.json", b"{}")]);
    let (archive, trailer) = packed(&tar);
    let contents = frame_contents(&archive, &trailer);
    assert_eq!(
        contents[0].len(),
        2 * 512,
        "the header and the first data block"
    );
    assert!(contents[1..].iter().all(|c| c.len() <= CHUNK));
    // Its data padded to blocks (64 KiB + 512), less the first block, in chunks.
    let data_frames = (HEAD_AFTER as usize).div_ceil(CHUNK);
    assert_eq!(trailer.members[0].frames, 1 + data_frames as u64);
    assert_eq!(contents.concat(), tar);
}

#[test]
fn a_member_no_larger_than_the_head_threshold_starts_with_its_data() {
    let tar = tar_of(&[("a", &[3; 10_000]), ("b", b"bee")]);
    let (archive, trailer) = packed(&tar);
    assert_eq!(
        frame_contents(&archive, &trailer)[0].len(),
        CHUNK,
        "a chunk, its header included"
    );
}

#[test]
fn the_frames_together_are_the_tar_byte_for_byte() {
    let tar = tar_of(&[("a", &[3; 10_000]), ("b", b"bee")]);
    let (archive, trailer) = packed(&tar);
    assert_eq!(frame_contents(&archive, &trailer).concat(), tar);
}

#[test]
fn a_gnu_long_name_stays_with_its_member_and_names_it() {
    let long = format!("blobs/sha256/{}", "a".repeat(150));
    let mut builder = tar::Builder::new(Vec::new());
    append_file(&mut builder, &long, b"data", 0o644);
    let tar = builder.into_inner().unwrap();
    let (archive, trailer) = packed(&tar);
    let member = &trailer.members[0];
    assert_eq!(member.path, long);
    assert_eq!((member.header, member.frame), (0, 0));
    assert_eq!(member.data, 3 * 512, "L header, its name, then the header");
    assert_eq!(
        &frame_contents(&archive, &trailer)[0][..3 * 512 + 4][3 * 512..],
        b"data"
    );
}

#[test]
fn a_pax_header_stays_with_its_member_and_its_path_names_it() {
    let long = format!("blobs/sha256/{}", "b".repeat(200));
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([("path", long.as_bytes())])
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_path("short").unwrap();
    header.set_size(2);
    header.set_cksum();
    builder.append(&header, &b"hi"[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    let (_, trailer) = packed(&tar);
    assert_eq!(trailer.members.len(), 1);
    assert_eq!(trailer.members[0].path, long);
    assert_eq!(trailer.members[0].header, 0);
    assert_eq!(frame_starts(&trailer)[1], trailer.members[0].data + 512);
}

#[test]
fn the_index_and_the_seek_table_agree_with_the_frames() {
    let tar = tar_of(&[("m", &[5; 9000]), ("n", b"x")]);
    let (archive, trailer) = packed(&tar);
    let data_len: usize = trailer.frames.iter().map(|f| f.0 as usize).sum();
    let index = &archive[data_len..];
    assert_eq!(le32(index, 0), INDEX_MAGIC);
    let index_len = le32(index, 4) as usize;
    let json: serde_json::Value = serde_json::from_slice(&index[8..8 + index_len]).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["members"][1]["path"], "n");
    assert_eq!(json["members"][1]["frame"], trailer.members[1].frame);
    let table = &index[8 + index_len..];
    assert_eq!(le32(table, 0), SEEK_TABLE_MAGIC);
    assert_eq!(le32(table, 4) as usize, table.len() - 8);
    let footer = &table[table.len() - 9..];
    assert_eq!(le32(footer, 0) as usize, trailer.frames.len());
    assert_eq!((footer[4], le32(footer, 5)), (0x80, SEEKABLE_MAGIC));
    let mut at = 0;
    for (i, &(compressed, size, checksum)) in trailer.frames.iter().enumerate() {
        let entry = &table[8 + 12 * i..];
        assert_eq!(
            [le32(entry, 0), le32(entry, 4), le32(entry, 8)],
            [compressed, size, checksum]
        );
        at += compressed as usize;
        assert_eq!(le32(&archive, at - 4), checksum, "the frame's own checksum");
    }
}

#[test]
fn a_tar_cut_short_is_packed_as_it_is_its_last_member_ending_where_it_ends() {
    let tar = tar_of(&[("a", &[9; 3000])]);
    let cut = &tar[..2000];
    let (archive, trailer) = packed(cut);
    assert_eq!(frame_contents(&archive, &trailer).concat(), cut);
    assert_eq!(trailer.members[0].path, "a");
}

#[test]
fn what_is_not_a_tar_header_is_refused_with_its_offset() {
    let mut tar = tar_of(&[("a", b"x"), ("b", b"y")]);
    tar[1024 + 148] ^= 1;
    let mut out = Vec::new();
    let settings = Settings {
        level: 3,
        threads: 1,
    };
    let e = pack(&tar[..], &mut out, settings, CHUNK, Path::new("out")).unwrap_err();
    assert!(matches!(e, PackError::NotATar { offset: 1024 }), "{e}");
}
