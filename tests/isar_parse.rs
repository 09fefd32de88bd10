//! Adding the layer never breaks a parse, and unchanged recipes get its classes: upstream
//! Isar's own bitbake over Isar's default multiconfigs (meta-isar's local.conf.sample, as a new
//! user has it), with a user's layer of upstream-style recipes (tests/isar/layer) and this
//! layer first, last or absent in BBLAYERS, on a clean checkout and once `make deb` has left
//! the .debs in it.
//!
//! Ignored by default (each parse takes minutes): `make isar-parse-test` runs them. Each layer
//! position is one site, parsed once per run whichever test asks first: a clean parse, the
//! loader's recipe asked for, then the .debs added, the same questions asked again, and the
//! loader's recipe built for each architecture it has a package for (9 quick tasks each: no
//! bootstrap, the .deb goes into isar-apt as it is).

// This binary uses part of the harness; the engine suites (tests/engines/) use all of it.
#[allow(dead_code)]
mod common;
mod device;
mod isar;

use std::collections::HashMap;
use std::sync::Mutex;

use isar::{Bitbake, LocalConf, Site};

/// The multiconfig the upstream recipes are asked about: Isar's qemuamd64 on Debian 12.
const AMD64: &str = "mc:qemuamd64-bookworm";
/// A default multiconfig whose architecture has no loader build.
const I386: &str = "mc:qemui386-bookworm";
/// Multiconfigs of the architectures the loader is built for.
const BUILT_FOR: [(&str, &str); 3] = [
    ("mc:qemuamd64-trixie", "amd64"),
    ("mc:qemuarm64-bookworm", "arm64"),
    ("mc:qemuarm-bookworm", "armhf"),
];
/// Recipes of Isar's meta-isar, unchanged: `inherit docker-loader` / `inherit podman-loader`.
const ISAR_DOCKER_RECIPE: &str = "prebuilt-docker-img";
const ISAR_PODMAN_RECIPE: &str = "prebuilt-podman-img";
/// The tests' recipe that still requires Isar's transitional include.
const LEGACY_RECIPE: &str = "isar-test-legacy-images";
/// The tests' recipe that opts into layer-framed archives (CONTAINER_LOADER_PACK = "1").
const PACKED_RECIPE: &str = "isar-test-packed-images";
/// Where the classes look for the host's container-loader with pack (`make pack-tool`), as the
/// class writes it: dist/ beside the layer.
const PACK_TOOL: &str = "/container-loader/isar/../dist/container-loader-pack";
const LOADER_RECIPE: &str = "container-loader";
/// Each site's build directory, and where Isar's deploy step puts the packages in it.
const BUILD_DIR: &str = "build";
const ISAR_APT: &str = "tmp/deploy/isar-apt";

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Position {
    First,
    Last,
    Absent,
}

/// What one site answered: the parses and `bitbake -e` runs the tests look at.
struct Answers {
    clean_parse: Bitbake,
    clean_loader: Bitbake,
    debs_parse: Bitbake,
    debs_loader: HashMap<&'static str, Bitbake>,
    /// `bitbake` of the loader's recipe for every architecture with a .deb: with the layer last
    /// only, a build being minutes where a question is seconds.
    debs_build: Option<Bitbake>,
    i386_loader: Bitbake,
    upstream: HashMap<&'static str, Bitbake>,
}

/// The site of `position`, parsed (once per run) and asked every question.
fn answers(position: Position) -> &'static Answers {
    static SITES: Mutex<Vec<(Position, &'static Answers)>> = Mutex::new(Vec::new());
    let mut sites = SITES
        .lock()
        .unwrap_or_else(|_| panic!("an earlier parse failed: see its test"));
    if let Some((_, a)) = sites.iter().find(|(p, _)| *p == position) {
        return a;
    }
    let answers: &'static Answers = Box::leak(Box::new(ask(position)));
    sites.push((position, answers));
    answers
}

fn ask(position: Position) -> Answers {
    let site = Site::fresh(&format!("parse-{position:?}").to_lowercase());
    let mut layers = site.isar_layers();
    layers.push(site.test_layer());
    match position {
        Position::First => layers.insert(0, site.layer()),
        Position::Last => layers.push(site.layer()),
        Position::Absent => {}
    }
    let build = site.build_dir(BUILD_DIR, &layers, LocalConf::Sample);
    let loader = |mc: &str| build.bitbake(&["-e", &format!("{mc}:{LOADER_RECIPE}")]);

    let clean_parse = build.bitbake(&["-p"]);
    let clean_loader = loader(AMD64);
    site.add_debs();
    let debs_parse = build.bitbake(&["-p"]);
    let debs_loader = BUILT_FOR.iter().map(|(mc, _)| (*mc, loader(mc))).collect();
    let debs_build = (position == Position::Last).then(|| {
        let targets: Vec<String> = BUILT_FOR
            .iter()
            .map(|(mc, _)| format!("{mc}:{LOADER_RECIPE}"))
            .collect();
        build.bitbake(&targets.iter().map(String::as_str).collect::<Vec<_>>())
    });
    let i386_loader = loader(I386);
    let upstream = [
        ISAR_DOCKER_RECIPE,
        ISAR_PODMAN_RECIPE,
        LEGACY_RECIPE,
        PACKED_RECIPE,
    ]
    .into_iter()
    .map(|r| (r, build.bitbake(&["-e", &format!("{AMD64}:{r}")])))
    .collect();
    Answers {
        clean_parse,
        clean_loader,
        debs_parse,
        debs_loader,
        debs_build,
        i386_loader,
        upstream,
    }
}

/// The files bitbake read for a recipe: `bitbake -e`'s BBINCLUDED, which also lists the paths
/// it looked for and did not find.
fn files_read(run: &Bitbake) -> Vec<String> {
    run.var_ok("BBINCLUDED")
        .split_whitespace()
        .filter(|f| std::path::Path::new(f).is_file())
        .map(str::to_string)
        .collect()
}

/// The class files bitbake read for a recipe.
fn classes_read(run: &Bitbake) -> Vec<String> {
    files_read(run)
        .into_iter()
        .filter(|f| f.ends_with(".bbclass"))
        .collect()
}

/// Asserts that `class` was read from this layer's classes-recipe/ and from nowhere else.
fn assert_class_from_layer(run: &Bitbake, class: &str) {
    let file = format!("/classes-recipe/{class}.bbclass");
    let read: Vec<String> = classes_read(run)
        .into_iter()
        .filter(|f| f.ends_with(&file))
        .collect();
    assert_eq!(read.len(), 1, "{class}: {read:?}");
    assert!(
        read[0].contains("/container-loader/isar/"),
        "{class} read from {} instead of this layer",
        read[0]
    );
}

// ---------------------------------------------------------------------------------------
// Parses
// ---------------------------------------------------------------------------------------

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn isar_alone_parses_its_default_multiconfigs_without_a_warning() {
    let summary = answers(Position::Absent).clean_parse.assert_clean_parse();
    eprintln!("layer absent: {summary}");
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn the_layer_last_parses_on_a_clean_checkout_without_a_warning() {
    let summary = answers(Position::Last).clean_parse.assert_clean_parse();
    eprintln!("layer last, clean checkout: {summary}");
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn the_layer_first_parses_on_a_clean_checkout_without_a_warning() {
    let summary = answers(Position::First).clean_parse.assert_clean_parse();
    eprintln!("layer first, clean checkout: {summary}");
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn the_layer_last_parses_with_the_debs_without_a_warning() {
    let summary = answers(Position::Last).debs_parse.assert_clean_parse();
    eprintln!("layer last, with the .debs: {summary}");
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn the_layer_first_parses_with_the_debs_without_a_warning() {
    let summary = answers(Position::First).debs_parse.assert_clean_parse();
    eprintln!("layer first, with the .debs: {summary}");
}

// ---------------------------------------------------------------------------------------
// The loader's own recipe
// ---------------------------------------------------------------------------------------

/// The skip reasons bitbake printed for the loader's recipe (`container-loader was skipped: R`).
/// bitbake may print another multiconfig's reason than the one asked about: the reason is the
/// same sentence in each, naming its own architecture's package.
fn skip_reasons(run: &Bitbake) -> Vec<&str> {
    run.text
        .lines()
        .filter_map(|l| l.strip_prefix("container-loader was skipped: "))
        .collect()
}

/// The architecture a skip reason names: `no container-loader_0.1.0-1_ARCH.deb in ...`.
fn skipped_arch(reason: &str) -> &str {
    reason
        .strip_prefix("no container-loader_0.1.0-1_")
        .and_then(|r| r.split_once(".deb in "))
        .map(|(arch, _)| arch)
        .unwrap_or_else(|| panic!("not a missing .deb: {reason}"))
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn without_a_deb_the_loaders_recipe_skips_itself_and_says_to_run_make_deb() {
    for position in [Position::First, Position::Last] {
        let run = &answers(position).clean_loader;
        assert_ne!(run.code, 0, "{run:?}");
        let reasons = skip_reasons(run);
        assert!(!reasons.is_empty(), "{position:?}: {run:?}");
        for reason in reasons {
            skipped_arch(reason);
            assert!(
                reason.contains(
                    ": run `make deb` in container-loader's repository (it builds the \
                                 amd64, arm64 and armhf packages; no other architecture has one), \
                                 or set CONTAINER_LOADER_DEB_DIR"
                ),
                "{position:?}: {reason}"
            );
        }
    }
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn once_make_deb_has_run_the_loaders_recipe_takes_the_deb_of_each_built_architecture() {
    for position in [Position::First, Position::Last] {
        for (mc, arch) in BUILT_FOR {
            let run = &answers(position).debs_loader[mc];
            assert_eq!(run.code, 0, "{position:?} {mc}: {run:?}");
            let src_uri = run.var_ok("SRC_URI");
            assert!(
                src_uri.contains(&format!("file://container-loader_0.1.0-1_{arch}.deb")),
                "{position:?} {mc}: SRC_URI={src_uri}"
            );
        }
    }
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn the_loaders_recipe_puts_make_debs_package_into_isar_apt_for_each_built_architecture() {
    let run = answers(Position::Last).debs_build.as_ref().unwrap();
    assert_eq!(run.code, 0, "{run:?}");
    let site = isar::site_dir(&format!("parse-{:?}", Position::Last).to_lowercase());
    for (_, arch) in BUILT_FOR {
        let name = format!("{LOADER_RECIPE}_0.1.0-1_{arch}.deb");
        let found = device::run_ok(
            std::process::Command::new("find")
                .arg(site.join(BUILD_DIR).join(ISAR_APT))
                .args(["-name", &name]),
        );
        let deployed: Vec<&str> = found.lines().collect();
        assert_eq!(deployed.len(), 1, "{name}: {deployed:?}");
        let made = isar::project("dist/deb").join(&name);
        assert!(
            std::fs::read(deployed[0]).unwrap() == std::fs::read(&made).unwrap(),
            "{}: not the bytes of {}",
            deployed[0],
            made.display()
        );
    }
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn with_the_debs_only_architectures_without_a_build_are_skipped() {
    let run = &answers(Position::Last).i386_loader;
    assert_ne!(run.code, 0, "{run:?}");
    let reasons = skip_reasons(run);
    assert!(!reasons.is_empty(), "{run:?}");
    for reason in reasons {
        let arch = skipped_arch(reason);
        assert!(
            !BUILT_FOR.iter().any(|(_, built)| *built == arch),
            "{arch} has a .deb: {reason}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Upstream recipes, unchanged
// ---------------------------------------------------------------------------------------

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn an_unchanged_docker_recipe_gets_this_layers_classes_wherever_the_layer_stands() {
    for position in [Position::First, Position::Last] {
        let run = &answers(position).upstream[ISAR_DOCKER_RECIPE];
        assert_eq!(run.code, 0, "{run:?}");
        assert_class_from_layer(run, "docker-loader");
        assert_class_from_layer(run, "container-loader");
    }
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn an_unchanged_podman_recipe_gets_this_layers_classes_wherever_the_layer_stands() {
    for position in [Position::First, Position::Last] {
        let run = &answers(position).upstream[ISAR_PODMAN_RECIPE];
        assert_eq!(run.code, 0, "{run:?}");
        assert_class_from_layer(run, "podman-loader");
        assert_class_from_layer(run, "container-loader");
    }
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn an_unchanged_recipe_depends_on_the_engine_and_the_loader_instead_of_zstd() {
    for position in [Position::First, Position::Last] {
        let a = answers(position);
        for (recipe, expected) in [
            (ISAR_DOCKER_RECIPE, "docker.io, apparmor, container-loader"),
            (ISAR_PODMAN_RECIPE, "podman, container-loader"),
        ] {
            let depends = a.upstream[recipe].var_ok("DEBIAN_DEPENDS");
            let items: Vec<&str> = depends
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            assert_eq!(items.join(", "), expected, "{position:?} {recipe}");
            assert_eq!(
                a.upstream[recipe].var_ok("DEPENDS").trim(),
                LOADER_RECIPE,
                "{position:?} {recipe}"
            );
        }
    }
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn an_unchanged_recipe_makes_its_unit_of_the_loaders_units() {
    for position in [Position::First, Position::Last] {
        for (recipe, engine, delete) in [
            (ISAR_DOCKER_RECIPE, "docker", "1"),
            (ISAR_PODMAN_RECIPE, "podman", "0"),
        ] {
            let run = &answers(position).upstream[recipe];
            let install = run
                .text
                .split("\ndo_install() {\n")
                .nth(1)
                .and_then(|body| body.split("\n}\n").next())
                .unwrap_or_else(|| panic!("{position:?} {recipe}: no do_install: {run:?}"));
            // sh .../image-package-steps.sh unit WORKDIR BPN ENGINE DELETE > WORKDIR/BPN.service
            let words: Vec<&str> = install.split_whitespace().filter(|w| *w != "\\").collect();
            let step = words
                .windows(6)
                .find(|w| w[0].ends_with("/image-package-steps.sh") && w[1] == "unit");
            assert!(
                step.is_some_and(|w| w[3..6] == [recipe, engine, delete]),
                "{position:?} {recipe}: do_install is\n{install}"
            );
        }
    }
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn an_unchanged_recipe_keeps_isars_package_settings() {
    for position in [Position::First, Position::Last] {
        let run = &answers(position).upstream[ISAR_DOCKER_RECIPE];
        for (name, value) in [
            ("DPKG_ARCH", "amd64"),
            ("DEBIAN_MULTI_ARCH", "allowed"),
            ("CONTAINER_ENGINE", "docker"),
            ("CONTAINER_DELETE_AFTER_LOAD", "1"),
            ("DOCKER_PKGS", "docker.io"),
        ] {
            assert_eq!(run.var_ok(name), value, "{position:?} {name}");
        }
    }
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn without_the_layer_an_unchanged_recipe_gets_isars_classes_and_zstd() {
    let run = &answers(Position::Absent).upstream[ISAR_DOCKER_RECIPE];
    assert_eq!(run.code, 0, "{run:?}");
    let isar_class = classes_read(run)
        .into_iter()
        .find(|f| f.ends_with("/classes-recipe/container-loader.bbclass"));
    assert!(
        isar_class
            .as_deref()
            .is_some_and(|f| f.contains("/isar/meta/")),
        "{isar_class:?}"
    );
    assert!(
        run.var_ok("DEBIAN_DEPENDS").contains("zstd"),
        "{}",
        run.var_ok("DEBIAN_DEPENDS")
    );
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn a_recipe_requiring_isars_transitional_include_gets_this_layers_class_and_the_warning() {
    for position in [Position::First, Position::Last] {
        let run = &answers(position).upstream[LEGACY_RECIPE];
        assert_eq!(run.code, 0, "{run:?}");
        assert_class_from_layer(run, "docker-loader");
        let included = run.var_ok("BBINCLUDED");
        assert!(
            included.split_whitespace().any(|f| f.ends_with(
                "/container-loader/isar/recipes-support/container-loader/docker-loader.inc"
            )),
            "{position:?}: the include read was not this layer's: {included}"
        );
        let warning = "bbwarn \"Please migrate from \\\"require \
                       recipes-support/container-loader/docker-loader.inc\\\" to \\\"inherit \
                       docker-loader\\\"\"";
        assert!(
            run.text.contains(warning),
            "{position:?}: no migration warning in do_warn_custom_inc"
        );
    }
}

/// The body of python function `name` as `bitbake -e` prints it (unexpanded).
fn python_function<'a>(run: &'a Bitbake, name: &str) -> &'a str {
    run.text
        .split(&format!("\npython {name} () {{\n"))
        .nth(1)
        .and_then(|body| body.split("\n}\n").next())
        .unwrap_or_else(|| panic!("no python {name}: {run:?}"))
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn a_recipe_opting_into_packing_runs_the_pack_step_with_the_tool_make_pack_tool_builds() {
    for position in [Position::First, Position::Last] {
        let run = &answers(position).upstream[PACKED_RECIPE];
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.var_ok("CONTAINER_LOADER_PACK"), "1", "{position:?}");
        let tool = run.var_ok("CONTAINER_LOADER_PACK_BIN");
        assert!(
            tool.ends_with(PACK_TOOL),
            "{position:?}: CONTAINER_LOADER_PACK_BIN is {tool}"
        );
        // [..., "pack", source, OUT, pack_bin]: the steps' pack step with that tool.
        let task = python_function(run, "do_install_fetched_containers");
        assert!(
            task.contains("\"pack\", source,") && task.contains(", pack_bin]"),
            "{position:?}: do_install_fetched_containers does not run the pack step:\n{task}"
        );
    }
}

#[test]
#[ignore = "parses Isar's default multiconfigs: make isar-parse-test"]
fn an_unchanged_recipe_does_not_pack() {
    for position in [Position::First, Position::Last] {
        let run = &answers(position).upstream[ISAR_DOCKER_RECIPE];
        assert_eq!(run.var_ok("CONTAINER_LOADER_PACK"), "0", "{position:?}");
    }
}
