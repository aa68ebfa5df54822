//! The documentation stays true: every `examples/*.yaml` compiles with no error and no warning,
//! and so does every ```` ```yaml ```` block of `docs/*.md` and `README.md`. A block that is only
//! part of a configuration is marked ```` ```yaml fragment ```` and skipped.

use std::path::{Path, PathBuf};

use sluice_config::load::{load_path, load_str};
use sluice_config::{compile, CompileOptions, Diagnostics};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Compiles loaded objects; returns a failure report when there is any error or warning.
fn check(name: &str, set: sluice_config::objects::ObjectSet, diags: Diagnostics) -> Option<String> {
    let (errors, warnings) = match compile(&set, diags, &CompileOptions::default()) {
        Ok(snapshot) => (Vec::new(), snapshot.warnings),
        Err(rejected) => (rejected.diagnostics.errors, rejected.diagnostics.warnings),
    };
    if errors.is_empty() && warnings.is_empty() {
        return None;
    }
    let mut report = format!(
        "{name}: {} error(s), {} warning(s)",
        errors.len(),
        warnings.len()
    );
    for e in &errors {
        report.push_str(&format!("\n    error: {e}"));
    }
    for w in &warnings {
        report.push_str(&format!("\n    warning: {w}"));
    }
    Some(report)
}

fn files_with_extension(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| extensions.contains(&e))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_compiles_without_errors_or_warnings() {
    let examples = files_with_extension(&repo_root().join("examples"), &["yaml", "yml"]);
    assert!(!examples.is_empty(), "no examples/*.yaml found");
    let failures: Vec<String> = examples
        .iter()
        .filter_map(|path| {
            let (set, diags) = load_path(path);
            check(&path.display().to_string(), set, diags)
        })
        .collect();
    assert!(
        failures.is_empty(),
        "examples that do not compile cleanly:\n  {}",
        failures.join("\n  ")
    );
}

/// One fenced YAML block of a Markdown file.
#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    fragment: bool,
    text: String,
}

/// Fenced code blocks whose info string starts with `yaml` or `yml`. Handles fences of three or
/// more backticks and indented fences (inside list items).
fn yaml_blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let ticks = trimmed.bytes().take_while(|b| *b == b'`').count();
        if ticks < 3 {
            continue;
        }
        let info: Vec<&str> = trimmed[ticks..].split_whitespace().collect();
        let is_yaml = matches!(info.first(), Some(&"yaml") | Some(&"yml"));
        let mut text = String::new();
        let mut closed = false;
        for (_, body) in lines.by_ref() {
            let t = body.trim_start();
            let closing = t.bytes().take_while(|b| *b == b'`').count();
            if closing >= ticks && t[closing..].trim().is_empty() {
                closed = true;
                break;
            }
            // Remove the fence's indentation, as Markdown does.
            let strip = body.bytes().take(indent).take_while(|b| *b == b' ').count();
            text.push_str(&body[strip..]);
            text.push('\n');
        }
        if !closed {
            return Err(format!("line {}: code block is never closed", i + 1));
        }
        if is_yaml {
            blocks.push(Block {
                line: i + 1,
                fragment: info[1..].contains(&"fragment"),
                text,
            });
        }
    }
    Ok(blocks)
}

#[test]
fn every_yaml_block_in_the_docs_compiles() {
    let root = repo_root();
    let mut sources = files_with_extension(&root.join("docs"), &["md"]);
    assert!(!sources.is_empty(), "no docs/*.md found");
    let readme = root.join("README.md");
    if readme.is_file() {
        sources.push(readme);
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in &sources {
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        let markdown = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let blocks = match yaml_blocks(&markdown) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{shown}: {e}"));
                continue;
            }
        };
        for block in blocks.iter().filter(|b| !b.fragment) {
            checked += 1;
            let name = format!("{shown}:{}", block.line);
            let (set, diags) = load_str(&name, &block.text);
            if let Some(report) = check(&name, set, diags) {
                failures.push(format!(
                    "{report}\n    (a block that is only part of a configuration must be marked ```yaml fragment)"
                ));
            }
        }
    }
    assert!(checked > 0, "no complete ```yaml blocks found in the docs");
    assert!(
        failures.is_empty(),
        "YAML blocks in the docs that do not compile cleanly:\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn markdown_fences_are_found() {
    let md = "text\n```yaml\na: 1\n```\n\n  ```yaml fragment\n  b: 2\n  ```\n````md\n```yaml\nnot: a block\n```\n````\n```sh\nls\n```\n";
    let blocks = yaml_blocks(md).unwrap();
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert_eq!((blocks[0].line, blocks[0].fragment), (2, false));
    assert_eq!(blocks[0].text, "a: 1\n");
    assert_eq!((blocks[1].line, blocks[1].fragment), (6, true));
    assert_eq!(blocks[1].text, "b: 2\n");
    assert!(yaml_blocks("```yaml\na: 1\n").is_err());
}
