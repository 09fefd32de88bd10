//! Layer-framed archives (`container-loader pack`) that are not what their seek table or their
//! member index says: the loader checks the table against the frames before it reads by it,
//! and never reads the index, so a damaged or foreign table or index costs a whole decode at
//! most, and never loads another image than the tar's. Each archive is an image on a base the
//! engine holds: the load is a delta one, which reads the archive by its table when that holds.

use crate::common::*;

on_every_engine! {
    a_packed_archive_whose_member_index_is_damaged_loads_its_image;
    a_packed_archive_whose_layer_frame_is_cut_short_loads_nothing;
    a_packed_archive_framed_for_another_tar_loads_its_own_image;
    a_packed_archive_whose_seek_table_lies_about_a_frame_loads_its_image;
    a_packed_archive_whose_seek_table_lists_another_checksum_loads_its_image;
    a_packed_archive_whose_sent_layer_frame_is_damaged_loads_nothing;
}

/// The list entry's archive name.
const NAME: &str = "app.tar.zst";

/// A base of two layers, which the engine holds.
fn held_base(engine: &Engine) -> Fixture {
    let base = Fixture::build(&["example.org/framed/base:1"], 2);
    engine.preload(&base);
    base
}

/// A base the engine holds, and an image tagged `reference` on it.
fn on_a_held_base(engine: &Engine, reference: &str) -> (Fixture, Fixture) {
    let base = held_base(engine);
    let app = Fixture::on_base(&base, reference, 1, 64 << 10);
    (base, app)
}

/// Loads `archive` as `NAME`, listed as `reference`, verbose.
fn load_archive(engine: &Engine, archive: &[u8], reference: &str) -> (Package, Output) {
    let pkg = Package::new();
    pkg.add_archive(NAME, archive);
    pkg.write_list(&[&format!("{NAME} {reference}")]);
    let out = load_package(engine, &pkg, &["--verbose"]);
    (pkg, out)
}

/// The run loaded `app` under its reference, with its id, leaving out the base's layers.
fn loaded(engine: &Engine, flavor: Flavor, app: &Fixture, out: &Output) {
    out.assert_code(0)
        .assert_summary("1 loaded, 0 present, 0 failed")
        .assert_stderr_contains("left out 2 layer files the engine holds");
    let id = engine.assert_has(&app.reference);
    assert_eq!(bare_id(&id), app.id_on(flavor));
}

/// The frame that ends `app`'s top layer file, the one layer the engine lacks.
fn top_layer_frame(app: &Fixture, framed: &Framed) -> usize {
    let top = app.layers.last().expect("a layer");
    framed.last_frame_of(&format!("{}/layer.tar", sha256_hex(top)))
}

/// The run said the archive's seek table is not used, with `why`, and decoded it whole.
fn table_not_used(out: &Output, why: &str) {
    out.assert_stderr_contains(&format!("{NAME}: its seek table is not used: {why}"))
        .assert_stderr_contains("; decoding it whole");
}

/// Every member's offsets and frames point into the middle of the next member: an index
/// that, read, would put each file's header inside another file's data.
fn a_packed_archive_whose_member_index_is_damaged_loads_its_image(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (_, app) = on_a_held_base(&engine, "example.org/framed/index:1");
    let mut framed = Framed::parse(&packed(&app.tar));
    let members = framed.members();
    let misplaced: Vec<serde_json::Value> = (0..members.len())
        .map(|i| {
            let (mut m, next) = (members[i].clone(), &members[(i + 1) % members.len()]);
            let middle = next["data"].as_u64().unwrap() + next["size"].as_u64().unwrap() / 2;
            m["header"] = middle.into();
            m["data"] = (middle + 512).into();
            m["frame"] = next["frame"].clone();
            m
        })
        .collect();
    framed.index = serde_json::json!({"version": 1, "members": misplaced})
        .to_string()
        .into_bytes();

    let (_, out) = load_archive(&engine, &framed.to_bytes(), &app.reference);

    loaded(&engine, flavor, &app, &out);
    assert!(!out.stderr.contains("seek table"), "{}", out.stderr);
}

/// Bytes taken out of a base layer's frame, which a trusted table would have stepped over:
/// the table no longer adds up to the file, and the whole decode finds the frame broken.
fn a_packed_archive_whose_layer_frame_is_cut_short_loads_nothing(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, app) = on_a_held_base(&engine, "example.org/framed/cut:1");
    let mut framed = Framed::parse(&packed(&app.tar));
    let base_layer = format!("{}/layer.tar", sha256_hex(&base.layers[0]));
    let frame = framed.frame(framed.last_frame_of(&base_layer));
    let middle = (frame.start + frame.end) / 2;
    framed.data.drain(middle..middle + 64);
    let before = engine.list_images();

    let (pkg, out) = load_archive(&engine, &framed.to_bytes(), &app.reference);

    table_not_used(&out, "");
    out.assert_code(1).assert_entry(
        &pkg.list,
        1,
        &[&format!("failed: {NAME}: corrupt"), "nothing was loaded"],
    );
    engine.assert_has_not(&app.reference);
    assert_eq!(engine.list_images(), before);
}

/// Archive B's frames under archive A's index and seek table, two images of the same shape:
/// the table does not match B's frames, and B is what loads.
fn a_packed_archive_framed_for_another_tar_loads_its_own_image(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (base, a) = on_a_held_base(&engine, "example.org/framed/a:1");
    let b = Fixture::on_base(&base, "example.org/framed/b:1", 1, 64 << 10);
    let (a_framed, mut b_framed) = (
        Framed::parse(&packed(&a.tar)),
        Framed::parse(&packed(&b.tar)),
    );
    assert_eq!(
        a_framed.table.len(),
        b_framed.table.len(),
        "fixture error: shapes differ"
    );
    b_framed.index = a_framed.index;
    b_framed.table = a_framed.table;

    let (_, out) = load_archive(&engine, &b_framed.to_bytes(), &b.reference);

    table_not_used(&out, "");
    loaded(&engine, flavor, &b, &out);
    engine.assert_has_not(&a.reference);
}

/// The table gives the image's own layer frame 512 more bytes of content than its header
/// records.
fn a_packed_archive_whose_seek_table_lies_about_a_frame_loads_its_image(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (_, app) = on_a_held_base(&engine, "example.org/framed/table:1");
    let mut framed = Framed::parse(&packed(&app.tar));
    let k = top_layer_frame(&app, &framed);
    framed.table[k][1] += 512;

    let (_, out) = load_archive(&engine, &framed.to_bytes(), &app.reference);

    table_not_used(&out, &format!("frame {k} records"));
    loaded(&engine, flavor, &app, &out);
}

/// The table lists another checksum for the image's own layer frame than the frame ends with.
fn a_packed_archive_whose_seek_table_lists_another_checksum_loads_its_image(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let (_, app) = on_a_held_base(&engine, "example.org/framed/checksum:1");
    let mut framed = Framed::parse(&packed(&app.tar));
    let k = top_layer_frame(&app, &framed);
    framed.table[k][2] ^= 1;

    let (_, out) = load_archive(&engine, &framed.to_bytes(), &app.reference);

    table_not_used(&out, &format!("frame {k} ends with another checksum"));
    loaded(&engine, flavor, &app, &out);
}

/// A byte flipped in the last block of the frame of the layer the engine lacks (512 KiB of
/// text: several blocks), the table left as it is: the table holds, the first pass reads the
/// layer file's header in the frame's first block, and the upload, which reads the frame by
/// the table, finds it fails zstd's own checks.
fn a_packed_archive_whose_sent_layer_frame_is_damaged_loads_nothing(flavor: Flavor) {
    let engine = Engine::start(flavor);
    let app = Fixture::on_base(
        &held_base(&engine),
        "example.org/framed/sent:1",
        1,
        512 << 10,
    );
    let mut framed = Framed::parse(&packed(&app.tar));
    let last_block = framed.frame(top_layer_frame(&app, &framed)).end - 64;
    flip(&mut framed.data, last_block);
    let before = engine.list_images();

    let (pkg, out) = load_archive(&engine, &framed.to_bytes(), &app.reference);
    out.assert_code(1).assert_entry(
        &pkg.list,
        1,
        &[&format!("failed: {NAME}: corrupt"), "nothing was loaded"],
    );
    assert!(!out.stderr.contains("seek table"), "{}", out.stderr);
    engine.assert_has_not(&app.reference);
    assert_eq!(engine.list_images(), before);
}
