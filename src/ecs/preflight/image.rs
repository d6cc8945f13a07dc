//! `image`: for each container whose image is in a private ECR registry
//! (`ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPO[:TAG][@sha256:…]`, also the FIPS and
//! dual-stack hosts), the repository exists and holds the tag or digest. Other registries
//! (Docker Hub, ECR Public, GHCR…) are information: existence not checked.
//!
//! The call is ECR DescribeImages with one image id: a metadata read. Not BatchGetImage,
//! which downloads the manifest and counts as a pull (it moves `lastRecordedPullTime`, which
//! lifecycle rules read). The registry id is always sent (cross-account images) and the
//! client is the image's region (cross-region images).
//!
//! A repository under a pull-through cache rule's prefix (`…/docker-hub/library/nginx:1.27`)
//! is created, and a tag fetched from upstream, on the first pull: when DescribeImages finds
//! no repository or no image there, the rule (DescribePullThroughCacheRules) makes it
//! information, not a failure.

use aws_sdk_ecr::types::ImageIdentifier;
use aws_sdk_ecs::types::TaskDefinition;
use serde_json::json;

use super::{call_error, clip, containers, unanswered, CallError, CheckName, Clients, Finding};

/// An image reference split for ECR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A private ECR registry: what DescribeImages needs.
    Ecr(EcrImage),
    /// Anywhere else; `registry` as written ("docker.io" when none is).
    Other { registry: String },
    /// Not a valid reference at all (would fail at pull).
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    pub registry_id: String,
    pub region: String,
    pub repository: String,
    /// The tag asked for (`latest` when neither tag nor digest is given).
    pub tag: Option<String>,
    /// When present, what is pulled (the tag is then ignored by the pull).
    pub digest: Option<String>,
}

impl EcrImage {
    /// "tag 2" or "digest sha256:…".
    pub fn wanted(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("digest {d}"),
            (None, Some(t)) => format!("tag {t}"),
            (None, None) => "tag latest".into(),
        }
    }
}

/// The registry id and region of an ECR registry host, or None for any other host.
/// `123456789012.dkr.ecr.us-east-1.amazonaws.com`, `….dkr.ecr-fips.us-gov-west-1.amazonaws.com`,
/// `….dkr.ecr.cn-north-1.amazonaws.com.cn`, `….dkr-ecr.eu-west-1.on.aws` (dual-stack).
pub fn ecr_registry(host: &str) -> Option<(String, String)> {
    let host = host.to_ascii_lowercase();
    let (account, rest) = host.split_once('.')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let region = ["dkr.ecr.", "dkr.ecr-fips.", "dkr-ecr.", "dkr-ecr-fips."]
        .iter()
        .find_map(|p| rest.strip_prefix(p))
        .and_then(|r| {
            [".amazonaws.com", ".amazonaws.com.cn", ".on.aws"]
                .iter()
                .find_map(|s| r.strip_suffix(s))
        })?;
    let valid = !region.is_empty()
        && region.contains('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| (account.to_string(), region.to_string()))
}

fn valid_repository(r: &str) -> bool {
    // ECR: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*, 2-256.
    (2..=256).contains(&r.len())
        && r.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        })
}

fn valid_tag(t: &str) -> bool {
    // Docker: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
    (1..=128).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !t.starts_with(['.', '-'])
}

fn valid_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some(("sha256", hex)) => {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        Some((alg, hex)) => {
            !alg.is_empty() && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// Splits `[registry/]path[:tag][@digest]`. The first path component is a registry when it
/// has a dot or a port or is `localhost` (Docker's rule).
pub fn parse(image: &str) -> ImageRef {
    let image = image.trim();
    if image.is_empty() || image.contains(char::is_whitespace) {
        return ImageRef::Invalid("empty or contains whitespace".into());
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let (registry, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, name),
    };
    let (repository, tag) = match path.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (path, None),
    };
    let Some((registry_id, region)) = registry.and_then(ecr_registry) else {
        return ImageRef::Other {
            registry: registry.unwrap_or("docker.io").to_string(),
        };
    };
    if !valid_repository(repository) {
        return ImageRef::Invalid(format!(
            "\"{}\" is not a valid ECR repository name (lowercase letters, digits, . _ - /)",
            clip(repository, 80)
        ));
    }
    if let Some(t) = tag.filter(|t| !valid_tag(t)) {
        return ImageRef::Invalid(format!(
            "\"{}\" is not a valid tag (letters, digits, _ . -, at most 128)",
            clip(t, 80)
        ));
    }
    if let Some(d) = digest.filter(|d| !valid_digest(d)) {
        return ImageRef::Invalid(format!(
            "\"{}\" is not a valid digest (sha256: and 64 hex digits)",
            clip(d, 80)
        ));
    }
    ImageRef::Ecr(EcrImage {
        registry_id,
        region,
        repository: repository.to_string(),
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
    })
}

/// The image findings of every container of the revision.
pub async fn check(clients: &Clients, td: &TaskDefinition) -> Vec<Finding> {
    let futs = containers(td).iter().map(|c| {
        let name = c.name().unwrap_or("?").to_string();
        let image = c.image().unwrap_or_default().to_string();
        async move { check_one(clients, &name, &image).await }
    });
    futures_util::future::join_all(futs).await
}

/// The ECR image to look up, or the finding when there is none to look up (an invalid
/// reference fails, an image elsewhere is information).
fn ecr_image(container: &str, image: &str) -> Result<EcrImage, Box<Finding>> {
    match parse(image) {
        ImageRef::Invalid(why) => Err(Box::new(
            Finding::fail(
                container,
                format!(
                    "image {} is not a valid reference: {why}; fix --image or [ecs] image",
                    clip(image, 200)
                ),
            )
            .with(json!({"container": container, "image": image})),
        )),
        ImageRef::Other { registry } => Err(Box::new(
            Finding::info(
                container,
                format!(
                    "{} is not in a private ECR registry ({registry}); existence not checked",
                    clip(image, 200)
                ),
            )
            .with(json!({"container": container, "image": image, "registry": registry})),
        )),
        ImageRef::Ecr(e) => Ok(e),
    }
}

async fn check_one(clients: &Clients, container: &str, image: &str) -> Finding {
    let ecr = match ecr_image(container, image) {
        Ok(e) => e,
        Err(finding) => return *finding,
    };
    let wanted = ecr.wanted();
    let id = match (&ecr.digest, &ecr.tag) {
        (Some(d), _) => ImageIdentifier::builder().image_digest(d).build(),
        (None, t) => ImageIdentifier::builder()
            .image_tag(t.as_deref().unwrap_or("latest"))
            .build(),
    };
    let evidence = json!({
        "container": container,
        "image": image,
        "registry_id": ecr.registry_id,
        "region": ecr.region,
        "repository": ecr.repository,
        "tag": ecr.tag,
        "digest": ecr.digest,
    });
    let where_ = format!(
        "ECR repository {} (account {}, {})",
        ecr.repository, ecr.registry_id, ecr.region
    );
    let out = clients
        .ecr(&ecr.region)
        .describe_images()
        .registry_id(&ecr.registry_id)
        .repository_name(&ecr.repository)
        .image_ids(id)
        .send()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            let se = e.as_service_error();
            let no_repo = se.is_some_and(|s| s.is_repository_not_found_exception());
            let no_image = se.is_some_and(|s| s.is_image_not_found_exception());
            if no_repo || no_image {
                let cached = pull_through(clients, &ecr).await;
                if let Ok(Some(rule)) = &cached {
                    return cached_on_first_pull(container, &wanted, &where_, rule, evidence);
                }
                let rules = match cached {
                    Err(why) => format!(" (its pull-through cache rules could not be read: {why})"),
                    _ => String::new(),
                };
                if no_image {
                    let mut f = not_found(container, &wanted, &where_, evidence);
                    f.message.push_str(&rules);
                    return f;
                }
                return Finding::fail(
                    container,
                    format!("{where_} does not exist{rules}; fix the image name (--image or [ecs] image), or create the repository and push {wanted}"),
                )
                .with(evidence);
            }
            return unanswered(
                CheckName::Image,
                "ecr:DescribeImages",
                container,
                &format!("{wanted} in {where_}"),
                call_error(&e),
            );
        }
    };
    // One id asked for: one detail when found (AWS answers ImageNotFoundException otherwise;
    // an empty list is treated the same).
    match out.image_details().first() {
        Some(d) => found(container, &wanted, &where_, evidence, d),
        None => not_found(container, &wanted, &where_, evidence),
    }
}

/// A pull-through cache rule of the image's registry: its repository prefix and upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRule {
    pub prefix: String,
    pub upstream: String,
}

/// The rule whose prefix holds `repository`: `prefix` itself or below `prefix/`; `ROOT`
/// holds every repository. The longest prefix wins, as ECR matches.
pub fn rule_for<'a>(rules: &'a [CacheRule], repository: &str) -> Option<&'a CacheRule> {
    rules
        .iter()
        .filter(|r| {
            let p = r.prefix.trim_end_matches('/');
            p == "ROOT"
                || repository == p
                || repository
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|r| {
            if r.prefix == "ROOT" {
                0
            } else {
                r.prefix.len()
            }
        })
}

/// The pull-through cache rule that covers the image's repository, read from the image's
/// registry and region (every page); an error says why the rules could not be read. One
/// attempt per page: the answer only softens a failure, so a slow or failing lookup keeps
/// the failure instead of retrying for seconds.
async fn pull_through(clients: &Clients, ecr: &EcrImage) -> Result<Option<CacheRule>, String> {
    let mut rules = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..PAGES_MAX {
        let page = clients
            .ecr(&ecr.region)
            .describe_pull_through_cache_rules()
            .registry_id(&ecr.registry_id)
            .set_next_token(token.take())
            .customize()
            .config_override(
                aws_sdk_ecr::config::Builder::default()
                    .retry_config(aws_smithy_types::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| match call_error(&e) {
                CallError::Denied(m) => format!("ecr:DescribePullThroughCacheRules denied: {m}"),
                CallError::Other(m) => m,
            })?;
        rules.extend(page.pull_through_cache_rules().iter().map(|r| CacheRule {
            prefix: r.ecr_repository_prefix().unwrap_or_default().to_string(),
            upstream: r.upstream_registry_url().unwrap_or_default().to_string(),
        }));
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(rule_for(&rules, &ecr.repository).cloned())
}

/// A bound on the rule pages read (a registry holds at most a few dozen rules).
const PAGES_MAX: usize = 20;

fn cached_on_first_pull(
    container: &str,
    wanted: &str,
    where_: &str,
    rule: &CacheRule,
    mut evidence: serde_json::Value,
) -> Finding {
    evidence["pull_through_prefix"] = json!(rule.prefix);
    evidence["upstream"] = json!(rule.upstream);
    Finding::info(
        container,
        format!(
            "{wanted} is not in {where_} yet: the pull-through cache rule {} ({}) fetches it on the first pull; the upstream image is not checked",
            clip(&rule.prefix, 40),
            clip(&rule.upstream, 200)
        ),
    )
    .with(evidence)
}

/// The image was found: it passes unless its storage class keeps it from being pulled.
fn found(
    container: &str,
    wanted: &str,
    where_: &str,
    mut evidence: serde_json::Value,
    d: &aws_sdk_ecr::types::ImageDetail,
) -> Finding {
    let digest = d.image_digest().unwrap_or_default();
    let pushed = d
        .image_pushed_at()
        .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok());
    evidence["found_digest"] = json!(digest);
    evidence["pushed_at"] = json!(pushed);
    if let Some(status) = d.image_status().map(|s| s.as_str().to_string()) {
        evidence["image_status"] = json!(status);
        if status != "ACTIVE" {
            return Finding::fail(
                container,
                format!("{wanted} in {where_} is {status}, not ACTIVE: it cannot be pulled until restored (aws ecr update-image-storage-class)"),
            )
            .with(evidence);
        }
    }
    Finding::pass(
        container,
        format!(
            "{wanted} is in {where_}{}",
            pushed.map(|p| format!(", pushed {p}")).unwrap_or_default()
        ),
    )
    .with(evidence)
}

fn not_found(container: &str, wanted: &str, where_: &str, evidence: serde_json::Value) -> Finding {
    Finding::fail(
        container,
        format!("{wanted} is not in {where_}; push it first, or fix --image / [ecs] image"),
    )
    .with(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

    fn ecr(image: &str) -> EcrImage {
        match parse(image) {
            ImageRef::Ecr(e) => e,
            other => panic!("{image}: {other:?}"),
        }
    }

    #[test]
    fn ecr_tag_and_digest_forms() {
        let e = ecr("123456789012.dkr.ecr.us-east-1.amazonaws.com/bosar-api:1.4.0");
        assert_eq!(
            e,
            EcrImage {
                registry_id: "123456789012".into(),
                region: "us-east-1".into(),
                repository: "bosar-api".into(),
                tag: Some("1.4.0".into()),
                digest: None,
            }
        );
        assert_eq!(e.wanted(), "tag 1.4.0");
        let e = ecr(&format!(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/bosar-api@{D}"
        ));
        assert_eq!(
            (e.region.as_str(), e.repository.as_str()),
            ("eu-west-1", "team/bosar-api")
        );
        assert_eq!(e.digest.as_deref(), Some(D));
        assert_eq!(e.wanted(), format!("digest {D}"));
        // Tag and digest: the digest is what is pulled.
        let e = ecr(&format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/a/b:2@{D}"
        ));
        assert_eq!(
            (e.tag.as_deref(), e.wanted()),
            (Some("2"), format!("digest {D}"))
        );
        // Neither: latest.
        assert_eq!(
            ecr("123456789012.dkr.ecr.us-east-1.amazonaws.com/bosar-api").wanted(),
            "tag latest"
        );
    }

    #[test]
    fn ecr_hosts_in_every_partition_and_endpoint_flavour() {
        for (host, region) in [
            (
                "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn",
                "cn-north-1",
            ),
            (
                "210987654321.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
                "us-gov-west-1",
            ),
            ("210987654321.dkr-ecr.eu-central-1.on.aws", "eu-central-1"),
            ("210987654321.DKR.ECR.us-east-2.AMAZONAWS.COM", "us-east-2"),
        ] {
            assert_eq!(
                ecr_registry(host),
                Some(("210987654321".to_string(), region.to_string())),
                "{host}"
            );
        }
        for host in [
            "public.ecr.aws",
            "12345.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.example.com",
            "ghcr.io",
        ] {
            assert_eq!(ecr_registry(host), None, "{host}");
        }
    }

    #[test]
    fn a_pull_through_prefix_holds_its_repositories_and_no_others() {
        let rule = |p: &str| CacheRule {
            prefix: p.into(),
            upstream: format!("{p}.example"),
        };
        let rules = [rule("docker-hub"), rule("docker-hub/library"), rule("ghcr")];
        let hit = |repo: &str| rule_for(&rules, repo).map(|r| r.prefix.clone());
        assert_eq!(
            hit("docker-hub/library/nginx").as_deref(),
            Some("docker-hub/library")
        );
        assert_eq!(
            hit("docker-hub/bitnami/redis").as_deref(),
            Some("docker-hub")
        );
        assert_eq!(hit("ghcr").as_deref(), Some("ghcr"));
        assert_eq!(
            hit("docker-hubx/nginx"),
            None,
            "a prefix is a path, not a string start"
        );
        assert_eq!(hit("bosar-api"), None);
        let root = [rule("ROOT"), rule("ghcr")];
        assert_eq!(rule_for(&root, "anything/at/all").unwrap().prefix, "ROOT");
        assert_eq!(
            rule_for(&root, "ghcr/x").unwrap().prefix,
            "ghcr",
            "a named prefix beats ROOT"
        );
    }

    #[test]
    fn other_registries_are_not_checked() {
        for (image, registry) in [
            ("node:20", "docker.io"),
            ("repo/bosar-api:1.5.0", "docker.io"),
            (
                "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0",
                "public.ecr.aws",
            ),
            ("ghcr.io/bosar/api:1", "ghcr.io"),
            ("localhost:5000/api", "localhost:5000"),
        ] {
            assert_eq!(
                parse(image),
                ImageRef::Other {
                    registry: registry.into()
                },
                "{image}"
            );
        }
    }

    #[test]
    fn typos_that_cannot_be_pulled_are_invalid() {
        for image in [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/Bosar-API:1",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/bosar-api:1..0:x",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/bosar-api:-1",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/bosar-api@sha256:abc",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/",
            "",
        ] {
            assert!(
                matches!(parse(image), ImageRef::Invalid(_)),
                "{image}: {:?}",
                parse(image)
            );
        }
    }
}
