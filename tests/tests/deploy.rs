//! The deployment files that no other test runs: the Kubernetes manifests of
//! `deploy/k8s` (validated offline by `scripts/validate-k8s.sh`) and `deploy/Dockerfile`,
//! which cannot be built here (no registry) but must make the image that
//! `deploy/build-image.sh` makes offline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every manifest validates strictly against the Kubernetes schemas, every file is in
/// its kustomization, and the nodes file names the StatefulSet's pods (see
/// `scripts/validate_k8s.py`). Skipped (and passing) where kubernetes-validate cannot
/// be installed, except in CI, where it must be.
#[test]
fn k8s_manifests_are_valid_and_agree() {
    let out = Command::new("bash")
        .arg(workspace().join("scripts/validate-k8s.sh"))
        .output()
        .expect("run scripts/validate-k8s.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{text}");
    if out.status.code() == Some(2) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to validate the Kubernetes manifests:\n{text}"
        );
        eprintln!("skipping: kubernetes-validate is not available");
        return;
    }
    assert!(
        out.status.success(),
        "deploy/k8s is not valid ({}):\n{text}",
        out.status
    );
}

/// The instructions that make an image's configuration: ENV (one entry per variable),
/// WORKDIR, EXPOSE, CMD, ENTRYPOINT, USER, VOLUME, STOPSIGNAL, each with its argument.
fn image_config<'a>(instructions: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    let mut config = BTreeMap::new();
    for line in instructions {
        let (op, arg) = line
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((line, ""));
        let op = op.to_ascii_uppercase();
        let arg = arg.trim();
        match op.as_str() {
            "ENV" => {
                for pair in arg.split_whitespace() {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("ENV {pair}: not KEY=VALUE"));
                    config.insert(format!("ENV {k}"), v.to_string());
                }
            }
            "WORKDIR" | "EXPOSE" | "ENTRYPOINT" | "CMD" | "USER" | "VOLUME" | "STOPSIGNAL" => {
                let normal: String = arg.split_whitespace().collect::<Vec<_>>().join(" ");
                config.insert(op, normal);
            }
            _ => {}
        }
    }
    config
}

/// The Dockerfile's instructions, continuation lines joined and comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// `deploy/Dockerfile`'s final stage has the offline image's configuration (ENV,
/// WORKDIR, EXPOSE, CMD, no ENTRYPOINT or USER), the same binaries in /usr/bin and the
/// same ctdb directories: the two images cannot drift apart silently.
#[test]
fn dockerfile_makes_the_offline_image() {
    let script = read("deploy/build-image.sh");
    let dockerfile = read("deploy/Dockerfile");

    // build-image.sh: `docker import --change 'INSTRUCTION'`, its label aside.
    let changes: Vec<&str> = script
        .lines()
        .filter_map(|l| {
            let quoted = l.split_once("--change ")?.1;
            let quote = quoted.chars().next()?;
            quoted[1..].split_once(quote).map(|(c, _)| c)
        })
        .filter(|c| !c.starts_with("LABEL"))
        .collect();
    let offline = image_config(changes.iter().copied());
    assert!(
        offline.contains_key("CMD") && offline.contains_key("ENV CTDB_BASE"),
        "build-image.sh's --change lines were not found: {offline:?}"
    );

    let instructions = dockerfile_instructions(&dockerfile);
    let last_from = instructions
        .iter()
        .rposition(|i| i.to_ascii_uppercase().starts_with("FROM "))
        .expect("a FROM in deploy/Dockerfile");
    let final_stage = &instructions[last_from + 1..];
    let built = image_config(final_stage.iter().map(String::as_str));
    assert_eq!(
        built, offline,
        "deploy/Dockerfile's image configuration differs from deploy/build-image.sh's"
    );

    // The binaries: build-image.sh's list, all copied to /usr/bin.
    let binaries: Vec<&str> = script
        .lines()
        .find_map(|l| l.strip_prefix("binaries=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("binaries=\"...\" in build-image.sh")
        .split_whitespace()
        .collect();
    let copy = final_stage
        .iter()
        .find(|i| i.starts_with("COPY --from="))
        .expect("COPY --from=build in the final stage");
    let mut copied: Vec<&str> = copy.split_whitespace().skip(2).collect();
    assert_eq!(copied.pop(), Some("/usr/bin/"), "{copy}");
    let mut copied: Vec<&str> = copied
        .iter()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .collect();
    copied.sort_unstable();
    let mut want = binaries.clone();
    want.sort_unstable();
    assert_eq!(copied, want, "binaries of the two images");

    // The ctdb directories build-image.sh makes exist in the Dockerfile's image too.
    let dirs = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("mkdir -p \"$root\"/{"))
        .and_then(|l| l.split_once('}'))
        .map(|(d, _)| d)
        .expect("mkdir -p \"$root\"/{...} in build-image.sh");
    let run = final_stage
        .iter()
        .filter(|i| i.starts_with("RUN "))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    for dir in dirs.split(',').filter(|d| d.contains("ctdb")) {
        assert!(
            run.split_whitespace().any(|w| w == format!("/{dir}")),
            "/{dir} of the offline image is not made in deploy/Dockerfile's final stage"
        );
    }
    // And with the same modes and owners.
    for line in script.lines() {
        let mut words = line.split_whitespace();
        let (Some("chmod"), Some(mode)) = (words.next(), words.next()) else {
            continue;
        };
        for path in words {
            let path = path.trim_matches('"').trim_start_matches("$root");
            let chmod = format!("chmod {mode} ");
            assert!(
                run.split("&&")
                    .map(str::trim)
                    .any(|c| c.starts_with(&chmod) && c.split_whitespace().any(|w| w == path)),
                "{path} is {mode} in the offline image, not in deploy/Dockerfile's final stage"
            );
        }
    }
    let owned = script
        .lines()
        .find(|l| l.contains("--owner=65534"))
        .expect("build-image.sh gives the node's directories to nobody");
    let next = script
        .lines()
        .skip_while(|l| !l.contains("--owner=65534"))
        .nth(1)
        .unwrap_or_default();
    for path in format!("{owned} {next}")
        .split_whitespace()
        .filter(|w| w.starts_with("./"))
    {
        let path = path.trim_start_matches('.');
        assert!(
            run.split("&&")
                .map(str::trim)
                .any(|c| c.starts_with("chown 65534:65534 ")
                    && c.split_whitespace().any(|w| w == path)),
            "{path} belongs to nobody in the offline image, not in deploy/Dockerfile's"
        );
    }
}
