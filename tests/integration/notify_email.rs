//! Email notifications against a real SMTP server (Python's `aiosmtpd`): plain for the tests of
//! what is told, STARTTLS and TLS from the first byte with a certificate of the test's own CA for
//! how it is sent.

use dr_sf_bridge::notify::channels::email_reachable;
use dr_sf_bridge::settings::notify::{EmailSettings, SmtpTls};

use crate::helpers::*;
use crate::relay_helpers::wait_until;

/// How the SMTP server takes connections.
pub enum Security<'a> {
    Plain,
    /// STARTTLS offered and required before any mail.
    Starttls(&'a ServerCertificate),
    /// TLS from the first byte (SMTPS).
    Tls(&'a ServerCertificate),
}

impl Security<'_> {
    fn args(&self) -> Vec<String> {
        let files = |cert: &ServerCertificate, flags: [&str; 2]| {
            vec![
                flags[0].to_owned(),
                cert.cert_file.display().to_string(),
                flags[1].to_owned(),
                cert.key_file.display().to_string(),
            ]
        };
        match self {
            Self::Plain => Vec::new(),
            Self::Starttls(cert) => files(cert, ["--tlscert", "--tlskey"]),
            Self::Tls(cert) => files(cert, ["--smtpscert", "--smtpskey"]),
        }
    }
}

/// A certificate for 127.0.0.1 signed by a CA made for the test (the CA's PEM in `ca_file`).
pub struct ServerCertificate {
    pub ca_file: std::path::PathBuf,
    cert_file: std::path::PathBuf,
    key_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl ServerCertificate {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        Self {
            ca_file: write("ca.pem", ca.pem()),
            cert_file: write("server.pem", cert.pem()),
            key_file: write("server.key", key.serialize_pem()),
            _dir: dir,
        }
    }
}

/// Python's SMTP server, keeping each message in a maildir; `None` (the test skipped) when the
/// module is not installed outside CI.
pub struct SmtpServer {
    child: tokio::process::Child,
    pub port: u16,
    maildir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    pub async fn start() -> Option<Self> {
        Self::start_with(Security::Plain).await
    }

    pub async fn start_with(security: Security<'_>) -> Option<Self> {
        let installed = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the SMTP test: pip install aiosmtpd (.ci/run does)"
            );
            eprintln!("SKIPPED: python3 -m pip install aiosmtpd to run the email test");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        let port = crate::relay_process::free_port();
        let child = tokio::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .args(security.args())
            .arg(&maildir)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_until("the SMTP server to listen", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        Some(Self {
            child,
            port,
            maildir,
            _dir: dir,
        })
    }

    pub fn mails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut mails: Vec<(std::time::SystemTime, String)> = entries
            .map(|e| {
                let path = e.unwrap().path();
                (
                    std::fs::metadata(&path).unwrap().modified().unwrap(),
                    std::fs::read_to_string(&path).unwrap(),
                )
            })
            .collect();
        mails.sort();
        mails.into_iter().map(|(_, m)| m).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn an_smtp_server_is_checked_for_an_answer() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let mut email = EmailSettings {
        host: "127.0.0.1".into(),
        port: smtp.port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "relay@acme.com".into(),
        to: vec!["admin@acme.com".into()],
        ca_pem: None,
    };
    assert!(email_reachable(&email).await.is_ok());
    email.port = crate::relay_process::free_port();
    let error = email_reachable(&email).await.unwrap_err();
    assert!(error.contains(&format!("SMTP 127.0.0.1:{}", email.port)), "{error}");
}

/// `notify test` with one email channel on `port`, as `DRSF__` variables.
async fn notify_test_by_email(port: u16, tls: &str, ca_file: Option<&std::path::Path>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        (
            "DRSF__STORAGE__URL",
            format!("sqlite://{}", dir.path().join("relay.db").display()),
        ),
        ("DRSF__NOTIFY__CHANNELS__MAIL__KIND", "email".to_owned()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__HOST", "127.0.0.1".to_owned()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__PORT", port.to_string()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__TLS", tls.to_owned()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__FROM", "relay@acme.com".to_owned()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__TO", "admin@acme.com".to_owned()),
    ];
    if let Some(ca) = ca_file {
        env.push(("DRSF__NOTIFY__CHANNELS__MAIL__CA_FILE", ca.display().to_string()));
    }
    cli(&["notify", "test"]).envs(&env).run().await
}

#[tokio::test]
async fn starttls_upgrades_before_any_mail_and_trusts_the_ca_file() {
    let cert = ServerCertificate::new();
    let Some(smtp) = SmtpServer::start_with(Security::Starttls(&cert)).await else {
        return;
    };
    let sent = notify_test_by_email(smtp.port, "starttls", Some(&cert.ca_file)).await;
    assert_eq!(sent.code, 0, "{}\n{}", sent.stdout, sent.stderr);
    assert_eq!(smtp.mails().len(), 1, "{}", sent.stdout);

    let plain = notify_test_by_email(smtp.port, "none", None).await;
    assert_eq!(
        plain.code, 1,
        "the server refuses mail before STARTTLS:\n{}",
        plain.stdout
    );
    let untrusted = notify_test_by_email(smtp.port, "starttls", None).await;
    assert_eq!(untrusted.code, 1, "{}", untrusted.stdout);
    assert!(
        untrusted.stdout.contains("✗ mail:") && untrusted.stdout.contains("certificate"),
        "a certificate no CA vouches for is named:\n{}",
        untrusted.stdout
    );
    assert_eq!(smtp.mails().len(), 1, "nothing sent without the upgrade");
}

#[tokio::test]
async fn tls_from_the_first_byte_reaches_an_smtps_server() {
    let cert = ServerCertificate::new();
    let Some(smtp) = SmtpServer::start_with(Security::Tls(&cert)).await else {
        return;
    };
    let sent = notify_test_by_email(smtp.port, "tls", Some(&cert.ca_file)).await;
    assert_eq!(sent.code, 0, "{}\n{}", sent.stdout, sent.stderr);
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: admin@acme.com"), "{}", mails[0]);
}
