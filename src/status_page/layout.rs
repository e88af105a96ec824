//! The page shell every status page shares, its stylesheet, and how times read on it.
//!
//! No script and no framework: the pages are plain HTML forms and links, so they work on any
//! phone, print well, and leave nothing for a hostile page to call into.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::http::paths;

/// A few kilobytes: readable on a phone (one column; a table's rows become blocks with each cell
/// labelled, so no column is off-screen), calm colours. Ids, types, times and badges never wrap;
/// outside text wraps between its parts (see [`wrapped`]).
const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2733;background:#f4f6f9}
header{background:#0b3b60;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
header .brand{font-size:1.05rem;margin-right:auto}
header form{margin:0}
header button{background:none;border:1px solid #8fb3d1;color:#fff;border-radius:4px;padding:.15rem .6rem;cursor:pointer}
main{max-width:1240px;margin:0 auto;padding:1rem}
h1{font-size:1.35rem;margin:.2rem 0 1rem}
h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
a{color:#0a5ea8}
.health{padding:.9rem 1rem;border-radius:6px;font-size:1.1rem;font-weight:600;margin-bottom:1rem}
.health small{display:block;font-weight:400;font-size:.9rem;margin-top:.25rem}
.good{background:#e2f4e8;border-left:6px solid #1e8a4c}
.warn{background:#fff4d6;border-left:6px solid #c98a00}
.bad{background:#fde4e4;border-left:6px solid #c62828}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:.6rem}
.card{background:#fff;border-radius:6px;padding:.6rem .8rem;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:1.4rem}
.card span{color:#5a6876;font-size:.85rem}
.panel{background:#fff;border-radius:6px;padding:.8rem 1rem;box-shadow:0 1px 2px #0002;margin-bottom:1rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.92rem}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid #e3e8ee;vertical-align:top}
th{font-size:.8rem;text-transform:uppercase;color:#5a6876;letter-spacing:.03em}
td.num{text-align:right}
.badge{display:inline-block;border-radius:10px;padding:0 .5rem;font-size:.8rem;font-weight:600}
.tag{display:inline-block;border:1px solid #999;border-radius:4px;padding:0 .3rem;font-size:.75rem;color:#555}
.s-delivered,.s-recovered{background:#e2f4e8;color:#176b3a}.s-pending{background:#e4eefb;color:#0a4f8f}
.s-dead,.s-failed_in_salesforce{background:#fde4e4;color:#a31f1f}.s-ignored,.s-rejected_mode{background:#eceff2;color:#4b5866}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:.8rem}
label{display:flex;flex-direction:column;font-size:.8rem;color:#5a6876;gap:.15rem}
input,select{font:inherit;padding:.35rem .5rem;border:1px solid #b9c4cf;border-radius:4px;background:#fff}
button.primary,a.button{font:inherit;background:#0a5ea8;color:#fff;border:0;border-radius:4px;padding:.45rem .9rem;cursor:pointer;text-decoration:none;display:inline-block}
button.danger{background:#c62828}
.notice{background:#e4eefb;border-radius:6px;padding:.6rem .9rem;margin-bottom:1rem}
.error{background:#fde4e4;border-radius:6px;padding:.6rem .9rem;margin-bottom:1rem}
pre{background:#0f1b26;color:#e6edf3;padding:.8rem;border-radius:6px;overflow-x:auto;font-size:.82rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:0}
dt{color:#5a6876}dd{margin:0;min-width:0}
td,dd,.health,.notice,.error,p{overflow-wrap:break-word}
time,th,.badge,.id,.type,.nowrap{white-space:nowrap}
.chart svg{width:100%;height:auto;display:block}
.legend{font-size:.8rem;color:#5a6876}.legend i{display:inline-block;width:.7rem;height:.7rem;margin:0 .25rem 0 .8rem}
.muted{color:#5a6876}
.signin{max-width:380px;margin:3rem auto}
.signin input{width:100%}
@media(max-width:600px){main{padding:.6rem}
table.rows thead{display:none}
table.rows,table.rows tbody,table.rows tr,table.rows td{display:block}
table.rows tr{border-bottom:1px solid #c9d3dd;padding:.4rem 0}
table.rows td{border:0;padding:.1rem .4rem;text-align:left}
table.rows td[data-label]::before{content:attr(data-label);display:inline-block;min-width:6.2rem;color:#5a6876;font-size:.8rem}
table.rows td.event .id{font-weight:600}}
td.event .type{display:block;color:#5a6876;font-size:.85rem}
"#;

/// A whole page: head, the header with the navigation (when signed in), and `content`.
pub fn page(title: &str, signed_in: Option<&str>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · DR → Salesforce relay" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    a.brand href=(paths::UI_HOME) { "DR → Salesforce relay" }
                    @if let Some(csrf) = signed_in {
                        a href=(paths::UI_HOME) { "Overview" }
                        a href=(paths::UI_EVENTS) { "Events" }
                        form method="post" action=(paths::UI_SIGN_OUT) {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

pub use crate::support::text::{age, time};

/// A time as the page shows it: one `<time>`, never broken across lines.
pub fn when(ms: i64) -> Markup {
    html! { time { (time(ms)) } }
}

/// Where text from outside (Salesforce's answers, URLs) may wrap besides its spaces.
const BREAK_AFTER: [char; 7] = ['.', '/', ':', ',', '=', '&', '?'];

/// Text from outside with a line-break opportunity after each `.`, `/`, `:`…, so that a stack
/// frame like `Class.digitalriverv3.WebhookHandler.handle:` or a URL wraps between its parts
/// instead of widening the page or breaking mid-word.
/// A time written as [`time`] writes it (`2026-11-23 03:00:00 UTC`) is kept whole.
pub fn wrapped(text: &str) -> Markup {
    let mut rest = text;
    let mut pieces = Vec::new();
    while let Some(start) = next_time(rest) {
        let (before, from) = rest.split_at(start);
        let (written, after) = from.split_at(TIME_CHARS);
        pieces.push((before, Some(written)));
        rest = after;
    }
    pieces.push((rest, None));
    html! {
        @for (plain, written) in pieces {
            @for (n, part) in plain.split_inclusive(BREAK_AFTER).enumerate() {
                @if n > 0 { wbr; }
                (part)
            }
            @if let Some(written) = written { time { (written) } }
        }
    }
}

/// `2026-11-23 03:00:00 UTC`
const TIME_CHARS: usize = 23;

/// Where the first time written as [`time`] writes it starts in `text`.
fn next_time(text: &str) -> Option<usize> {
    const SHAPE: &[u8; TIME_CHARS] = b"0000-00-00 00:00:00 UTC";
    text.as_bytes().windows(TIME_CHARS).position(|window| {
        window
            .iter()
            .zip(SHAPE)
            .all(|(c, shape)| if *shape == b'0' { c.is_ascii_digit() } else { c == shape })
    })
}

/// One of our own sentences: a command or setting quoted in backticks is shown as code (not
/// as literal backticks), and quoted outside text wraps as [`wrapped`] does.
pub fn prose(text: &str) -> Markup {
    html! {
        @for (n, part) in text.split('`').enumerate() {
            @if n % 2 == 1 { code { (wrapped(part)) } } @else { (wrapped(part)) }
        }
    }
}

/// A status as a coloured badge.
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge s-" (status) } { (status.replace('_', " ")) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_may_wrap_between_its_parts_and_backticks_become_code() {
        assert_eq!(
            wrapped("Class.digitalriverv3.Handler: <b>").into_string(),
            "Class.<wbr>digitalriverv3.<wbr>Handler:<wbr> &lt;b&gt;"
        );
        assert_eq!(
            prose("run `dr-sf-bridge check` now").into_string(),
            "run <code>dr-sf-bridge check</code> now"
        );
        assert_eq!(prose("no quotes").into_string(), "no quotes");
        assert_eq!(
            wrapped("failing since 2026-12-03 11:56:23 UTC (now)").into_string(),
            "failing since <time>2026-12-03 11:56:23 UTC</time> (now)"
        );
    }

    #[test]
    fn times_and_ages_read_naturally() {
        assert_eq!(time(1_795_402_800_000), "2026-11-23 03:00:00 UTC");
        assert_eq!(age(5_000), "under a minute");
        assert_eq!(age(12 * 60_000), "12 min");
        assert_eq!(age(3 * 3_600_000 + 5 * 60_000), "3 h 5 min");
        assert_eq!(age(2 * 3_600_000), "2 h");
        assert_eq!(age(86_400_000), "1 day");
        assert_eq!(age(3 * 86_400_000), "3 days");
    }
}
