//! Tables and their renderings: the terminal, `results/<date>-<host>.md`,
//! a CSV, JSON (`--json`) and an SVG bar chart of the foreign-call table.

use std::fmt::Write as _;
use std::process::Command;

/// One table of results: a header, rows of cells (the first cell is the
/// row's label), and notes printed under it. `values` keeps each row's
/// median as a number where it has one (for the chart and the JSON).
#[derive(Default)]
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub values: Vec<Option<f64>>,
    pub notes: Vec<String>,
}

impl Table {
    /// Renders for the terminal: the first column left-aligned, the others
    /// right-aligned, a rule under the header.
    pub fn text(&self) -> String {
        let n = self.header.len();
        let mut w = vec![0usize; n];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in row.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |row: &Vec<String>| {
            let mut s = String::new();
            for (i, c) in row.iter().enumerate().take(n) {
                if i == 0 {
                    let _ = write!(s, "{c:<width$}", width = w[0]);
                } else {
                    let _ = write!(s, "  {c:>width$}", width = w[i]);
                }
            }
            s.trim_end().to_string()
        };
        let mut out = format!("{}\n\n", self.title);
        let head = line(&self.header);
        out += &head;
        out += "\n";
        out += &"-".repeat(head.chars().count());
        out += "\n";
        for r in &self.rows {
            out += &line(r);
            out += "\n";
        }
        for note in &self.notes {
            out += "\n";
            out += note;
            out += "\n";
        }
        out
    }

    /// Renders as a Markdown table with its notes.
    pub fn markdown(&self) -> String {
        let esc = |c: &str| c.replace('|', "\\|");
        let mut out = format!(
            "### {}\n\n| {} |\n|",
            self.title,
            self.header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | ")
        );
        out += &" --- |".repeat(self.header.len());
        out += "\n";
        for r in &self.rows {
            out += &format!("| {} |\n", r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | "));
        }
        for note in &self.notes {
            out += &format!("\n{note}\n");
        }
        out
    }

    /// CSV lines `table,row,column,value` (quoted as needed).
    pub fn csv(&self, out: &mut String) {
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().skip(1) {
                let col = self.header.get(i).map_or("", String::as_str);
                let _ = writeln!(
                    out,
                    "{},{},{},{}",
                    csv_field(&self.title),
                    csv_field(&r[0]),
                    csv_field(col),
                    csv_field(c)
                );
            }
        }
    }

    /// A JSON object for `--json`.
    pub fn json(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .zip(&self.values)
            .map(|(r, v)| {
                format!(
                    "{{\"cells\":[{}],\"value\":{}}}",
                    r.iter().map(|c| json_str(c)).collect::<Vec<_>>().join(","),
                    v.map_or("null".to_string(), |x| format!("{x}"))
                )
            })
            .collect();
        format!(
            "{{\"title\":{},\"header\":[{}],\"rows\":[{}],\"notes\":[{}]}}",
            json_str(&self.title),
            self.header.iter().map(|c| json_str(c)).collect::<Vec<_>>().join(","),
            rows.join(","),
            self.notes.iter().map(|c| json_str(c)).collect::<Vec<_>>().join(",")
        )
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            '\n' => out += "\\n",
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out + "\""
}

/// The talk's 2018 figures (ns per call), drawn beside today's bars.
pub const TALK_2018: &[(&str, f64)] = &[
    ("C through the PLT", 2.4),
    ("Rust extern", 2.4),
    ("LuaJIT FFI", 1.8),
    ("Java JNI", 9.0),
    ("Node.js", 18.0),
    ("Go cgo", 72.0),
];

/// An SVG bar chart of a table's numeric rows: log-scale ns/call, one bar
/// per row, the talk's 2018 figure (where it has one) as a grey bar above.
pub fn svg(t: &Table) -> String {
    let rows: Vec<(&str, f64)> =
        t.rows.iter().zip(&t.values).filter_map(|(r, v)| v.filter(|x| *x > 0.0).map(|x| (r[0].as_str(), x))).collect();
    let (left, width, bar, gap) = (380.0, 520.0, 14.0, 10.0);
    let per_row = 2.0 * bar + gap;
    let height = 60.0 + per_row * rows.len() as f64 + 30.0;
    let max = rows.iter().map(|r| r.1).fold(100.0f64, f64::max);
    let (lo, hi) = (0.5f64.log10(), max.log10().ceil());
    let x = |v: f64| left + (v.max(0.5).log10() - lo) / (hi - lo) * width;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">{}</text>\n\
         <text x=\"10\" y=\"38\" fill=\"#555\">ns per call, log scale; blue: this machine, grey: the talk's 2018 figures</text>\n",
        left + width + 80.0,
        xml(&t.title)
    );
    let mut tick = 1.0;
    while tick <= 10f64.powf(hi) {
        let _ = writeln!(
            s,
            "<line x1=\"{0}\" y1=\"50\" x2=\"{0}\" y2=\"{1}\" stroke=\"#ddd\"/><text x=\"{0}\" y=\"{2}\" text-anchor=\"middle\" fill=\"#555\">{3}</text>",
            x(tick),
            height - 25.0,
            height - 10.0,
            tick
        );
        tick *= 10.0;
    }
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = 55.0 + per_row * i as f64;
        if let Some((_, old)) = TALK_2018.iter().find(|(k, _)| label.starts_with(k)) {
            let _ = writeln!(
                s,
                "<rect x=\"{left}\" y=\"{y}\" width=\"{:.1}\" height=\"{bar}\" fill=\"#bbb\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#777\">{old} (2018)</text>",
                x(*old) - left,
                x(*old) + 4.0,
                y + bar - 3.0
            );
        }
        let yb = y + bar;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{left}\" y=\"{yb}\" width=\"{:.1}\" height=\"{bar}\" fill=\"#3a6ea5\"/><text x=\"{:.1}\" y=\"{:.1}\">{v:.2}</text>",
            left - 6.0,
            yb + bar - 3.0,
            xml(label),
            x(*v) - left,
            x(*v) + 4.0,
            yb + bar - 3.0
        );
    }
    s + "</svg>\n"
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Today's date (UTC), as `YYYY-MM-DD`.
pub fn today() -> String {
    let days =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400) as i64;
    civil(days)
}

/// The date `days` after 1970-01-01, as `YYYY-MM-DD` (the civil-from-days
/// algorithm of Howard Hinnant's date library).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The host name.
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "host".into(), |s| s.trim().to_string())
}

/// The machine and every toolchain's version, for the results file.
pub fn machine() -> Vec<(String, String)> {
    // "AMD EPYC" says little: family/model tell the generations apart
    // (the ffiber rows' ratios to C differ between them).
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|x| x.1.trim().to_string())
    };
    let mut cpu = field("model name").unwrap_or_default();
    if let (Some(family), Some(model)) = (field("cpu family"), field("model")) {
        cpu = format!("{cpu}, family {family} model {model}");
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let first = |cmd: &str, args: &[&str]| -> String {
        Command::new(cmd).args(args).output().map_or_else(
            |_| "not installed".to_string(),
            |o| {
                let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
                String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_string()
            },
        )
    };
    vec![
        ("CPU".into(), format!("{cpu} ({cores} logical CPUs)")),
        ("kernel".into(), first("uname", &["-sr"])),
        ("rustc".into(), first("rustc", &["-V"])),
        ("C compiler".into(), first(env!("FFIBENCH_CC"), &["--version"])),
        ("Go".into(), first("go", &["version"])),
        ("Java".into(), first("java", &["-version"])),
        ("Node.js".into(), first("node", &["--version"])),
        ("Python".into(), first("python3", &["--version"])),
        ("LuaJIT".into(), first("luajit", &["-v"])),
    ]
}

/// A table's name that stays the same across runs: its title up to the
/// first `:` or ` — ` (titles go on to say how many runs, seconds, …).
pub fn table_key(title: &str) -> &str {
    let cut = [title.find(':'), title.find(" — ")].into_iter().flatten().min().unwrap_or(title.len());
    title[..cut].trim()
}

/// The leading number of a cell (`"189.3 (164–495)"` → 189.3); `None` for
/// words, ratios (`"1.19x"`) and dashes.
pub fn cell_number(cell: &str) -> Option<f64> {
    let first = cell.split_whitespace().next()?;
    if first.ends_with('x') {
        return None;
    }
    first.parse().ok()
}

/// Splits one CSV line into fields (quotes as `csv` writes them).
fn csv_split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// `--compare FILE.csv`: every numeric cell of this run beside the same
/// cell (same table, row and column) of an earlier run's CSV, with the
/// change; changes of 10% or more are marked, so that a regression shows.
pub fn compare(tables: &[Table], old_csv: &str, old_name: &str) -> Table {
    let mut old = std::collections::HashMap::new();
    for line in old_csv.lines().skip(1) {
        let f = csv_split(line);
        if let [table, row, col, value] = f.as_slice()
            && let Some(v) = cell_number(value)
        {
            old.insert((table_key(table).to_string(), row.clone(), col.clone()), v);
        }
    }
    let mut t = Table {
        title: format!("Change against {old_name} (same table, row and column)"),
        header: ["table", "row", "column", "before", "now", "change"].map(String::from).to_vec(),
        ..Default::default()
    };
    let mut matched = 0;
    for tab in tables {
        let key = table_key(&tab.title);
        for r in &tab.rows {
            for (i, c) in r.iter().enumerate().skip(1) {
                let col = tab.header.get(i).map_or("", String::as_str);
                let (Some(now), Some(&before)) =
                    (cell_number(c), old.get(&(key.to_string(), r[0].clone(), col.into())))
                else {
                    continue;
                };
                matched += 1;
                let change = if before != 0.0 { (now - before) / before * 100.0 } else { 0.0 };
                let mark = if change.abs() >= 10.0 { " !" } else { "" };
                t.rows.push(vec![
                    key.to_string(),
                    r[0].clone(),
                    col.to_string(),
                    format!("{before}"),
                    format!("{now}"),
                    format!("{change:+.1}%{mark}"),
                ]);
                t.values.push(Some(change));
            }
        }
    }
    t.notes.push(format!(
        "{matched} cells matched. \"!\": changed by 10% or more — whether that is better or worse depends on the row \
         (ns and KiB: lower is better; requests/s and work ratios: higher). Compare runs of one machine only."
    ));
    t
}

/// A grouped bar chart of a table with a number per peer column in each
/// row (every table but the foreign-call one, which has `svg`): one group
/// per row, one bar per column, each group scaled to its own largest value
/// (rows have different units).
pub fn svg_grouped(t: &Table) -> String {
    let skip =
        |h: &str| h == "unit" || h.ends_with("/Go") || h.starts_with("vs ") || h == "adds" || h.contains("reason");
    let cols: Vec<usize> = (1..t.header.len()).filter(|&i| !skip(&t.header[i])).collect();
    let rows: Vec<(&str, Vec<Option<f64>>)> = t
        .rows
        .iter()
        .map(|r| (r[0].as_str(), cols.iter().map(|&i| r.get(i).and_then(|c| cell_number(c))).collect::<Vec<_>>()))
        .filter(|(_, v)| v.iter().any(|x| x.is_some_and(|x| x > 0.0)))
        .collect();
    if rows.is_empty() || cols.is_empty() {
        return String::new();
    }
    const COLORS: [&str; 6] = ["#3a6ea5", "#e07b39", "#6a9f58", "#b05f9e", "#c9b037", "#888888"];
    let (left, width, bar, gap) = (330.0, 480.0, 11.0, 12.0);
    let per_row = bar * cols.len() as f64 + gap;
    let legend = 20.0 * cols.len().div_ceil(3) as f64;
    let top = 45.0 + legend;
    let height = top + per_row * rows.len() as f64 + 10.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <text x=\"10\" y=\"20\" font-size=\"13\">{}</text>\n",
        left + width + 90.0,
        xml(&t.title)
    );
    for (k, &i) in cols.iter().enumerate() {
        let (x, y) = (10.0 + 260.0 * (k % 3) as f64, 38.0 + 20.0 * (k / 3) as f64);
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{y}\">{}</text>",
            y - 10.0,
            COLORS[k % COLORS.len()],
            x + 16.0,
            xml(&t.header[i])
        );
    }
    for (ri, (label, vals)) in rows.iter().enumerate() {
        let y0 = top + per_row * ri as f64;
        let max = vals.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y0 + bar * cols.len() as f64 / 2.0 + 4.0,
            xml(label)
        );
        for (k, v) in vals.iter().enumerate() {
            let y = y0 + bar * k as f64;
            match v {
                Some(v) if max > 0.0 => {
                    let w = (v / max * width).max(1.0);
                    let _ = writeln!(
                        s,
                        "<rect x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                        bar - 1.0,
                        COLORS[k % COLORS.len()],
                        left + w + 4.0,
                        y + bar - 2.0,
                        if *v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
                    );
                }
                _ => {
                    let _ =
                        writeln!(s, "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#999\">—</text>", left + 4.0, y + bar - 2.0);
                }
            }
        }
    }
    s + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), "1970-01-01");
        assert_eq!(civil(11_016), "2000-02-29");
        assert_eq!(civil(20_781), "2026-11-24");
    }

    #[test]
    fn escaping() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }

    #[test]
    fn table_renderings() {
        let t = Table {
            title: "T".into(),
            header: vec!["row".into(), "ns".into()],
            rows: vec![vec!["a|b".into(), "1.5".into()], vec!["c".into(), "10".into()]],
            values: vec![Some(1.5), None],
            notes: vec!["n".into()],
        };
        assert_eq!(t.text(), "T\n\nrow   ns\n--------\na|b  1.5\nc     10\n\nn\n");
        assert!(t.markdown().contains("| a\\|b | 1.5 |"));
        let mut csv = String::new();
        t.csv(&mut csv);
        assert_eq!(csv, "T,a|b,ns,1.5\nT,c,ns,10\n");
        assert!(t.json().contains("{\"cells\":[\"a|b\",\"1.5\"],\"value\":1.5}"));
        let svg = svg(&t);
        assert!(svg.starts_with("<svg") && svg.contains(">a|b<") && !svg.contains(">c<"), "{svg}");
    }

    #[test]
    fn compare_matches_cells_across_runs_and_marks_big_changes() {
        let old = Table {
            title: "Runtime basics — median of 5 runs".into(),
            header: vec!["metric".into(), "unit".into(), "ffiber".into(), "ffiber/Go".into()],
            rows: vec![vec!["spawn, \"quoted\"".into(), "ns".into(), "100.0 (90–120)".into(), "0.80x".into()]],
            values: vec![Some(100.0)],
            notes: vec![],
        };
        let mut csv = String::from("table,row,column,value\n");
        old.csv(&mut csv);
        let mut now = old;
        now.title = "Runtime basics — median of 1 run".into();
        now.rows[0][2] = "125.0".into();
        let c = compare(&[now], &csv, "old.csv");
        assert_eq!(c.rows.len(), 1, "only the numeric cell matches (unit and ratio are skipped)");
        assert_eq!(c.rows[0][0], "Runtime basics");
        assert_eq!(c.rows[0][5], "+25.0% !");
        assert_eq!(table_key("A real HTTP server: wrk, 64 keep-alive"), "A real HTTP server");
        assert_eq!(cell_number("1.19x"), None);
        assert_eq!(cell_number("yes"), None);
        assert_eq!(cell_number("3.21 (3.02–3.52)"), Some(3.21));
    }

    #[test]
    fn grouped_chart_has_a_bar_per_number() {
        let t = Table {
            title: "Server: x".into(),
            header: vec!["server".into(), "ffiber".into(), "Go".into()],
            rows: vec![vec!["req/s".into(), "100".into(), "50".into()], vec!["p99".into(), "3".into(), "—".into()]],
            values: vec![Some(100.0), Some(3.0)],
            notes: vec![],
        };
        let svg = svg_grouped(&t);
        assert!(svg.starts_with("<svg"), "{svg}");
        // Two legend squares and three bars.
        assert_eq!(svg.matches("<rect").count(), 5, "{svg}");
        assert!(svg.contains(">—<"), "a missing cell is drawn as a dash");
    }
}
