//! `report.html` rendered by headless Chromium (Debian's `chromium` package): it must draw, and
//! the rendered DOM must hold the day's figures.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const INSTALL: &str = "install Debian's Chromium: `apt-get update && apt-get install -y chromium` \
                       (or point CHROMIUM at a Chromium binary)";

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(path.exists(), "{} is missing: {INSTALL}", path.display());
    path
}

/// Runs headless Chromium on `page` with `mode` (`--screenshot=...` or `--dump-dom`), killing it
/// after a minute; returns its stdout.
fn run_chromium(dir: &Path, page: &Path, mode: &str) -> String {
    let stdout = dir.join("chromium.out");
    let stderr = dir.join("chromium.err");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,2000",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(mode)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("start chromium: {e}; {INSTALL}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {mode} did not finish in 60 s: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "chromium {mode} failed ({status}): {}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    std::fs::read_to_string(&stdout).unwrap()
}

#[tokio::test]
async fn the_page_renders_in_chromium_with_its_figures() {
    let world = World::start().await;
    previous_day(&world).await;
    the_day(&world).await;
    world.report("2024-05-02");
    let html = world.get_text("reports/2024/05/02/report.html").await;

    let dir = std::env::temp_dir().join(format!("reporter-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    std::fs::write(&page, &html).unwrap();

    // The DOM after parsing and layout holds the figures in their places.
    let dom = run_chromium(&dir, &page, "--dump-dom");
    for needle in [
        "<h1>EC2 compliance report: 2024-05-02</h1>",
        "data-figure=\"scans-analysed\"><div class=\"value\">4</div>",
        "data-figure=\"average\"><div class=\"value\">51.25%</div>",
        "data-figure=\"minimum\"><div class=\"value\">40.00%</div>",
        "data-figure=\"latest\"><div class=\"value\">40.00%</div>",
        "data-figure=\"persistent-offenders\"><div class=\"value bad\">1</div>",
        "data-figure=\"new-offenders\"><div class=\"value bad\">2</div>",
        "data-figure=\"became-compliant\"><div class=\"value good\">1</div>",
        "<td>i-a</td><td>web i-a</td><td>us-east-1</td><td>4 of 4</td>",
        "<strong class=\"good\">improving</strong>",
    ] {
        assert!(dom.contains(needle), "the rendered DOM lacks {needle:?}");
    }
    assert_eq!(
        dom.matches("<circle").count(),
        4,
        "one chart point per scan"
    );
    assert_eq!(
        dom.matches("<tr><td>i-").count(),
        4,
        "i-a, i-b (before), i-c, i-e offended"
    );

    // The screenshot: a real picture with the chart's blue and the offender figures' red.
    let png_path = dir.join("report.png");
    run_chromium(&dir, &page, &format!("--screenshot={}", png_path.display()));
    let decoder = png::Decoder::new(std::fs::File::open(&png_path).expect("the screenshot exists"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG pixels");
    assert_eq!((info.width, info.height), (1200, 2000));
    let channels = info.color_type.samples();
    assert!(channels >= 3, "colour PNG, got {:?}", info.color_type);
    let pixels = buf[..info.buffer_size()].chunks(channels);
    let (mut ink, mut blue, mut red) = (0usize, 0usize, 0usize);
    for p in pixels {
        let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
        if r < 200 || g < 200 || b < 200 {
            ink += 1;
        }
        // #2563eb, the chart's line and points.
        if (r - 0x25).abs() < 40 && (g - 0x63).abs() < 40 && (b - 0xeb).abs() < 40 {
            blue += 1;
        }
        // #b42318, the offender counts.
        if (r - 0xb4).abs() < 40 && (g - 0x23).abs() < 40 && (b - 0x18).abs() < 40 {
            red += 1;
        }
    }
    let total = (info.width * info.height) as usize;
    assert!(
        ink > total / 200,
        "the page looks blank: {ink} dark pixels of {total}"
    );
    assert!(ink < total / 2, "the page is mostly dark: {ink} of {total}");
    assert!(blue > 500, "the chart is not drawn: {blue} blue pixels");
    assert!(
        red > 50,
        "the offender figures are not drawn in red: {red} pixels"
    );
    let _ = std::fs::remove_dir_all(dir.join("profile"));
    eprintln!(
        "screenshot: {} ({ink} ink, {blue} blue, {red} red pixels)",
        png_path.display()
    );
}
