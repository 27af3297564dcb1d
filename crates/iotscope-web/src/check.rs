//! `/check`: tells a visitor whether the address they connect from has
//! open alerts, what they mean and what to do, in Japanese or English. It
//! takes no address from the request: it answers only about the peer
//! address of the connection, so it cannot be used to look anyone else up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use iotscope_checks::findings::{explain, Kind, Lang};
use serde_json::{json, Value};

use crate::{ApiError, App};

fn language(q: &HashMap<String, String>, headers: &HeaderMap) -> Lang {
    match q.get("lang").map(String::as_str) {
        Some("ja") => Lang::Ja,
        Some(_) => Lang::En,
        None => {
            let accept = headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            Lang::from_locale(accept.trim_start())
        }
    }
}

/// What an alert means and what to do about it.
fn explain_problem(problem: &str, lang: Lang) -> (String, Vec<String>) {
    if problem.starts_with("infected_") {
        let (what, todo): (&str, &[&str]) = match lang {
            Lang::En => (
                "A device at this address is scanning the Internet the way malware-infected IoT devices (such as Mirai) do.",
                &[
                    "Turn the device off and on again: this removes Mirai-like malware from memory.",
                    "Then change its ID and password to your own long, unique password at once, before it is infected again.",
                    "Update the firmware to the maker's latest version.",
                    "Check your Wi-Fi router: use WPA2/WPA3 with a strong password, and turn off port forwarding and UPnP you do not need.",
                ],
            ),
            Lang::Ja => (
                "このアドレスの機器が、Mirai などのマルウェアに感染した IoT 機器と同じようにインターネットを探索しています。",
                &[
                    "機器の電源を一度切って入れ直してください。Mirai 型のマルウェアはメモリから消えます。",
                    "その直後に、再感染する前に ID・パスワードを推測されにくい長い独自のものに変更してください。",
                    "メーカーの最新ファームウェアに更新してください。",
                    "Wi-Fi ルーターを確認してください。WPA2/WPA3 と強いパスワードを使い、不要なポート転送や UPnP を無効にしてください。",
                ],
            ),
        };
        return (what.into(), todo.iter().map(|s| s.to_string()).collect());
    }
    match serde_json::from_value::<Kind>(Value::String(problem.into())) {
        Ok(kind) => {
            let (what, todo) = explain(kind, lang);
            (what.into(), todo.iter().map(|s| s.to_string()).collect())
        }
        Err(_) => (problem.into(), Vec::new()),
    }
}

fn title(problem: &str, lang: Lang) -> &'static str {
    match (problem, lang) {
        ("default_credential", Lang::En) => "Factory-default ID and password",
        ("default_credential", Lang::Ja) => "工場出荷時の ID・パスワード",
        ("no_authentication", Lang::En) => "No password at all",
        ("no_authentication", Lang::Ja) => "パスワードなし",
        ("open_control_panel", Lang::En) => "Control panel open to anyone",
        ("open_control_panel", Lang::Ja) => "誰でも操作できる制御画面",
        ("anonymous_mqtt", Lang::En) => "MQTT broker open to anyone",
        ("anonymous_mqtt", Lang::Ja) => "誰でも使える MQTT ブローカー",
        ("exposed_modbus", Lang::En) => "Modbus reachable from the Internet",
        ("exposed_modbus", Lang::Ja) => "インターネットから届く Modbus",
        ("exposed_telnet", Lang::En) => "Telnet reachable from the Internet",
        ("exposed_telnet", Lang::Ja) => "インターネットから届く telnet",
        (p, Lang::En) if p.starts_with("infected_") => "Behaves like an infected device",
        (p, Lang::Ja) if p.starts_with("infected_") => "感染した機器のような通信",
        (_, Lang::En) => "Problem found",
        (_, Lang::Ja) => "問題が見つかりました",
    }
}

/// The open alerts of the caller's address, explained.
async fn answer(
    app: &Arc<App>,
    peer: SocketAddr,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(String, Lang, Vec<Value>), Response> {
    if q.keys().any(|k| k != "lang") {
        return Err(ApiError::bad_request(
            "this page checks only the address you connect from: it takes no address (only lang=ja|en)",
        )
        .into_response());
    }
    // The client's own address: the peer, or what a trusted proxy says.
    let client = app.client(peer.ip(), headers).ip;
    let ip = client.to_string();
    if let Err(wait) = app.check_limit.admit(crate::client::limit_key(client)) {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many checks from your address: try again in {wait} s"),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, wait.to_string().parse().unwrap());
        return Err(r);
    }
    let lang = language(q, headers);
    let key = ip.clone();
    let rows = app
        .store(move |st| st.alerts_for_ip(&key))
        .await
        .map_err(IntoResponse::into_response)?;
    let alerts = rows
        .iter()
        .filter(|a| a.status != "fixed")
        .map(|a| {
            let (what, todo) = explain_problem(&a.problem, lang);
            json!({
                "problem": a.problem,
                "title": title(&a.problem, lang),
                "severity": a.severity,
                "port": a.port,
                "status": a.status,
                "first_seen": a.first_seen,
                "last_seen": a.last_seen,
                "what": what,
                "todo": todo,
            })
        })
        .collect();
    Ok((ip, lang, alerts))
}

/// `GET /api/check`: the same as the page, as JSON.
pub(crate) async fn json(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match answer(&app, peer, &q, &headers).await {
        Ok((ip, lang, alerts)) => Json(json!({
            "ip": ip,
            "lang": if lang == Lang::Ja { "ja" } else { "en" },
            "open_alerts": alerts.len(),
            "alerts": alerts,
        }))
        .into_response(),
        Err(r) => r,
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /check`: a page a device owner can read.
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (ip, lang, alerts) = match answer(&app, peer, &q, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let ja = lang == Lang::Ja;
    let t = |en: &'static str, j: &'static str| if ja { j } else { en };
    let mut body = String::new();
    body.push_str(&format!(
        "<p class=\"addr\">{} <code id=\"your-ip\">{}</code></p>",
        t("Your address:", "あなたのアドレス："),
        escape(&ip)
    ));
    if alerts.is_empty() {
        body.push_str(&format!(
            "<p id=\"verdict\" class=\"ok\">{}</p>",
            t(
                "No open alerts for this address. Keep your devices' passwords unique and their firmware up to date.",
                "このアドレスについて未解決の警告はありません。機器のパスワードを独自のものにし、ファームウェアを最新に保ってください。"
            )
        ));
    } else {
        body.push_str(&format!(
            "<p id=\"verdict\" class=\"bad\">{} {}</p>",
            alerts.len(),
            t(
                "problem(s) were found on a device at this address.",
                "件の問題がこのアドレスの機器で見つかりました。"
            )
        ));
        for a in &alerts {
            let port = a["port"]
                .as_u64()
                .map(|p| format!(" ({} {p})", t("port", "ポート")))
                .unwrap_or_default();
            body.push_str(&format!(
                "<section class=\"alert\"><h2>{}{}</h2><p>{}</p><ol>",
                escape(a["title"].as_str().unwrap_or("")),
                port,
                escape(a["what"].as_str().unwrap_or(""))
            ));
            for step in a["todo"].as_array().into_iter().flatten() {
                body.push_str(&format!("<li>{}</li>", escape(step.as_str().unwrap_or(""))));
            }
            body.push_str("</ol></section>");
        }
    }
    body.push_str(&format!(
        "<section class=\"always\"><h2>{}</h2><ul><li>{}</li><li>{}</li><li>{}</li></ul></section>",
        t("Three things for every device", "すべての機器で確認したい三つのこと"),
        t("ID and password: change the factory default to your own long, unique password.", "ID・パスワード：工場出荷時のものを、長く独自のものに変更する。"),
        t("Firmware: update to the maker's latest version, and keep automatic updates on.", "ファームウェア：メーカーの最新版に更新し、自動更新を有効にしておく。"),
        t("Wi-Fi and router: WPA2/WPA3 with a strong password; no port forwarding or UPnP you do not need.", "Wi-Fi とルーター：WPA2/WPA3 と強いパスワードを使い、不要なポート転送や UPnP を無効にする。"),
    ));
    let other = if ja {
        "<a href=\"/check?lang=en\">English</a>"
    } else {
        "<a href=\"/check?lang=ja\">日本語</a>"
    };
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/app.css\"></head>\
         <body class=\"check\"><main><h1>{title}</h1>{body}<p class=\"lang\">{other}</p></main></body></html>",
        lang = if ja { "ja" } else { "en" },
        title = t("Is my device safe? (iotscope self-check)", "IoT 機器のセルフチェック（iotscope）"),
    );
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        Html(html),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_problem_has_advice_in_both_languages() {
        for p in iotscope_alerts::ALERT_KINDS
            .iter()
            .copied()
            .chain(["infected_mirai"])
        {
            for lang in [Lang::En, Lang::Ja] {
                let (what, todo) = explain_problem(p, lang);
                assert!(!what.is_empty() && !todo.is_empty(), "{p}");
                assert_ne!(title(p, lang), title("unknown", lang), "{p}");
            }
        }
        assert_eq!(
            escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
