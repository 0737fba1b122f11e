//! The pages' frame: HTML escaping, the style (with the node table's
//! narrow-screen layout) and the live script, the page around every body,
//! the login page and the `lang` cookie. It imports
//! no route module, so the login routes ([`crate::http::auth`]) and every
//! page may use it.

use crate::http::i18n::Lang;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Seconds between refreshes of the live part when it polls (no
/// `EventSource`, or the hub refused the stream).
const REFRESH_S: u32 = 5;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font-family:"Noto Sans CJK JP","Noto Sans JP","Hiragino Sans","Yu Gothic",sans-serif;margin:0;background:#f4f5f7;color:#1d2330;font-size:14px}
header{background:#1d3557;color:#fff;padding:10px 20px;display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center}
header h1{font-size:18px;margin:0;flex:1 1 auto}
header a,header button{color:#fff;background:none;border:1px solid #fff6;border-radius:4px;padding:3px 10px;text-decoration:none;font:inherit;cursor:pointer}
main{padding:12px 20px}
section{background:#fff;border-radius:6px;padding:10px 16px;margin-bottom:14px;box-shadow:0 1px 2px #0002;overflow-x:auto}
h2{font-size:16px;margin:4px 0 10px}
h3{font-size:14px;margin:8px 0 4px}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e3e6ea;padding:5px 8px;text-align:left;white-space:nowrap}
th a{color:inherit}
td.num,th.num{text-align:right}
tr[data-health=alert] td:first-child{border-left:4px solid #c62828}
tr[data-health=healthy] td:first-child{border-left:4px solid #2e7d32}
tr[data-health=never-seen] td:first-child{border-left:4px solid #9e9e9e}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;color:#fff}
.b-alert{background:#c62828}.b-healthy{background:#2e7d32}.b-never-seen{background:#757575}.b-revoked{background:#424242}
.alerts li{margin:3px 0}.alerts li b{color:#c62828}
a.help{font-size:12px}
.summary span{margin-right:18px}
.muted{color:#6b7280;font-size:12px}
form.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin-bottom:8px}
.login{max-width:360px;margin:80px auto}
.login label{display:block;margin:10px 0 4px}
.login input{width:100%;padding:6px;box-sizing:border-box}
.error{color:#c62828}
code{background:#eef0f3;border-radius:3px;padding:0 3px;overflow-wrap:anywhere}
#live-status{font-size:12px;border-radius:10px;padding:1px 8px;border:0}
#live-status[data-state=live]{background:#2e7d32}
#live-status[data-state=reconnecting]{background:#c62828}
#live-status[data-state=polling]{background:#6b7280}
body.stale #live{opacity:.55;filter:grayscale(.7)}
#node td{white-space:normal;overflow-wrap:anywhere}
#node-table th{white-space:normal;word-break:keep-all}
#node-table td.facility,#node-table td.muni{white-space:normal;min-width:6em}
@media (max-width:1500px){#node-table .p3{display:none}}
@media (max-width:1100px){#node-table .p2{display:none}}
@media (max-width:760px){
main{padding:8px}
section{padding:8px 10px}
#node-table thead{display:none}
#node-table,#node-table tbody,#node-table tr{display:block;width:auto}
#node-table tr{border-bottom:1px solid #c9ced6;padding:4px 0}
#node-table td,#node-table td.p2{display:block;border:0;padding:2px 6px;white-space:normal;text-align:left;overflow-wrap:anywhere}
#node-table td[data-label]::before{content:attr(data-label) ": ";color:#6b7280;font-size:12px}
}
"#;

/// Keeps `#live` fresh: on each `changed` event of the stream named by its
/// `data-stream` (server-sent events), fetching the page once and swapping
/// the element; the badge `#live-status` says whether the stream is up
/// (`live`), down and being reopened (`reconnecting`: the figures may be
/// stale, and look it), or refused or missing (`polling`: every
/// `data-refresh` seconds, the old way, while the stream is tried again
/// later). A fetch that lands on the login page goes there.
const SCRIPT: &str = r#"
(function(){
  var every = parseInt(document.body.dataset.refresh || "0", 10) * 1000;
  var badge = document.getElementById("live-status");
  if (!document.getElementById("live") || !every) return;
  function show(state){
    if (!badge) return;
    badge.hidden = false;
    badge.dataset.state = state;
    badge.textContent = badge.getAttribute("data-t-" + state) || state;
    document.body.classList.toggle("stale", state === "reconnecting");
  }
  var busy = false, again = false;
  function refresh(done){
    if (busy) { again = true; return; }
    busy = true;
    var ok = false;
    fetch(location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function(r){ if (r.redirected && r.url.indexOf("/login") >= 0) { location.href = r.url; return null; } return r.ok ? r.text() : null; })
      .then(function(text){
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("live"), old = document.getElementById("live");
        if (fresh && old) { old.replaceWith(fresh); ok = true; }
      })
      .catch(function(){})
      .then(function(){
        busy = false;
        if (done) done(ok);
        if (again) { again = false; refresh(); }
      });
  }
  var poller = null;
  function poll(){
    refresh(function(ok){ if (!stream || stream.readyState !== 1) show(ok ? "polling" : "reconnecting"); });
  }
  function startPolling(){ if (!poller) { poller = setInterval(poll, every); poll(); } }
  function stopPolling(){ if (poller) { clearInterval(poller); poller = null; } }
  var src = document.getElementById("live").dataset.stream;
  var stream = null;
  if (!src || !window.EventSource) { show("polling"); startPolling(); return; }
  var stale = null, retry = null, backoff = 5000;
  function connect(){
    clearTimeout(retry); retry = null;
    if (stream) stream.close();
    var es = stream = new EventSource(src);
    es.onopen = function(){
      if (es !== stream) return;
      clearTimeout(stale); stale = null; stopPolling(); backoff = 5000;
      show("live");
      // Whatever changed while the stream was being opened.
      refresh();
    };
    es.addEventListener("changed", function(){ if (es === stream) refresh(); });
    es.onerror = function(){
      if (es !== stream) return;
      if (es.readyState === 2) {
        // Refused (too many live views, logged out, hub unavailable): poll,
        // which also finds the login page, and try the stream again later.
        clearTimeout(stale); stale = null;
        startPolling();
        retry = setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 60000);
      } else if (!stale) {
        // The browser reopens it by itself; say so if that takes a while.
        stale = setTimeout(function(){ stale = null; if (es === stream && es.readyState !== 1) show("reconnecting"); }, 1500);
      }
    };
  }
  // A hidden tab gives its stream back: a browser opens few connections to
  // one host over HTTP/1.1, and tabs left open must not take them all.
  document.addEventListener("visibilitychange", function(){
    if (document.hidden) {
      if (stream) stream.close();
      clearTimeout(stale); stale = null; clearTimeout(retry); retry = null; stopPolling();
    } else {
      connect();
    }
  });
  if (!document.hidden) connect();
})();
"#;

pub(super) fn page(lang: Lang, operator: &str, title: &str, body: &str) -> String {
    let l = lang.labels();
    let other = match lang {
        Lang::Ja => "en",
        Lang::En => "ja",
    };
    format!(
        r#"<!doctype html><html lang="{code}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title><style>{STYLE}</style></head>
<body data-refresh="{REFRESH_S}"><header><h1><a href="/" style="border:0;padding:0">{app}</a></h1>
<span id="live-status" hidden data-state="off" data-t-live="{t_live}" data-t-reconnecting="{t_reconnecting}" data-t-polling="{t_polling}"></span>
<a id="help-link" href="/help">{help}</a><span id="operator">{operator}</span><a id="lang-switch" href="?lang={other}">{other_label}</a>
<form method="post" action="/logout" style="margin:0"><button type="submit">{logout}</button></form></header>
<main>{body}</main><script>{SCRIPT}</script></body></html>"#,
        code = lang.code(),
        title = esc(title),
        app = esc(l.title),
        operator = esc(operator),
        other_label = esc(l.other_lang),
        logout = esc(l.logout),
        t_live = esc(l.live_on),
        t_reconnecting = esc(l.live_reconnecting),
        t_polling = esc(l.live_polling),
        help = esc(l.help),
    )
}

/// The login page.
pub(crate) fn login(lang: Lang, error: Option<&str>) -> String {
    let l = lang.labels();
    let other = match lang {
        Lang::Ja => "en",
        Lang::En => "ja",
    };
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error" id="login-error">{}</p>"#, esc(e))
    });
    format!(
        r#"<!doctype html><html lang="{code}"><head><meta charset="utf-8"><title>{title}</title><style>{STYLE}</style></head>
<body><section class="login"><h2>{title}</h2>{error}
<form method="post" action="/login"><label for="name">{operator}</label><input id="name" name="name" autocomplete="username" required>
<label for="password">{password}</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<p><button id="login-button" type="submit">{login}</button></p></form>
<p><a href="?lang={other}">{other_label}</a></p></section></body></html>"#,
        code = lang.code(),
        title = esc(l.title),
        operator = esc(l.operator),
        password = esc(l.password),
        login = esc(l.login),
        other_label = esc(l.other_lang),
    )
}

/// Sets the `lang` cookie when the language was chosen in the query.
pub(crate) fn with_lang_cookie(lang: Lang, chosen: bool, mut resp: Response) -> Response {
    if chosen {
        let c = format!(
            "lang={}; Path=/; SameSite=Strict; Max-Age=31536000",
            lang.code()
        );
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("図書館"), "図書館");
    }
}
