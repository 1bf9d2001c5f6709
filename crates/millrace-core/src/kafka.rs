//! The Java Kafka client's security settings, as a Flume file gives them under
//! `kafka.producer.*` or `kafka.consumer.*`, turned into librdkafka's.
//!
//! The two clients agree on `security.protocol` and most of SASL, but not on where
//! certificates come from: librdkafka reads PEM files and PKCS#12 keystores, not Java
//! keystores (JKS), and takes the SASL user and password as settings of their own
//! instead of a JAAS line. What cannot be translated is refused with the command that
//! converts it, so that a file never connects with less security than it asked for.

use crate::props::Props;
use std::collections::BTreeMap;
use std::io::Read;

/// Flume's `header.NAME = KAFKA_NAME` lines (`getSubProperties("header.")`) of a Kafka
/// source or sink, as `(NAME, KAFKA_NAME)`: event header to record header and back.
pub fn header_map(p: &Props) -> Vec<(String, String)> {
    p.with_prefix("header.")
        .into_iter()
        .map(|(flume, v)| (flume, v.value.trim().to_string()))
        .collect()
}

/// Whether `key` (under the client prefix) is a security setting, handled by
/// [`security_settings`] and not passed on as it is.
pub fn is_security_key(key: &str) -> bool {
    key == "security.protocol"
        || key.starts_with("sasl.")
        || key.starts_with("ssl.")
        || key == "enable.ssl.certificate.verification"
}

/// Java client settings with no librdkafka counterpart that change nothing a user
/// relies on: OpenSSL negotiates TLS 1.2 or 1.3 with its own suites and key managers.
const IGNORED: &[&str] = &[
    "ssl.protocol",
    "ssl.enabled.protocols",
    "ssl.cipher.suites",
    "ssl.keymanager.algorithm",
    "ssl.trustmanager.algorithm",
    "ssl.secure.random.implementation",
    "ssl.provider",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.buffer.seconds",
    "sasl.login.connect.timeout.ms",
    "sasl.login.read.timeout.ms",
    "sasl.login.retry.backoff.ms",
    "sasl.login.retry.backoff.max.ms",
];

/// librdkafka's own names, taken as they are.
const NATIVE: &[&str] = &[
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.certificate.pem",
    "ssl.key.location",
    "ssl.key.pem",
    "ssl.crl.location",
    "ssl.curves.list",
    "ssl.sigalgs.list",
    "enable.ssl.certificate.verification",
];

/// The security settings under `prefix` (`kafka.producer.` and the like), in
/// librdkafka's names. Problems are reported on `p` with the line of the setting.
pub fn security_settings(p: &Props, prefix: &str) -> Vec<(String, String)> {
    let given: BTreeMap<String, String> = p
        .with_prefix(prefix)
        .into_iter()
        .filter(|(k, _)| is_security_key(k))
        .map(|(k, v)| (k, v.value.trim().to_string()))
        .collect();
    let mut out: Vec<(String, String)> = Vec::new();
    let full = |k: &str| p.full_key(&format!("{prefix}{k}"));
    let error = |k: &str, msg: String| p.error_at(&format!("{prefix}{k}"), msg);

    let protocol = given
        .get("security.protocol")
        .map(|v| v.to_ascii_lowercase());
    if let Some(v) = &protocol {
        if ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&v.as_str()) {
            out.push(("security.protocol".into(), v.clone()));
        } else {
            error(
                "security.protocol",
                format!(
                    "`{}` = {v}: use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                    full("security.protocol")
                ),
            );
        }
    }
    let sasl = protocol.as_deref().is_some_and(|v| v.starts_with("sasl_"));

    // Java's name, or librdkafka's; problems are reported at the one given.
    let mechanism_key = if given.contains_key("sasl.mechanism") {
        "sasl.mechanism"
    } else {
        "sasl.mechanisms"
    };
    let mechanism = given.get(mechanism_key).map(|m| m.to_ascii_uppercase());
    match mechanism.as_deref() {
        Some(m @ ("PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512")) => {
            out.push(("sasl.mechanisms".into(), m.into()));
        }
        Some("GSSAPI") => error(
            mechanism_key,
            format!("`{}` = GSSAPI: Kerberos is not available in millrace; use SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN over SASL_SSL", full(mechanism_key)),
        ),
        Some(m) => error(
            mechanism_key,
            format!(
                "`{}` = {m}: millrace speaks PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512",
                full(mechanism_key)
            ),
        ),
        // The Java client's default is GSSAPI, which is not available: saying so
        // here beats an authentication failure at every connection.
        None if sasl => error(
            "security.protocol",
            format!(
                "`{}` is {}, but no `{}` is set, and the Java client's default, GSSAPI (Kerberos), is not available in millrace; set it to SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN",
                full("security.protocol"),
                protocol.as_deref().unwrap_or_default().to_ascii_uppercase(),
                full("sasl.mechanism")
            ),
        ),
        None => {}
    }
    if let Some(jaas) = given.get("sasl.jaas.config") {
        match jaas_credentials(jaas) {
            Ok((user, password)) => {
                out.push(("sasl.username".into(), user));
                out.push(("sasl.password".into(), password));
            }
            Err(why) => error(
                "sasl.jaas.config",
                format!("`{}`: {why}", full("sasl.jaas.config")),
            ),
        }
    } else if sasl
        && !given.contains_key("sasl.username")
        && mechanism.as_deref().is_some_and(|m| m != "GSSAPI")
    {
        error(
            "sasl.jaas.config",
            format!(
                "`{}` is not set: give the user and password, e.g. org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"...\";",
                full("sasl.jaas.config")
            ),
        );
    }

    if let Some(location) = given.get("ssl.truststore.location") {
        match store_kind(location, given.get("ssl.truststore.type")) {
            Ok(StoreKind::Pem) => {
                out.push(("ssl.ca.location".into(), location.clone()));
                // The Java client refuses to start with a password for a PEM
                // truststore; said here so that the file stays good for both.
                if given.contains_key("ssl.truststore.password") {
                    p.warn_at(
                        &format!("{prefix}ssl.truststore.password"),
                        format!(
                            "`{}` is not needed for a PEM truststore, and the Java client refuses to start with it; remove the line",
                            full("ssl.truststore.password")
                        ),
                    );
                }
            }
            Ok(_) => error(
                "ssl.truststore.location",
                format!(
                    "`{}`: Java truststores are not read; export its certificates as PEM (`keytool -list -rfc -keystore {location} > truststore.pem`) and set `{}` = truststore.pem with `{}` = PEM and no `{}`, which the Java client reads too",
                    full("ssl.truststore.location"),
                    full("ssl.truststore.location"),
                    full("ssl.truststore.type"),
                    full("ssl.truststore.password")
                ),
            ),
            Err(why) => error(
                "ssl.truststore.location",
                format!("`{}`: {why}", full("ssl.truststore.location")),
            ),
        }
    }
    if let Some(pem) = given.get("ssl.truststore.certificates") {
        out.push(("ssl.ca.pem".into(), pem.clone()));
    }
    if let Some(location) = given.get("ssl.keystore.location") {
        match store_kind(location, given.get("ssl.keystore.type")) {
            Ok(StoreKind::Pem) => {
                // One PEM file holds the key and its chain; OpenSSL picks each out.
                out.push(("ssl.certificate.location".into(), location.clone()));
                out.push(("ssl.key.location".into(), location.clone()));
                if let Some(pw) = given.get("ssl.key.password") {
                    out.push(("ssl.key.password".into(), pw.clone()));
                }
            }
            Ok(StoreKind::Pkcs12) => {
                out.push(("ssl.keystore.location".into(), location.clone()));
                if let Some(pw) = given.get("ssl.keystore.password") {
                    out.push(("ssl.keystore.password".into(), pw.clone()));
                }
            }
            Ok(StoreKind::Jks) => error(
                "ssl.keystore.location",
                format!(
                    "`{}`: Java keystores (JKS) are not read; convert it to PKCS#12 (`keytool -importkeystore -srckeystore {location} -destkeystore keystore.p12 -deststoretype PKCS12`) and set `{}` = keystore.p12 with `{}` = PKCS12, which the Java client reads too",
                    full("ssl.keystore.location"),
                    full("ssl.keystore.location"),
                    full("ssl.keystore.type")
                ),
            ),
            Err(why) => error(
                "ssl.keystore.location",
                format!("`{}`: {why}", full("ssl.keystore.location")),
            ),
        }
    }
    if let (Some(chain), Some(key)) = (
        given.get("ssl.keystore.certificate.chain"),
        given.get("ssl.keystore.key"),
    ) {
        out.push(("ssl.certificate.pem".into(), chain.clone()));
        out.push(("ssl.key.pem".into(), key.clone()));
        if let Some(pw) = given.get("ssl.key.password") {
            out.push(("ssl.key.password".into(), pw.clone()));
        }
    }
    if let Some(v) = given.get("ssl.endpoint.identification.algorithm") {
        match v.to_ascii_lowercase().as_str() {
            // The Java client turns host name checking off with an empty value.
            "" | "none" => out.push(("ssl.endpoint.identification.algorithm".into(), "none".into())),
            "https" => out.push(("ssl.endpoint.identification.algorithm".into(), "https".into())),
            other => error(
                "ssl.endpoint.identification.algorithm",
                format!(
                    "`{}` = {other}: use https (check the broker's host name, the default) or an empty value (do not)",
                    full("ssl.endpoint.identification.algorithm")
                ),
            ),
        }
    }

    // Read above, or only together with another setting.
    const TAKEN: &[&str] = &[
        "security.protocol",
        "sasl.mechanism",
        "sasl.mechanisms",
        "sasl.jaas.config",
        "ssl.truststore.location",
        "ssl.truststore.type",
        "ssl.truststore.password",
        "ssl.truststore.certificates",
        "ssl.keystore.location",
        "ssl.keystore.type",
        "ssl.keystore.password",
        "ssl.keystore.certificate.chain",
        "ssl.keystore.key",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
    ];
    for (key, value) in &given {
        if TAKEN.contains(&key.as_str()) {
            continue;
        }
        if NATIVE.contains(&key.as_str()) {
            out.retain(|(k, _)| k != key);
            out.push((key.clone(), value.clone()));
        } else if IGNORED.contains(&key.as_str()) {
            p.warn_at(
                &format!("{prefix}{key}"),
                format!(
                    "`{}` is ignored: OpenSSL negotiates TLS 1.2 or 1.3 with its own defaults",
                    full(key)
                ),
            );
        } else if key.starts_with("sasl.kerberos.") {
            error(
                key,
                format!(
                    "`{}`: Kerberos is not available in millrace; use SCRAM or PLAIN over SASL_SSL",
                    full(key)
                ),
            );
        } else if key.ends_with(".class") || key.ends_with(".classes") {
            error(
                key,
                format!("`{}`: millrace cannot load Java classes", full(key)),
            );
        } else {
            // Anything else goes to librdkafka, which names what it does not know
            // when the client is made (configtest makes one).
            out.push((key.clone(), value.clone()));
        }
    }
    out
}

/// librdkafka's log lines and error reports for one Kafka component, into the agent's
/// log under that component's name. librdkafka reports a failed connection both as a
/// log line and as an error event, and some errors twice; a report that repeats the
/// one just logged (within a second) is left out.
#[cfg(feature = "rdkafka")]
pub struct KafkaLog {
    component: String,
    last: std::sync::Mutex<Option<(String, std::time::Instant)>>,
}

#[cfg(feature = "rdkafka")]
impl KafkaLog {
    /// For the component `kind name`, e.g. `KafkaLog::new("sink", "k1")`.
    pub fn new(kind: &str, name: &str) -> KafkaLog {
        KafkaLog {
            component: format!("{kind} {name}"),
            last: std::sync::Mutex::new(None),
        }
    }

    /// Whether `text` is news: not the end of what was logged within the last second.
    fn fresh(&self, text: &str) -> bool {
        let now = std::time::Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let repeat = last.as_ref().is_some_and(|(prev, at)| {
            now.duration_since(*at) < std::time::Duration::from_secs(1) && prev.ends_with(text)
        });
        if !repeat {
            *last = Some((text.to_string(), now));
        }
        !repeat
    }
}

#[cfg(feature = "rdkafka")]
impl rdkafka::ClientContext for KafkaLog {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        let c = &self.component;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                if self.fresh(message) {
                    tracing::error!(component = %c, "Kafka {fac}: {message}");
                }
            }
            L::Warning => tracing::warn!(component = %c, "Kafka {fac}: {message}"),
            L::Notice | L::Info => tracing::info!(component = %c, "Kafka {fac}: {message}"),
            L::Debug => tracing::debug!(component = %c, "Kafka {fac}: {message}"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if self.fresh(reason) {
            tracing::error!(component = %self.component, "Kafka: {error}: {reason}");
        }
    }
}

#[cfg(feature = "rdkafka")]
impl rdkafka::consumer::ConsumerContext for KafkaLog {}

#[derive(Debug, PartialEq, Eq)]
enum StoreKind {
    Pem,
    Pkcs12,
    Jks,
}

/// What a key or trust store file is: by its first bytes when it can be read, as the
/// Java client (9 and later) reads a PKCS#12 file whatever type is declared; else by
/// the declared type, JKS by default as in Java.
fn store_kind(location: &str, declared: Option<&String>) -> Result<StoreKind, String> {
    let mut head = [0u8; 16];
    let n = match std::fs::File::open(location).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(e) => return Err(format!("cannot read {location}: {e}")),
    };
    let head = &head[..n];
    if head.starts_with(&[0xFE, 0xED, 0xFE, 0xED]) || head.starts_with(&[0xCE, 0xCE, 0xCE, 0xCE]) {
        return Ok(StoreKind::Jks);
    }
    if head.first() == Some(&0x30) {
        return Ok(StoreKind::Pkcs12);
    }
    if String::from_utf8_lossy(head)
        .trim_start()
        .starts_with("-----BEGIN")
        || declared.is_some_and(|t| t.eq_ignore_ascii_case("PEM"))
    {
        return Ok(StoreKind::Pem);
    }
    match declared.map(|t| t.to_ascii_uppercase()).as_deref() {
        Some("PKCS12") => Ok(StoreKind::Pkcs12),
        _ => Ok(StoreKind::Jks),
    }
}

/// The user and password of a JAAS line for SASL PLAIN or SCRAM:
/// `org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";`
fn jaas_credentials(jaas: &str) -> Result<(String, String), String> {
    let mut words = JaasWords { rest: jaas.trim() };
    let module = words.next().ok_or("it is empty")?;
    if module.ends_with("Krb5LoginModule") {
        return Err(
            "Kerberos is not available in millrace; use SCRAM or PLAIN over SASL_SSL".into(),
        );
    }
    if !(module.ends_with(".PlainLoginModule") || module.ends_with(".ScramLoginModule")) {
        return Err(format!(
            "{module} is not read; millrace takes the username and password of PlainLoginModule or ScramLoginModule"
        ));
    }
    match words.next().as_deref() {
        Some("required" | "requisite" | "sufficient" | "optional") => {}
        _ => return Err(format!("`{module}` must be followed by `required`")),
    }
    let (mut user, mut password) = (None, None);
    while let Some(word) = words.next() {
        if word == ";" {
            break;
        }
        if words.next().as_deref() != Some("=") {
            return Err(format!("`{word}` must be followed by `=` and a value"));
        }
        let value = words
            .next()
            .filter(|v| v != ";")
            .ok_or(format!("`{word}=` has no value"))?;
        match word.as_str() {
            "username" => user = Some(value),
            "password" => password = Some(value),
            _ => {}
        }
    }
    match (user, password) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err("it must give both username=\"...\" and password=\"...\"".into()),
    }
}

/// The words of a JAAS line: names, `=`, `;`, and quoted values with `\` escapes.
struct JaasWords<'a> {
    rest: &'a str,
}

impl Iterator for JaasWords<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.rest = self.rest.trim_start();
        let mut chars = self.rest.char_indices();
        let (_, c) = chars.next()?;
        if c == '=' || c == ';' {
            self.rest = &self.rest[1..];
            return Some(c.to_string());
        }
        if c == '"' {
            let mut value = String::new();
            let mut escaped = false;
            for (i, c) in chars {
                if escaped {
                    value.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    self.rest = &self.rest[i + 1..];
                    return Some(value);
                } else {
                    value.push(c);
                }
            }
            // An unclosed quote runs to the end of the line.
            self.rest = "";
            return Some(value);
        }
        let end = self
            .rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == ';')
            .unwrap_or(self.rest.len());
        let word = self.rest[..end].to_string();
        self.rest = &self.rest[end..];
        Some(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> (Vec<(String, String)>, Vec<String>) {
        let p = Props::from_pairs(pairs);
        let out = security_settings(&p, "kafka.producer.");
        let problems = p.finish().into_iter().map(|d| d.message).collect();
        (out, problems)
    }

    fn get<'a>(out: &'a [(String, String)], key: &str) -> Option<&'a str> {
        out.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn sasl_ssl_with_a_jaas_line_gives_librdkafka_its_user_and_password() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let ca = ca.to_str().unwrap();
        let (out, problems) = settings(&[
            ("kafka.producer.security.protocol", "SASL_SSL"),
            ("kafka.producer.sasl.mechanism", "SCRAM-SHA-512"),
            (
                "kafka.producer.sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="p\"w;d";"#,
            ),
            ("kafka.producer.ssl.truststore.location", ca),
            ("kafka.producer.ssl.truststore.type", "PEM"),
            ("kafka.producer.ssl.endpoint.identification.algorithm", ""),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(get(&out, "security.protocol"), Some("sasl_ssl"));
        assert_eq!(get(&out, "sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(get(&out, "sasl.username"), Some("alice"));
        assert_eq!(get(&out, "sasl.password"), Some("p\"w;d"));
        assert_eq!(get(&out, "ssl.ca.location"), Some(ca));
        assert_eq!(
            get(&out, "ssl.endpoint.identification.algorithm"),
            Some("none")
        );
        assert_eq!(out.len(), 6, "{out:?}");
        // A password with a PEM truststore: fine here, fatal for the Java client.
        let (_, problems) = settings(&[
            ("kafka.producer.security.protocol", "SSL"),
            ("kafka.producer.ssl.truststore.location", ca),
            ("kafka.producer.ssl.truststore.password", "changeit"),
        ]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("the Java client refuses"),
            "{problems:?}"
        );
    }

    #[test]
    fn java_keystores_are_refused_with_the_command_that_converts_them() {
        let dir = tempfile::tempdir().unwrap();
        let jks = dir.path().join("trust.jks");
        std::fs::write(&jks, [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2]).unwrap();
        let jks = jks.to_str().unwrap();
        let (out, problems) = settings(&[
            ("kafka.producer.security.protocol", "SSL"),
            ("kafka.producer.ssl.truststore.location", jks),
            ("kafka.producer.ssl.truststore.password", "changeit"),
            ("kafka.producer.ssl.keystore.location", jks),
            ("kafka.producer.ssl.keystore.password", "changeit"),
        ]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("keytool -list -rfc -keystore"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("-deststoretype PKCS12"),
            "{problems:?}"
        );
        assert!(get(&out, "ssl.ca.location").is_none());
    }

    #[test]
    fn a_pkcs12_keystore_is_passed_on_whatever_type_is_declared() {
        let dir = tempfile::tempdir().unwrap();
        let p12 = dir.path().join("client.keystore");
        std::fs::write(&p12, [0x30, 0x82, 0x0A, 0x10]).unwrap();
        let p12 = p12.to_str().unwrap();
        let (out, problems) = settings(&[
            ("kafka.producer.security.protocol", "SSL"),
            ("kafka.producer.ssl.keystore.location", p12),
            ("kafka.producer.ssl.keystore.type", "JKS"),
            ("kafka.producer.ssl.keystore.password", "secret"),
            ("kafka.producer.ssl.key.password", "secret"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(get(&out, "ssl.keystore.location"), Some(p12));
        assert_eq!(get(&out, "ssl.keystore.password"), Some("secret"));
    }

    #[test]
    fn kerberos_and_a_missing_mechanism_are_refused() {
        let (_, problems) = settings(&[
            ("kafka.producer.security.protocol", "SASL_PLAINTEXT"),
            ("kafka.producer.sasl.kerberos.service.name", "kafka"),
        ]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|m| m.contains("GSSAPI (Kerberos)")));
        assert!(problems
            .iter()
            .any(|m| m.contains("sasl.kerberos.service.name")));
        let (_, problems) = settings(&[
            ("kafka.producer.security.protocol", "SASL_SSL"),
            ("kafka.producer.sasl.mechanism", "PLAIN"),
            (
                "kafka.producer.sasl.jaas.config",
                "com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;",
            ),
        ]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("Kerberos is not available"));
        // librdkafka's name for the mechanism is read too, and named in its errors.
        let (out, problems) = settings(&[("kafka.producer.sasl.mechanisms", "PLAIN")]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(out, [("sasl.mechanisms".to_string(), "PLAIN".to_string())]);
        let (_, problems) = settings(&[("kafka.producer.sasl.mechanisms", "GSSAPI")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("sasl.mechanisms"), "{problems:?}");
    }

    #[cfg(feature = "rdkafka")]
    #[test]
    fn a_report_repeating_the_last_line_is_left_out() {
        let log = KafkaLog::new("sink", "k1");
        assert!(log.fresh("[thrd:b/1]: b/1: SASL authentication error: bad password"));
        // The error event of the same failure, and its second copy.
        assert!(!log.fresh("b/1: SASL authentication error: bad password"));
        assert!(!log.fresh("b/1: SASL authentication error: bad password"));
        assert!(log.fresh("1/1 brokers are down"));
        assert!(!log.fresh("1/1 brokers are down"));
        assert!(log.fresh("b/1: SASL authentication error: bad password"));
    }

    #[test]
    fn jaas_lines_are_read_as_the_java_client_reads_them() {
        assert_eq!(
            jaas_credentials("x.PlainLoginModule required\n  username=bob password = \"a b\" ;"),
            Ok(("bob".into(), "a b".into()))
        );
        assert!(
            jaas_credentials("x.PlainLoginModule required username=\"bob\";")
                .unwrap_err()
                .contains("password")
        );
        assert!(jaas_credentials("x.ScramLoginModule username=\"bob\";").is_err());
    }
}
