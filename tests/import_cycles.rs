//! The layers of src/ hold: every module's `crate::` paths (in `use` lines and in code,
//! grouped `crate::x::{a, b::{c, self}}` included) name the modules it depends on; a module
//! imports only from its own folder or from the folders below its own in [`LAYERS`] (lib.rs
//! says what each holds), and following the imports never leads back. Run alone by `make test`
//! before the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// src/'s top folders, top to bottom. Commands import no other command.
const LAYERS: &[&str] = &[
    "commands", "cli", "plan", "state", "report", "rewrite", "engine", "image", "decode", "input",
];

/// Every module under src/, by path (`engine::store::docker`), with its source.
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, String>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(name);
            modules(&path, &inner, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = match name.as_str() {
                // The binary and the crate root sit above every module.
                "main" | "lib" if prefix.is_empty() => continue,
                "mod" => prefix.to_vec(),
                _ => {
                    let mut m = prefix.to_vec();
                    m.push(name);
                    m
                }
            };
            out.insert(module, fs::read_to_string(&path).unwrap());
        }
    }
}

/// The source without comments, so that a doc line naming `crate::x` is no dependency.
fn code(source: &str) -> String {
    source
        .lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a `crate::` tree names, from just after `crate::`.
fn paths(text: &str) -> Vec<Vec<String>> {
    fn tree(chars: &[char], at: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let skip = |at: &mut usize| {
            while *at < chars.len() && chars[*at].is_whitespace() {
                *at += 1;
            }
        };
        skip(at);
        if chars.get(*at) == Some(&'{') {
            *at += 1;
            loop {
                skip(at);
                match chars.get(*at) {
                    Some('}') | None => {
                        *at += 1;
                        return;
                    }
                    Some(',') => *at += 1,
                    _ => tree(chars, at, prefix.clone(), out),
                }
            }
        }
        let start = *at;
        while *at < chars.len() && (chars[*at].is_alphanumeric() || chars[*at] == '_') {
            *at += 1;
        }
        let ident: String = chars[start..*at].iter().collect();
        if ident.is_empty() {
            // `*`: the prefix itself.
            *at += usize::from(chars.get(*at) == Some(&'*'));
            out.push(prefix);
            return;
        }
        let mut path = prefix;
        if ident != "self" {
            path.push(ident);
        }
        skip(at);
        // `Kind as K`: the alias is no path.
        if chars[*at..].starts_with(&['a', 's'])
            && chars.get(*at + 2).is_some_and(|c| c.is_whitespace())
        {
            *at += 2;
            skip(at);
            while *at < chars.len() && (chars[*at].is_alphanumeric() || chars[*at] == '_') {
                *at += 1;
            }
            skip(at);
        }
        if chars[*at..].starts_with(&[':', ':']) {
            *at += 2;
            tree(chars, at, path, out);
        } else {
            out.push(path);
        }
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    tree(&chars, &mut 0, Vec::new(), &mut out);
    out
}

/// The modules `source` depends on: each path's longest prefix that is a module.
fn dependencies(
    module: &[String],
    source: &str,
    known: &BTreeSet<Vec<String>>,
) -> BTreeSet<Vec<String>> {
    let code = code(source);
    let mut deps = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `container_loader::` or `$crate::` is not this crate's own path.
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        for path in paths(&code[i + "crate::".len()..]) {
            let found = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| known.contains(p));
            if let Some(dep) = found.filter(|d| d != module) {
                deps.insert(dep);
            }
        }
    }
    deps
}

/// A circle in `graph`, as the modules along it, if there is one.
fn circle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        done: &mut BTreeSet<Vec<String>>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut names: Vec<String> = stack[at..].iter().map(|m| m.join("::")).collect();
            names.push(node.join("::"));
            return Some(names);
        }
        if !done.insert(node.clone()) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, done, stack) {
                return Some(found);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

/// Every module under src/ with the modules it imports.
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut sources = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut sources,
    );
    assert!(sources.len() > 10, "src/ has {} modules", sources.len());
    let known: BTreeSet<Vec<String>> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(m, s)| (m.clone(), dependencies(m, s, &known)))
        .collect()
}

/// Where `module` stands in [`LAYERS`]; a module outside every layer fails the test.
fn layer(module: &[String]) -> usize {
    LAYERS
        .iter()
        .position(|l| module[0] == *l)
        .unwrap_or_else(|| panic!("src/{} is in none of the layers", module.join("/")))
}

/// The imports that break the layer rule, as `from -> to` lines.
fn against_the_layers(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (from, deps) in graph {
        for to in deps {
            let (a, b) = (layer(from), layer(to));
            // A command is its own folder or file under commands/: sharing code between two
            // of them would make one a layer under the other.
            let other_command = a == 0 && b == 0 && from.get(1) != to.get(1) && to.len() > 1;
            if b < a || other_command {
                wrong.push(format!("{} -> {}", from.join("::"), to.join("::")));
            }
        }
    }
    wrong
}

#[test]
fn each_layer_imports_only_the_layers_below_it() {
    let wrong = against_the_layers(&graph());
    assert!(
        wrong.is_empty(),
        "imports against the layers of lib.rs:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_module_imports_itself_back() {
    if let Some(found) = circle(&graph()) {
        panic!("an import circle in src/: {}", found.join(" -> "));
    }
}

#[test]
fn grouped_and_nested_paths_are_read() {
    let names = |text: &str| -> Vec<String> { paths(text).iter().map(|p| p.join("::")).collect() };
    assert_eq!(names("a::B;"), ["a::B"]);
    assert_eq!(
        names("a::{self, b::{C, d::E}, F};"),
        ["a", "a::b::C", "a::b::d::E", "a::F"]
    );
    assert_eq!(names("engine::{Kind as K, *};"), ["engine::Kind", "engine"]);
    let known: BTreeSet<Vec<String>> = [vec!["a".into()], vec!["a".into(), "b".into()]].into();
    let deps = dependencies(
        &["z".into()],
        "use crate::a::b::X;\n// crate::q\nlet x = crate::a::Y;",
        &known,
    );
    assert_eq!(deps.len(), 2);
    let graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = [
        (vec!["a".into()], [vec!["b".into()]].into()),
        (vec!["b".into()], [vec!["a".into()]].into()),
    ]
    .into();
    assert_eq!(circle(&graph).unwrap(), ["a", "b", "a"]);
}

#[test]
fn an_import_upwards_or_between_commands_is_reported() {
    let path = |p: &str| -> Vec<String> { p.split("::").map(String::from).collect() };
    let graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = [
        (path("input::list"), [path("engine")].into()),
        (
            path("commands::load"),
            [path("commands::status"), path("cli")].into(),
        ),
        (
            path("commands::load::names"),
            [path("commands::load")].into(),
        ),
    ]
    .into();
    assert_eq!(
        against_the_layers(&graph),
        [
            "commands::load -> commands::status",
            "input::list -> engine"
        ]
    );
}
