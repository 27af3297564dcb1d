//! CSAF advisories end to end: findings from a survey of a lab, one
//! advisory per vendor, each accepted by the reference validator
//! (@secvisogram/csaf-validator-lib from the npm registry: schema and every
//! mandatory test), and none carrying an address.

use std::process::{Command, Stdio};

mod common;
use common::{have, skip};

const CHECK: &str = r#"
import validate from '@secvisogram/csaf-validator-lib/validate.js'
import * as schema from '@secvisogram/csaf-validator-lib/schemaTests.js'
import * as mandatory from '@secvisogram/csaf-validator-lib/mandatoryTests.js'
import { readFileSync } from 'node:fs'
let bad = 0
for (const f of process.argv.slice(2)) {
  const doc = JSON.parse(readFileSync(f, 'utf8'))
  const r = await validate([...Object.values(schema), ...Object.values(mandatory)], doc)
  for (const t of r.tests) for (const e of t.errors) console.log(`${f}: ${t.name} ${e.instancePath}: ${e.message}`)
  console.log(`${f}: ${r.isValid ? 'valid' : 'INVALID'} after ${r.tests.length} tests`)
  if (!r.isValid) bad++
}
process.exit(bad ? 1 : 0)
"#;

#[test]
fn every_advisory_passes_the_reference_csaf_validator() {
    let lab = common::RunningLab::start("127.78.19.0/24", 20, 12);
    let dir = lab.dir.path();
    let db = dir.join("v.db");
    common::survey_lab_into(
        "127.78.19.0/24",
        "22,23,80,81,502,1883,2323,8080,8081",
        dir,
        &db,
    );
    let adv = dir.join("advisories");
    let out = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args([
            "advisories",
            "export",
            "--publisher",
            "Example CERT",
            "--namespace",
            "https://cert.example/",
        ])
        .arg("--db")
        .arg(&db)
        .arg("--out")
        .arg(&adv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&adv)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.contains("127.78."), "an address in {}", f.display());
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["document"]["csaf_version"], "2.0");
        assert!(!doc["vulnerabilities"].as_array().unwrap().is_empty());
    }

    for tool in ["node", "npm"] {
        if !have(tool) {
            return skip(&format!(
                "{tool} is not installed (the CSAF validator runs on Node)"
            ));
        }
    }
    let v = tempfile::tempdir().unwrap();
    let st = Command::new("npm")
        .args([
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "@secvisogram/csaf-validator-lib",
        ])
        .current_dir(v.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "npm install @secvisogram/csaf-validator-lib");
    std::fs::write(v.path().join("check.mjs"), CHECK).unwrap();
    let out = Command::new("node")
        .arg("check.mjs")
        .args(&files)
        .current_dir(v.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert_eq!(said.matches(": valid after").count(), files.len(), "{said}");
}
