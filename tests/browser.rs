//! The page at `/` in headless Chromium: the live view really updates, the
//! library's player plays and seeks with byte ranges, the page has no
//! console errors and fits a phone. Screenshots land in
//! `target/browser-artifacts/`.

use anyhow::{Result, ensure};
use framewire::config::ServeArgs;
use framewire_tests::browser::{Browser, Response, Screen};
use framewire_tests::slow::slow_proxy;
use framewire_tests::start_with;
use serde_json::Value;
use std::time::Duration;

/// Wait until a card's live image has decoded a frame.
const IMAGE_READY: &str = "const img = document.querySelector('.camera[data-camera=\"front\"] img'); \
     return img && img.complete && img.naturalWidth > 0 ? img.naturalWidth : 0;";

/// A digest of the live image's pixels, read through a canvas.
const PIXELS: &str = "const img = document.querySelector('.camera[data-camera=\"front\"] img'); \
     const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight; \
     const g = c.getContext('2d'); g.drawImage(img, 0, 0); \
     const d = g.getImageData(0, 0, c.width, c.height).data; \
     let h = 0; for (let i = 0; i < d.length; i += 4) h = (Math.imul(h, 31) + d[i] + d[i + 1] * 7 + d[i + 2] * 13) | 0; \
     let lit = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 60) lit++; \
     return [h, lit];";

/// How old, in ms, the frame the live image shows is: the test camera
/// writes its capture time into the frame (see `camera/synthetic.rs`).
const SHOWN_AGE: &str = "const img = document.querySelector('.camera[data-camera=\"front\"] img'); \
     const w = img.naturalWidth, h = img.naturalHeight, cell = Math.max(4, Math.min(16, Math.floor(w / 40))) & ~3; \
     const c = document.createElement('canvas'); c.width = w; c.height = h; \
     const g = c.getContext('2d'); g.drawImage(img, 0, 0); \
     let v = 0; for (let i = 0; i < 32; i++) { const d = g.getImageData(i * cell + cell / 2, h - cell / 2, 1, 1).data; \
       v = v * 2 + (d[0] + d[1] + d[2] > 384 ? 1 : 0); } \
     return (Date.now() % 2 ** 32 - v + 2 ** 32) % 2 ** 32;";

/// (status, first byte of Content-Range) of each response for `file`.
fn media_responses(responses: &[Response], file: &str) -> Vec<(u64, Option<u64>)> {
    let start = |cr: &str| cr.strip_prefix("bytes ")?.split('-').next()?.parse().ok();
    responses
        .iter()
        .filter(|r| r.url.starts_with("http") && r.url.contains("/media/") && r.url.ends_with(&format!("/{file}")))
        .map(|r| (r.status, r.content_range.as_deref().and_then(start)))
        .collect()
}

/// Play `file` from the library at its middle: returns (duration, the
/// time seeked to, currentTime one second later).
async fn play_middle(b: &Browser, file: &str) -> Result<(f64, f64, f64)> {
    // Through the UI: the file's Play button in the library.
    let script = format!(
        "const li = [...document.querySelectorAll('#files li')].find(li => li.querySelector('a').textContent === '{file}'); \
         if (!li || !li.querySelector('button')) return false; li.querySelector('button').click(); return true;"
    );
    b.wait_for(&format!("a Play button for {file}"), &script, Duration::from_secs(10)).await?;
    let v = b
        .eval_async(
            "const done = arguments[arguments.length - 1]; const v = document.getElementById('player'); \
             v.muted = true; \
             const seek = () => { const to = v.duration / 2; \
               v.addEventListener('seeked', () => { const at = v.currentTime; v.play().then(() => \
                 setTimeout(() => done([v.duration, at, v.currentTime, v.paused]), 1000), e => done('play: ' + e)); }, { once: true }); \
               v.currentTime = to; }; \
             v.addEventListener('error', () => done('media error ' + (v.error && v.error.code)), { once: true }); \
             if (v.readyState >= 1) seek(); else v.addEventListener('loadedmetadata', seek, { once: true });",
        )
        .await?;
    let Some(a) = v.as_array() else { anyhow::bail!("{file}: {v}") };
    let f = |i: usize| a[i].as_f64().unwrap_or(f64::NAN);
    ensure!(a[3] == Value::Bool(false), "{file}: paused after play()");
    Ok((f(0), f(1), f(2)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_live_camera_and_plays_media() -> Result<()> {
    let server = start_with(ServeArgs { cameras: vec!["front=test:320x240@15".into()], ..Default::default() }).await?;
    let b = Browser::start(Screen::Desktop(1280, 1000)).await?;
    b.client.goto(&format!("http://{}/", server.addr)).await?;

    // The live view decodes and keeps changing.
    let width = b.wait_for("the live image", IMAGE_READY, Duration::from_secs(15)).await?;
    assert_eq!(width, 320);
    let first = b.eval(PIXELS).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = b.eval(PIXELS).await?;
    assert!(first[1].as_u64() > Some(1000), "image is blank: {first}");
    assert_ne!(first[0], second[0], "two reads of the live image a second apart are identical");

    // Figures from /api/state: this page's stream is a viewer, fps measured.
    let figures = b
        .wait_for(
            "fps and viewer figures",
            "const c = document.querySelector('.camera[data-camera=\"front\"]'); \
             const fps = parseFloat(c.querySelector('.fps').textContent), n = parseInt(c.querySelector('.viewers').textContent); \
             return fps > 5 && n >= 1 ? [fps, n, c.dataset.status] : false;",
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(figures[2], "live");

    // The snapshot button links to a JPEG.
    let snap = b
        .eval_async(
            "const done = arguments[arguments.length - 1]; \
             const a = document.querySelector('.camera[data-camera=\"front\"] .snapshot'); \
             fetch(a.href).then(r => r.blob().then(b => done([r.status, b.type, b.size])), e => done(String(e)));",
        )
        .await?;
    assert_eq!(snap[0], 200, "{snap}");
    assert_eq!(snap[1], "image/jpeg");
    assert!(snap[2].as_u64() > Some(1000));

    // The library lists the sample media with a link per file.
    let links = b
        .wait_for(
            "the library",
            "const a = [...document.querySelectorAll('#files li a')].map(a => a.getAttribute('href')); \
             return a.length >= 3 ? a : false;",
            Duration::from_secs(10),
        )
        .await?;
    for f in ["/media/sample.mp4", "/media/sample.webm", "/media/sample.pdf"] {
        assert!(links.as_array().unwrap().iter().any(|l| l == f), "{f} not in {links}");
    }
    b.screenshot("page.png").await?;

    // Playing from the middle is served with byte ranges.
    let mut formats = vec!["sample.webm"];
    let h264 = b.eval("return document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.42E01E\"');").await?;
    if h264 != "" {
        formats.push("sample.mp4");
    } else {
        eprintln!("this Chromium does not play H.264: mp4 not tested");
    }
    // Over a slow link (~1.5x the samples' bitrate) the browser has read
    // only the start when it seeks, so what lies further must be asked for.
    // (Chromium waits for its open request instead when the bytes it needs
    // are less than ~160 KB ahead of it.)
    // The live view would share that link with the player, and a busy
    // moment leaving the player less of it was enough for Chromium to read
    // on from 0 instead of seeking: pause it (a snapshot every 2 s instead).
    let paused = b.eval("const p = document.querySelector('.camera[data-camera=\"front\"] .pause'); p.click(); return p.textContent;").await?;
    assert_eq!(paused, "Live", "the live view paused");
    b.throttle(40_000, 20).await?;
    for file in formats {
        b.responses().await?; // only this file's requests from here on
        let (duration, at, later) = play_middle(&b, file).await?;
        eprintln!("{file}: duration {duration:.2} s, seeked to {at:.2} s, {later:.2} s a second later");
        assert!(duration > 2.0, "{file}: duration {duration}");
        assert!((at - duration / 2.0).abs() < 1.0, "{file}: seek landed at {at} of {duration}");
        assert!(later > at + 0.3, "{file}: currentTime did not advance while playing ({at} → {later})");
        let statuses = media_responses(&b.responses().await?, file);
        eprintln!("{file}: responses (status, range start) {statuses:?}");
        assert!(statuses.iter().all(|(s, _)| *s == 206), "{file}: {statuses:?}, expected only 206");
        // The WebM keeps its seek index (Cues) at the end, so seeking must
        // fetch from past the start. The faststart mp4 has its index first and
        // is small enough that Chromium keeps reading from 0 rather than
        // open a second request: for it the 206s and the playing are checked.
        if file.ends_with(".webm") {
            assert!(
                statuses.iter().any(|(_, start)| start.is_some_and(|s| s > 0)),
                "{file}: no range request past the start after seeking: {statuses:?}"
            );
        }
    }

    let errors = b.console_errors().await?;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await?;
    drop(server);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_plays_and_seeks_from_the_cameras_recordings_link() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media)?;
    let server = start_with(ServeArgs {
        cameras: vec!["front=test:320x240@15,record,record-segment=6s".into()],
        media: Some(media.clone()),
        cache_dir: Some(dir.path().join("cache").display().to_string()),
        ..Default::default()
    })
    .await?;
    // A finished segment: its day folder holds an .mp4 (files being written are hidden).
    let finished = || -> Option<(String, String)> {
        let day = std::fs::read_dir(media.join("recordings/front")).ok()?.flatten().next()?;
        let file = std::fs::read_dir(day.path()).ok()?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).find(|n| n.ends_with(".mp4"))?;
        Some((day.file_name().to_string_lossy().into_owned(), file))
    };
    let start = std::time::Instant::now();
    let (day, file) = loop {
        if let Some(found) = finished() {
            break found;
        }
        ensure!(start.elapsed() < Duration::from_secs(60), "no finished recording within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let b = Browser::start(Screen::Desktop(1280, 1000)).await?;
    b.client.goto(&format!("http://{}/", server.addr)).await?;
    // The card says it records, and links to its recordings.
    let rec = b
        .wait_for(
            "the REC mark",
            "const c = document.querySelector('.camera[data-camera=\"front\"]'); const r = c.querySelector('.rec'); \
             return !r.hidden && !c.querySelector('.recordings').hidden ? [r.textContent, r.title] : false;",
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(rec[0], "REC", "{rec}");
    b.eval("document.querySelector('.camera[data-camera=\"front\"] .recordings').click(); return true;").await?;
    // The camera's folder lists its days; the day, its segments.
    let script = format!(
        "const a = [...document.querySelectorAll('#files li a')].find(a => a.textContent === '{day}/'); \
         if (!a) return false; a.click(); return true;"
    );
    b.wait_for("the day's folder", &script, Duration::from_secs(10)).await?;
    b.screenshot("recordings.png").await?;
    b.responses().await?;
    let (duration, at, later) = play_middle(&b, &file).await?;
    eprintln!("{file}: duration {duration:.2} s, seeked to {at:.2} s, {later:.2} s a second later");
    assert!((5.5..6.5).contains(&duration), "{file}: duration {duration}");
    assert!((at - duration / 2.0).abs() < 1.0, "{file}: seek landed at {at} of {duration}");
    assert!(later > at + 0.3, "{file}: currentTime did not advance while playing ({at} → {later})");
    let statuses = media_responses(&b.responses().await?, &file);
    assert!(!statuses.is_empty() && statuses.iter().all(|(s, _)| *s == 206), "{file}: {statuses:?}, expected only 206");
    let errors = b.console_errors().await?;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_explains_no_signal_and_empty_library_and_fits_a_phone() -> Result<()> {
    let media = tempfile::tempdir()?;
    let server = start_with(ServeArgs {
        cameras: vec![
            "front=test:320x240@15".into(),
            "yard=test:320x240@15,fail-after=5,down-ms=600000".into(),
            "hall=test:160x120@5".into(),
            "gate=test:160x120@5".into(),
        ],
        media: Some(media.path().to_path_buf()),
        ..Default::default()
    })
    .await?;
    let b = Browser::start(Screen::Phone(390, 844)).await?;
    b.client.goto(&format!("http://{}/", server.addr)).await?;

    let message = b
        .wait_for(
            "the no-signal message",
            "const m = document.querySelector('.camera[data-camera=\"yard\"] .message'); \
             return m && !m.hidden ? m.textContent : false;",
            Duration::from_secs(15),
        )
        .await?;
    assert!(message.as_str().unwrap().starts_with("No signal"), "{message}");
    let status = b.eval("return document.querySelector('.camera[data-camera=\"yard\"]').dataset.status;").await?;
    assert_eq!(status, "no-signal");
    // The working camera beside it shows no message.
    let other = b.eval("return document.querySelector('.camera[data-camera=\"front\"] .message').hidden;").await?;
    assert_eq!(other, true);

    // A fourth camera starts paused (a browser has six connections per
    // host): it shows a snapshot until Live is pressed, then streams.
    let gate = "const c = document.querySelector('.camera[data-camera=\"gate\"]'); \
                return [c.querySelector('.pause').textContent, c.querySelector('img').getAttribute('src') || '', \
                        c.querySelector('img').naturalWidth];";
    let paused = b.eval(gate).await?;
    assert_eq!(paused[0], "Live", "{paused}");
    assert!(paused[1].as_str().unwrap().starts_with("/cameras/gate/snapshot"), "{paused}");
    let third = b.eval("return document.querySelector('.camera[data-camera=\"hall\"] img').getAttribute('src');").await?;
    assert!(third.as_str().unwrap().starts_with("/cameras/hall/stream"), "the third camera is live: {third}");
    b.eval("document.querySelector('.camera[data-camera=\"gate\"] .pause').click(); return true;").await?;
    let live = b
        .wait_for(
            "the fourth camera to go live",
            "const img = document.querySelector('.camera[data-camera=\"gate\"] img'); \
             return (img.getAttribute('src') || '').startsWith('/cameras/gate/stream') && img.naturalWidth > 0 \
               ? document.querySelector('.camera[data-camera=\"gate\"] .pause').textContent : false;",
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(live, "Pause");

    let empty = b
        .wait_for(
            "the empty-library message",
            "const m = document.getElementById('library-message'); return m.hidden ? false : m.textContent;",
            Duration::from_secs(10),
        )
        .await?;
    assert!(empty.as_str().unwrap().contains("empty"), "{empty}");

    // A phone-sized window: nothing wider than the screen, cards full width.
    b.wait_for("the live image", IMAGE_READY, Duration::from_secs(15)).await?;
    let fit = b
        .eval(
            "const w = document.documentElement.clientWidth; \
             const card = document.querySelector('.camera').getBoundingClientRect(); \
             return [w, document.documentElement.scrollWidth, card.left, card.right, \
               parseFloat(getComputedStyle(document.body).fontSize)];",
        )
        .await?;
    let n = |i: usize| fit[i].as_f64().unwrap();
    assert!(n(0) <= 400.0, "viewport {fit}");
    assert!(n(1) <= n(0), "page scrolls sideways on a phone: {fit}");
    assert!(n(2) >= 0.0 && n(3) <= n(0) && n(3) - n(2) > n(0) * 0.8, "card does not fit the width: {fit}");
    assert!(n(4) >= 14.0, "text too small for a phone: {fit}");
    b.screenshot("page-phone.png").await?;

    let errors = b.console_errors().await?;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    // The console check sees errors when there are some: a missing page.
    b.client.goto(&format!("http://{}/no-such-page", server.addr)).await?;
    assert_eq!(b.eval("return document.querySelector('h1').textContent;").await?, "Not found");
    let errors = b.console_errors().await?;
    assert!(errors.iter().any(|e| e.contains("404")), "a 404 was not reported: {errors:?}");
    b.close().await?;
    drop(server);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_stays_current_over_a_slow_link() -> Result<()> {
    let server = start_with(ServeArgs { cameras: vec!["front=test:640x480@30".into()], ..Default::default() }).await?;
    // The page and its stream through one 150 kB/s link: ~8 of the camera's 30 frames/s fit.
    let link = slow_proxy(server.addr, 150_000).await?;
    let b = Browser::start(Screen::Desktop(1280, 1000)).await?;
    b.client.goto(&format!("http://{link}/")).await?;
    b.wait_for("the live image", IMAGE_READY, Duration::from_secs(20)).await?;
    let mut ages = Vec::new();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        ages.push(b.eval(SHOWN_AGE).await?.as_f64().unwrap_or(f64::NAN));
    }
    eprintln!("age of the shown frame over 15 s at 150 kB/s, ms: {ages:?}");
    let worst = ages.iter().cloned().fold(0.0, f64::max);
    assert!(ages.iter().all(|a| a.is_finite()) && worst < 1500.0, "the live view fell behind: {ages:?}");
    let distinct: std::collections::HashSet<u64> = ages.iter().map(|a| *a as u64).collect();
    assert!(distinct.len() >= 20, "the live view stood still: {ages:?}");
    b.close().await
}

/// How many of the page's camera cards show an image that changes within
/// `wait`: their pixels read twice through a canvas.
async fn changing_cards(b: &Browser, wait: Duration) -> Result<usize> {
    const DIGESTS: &str = "return [...document.querySelectorAll('.camera img')].map(img => { \
         if (!img.complete || !img.naturalWidth) return null; \
         const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight; \
         const g = c.getContext('2d'); g.drawImage(img, 0, 0); \
         const d = g.getImageData(0, 0, c.width, c.height).data; let h = 0; \
         for (let i = 0; i < d.length; i += 4) h = (Math.imul(h, 31) + d[i] + d[i + 1] * 7 + d[i + 2] * 13) | 0; \
         return h; });";
    let first = b.eval(DIGESTS).await?;
    tokio::time::sleep(wait).await;
    let second = b.eval(DIGESTS).await?;
    let (a, z) = (first.as_array().unwrap(), second.as_array().unwrap());
    Ok(a.iter().zip(z).filter(|(x, y)| !x.is_null() && !y.is_null() && x != y).count())
}

fn eight_cameras(tls: bool, cache: &std::path::Path) -> ServeArgs {
    ServeArgs {
        cameras: (1..=8).map(|i| format!("cam{i}=test:160x120@10")).collect(),
        tls_self_signed: tls,
        cache_dir: Some(cache.display().to_string()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_cameras_are_live_over_https_and_two_stall_over_http11() -> Result<()> {
    let cache = tempfile::tempdir()?;
    // HTTPS: HTTP/2, every card live on one connection.
    let server = start_with(eight_cameras(true, cache.path())).await?;
    let b = Browser::start(Screen::Desktop(1400, 1400)).await?;
    b.client.goto(&format!("https://localhost:{}/", server.addr.port())).await?;
    let protocol = b
        .wait_for("the page", "const n = performance.getEntriesByType('navigation')[0]; return n && n.nextHopProtocol;", Duration::from_secs(15))
        .await?;
    assert_eq!(protocol, "h2");
    b.wait_for(
        "eight live images",
        "return [...document.querySelectorAll('.camera img')].filter(i => i.complete && i.naturalWidth && i.src.includes('/stream')).length === 8;",
        Duration::from_secs(20),
    )
    .await?;
    let live = changing_cards(&b, Duration::from_millis(1500)).await?;
    eprintln!("over HTTPS (h2): {live} of 8 cards changing");
    assert_eq!(live, 8, "every camera live over HTTP/2");
    b.close().await?;
    drop(server);

    // Plain HTTP/1.1: three start live; asked for all eight, the browser's
    // six connections per host hold six streams and the other two wait.
    let server = start_with(eight_cameras(false, cache.path())).await?;
    let b = Browser::start(Screen::Desktop(1400, 1400)).await?;
    b.client.goto(&format!("http://{}/", server.addr)).await?;
    b.wait_for("the page", "return document.querySelectorAll('.camera').length === 8;", Duration::from_secs(15)).await?;
    b.eval("document.querySelectorAll('.camera .pause').forEach(p => { if (p.textContent === 'Live') p.click(); }); return true;").await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let state = framewire_tests::state(server.addr).await?;
    let streaming = state["cameras"].as_array().unwrap().iter().filter(|c| c["clients"].as_u64() > Some(0)).count();
    let live = changing_cards(&b, Duration::from_millis(1500)).await?;
    eprintln!("over HTTP/1.1: {streaming} cameras streamed to the page, {live} of 8 cards changing");
    assert_eq!(streaming, 6, "six connections per host: the 7th and 8th stall");
    assert!(live <= 6, "{live} cards changing");
    b.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_the_form_lets_the_page_stream() -> Result<()> {
    use fantoccini::Locator;
    let cache = tempfile::tempdir()?;
    let server = start_with(ServeArgs {
        cameras: vec!["front=test:320x240@15".into()],
        users: vec!["ann:correct horse".into()],
        cache_dir: Some(cache.path().display().to_string()),
        ..Default::default()
    })
    .await?;
    let b = Browser::start(Screen::Desktop(1280, 1000)).await?;
    b.client.goto(&format!("http://{}/", server.addr)).await?;
    let url = b.client.current_url().await?;
    assert_eq!(url.path(), "/login", "sent to the login form: {url}");
    let sign_in = |pass: &'static str| {
        let client = b.client.clone();
        async move {
            client.find(Locator::Css("input[name=name]")).await?.send_keys("ann").await?;
            client.find(Locator::Css("input[name=password]")).await?.send_keys(pass).await?;
            client.find(Locator::Css("button[type=submit]")).await?.click().await?;
            anyhow::Ok(())
        }
    };
    sign_in("wrong").await?;
    let error = b.wait_for("the error", "const e = document.querySelector('.error'); return e ? e.textContent : false;", Duration::from_secs(10)).await?;
    assert_eq!(error, "Wrong name or password.");
    sign_in("correct horse").await?;
    let width = b.wait_for("the live image", IMAGE_READY, Duration::from_secs(15)).await?;
    assert_eq!(width, 320);
    let figures = b
        .wait_for(
            "fps from /api/state",
            "const f = parseFloat(document.querySelector('.camera .fps').textContent); return f > 5 ? f : false;",
            Duration::from_secs(10),
        )
        .await?;
    assert!(figures.as_f64() > Some(5.0));
    let cookie = b.eval("return document.cookie;").await?;
    assert!(!cookie.as_str().unwrap_or("").contains("framewire_session"), "the session cookie is HttpOnly: {cookie}");
    b.close().await
}
