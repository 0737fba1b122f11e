//! The pages' frame: HTML escaping, the style and the refresh script, the
//! page around every body, the login page and the `lang` cookie. It imports
//! no route module, so the login routes ([`crate::http::auth`]) and every
//! page may use it.

use crate::http::i18n::Lang;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Seconds between refreshes of the live part.
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
header{background:#1d3557;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:center}
header h1{font-size:18px;margin:0;flex:1}
header a,header button{color:#fff;background:none;border:1px solid #fff6;border-radius:4px;padding:3px 10px;text-decoration:none;font:inherit;cursor:pointer}
main{padding:12px 20px}
section{background:#fff;border-radius:6px;padding:10px 16px;margin-bottom:14px;box-shadow:0 1px 2px #0002}
h2{font-size:16px;margin:4px 0 10px}
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
.summary span{margin-right:18px}
.muted{color:#6b7280;font-size:12px}
form.filters{display:flex;gap:10px;align-items:center;margin-bottom:8px}
.login{max-width:360px;margin:80px auto}
.login label{display:block;margin:10px 0 4px}
.login input{width:100%;padding:6px;box-sizing:border-box}
.error{color:#c62828}
"#;

/// Refreshes `#live` from the same URL; keeps the page if a fetch fails.
const SCRIPT: &str = r#"
(function(){
  var every = parseInt(document.body.dataset.refresh || "0", 10) * 1000;
  if (!every) return;
  function refresh(){
    fetch(location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function(r){ if (r.redirected && r.url.indexOf("/login") >= 0) { location.href = r.url; return null; } return r.ok ? r.text() : null; })
      .then(function(text){
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("live"), old = document.getElementById("live");
        if (fresh && old) old.replaceWith(fresh);
      })
      .catch(function(){});
  }
  setInterval(refresh, every);
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
<span id="operator">{operator}</span><a id="lang-switch" href="?lang={other}">{other_label}</a>
<form method="post" action="/logout" style="margin:0"><button type="submit">{logout}</button></form></header>
<main>{body}</main><script>{SCRIPT}</script></body></html>"#,
        code = lang.code(),
        title = esc(title),
        app = esc(l.title),
        operator = esc(operator),
        other_label = esc(l.other_lang),
        logout = esc(l.logout),
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
