//! Finding kinds, their severity, and advice in plain words (English and
//! Japanese) along the seed's three points: change the ID and password,
//! update the firmware, fix the Wi-Fi and exposure settings.

use serde::{Deserialize, Serialize};

use crate::rules::{Criticality, Identity};

/// What was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A dictionary ID/password pair logs in.
    DefaultCredential,
    /// A service lets anyone in without a password (or has no login at all).
    NoAuthentication,
    /// A control panel that anyone can operate (seen read-only).
    OpenControlPanel,
    /// Telnet is reachable.
    ExposedTelnet,
    /// An administration interface over a cleartext protocol.
    CleartextAdmin,
    /// An MQTT broker accepts anonymous clients.
    AnonymousMqtt,
    /// Modbus/TCP (no authentication by design) is reachable.
    ExposedModbus,
    /// Many failed logins and no lockout or slow-down.
    LockoutAbsent,
    /// The device locked the check out (reported, not a weakness).
    LoginLockout,
    /// A TLS certificate that is self-signed.
    SelfSignedCertificate,
    /// A TLS certificate past its validity.
    ExpiredCertificate,
    /// A login service takes an ID and password no device ships (a random
    /// control pair): anyone gets in, or it is a honeypot. Reported instead
    /// of `default_credential`, after one login.
    AcceptsAnyCredentials,
    /// A login service was found but its check reached no verdict (no
    /// prompt recognised, a handshake or scheme not supported, every attempt
    /// timed out): not "nothing found", but "could not check".
    CheckIncomplete,
}

impl Kind {
    /// The snake_case name used in JSON and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DefaultCredential => "default_credential",
            Kind::NoAuthentication => "no_authentication",
            Kind::OpenControlPanel => "open_control_panel",
            Kind::ExposedTelnet => "exposed_telnet",
            Kind::CleartextAdmin => "cleartext_admin",
            Kind::AnonymousMqtt => "anonymous_mqtt",
            Kind::ExposedModbus => "exposed_modbus",
            Kind::LockoutAbsent => "lockout_absent",
            Kind::LoginLockout => "login_lockout",
            Kind::SelfSignedCertificate => "self_signed_certificate",
            Kind::ExpiredCertificate => "expired_certificate",
            Kind::AcceptsAnyCredentials => "accepts_any_credentials",
            Kind::CheckIncomplete => "check_incomplete",
        }
    }
}

/// How bad it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Fix when convenient.
    Low,
    /// Fix soon.
    Medium,
    /// Fix now.
    High,
    /// Fix now: anyone can take over or operate a device that matters.
    Critical,
}

/// The severity of `kind` on a device of `criticality`: the same weakness
/// on a water-plant logger is worse than on a camera.
pub fn severity(kind: Kind, criticality: Criticality) -> Severity {
    let base = match kind {
        Kind::DefaultCredential
        | Kind::NoAuthentication
        | Kind::OpenControlPanel
        | Kind::AcceptsAnyCredentials => Severity::High,
        Kind::AnonymousMqtt | Kind::ExposedModbus => Severity::High,
        Kind::ExposedTelnet | Kind::CleartextAdmin => Severity::Medium,
        // Low, not Info: an owner told "nothing found" must not have an
        // unchecked door (`check` exits 1 with it).
        Kind::LockoutAbsent | Kind::ExpiredCertificate | Kind::CheckIncomplete => Severity::Low,
        Kind::LoginLockout | Kind::SelfSignedCertificate => Severity::Info,
    };
    let on_critical = criticality == Criticality::Critical && base >= Severity::High;
    if on_critical || kind == Kind::OpenControlPanel {
        Severity::Critical
    } else {
        base
    }
}

/// Language of human output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Japanese.
    Ja,
}

impl Lang {
    /// From a locale string such as "ja_JP.UTF-8" (English otherwise).
    pub fn from_locale(locale: &str) -> Lang {
        if locale.to_ascii_lowercase().starts_with("ja") {
            Lang::Ja
        } else {
            Lang::En
        }
    }
}

/// One sentence saying what the finding means, and what to do, in `lang`.
pub fn explain(kind: Kind, lang: Lang) -> (&'static str, &'static [&'static str]) {
    use Kind::*;
    match (kind, lang) {
        (DefaultCredential, Lang::En) => (
            "Anyone can log in with a factory-default ID and password that malware such as Mirai tries first.",
            &["Change the ID and password to your own long, unique password now.", "Update the firmware to the maker's latest version.", "Turn off remote login (telnet/web) from the Internet in the router or device settings."],
        ),
        (DefaultCredential, Lang::Ja) => (
            "工場出荷時のID・パスワードで誰でもログインできます。Mirai などのマルウェアが最初に試す組み合わせです。",
            &["ID・パスワードを、推測されにくい長い独自のものにすぐ変更してください。", "メーカーの最新ファームウェアに更新してください。", "ルーターや機器の設定で、インターネットからの遠隔ログイン（telnet・Web）を無効にしてください。"],
        ),
        (NoAuthentication, Lang::En) => (
            "The service asks for no password at all: anyone who reaches it is in.",
            &["Set a password (or turn the service off if you do not use it).", "Update the firmware: newer versions often require a password.", "Do not expose the device to the Internet: put it behind the router without port forwarding."],
        ),
        (NoAuthentication, Lang::Ja) => (
            "パスワードが一切要求されず、到達できる人は誰でも操作できます。",
            &["パスワードを設定してください（使っていない機能なら無効にしてください）。", "ファームウェアを更新してください。新しい版ではパスワードが必須になっていることがあります。", "機器をインターネットに直接公開せず、ポート転送をしないルーターの内側に置いてください。"],
        ),
        (OpenControlPanel, Lang::En) => (
            "A control panel that operates the equipment (start/stop, thresholds, reboot) is open to anyone without a login.",
            &["Put a login with a strong password in front of the panel now.", "Update the firmware and ask the maker about access control.", "Take the panel off the Internet: reach it only over a VPN or the local network."],
        ),
        (OpenControlPanel, Lang::Ja) => (
            "設備を操作できる制御画面（運転・停止、しきい値、再起動など）が、ログインなしで誰にでも開かれています。",
            &["制御画面の前に強いパスワードのログインを今すぐ設けてください。", "ファームウェアを更新し、アクセス制御についてメーカーに相談してください。", "制御画面をインターネットから外し、VPN かローカルネットワークからのみ使えるようにしてください。"],
        ),
        (ExposedTelnet, Lang::En) => (
            "Telnet is reachable; it sends passwords in clear text and is the main way IoT malware spreads.",
            &["Use a long, unique password for the device.", "Update the firmware; turn telnet off if the device allows it.", "Block telnet (ports 23 and 2323) from the Internet at the router."],
        ),
        (ExposedTelnet, Lang::Ja) => (
            "telnet に外部から接続できます。パスワードが暗号化されずに流れ、IoT マルウェアの主な感染経路です。",
            &["機器のパスワードを長く独自のものにしてください。", "ファームウェアを更新し、可能なら telnet を無効にしてください。", "ルーターでインターネットからの telnet（23番・2323番ポート）を遮断してください。"],
        ),
        (CleartextAdmin, Lang::En) => (
            "The administration interface is served without encryption, so passwords can be read on the way.",
            &["Use a unique password for the administration interface.", "Update the firmware; use HTTPS if the device offers it.", "Reach the interface only from the local network, not from the Internet."],
        ),
        (CleartextAdmin, Lang::Ja) => (
            "管理画面が暗号化されずに提供されており、通信途中でパスワードを盗み見られるおそれがあります。",
            &["管理画面には独自のパスワードを使ってください。", "ファームウェアを更新し、機器が対応していれば HTTPS を使ってください。", "管理画面はインターネットからではなくローカルネットワークからのみ使ってください。"],
        ),
        (AnonymousMqtt, Lang::En) => (
            "The MQTT broker accepts anyone without a password: they can read and send the devices' messages.",
            &["Require a user name and password (and TLS) on the broker.", "Update the broker software.", "Do not expose port 1883 to the Internet."],
        ),
        (AnonymousMqtt, Lang::Ja) => (
            "MQTT ブローカーがパスワードなしで誰でも受け付けており、機器のメッセージを読み書きされるおそれがあります。",
            &["ブローカーにユーザー名・パスワード（と TLS）を必須にしてください。", "ブローカーのソフトウェアを更新してください。", "1883番ポートをインターネットに公開しないでください。"],
        ),
        (ExposedModbus, Lang::En) => (
            "Modbus/TCP is reachable; it has no authentication, so anyone who reaches it can read and write the controller.",
            &["Modbus has no password: protect it with a firewall that allows only your own systems.", "Update the controller's firmware.", "Never expose port 502 to the Internet; use a VPN for remote access."],
        ),
        (ExposedModbus, Lang::Ja) => (
            "Modbus/TCP に外部から接続できます。認証の仕組みがないため、到達できる人は誰でも制御装置を読み書きできます。",
            &["Modbus にはパスワードがないため、自分のシステムだけを通すファイアウォールで守ってください。", "制御装置のファームウェアを更新してください。", "502番ポートをインターネットに公開せず、遠隔操作には VPN を使ってください。"],
        ),
        (LockoutAbsent, Lang::En) => (
            "Many wrong passwords in a row were accepted for trying, with no lockout or slow-down.",
            &["Use a long, unique password so that guessing cannot succeed.", "Update the firmware; enable login attempt limits if offered.", "Do not expose the login to the Internet."],
        ),
        (LockoutAbsent, Lang::Ja) => (
            "誤ったパスワードを続けて試してもロックや遅延がなく、総当たりを防げません。",
            &["推測されない長い独自のパスワードを使ってください。", "ファームウェアを更新し、ログイン試行回数の制限があれば有効にしてください。", "ログイン画面をインターネットに公開しないでください。"],
        ),
        (LoginLockout, Lang::En) => (
            "The device locked the login after several wrong passwords (good); the check stopped there.",
            &["Keep the lockout on and use a unique password.", "Keep the firmware up to date.", "Consider not exposing the login to the Internet at all."],
        ),
        (LoginLockout, Lang::Ja) => (
            "数回の誤ったパスワードで機器がログインをロックしました（良い挙動です）。点検はそこで止めました。",
            &["ロック機能は有効のままにし、独自のパスワードを使ってください。", "ファームウェアを最新に保ってください。", "ログインをインターネットに公開しないことも検討してください。"],
        ),
        (SelfSignedCertificate, Lang::En) => (
            "The HTTPS certificate is self-signed, so a browser cannot tell the device from an impostor.",
            &["Install a certificate you control, or reach the device only locally.", "Update the firmware.", "Do not expose the device's web interface to the Internet."],
        ),
        (SelfSignedCertificate, Lang::Ja) => (
            "HTTPS の証明書が自己署名のため、ブラウザーは本物の機器となりすましを見分けられません。",
            &["自分で管理する証明書を入れるか、ローカルからのみ使ってください。", "ファームウェアを更新してください。", "機器の Web 画面をインターネットに公開しないでください。"],
        ),
        (ExpiredCertificate, Lang::En) => (
            "The HTTPS certificate has expired: a sign that the device is no longer maintained.",
            &["Renew the certificate.", "Update the firmware or replace a device the maker no longer supports.", "Do not expose the device to the Internet."],
        ),
        (ExpiredCertificate, Lang::Ja) => (
            "HTTPS の証明書の有効期限が切れています。保守されていない機器の兆候です。",
            &["証明書を更新してください。", "ファームウェアを更新するか、サポートの終わった機器は買い替えてください。", "機器をインターネットに公開しないでください。"],
        ),
        (AcceptsAnyCredentials, Lang::En) => (
            "The login accepts an ID and password that no device ships (a random pair): anyone who reaches it is in, whatever they type.",
            &["Check the device's login settings and set a password; a login that takes anything is broken or a decoy.", "Update the firmware.", "Do not expose the login to the Internet."],
        ),
        (CheckIncomplete, Lang::En) => (
            "A login service answered, but the check could not tell whether a default password opens it (see the evidence for why).",
            &["Log in yourself and make sure the password is your own, long and unique.", "Update the firmware.", "Turn the service off or keep it off the Internet if you do not use it."],
        ),
        (CheckIncomplete, Lang::Ja) => (
            "ログイン機能は応答しましたが、初期パスワードで入れるかどうかを判定できませんでした（理由は根拠を参照）。",
            &["ご自身でログインし、パスワードが推測されにくい長い独自のものか確認してください。", "ファームウェアを更新してください。", "使っていない機能は無効にするか、インターネットに公開しないでください。"],
        ),
        (AcceptsAnyCredentials, Lang::Ja) => (
            "どの機器にも存在しない ID・パスワード（ランダムな組み合わせ）でログインできました。誰が何を入力しても入れる状態です。",
            &["機器のログイン設定を確認し、パスワードを設定してください。何でも受け付けるログインは故障かおとりです。", "ファームウェアを更新してください。", "ログイン画面をインターネットに公開しないでください。"],
        ),
    }
}

/// Evidence of a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Protocol that showed it.
    pub protocol: String,
    /// When, RFC 3339.
    pub ts: String,
    /// What matched (a prompt, a status line, a form).
    pub matched: String,
    /// Login name that worked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password that worked (kept in the store; masked for people).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Login attempts made on the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<usize>,
    /// Which entry of the dictionary worked (1-based): as telling as the
    /// password itself against a public list, so shown only with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<usize>,
}

/// What people see instead of a working password: the same fixed width
/// whatever the password, empty or not. A first character and a length
/// named the password in 54 of the public Mirai list's 58 pairs, so
/// nothing of it shows.
pub const PASSWORD_MASK: &str = "********";

/// The mask of `password` ([`PASSWORD_MASK`], whatever it is).
pub fn mask(_password: &str) -> String {
    PASSWORD_MASK.to_string()
}

/// Hides in a finding's evidence (JSON) what names the working password:
/// the password becomes [`PASSWORD_MASK`] and the dictionary entry goes.
/// Operators who ask (`--reveal`) get the evidence unredacted instead.
pub fn redact_evidence(evidence: &mut serde_json::Value) {
    if let Some(obj) = evidence.as_object_mut() {
        if obj.contains_key("password") {
            obj.insert("password".into(), PASSWORD_MASK.into());
        }
        obj.remove("entry");
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Address.
    pub ip: String,
    /// Port.
    pub port: u16,
    /// Service module.
    pub service: String,
    /// Kind.
    pub kind: Kind,
    /// Severity.
    pub severity: Severity,
    /// What the device probably is.
    pub device: Option<Identity>,
    /// Evidence.
    pub evidence: Evidence,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_devices_raise_severity_and_every_kind_has_advice() {
        assert_eq!(
            severity(Kind::DefaultCredential, Criticality::Consumer),
            Severity::High
        );
        assert_eq!(
            severity(Kind::DefaultCredential, Criticality::Critical),
            Severity::Critical
        );
        assert_eq!(
            severity(Kind::ExposedTelnet, Criticality::Critical),
            Severity::Medium
        );
        assert_eq!(
            severity(Kind::OpenControlPanel, Criticality::Unknown),
            Severity::Critical
        );
        for k in [
            Kind::DefaultCredential,
            Kind::NoAuthentication,
            Kind::OpenControlPanel,
            Kind::ExposedTelnet,
            Kind::CleartextAdmin,
            Kind::AnonymousMqtt,
            Kind::ExposedModbus,
            Kind::LockoutAbsent,
            Kind::LoginLockout,
            Kind::SelfSignedCertificate,
            Kind::ExpiredCertificate,
        ] {
            for l in [Lang::En, Lang::Ja] {
                let (what, todo) = explain(k, l);
                assert!(!what.is_empty() && todo.len() == 3);
            }
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        // Nothing of the password shows: not its first character, not its
        // length, not whether it is empty.
        for p in ["xc3511", "", "ab", "7ujMko0admin", "パスワード"] {
            assert_eq!(mask(p), PASSWORD_MASK);
        }
        let mut e = serde_json::json!({"user": "root", "password": "vizxv", "entry": 7, "protocol": "telnet"});
        redact_evidence(&mut e);
        assert_eq!(
            e,
            serde_json::json!({"user": "root", "password": PASSWORD_MASK, "protocol": "telnet"})
        );
        assert_eq!(Lang::from_locale("ja_JP.UTF-8"), Lang::Ja);
        assert_eq!(Lang::from_locale("C"), Lang::En);
    }
}
